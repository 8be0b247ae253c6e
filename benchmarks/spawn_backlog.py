"""How many goroutines a spawning thread leaves unstarted at worst.

The main thread spawns N goroutines that each append their index to a
list; after each spawn it notes how many have not run yet.  The worst of
that, per round, is printed (sorted over the rounds): a thread past
1,024 unstarted lets them start (docs/decisions.md section 8), so it
should stay near 1,024 whatever else the threads are doing.

    PYTHONPATH=. python benchmarks/spawn_backlog.py [-n 8192] [--rounds 10]
        [--blocked K]   K goroutines first block their threads in a C call
                        (libc usleep through ctypes, GIL released) for the
                        whole run: busy threads that cannot start anything
"""

import argparse
import ctypes
import time

import gopy


def worst_backlog(n):
    ran, worst = [], 0
    for i in range(n):
        gopy.go(ran.append, i)
        worst = max(worst, i + 1 - len(ran))
    while len(ran) < n:
        time.sleep(0.001)
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--blocked", type=int, default=0)
    args = ap.parse_args()
    usleep = ctypes.CDLL(None).usleep
    for _ in range(args.blocked):
        gopy.go(usleep, 1000000 * (1 + args.rounds))
    time.sleep(0.2)
    worst = sorted(worst_backlog(args.n) for _ in range(args.rounds))
    print(f"worst unstarted per round ({args.blocked} threads blocked): {worst}")


if __name__ == "__main__":
    main()
