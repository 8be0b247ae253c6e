"""Where each W12 client spends its CPU, by perf's samples (Linux, perf installed).

    PYTHONPATH=. python benchmarks/request_profile.py [--peers gopy,gopy-unspread,asyncio]

For one peer at a time, runs request_cpu.py's W12 measurement (64 workers, 2,000 GETs,
20 ms handler; no sequential GETs) under `perf record -e cpu-clock -g`, then splits the
client process's samples (the server is a process of its own, left out) into µs per
request: the kernel waking a thread (a call chain through try_to_wake_up), the kernel
switching threads (through __schedule), the rest of the kernel (system calls, the TCP
stack), the interpreter (libpython), gopy's extension, and everything else (libc...).
Shows what the pool's spread over the ring costs a pool that holds the GIL
(docs/decisions.md §12): how much is wake-ups and switches, how much the same Python
code running slower.
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile

if __package__ in (None, ""):  # `python benchmarks/request_profile.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.request_cpu import W12_REQUESTS  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ("waking", "switching", "kernel", "CPython", "gopy", "other")


def part(chain: list) -> str:
    """The part a sample belongs to, from its call chain: [(symbol, dso)], leaf first."""
    symbols = {s for s, _ in chain}
    if "try_to_wake_up" in symbols:
        return "waking"
    # finish_task_switch also heads a new thread's first run (no __schedule below it);
    # the compiler may suffix its name (.isra.0).
    if "__schedule" in symbols or any(s.startswith("finish_task_switch") for s in symbols):
        return "switching"
    dso = chain[0][1] if chain else ""
    if "kernel" in dso:
        return "kernel"
    if "libpython" in dso or os.path.basename(dso).startswith("python"):
        return "CPython"
    if "_gopy" in dso:
        return "gopy"
    return "other"


def entry(chain: list) -> str:
    """Where a waking or switching sample entered the kernel: its first user-space frame
    names the waker or the wait.  CPython's GIL waits and signals on pthread conditions
    (3.11-3.13: gil->cond, switch_cond) and its mutex; gopy's notes and locks call futex
    through syscall(2); an idle M polling sleeps in epoll_wait."""
    user = next((s for s, dso in chain if "kernel" not in dso), "")
    if user.startswith(("pthread_cond", "__futex_abstimed_wait", "__GI___lll_lock")):
        return "GIL"
    if user == "syscall":
        return "gopy futex"
    if user.startswith("epoll_wait"):
        return "epoll_wait"
    return "other"


def client_parts(data: str) -> tuple:
    """The client's samples in data: by part, and the waking and switching ones by
    (part, entry).  perf counts the command it starts from its exec on, so the first
    sample is the client's."""
    script = subprocess.run(["perf", "script", "-i", data, "-F", "pid,ip,sym,dso"],
                            capture_output=True, text=True, check=True).stdout
    parts, entries = collections.Counter(), collections.Counter()
    client, pid, chain = None, None, []
    for line in script.splitlines() + [""]:
        if not line.strip():
            if pid is not None and pid == client:
                kind = part(chain)
                parts[kind] += 1
                if kind in ("waking", "switching"):
                    entries[kind, entry(chain)] += 1
            pid, chain = None, []
        elif not line.startswith("\t"):  # "  pid" (padded), then "\tip symbol (dso)"s
            pid = int(line.split()[0])
            client = pid if client is None else client
        else:
            fields = line.split(None, 1)
            rest = fields[1] if len(fields) > 1 else ""
            symbol, _, dso = rest.rpartition(" (")
            chain.append((symbol.split("+")[0], dso.rstrip(")")))
    return parts, entries


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default="gopy,gopy-unspread,asyncio")
    ap.add_argument("--freq", type=int, default=4000, help="samples a second and CPU")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")

        def profile(peer: str) -> tuple:
            """(request_cpu.py's output, client_parts)"""
            client = subprocess.run(
                ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(args.freq), "-g",
                 "-o", data, "--", sys.executable, os.path.join(HERE, "request_cpu.py"),
                 "--n", "0", "--peers", peer],
                stdout=subprocess.PIPE, text=True)
            if client.returncode != 0:
                sys.exit(f"{peer or 'start'}: perf record failed ({client.returncode})")
            return (client.stdout.strip(),) + client_parts(data)

        # The process's start and end (imports, the server's), measured alone and taken
        # off each peer's samples.
        _, start, _ = profile("")
        print(f"client CPU µs a request, its start ({sum(start.values()) / args.freq:.2f} s "
              f"of samples) left out: {', '.join(PARTS)}, all")
        for peer in args.peers.split(","):
            out, parts, entries = profile(peer)
            us = {p: (parts[p] - start[p]) / args.freq / W12_REQUESTS * 1e6 for p in PARTS}
            print(out)
            print("  " + ", ".join(f"{p} {us[p]:.0f}" for p in PARTS) +
                  f"; all {sum(us.values()):.0f}")
            for kind in ("waking", "switching"):
                by = sorted(((e, n) for (k, e), n in entries.items() if k == kind),
                            key=lambda en: -en[1])
                total = sum(n for _, n in by)
                if total:
                    print(f"    {kind} entered from: " +
                          ", ".join(f"{e} {n / total:.0%}" for e, n in by))


if __name__ == "__main__":
    main()
