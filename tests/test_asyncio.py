"""The asyncio surface (gopy/_aio.py): channel operations, aselect and
to_goroutine awaited from coroutines, never blocking the loop, and
cancellation that loses nothing."""

import asyncio
import random
import threading
import time

import pytest

import gopy
from conftest import recv_value


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_arecv_takes_a_value_a_goroutine_sends_later():
    ch = gopy.Chan()

    async def main():
        gopy.go(lambda: (time.sleep(0.01), ch.send("late")))
        return await ch.arecv()

    assert run(main()) == "late"


def test_buffered_values_and_close_without_waiting():
    ch = gopy.Chan(3)
    ch.send(1)
    ch.send(2)
    ch.close()

    async def main():
        return [await ch.arecv_ok(), await ch.arecv_ok(), await ch.arecv_ok(),
                await ch.arecv()]

    assert run(main()) == [(1, True), (2, True), (None, False), None]


def test_asend_is_taken_by_a_goroutine():
    ch, got = gopy.Chan(), gopy.Chan(1)
    gopy.go(lambda: got.send(ch.recv()))

    async def main():
        await ch.asend("hello")

    run(main())
    assert recv_value(got) == "hello"


def test_asend_on_a_closed_channel_raises():
    ch = gopy.Chan()
    ch.close()
    with pytest.raises(gopy.ClosedChannelError):
        run(ch.asend(1))


def test_asend_wakes_with_an_error_when_the_channel_closes_meanwhile():
    ch = gopy.Chan()

    async def main():
        gopy.go(lambda: (time.sleep(0.02), ch.close()))
        await ch.asend(1)

    with pytest.raises(gopy.ClosedChannelError):
        run(main())


def test_async_for_reads_until_closed_and_drained():
    ch = gopy.Chan(2)

    def produce():
        for i in range(100):
            ch.send(i)
        ch.close()

    async def main():
        gopy.go(produce)
        return [v async for v in ch]

    assert run(main()) == list(range(100))


def test_directional_views_have_their_halves():
    ch = gopy.Chan(1)
    send, recv = ch.send_only(), ch.recv_only()
    assert not hasattr(send, "arecv") and not hasattr(recv, "asend")

    async def main():
        await send.asend(7)
        first = await recv.arecv()
        await send.asend(8)
        send.close()
        return first, [v async for v in recv]

    assert run(main()) == (7, [8])


def test_aselect_picks_the_ready_case_and_waits_otherwise():
    a, b = gopy.Chan(), gopy.Chan(1)

    async def main():
        b.send("now")
        first = await gopy.aselect(gopy.Recv(a), gopy.Recv(b))
        gopy.go(lambda: (time.sleep(0.01), a.send("later")))
        second = await gopy.aselect(gopy.Recv(a), gopy.Recv(b))
        third = await gopy.aselect(gopy.Recv(a), default=True)
        return first, second, third

    assert run(main()) == ((1, "now", True), (0, "later", True), (-1, None, False))


def test_aselect_send_case_and_bad_cases():
    ch = gopy.Chan()
    got = gopy.Chan(1)
    gopy.go(lambda: got.send(ch.recv()))
    assert run(gopy.aselect(gopy.Send(ch, 5))) == (0, None, True)
    assert recv_value(got) == 5
    with pytest.raises(TypeError):
        run(gopy.aselect(ch))
    with pytest.raises(TypeError):
        run(gopy.aselect(gopy.Recv(ch), "not a case"))


def test_to_goroutine_returns_the_value_and_raises_the_very_exception():
    err = KeyError("k")

    def fails():
        raise err

    async def main():
        value = await gopy.to_goroutine(lambda a, *, b: a * b, 6, b=7)
        with pytest.raises(KeyError) as info:
            await gopy.to_goroutine(fails)
        return value, info.value

    value, raised = run(main())
    assert value == 42 and raised is err
    with pytest.raises(TypeError):
        run(gopy.to_goroutine(3))


def test_to_goroutine_runs_in_a_goroutine_and_cancelling_does_not_stop_it():
    release, done = gopy.Chan(), gopy.Chan(1)

    def work():
        release.recv()
        done.send(gopy._gopy.in_goroutine())
        return "unseen"

    async def main():
        task = asyncio.ensure_future(gopy.to_goroutine(work))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    release.send(None)
    # The goroutine went on after its task was cancelled.
    assert recv_value(done) is True


def test_no_running_loop_is_a_runtime_error():
    ch = gopy.Chan()
    coro = ch.arecv()
    with pytest.raises(RuntimeError):
        coro.send(None)  # driven by hand, not by a loop
    coro.close()


def test_the_loop_keeps_running_while_an_await_waits():
    ch = gopy.Chan()
    ticks = []

    async def ticker():
        for i in range(5):
            ticks.append(i)
            await asyncio.sleep(0.005)
        ch.close()

    async def main():
        t = asyncio.ensure_future(ticker())
        value = await ch.arecv_ok()
        await t
        return value

    assert run(main()) == (None, False)
    assert ticks == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("op", ["arecv", "asend", "aselect"])
