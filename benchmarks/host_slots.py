"""GOMAXPROCS for Python goroutines with the GIL off: what the host slots do and cost
(docs/decisions.md §24).  Runs on any build; with the GIL on, the GIL does what the
slots do, which gives the figures to hold them against.

    python benchmarks/host_slots.py [--reps N]

1. Cap: four goroutines computing in pure Python (W15's kernel) at GOMAXPROCS 1 up to
   the CPUs: the process's CPU time over the wall time, i.e. how many ran at once.
2. Hand-over from a blocked call: a goroutine blocks in threading.Lock.acquire (a C
   call that lets the interpreter go, not hooked) under GOMAXPROCS=1, then a second
   goroutine starts on another M: ms from its start to its first line.
3. Turns: under GOMAXPROCS=1 a goroutine spins until one locked to another thread sets a
   flag: ms from that thread's wake-up (a send) to the flag set.
Medians of --reps runs each.
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


def cap(procs: int) -> float:
    runtime.gomaxprocs(procs)
    wg = gopy.WaitGroup()
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(4):
        wg.go(py_kernel, i)
    wg.wait()
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


def hand_over() -> float:
    runtime.gomaxprocs(1)
    lock = threading.Lock()
    lock.acquire()
    started = gopy.Chan(1)
    done = gopy.Chan(1)

    def blocked():
        lock.acquire()
        done.send(None)

    def second(t0):
        started.send(time.perf_counter() - t0)
        lock.release()

    gopy.go(blocked)
    time.sleep(0.05)  # blocked in acquire by now
    gopy.go(second, time.perf_counter())
    ms = started.recv() * 1e3
    done.recv()
    return ms


def turns() -> float:
    runtime.gomaxprocs(1)
    flag = []
    go_ahead, ready, took, saw = gopy.Chan(), gopy.Chan(2), gopy.Chan(1), gopy.Chan(1)

    def setter():
        runtime.lock_os_thread()
        ready.send(None)
        t0 = go_ahead.recv()
        flag.append(1)
        took.send(time.perf_counter() - t0)

    def spinner():
        ready.send(None)
        while not flag:
            pass
        saw.send(None)

    gopy.go(setter)
    ready.recv()
    gopy.go(spinner)
    ready.recv()
    go_ahead.send(time.perf_counter())
    ms = took.recv() * 1e3
    saw.recv()
    return ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(f"CPython {sys.version.split()[0]}, GIL {'on' if gil else 'off'}, {os.cpu_count()} CPUs,"
          f" medians of {args.reps}")
    old = runtime.gomaxprocs()
    try:
        for procs in range(1, (os.cpu_count() or 1) + 1):
            r = statistics.median(cap(procs) for _ in range(args.reps))
            print(f"4 computing goroutines, GOMAXPROCS={procs}: CPU / wall {r:.2f}")
        print(f"hand-over from a blocked call: {statistics.median(hand_over() for _ in range(args.reps)):.2f} ms")
        print(f"turns with a computing goroutine: {statistics.median(turns() for _ in range(args.reps)):.2f} ms")
    finally:
        runtime.gomaxprocs(old)


if __name__ == "__main__":
    main()
