"""Wrong argument types and values raise TypeError / ValueError, never crash
(docs/api.md, "Errors")."""

import sys

import pytest

import gopy
from gopy import Recv, Send, select
from conftest import run_script


class Idx:
    def __index__(self):
        return 2


def test_chan_capacity_types():
    with pytest.raises(TypeError):
        gopy.Chan("x")
    with pytest.raises(TypeError):
        gopy.Chan(1.5)
    with pytest.raises(TypeError):
        gopy.Chan(1.0)
    with pytest.raises(TypeError):
        gopy.Chan(None)
    with pytest.raises(TypeError):
        gopy.Chan([])
    with pytest.raises(TypeError):
        gopy.Chan(1, 2)
    with pytest.raises(TypeError):
        gopy.Chan(cap=1, size=2)
    assert gopy.Chan(Idx()).cap == 2  # any __index__ object is an int
    assert gopy.Chan(True).cap == 1


def test_chan_capacity_values():
    with pytest.raises(ValueError):
        gopy.Chan(-1)
    with pytest.raises(ValueError):
        gopy.Chan(-(2**70))
    with pytest.raises((OverflowError, ValueError, MemoryError)):
        gopy.Chan(2**70)
    with pytest.raises((OverflowError, ValueError, MemoryError)):
        gopy.Chan(2**62)
    with pytest.raises((ValueError, MemoryError)):
        gopy.Chan(sys.maxsize)


def test_select_bad_input():
    ch = gopy.Chan()
    with pytest.raises(TypeError):
        select(42)
    with pytest.raises(TypeError):
        select(None)
    with pytest.raises(TypeError):
        select(Recv(ch), 42)
    with pytest.raises(TypeError):
        select(Recv, default=True)
    with pytest.raises(TypeError):
        select(Recv(ch), bogus=True)
    assert select(Recv(ch), default="yes") == (-1, None, False)
    assert select(Recv(ch), default=[0]) == (-1, None, False)


def test_case_bad_input():
    ch = gopy.Chan()
    with pytest.raises(TypeError):
        Recv(42)
    with pytest.raises(TypeError):
        Recv("chan")
    with pytest.raises(TypeError):
        Send(42, 1)
    with pytest.raises(TypeError):
        Send(ch.recv_only(), 1)
    with pytest.raises(TypeError):
        Recv(ch.send_only())
    with pytest.raises(TypeError):
        Send()
    with pytest.raises(TypeError):
        Send(ch, 1, 2)


def test_go_bad_input():
    with pytest.raises(TypeError):
        gopy.go(42)
    with pytest.raises(TypeError):
        gopy.go()
    with pytest.raises(TypeError):
        gopy.go(None)
    with pytest.raises(TypeError):
        gopy.go("print")


def test_go_bad_call_reported_not_crashing(monkeypatch):
    # A callable with the wrong arity fails inside the goroutine.
    seen = gopy.Chan(1)
    monkeypatch.setattr(gopy, "excepthook", lambda exc, gid: seen.send(type(exc)))
    gopy.go(lambda: None, 1, 2)
    i, v, ok = select(Recv(seen), Recv(gopy.after(30)))
    assert (i, v) == (0, TypeError)


def test_timer_functions_bad_input():
    with pytest.raises(TypeError):
        gopy.sleep("x")
    with pytest.raises(TypeError):
        gopy.sleep()
    with pytest.raises(TypeError):
        gopy.after(None)
    with pytest.raises(TypeError):
        gopy.tick("1")
    with pytest.raises(TypeError):
        gopy.Timer()
    with pytest.raises(TypeError):
        gopy.Timer(None)
    with pytest.raises(ValueError):
        gopy.sleep(float("nan"))
    with pytest.raises(ValueError):
        gopy.Ticker(0)
    with pytest.raises(ValueError):
        gopy.Ticker(-1)
    with pytest.raises((OverflowError, ValueError)):
        gopy.after(10**400)


def test_sends_on_closed_channels():
    for cap in (0, 3):
        ch = gopy.Chan(cap)
        ch.close()
        for _ in range(3):
            with pytest.raises(gopy.ClosedChannelError):
                ch.send("x")
            with pytest.raises(gopy.ClosedChannelError):
                ch.send_only().send("x")
            with pytest.raises(gopy.ClosedChannelError):
                select(Send(ch, "x"))
        with pytest.raises(gopy.ClosedChannelError):
            ch.close()
        with pytest.raises(gopy.ClosedChannelError):
            ch.send_only().close()


def test_method_arity():
    ch = gopy.Chan(1)
    with pytest.raises(TypeError):
        ch.send()
    with pytest.raises(TypeError):
        ch.send(1, 2)
    with pytest.raises(TypeError):
        ch.recv(1)
    with pytest.raises(TypeError):
        ch.recv_ok(None)
    with pytest.raises(TypeError):
        ch.close(True)
    with pytest.raises(AttributeError):
        ch.cap = 3
    assert len(ch) == 0 and ch.cap == 1


def test_wrong_self_types():
    # Unbound methods called on the wrong type are refused by CPython.
    with pytest.raises(TypeError):
        gopy.Chan.send(42, 1)
    with pytest.raises(TypeError):
        gopy.Chan.recv(gopy.Chan().recv_only())


def test_timer_methods_bad_input():
    t = gopy.Timer(60)
    with pytest.raises(TypeError):
        t.reset()
    with pytest.raises(TypeError):
        t.reset(None)
    with pytest.raises(TypeError):
        t.stop(1)
    assert t.stop() is True


def test_runtime_bad_input():
    with pytest.raises(TypeError):
        gopy.runtime.gomaxprocs("4")
    with pytest.raises(TypeError):
        gopy.runtime.num_goroutine(1)
    with pytest.raises(TypeError):
        gopy.runtime.gosched(1)


def test_bad_input_in_subprocess_does_not_crash():
    # Everything above again, in a fresh interpreter that must exit cleanly.
    r = run_script("""
        import gopy
        bad = [lambda: gopy.Chan("x"), lambda: gopy.Chan(-1), lambda: gopy.Chan(2**70),
               lambda: gopy.Recv(42), lambda: gopy.Send(42, 1), lambda: gopy.select(42),
               lambda: gopy.sleep("x"), lambda: gopy.after(None), lambda: gopy.go(42),
               lambda: gopy.go(), lambda: gopy.Send(gopy.Chan().recv_only(), 1),
               lambda: gopy.Ticker(0), lambda: gopy.Timer(float("nan"))]
        kinds = []
        for f in bad:
            try:
                f()
            except (TypeError, ValueError, OverflowError, MemoryError) as e:
                kinds.append(type(e).__name__)
        print(len(kinds))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "13"
