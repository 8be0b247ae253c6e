"""gevent: greenlets on one OS thread, without monkey-patching but for W11-W13.

GIL-releasing and blocking calls go to the hub's thread pool, gevent's documented way to
run code that is not gevent-aware. W11-W13 measure what plain stdlib calls (time.sleep,
subprocess, urllib, socket) do in goroutines, so they run in a worker of their own that
calls gevent.monkey.patch_all() first, as a gevent user would.
"""

import gc
import socket
import time

from . import patch_requested

if patch_requested():
    from gevent import monkey
    monkey.patch_all()

import gevent
import gevent.event
import gevent.lock
import gevent.queue

from ..workloads import POOL_SETTLE, SLEEP, clock, rss_bytes

PEER = "gevent"
NO_EQUIVALENT = {
    "W4": "no select over queues (gevent.select is for file descriptors)",
}
NOTES = {
    "W2": "gevent.queue.Channel (unbuffered)",
    "W3": "gevent.queue.Queue(1024) closed by a sentinel",
    "W5": "hub threadpool (default 10 threads)",
    "W7": "hub threadpool (default 10 threads): time.sleep unpatched would block the hub",
    "W8": "greenlets parked on one gevent.event.Event, woken by set()",
    "W9": "gevent.lock.Semaphore(1)",
    "W9c": "cooperative greenlets: acquire never yields, so the two never actually contend",
    "W10": "worker greenlets on a gevent.queue.Channel, each job in the hub threadpool",
    "W11": "monkey.patch_all(); worker greenlets on a gevent.queue.Channel",
    "W12": "monkey.patch_all(); worker greenlets on a gevent.queue.Channel",
    "W13": "monkey.patch_all(); socket.create_connection",
}
CAPS = {}
PATCHED = {"W11", "W12", "W13"}
_DONE = object()


def version() -> str:
    return gevent.__version__


def _spawn_all(*calls):
    """Spawn greenlets for (fn, *args) tuples, wait for all, return their values."""
    greenlets = [gevent.spawn(*call) for call in calls]
    gevent.joinall(greenlets, raise_error=True)
    return [g.value for g in greenlets]


def w1(n):
    out = [None] * n

    def task(i):
        out[i] = i

    _spawn_all(*[(task, i) for i in range(n)])
    return out


def w2(n):
    ping, pong = gevent.queue.Channel(), gevent.queue.Channel()

    def server():
        for _ in range(n):
            pong.put(ping.get() + 1)

    def client():
        v = 0
        for _ in range(n):
            ping.put(v + 1)
            v = pong.get()
        return v

    return _spawn_all((server,), (client,))[1]


def w3(n):
    q = gevent.queue.Queue(1024)

    def producer():
        for i in range(n):
            q.put(i)
        q.put(_DONE)

    def consumer():
        received = []
        while (v := q.get()) is not _DONE:
            received.append(v)
        return received

    return _spawn_all((consumer,), (producer,))[0]


def _in_threadpool(fn, n):
    pool = gevent.get_hub().threadpool
    results = [pool.spawn(fn, i) for i in range(n)]
    return [r.get() for r in results]


def w5(arg):
    job, n = arg
    return _in_threadpool(job, n)


def w6(n):
    finished = []

    def task():
        gevent.sleep(SLEEP)
        finished.append(1)

    _spawn_all(*[(task,)] * n)
    return len(finished)


def w7(n):
    def task(_):
        time.sleep(SLEEP)
        return 1

    return sum(_in_threadpool(task, n))


def w8(n):
    _park(100)  # start the hub before the baseline
    gc.collect()
    return _park(n)


def _park(n):
    wake_up, all_woken = gevent.event.Event(), gevent.event.Event()
    counts = {"ready": 0, "woken": 0}

    def parked():
        counts["ready"] += 1
        wake_up.wait()
        counts["woken"] += 1
        if counts["woken"] == n:
            all_woken.set()

    rss_before = rss_bytes()
    greenlets = [gevent.spawn(parked) for _ in range(n)]
    while counts["ready"] < n:
        gevent.sleep(0)
    rss_parked = rss_bytes()
    start = clock()
    wake_up.set()
    all_woken.wait()
    wake = clock() - start
    gevent.joinall(greenlets)
    return rss_parked - rss_before, wake, counts["woken"]


def w9(n):
    lock = gevent.lock.Semaphore(1)
    acquire, release = lock.acquire, lock.release
    count = 0
    for _ in range(n):
        acquire()
        count += 1
        release()
    return count


def w9c(n):
    lock = gevent.lock.Semaphore(1)
    shared = [0]

    def worker():
        acquire, release = lock.acquire, lock.release
        for _ in range(n // 2):
            acquire()
            shared[0] += 1
            release()

    _spawn_all((worker,), (worker,))
    return shared[0]


def _pool(spec, call):
    jobs = gevent.queue.Channel()
    results = [None] * spec.n
    ready = 0

    def worker():
        nonlocal ready
        ready += 1
        while (i := jobs.get()) is not _DONE:
            results[i] = call(i)

    workers = [gevent.spawn(worker) for _ in range(spec.workers)]
    while ready < spec.workers:
        gevent.sleep(0)
    gevent.sleep(POOL_SETTLE)
    start = clock()
    for i in range(spec.n):
        jobs.put(i)
    for _ in workers:
        jobs.put(_DONE)
    gevent.joinall(workers, raise_error=True)
    return results, clock() - start


def w10(spec):
    pool = gevent.get_hub().threadpool
    return _pool(spec, lambda i: pool.apply(spec.call, (i,)))


def w11(spec):
    return _pool(spec, spec.call)


w12 = w11


def w13(spec):
    received = [None] * spec.n
    connected = 0  # clients past their connect, connected or not
    all_connected = gevent.event.Event()

    def client(i):
        nonlocal connected
        try:
            sock = socket.create_connection(("127.0.0.1", spec.port))
        finally:  # a failed client must not keep the others waiting
            connected += 1
            if connected == spec.n:
                all_connected.set()
        all_connected.wait()
        with sock:
            received[i] = spec.exchange(sock, i)

    _spawn_all(*[(client, i) for i in range(spec.n)])
    return received
