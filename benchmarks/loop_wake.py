"""What it costs a coroutine to wait for work done off its event loop, and the floor.

    PYTHONPATH=. python benchmarks/loop_wake.py [--n 5000]

Each line is µs per await, the loop sleeping in its selector meanwhile, so each pays
the wake-up of the loop's thread by another thread:

- asyncio alone: a future the loop itself resolves (call_soon), no other thread: what
  any await that suspends costs, whatever wakes it;
- floor: a plain thread takes a future from a queue.SimpleQueue and resolves it with
  call_soon_threadsafe (the least any bridge from another thread costs);
- gopy: await ch.arecv() of a value a goroutine sends; await ch.asend(v) to a
  goroutine; await gopy.to_goroutine(f);
- executors: await run_in_executor(None, ch.recv) and asyncio.to_thread(ch.recv) of
  the same goroutine's values;
- batched: 1,000 tasks each awaiting ch.arecv() at once, then a goroutine sends 1,000
  values (the loop wakes once per batch: what is left is the cost of each await).

docs/decisions.md §16 discusses the figures.
"""

import argparse
import asyncio
import os
import queue
import sys
import threading
import time

if __package__ in (None, ""):  # `python benchmarks/loop_wake.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gopy  # noqa: E402


def sender(ch, n):
    for i in range(n):
        ch.send(i)


def receiver(ch, n):
    for _ in range(n):
        ch.recv()


async def per_await(n, one):
    start = time.perf_counter()
    for i in range(n):
        await one(i)
    return (time.perf_counter() - start) / n * 1e6


async def main(n):
    loop = asyncio.get_running_loop()
    rows = []

    def on_the_loop(_):
        fut = loop.create_future()
        loop.call_soon(fut.set_result, None)
        return fut

    rows.append(("asyncio alone: a future the loop resolves itself",
                 await per_await(n, on_the_loop)))

    jobs = queue.SimpleQueue()

    def resolver():
        while (fut := jobs.get()) is not None:
            loop.call_soon_threadsafe(fut.set_result, None)

    t = threading.Thread(target=resolver)
    t.start()

    def via_thread(_):
        fut = loop.create_future()
        jobs.put(fut)
        return fut

    rows.append(("floor: thread + call_soon_threadsafe", await per_await(n, via_thread)))
    jobs.put(None)
    t.join()

    ch = gopy.Chan()
    gopy.go(sender, ch, n)
    rows.append(("gopy: await ch.arecv(), a goroutine sends", await per_await(
        n, lambda _: ch.arecv())))
    gopy.go(receiver, ch, n)
    rows.append(("gopy: await ch.asend(v), a goroutine receives", await per_await(
        n, ch.asend)))
    rows.append(("gopy: await to_goroutine(f)", await per_await(
        n, lambda i: gopy.to_goroutine(int, i))))
    gopy.go(sender, ch, n)
    rows.append(("run_in_executor(None, ch.recv)", await per_await(
        n, lambda _: loop.run_in_executor(None, ch.recv))))
    gopy.go(sender, ch, n)
    rows.append(("asyncio.to_thread(ch.recv)", await per_await(
        n, lambda _: asyncio.to_thread(ch.recv))))

    k = 1000
    tasks = [asyncio.ensure_future(ch.arecv()) for _ in range(k)]
    await asyncio.sleep(0.05)  # every one parked
    start = time.perf_counter()
    gopy.go(sender, ch, k)
    assert sorted(await asyncio.gather(*tasks)) == list(range(k))
    rows.append((f"batched: {k:,} awaits pending, then a goroutine sends {k:,}",
                 (time.perf_counter() - start) / k * 1e6))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    for name, us in asyncio.run(main(args.n)):
        print(f"{us:8.1f} µs  {name}")
