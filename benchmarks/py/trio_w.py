"""trio: tasks in nurseries on one OS thread; memory channels."""

import gc
import time

import trio

from ..workloads import SLEEP, clock, rss_bytes

PEER = "trio"
NO_EQUIVALENT = {
    "W4": "no select (python-trio/trio#1411)",
}
NOTES = {
    "W5": "trio.to_thread.run_sync (default limiter: 40 threads)",
    "W7": "trio.to_thread.run_sync (default limiter: 40 threads)",
    "W8": "tasks parked on one trio.Event, woken by set()",
}
# trio.Lock.acquire always checkpoints (a trip through the scheduler): ~10x slower than
# the other locks, so fewer operations keep the run short.
CAPS = {"W9": (200_000, None)}
_PENDING = object()


def version() -> str:
    return trio.__version__


def w1(n):
    out = [None] * n

    async def task(i):
        out[i] = i

    async def main():
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(task, i)

    trio.run(main)
    return out


def w2(n):
    result = []

    async def server(ping_rx, pong_tx):
        for _ in range(n):
            await pong_tx.send(await ping_rx.receive() + 1)

    async def client(ping_tx, pong_rx):
        v = 0
        for _ in range(n):
            await ping_tx.send(v + 1)
            v = await pong_rx.receive()
        result.append(v)

    async def main():
        ping_tx, ping_rx = trio.open_memory_channel(0)
        pong_tx, pong_rx = trio.open_memory_channel(0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server, ping_rx, pong_tx)
            nursery.start_soon(client, ping_tx, pong_rx)

    trio.run(main)
    return result[0]


def w3(n):
    received = []

    async def producer(tx):
        async with tx:  # closes the channel on exit
            for i in range(n):
                await tx.send(i)

    async def consumer(rx):
        async for v in rx:
            received.append(v)

    async def main():
        tx, rx = trio.open_memory_channel(1024)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer, rx)
            nursery.start_soon(producer, tx)

    trio.run(main)
    return received


def _gather(n, make_call):
    """Await make_call(i) for i in range(n), each in a task of one nursery; return the values."""
    results = [_PENDING] * n

    async def task(i):
        results[i] = await make_call(i)

    async def main():
        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(task, i)

    trio.run(main)
    return results


def w5(arg):
    job, n = arg
    return _gather(n, lambda i: trio.to_thread.run_sync(job, i))


def _finished(results):
    return sum(r is not _PENDING for r in results)


def w6(n):
    return _finished(_gather(n, lambda i: trio.sleep(SLEEP)))


def w7(n):
    return _finished(_gather(n, lambda i: trio.to_thread.run_sync(time.sleep, SLEEP)))


def w8(n):
    async def park(n):
        wake_up, all_woken = trio.Event(), trio.Event()
        counts = {"ready": 0, "woken": 0}

        async def parked():
            counts["ready"] += 1
            await wake_up.wait()
            counts["woken"] += 1
            if counts["woken"] == n:
                all_woken.set()

        async with trio.open_nursery() as nursery:
            rss_before = rss_bytes()
            for _ in range(n):
                nursery.start_soon(parked)
            while counts["ready"] < n:
                await trio.sleep(0)
            rss_parked = rss_bytes()
            start = clock()
            wake_up.set()
            await all_woken.wait()
            wake = clock() - start
        return rss_parked - rss_before, wake, counts["woken"]

    async def main():
        await park(100)  # warm the scheduler before the baseline
        gc.collect()
        return await park(n)

    return trio.run(main)


def w9(n):
    async def main():
        lock = trio.Lock()
        acquire, release = lock.acquire, lock.release
        count = 0
        for _ in range(n):
            await acquire()
            count += 1
            release()
        return count

    return trio.run(main)


def w9c(n):
    shared = 0

    async def worker(lock):
        nonlocal shared
        for _ in range(n // 2):
            await lock.acquire()
            shared += 1
            lock.release()

    async def main():
        lock = trio.Lock()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker, lock)
            nursery.start_soon(worker, lock)

    trio.run(main)
    return shared
