"""concurrent.futures: waiting on a Future parks the goroutine.

- Future.result(timeout) and Future.exception(timeout) (and so
  executor.submit(...).result() and
  asyncio.run_coroutine_threadsafe(...).result()): inside a goroutine, a
  Future not done yet gets a done-callback that wakes the goroutine
  through a gopy channel, and the goroutine parks until then or until the
  timeout passes; the original then answers without waiting (the value,
  the very exception, CancelledError, or TimeoutError).  A callback left
  by a timeout is taken off the Future again.

Not covered: concurrent.futures.wait and as_completed (they wait on a
threading.Event of their own), Future subclasses that override result.
"""

import concurrent.futures
import math
import threading

from .. import _gopy
from ._patch import Patches

_in_goroutine = _gopy.in_goroutine
_patches = Patches()
_Future = concurrent.futures.Future

_original_result = _Future.result
_original_exception = _Future.exception


def _park_until_done(future, timeout):
    """Park the calling goroutine until future is done or timeout seconds
    have passed (None: no limit)."""
    if future.done():
        return
    woken = _gopy.Chan(1)

    def wake(_future):
        # On whichever thread finishes the future: never blocks.
        _gopy.select(_gopy.Send(woken, None), default=True)

    future.add_done_callback(wake)  # runs wake at once if done meanwhile
    if timeout is None:
        woken.recv()
        return
    index, _, _ = _gopy.select(_gopy.Recv(woken), _gopy.Recv(_gopy.after(max(timeout, 0))))
    if index == 1:
        # Timed out: do not leave a callback behind on a future polled
        # with short timeouts again and again.  Once the future is done its
        # callbacks run without the lock: the list is left alone then.
        with future._condition:
            if not future.done():
                future._done_callbacks.remove(wake)


_ODD = object()  # arguments the original should judge (it raises at once)


def _timeout_of(args, kwargs):
    """The timeout (seconds, or None: no limit) of a result()/exception()
    call, or _ODD."""
    if len(args) + len(kwargs) > 1 or (kwargs and "timeout" not in kwargs):
        return _ODD
    timeout = args[0] if args else kwargs.get("timeout")
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)) or timeout != timeout:  # NaN
        return _ODD
    if timeout > threading.TIMEOUT_MAX:
        return None if timeout == math.inf else _ODD
    return timeout


def _parking(original):
    """original (Future.result or Future.exception), parking a goroutine
    until the future is done or the timeout passes."""
    def wait(self, *args, **kwargs):
        if _in_goroutine() and not self.done():
            timeout = _timeout_of(args, kwargs)
            if timeout is not _ODD:
                _park_until_done(self, timeout)
                return original(self, 0)  # done, or TimeoutError
        return original(self, *args, **kwargs)

    wait.__name__, wait.__qualname__, wait.__doc__ = \
        original.__name__, original.__qualname__, original.__doc__
    return wait


_result = _parking(_original_result)
_exception = _parking(_original_exception)


def install():
    _patches.replace(_Future, "result", _result)
    _patches.replace(_Future, "exception", _exception)


def uninstall():
    _patches.undo()
