"""Preemption: a goroutine computing in pure Python for longer than the
slice (10 ms) while goroutines bound to its thread wait is made to yield at
its next loop back-edge, except where that could break a thread-affine
section: Python code a C function called back (a finalizer, sum over a
generator, a sort key), a `with` block of one of threading's locks, a
goroutine locked to its thread.  Timing bounds here are generous: they
tell preempted (a tick every ~10-15 ms) from not (none at all) on two
noisy cores."""

import contextvars
import sys
import threading
import time

import pytest

import gopy
from gopy import runtime

from conftest import recv_value, run_script, wait_until

SPIN = 0.4  # seconds each spinning section lasts


def spin(secs):
    """Pure Python, no call that parks: only preemption interleaves it."""
    end = time.perf_counter() + secs
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def on_one_thread(first, second, tries=60):
    """Run first() and second() as two goroutines bound to one thread
    (retrying until the scheduler starts them on the same one: a single P
    while they start makes that likely, even with the GIL off); returns
    their results."""
    def wrap(name, fn, idents, go, results):
        # The channels are this attempt's: a goroutine of a failed attempt
        # must not take the next one's go-ahead.
        idents.send(threading.get_ident())
        if go.recv():
            results.send((name, fn()))

    for _ in range(tries):
        idents, go, results = gopy.Chan(2), gopy.Chan(), gopy.Chan(2)
        procs = runtime.gomaxprocs(1)
        try:
            gopy.go(wrap, "first", first, idents, go, results)
            gopy.go(wrap, "second", second, idents, go, results)
            a, b = recv_value(idents), recv_value(idents)
        finally:
            runtime.gomaxprocs(procs)
        if a == b:
            go.send(True)
            go.send(True)
            got = dict([recv_value(results, 60), recv_value(results, 60)])
            return got["first"], got["second"]
        go.close()
    pytest.fail("the scheduler never started two goroutines on one thread")


class TickLog:
    """A goroutine's log of the ticks it received, until stop()."""

    def __init__(self):
        self.times = []
        self.stopped = gopy.Chan()

    def run(self):
        t = gopy.Ticker(0.005)
        try:
            while True:
                i, _, _ = gopy.select(gopy.Recv(t.c), gopy.Recv(self.stopped))
                if i == 1:
                    return len(self.times)
                self.times.append(time.perf_counter())
        finally:
            t.stop()

    def stop(self):
        self.stopped.close()

    def between(self, t0, t1):
        return sum(t0 < t < t1 for t in self.times)


def sections(*bodies):
    """Run each body in turn in one goroutine beside a TickLog on its
    thread; returns the log and each body's (start, end)."""
    log = TickLog()

    def worker():
        spans = []
        time.sleep(0.03)  # the log's goroutine is waiting for ticks by now
        for body in bodies:
            t0 = time.perf_counter()
            body()
            spans.append((t0, time.perf_counter()))
        log.stop()
        return spans

    spans, _ = on_one_thread(worker, log.run)
    return log, spans


def test_a_computing_goroutine_lets_the_others_of_its_thread_run():
    before = runtime.stats()["preemptions"]
    log, [(t0, t1)] = sections(lambda: spin(1.0))
    # 5 ms ticks, a preemption every 11-17 ms: 70-120 get through on a quiet
    # machine, 15 and more on a loaded one; none without preemption (below).
    assert log.between(t0, t1) >= 10
    assert runtime.stats()["preemptions"] - before >= 10


def test_with_preemption_off_the_others_wait():
    prev = runtime.set_preempt_slice(0)
    try:
        assert prev == pytest.approx(0.010)
        log, [(t0, t1)] = sections(lambda: spin(SPIN))
    finally:
        assert runtime.set_preempt_slice(prev) == 0
    assert log.between(t0 + 0.002, t1) == 0


def test_the_slice_is_settable():
    prev = runtime.set_preempt_slice(0.05)
    try:
        before = runtime.stats()["preemptions"]
        log, [(t0, t1)] = sections(lambda: spin(1.0))
        got = runtime.stats()["preemptions"] - before
    finally:
        runtime.set_preempt_slice(prev)
    # 50 ms slices: at most 20 in a second (10 ms ones make 50-70).
    assert 2 <= got <= 22
    assert log.between(t0, t1) >= 2


def test_a_preempted_goroutine_keeps_its_own_state():
    var = contextvars.ContextVar("var")
    local = threading.local()

    def spinner():
        var.set("spinner")
        local.v = "spinner"
        try:
            raise KeyError("spinner's")
        except KeyError as handling:
            total = 0
            end = time.perf_counter() + SPIN * 2
            while time.perf_counter() < end:
                total += 1
            seen = (sys.exc_info()[1] is handling, var.get(), local.v)
        return seen, total

    def other():
        var.set("other")
        local.v = "other"
        n = 0
        end = time.perf_counter() + SPIN * 2
        while time.perf_counter() < end:
            try:
                raise ValueError(n)
            except ValueError as e:
                assert e.args == (n,)
                gopy.sleep(0.001)
                assert sys.exc_info()[1] is e
            n += 1
        return var.get(), local.v, n

    before = runtime.stats()["preemptions"]
    (seen, total), (ovar, olocal, n) = on_one_thread(spinner, other)
    assert seen == (True, "spinner", "spinner")
    assert (ovar, olocal) == ("other", "other")
    assert total > 0 and n >= 3  # the other ran while the spinner computed
    assert runtime.stats()["preemptions"] > before


# (start, end) of each spin that a C function called back, measured inside
# it: a preemption just before the C function calls back, or just after it
# returns, is in the goroutine's own code, and falls outside.
CALLED_BACK = []


