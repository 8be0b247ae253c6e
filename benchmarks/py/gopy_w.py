"""gopy: goroutines on an M:N scheduler, written against docs/api.md.

Bodies run in goroutines (not on the main thread), as a Go program would; the main
thread only starts them and waits, blocked with the GIL released.
"""

import gc
import socket
import time

import gopy
# The core names: importing them fails cleanly (ImportError, so the harness names gopy
# as skipped) when `gopy` is not the built package, e.g. the bare source folder. The
# rest is looked up when a workload runs, so a gopy still missing, say, Mutex fails
# only the workloads that need it.
from gopy import Chan, go

from ..workloads import POOL_SETTLE, SLEEP, TICK, clock, rss_bytes, spin_for

PEER = "gopy"
NO_EQUIVALENT = {}
NOTES = {
    "W10": "hashlib called as is in the workers (no offload)",
    "W11": "time.sleep, subprocess.run, urllib called as is in the workers",
    "W12": "urllib.request called as is in the workers",
    "W13": "blocking socket calls as is in the goroutines",
}
CAPS = {}


def version() -> str:
    return f"{getattr(gopy, '__version__', 'dev')} ({getattr(gopy, '__file__', '?')})"


def _in_goroutine(fn, *args):
    """Run fn(*args) in a goroutine and return its result (re-raising its exception)."""
    result = Chan(1)

    def wrapper():
        try:
            result.send((True, fn(*args)))
        except BaseException as exc:  # hand it to the waiting thread
            result.send((False, exc))

    go(wrapper)
    ok, value = result.recv()
    if not ok:
        raise value
    return value


def w1(n):
    out = [None] * n
    wg = gopy.WaitGroup()
    wg.add(n)

    def task(i):
        out[i] = i
        wg.done()

    for i in range(n):
        go(task, i)
    wg.wait()
    return out


def w2(n):
    ping, pong, result = Chan(), Chan(), Chan(1)

    def server():
        for _ in range(n):
            pong.send(ping.recv() + 1)

    def client():
        v = 0
        for _ in range(n):
            ping.send(v + 1)
            v = pong.recv()
        result.send(v)

    go(server)
    go(client)
    return result.recv()


def w3(n):
    ch, result = Chan(1024), Chan(1)

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

    go(consumer)
    go(producer)
    return result.recv()


def w4(ks):
    chans = [Chan(1) for _ in range(4)]
    cases = [gopy.Recv(c) for c in chans]  # built once and reused, as Go's compiler would
    select = gopy.select

    def body():
        chosen, total = [], 0
        for j, k in enumerate(ks):
            chans[k].send(j)
            i, v, ok = select(*cases)
            chosen.append(i)
            total += v
        return chosen, total

    return _in_goroutine(body)


def w5(arg):
    job, n = arg
    results = [None] * n
    wg = gopy.WaitGroup()
    wg.add(n)

    def run(i):
        results[i] = job(i)
        wg.done()

    for i in range(n):
        go(run, i)
    wg.wait()
    return results



def w14(secs):
    """Started the plain way from one goroutine: the counter, then the spinner."""
    def main():
        ticker, done, counted, spins = gopy.Ticker(TICK), Chan(), Chan(1), Chan(1)

        def count():
            n = 0
            while gopy.select(gopy.Recv(ticker.c), gopy.Recv(done))[0] == 0:
                n += 1
            counted.send(n)

        def spinner():
            n = spin_for(secs)
            done.close()
            spins.send(n)

        go(count)
        go(spinner)
        n = spins.recv()
        ticker.stop()
        return counted.recv(), n

    return _in_goroutine(main)


# W15: the same fan-out, of a pure-Python kernel (free-threaded builds).
w15 = w5


def _count_finished(n, work):
    """Start n goroutines running work(); return how many finished."""
    finished = []
    wg = gopy.WaitGroup()
    wg.add(n)

    def task():
        work()
        finished.append(1)
        wg.done()

    for _ in range(n):
        go(task)
    wg.wait()
    return len(finished)


def w6(n):
    sleep = gopy.sleep
    return _count_finished(n, lambda: sleep(SLEEP))


