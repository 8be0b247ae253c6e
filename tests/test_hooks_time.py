"""time.sleep inside goroutines parks; outside it is the original; the
hooks' package: in_goroutine, install/uninstall, GOPY_BLOCKING_HOOKS."""

import ctypes
import decimal
import fractions
import math
import select
import socket
import subprocess
import time

import _socket
import pytest

import gopy
from gopy import _gopy, _hooks
from conftest import recv_value, run_in_goroutine, run_in_thread, run_script
from hookcheck import parks, run_parked_pool


def test_in_goroutine_only_in_python_goroutines():
    assert _gopy.in_goroutine() is False
    assert run_in_thread(_gopy.in_goroutine) is False
    assert run_in_goroutine(_gopy.in_goroutine) is True
    out = gopy.Chan(1)
    # A ctypes callback runs on a C goroutine: its thread state cannot
    # move, so it is not a goroutine that hooks may park.
    cb = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda arg: out.send(
        (_gopy.goid() != 0, _gopy.in_goroutine())))
    gopy.go_c(cb)
    assert recv_value(out) == (True, False)


def test_sleep_parks():
    def block():
        start = time.monotonic()
        time.sleep(0.3)
        return time.monotonic() - start

    assert parks(block) >= 0.3


def test_sleep_zero_lets_the_goroutines_on_the_thread_run():
    # A spins on time.sleep(0) until B, bound to its thread, has run: had
    # sleep(0) not yielded, B could never run.
    flag = []

    def block():
        while not flag:
            time.sleep(0)
        return "B ran"

    done = gopy.Chan(1)

    def unblock():
        flag.append(1)
        done.send(1)

    assert parks(block, unblock) == "B ran"


@pytest.mark.parametrize("secs", [0.02, 1 / 64, 0, 0.0, -0.0, False, 1e-10])
def test_sleep_accepts_what_time_sleep_accepts(secs):
    assert run_in_goroutine(time.sleep, secs) is None
    assert time.sleep(secs) is None


class Index:
    def __index__(self):
        return 0


class BadIndex:
    def __index__(self):
        raise ZeroDivisionError("bad index")


@pytest.mark.parametrize("secs", [-1, -0.5, -2**70, math.nan, math.inf, -math.inf, 1e300,
                                  2**63, 2**64, 10**10, "1", b"1", None, [], 1j, BadIndex()],
                         ids=repr)
def test_sleep_rejects_alike_inside_and_outside(secs):
    def error_of(fn, *args):
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - compared below
            return type(e), str(e)
        pytest.fail(f"time.sleep({secs!r}) returned")

    outside = error_of(_hooks.time._original, secs)
    assert error_of(time.sleep, secs) == outside
    assert run_in_goroutine(error_of, time.sleep, secs) == outside
    assert run_in_thread(error_of, time.sleep, secs) == outside


def test_sleep_takes_an_index_as_time_sleep_does():
    assert run_in_goroutine(time.sleep, Index()) is None


class Real:
    def __float__(self):
        return 0.3


class BadReal:
    def __float__(self):
        raise ZeroDivisionError("bad float")


@pytest.mark.parametrize("secs", [Real(), BadReal(), decimal.Decimal("0.3"),
                                  fractions.Fraction(3, 10)], ids=repr)
def test_sleep_takes_real_numbers_as_time_sleep_does(secs):
    # CPython 3.15 sleeps for any real number (__float__); before, such
    # objects are a TypeError.  Inside a goroutine: the same, parked.
    def outcome(fn):
        try:
            start = time.monotonic()
            fn(secs)
            return "slept", time.monotonic() - start >= 0.3
        except BaseException as e:  # noqa: BLE001 - compared below
            return type(e), str(e)

    outside = outcome(_hooks.time._original)
    assert run_in_goroutine(outcome, time.sleep) == outside
    if outside[0] == "slept":
        assert outside == ("slept", True)
        assert parks(lambda: outcome(time.sleep)) == ("slept", True)


def test_sleep_outside_goroutines_is_time_sleep_underneath():
    hook = time.sleep
    assert hook is not _hooks.time._original
    assert hook.__self__ is _hooks.time._original
    assert hook.__name__ == "sleep" and hook.__module__ == "time"
    start = time.monotonic()
    run_in_thread(time.sleep, 0.05)
    assert time.monotonic() - start >= 0.05


def test_worker_pool_of_sleepers_does_not_serialise():
    # 8 workers parked on a jobs channel before any job exists, 24 jobs of
    # 50 ms: ideal 0.15 s, serial 1.2 s.
    def nap(n):
        time.sleep(0.05)
        return n

    results, elapsed = run_parked_pool(nap)
    assert sorted(results) == list(range(24))
    assert elapsed < 0.8


def test_uninstall_restores_the_originals_and_install_hooks_again():
    assert _hooks.installed()
    hooked = (time.sleep, socket.socket.recv, select.select, subprocess.Popen._wait,
              socket.getaddrinfo)
    _hooks.uninstall()
    try:
        assert not _hooks.installed()
        assert time.sleep is _hooks.time._original
        assert socket.socket.recv is _socket.socket.recv
        assert "recv" not in vars(socket.socket)
        assert select.select is _hooks.select._original_select
        assert subprocess.Popen._wait is _hooks.subprocess._original_wait
        assert socket.getaddrinfo is hooked[4].__wrapped__
        _hooks.uninstall()  # a second time: nothing to do
    finally:
        _hooks.install()
    assert _hooks.installed()
    assert socket.socket.recv is not _socket.socket.recv
    assert time.sleep.__self__ is _hooks.time._original
    _hooks.install()  # once only
    assert socket.socket.recv is vars(socket.socket)["recv"]


def test_environment_variable_turns_the_hooks_off():
    check = """
        import select, socket, subprocess, time, _socket
        original_sleep = time.sleep
        import gopy
        from gopy import _hooks
        print(_hooks.installed(), time.sleep is original_sleep,
              socket.socket.recv is _socket.socket.recv, select.select.__module__,
              subprocess.io.open is __import__("io").open)
    """
    r = run_script(check, env={"GOPY_BLOCKING_HOOKS": "0"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True", "True", "select", "True"]
    r = run_script(check, env={"GOPY_BLOCKING_HOOKS": "1"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "False", "gopy._hooks.select", "False"]


def test_a_name_bound_before_import_gopy_keeps_the_original():
    r = run_script("""
        from time import sleep
        import time, gopy
        print(sleep is time.sleep, sleep is gopy._hooks.time._original)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True"]


def test_exit_with_goroutines_parked_in_sleep():
    r = run_script("""
        import threading, time, gopy
        started = gopy.WaitGroup()
        started.add(50)
        def sleeper():
            started.done()
            time.sleep(3600)
        for _ in range(50):
            gopy.go(sleeper)
        started.wait()
        print("exiting", threading.active_count() >= 1)
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "exiting True"