def test_cancelled_while_waiting_takes_or_delivers_nothing(op):
    ch = gopy.Chan()

    async def main():
        if op == "arecv":
            waiting = ch.arecv()
        elif op == "asend":
            waiting = ch.asend("never")
        else:
            waiting = gopy.aselect(gopy.Recv(ch), gopy.Send(ch, "never"))
        task = asyncio.ensure_future(waiting)
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Nothing waits on the channel any more: a non-blocking send and
        # receive both find no partner.
        assert gopy.select(gopy.Send(ch, 1), default=True)[0] == -1
        assert gopy.select(gopy.Recv(ch), default=True)[0] == -1

    run(main())


def test_wait_for_timeouts_lose_no_value():
    # A goroutine sends 0..n-1; the loop receives with tight timeouts that
    # often strike as a value arrives.  Every value is either received by
    # an arecv that returned it, or still there for the next one: the
    # received sequence has no gap and no repeat.
    n = 300
    ch = gopy.Chan()

    def produce():
        for i in range(n):
            ch.send(i)
            if i % 3 == 0:
                time.sleep(random.random() * 0.0005)
        ch.close()

    async def main():
        gopy.go(produce)
        got, timeouts = [], 0
        while True:
            try:
                value, ok = await asyncio.wait_for(ch.arecv_ok(), random.random() * 0.0004)
            except asyncio.TimeoutError:
                timeouts += 1
                continue
            if not ok:
                return got, timeouts
            got.append(value)

    got, timeouts = run(main(), timeout=120)
    assert got == list(range(n))
    assert timeouts > 0


def test_cancellation_at_random_moments_loses_nothing():
    # Receivers are cancelled at random moments while a goroutine sends
    # numbers; each number reaches exactly one receiver that returned it.
    n = 400
    ch = gopy.Chan()

    def produce():
        for i in range(n):
            ch.send(i)
        ch.close()

    async def main():
        gopy.go(produce)
        got, closed, cancelled = [], [], 0

        async def receive():
            value, ok = await ch.arecv_ok()
            (got if ok else closed).append(value)

        while not closed:
            tasks = [asyncio.ensure_future(receive()) for _ in range(4)]
            await asyncio.sleep(random.random() * 0.0003)
            for t in tasks:
                if random.random() < 0.7:
                    t.cancel()
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                cancelled += isinstance(outcome, asyncio.CancelledError)
        return got, cancelled

    got, cancelled = run(main(), timeout=120)
    assert sorted(got) == list(range(n))
    assert cancelled > 0


def test_asends_cancelled_at_random_moments_deliver_only_what_they_say():
    n = 300
    ch = gopy.Chan()
    received = []
    stop, stopped = gopy.Chan(), gopy.Chan(1)

    def consume():
        while True:
            i, value, ok = gopy.select(gopy.Recv(ch), gopy.Recv(stop))
            if i == 1:
                stopped.send(True)
                return
            received.append(value)
            if value % 5 == 0:
                time.sleep(0.0002)

    async def main():
        gopy.go(consume)
        delivered = []
        for i in range(n):
            task = asyncio.ensure_future(ch.asend(i))
            await asyncio.sleep(random.random() * 0.0002)
            if random.random() < 0.5:
                task.cancel()
            try:
                await task
                delivered.append(i)
            except asyncio.CancelledError:
                pass
        return delivered

    delivered = run(main(), timeout=120)
    stop.close()
    assert recv_value(stopped) is True
    assert received == delivered


def test_two_loops_in_two_threads():
    a, b = gopy.Chan(), gopy.Chan()
    results = {}

    def loop_thread(name, recv_from, send_to):
        async def main():
            total = 0
            for i in range(200):
                await send_to.asend(i)
                total += await recv_from.arecv()
            return total
        results[name] = asyncio.run(main())

    x_out, y_out = gopy.Chan(), gopy.Chan()

    def forward(src, dst):
        for v in src:
            dst.send(v * 2)

    gopy.go(forward, x_out, a)
    gopy.go(forward, y_out, b)
    threads = [threading.Thread(target=loop_thread, args=("x", a, x_out)),
               threading.Thread(target=loop_thread, args=("y", b, y_out))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {"x": 2 * sum(range(200)), "y": 2 * sum(range(200))}
    x_out.close()
    y_out.close()


def test_asyncio_run_with_awaits_pending_at_the_end_takes_nothing():
    ch = gopy.Chan()

    async def main():
        for _ in range(10):
            asyncio.ensure_future(ch.arecv())
        await asyncio.sleep(0.01)
        # main returns: asyncio.run cancels the ten pending receives

    asyncio.run(main())
    time.sleep(0.05)
    assert gopy.select(gopy.Send(ch, "anyone?"), default=True)[0] == -1


def test_a_closed_loop_with_awaits_pending_takes_nothing_once_they_are_freed():
    import gc

    ch = gopy.Chan()
    loop = asyncio.new_event_loop()
    tasks = [loop.create_task(ch.arecv()) for _ in range(3)]
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    del tasks
    gc.collect()
    time.sleep(0.05)
    assert gopy.select(gopy.Send(ch, "anyone?"), default=True)[0] == -1


def test_awaiting_on_a_closed_loop_raises_and_takes_nothing():
    ch = gopy.Chan()
    loop = asyncio.new_event_loop()
    loop.close()
    coro = ch.arecv()
    with pytest.raises(RuntimeError):
        loop.run_until_complete(coro)
    coro.close()
    assert gopy.select(gopy.Send(ch, "anyone?"), default=True)[0] == -1
