"""threading + queue.Queue: one OS thread per goroutine."""

import gc
import sys
import threading
import time
from queue import Queue

from ..workloads import (POOL_SETTLE, SLEEP, TICK, clock, loop_thread_ping_pong, rss_bytes,
                         spin_for)

PEER = "threads"
NO_EQUIVALENT = {
    "W4": "no select over queue.Queue objects",
    "W13": "one OS thread per connection: 10,000 threads, not GOMAXPROCS",
}
NOTES = {
    "W2": "queue.Queue(1): the stdlib has no unbuffered queue",
    "W3": "queue.Queue(1024) closed by a sentinel (Queue.shutdown is 3.13+)",
    "W6": "one OS thread per sleeper",
    "W8": "threads parked on one threading.Event, woken by set()",
    "W10": "worker threads on a queue.Queue(1)",
    "W11": "worker threads on a queue.Queue(1)",
    "W12": "worker threads on a queue.Queue(1)",
}
# Thread start+join costs ~100 µs, and each thread reserves a full stack.
CAPS = {
    "W1": (2_000, None),
    "W8": (2_000, "2,000 OS threads parked, not 100,000"),
}
_DONE = object()


def version() -> str:
    return sys.version.split()[0]


def _run_all(threads):
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def w1(n):
    out = [None] * n

    def task(i):
        out[i] = i

    _run_all([threading.Thread(target=task, args=(i,)) for i in range(n)])
    return out


def w2(n):
    ping, pong = Queue(1), Queue(1)
    result = []

    def server():
        for _ in range(n):
            pong.put(ping.get() + 1)

    def client():
        v = 0
        for _ in range(n):
            ping.put(v + 1)
            v = pong.get()
        result.append(v)

    _run_all([threading.Thread(target=server), threading.Thread(target=client)])
    return result[0]


def w3(n):
    q = Queue(1024)
    received = []

    def producer():
        for i in range(n):
            q.put(i)
        q.put(_DONE)

    def consumer():
        append, get = received.append, q.get
        while (v := get()) is not _DONE:
            append(v)

    _run_all([threading.Thread(target=consumer), threading.Thread(target=producer)])
    return received


def w5(arg):
    job, n = arg
    results = [None] * n

    def run(i):
        results[i] = job(i)

    _run_all([threading.Thread(target=run, args=(i,)) for i in range(n)])
    return results



def tick_counter(stop_is_set, sleep):
    """Count the ticks of a TICK ticker until stop_is_set(): a reader that falls behind
    gets one tick, the ones it missed are dropped (as Go's ticker does)."""
    n = 0
    due = time.perf_counter() + TICK
    while True:
        sleep(max(0.0, due - time.perf_counter()))
        if stop_is_set():
            return n
        n += 1
        now = time.perf_counter()
        due += TICK * max(1, int((now - due) // TICK) + 1)


def w14(secs):
    stop = threading.Event()
    counted = []
    counter = threading.Thread(target=lambda: counted.append(tick_counter(stop.is_set, time.sleep)))
    counter.start()
    spins = []
    spinner = threading.Thread(target=lambda: (spins.append(spin_for(secs)), stop.set()))
    spinner.start()
    spinner.join()
    counter.join()
    return counted[0], spins[0]


# W15: the same fan-out, of a pure-Python kernel (free-threaded builds).
w15 = w5


def _count_finished(n, work):
    finished = []

    def task():
        work()
        finished.append(1)

    _run_all([threading.Thread(target=task) for _ in range(n)])
    return len(finished)


def w6(n):
    return _count_finished(n, lambda: time.sleep(SLEEP))


w7 = w6  # for OS threads, a runtime-unaware sleep is the same call


def w8(n):
    _park(20)
    gc.collect()
    return _park(n)


def _park(n):
    wake_up, all_woken = threading.Event(), threading.Event()
    counts_lock = threading.Lock()
    counts = {"ready": 0, "woken": 0}

    def parked():
        with counts_lock:
            counts["ready"] += 1
        wake_up.wait()
        with counts_lock:
            counts["woken"] += 1
            if counts["woken"] == n:
                all_woken.set()

    rss_before = rss_bytes()
    threads = [threading.Thread(target=parked) for _ in range(n)]
    for t in threads:
        t.start()
    while counts["ready"] < n:
        time.sleep(0.01)
    time.sleep(0.1)  # from counting itself ready to waiting in wake_up.wait()
    rss_parked = rss_bytes()
    start = clock()
    wake_up.set()
    all_woken.wait()
    wake = clock() - start
    for t in threads:
        t.join()
    return rss_parked - rss_before, wake, counts["woken"]


def w9(n):
    lock = threading.Lock()
    acquire, release = lock.acquire, lock.release
    count = 0
    for _ in range(n):
        acquire()
        count += 1
        release()
    return count


def w9c(n):
    lock = threading.Lock()
    shared = [0]

    def worker():
        acquire, release = lock.acquire, lock.release
        for _ in range(n // 2):
            acquire()
            shared[0] += 1
            release()

    _run_all([threading.Thread(target=worker), threading.Thread(target=worker)])
    return shared[0]


def _pool(spec):
    jobs = Queue(1)
    results = [None] * spec.n
    errors = []
    ready = threading.Barrier(spec.workers + 1)
    call = spec.call

    def worker():
        ready.wait()
        while (i := jobs.get()) is not _DONE:
            try:
                results[i] = call(i)
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(spec.workers)]
    for t in threads:
        t.start()
    ready.wait()
    time.sleep(POOL_SETTLE)
    start = clock()
    for i in range(spec.n):
        jobs.put(i)
    for _ in threads:
        jobs.put(_DONE)
    for t in threads:
        t.join()
    elapsed = clock() - start
    if errors:
        raise errors[0]
    return results, elapsed


w10 = w11 = w12 = _pool


def w16(n):
    import asyncio

    def f(i):
        return 2 * i

    async def main():
        return [await asyncio.to_thread(f, i) for i in range(n)]

    return asyncio.run(main())


def w17(n):
    import asyncio

    return loop_thread_ping_pong(n, asyncio.to_thread)
