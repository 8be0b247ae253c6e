"""gopy.sleep, after, tick, Timer, Ticker, after_func (docs/api.md,
"Timers").

Lower bounds on elapsed time are correctness (a timer must not fire
early); upper bounds are generous hang guards only."""

import datetime
import math
import threading
import time
import weakref

import pytest

import gopy
from gopy import Recv, select
from conftest import collect, nothing_ready, recv_timeout, recv_value, run_in_goroutine, wait_until

SLACK = 0.005  # clock granularity between the runtime's clock and time's
HANG = 20.0    # "it did happen" bound


class Obj:
    pass


# ---- sleep ------------------------------------------------------------------------


def test_sleep_main_thread():
    for d in (0.05, datetime.timedelta(milliseconds=50), 0):
        t0 = time.monotonic()
        assert gopy.sleep(d) is None
        el = time.monotonic() - t0
        want = d.total_seconds() if isinstance(d, datetime.timedelta) else d
        assert want - SLACK <= el < HANG


def test_sleep_negative_returns_at_once():
    t0 = time.monotonic()
    gopy.sleep(-5)
    gopy.sleep(-1e300)
    gopy.sleep(datetime.timedelta(seconds=-3))
    assert time.monotonic() - t0 < HANG


def test_sleep_goroutine():
    def f():
        t0 = time.monotonic()
        gopy.sleep(0.1)
        return time.monotonic() - t0

    el = run_in_goroutine(f)
    assert 0.1 - SLACK <= el < HANG


def test_sleep_thread():
    out = []

    def f():
        t0 = time.monotonic()
        gopy.sleep(0.05)
        out.append(time.monotonic() - t0)

    t = threading.Thread(target=f)
    t.start()
    t.join(HANG)
    assert len(out) == 1 and 0.05 - SLACK <= out[0] < HANG


def test_many_sleeping_goroutines_wake_in_order():
    out = gopy.Chan(20)
    for k in (5, 1, 4, 2, 3):
        gopy.go(lambda k=k: (gopy.sleep(0.1 * k), out.send(k)))
    assert [recv_value(out) for _ in range(5)] == [1, 2, 3, 4, 5]


def test_sleep_int_and_bool():
    t0 = time.monotonic()
    gopy.sleep(0)
    gopy.sleep(0.0)
    gopy.sleep(False)  # bool is an int: zero seconds
    gopy.sleep(1)      # an int of seconds
    assert 1 - SLACK <= time.monotonic() - t0 < HANG


# ---- after -------------------------------------------------------------------------


def test_after_delivers_one_time_value():
    start = time.time()
    c = gopy.after(0.05)
    assert isinstance(c, gopy.RecvChan)
    v = c.recv()
    end = time.time()
    assert type(v) is float
    assert start + 0.05 - SLACK <= v <= end + SLACK
    time.sleep(0.1)
    assert nothing_ready(c)  # only once


def test_after_zero_and_negative_fire_at_once():
    for d in (0, -1, 0.0, datetime.timedelta(0)):
        v, ok = recv_timeout(gopy.after(d), HANG)
        assert ok and abs(v - time.time()) < HANG


def test_after_timedelta():
    start = time.time()
    v = gopy.after(datetime.timedelta(milliseconds=30)).recv()
    assert v >= start + 0.03 - SLACK


def test_after_channel_is_receive_only():
    c = gopy.after(10)
    assert not hasattr(c, "send")
    assert not hasattr(c, "close")
    assert c.cap in (0, 1)


def test_after_infinite_never_fires():
    c = gopy.after(float("inf"))
    time.sleep(0.05)
    assert nothing_ready(c)


def test_after_dropped_unread_and_in_goroutine():
    # Dropping an unread after() channel is fine (the timer goes with it).
    for _ in range(100):
        gopy.after(0.001)
    collect()
    assert run_in_goroutine(lambda: type(gopy.after(0.01).recv())) is float


# ---- tick --------------------------------------------------------------------------


def test_tick_delivers_repeatedly():
    start = time.time()
    c = gopy.tick(0.02)
    assert isinstance(c, gopy.RecvChan)
    vals = [recv_value(c, HANG) for _ in range(4)]
    assert all(type(v) is float for v in vals)
    assert vals == sorted(vals) and len(set(vals)) == 4
    assert vals[0] >= start + 0.02 - SLACK
    assert vals[-1] <= time.time() + SLACK


