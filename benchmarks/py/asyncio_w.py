"""asyncio: coroutines as goroutines, on one event loop in one OS thread.

Each body is one ``asyncio.run``; its few hundred microseconds of set-up are part of
the figure, as they would be for a user.
"""

import asyncio
import gc
import sys
import time

from ..workloads import (POOL_SETTLE, SLEEP, TICK, clock, loop_thread_ping_pong, rss_bytes,
                         spin_for)

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
    "W10": "worker tasks on an asyncio.Queue(1), each job in asyncio.to_thread",
    "W11": "asyncio.sleep; create_subprocess_exec; urllib's GET over asyncio streams",
    "W12": "urllib's GET request over asyncio streams (urllib cannot run in a task)",
    "W13": "asyncio.open_connection streams",
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


async def _http_get(spec, i):
    """GET over raw asyncio streams, the request urllib sends: the server closes after
    the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", spec.port)
    try:
        writer.write(spec.request(i))
        answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise ConnectionError(f"HTTP status {status.decode()} for {spec.path(i)}")
    return body


def _job(spec):
    """The job of a PoolSpec as a coroutine function."""
    async def call(i):
        if spec.kind == "sha256":
            return await asyncio.to_thread(spec.call, i)
        if spec.kind == "sleep":
            await asyncio.sleep(spec.delay)
            return i
        if spec.kind == "subprocess":
            proc = await asyncio.create_subprocess_exec(*spec.argv)
            return await proc.wait()
        return await _http_get(spec, i)
    return call


def _pool(spec):
    job = _job(spec)

    async def main():
        jobs = asyncio.Queue(1)
        results = [None] * spec.n
        ready = 0

        async def worker():
            nonlocal ready
            ready += 1
            while (i := await jobs.get()) is not _DONE:
                results[i] = await job(i)

        workers = [asyncio.create_task(worker()) for _ in range(spec.workers)]
        while ready < spec.workers:
            await asyncio.sleep(0)
        await asyncio.sleep(POOL_SETTLE)
        start = clock()
        for i in range(spec.n):
            await jobs.put(i)
        for _ in workers:
            await jobs.put(_DONE)
        await asyncio.gather(*workers)
        return results, clock() - start

    return asyncio.run(main())


w10 = w11 = w12 = _pool


def w13(spec):
    async def main():
        received = [None] * spec.n
        connected = 0  # clients past their connect, connected or not
        all_connected = asyncio.Event()

        async def client(i):
            nonlocal connected
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", spec.port)
            finally:  # a failed client must not keep the others waiting
                connected += 1
                if connected == spec.n:
                    all_connected.set()
            await all_connected.wait()
            try:
                chunks = []
                for t in range(spec.trips):
                    message = spec.message(i, t)
                    writer.write(message)
                    chunks.append(await reader.readexactly(len(message)))
                received[i] = b"".join(chunks)
            finally:
                writer.close()

        await asyncio.gather(*[client(i) for i in range(spec.n)])
        return received

    return asyncio.run(main())


def w14(secs):
    async def count(stop):
        n = 0
        loop = asyncio.get_running_loop()
        due = loop.time() + TICK
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            if stop.is_set():
                return n
            n += 1
            due += TICK * max(1, int((loop.time() - due) // TICK) + 1)

    async def spin(stop):
        await asyncio.sleep(0)  # the counter is waiting by now
        n = spin_for(secs)
        stop.set()
        return n

    async def main():
        stop = asyncio.Event()
        return tuple(await asyncio.gather(count(stop), spin(stop)))

    return asyncio.run(main())


def w16(n):
    def f(i):
        return 2 * i

    async def main():
        loop = asyncio.get_running_loop()
        return [await loop.run_in_executor(None, f, i) for i in range(n)]

    return asyncio.run(main())


def w17(n):
    return loop_thread_ping_pong(
        n, lambda get: asyncio.get_running_loop().run_in_executor(None, get))
