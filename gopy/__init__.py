"""gopy: Go's concurrency runtime, written in C, for Python.

Goroutines (go), channels (Chan), select, timers, the sync types, atomics,
context and errgroup, with Go's semantics and a Pythonic surface.  See
README.md for the rules a user must know (goroutines are bound to their
first thread; threading locks across gopy operations).
"""

import atexit as _atexit
import os as _os
import signal as _signal
import sys as _sys
import threading as _threading
import traceback as _traceback

try:
    from . import _gopy
except ImportError:
    import importlib.machinery
    import importlib.util

    if importlib.util.find_spec(f"{__name__}._gopy") is not None:
        raise  # the extension is there but failed to load: its own error says why
    # Most often a source checkout shadowing the installed gopy; Python's own
    # error ("cannot import name '_gopy' ... circular import") says neither.
    _here = _os.path.dirname(_os.path.abspath(__file__))
    _root = _os.path.dirname(_here)
    raise ImportError(
        f"gopy was imported from {_here}, where its C extension is not built for this "
        f"Python (no _gopy{importlib.machinery.EXTENSION_SUFFIXES[0]} there). If that is "
        f"a source checkout, build the extension in place (pip install -e {_root}, or "
        f"python setup.py build_ext --inplace in {_root}), or run from another "
        f"directory so that the installed gopy is imported.",
        name="gopy._gopy", path=_here) from None

from . import _hooks, atomic, context, errgroup, runtime
from ._aio import aselect, to_goroutine
from ._gopy import (
    Chan,
    ClosedChannelError,
    Cond,
    DeadlockError,
    Map,
    Mutex,
    Once,
    Pool,
    Recv,
    RecvChan,
    RWMutex,
    Send,
    SendChan,
    Ticker,
    Timer,
    WaitGroup,
    after,
    after_func,
    go,
    offload,
    once_func,
    once_value,
    select,
    sleep,
    tick,
)

__all__ = [
    "Chan", "SendChan", "RecvChan", "Recv", "Send", "select",
    "go", "go_c", "offload", "excepthook", "get_include", "aselect", "to_goroutine",
    "sleep", "after", "tick", "Timer", "Ticker", "after_func",
    "ClosedChannelError", "DeadlockError",
    "Mutex", "RWMutex", "WaitGroup", "Once", "once_func", "once_value", "Cond", "Pool", "Map",
]
__version__ = "0.1.0"


def _default_excepthook(exc, goroutine_id):
    """Print an exception that escaped goroutine `goroutine_id` to stderr
    (its note says where the goroutine was created)."""
    # One write: goroutines failing on other threads do not interleave.
    _sys.stderr.write("".join([f"Exception in goroutine {goroutine_id}:\n",
                               *_traceback.format_exception(exc)]))


#: Called as excepthook(exc, goroutine_id) for an exception escaping a
#: goroutine; looked up at that moment, so assigning it replaces it.
excepthook = _default_excepthook


def _address(obj, what):
    """An int address from an int, a ctypes function pointer or pointer."""
    if obj is None:
        return None
    if isinstance(obj, int):
        if obj < 0 or obj >= 1 << 64:
            raise ValueError(f"go_c: {what} address {obj} is out of range")
        return obj
    # ctypes.cast would take these too, giving the address of a temporary
    # buffer: a dangling pointer by the time the goroutine runs.
    if isinstance(obj, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"go_c: {what} must be an int address or a ctypes pointer, "
                        f"not {type(obj).__name__}")
    import ctypes

    try:
        return ctypes.cast(obj, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        raise TypeError(f"go_c: {what} must be an int address or a ctypes pointer, "
                        f"not {type(obj).__name__}") from None


def go_c(fn, arg=None):
    """Run the C function ``void fn(void *arg)`` in a new goroutine, without
    the GIL.  fn is a ctypes function pointer or an int address; arg an
    int, a ctypes pointer or None.  fn and arg are kept alive until fn
    returns."""
    address = _address(fn, "fn")
    if not address:
        raise ValueError("go_c: fn is a null pointer")
    _gopy._go_c(address, _address(arg, "arg"), (fn, arg))


def get_include():
    """The folder holding gopy.h, the C API header."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    shipped = _os.path.join(here, "include")
    if _os.path.exists(_os.path.join(shipped, "gopy.h")):
        return shipped
    # An editable install runs from the source tree.
    return _os.path.join(_os.path.dirname(here), "include")


def _dump_and_exit(signum, frame):
    """GOPY_TRACEBACK: on SIGQUIT, as Go does, print every goroutine's
    stack and exit with status 2."""
    _sys.stderr.write(f"SIGQUIT: quit\n\n{runtime.stack()}")
    _sys.stderr.flush()
    _os._exit(2)


if _os.environ.get("GOPY_TRACEBACK") and hasattr(_signal, "SIGQUIT") \
        and _threading.current_thread() is _threading.main_thread():
    _signal.signal(_signal.SIGQUIT, _dump_and_exit)

# Interpreter exit: stop running Python goroutines before finalisation, so
# no worker touches a dying interpreter.  An atexit hook, not threading's
# (which concurrent.futures uses): those run before the non-daemon threads
# are joined, and such a thread may still be waiting on goroutines.
_atexit.register(_gopy._shutdown)
# A fork child gets a fresh runtime with no goroutines.
_os.register_at_fork(after_in_child=_gopy._after_fork_child)

# The standard library's blocking calls park goroutines (gopy/_hooks).
_hooks.install_unless_disabled()


# Threads of frameworks that host user code (Jupyter, IPython, debuggers):
# they never take part in a user's channel traffic.
_FRAMEWORK_THREAD_MODULES = ("ipykernel.", "IPython.", "jupyter_client.", "zmq.",
                             "tornado.", "debugpy.", "_pydevd", "pydevd")


def _others_can_act(blocked, runtime_threads):
    """Deadlock check (called by the runtime with the GIL): could a thread
    other than the caller still end its wait?  Threads blocked in gopy and
    the runtime's own do not count, nor framework threads."""
    me = _threading.get_ident()
    for t in _threading.enumerate():
        if t.ident == me or t.ident in blocked or t.ident in runtime_threads:
            continue
        # A framework's own Thread subclass, or a plain Thread running one of
        # its functions (ipykernel's IOPub thread and output-pipe watchers).
        code = (type(t), t.run, getattr(t, "_target", None))
        if any((getattr(c, "__module__", None) or "").startswith(_FRAMEWORK_THREAD_MODULES)
               for c in code):
            continue
        if t.is_alive():
            return True
    return False