def w7(n):
    return _count_finished(n, lambda: time.sleep(SLEEP))


def w8(n):
    w8_park(100)  # start the runtime and its Ms before the baseline
    gc.collect()
    return w8_park(n)


def w8_park(n):
    ch = Chan()
    ready, done = gopy.WaitGroup(), gopy.WaitGroup()
    ready.add(n)
    done.add(n)
    woken = []

    def parked():
        ready.done()
        value, ok = ch.recv_ok()
        if not ok:
            woken.append(1)
        done.done()

    rss_before = rss_bytes()
    for _ in range(n):
        go(parked)
    ready.wait()
    time.sleep(0.2)  # the last few goroutines go from ready.done() to parking in recv
    rss_parked = rss_bytes()
    start = clock()
    ch.close()
    done.wait()
    wake = clock() - start
    return rss_parked - rss_before, wake, len(woken)


def w9(n):
    def body():
        m = gopy.Mutex()
        lock, unlock = m.lock, m.unlock
        count = 0
        for _ in range(n):
            lock()
            count += 1
            unlock()
        return count

    return _in_goroutine(body)


def w9c(n):
    m = gopy.Mutex()
    shared = [0]
    wg = gopy.WaitGroup()

    def worker():
        lock, unlock = m.lock, m.unlock
        for _ in range(n // 2):
            lock()
            shared[0] += 1
            unlock()

    wg.go(worker)
    wg.go(worker)
    wg.wait()
    return shared[0]


def _pool(spec):
    """W10-W12: spec.workers goroutines receive job numbers from an unbuffered channel."""
    def body():
        jobs = Chan()
        results = [None] * spec.n
        errors = []
        ready, done = gopy.WaitGroup(), gopy.WaitGroup()
        ready.add(spec.workers)
        done.add(spec.n)
        call = spec.call

        def worker():
            ready.done()
            for i in jobs:
                try:
                    results[i] = call(i)
                except Exception as exc:  # reported below, after every job is accounted for
                    errors.append(exc)
                done.done()

        for _ in range(spec.workers):
            go(worker)
        ready.wait()
        gopy.sleep(POOL_SETTLE)
        start = clock()
        for i in range(spec.n):
            jobs.send(i)
        done.wait()
        elapsed = clock() - start
        jobs.close()
        if errors:
            raise errors[0]
        return results, elapsed

    return _in_goroutine(body)


w10 = w11 = w12 = _pool


def echo_clients(spec, hold=None):
    """W13's body (call it in a goroutine): spec.n client goroutines, all
    connected, then their round trips; what each received.  With hold (a
    WaitGroup), each client keeps its connection open until hold is done
    (benchmarks/host_threads.py reads their stacks meanwhile)."""
    received = [None] * spec.n
    errors = []
    connected, finished = gopy.WaitGroup(), gopy.WaitGroup()
    connected.add(spec.n)
    finished.add(spec.n)
    talk = Chan()  # closed once every client is connected

    def client(i):
        sock, counted = None, False
        try:
            sock = socket.create_connection(("127.0.0.1", spec.port))
        except OSError as exc:
            errors.append(exc)
        connected.done()
        talk.recv_ok()
        try:
            if sock is not None:
                with sock:
                    received[i] = spec.exchange(sock, i)
                    if hold is not None:  # finished, but the connection stays
                        finished.done()
                        counted = True
                        hold.wait()
        except OSError as exc:
            errors.append(exc)
        if not counted:
            finished.done()

    for i in range(spec.n):
        go(client, i)
    connected.wait()
    talk.close()
    finished.wait()
    if errors:
        raise errors[0]
    return received


def w13(spec):
    return _in_goroutine(echo_clients, spec)


def w16(n):
    import asyncio

    def f(i):
        return 2 * i

    async def main():
        return [await gopy.to_goroutine(f, i) for i in range(n)]

    return asyncio.run(main())


def w17(n):
    import asyncio

    ping, pong = Chan(), Chan()

    def server():
        for v in ping:
            pong.send(v + 1)

    async def main():
        go(server)
        v = 0
        for _ in range(n):
            await ping.asend(v + 1)
            v = await pong.arecv()
        ping.close()
        return v

    return asyncio.run(main())
