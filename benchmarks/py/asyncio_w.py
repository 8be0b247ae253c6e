"""asyncio: coroutines as goroutines, on one event loop in one OS thread.

Each body is one ``asyncio.run``; its few hundred microseconds of set-up are part of
the figure, as they would be for a user.
"""

import asyncio
import gc
import sys
import time

from benchmarks.workloads import SLEEP, clock, rss_bytes

PEER = "asyncio"
NO_EQUIVALENT = {
    "W4": "no select: asyncio.wait(FIRST_COMPLETED) over queue.get() tasks is not one "
          "(losing cases may still take items)",
}
NOTES = {
    "W2": "Queue(1): asyncio has no unbuffered queue",
    "W3": "Queue(1024) closed by a sentinel (Queue.shutdown is 3.13+)",
    "W5": "asyncio.to_thread (default executor, min(32, cpus+4) threads)",
    "W7": "asyncio.to_thread: a plain time.sleep would block the loop, 200 x 50 ms = 10 s",
    "W8": "tasks parked on one asyncio.Event, woken by set() (no channel close)",
    "W9c": "cooperative tasks: acquire never yields, so the two never actually contend",
}
CAPS = {}
_DONE = object()


def version() -> str:
    return sys.version.split()[0]


def w1(n):
    out = [None] * n

    async def task(i):
        out[i] = i

    async def main():
        await asyncio.gather(*[task(i) for i in range(n)])

    asyncio.run(main())
    return out


def w2(n):
    async def server(ping, pong):
        for _ in range(n):
            await pong.put(await ping.get() + 1)

    async def client(ping, pong):
        v = 0
        for _ in range(n):
            await ping.put(v + 1)
            v = await pong.get()
        return v

    async def main():
        ping, pong = asyncio.Queue(1), asyncio.Queue(1)
        _, v = await asyncio.gather(server(ping, pong), client(ping, pong))
        return v

    return asyncio.run(main())


def w3(n):
    async def producer(q):
        for i in range(n):
            await q.put(i)
        await q.put(_DONE)

    async def consumer(q):
        received = []
        while (v := await q.get()) is not _DONE:
            received.append(v)
        return received

    async def main():
        q = asyncio.Queue(1024)
        _, received = await asyncio.gather(producer(q), consumer(q))
        return received

    return asyncio.run(main())


def w5(arg):
    job, n = arg

    async def main():
        return await asyncio.gather(*[asyncio.to_thread(job, i) for i in range(n)])

    return asyncio.run(main())


def _count_finished(n, work):
    finished = 0

    async def task():
        nonlocal finished
        await work()
        finished += 1

    async def main():
        await asyncio.gather(*[task() for _ in range(n)])

    asyncio.run(main())
    return finished


def w6(n):
    return _count_finished(n, lambda: asyncio.sleep(SLEEP))


def w7(n):
    return _count_finished(n, lambda: asyncio.to_thread(time.sleep, SLEEP))


def w8(n):
    async def park(n):
        wake_up, all_woken = asyncio.Event(), asyncio.Event()
        ready = woken = 0

        async def parked():
            nonlocal ready, woken
            ready += 1
            await wake_up.wait()
            woken += 1
            if woken == n:
                all_woken.set()

        rss_before = rss_bytes()
        tasks = [asyncio.create_task(parked()) for _ in range(n)]
        while ready < n:
            await asyncio.sleep(0)
        rss_parked = rss_bytes()
        start = clock()
        wake_up.set()
        await all_woken.wait()
        wake = clock() - start
        del tasks
        return rss_parked - rss_before, wake, woken

    async def main():
        await park(100)  # warm the loop before the baseline
        gc.collect()
        return await park(n)

    return asyncio.run(main())


def w9(n):
    async def main():
        lock = asyncio.Lock()
        acquire, release = lock.acquire, lock.release
        count = 0
        for _ in range(n):
            await acquire()
            count += 1
            release()
        return count

    return asyncio.run(main())


def w9c(n):
    shared = 0

    async def worker(lock):
        nonlocal shared
        for _ in range(n // 2):
            await lock.acquire()
            shared += 1
            lock.release()

    async def main():
        lock = asyncio.Lock()
        await asyncio.gather(worker(lock), worker(lock))

    asyncio.run(main())
    return shared
