"""What one urllib GET costs the client's CPU, in a goroutine and out of one (W12's gap).

    PYTHONPATH=. python benchmarks/request_cpu.py [--n 1500] [--peers gopy,asyncio,tpe]

(--peers "": the sequential GETs only.)

Two measurements against the HTTP server of W11/W12 (its own process):
- sequential: n GETs one after another (handler sleeps 0 ms), on the main thread without
  gopy's hooks in the way, then inside one goroutine: CPU µs and context switches (all of
  this process's threads) per request;
- W12: each peer's W12 body (64 workers, 2,000 GETs, 20 ms handler), requests/s with the
  client's and the server's CPU µs per request: on 2 cores the server takes about half
  the machine, so W12 is decided by what each client spends per request.  Per request
  too: the client's context switches (voluntary + involuntary, all its threads), and the
  time the server's accepting thread (its main thread: accept, then start a thread per
  connection) spent on a CPU and waiting in the run queue for one, which is what bounds
  the server when the client keeps both CPUs busy.

The peer "gopy-unspread" is gopy's W12 body with each worker spawned as its own
functools.partial: no two workers are of one group, so placement (docs/decisions.md
§12) sees no pool and they all start on the feeder's thread, as asyncio's tasks share
its one thread.  It shows what spreading the pool over the ring costs a pool that holds
the GIL between its waits.
"""

import argparse
import importlib
import os
import resource
import sys
import time

if __package__ in (None, ""):  # `python benchmarks/request_cpu.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.workloads import PoolSpec, Server  # noqa: E402

W12_REQUESTS = 2000  # each peer's W12 body: 64 workers, this many GETs, a 20 ms handler


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def voluntary_involuntary() -> tuple:
    """This process's (voluntary, involuntary) context switches so far, all its
    threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw, r.ru_nivcsw


def context_switches() -> int:
    return sum(voluntary_involuntary())


def accepting_thread_ns(server: Server) -> tuple:
    """(on a CPU, waiting for one) ns so far of the server's main thread, the one that
    accepts and starts a thread per connection (the kernel's schedstat)."""
    with open(f"/proc/{server.proc.pid}/schedstat") as f:
        run, wait, _ = map(int, f.read().split())
    return run, wait


def server_cpu_seconds(server: Server) -> float:
    with open(f"/proc/{server.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def sequential(spec: PoolSpec) -> str:
    """CPU µs and context switches per GET of this process, n GETs in a row."""
    start, switches = cpu_seconds(), context_switches()
    for i in range(spec.n):
        spec.call(i)
    cpu = (cpu_seconds() - start) / spec.n * 1e6
    return f"{cpu:.0f} µs CPU, {(context_switches() - switches) / spec.n:.1f} context switches"


def unspread_body():
    """gopy's W12 body, each worker spawned as a functools.partial of its own (see the
    module's docstring)."""
    import functools
    from benchmarks.py import gopy_w

    def w12(spec):
        go = gopy_w.go
        gopy_w.go = lambda fn, *args: go(functools.partial(fn), *args)
        try:
            return gopy_w.w12(spec)
        finally:
            gopy_w.go = go
    return w12


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1500,
                    help="sequential GETs (default 1500; 0: none)")
    ap.add_argument("--peers", default="gopy,asyncio,tpe", help="W12 bodies to measure")
    args = ap.parse_args()
    server = Server.get("http")
    spec = PoolSpec("http", args.n, 1, delay=0.0, port=server.port)
    if args.n > 0:
        print(f"sequential GET, main thread: {sequential(spec)}")
        import gopy
        box = gopy.Chan(1)
        gopy.go(lambda: box.send(sequential(spec)))
        print(f"sequential GET, in a goroutine: {box.recv()}")
    for peer in filter(None, args.peers.split(",")):
        if peer == "gopy-unspread":
            body = unspread_body()
        else:
            body = importlib.import_module(f"benchmarks.py.{peer}_w").w12
        w12 = PoolSpec("http", W12_REQUESTS, 64, delay=0.02, port=server.port)
        client, served = cpu_seconds(), server_cpu_seconds(server)
        switches, accepting = voluntary_involuntary(), accepting_thread_ns(server)
        _, seconds = body(w12)
        client, served = cpu_seconds() - client, server_cpu_seconds(server) - served
        vol, invol = (b - a for a, b in zip(switches, voluntary_involuntary()))
        run, wait = (b - a for a, b in zip(accepting, accepting_thread_ns(server)))
        n = w12.n
        print(f"W12 {peer}: {n / seconds:,.0f} requests/s; per request: client "
              f"{client / n * 1e6:.0f} µs CPU, {vol / n:.1f} + {invol / n:.1f} context "
              f"switches; server {served / n * 1e6:.0f} µs CPU, its accepting thread "
              f"{run / n / 1e3:.0f} µs on a CPU and {wait / n / 1e3:.0f} waiting for one")


if __name__ == "__main__":
    main()
