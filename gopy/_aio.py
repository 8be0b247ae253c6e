"""asyncio: channel operations, select and goroutines awaited from a coroutine.

An operation that can complete at once does so on the loop's thread
(``select(..., default=True)``).  Otherwise a goroutine (the bridge) makes it
with a select that has one more case, the abort channel, and posts the
outcome to the loop's inbox; the coroutine awaits a waiter future that the
inbox resolves.  The loop thread never blocks.

Cancellation loses nothing.  The waiter refuses ``cancel()`` (returns False)
and closes the abort channel instead, so the task (which then sets
``_must_cancel``) is woken only once the bridge's select has ended, one way
or the other: either it took the abort case, and nothing happened (the
CancelledError goes on), or the operation completed first, and its result
is returned: a received value is never dropped, whatever the timing.  That
is what ``asyncio.wait_for`` does when its inner task finishes as the
timeout strikes.

The inbox wakes its loop once per batch (``call_soon_threadsafe`` when the
first outcome arrives), never when it holds nothing.
"""

import functools
import threading
import weakref

from ._gopy import Chan, Recv, Send, go, select

__all__ = ["aselect", "to_goroutine"]

_RESULT, _ERROR, _ABORTED = 0, 1, 2
_ABORT_OUTCOME = (_ABORTED, None)


def _asyncio():
    # Imported on first use: `import gopy` does not pay for asyncio, and a
    # coroutine awaiting here runs on a loop, so asyncio is loaded by then.
    import asyncio
    return asyncio


class _Inbox:
    """Outcomes posted by goroutines for one event loop, delivered on it in
    batches."""

    __slots__ = ("_loop", "_lock", "_items")

    def __init__(self, loop):
        self._loop = loop
        self._lock = threading.Lock()
        self._items = None  # None: no delivery scheduled

    def post(self, deliver, arg):
        """Have deliver(arg) run on the loop (from any thread); nothing runs
        if the loop is closed."""
        with self._lock:
            items = self._items
            if items is not None:
                items.append((deliver, arg))
                return
            self._items = [(deliver, arg)]
        try:
            self._loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed
            with self._lock:
                self._items = None

    def _deliver(self):
        with self._lock:
            items, self._items = self._items, None
        for deliver, arg in items:
            deliver(arg)


_inboxes = weakref.WeakKeyDictionary()  # loop -> _Inbox (the GIL or _inboxes_lock)
_inboxes_lock = threading.Lock()


def _inbox(loop):
    inbox = _inboxes.get(loop)
    if inbox is None:
        with _inboxes_lock:
            inbox = _inboxes.get(loop)
            if inbox is None:
                inbox = _inboxes[loop] = _Inbox(loop)
    return inbox


@functools.cache
def _waiter_type():
    asyncio = _asyncio()

    class _Waiter(asyncio.Future):
        """A future the bridge resolves with its outcome; cancel() asks the
        bridge to abort instead of cancelling (see the module's docstring)."""

        def cancel(self, msg=None):
            abort = self._abort
            if abort is not None and not self.done():
                self._abort = None
                abort.close()
            return False

        def __del__(self):
            # Its task was dropped unfinished (a loop closed with it
            # pending): the bridge must not go on to take a value.
            abort = getattr(self, "_abort", None)
            if abort is not None:
                self._abort = None
                abort.close()

        def _resolve(self, outcome):
            if not self.done():
                self._abort = None
                self.set_result(outcome)

    return _Waiter


def _bridge(cases, abort, inbox, waiter_ref):
    """The goroutine that makes a select for a coroutine (see the module)."""
    try:
        i, value, ok = select(*cases, Recv(abort))
        outcome = _ABORT_OUTCOME if i == len(cases) else (_RESULT, (i, value, ok))
    except BaseException as exc:  # a Send on a closed channel: the coroutine's to raise
        outcome = (_ERROR, exc)
    waiter = waiter_ref()
    if waiter is not None:
        inbox.post(waiter._resolve, outcome)


async def _wait(cases):
    """select(*cases), parked in a bridge goroutine: (i, value, ok)."""
    asyncio = _asyncio()
    loop = asyncio.get_running_loop()
    waiter = _waiter_type()(loop=loop)
    waiter._abort = abort = Chan()
    go(_bridge, cases, abort, _inbox(loop), weakref.ref(waiter))
    cancelled = None
    while True:
        try:
            kind, value = await waiter
            break
        except asyncio.CancelledError as exc:
            cancelled = exc
            if waiter.done():
                kind, value = waiter.result()
                break
            # Thrown in before the bridge answered (not by Task.cancel,
            # which waits for it): abort, and wait for the answer.
            waiter.cancel()
    if kind == _ABORTED:
        raise cancelled
    if kind == _ERROR:
        raise value
    return value  # completed before the cancellation, if any: delivered


async def aselect(*cases, default=False):
    """await aselect(*cases, default=False): select from a coroutine."""
    result = select(*cases, default=True)
    if result[0] != -1 or default:
        return result
    return await _wait(cases)


async def arecv_ok(chan):
    case = Recv(chan)
    i, value, ok = select(case, default=True)
    if i == -1:
        i, value, ok = await _wait((case,))
    return value, ok


async def arecv(chan):
    return (await arecv_ok(chan))[0]


async def asend(chan, value):
    case = Send(chan, value)
    if select(case, default=True)[0] == -1:
        await _wait((case,))


class _ChanAsyncIterator:
    """``async for v in ch``: arecv_ok until the channel is closed and drained."""

    __slots__ = ("_chan",)

    def __init__(self, chan):
        self._chan = chan

    def __aiter__(self):
        return self

    async def __anext__(self):
        value, ok = await arecv_ok(self._chan)
        if not ok:
            raise StopAsyncIteration
        return value


def chan_aiter(chan):
    return _ChanAsyncIterator(chan)


async def to_goroutine(fn, /, *args, **kwargs):
    """await to_goroutine(fn, *args, **kwargs): fn's value, or its exception
    (the very object), from a new goroutine.  Cancelling the awaiting task
    does not stop the goroutine."""
    if not callable(fn):
        raise TypeError(f"to_goroutine: {type(fn).__name__!r} object is not callable")
    loop = _asyncio().get_running_loop()
    future = loop.create_future()
    inbox = _inbox(loop)

    def settle(outcome):
        if future.done():  # its task was cancelled: nobody waits for it
            return
        kind, value = outcome
        if kind == _RESULT:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run():
        try:
            outcome = (_RESULT, fn(*args, **kwargs))
        except StopIteration as exc:  # cannot travel through a coroutine
            err = RuntimeError("to_goroutine: the function raised StopIteration")
            err.__cause__ = exc
            outcome = (_ERROR, err)
        except BaseException as exc:
            outcome = (_ERROR, exc)
        inbox.post(settle, outcome)

    go(run)
    return await future

