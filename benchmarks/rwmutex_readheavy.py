"""RWMutex against Mutex on a read-heavy load, from Python: 1,000 reader
goroutines and 10 writer goroutines share a dict.

    PYTHONPATH=. python benchmarks/rwmutex_readheavy.py

Two read sections:
  cpu   readers sum the dict's values (Python goroutines share the GIL, so
        readers do not run in parallel: the two locks are close)
  park  readers also wait 0.5 ms inside the section (gopy.sleep, standing
        in for a lookup that waits on a channel or a timer): parked readers
        keep sharing the RWMutex, but hold the Mutex alone
Prints the wall time of each (best of 3) and RWMutex's speedup.  The C
version (benchmarks/native/rwmutex/readheavy.c) shows the CPU case in
parallel.
"""

import time

import gopy

READERS, WRITERS = 1000, 10


def run(rw, park, reads, writes):
    lock = gopy.RWMutex() if rw else gopy.Mutex()
    rlock, runlock = (lock.rlock, lock.runlock) if rw else (lock.lock, lock.unlock)
    table = {k: 0 for k in range(64)}
    wg = gopy.WaitGroup()

    def reader():
        for _ in range(reads):
            rlock()
            total = sum(table.values())
            if park:
                gopy.sleep(0.0005)
            assert total == table[0] * 64, "torn read"
            runlock()

    def writer():
        for _ in range(writes):
            with lock:
                for k in table:
                    table[k] += 1
            gopy.sleep(0.001)

    t0 = time.perf_counter()
    for i in range(READERS):
        if i % (READERS // WRITERS) == 0:
            wg.go(writer)
        wg.go(reader)
    wg.wait()
    elapsed = time.perf_counter() - t0
    assert table[0] == WRITERS * writes, "lost writes"
    return elapsed


def best(*args, reps=3):
    return min(run(*args) for _ in range(reps))


def main():
    print(f"{READERS} readers, {WRITERS} writers, Python goroutines")
    for name, park, reads, writes in (("cpu  (20 reads/reader, sum of 64 values)", False, 20, 10),
                                      ("park (5 reads/reader, 0.5 ms parked inside)", True, 5, 5)):
        m = best(False, park, reads, writes)
        r = best(True, park, reads, writes)
        print(f"{name:46} Mutex {m:8.3f} s   RWMutex {r:8.3f} s   RWMutex {m / r:.1f}x faster")


if __name__ == "__main__":
    main()
