"""runloom: stackful fibers in C, a netpoller, monkey.patch(); one hub on a GIL build.

runloom.run(n > 1) needs a free-threaded build with the GIL off and raises otherwise,
so each body is one ``runloom.run(1, main)``, as asyncio's is one ``asyncio.run``:
all fibers share one OS thread, and blocking or GIL-releasing work goes to
runloom.blocking's thread pool. W7 and W11-W13 measure what plain stdlib calls do in
goroutines, so they run in a worker of their own that calls runloom.monkey.patch()
first, as the runloom README tells a user to.

Install: ``pip install runloom`` builds 0.2.0 from its sdist. Tried in 2026-12, it did
not compile on CPython 3.11.7 (it uses PyThreadState.current_exception, new in 3.12) nor
on 3.12.1 (Py_C_RECURSION_LIMIT undeclared); it did on 3.13.0.
"""

import gc
import socket
import time

from . import patch_requested

try:
    import runloom
    import runloom.sync
except ImportError as exc:
    raise ImportError(f"{exc} (runloom 0.2.0 builds from its sdist on CPython 3.13, not "
                      f"on 3.11 or 3.12.1)") from None

if patch_requested():
    runloom.monkey.patch()

from ..workloads import POOL_SETTLE, SLEEP, clock, rss_bytes

PEER = "runloom"
NO_EQUIVALENT = {}
NOTES = {
    "W5": "runloom.blocking (its offload pool) for each job",
    "W7": "monkey.patch() makes time.sleep a fiber sleep: no OS thread blocks",
    "W8": "fibers parked on one runloom.Chan, woken by close()",
    "W9": "runloom.sync.Lock",
    "W9c": "one hub: acquire never has to wait, so the two never actually contend",
    "W10": "worker fibers on an unbuffered runloom.Chan, each job in runloom.blocking",
    "W11": "monkey.patch(); worker fibers on an unbuffered runloom.Chan",
    "W12": "monkey.patch(); worker fibers on an unbuffered runloom.Chan",
    "W13": "monkey.patch(); socket.create_connection",
}
CAPS = {}
PATCHED = {"W7", "W11", "W12", "W13"}


def version() -> str:
    return f"{runloom.__version__} ({runloom.backend()}, {runloom.netpoll_backend()})"


def _run(main):
    """Run main() as the root fiber on one hub until every fiber is done; return its
    result or raise its exception."""
    outcome = []

    def root():
        try:
            outcome.append((True, main()))
        except BaseException as exc:
            outcome.append((False, exc))

    runloom.run(1, root)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def w1(n):
    out = [None] * n

    def main():
        wg = runloom.sync.WaitGroup()
        wg.add(n)

        def task(i):
            out[i] = i
            wg.done()

        for i in range(n):
            runloom.fiber(task, i)
        wg.wait()

    _run(main)
    return out


def w2(n):
    def main():
        ping, pong, result = runloom.Chan(), runloom.Chan(), runloom.Chan(1)

        def server():
            for _ in range(n):
                pong.send(ping.recv()[0] + 1)

        def client():
            v = 0
            for _ in range(n):
                ping.send(v + 1)
                v = pong.recv()[0]
            result.send(v)

        runloom.fiber(server)
        runloom.fiber(client)
        return result.recv()[0]

    return _run(main)


def w3(n):
    def main():
        ch, result = runloom.Chan(1024), runloom.Chan(1)

        def producer():
            for i in range(n):
                ch.send(i)
            ch.close()

        def consumer():
            received = []
            append = received.append
            for v in ch:
                append(v)
            result.send(received)

        runloom.fiber(consumer)
        runloom.fiber(producer)
        return result.recv()[0]

    return _run(main)


def w4(ks):
    def main():
        chans = [runloom.Chan(1) for _ in range(4)]
        cases = [("recv", c) for c in chans]  # built once and reused
        select = runloom.select
        chosen, total = [], 0
        for j, k in enumerate(ks):
            chans[k].send(j)
            i, (v, ok) = select(cases)
            chosen.append(i)
            total += v
        return chosen, total

    return _run(main)