def spin_called_back(secs):
    t0 = time.perf_counter()
    n = spin(secs)
    CALLED_BACK.append((t0, time.perf_counter()))
    return n


def spin_gen(secs):
    t0 = time.perf_counter()
    end = t0 + secs
    while time.perf_counter() < end:
        yield 1
    CALLED_BACK.append((t0, time.perf_counter()))


class SlowFinalizer:
    def __del__(self):
        spin_called_back(SPIN)


def finalize():
    obj = SlowFinalizer()
    del obj  # runs __del__ here, called back from the deallocator


@pytest.mark.parametrize(
    "body, spans",
    [
        pytest.param(lambda: sum(spin_gen(SPIN)), 1, id="generator consumed by sum"),
        pytest.param(lambda: sorted([1, 2], key=lambda x: spin_called_back(SPIN / 2)), 2,
                     id="sort key"),
        pytest.param(finalize, 1, id="finalizer"),
        pytest.param(lambda: list(map(spin_called_back, [SPIN])), 1, id="map"),
    ],
)
def test_python_called_back_from_c_is_not_preempted(body, spans):
    CALLED_BACK.clear()
    log, [_, (t2, t3)] = sections(body, lambda: spin(SPIN))
    assert len(CALLED_BACK) == spans
    assert [log.between(t0, t1) for t0, t1 in CALLED_BACK] == [0] * spans
    assert log.between(t2, t3) >= 2  # preempted once back in its own code


@pytest.mark.parametrize(
    "make",
    [threading.Lock, threading.RLock, threading.Condition, threading.Semaphore],
    ids=["Lock", "RLock", "Condition", "Semaphore"],
)
def test_a_with_block_of_a_threading_lock_is_not_preempted(make):
    lock = make()
    stop = gopy.Chan()
    entered = []

    def holder():
        time.sleep(0.03)
        with lock:  # the span inside: the holder may be preempted on its way in or out
            t0 = time.perf_counter()
            spin(SPIN)
            t1 = time.perf_counter()
        spin(SPIN)
        t2 = time.perf_counter()
        stop.close()
        return t0, t1, t2

    def taker():
        # Preempted inside its `with` block, the holder would keep the lock
        # while this goroutine, on its thread, blocks the thread taking it.
        while True:
            with lock:
                entered.append(time.perf_counter())
            i, _, _ = gopy.select(gopy.Recv(gopy.after(0.005)), gopy.Recv(stop))
            if i == 1:
                return

    (t0, t1, t2), _ = on_one_thread(holder, taker)
    assert sum(t0 < t < t1 for t in entered) == 0
    assert sum(t1 < t < t2 for t in entered) >= 2


def test_a_goroutine_locked_to_its_thread_is_not_preempted():
    def locked():
        time.sleep(0.03)
        runtime.lock_os_thread()
        try:
            before = runtime.stats()["preemptions"]
            spin(SPIN)
            return runtime.stats()["preemptions"] - before
        finally:
            runtime.unlock_os_thread()

    log = TickLog()

    def counter():
        gopy.after_func(SPIN + 0.2, log.stop)
        return log.run()

    preempted, _ = on_one_thread(locked, counter)
    assert preempted == 0


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11 preempts through a trace function")
def test_a_tracer_of_the_thread_keeps_its_events_311():
    lines = []

    def tracer(frame, event, arg):
        if frame.f_code is spin.__code__:
            lines.append(event)
        return tracer

    def traced():
        sys.settrace(tracer)
        try:
            spin(SPIN)
        finally:
            sys.settrace(None)
        return len(lines)

    before = runtime.stats()["preemptions"]
    log = TickLog()
    gopy.after_func(SPIN + 0.2, log.stop)
    got, ticks = on_one_thread(traced, log.run)
    # Each loop turn is a line event or more, and the preemptions stood in
    # for the tracer only for the one event they passed on.
    assert got > 10_000
    assert lines.count("call") == 1 and lines.count("return") == 1
    assert ticks >= 2 and runtime.stats()["preemptions"] > before


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_other_monitoring_tools_keep_their_events():
    mon = sys.monitoring
    tool = mon.COVERAGE_ID
    if mon.get_tool(tool) is not None:
        pytest.fail(f"tool id {tool} in use: {mon.get_tool(tool)}")
    jumps = []
    mon.use_tool_id(tool, "test")
    try:
        mon.register_callback(tool, mon.events.JUMP, lambda *a: jumps.append(1))
        mon.set_local_events(tool, spin.__code__, mon.events.JUMP)
        before = runtime.stats()["preemptions"]
        log, [(t0, t1)] = sections(lambda: spin(SPIN))
        assert log.between(t0, t1) >= 2
        assert runtime.stats()["preemptions"] > before
        # gopy used an id of its own and gave its hook back: the test tool
        # saw every back-edge, and spin's code carries only its events.
        assert mon.get_tool(4) == "gopy"
        wait_until(lambda: mon.get_local_events(4, spin.__code__) == 0, timeout=5)
        assert mon.get_local_events(tool, spin.__code__) == mon.events.JUMP
        assert len(jumps) > 10_000
    finally:
        mon.set_local_events(tool, spin.__code__, 0)
        mon.register_callback(tool, mon.events.JUMP, None)
        mon.free_tool_id(tool)


def test_a_fork_child_preempts_too():
    r = run_script("""
        import os, sys
        sys.path.insert(0, "tests")
        from test_preempt import runtime, sections, spin
        sections(lambda: spin(0.2))  # the parent's preempter runs
        pid = os.fork()
        if pid == 0:
            before = runtime.stats()["preemptions"]
            log, [(t0, t1)] = sections(lambda: spin(0.3))
            print(log.between(t0, t1) >= 2, runtime.stats()["preemptions"] - before >= 2)
            sys.stdout.flush()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
    """, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]
