"""Where the goroutines that recruited threads start end up (docs/decisions.md §15).

    PYTHONPATH=. python benchmarks/recruit_homes.py [--n 3000] [--rounds 3]

Two shapes at GOMAXPROCS=2, in one fresh process:
  stat     n goroutines each calling os.stat 20 times: the GIL changes hands at
           every call, threads get recruited to start the waiting goroutines,
           and the goroutines are homed on the spread ring's threads or kept;
           prints how many threads ran them and the share of the busiest two.
  barrier  50 goroutines blocked together in a threading.Barrier (GIL released):
           each needs a thread of its own; prints when all had one.
"""

import argparse
import collections
import os
import sys
import threading
import time

if __package__ in (None, ""):  # `python benchmarks/recruit_homes.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gopy  # noqa: E402


def stat_round(n):
    """Run the stat shape once: (seconds, goroutines per thread, Ms made)."""
    done, ran_on = gopy.WaitGroup(), collections.Counter()
    done.add(n)

    def stat_a_few_times():
        for _ in range(20):
            os.stat("/")
        ran_on[threading.get_ident()] += 1
        done.done()

    made = gopy.runtime.stats()["ms"]
    start = time.perf_counter()
    for _ in range(n):
        gopy.go(stat_a_few_times)
    done.wait()
    return time.perf_counter() - start, ran_on, gopy.runtime.stats()["ms"] - made


def barrier_round(n=50):
    barrier, met = threading.Barrier(n, timeout=60), gopy.Chan(n)
    start = time.perf_counter()
    for _ in range(n):
        gopy.go(lambda: met.send(barrier.wait()))
    assert sorted(met.recv() for _ in range(n)) == list(range(n))
    print(f"barrier: {n} blocked goroutines all met after {time.perf_counter() - start:.3f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    gopy.runtime.gomaxprocs(2)
    for _ in range(args.rounds):
        elapsed, ran_on, made = stat_round(args.n)
        top_two = sum(count for _, count in ran_on.most_common(2))
        print(f"stat: {args.n} goroutines in {elapsed:.3f} s on {len(ran_on)} threads, "
              f"busiest two ran {100 * top_two / args.n:.0f} %, Ms made {made}")
    for _ in range(args.rounds):
        barrier_round()


if __name__ == "__main__":
    main()
