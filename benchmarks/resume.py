"""Waking parked goroutines against resuming suspended generators, on this CPython.

    PYTHONPATH=. python benchmarks/resume.py

W8w's wake (10,000 Python goroutines parked on one channel, woken by close: µs per
goroutine, best of 5) with the garbage collector on and off, beside a Python-only
analogue: 10,000 suspended generators each resumed once to do what a woken W8w goroutine
does (an append and a method call). Written to compare CPython versions
(docs/decisions.md §14: W8w is slower on 3.14 and 3.15 than on 3.11).
"""

import gc
import sys
import time

if __package__ in (None, ""):  # `python benchmarks/resume.py`: make `benchmarks` importable
    import os
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.py.gopy_w import w8_park

N = 10_000


class _Done:
    def done(self):
        pass


def _parked(woken, done):
    yield
    woken.append(1)
    done.done()


def generators(n):
    woken, done = [], _Done()
    gens = [_parked(woken, done) for _ in range(n)]
    for g in gens:
        next(g)
    start = time.perf_counter()
    for g in gens:
        for _ in g:
            pass
    elapsed = time.perf_counter() - start
    assert len(woken) == n
    return elapsed / n


def wake(n, collector):
    gc.collect()
    if not collector:
        gc.disable()
    try:
        best = min(w8_park(n)[1] for _ in range(5))
    finally:
        gc.enable()
    return best / n


def main():
    w8_park(100)  # the runtime and its threads started
    version = sys.version.split()[0]
    print(f"CPython {version}, {N:,} each, best of 5, µs")
    print(f"  goroutines woken by close, collector on:  {wake(N, True) * 1e6:.3f}")
    print(f"  goroutines woken by close, collector off: {wake(N, False) * 1e6:.3f}")
    print(f"  generators resumed (no gopy):             "
          f"{min(generators(N) for _ in range(5)) * 1e6:.3f}")


if __name__ == "__main__":
    main()