def w5(arg):
    job, n = arg
    results = [None] * n

    def main():
        wg = runloom.sync.WaitGroup()
        wg.add(n)

        def run(i):
            results[i] = runloom.blocking(job, i)
            wg.done()

        for i in range(n):
            runloom.fiber(run, i)
        wg.wait()

    _run(main)
    return results



# W15: the same fan-out, of a pure-Python kernel (free-threaded builds).
w15 = w5


def _count_finished(n, work):
    finished = []

    def main():
        wg = runloom.sync.WaitGroup()
        wg.add(n)

        def task():
            work()
            finished.append(1)
            wg.done()

        for _ in range(n):
            runloom.fiber(task)
        wg.wait()

    _run(main)
    return len(finished)


def w6(n):
    sleep = runloom.sleep
    return _count_finished(n, lambda: sleep(SLEEP))


def w7(n):
    return _count_finished(n, lambda: time.sleep(SLEEP))


def w8(n):
    _park(100)  # start the scheduler before the baseline
    gc.collect()
    return _park(n)


def _park(n):
    def main():
        ch = runloom.Chan()
        counts = {"ready": 0, "woken": 0}
        done = runloom.sync.WaitGroup()
        done.add(n)

        def parked():
            counts["ready"] += 1
            value, ok = ch.recv()
            if not ok:
                counts["woken"] += 1
            done.done()

        rss_before = rss_bytes()
        for _ in range(n):
            runloom.fiber(parked)
        while counts["ready"] < n:
            runloom.sleep(0.001)
        runloom.sleep(0.05)  # the last few fibers go from counting to parking in recv
        rss_parked = rss_bytes()
        start = clock()
        ch.close()
        done.wait()
        wake = clock() - start
        return rss_parked - rss_before, wake, counts["woken"]

    return _run(main)


def w9(n):
    def main():
        lock = runloom.sync.Lock()
        acquire, release = lock.acquire, lock.release
        count = 0
        for _ in range(n):
            acquire()
            count += 1
            release()
        return count

    return _run(main)


def w9c(n):
    shared = [0]

    def main():
        lock = runloom.sync.Lock()
        wg = runloom.sync.WaitGroup()
        wg.add(2)

        def worker():
            acquire, release = lock.acquire, lock.release
            for _ in range(n // 2):
                acquire()
                shared[0] += 1
                release()
            wg.done()

        runloom.fiber(worker)
        runloom.fiber(worker)
        wg.wait()

    _run(main)
    return shared[0]


def _pool(spec, call):
    def main():
        jobs = runloom.Chan()
        results = [None] * spec.n
        errors = []
        ready, done = runloom.sync.WaitGroup(), runloom.sync.WaitGroup()
        ready.add(spec.workers)
        done.add(spec.n)

        def worker():
            ready.done()
            for i in jobs:
                try:
                    results[i] = call(i)
                except Exception as exc:  # reported below, after every job is accounted for
                    errors.append(exc)
                done.done()

        for _ in range(spec.workers):
            runloom.fiber(worker)
        ready.wait()
        runloom.sleep(POOL_SETTLE)
        start = clock()
        for i in range(spec.n):
            jobs.send(i)
        done.wait()
        elapsed = clock() - start
        jobs.close()
        if errors:
            raise errors[0]
        return results, elapsed

    return _run(main)


def w10(spec):
    return _pool(spec, lambda i: runloom.blocking(spec.call, i))


def w11(spec):
    return _pool(spec, spec.call)


w12 = w11


def w13(spec):
    def main():
        received = [None] * spec.n
        errors = []
        connected, finished = runloom.sync.WaitGroup(), runloom.sync.WaitGroup()
        connected.add(spec.n)
        finished.add(spec.n)
        talk = runloom.Chan()  # closed once every client is connected

        def client(i):
            sock = None
            try:
                sock = socket.create_connection(("127.0.0.1", spec.port))
            except OSError as exc:
                errors.append(exc)
            connected.done()
            talk.recv()
            try:
                if sock is not None:
                    with sock:
                        received[i] = spec.exchange(sock, i)
            except OSError as exc:
                errors.append(exc)
            finished.done()

        for i in range(spec.n):
            runloom.fiber(client, i)
        connected.wait()
        talk.close()
        finished.wait()
        if errors:
            raise errors[0]
        return received

    return _run(main)
