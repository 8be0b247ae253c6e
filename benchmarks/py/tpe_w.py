"""concurrent.futures.ThreadPoolExecutor with its default size (min(32, cpus + 4)).

A pool task is a goroutine that cannot block cheaply: a task waiting on another holds
a worker thread, so only spawn-like and fan-out workloads have an honest idiom here.
"""

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ..workloads import POOL_SETTLE, SLEEP, clock

PEER = "tpe"
_WORKERS = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default
_SAME_AS_THREADS = "no channels: pool tasks would share a queue.Queue, as in 'threads'"
NO_EQUIVALENT = {
    "W2": _SAME_AS_THREADS,
    "W3": _SAME_AS_THREADS,
    "W4": "no select",
    "W6": f"sleeping tasks hold workers: 10,000 x 50 ms / {_WORKERS} workers "
          f"= {10_000 * 0.05 / _WORKERS:.0f} s by construction",
    "W8": "a parked task holds a worker thread: see 'threads'",
    "W9": "no lock of its own (threading.Lock: see 'threads')",
    "W9c": "no lock of its own (threading.Lock: see 'threads')",
    "W13": "a connection held by a pool task holds a worker thread: 10,000 threads",
    "W16": "run_in_executor's default executor is a ThreadPoolExecutor: see 'asyncio'",
    "W17": "run_in_executor's default executor is a ThreadPoolExecutor: see 'asyncio'",
}
NOTES = {
    "W7": f"default pool size: {_WORKERS} workers",
    "W10": "ThreadPoolExecutor(8), its threads started before the clock",
    "W11": "ThreadPoolExecutor(8), its threads started before the clock",
    "W12": "ThreadPoolExecutor(64), its threads started before the clock",
}
CAPS = {"W1": (20_000, None)}


def version() -> str:
    return sys.version.split()[0]


def w1(n):
    out = [None] * n

    def task(i):
        out[i] = i

    with ThreadPoolExecutor() as pool:
        for future in [pool.submit(task, i) for i in range(n)]:
            future.result()
    return out


def w5(arg):
    job, n = arg
    with ThreadPoolExecutor() as pool:
        return list(pool.map(job, range(n)))


def w7(n):
    def task(_):
        time.sleep(SLEEP)
        return 1

    with ThreadPoolExecutor() as pool:
        return sum(pool.map(task, range(n)))


def _pool(spec):
    with ThreadPoolExecutor(spec.workers) as pool:
        # A task that waits holds its thread, so the pool starts one thread per task.
        started = threading.Barrier(spec.workers + 1)
        for _ in range(spec.workers):
            pool.submit(started.wait)
        started.wait()
        time.sleep(POOL_SETTLE)
        start = clock()
        results = list(pool.map(spec.call, range(spec.n)))
        return results, clock() - start


w10 = w11 = w12 = _pool