def test_tick_zero_and_negative_are_none():
    assert gopy.tick(0) is None
    assert gopy.tick(-1) is None
    assert gopy.tick(datetime.timedelta(0)) is None


def test_tick_drops_ticks_for_slow_reader():
    c = gopy.tick(0.01)
    time.sleep(0.2)  # ~20 ticks due: kept, they would all be there
    got = sum(select(Recv(c), default=True)[0] == 0 for _ in range(25))
    # The channel holds one; another may fall due while we read (a reader
    # descheduled between two reads on a loaded machine took two).
    assert got <= 2


# ---- Timer -------------------------------------------------------------------------


def test_timer_fires():
    start = time.time()
    t = gopy.Timer(0.03)
    assert isinstance(t.c, gopy.RecvChan)
    v = recv_value(t.c, HANG)
    assert v >= start + 0.03 - SLACK
    assert t.c is t.c or t.c == t.c


def test_timer_stop_before_fire():
    for _ in range(2):
        t = gopy.Timer(0.5)
        assert t.stop() is True
        assert t.stop() is False  # already stopped
        time.sleep(0.7)
        assert select(Recv(t.c), default=True) == (-1, None, False)


def test_timer_stop_after_fire_and_receive():
    t = gopy.Timer(0.01)
    recv_value(t.c, HANG)
    assert t.stop() is False
    time.sleep(0.05)
    assert nothing_ready(t.c)


def test_timer_stop_after_fire_without_receive_drops_value():
    # Go 1.23: once stop returns, no stale value can be received.
    t = gopy.Timer(0.01)
    time.sleep(0.1)
    t.stop()
    assert nothing_ready(t.c)


def test_timer_stop_after_fire_without_receive_returns_true():
    # Go 1.23 Timer.Stop: "if the program has not received from t.C already
    # and the timer is running, Stop is guaranteed to return true".
    t = gopy.Timer(0.01)
    time.sleep(0.1)
    assert t.stop() is True
    t2 = gopy.Timer(0.01)
    time.sleep(0.1)
    assert t2.reset(10) is True


def test_timer_reset_pending():
    t = gopy.Timer(60)
    start = time.time()
    assert t.reset(0.03) is True
    v = recv_value(t.c, HANG)
    assert v >= start + 0.03 - SLACK
    # Fired and received: reset re-arms and returns False.
    assert t.reset(0.01) is False
    assert type(recv_value(t.c, HANG)) is float


def test_timer_reset_after_stop():
    t = gopy.Timer(60)
    assert t.stop() is True
    assert t.reset(0.01) is False
    assert type(recv_value(t.c, HANG)) is float
    assert nothing_ready(t.c)


def test_timer_reset_to_later_postpones():
    t = gopy.Timer(0.3)
    assert t.reset(60) is True
    time.sleep(0.5)
    assert nothing_ready(t.c)
    assert t.stop() is True


def test_timer_channel_len_cap_zero_go123():
    t = gopy.Timer(0.01)
    time.sleep(0.05)
    assert (len(t.c), t.c.cap) == (0, 0)  # Go 1.23: timer channels look unbuffered
    assert type(recv_value(t.c, HANG)) is float


def test_after_value_goes_to_exactly_one_receiver():
    c = gopy.after(0.05)
    out = gopy.Chan(10)
    for _ in range(5):
        gopy.go(lambda: out.send(select(Recv(c), Recv(gopy.after(0.5)))[0]))
    got = sorted(recv_value(out, HANG) for _ in range(5))
    assert got == [0, 1, 1, 1, 1]


def test_timer_channel_alone_fires():
    # Go 1.23: <-time.NewTimer(d).C works; the channel keeps its timer.
    v, ok = recv_timeout(gopy.Timer(0.02).c, HANG)
    assert ok and type(v) is float
    c = gopy.Ticker(0.01).c
    assert type(recv_value(c, HANG)) is float
    assert type(recv_value(c, HANG)) is float


def test_timer_object_outlives_nothing():
    # Stop/reset through the Timer while only it holds the channel.
    t = gopy.Timer(60)
    c = t.c
    del c
    collect()
    assert t.reset(0.01) is True
    assert type(recv_value(t.c, HANG)) is float


def test_timer_channel_in_select_with_goroutine():
    t = gopy.Timer(60)
    ch = gopy.Chan()
    gopy.go(lambda: (gopy.sleep(0.01), ch.send("first")))
    assert select(Recv(t.c), Recv(ch)) == (1, "first", True)
    assert t.stop() is True


