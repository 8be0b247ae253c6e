"""concurrent.futures.Future.result() and .exception() park a goroutine
(docs/api.md, "Blocking calls inside goroutines"); elsewhere they are the
originals."""

import asyncio
import concurrent.futures
import math
import threading

import pytest

import gopy
from gopy import _hooks
from conftest import recv_value, run_in_goroutine, run_in_thread
from hookcheck import parks

Future = concurrent.futures.Future


def test_result_parks_until_set():
    fut = Future()
    assert parks(fut.result, lambda: fut.set_result(7)) == 7


def test_result_raises_the_very_exception():
    fut, error = Future(), KeyError("k")

    def block():
        try:
            fut.result()
        except KeyError as e:
            return e

    assert parks(block, lambda: fut.set_exception(error)) is error


def test_exception_parks_and_returns_it():
    fut, error = Future(), ValueError("v")
    assert parks(fut.exception, lambda: fut.set_exception(error)) is error


def test_cancelled_future_raises_cancelled_error():
    fut = Future()

    def block():
        try:
            fut.result()
        except concurrent.futures.CancelledError:
            return "cancelled"

    assert parks(block, fut.cancel) == "cancelled"


@pytest.mark.parametrize("method", ["result", "exception"])
def test_timeout_parks_then_times_out_and_leaves_no_callback(method):
    fut = Future()

    def block():
        try:
            getattr(fut, method)(timeout=0.1)
        except TimeoutError:
            return "timed out"

    assert parks(block) == "timed out"
    # Polling with short timeouts leaves nothing behind on the future.
    for _ in range(50):
        assert run_in_goroutine(block) == "timed out"
    assert fut._done_callbacks == []
    fut.set_result(1)
    assert run_in_goroutine(getattr(fut, method), 0.1) == (1 if method == "result" else None)


def test_done_future_answers_at_once():
    fut = Future()
    fut.set_result("v")
    assert run_in_goroutine(fut.result, 0) == "v"
    assert run_in_goroutine(fut.exception) is None


def test_many_goroutines_wait_on_one_future():
    fut, out = Future(), gopy.Chan(50)
    for _ in range(50):
        gopy.go(lambda: out.send(fut.result()))
    fut.set_result("all")
    assert [recv_value(out) for _ in range(50)] == ["all"] * 50


def test_executor_submit_result_parks():
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        fut = pool.submit(lambda: (gate.wait(30), "from the pool")[1])
        assert parks(fut.result, gate.set) == "from the pool"


def test_run_coroutine_threadsafe_result_parks():
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever)
    t.start()
    try:
        gate = asyncio.Event()

        async def coro():
            await gate.wait()
            return "from the loop"

        fut = asyncio.run_coroutine_threadsafe(coro(), loop)
        assert parks(fut.result, lambda: loop.call_soon_threadsafe(gate.set)) == "from the loop"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(30)
        loop.close()


def outcome(fn):
    try:
        return "returned", fn()
    except Exception as e:  # noqa: BLE001 - compared between callers
        return type(e), str(e)


# Calls on a future that is never done: each either raises at once or
# times out at once, in a goroutine as in a thread.
BAD_CALLS = {
    "str timeout": lambda f: f.result("x"),
    "negative timeout": lambda f: f.result(-1),
    "zero timeout": lambda f: f.exception(0),
    "NaN timeout": lambda f: f.result(math.nan),
    "huge timeout": lambda f: f.result(1e300),
    "two arguments": lambda f: f.result(1, 2),
    "unknown keyword": lambda f: f.exception(timeout_s=1),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_errors_are_the_originals(case):
    call = BAD_CALLS[case]
    in_thread = run_in_thread(outcome, lambda: call(Future()))
    assert in_thread[0] != "returned"
    assert run_in_goroutine(outcome, lambda: call(Future())) == in_thread
    assert outcome(lambda: call(Future())) == in_thread


def test_outside_goroutines_the_originals_run():
    assert Future.result is not _hooks.futures._original_result
    fut = Future()
    threading.Timer(0.05, fut.set_result, ("late",)).start()
    assert fut.result(30) == "late"
    with pytest.raises(TimeoutError):
        Future().result(0.01)


def test_uninstall_puts_the_originals_back():
    _hooks.futures.uninstall()
    try:
        assert Future.result is _hooks.futures._original_result
        assert Future.exception is _hooks.futures._original_exception
    finally:
        _hooks.futures.install()
    assert Future.result is not _hooks.futures._original_result
