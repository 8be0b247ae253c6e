"""pygolang (golang package) under plain CPython: its thread runtime, where ``go``
starts one OS thread per goroutine. Its gevent runtime needs the ``gpython`` interpreter
and is not measured here.
"""

import gc
import time

from golang import chan, go, select, sync
from golang import time as gotime

from ..workloads import SLEEP, clock, rss_bytes

PEER = "pygolang"
NO_EQUIVALENT = {}
NOTES = {
    "W3": "pygolang's chan has no __iter__: recv_() until closed",
}
CAPS = {
    "W1": (2_000, None),
    "W8": (2_000, "2,000 goroutines (OS threads) parked, not 100,000"),
}


def version() -> str:
    try:
        from importlib.metadata import version as dist_version
        return dist_version("pygolang") + " (thread runtime)"
    except Exception:
        return "? (thread runtime)"


def _go_all(wg, calls):
    """Start go(fn, *args) for each (fn, *args) tuple under WaitGroup wg; wait for all."""
    for fn, *args in calls:
        wg.add(1)
        go(_done_after, wg, fn, args)
    wg.wait()


def _done_after(wg, fn, args):
    try:
        fn(*args)
    finally:
        wg.done()


def w1(n):
    out = [None] * n
    wg = sync.WaitGroup()

    def task(i):
        out[i] = i
        wg.done()

    wg.add(n)
    for i in range(n):
        go(task, i)
    wg.wait()
    return out


def w2(n):
    ping, pong = chan(), chan()
    result = []

    def server():
        for _ in range(n):
            pong.send(ping.recv() + 1)

    def client():
        v = 0
        for _ in range(n):
            ping.send(v + 1)
            v = pong.recv()
        result.append(v)

    _go_all(sync.WaitGroup(), [(server,), (client,)])
    return result[0]


def w3(n):
    ch = chan(1024)
    received = []

    def producer():
        for i in range(n):
            ch.send(i)
        ch.close()

    def consumer():
        append, recv_ = received.append, ch.recv_
        while True:
            v, ok = recv_()
            if not ok:
                break
            append(v)

    _go_all(sync.WaitGroup(), [(consumer,), (producer,)])
    return received


def w4(ks):
    chans = [chan(1) for _ in range(4)]
    cases = [c.recv for c in chans]
    chosen, total = [], 0
    for j, k in enumerate(ks):
        chans[k].send(j)
        i, v = select(*cases)
        chosen.append(i)
        total += v
    return chosen, total


def w5(arg):
    job, n = arg
    results = [None] * n

    def run(i):
        results[i] = job(i)

    _go_all(sync.WaitGroup(), [(run, i) for i in range(n)])
    return results


def _count_finished(n, work):
    finished = []

    def task():
        work()
        finished.append(1)

    _go_all(sync.WaitGroup(), [(task,)] * n)
    return len(finished)


def w6(n):
    return _count_finished(n, lambda: gotime.sleep(SLEEP))


def w7(n):
    return _count_finished(n, lambda: time.sleep(SLEEP))


def w8(n):
    _park(20)
    gc.collect()
    return _park(n)


def _park(n):
    ch = chan()
    ready, done = sync.WaitGroup(), sync.WaitGroup()
    ready.add(n)
    done.add(n)
    woken = []

    def parked():
        ready.done()
        _, ok = ch.recv_()
        if not ok:
            woken.append(1)
        done.done()

    rss_before = rss_bytes()
    for _ in range(n):
        go(parked)
    ready.wait()
    time.sleep(0.1)  # from ready.done() to blocking in recv_()
    rss_parked = rss_bytes()
    start = clock()
    ch.close()
    done.wait()
    wake = clock() - start
    return rss_parked - rss_before, wake, len(woken)


def w9(n):
    m = sync.Mutex()
    lock, unlock = m.lock, m.unlock
    count = 0
    for _ in range(n):
        lock()
        count += 1
        unlock()
    return count


def w9c(n):
    m = sync.Mutex()
    shared = [0]

    def worker():
        lock, unlock = m.lock, m.unlock
        for _ in range(n // 2):
            lock()
            shared[0] += 1
            unlock()

    _go_all(sync.WaitGroup(), [(worker,), (worker,)])
    return shared[0]