def test_timer_durations_accepted():
    for d in (1, 1.5, datetime.timedelta(seconds=2)):
        t = gopy.Timer(d)
        assert t.stop() is True


def test_timer_dropped_while_pending():
    # Nothing fires into freed memory, nothing crashes.
    for _ in range(50):
        gopy.Timer(0.001)
    t = gopy.Timer(0.001)
    c = t.c
    del t
    collect()
    time.sleep(0.05)
    select(Recv(c), default=True)  # may or may not have a value; must not crash


# ---- Ticker ---------------------------------------------------------------------------


def test_ticker_ticks_and_stops():
    tk = gopy.Ticker(0.02)
    vals = [recv_value(tk.c, HANG) for _ in range(3)]
    assert vals == sorted(vals) and len(set(vals)) == 3
    assert tk.stop() is None
    time.sleep(0.1)
    assert nothing_ready(tk.c)  # no stale tick after stop (Go 1.23)


def test_ticker_reset_restarts():
    tk = gopy.Ticker(60)
    assert tk.reset(0.02) is None
    start = time.time()
    v1 = recv_value(tk.c, HANG)
    v2 = recv_value(tk.c, HANG)
    assert start - SLACK <= v1 < v2
    tk.stop()
    tk.reset(0.01)  # a stopped ticker ticks again after reset
    assert type(recv_value(tk.c, HANG)) is float
    tk.stop()


def test_ticker_bad_periods():
    for d in (0, -1, 0.0, datetime.timedelta(0), -0.5):
        with pytest.raises(ValueError):
            gopy.Ticker(d)
    tk = gopy.Ticker(1)
    with pytest.raises(ValueError):
        tk.reset(0)
    with pytest.raises(ValueError):
        tk.reset(-1)
    with pytest.raises(TypeError):
        tk.reset("1")
    with pytest.raises(TypeError):
        gopy.Ticker("1")
    with pytest.raises(ValueError):
        gopy.Ticker(math.nan)
    tk.stop()


# ---- after_func ----------------------------------------------------------------------


def test_after_func_runs_in_goroutine():
    out = gopy.Chan(1)

    def fn(a, b):
        out.send((gopy._gopy.goid(), a, b,
                  threading.current_thread() is threading.main_thread()))

    start = time.monotonic()
    t = gopy.after_func(0.03, fn, "x", [1])
    assert isinstance(t, gopy.Timer)
    assert t.c is None
    goid, a, b, on_main = recv_value(out, HANG)
    assert time.monotonic() - start >= 0.03 - SLACK
    assert goid != 0
    assert (a, b, on_main) == ("x", [1], False)
    assert t.stop() is False  # it has fired


def test_after_func_no_args():
    out = gopy.Chan(1)
    gopy.after_func(0, lambda: out.send("ran"))
    assert recv_value(out, HANG) == "ran"


def test_after_func_stop_prevents_call():
    calls = []
    for _ in range(3):
        t = gopy.after_func(0.5, calls.append, 1)
        assert t.stop() is True
    time.sleep(0.7)
    assert calls == []


def test_after_func_reset_runs_again():
    out = gopy.Chan(5)
    t = gopy.after_func(0.01, out.send, "ping")
    assert recv_value(out, HANG) == "ping"
    assert t.reset(0.01) is False
    assert recv_value(out, HANG) == "ping"
    assert t.reset(60) is False
    assert t.reset(0.01) is True  # was pending: moved, runs once
    assert recv_value(out, HANG) == "ping"
    time.sleep(0.05)
    assert nothing_ready(out)


def test_after_func_exception_goes_to_excepthook(monkeypatch):
    seen = gopy.Chan(1)
    monkeypatch.setattr(gopy, "excepthook", lambda exc, gid: seen.send((type(exc), gid != 0)))

    def boom():
        raise KeyError("k")

    gopy.after_func(0, boom)
    assert recv_value(seen, HANG) == (KeyError, True)


def test_after_func_runs_in_context_of_caller():
    import contextvars
    var = contextvars.ContextVar("v", default="unset")
    token = var.set("at after_func")
    out = gopy.Chan(1)
    gopy.after_func(0, lambda: out.send(var.get()))
    var.reset(token)
    assert recv_value(out, HANG) == "at after_func"


