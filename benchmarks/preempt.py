"""What preemption costs (docs/decisions.md §18).

    python benchmarks/preempt.py [--reps N]

1. Nothing to preempt: a pure-Python kernel (W15's) in a goroutine alone on its
   thread against the same kernel on a threading.Thread: the armed-only-when-due
   hook must cost nothing (target: at most 2 % slower).
2. The rejected alternative, a hook that is always on: the same kernel in a goroutine
   with every loop back-edge calling a trivial callback (3.12+: a sys.monitoring JUMP
   event; 3.11: a no-op trace function, sys.settrace).
3. Preempted: the kernel in a goroutine beside a goroutine on the same thread that
   receives a 5 ms ticker; its slowdown and how often it was preempted (a stretch's
   length less the 10 ms slice is the time the switch took to arrive).
CPU time of the kernel's thread, best and median of --reps runs each, interleaved.
"""

import argparse
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gopy  # noqa: E402
from gopy import runtime  # noqa: E402

from benchmarks.workloads import py_kernel  # noqa: E402

JOBS = 5  # py_kernel calls per measurement: about 0.1 s


def kernel():
    """The kernel's CPU time on its thread (the other core's noise stays out)."""
    t0 = time.thread_time()
    for i in range(JOBS):
        py_kernel(i)
    return time.thread_time() - t0


def on_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(kernel()))
    t.start()
    t.join()
    return out[0]


def in_goroutine(fn=kernel):
    ch = gopy.Chan(1)
    gopy.go(lambda: ch.send(fn()))
    return ch.recv()


def with_hook_always_on():
    if sys.version_info >= (3, 12):
        mon = sys.monitoring
        tool = mon.PROFILER_ID
        mon.use_tool_id(tool, "always-on hook")
        mon.register_callback(tool, mon.events.JUMP, slice)  # a trivial builtin
        mon.set_events(tool, mon.events.JUMP)
        try:
            return in_goroutine()
        finally:
            mon.set_events(tool, 0)
            mon.register_callback(tool, mon.events.JUMP, None)
            mon.free_tool_id(tool)

    def body():
        sys.settrace(lambda *a: None)  # per call: no local tracer, so no line events
        try:
            return kernel()
        finally:
            sys.settrace(None)

    return in_goroutine(body)


def preempted():
    """The kernel beside a ticker's reader on one thread (retried until the
    scheduler puts them together): (seconds, preemptions, gaps between ticks in ms)."""

    # Each attempt's channels are passed in: a goroutine of a failed attempt must
    # not take the next one's go-ahead.
    def reader(idents, go_on, stop, ticks):
        idents.send(threading.get_ident())
        if not go_on.recv():
            return
        t = gopy.Ticker(0.005)
        while gopy.select(gopy.Recv(t.c), gopy.Recv(stop))[0] == 0:
            ticks.append(time.perf_counter())
        t.stop()

    def worker(idents, go_on, stop, result):
        idents.send(threading.get_ident())
        if not go_on.recv():
            return
        time.sleep(0.02)
        before = runtime.stats()["preemptions"]
        secs = kernel()
        result.send((secs, runtime.stats()["preemptions"] - before))
        stop.close()

    for _ in range(60):
        idents, go_on = gopy.Chan(2), gopy.Chan()
        result, stop, ticks = gopy.Chan(1), gopy.Chan(), []
        procs = runtime.gomaxprocs(1)  # one P while they start: likely one thread
        gopy.go(reader, idents, go_on, stop, ticks)
        gopy.go(worker, idents, go_on, stop, result)
        same = idents.recv() == idents.recv()
        runtime.gomaxprocs(procs)
        if same:
            go_on.send(True)
            go_on.send(True)
            secs, n = result.recv()
            gaps = [(b - a) * 1e3 for a, b in zip(ticks, ticks[1:])]
            return secs, n, gaps
        go_on.close()
    raise SystemExit("the scheduler never put the two goroutines on one thread")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    slice_s = runtime.set_preempt_slice(0.010)  # read it ...
    runtime.set_preempt_slice(slice_s)  # ... and keep it (GOPY_PREEMPT_SLICE)
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"preemption slice {slice_s * 1e3:g} ms, "
          f"{args.reps} runs of each, interleaved: CPU time of the kernel's thread")
    in_goroutine()  # start the runtime
    rows = {"thread": [], "goroutine": [], "always-on hook": [], "preempted": []}
    counts, gaps = [], []
    for _ in range(args.reps):  # interleaved, so that drift hits every row alike
        rows["thread"].append(on_thread())
        rows["goroutine"].append(in_goroutine())
        rows["always-on hook"].append(with_hook_always_on())
        secs, n, g = preempted()
        rows["preempted"].append(secs)
        counts.append(n / secs)
        gaps.extend(g)
    best, mid = min(rows["thread"]), statistics.median(rows["thread"])
    print("                  best        ÷ thread  median      ÷ thread")
    for name, xs in rows.items():
        b, m = min(xs), statistics.median(xs)
        print(f"  {name:15s} {b * 1e3:6.1f} ms   {b / best:6.3f}   {m * 1e3:6.1f} ms   {m / mid:6.3f}")
    rate = statistics.median(counts)
    every = f", one every {1e3 / rate:.1f} ms" if rate > 0 else ""
    wait = f"{max(gaps):.1f} ms" if gaps else "all of it"
    print(f"  preempted: {rate:.0f} preemptions per CPU second{every}; "
          f"longest wait between the reader's ticks {wait}")


if __name__ == "__main__":
    main()
