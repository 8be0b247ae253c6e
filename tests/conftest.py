"""Shared helpers for the gopy test suite.

Every test gets a default hang guard (pytest-timeout) unless it sets its
own; timing is never asserted except as generous bounds.
"""

import gc
import os
import signal
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time

import pytest

import gopy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A background job of a non-interactive shell starts with SIGINT ignored;
# Python then leaves it so, and so would every interpreter a test starts:
# the Ctrl-C tests need it to mean KeyboardInterrupt, as in a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

DEFAULT_TIMEOUT = 120  # seconds: only to turn a hang into a failure

# A free-threaded build of CPython, and one running with the GIL off:
# goroutines run Python in parallel.
FT_BUILD = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()
# CPython 3.13t makes every class immortal once a second thread has started
# (gh-117783, until 3.14's collector learned deferred references): a cycle
# through a class is never collected there.
CLASSES_IMMORTAL = FT_BUILD and sys.version_info[:2] == (3, 13)
# Under AddressSanitizer (scripts/asan_python.sh preloads its runtime):
# every call is several times slower, so bounds that count what slowness
# brings (threads recruited by sysmon's patience) are wider.
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def pytest_configure(config):
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): hang guard (pytest-timeout)")


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("timeout"):
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


# ---- waiting without timing assertions ---------------------------------------

def wait_until(pred, timeout=30.0, interval=0.005):
    """Poll pred() until true; False after `timeout` seconds (a hang guard,
    not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def join_all(threads, timeout=60):
    """Join threads, failing the test if one is stuck."""
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), f"{t.name} is stuck"


def recv_timeout(ch, timeout=30.0):
    """Receive from ch, failing the test instead of hanging forever."""
    i, v, ok = gopy.select(gopy.Recv(ch), gopy.Recv(gopy.after(timeout)))
    if i != 0:
        pytest.fail(f"nothing received on {ch!r} within {timeout} s")
    return v, ok


def recv_value(ch, timeout=30.0):
    v, ok = recv_timeout(ch, timeout)
    assert ok, "channel closed unexpectedly"
    return v


def nothing_ready(ch):
    """True if a receive from ch would block right now."""
    return gopy.select(gopy.Recv(ch), default=True) == (-1, None, False)


def run_in_goroutine(fn, *args, timeout=30.0):
    """Run fn(*args) in a goroutine and return its result (or re-raise its
    exception) in the caller."""
    out = gopy.Chan(1)

    def body():
        try:
            out.send((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out.send((False, e))

    gopy.go(body)
    ok, v = recv_value(out, timeout)
    if not ok:
        raise v
    return v


def run_in_thread(fn, *args, timeout=30.0):
    """Run fn(*args) in a threading.Thread and return its result."""
    box = {}

    def body():
        try:
            box["v"] = fn(*args)
        except BaseException as e:  # noqa: BLE001
            box["e"] = e

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "thread did not finish"
    if "e" in box:
        raise box["e"]
    return box["v"]


def goroutines_waiting_on(reason):
    """How many goroutines are parked with this wait reason right now."""
    return sum(1 for g in gopy.runtime._goroutines()
               if g["state"] == "waiting" and g["wait"] == reason)


def parked_on(ch, reason=None):
    """How many goroutines are parked on channel ch (a Chan or view) right
    now, optionally with this wait reason ("chan receive", "chan send")."""
    return sum(1 for g in gopy.runtime._goroutines()
               if g["state"] == "waiting" and g["wait_obj"] == ch.handle
               and (reason is None or g["wait"] == reason))


def parked_in(func_name, reason=None):
    """How many goroutines are parked inside a function of this name (any
    frame of theirs), optionally with this wait reason ("select", ...)."""
    return sum(1 for g in gopy.runtime._goroutines()
               if g["state"] == "waiting" and (reason is None or g["wait"] == reason)
               and any(name == func_name for _, _, name in g["frames"] or ()))


def settle_goroutines(timeout=10.0):
    """Wait until num_goroutine() stops changing (goroutines of earlier
    tests finishing); return the settled count."""
    last = gopy.runtime.num_goroutine()
    stable_since = time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.01)
        n = gopy.runtime.num_goroutine()
        if n != last:
            last, stable_since = n, time.monotonic()
        elif time.monotonic() - stable_since > 0.1:
            break
    return last


def collect():
    for _ in range(3):
        gc.collect()


# ---- subprocesses ------------------------------------------------------------

def run_script(code, timeout=60, env=None):
    """Run a Python snippet in a fresh interpreter with gopy importable;
    returns the CompletedProcess (text mode)."""
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("GOMAXPROCS", None)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=e, cwd=ROOT)


@pytest.fixture
def no_leftover_goroutines():
    """For tests that count goroutines: the settled count before the test."""
    return settle_goroutines()


def build_data_lib(tmp_path_factory, source):
    """Build tests/data/<source> against gopy.h into a shared library (as a
    third-party C library would be) and load it with ctypes; skip the
    module's tests where no C compiler exists."""
    import ctypes
    import shutil

    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("lib") / ("lib" + os.path.splitext(source)[0] + ".so")
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-I", gopy.get_include(),
                    os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", source),
                    "-o", str(out)], check=True)
    return ctypes.CDLL(str(out))


def build_overflowing_lib(tmp_path):
    """A shared library whose run(void *) recurses in C without bound: only
    a goroutine stack's guard page can stop it (go_c it)."""
    src = tmp_path / "deep.c"
    src.write_text("int deep(int n) { volatile char pad[256]; pad[0] = (char)n;"
                   " return deep(n + 1) + pad[0]; }\n"
                   "void run(void *arg) { (void)arg; deep(0); }\n")
    lib = tmp_path / "libdeep.so"
    subprocess.run(["cc", "-O0", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    return lib