def test_after_func_runs_when_timer_dropped():
    # Go runs an AfterFunc whether or not its *Timer is kept.
    out = gopy.Chan(10)
    for i in range(5):
        gopy.after_func(0.01 * i, out.send, i)
    assert sorted(recv_value(out, HANG) for _ in range(5)) == [0, 1, 2, 3, 4]


def test_after_func_releases_everything_after_running():
    out = gopy.Chan(1)
    o = Obj()
    ref = weakref.ref(o)
    gopy.after_func(0.01, lambda x: out.send(type(x).__name__), o)
    del o
    assert recv_value(out, HANG) == "Obj"
    assert wait_until(lambda: (collect(), ref() is None)[1])


def test_after_func_stopped_releases_everything():
    o = Obj()
    ref = weakref.ref(o)
    t = gopy.after_func(60, print, o)
    assert t.reset(61) is True
    assert t.stop() is True
    assert t.stop() is False
    del t, o
    collect()
    assert ref() is None


def test_after_func_reset_after_stop_runs_once_dropped():
    out = gopy.Chan(5)
    o = Obj()
    ref = weakref.ref(o)
    t = gopy.after_func(60, lambda x: out.send("ran"), o)
    assert t.stop() is True
    assert t.reset(0.01) is False
    del t, o
    assert recv_value(out, HANG) == "ran"
    time.sleep(0.05)
    assert nothing_ready(out)
    assert wait_until(lambda: (collect(), ref() is None)[1])


def test_after_func_reset_from_inside_fn():
    out = gopy.Chan(5)
    box = []

    def fn():
        out.send("run")
        if len(box) == 1:
            box.append(box[0].reset(0.01))  # fired: not pending, re-armed

    box.append(gopy.after_func(0.01, fn))
    assert recv_value(out, HANG) == "run"
    assert recv_value(out, HANG) == "run"
    assert box[1] is False
    time.sleep(0.05)
    assert nothing_ready(out)


@pytest.mark.timeout(60)
def test_after_func_reset_races_release_everything():
    # Resets racing with firings: every arming's reference is dropped once.
    for _ in range(3):
        out = gopy.Chan(1000)
        o = Obj()
        ref = weakref.ref(o)
        t = gopy.after_func(0.0005, lambda x: out.send(1), o)
        fired_resets = 0
        for _ in range(200):
            if not t.reset(0.0005):
                fired_resets += 1
        time.sleep(0.05)
        cancelled_last = t.stop()
        del t, o
        # One run per arming that was not cancelled: 201 armings, minus the
        # resets (and the stop) that found the previous one pending.
        runs = 1 + fired_resets - cancelled_last
        assert wait_until(lambda: len(out) == runs)
        time.sleep(0.02)
        assert len(out) == runs
        assert wait_until(lambda: (collect(), ref() is None)[1])


def test_after_func_bad_args():
    with pytest.raises(TypeError):
        gopy.after_func(1)
    with pytest.raises(TypeError):
        gopy.after_func()
    with pytest.raises(TypeError):
        gopy.after_func(1, 42)
    with pytest.raises(TypeError):
        gopy.after_func("1", print)
    with pytest.raises(ValueError):
        gopy.after_func(math.nan, print)


# ---- durations --------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [gopy.sleep, gopy.after, gopy.tick, gopy.Timer, gopy.Ticker])
def test_bad_duration_types(fn):
    for bad in ("x", None, b"1", [1], object(), 1j, datetime.timedelta):
        with pytest.raises(TypeError):
            fn(bad)


@pytest.mark.parametrize("fn", [gopy.sleep, gopy.after, gopy.tick, gopy.Timer, gopy.Ticker])
def test_nan_duration(fn):
    with pytest.raises(ValueError):
        fn(math.nan)
    with pytest.raises(ValueError):
        fn(float("-nan"))


def test_timer_reset_bad_duration():
    t = gopy.Timer(60)
    with pytest.raises(TypeError):
        t.reset("x")
    with pytest.raises(ValueError):
        t.reset(math.nan)
    with pytest.raises(TypeError):
        t.reset()
    assert t.stop() is True  # still pending: the bad resets changed nothing


def test_huge_durations_do_not_fire():
    c = gopy.after(1e300)
    t = gopy.Timer(2**80)
    time.sleep(0.05)
    assert nothing_ready(c)
    assert nothing_ready(t.c)
    assert t.stop() is True


def test_duration_like_objects():
    class Dur:
        def total_seconds(self):
            return 0.01

    assert type(recv_value(gopy.after(Dur()), HANG)) is float
