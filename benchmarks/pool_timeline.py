"""Where W10's pool loses time: which thread ran each job, and when the feeder waited.

    PYTHONPATH=. python benchmarks/pool_timeline.py [--reps 10] [--show-worst]

Runs W10's shape (a goroutine starts 8 workers parked on a jobs channel, then sends
them 64 × sha256 of 1 MiB) and prints, per run: the speedup over the same hashes run
serially just before; the milliseconds the feeder spent in sends that waited more
than 0.5 ms (every member busy, or, where members share its thread, the feeder
stuck behind their hashes); and for each thread that ran jobs, whether it is the feeder's, how
many jobs and which members it ran, and whether it started its jobs in the order
they were handed out.  --show-worst prints the slowest run's timeline (each send and
each job's start and end, in ms from the first send).  docs/decisions.md §12
("Later: a batch leaves its spawner's thread") read the feeder's stalls and a member
that kept its thread from the others' jobs off these timelines.
"""

import argparse
import hashlib
import os
import sys
import threading
import time

if __package__ in (None, ""):  # `python benchmarks/pool_timeline.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gopy  # noqa: E402
from benchmarks.py.gopy_w import _in_goroutine as in_goroutine  # noqa: E402
from benchmarks.workloads import POOL_SETTLE  # noqa: E402

JOBS, WORKERS, STALL = 64, 8, 0.0005
clock = time.perf_counter


def run_pool(data):
    """One run: (jobs, sends, start, end, feeder thread); jobs are (member, thread,
    job, started, ended), sends (job, began, returned)."""
    def body():
        jobs = gopy.Chan()
        ready, done = gopy.WaitGroup(), gopy.WaitGroup()
        ready.add(WORKERS)
        done.add(JOBS)
        ran, sends = [], []

        def worker(k):
            ready.done()
            for i in jobs:
                t0 = clock()
                hashlib.sha256(data).digest()
                ran.append((k, threading.get_native_id(), i, t0, clock()))
                done.done()

        for k in range(WORKERS):
            gopy.go(worker, k)
        ready.wait()
        gopy.sleep(POOL_SETTLE)
        start = clock()
        for i in range(JOBS):
            began = clock()
            jobs.send(i)
            sends.append((i, began, clock()))
        done.wait()
        end = clock()
        jobs.close()
        return ran, sends, start, end, threading.get_native_id()

    return in_goroutine(body)


def report(serial, run):
    ran, sends, start, end, feeder = run
    stalled = sum(b - a for _, a, b in sends if b - a > STALL)
    threads = {}
    for k, tid, i, t0, _ in sorted(ran, key=lambda r: r[3]):
        members, order = threads.setdefault(tid, (set(), []))
        members.add(k)
        order.append(i)
    parts = [f"{'feeder' if tid == feeder else 'thread'} {len(order)} jobs of members "
             f"{sorted(members)}{'' if order == sorted(order) else ' (out of order)'}"
             for tid, (members, order) in threads.items()]
    return (f"{serial / (end - start):.2f}x  feeder waited {stalled * 1e3:4.1f} ms  "
            + "; ".join(parts))


def timeline(run):
    ran, sends, start, _, feeder = run
    events = []
    for i, a, b in sends:
        events.append((a, f"send {i} begins"))
        events.append((b, f"send {i} returns after {(b - a) * 1e3:.2f} ms"))
    for k, tid, i, t0, t1 in ran:
        where = "feeder's thread" if tid == feeder else f"thread {tid}"
        events.append((t0, f"    job {i} starts: member {k}, {where}"))
        events.append((t1, f"    job {i} ends"))
    return "\n".join(f"{(t - start) * 1e3:7.2f}  {what}" for t, what in sorted(events))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--show-worst", action="store_true")
    args = parser.parse_args()
    data = os.urandom(1 << 20)
    worst = None
    for _ in range(args.reps):
        t = clock()
        for _ in range(JOBS):
            hashlib.sha256(data).digest()
        serial = clock() - t
        run = run_pool(data)
        speedup = serial / (run[3] - run[2])
        print(report(serial, run), flush=True)
        if worst is None or speedup < worst[0]:
            worst = (speedup, run)
    if args.show_worst:
        print(f"\nslowest run ({worst[0]:.2f}x):")
        print(timeline(worst[1]))


if __name__ == "__main__":
    main()
