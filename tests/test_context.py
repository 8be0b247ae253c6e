"""gopy.context (docs/api.md, "gopy.context"): the examples of Go's
context documentation written with gopy, Go's context tests
(context/x_test.go) in spirit, cancellation reaching goroutines, C
goroutines and threads blocked in select, and no growth when many children
are made and cancelled.

Lower bounds on elapsed time are correctness (a deadline must not fire
early); upper bounds are generous hang guards only."""

import dataclasses
import datetime
import itertools
import os
import random
import subprocess
import threading
import time

import pytest

import gopy
from gopy import Recv, Send, select
from gopy import context
from conftest import (build_data_lib, collect, join_all, nothing_ready, parked_on, recv_value,
                      run_in_goroutine, run_in_thread, settle_goroutines, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
SLACK = 0.005  # clock granularity
HANG = 20.0    # "it did happen" bound


def is_done(ctx):
    """Is ctx.done() closed right now?"""
    d = ctx.done()
    return d is not None and select(Recv(d), default=True) == (0, None, False)


def await_done(ctx, timeout=HANG):
    i, v, ok = select(Recv(ctx.done()), Recv(gopy.after(timeout)))
    assert i == 0, f"{ctx!r} not done within {timeout} s"
    assert (v, ok) == (None, False)


def live_nodes():
    collect()
    return gopy.context._c._live()


# ---- the examples of Go's context documentation --------------------------------------


def test_example_worker_and_worker2_stop_on_cancel():
    """Two workers poll ctx.done() between units of work; one cancel stops
    both."""
    out = gopy.Chan(100)

    def worker(ctx, name):
        while True:
            i, _, _ = select(Recv(ctx.done()), default=True)
            if i == 0:
                out.send(f"{name} stop: {ctx.err()}")
                return
            out.send(f"{name} working")
            gopy.sleep(0.01)

    ctx, cancel = context.with_cancel(context.background())
    gopy.go(worker, ctx, "worker")
    gopy.go(worker, ctx, "worker2")
    seen = set()
    while seen != {"worker working", "worker2 working"}:
        seen.add(recv_value(out))
    cancel()
    stops = []
    while len(stops) < 2:
        msg = recv_value(out)
        if "stop" in msg:
            stops.append(msg)
    assert sorted(stops) == ["worker stop: context canceled", "worker2 stop: context canceled"]


def test_example_with_cancel_gen_does_not_leak(no_leftover_goroutines):
    """Go's ExampleWithCancel: gen's goroutine returns once ctx is
    cancelled instead of leaking."""
    base = no_leftover_goroutines
    returned = gopy.Chan(1)

    def gen(ctx):
        dst = gopy.Chan()
        def produce():
            n = 1
            while True:
                i, _, _ = select(Recv(ctx.done()), Send(dst, n))
                if i == 0:
                    returned.send("returned")   # returning, not to leak the goroutine
                    return
                n += 1
        gopy.go(produce)
        return dst

    ctx, cancel = context.with_cancel(context.background())
    got = []
    try:
        for n in gen(ctx):
            got.append(n)
            if n == 5:
                break
    finally:
        cancel()
    assert got == [1, 2, 3, 4, 5]
    assert recv_value(returned) == "returned"
    assert settle_goroutines() == base


def test_example_with_deadline_before_overslept():
    """Go's ExampleWithDeadline: the deadline (50 ms) comes before the
    1 s oversleep; ctx.err() says why."""
    printed = []
    d = time.time() + 0.05
    ctx, cancel = context.with_deadline(context.background(), d)
    try:
        i, _, _ = select(Recv(gopy.after(1.0)), Recv(ctx.done()))
        printed.append("overslept" if i == 0 else str(ctx.err()))
    finally:
        cancel()
    assert printed == ["context deadline exceeded"]
    assert isinstance(ctx.err(), context.DeadlineExceeded)
    assert time.time() >= d - SLACK


def test_example_with_timeout_stops_polling_worker():
    """Go's ExampleWithTimeout, with a worker polling ctx between jobs."""
    out = gopy.Chan(1000)

    def worker(ctx):
        jobs = 0
        while ctx.err() is None:
            jobs += 1
            i, _, _ = select(Recv(ctx.done()), Recv(gopy.after(0.005)))
        out.send((jobs, ctx.err()))

    t0 = time.monotonic()
    ctx, cancel = context.with_timeout(context.background(), 0.1)
    try:
        gopy.go(worker, ctx)
        jobs, err = recv_value(out)
    finally:
        cancel()
    assert time.monotonic() - t0 >= 0.1 - SLACK
    assert jobs >= 1
    assert isinstance(err, context.DeadlineExceeded) and isinstance(err, TimeoutError)
    assert str(err) == "context deadline exceeded"


@dataclasses.dataclass(frozen=True)
class FavContextKey:
    """Go's `type favContextKey string`: a key type of the package's own."""
    name: str


def test_example_with_value():
    printed = []

    def f(ctx, k):
        v = ctx.value(k)
        if v is not None:
            printed.append(f"found value: {v}")
            return
        printed.append(f"key not found: {k.name}")

    k = FavContextKey("language")
    ctx = context.with_value(context.background(), k, "Go")
    f(ctx, k)
    f(ctx, FavContextKey("color"))
    assert printed == ["found value: Go", "key not found: color"]
    # A plain string of the same name is another key (as Go's typed keys).
    assert ctx.value("language") is None


class TraceKey:
    """An unexported key type: only this module can make the key."""


TRACE = TraceKey()


def test_example_with_value_trace_codes():
    """A request handler puts a trace code in its context; every goroutine
    it starts logs with the code of its own request."""
    log = gopy.Chan(100)

    def log_line(ctx, msg):
        log.send(f"[{ctx.value(TRACE)}] {msg}")

    def fetch(ctx, what, done):
        log_line(ctx, f"fetch {what}")
        done.send(None)

    def handle(request_id, path):
        ctx = context.with_value(context.background(), TRACE, f"trace-{request_id:04d}")
        ctx, cancel = context.with_cancel(ctx)   # values survive derivation
        try:
            log_line(ctx, f"GET {path}")
            done = gopy.Chan(2)
            gopy.go(fetch, ctx, "user", done)
            gopy.go(fetch, ctx, "orders", done)
            done.recv()
            done.recv()
            log_line(ctx, "200 OK")
        finally:
            cancel()

    wg = gopy.Chan(2)
    for rid, path in ((1, "/a"), (2, "/b")):
        gopy.go(lambda rid=rid, path=path: (handle(rid, path), wg.send(None)))
    recv_value(wg)
    recv_value(wg)
    lines = [recv_value(log) for _ in range(8)]
    for rid, path in ((1, "/a"), (2, "/b")):
        mine = [ln for ln in lines if ln.startswith(f"[trace-{rid:04d}]")]
        assert mine[0] == f"[trace-{rid:04d}] GET {path}"
        assert sorted(mine[1:3]) == [f"[trace-{rid:04d}] fetch orders",
                                     f"[trace-{rid:04d}] fetch user"]
        assert mine[3] == f"[trace-{rid:04d}] 200 OK"
    assert context.background().value(TRACE) is None


# ---- background, todo -----------------------------------------------------------------


def test_background_and_todo():
    for root in (context.background(), context.todo()):
        assert root.done() is None
        assert root.err() is None
        assert root.deadline() == (None, False)
        assert root.value("anything") is None
        assert context.cause(root) is None
        assert isinstance(root, context.Context)
    assert context.background() is context.background()
    assert context.todo() is not context.background()
    assert "background" in repr(context.background())
    assert "todo" in repr(context.todo())


def test_nil_done_is_a_nil_select_case():
    c = gopy.Chan(1)
    c.send(7)
    assert select(Recv(context.background().done()), Recv(c)) == (1, 7, True)
    assert select(Recv(context.background().done()), default=True) == (-1, None, False)


# ---- TestWithCancel, TestParentFinishesChild, TestChildFinishesFirst ----------------


def test_with_cancel():
    c1, cancel1 = context.with_cancel(context.background())
    assert c1.done() is not None
    assert c1.done() is c1.done()
    assert c1.done() == c1.done() and hash(c1.done()) == hash(c1.done())
    c2, cancel2 = context.with_cancel(c1)
    c3, _ = context.with_cancel(c2)
    for c in (c1, c2, c3):
        assert not is_done(c)
        assert c.err() is None
    cancel2()
    assert not is_done(c1) and c1.err() is None
    for c in (c2, c3):
        assert is_done(c)
        assert isinstance(c.err(), context.Canceled)
        assert str(c.err()) == "context canceled"
    cancel2()  # again: nothing
    assert isinstance(c2.err(), context.Canceled)
    cancel1()
    assert is_done(c1)
    assert c1.done().recv_ok() == (None, False)
    assert list(c1.done()) == []
    assert "canceled" in repr(c1)


def test_err_returns_fresh_instances():
    c, cancel = context.with_cancel(context.background())
    cancel()
    e1, e2 = c.err(), c.err()
    assert type(e1) is type(e2) is context.Canceled and e1 is not e2
    assert issubclass(context.Canceled, Exception)
    assert issubclass(context.DeadlineExceeded, TimeoutError)
    assert not issubclass(context.DeadlineExceeded, context.Canceled)


def test_parent_finishes_child():
    base = live_nodes()
    parent, cancel = context.with_cancel(context.background())
    cancel_child, _ = context.with_cancel(parent)
    timer_child, _ = context.with_timeout(parent, 3600)
    value_child = context.with_value(parent, "k", "v")
    grandchild, _ = context.with_cancel(value_child)
    ran = gopy.Chan(1)
    stop = context.after_func(parent, lambda: ran.send("after_func"))
    for c in (cancel_child, timer_child, value_child, grandchild):
        assert not is_done(c) and c.err() is None
    cancel()
    for c in (parent, cancel_child, timer_child, value_child, grandchild):
        assert is_done(c)
        assert isinstance(c.err(), context.Canceled)
    assert recv_value(ran) == "after_func"
    assert stop() is False
    assert grandchild.value("k") == "v"
    # A child of a cancelled parent is cancelled at once.
    late, _ = context.with_cancel(parent)
    assert is_done(late) and isinstance(late.err(), context.Canceled)
    del parent, cancel, cancel_child, timer_child, value_child, grandchild, late, stop, _, c
    assert wait_until(lambda: live_nodes() == base)


def test_child_finishes_first():
    for make in (lambda p: context.with_cancel(p), lambda p: context.with_timeout(p, 3600)):
        parent, cancel_parent = context.with_cancel(context.background())
        child, cancel_child = make(parent)
        cancel_child()
        assert is_done(child) and isinstance(child.err(), context.Canceled)
        assert not is_done(parent) and parent.err() is None
        cancel_parent()
        assert isinstance(child.err(), context.Canceled)


def test_cancel_removes_child():
    """Go's TestCancelRemoves, counting the runtime's live nodes: a
    cancelled child (or stopped after_func) is no longer held by its
    parent, so dropping it frees it at once."""
    parent, cancel_parent = context.with_cancel(context.background())
    base = live_nodes()
    for make in (lambda: context.with_cancel(parent),
                 lambda: context.with_timeout(parent, 3600),
                 lambda: context.with_deadline(parent, time.time() + 3600)):
        child, cancel = make()
        assert live_nodes() == base + 1
        del child
        assert live_nodes() == base + 1  # still registered: not cancelled
        cancel()
        del cancel
        assert live_nodes() == base
    stop = context.after_func(parent, lambda: None)
    assert live_nodes() == base + 1
    assert stop() is True
    assert stop() is False
    del stop
    assert live_nodes() == base
    cancel_parent()


def test_uncancelled_child_lives_with_parent_while_held():
    """As in Go: a child nobody cancels stays registered while it can be
    used (held, or its done() held), until its parent is cancelled, and then
    it is released and done."""
    parent, cancel_parent = context.with_cancel(context.background())
    base = live_nodes()
    held = [context.with_cancel(parent)[0] for _ in range(10)]
    done = context.with_cancel(parent)[0].done()  # only its done() is kept
    assert live_nodes() == base + 11
    cancel_parent()
    assert live_nodes() == base + 11  # still ours
    assert all(isinstance(c.err(), context.Canceled) for c in held)
    assert done.recv_ok() == (None, False)
    del held, done
    assert live_nodes() == base


def test_dropped_uncancelled_child_is_freed():
    """A child nobody cancels and nobody holds any more is dropped at once,
    as Go's collector drops it: without a cancel, memory stays flat."""
    parent, cancel_parent = context.with_cancel(context.background())
    base = live_nodes()
    for _ in range(1000):
        child, cancel = context.with_cancel(parent)
        child.done()
    del child, cancel
    assert live_nodes() == base
    deep = parent
    for _ in range(10_000):  # a chain: each is held only by the next
        deep, _ = context.with_cancel(deep)
    assert live_nodes() == base + 10_000
    del deep, _
    assert live_nodes() == base
    # A deadline holds its context until it fires; an after_func stays
    # registered without its stop function, and runs with the parent.
    context.with_timeout(parent, 0.5)
    assert live_nodes() == base + 1
    assert wait_until(lambda: live_nodes() == base)
    ran = gopy.Chan(1)
    context.after_func(parent, lambda: ran.send("ran"))
    assert live_nodes() == base + 1
    cancel_parent()
    assert recv_value(ran, 30) == "ran"
    assert wait_until(lambda: live_nodes() == base)


@pytest.mark.timeout(300)
def test_million_children_leave_memory_flat():
    """Making and cancelling a million children of one context leaves the
    runtime's node count where it was and the process's memory flat."""
    parent, cancel_parent = context.with_cancel(context.background())
    parent.done()
    base = live_nodes()

    def rss():
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def churn(n):
        with_cancel, with_timeout = context.with_cancel, context.with_timeout
        for i in range(n):
            c, cancel = with_timeout(parent, 3600) if i % 4 == 0 else with_cancel(parent)
            if i % 2 == 0:
                c.done()
            cancel()

    churn(100_000)  # warm up allocator pools
    collect()
    rss0 = rss()
    churn(1_000_000)
    collect()
    assert live_nodes() == base
    grown = rss() - rss0
    assert grown < 32 * 1024 * 1024, f"RSS grew by {grown} bytes"
    assert parent.err() is None
    cancel_parent()


# ---- deadlines and timeouts ----------------------------------------------------------


def test_deadline():
    d = time.time() + 0.05
    ctx, cancel = context.with_deadline(context.background(), d)
    assert ctx.deadline() == (d, True)
    assert ctx.err() is None
    await_done(ctx)
    assert time.time() >= d - SLACK
    assert isinstance(ctx.err(), context.DeadlineExceeded)
    cancel()  # after expiry: err stays DeadlineExceeded
    assert isinstance(ctx.err(), context.DeadlineExceeded)
    assert isinstance(context.cause(ctx), context.DeadlineExceeded)


def test_deadline_as_datetime():
    when = datetime.datetime.now() + datetime.timedelta(milliseconds=30)
    ctx, cancel = context.with_deadline(context.background(), when)
    assert ctx.deadline() == (when.timestamp(), True)
    await_done(ctx)
    assert isinstance(ctx.err(), context.DeadlineExceeded)
    cancel()


def test_past_deadline_cancels_at_once():
    for d in (time.time() - 1, 0, -5, datetime.datetime(2000, 1, 1)):
        ctx, cancel = context.with_deadline(context.background(), d)
        assert is_done(ctx)
        assert isinstance(ctx.err(), context.DeadlineExceeded)
    for t in (0, -1, datetime.timedelta(seconds=-2)):
        ctx, cancel = context.with_timeout(context.background(), t)
        assert is_done(ctx)
        assert isinstance(ctx.err(), context.DeadlineExceeded)
        assert ctx.deadline()[1] is True


def test_parent_earlier_deadline_wins():
    d = time.time() + 0.05
    parent, cancel_parent = context.with_deadline(context.background(), d)
    child, cancel_child = context.with_deadline(parent, d + 3600)
    assert child.deadline() == (d, True)
    t_child, _ = context.with_timeout(parent, 3600)
    assert t_child.deadline() == (d, True)
    c_child, _ = context.with_cancel(parent)
    assert c_child.deadline() == (d, True)
    early, _ = context.with_deadline(parent, d - 0.02)
    assert early.deadline() == (d - 0.02, True)
    await_done(parent)   # parent done: so is everything derived from it
    for c in (parent, child, t_child, c_child, early):
        assert isinstance(c.err(), context.DeadlineExceeded)
    cancel_child()
    cancel_parent()


def test_timeout():
    t0 = time.time()
    ctx, cancel = context.with_timeout(context.background(), 0.05)
    d, ok = ctx.deadline()
    assert ok and t0 + 0.05 - SLACK <= d <= time.time() + 0.05 + SLACK
    await_done(ctx)
    assert time.time() >= t0 + 0.05 - SLACK
    assert isinstance(ctx.err(), context.DeadlineExceeded)
    cancel()
    ctx, cancel = context.with_timeout(context.background(), datetime.timedelta(milliseconds=20))
    await_done(ctx)
    cancel()


def test_canceled_timeout():
    ctx, cancel = context.with_timeout(context.background(), 1.0)
    o = context.with_value(ctx, "k", 1)
    cancel()
    assert is_done(o)
    assert isinstance(o.err(), context.Canceled)


def test_timeout_children_expire_together():
    ctx, cancel = context.with_timeout(context.background(), 0.03)
    kids = [context.with_cancel(ctx)[0] for _ in range(50)]
    await_done(ctx)
    for k in kids:
        assert is_done(k) and isinstance(k.err(), context.DeadlineExceeded)
    cancel()


# ---- values -------------------------------------------------------------------------------


def test_values():
    """Go's TestValues: lookups walk up the chain; a nearer key shadows."""
    k1, k2, k3 = FavContextKey("k1"), FavContextKey("k2"), FavContextKey("k3")

    def check(c, nm, v1, v2, v3):
        assert (c.value(k1), c.value(k2), c.value(k3)) == (v1, v2, v3), nm

    c0 = context.background()
    check(c0, "c0", None, None, None)
    c1 = context.with_value(context.background(), k1, "c1k1")
    check(c1, "c1", "c1k1", None, None)
    c2 = context.with_value(c1, k2, "c2k2")
    check(c2, "c2", "c1k1", "c2k2", None)
    c3 = context.with_value(c2, k3, "c3k3")
    check(c3, "c3", "c1k1", "c2k2", "c3k3")
    c4 = context.with_value(c3, k1, None)
    check(c4, "c4", None, "c2k2", "c3k3")
    o0 = context.todo()
    check(o0, "o0", None, None, None)
    o1 = context.with_value(context.background(), k1, "c1k1")
    check(o1, "o1", "c1k1", None, None)
    o2 = context.with_value(o1, k2, "o2k2")
    check(o2, "o2", "c1k1", "o2k2", None)
    o3 = context.with_cancel(o2)[0]
    check(o3, "o3", "c1k1", "o2k2", None)
    o4 = context.with_value(o3, k3, None)
    check(o4, "o4", "c1k1", "o2k2", None)
    o5, _ = context.with_timeout(o4, 3600)
    check(o5, "o5", "c1k1", "o2k2", None)


def test_value_keys_match_by_equality():
    ctx = context.with_value(context.background(), ("user", 1), "alice")
    assert ctx.value(("user", 1)) == "alice"
    assert ctx.value(("user", 2)) is None
    ctx = context.with_value(ctx, 1, "int")
    assert ctx.value(1.0) == "int"   # 1 == 1.0, like dict keys
    assert ctx.value(True) == "int"
    assert "with_value" in repr(ctx)


def test_value_bad_keys():
    with pytest.raises(TypeError):
        context.with_value(context.background(), None, 1)      # Go: nil key
    with pytest.raises(TypeError):
        context.with_value(context.background(), [1], 1)       # Go: not comparable
    with pytest.raises(TypeError):
        context.background().value([1])


def test_without_cancel():
    parent, cancel = context.with_timeout(context.with_value(context.background(), "k", "v"),
                                          3600)
    wc = context.without_cancel(parent)
    cancel()
    assert isinstance(parent.err(), context.Canceled)
    assert wc.done() is None
    assert wc.err() is None
    assert wc.deadline() == (None, False)
    assert wc.value("k") == "v"
    child, cancel_child = context.with_cancel(wc)
    assert child.err() is None and child.value("k") == "v"
    cancel_child()
    assert isinstance(child.err(), context.Canceled)


def test_bad_arguments():
    for f in (context.with_cancel, context.with_cancel_cause, context.without_cancel,
              context.cause):
        with pytest.raises(TypeError):
            f(None)
        with pytest.raises(TypeError):
            f("ctx")
    with pytest.raises(TypeError):
        context.with_timeout(None, 1)
    with pytest.raises(TypeError):
        context.with_timeout(context.background(), "1s")
    with pytest.raises(TypeError):
        context.with_deadline(context.background(), "tomorrow")
    with pytest.raises(ValueError):
        context.with_deadline(context.background(), float("nan"))
    with pytest.raises(TypeError):
        context.with_value(context.background(), "k")
    with pytest.raises(TypeError):
        context.after_func(context.background(), 42)
    with pytest.raises(TypeError):
        context.with_cancel(context.background())[1](1)   # plain cancel takes no cause
    with pytest.raises(TypeError):
        context.Context()


# ---- causes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("canceller", ["main thread", "goroutine"])
def test_cancel_of_many_waiters_wakes_each_once_and_each_sees_the_cause(canceller):
    # Past 256 wake-ups a cancel lets the GIL go once its cause is stored
    # (as Chan.close does): every waiter, on the context or on a child, is
    # woken once and sees the cause of the one cancel that won a race.
    n, n_children = 1000, 300
    ctx, cancel = context.with_cancel_cause(context.background())
    children = [context.with_cancel(ctx)[0] for _ in range(n_children)]
    seen = gopy.Chan(n + n_children)

    def waiter(i, c):
        c.done().recv()
        seen.send((i, context.cause(c), type(c.err())))

    for i in range(n):
        gopy.go(waiter, i, ctx)
    for i, child in enumerate(children):
        gopy.go(waiter, n + i, child)
    assert wait_until(lambda: parked_on(ctx.done(), "chan receive") == n)
    assert wait_until(lambda: sum(parked_on(c.done(), "chan receive") for c in children)
                      == n_children)
    causes = [ValueError("mine"), KeyError("theirs")]
    rival = threading.Thread(target=cancel, args=(causes[1],))
    out = gopy.Chan(1)
    if canceller == "main thread":
        rival.start()
        cancel(causes[0])
    else:
        def in_goroutine():
            cancel(causes[0])
            out.send(threading.get_ident())

        gopy.go(in_goroutine)
        rival.start()
        assert recv_value(out) != threading.get_ident()
    join_all([rival])
    won = context.cause(ctx)
    assert any(won is c for c in causes)
    got = sorted((recv_value(seen) for _ in range(n + n_children)), key=lambda r: r[0])
    assert [i for i, _, _ in got] == list(range(n + n_children))
    assert all(cause is won and err is context.Canceled for _, cause, err in got)
    assert nothing_ready(seen)


def test_cause():
    parent_cause = ValueError("parent cause")
    child_cause = KeyError("child cause")
    expiry = RuntimeError("too slow")

    ctx, cancel = context.with_cancel_cause(context.background())
    assert context.cause(ctx) is None
    cancel()
    assert isinstance(context.cause(ctx), context.Canceled)

    ctx, cancel = context.with_cancel_cause(context.background())
    cancel(parent_cause)
    assert context.cause(ctx) is parent_cause
    assert isinstance(ctx.err(), context.Canceled)
    cancel(child_cause)  # the first cancel wins
    assert context.cause(ctx) is parent_cause

    parent, cancel_parent = context.with_cancel_cause(context.background())
    child, cancel_child = context.with_cancel_cause(parent)
    plain, _ = context.with_cancel(parent)
    cancel_parent(cause=parent_cause)
    assert context.cause(child) is parent_cause
    assert context.cause(plain) is parent_cause
    cancel_child(child_cause)
    assert context.cause(child) is parent_cause

    parent, cancel_parent = context.with_cancel_cause(context.background())
    child, cancel_child = context.with_cancel_cause(parent)
    cancel_child(child_cause)
    cancel_parent(parent_cause)
    assert context.cause(child) is child_cause
    assert context.cause(parent) is parent_cause

    # The expiry cause applies only on expiry.
    ctx, cancel = context.with_timeout_cause(context.background(), 0.01, expiry)
    await_done(ctx)
    assert context.cause(ctx) is expiry
    assert isinstance(ctx.err(), context.DeadlineExceeded)
    ctx, cancel = context.with_deadline_cause(context.background(), time.time() + 3600, expiry)
    cancel()
    assert isinstance(context.cause(ctx), context.Canceled)
    ctx, cancel = context.with_deadline_cause(context.background(), time.time() - 1, expiry)
    assert context.cause(ctx) is expiry
    # A child of an expired parent has the parent's cause.
    parent, _ = context.with_timeout_cause(context.background(), 0, expiry)
    child, _ = context.with_cancel(parent)
    assert context.cause(child) is expiry


def test_cause_reference_dropped_with_contexts():
    class Cause(Exception):
        pass

    import weakref
    cause = Cause()
    ref = weakref.ref(cause)
    parent, cancel = context.with_cancel_cause(context.background())
    kids = [context.with_cancel(parent) for _ in range(3)]
    cancel(cause)
    del cause, parent, cancel, kids
    collect()
    assert ref() is None


# ---- TestSimultaneousCancels, TestInterlockedCancels, TestLayersCancel ---------------


@pytest.mark.timeout(300)
def test_simultaneous_cancels():
    root, cancel = context.with_cancel(context.background())
    m = {root: cancel}
    q = [root]
    while q and len(m) < 100:
        parent = q.pop(0)
        for _ in range(4):
            ctx, c = context.with_cancel(parent)
            m[ctx] = c
            q.append(ctx)
    done = gopy.Chan(len(m))
    for c in m.values():
        gopy.go(lambda c=c: (c(), done.send(None)))
    for ctx in m:
        await_done(ctx)
    for _ in m:
        recv_value(done)
    for ctx in m:
        assert isinstance(ctx.err(), context.Canceled)


@pytest.mark.timeout(300)
def test_parent_done_means_subtree_done():
    """Whoever sees a context done sees every context derived from it done
    (and err() is set exactly when done is closed)."""
    for _ in range(20):
        parent, cancel = context.with_cancel(context.background())
        kids = [context.with_timeout(parent, 3600)[0] if i % 2 else
                context.with_cancel(parent)[0] for i in range(30)]
        grand = [context.with_cancel(k)[0] for k in kids]
        out = gopy.Chan(1)

        def watch():
            parent.done().recv()
            out.send(sum(1 for c in kids + grand if not is_done(c) or c.err() is None))

        gopy.go(watch)
        run_in_thread(cancel)
        assert recv_value(out) == 0


def test_interlocked_cancels():
    parent, cancel_parent = context.with_cancel(context.background())
    child, cancel_child = context.with_cancel(parent)
    gopy.go(lambda: (parent.done().recv(), cancel_child()))
    cancel_parent()
    await_done(child)


@pytest.mark.parametrize("test_timeout", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_layers(seed, test_timeout):
    """Go's testLayers: a random stack of values, cancels and timeouts;
    cancelling any layer (or the timeout) reaches the top, and the values
    stay visible."""
    r = random.Random(seed)
    vals, cancels, num_timers = [], [], 0
    ctx = context.background()
    i = 0
    while i < 30 or num_timers == 0 or not cancels or not vals:
        kind = r.randrange(3)
        if kind == 0:
            v = object()
            ctx = context.with_value(ctx, v, v)
            vals.append(v)
        elif kind == 1:
            ctx, cancel = context.with_cancel(ctx)
            cancels.append(cancel)
        else:
            ctx, cancel = context.with_timeout(ctx, 0.1 if test_timeout else 3600)
            cancels.append(cancel)
            num_timers += 1
        i += 1

    def check_values():
        for key in vals:
            assert ctx.value(key) is key

    if not test_timeout:
        assert not is_done(ctx)
    check_values()
    if test_timeout:
        await_done(ctx)
        assert isinstance(ctx.err(), context.DeadlineExceeded)
    else:
        r.choice(cancels)()
        assert is_done(ctx)
        assert isinstance(ctx.err(), context.Canceled)
    check_values()
    for c in cancels:
        c()


@pytest.mark.timeout(300)
def test_deep_chain():
    """A chain far deeper than any C stack could recurse through."""
    base = live_nodes()
    root, cancel = context.with_cancel(context.background())
    ctx = root
    cancels = []
    for i in range(100_000):
        if i % 10 == 0:
            ctx = context.with_value(ctx, i, i)
        ctx, c = context.with_cancel(ctx)
        cancels.append(c)
    assert ctx.value(50_000) == 50_000
    run_in_goroutine(cancel)
    assert is_done(ctx)
    del ctx, root, cancel, cancels, c
    assert live_nodes() == base


# ---- after_func ----------------------------------------------------------------------------


def test_after_func_called_after_cancel():
    ran = gopy.Chan(1)
    ctx, cancel = context.with_cancel(context.background())
    stop = context.after_func(ctx, lambda: ran.send(gopy._gopy.goid()))
    assert nothing_ready(ran)
    cancel()
    gid = recv_value(ran)
    assert gid > 0  # in a goroutine of its own
    assert stop() is False


def test_after_func_called_after_timeout():
    ran = gopy.Chan(1)
    ctx, cancel = context.with_timeout(context.background(), 0.02)
    context.after_func(ctx, lambda: ran.send(ctx.err()))
    assert isinstance(recv_value(ran), context.DeadlineExceeded)
    cancel()


def test_after_func_called_immediately():
    ran = gopy.Chan(1)
    ctx, cancel = context.with_cancel(context.background())
    cancel()
    stop = context.after_func(ctx, lambda: ran.send("ran"))
    assert recv_value(ran) == "ran"
    assert stop() is False


def test_after_func_not_called_after_stop():
    ran = gopy.Chan(1)
    ctx, cancel = context.with_cancel(context.background())
    stop = context.after_func(ctx, lambda: ran.send("ran"))
    assert stop() is True
    assert stop() is False
    cancel()
    gopy.sleep(0.02)
    assert nothing_ready(ran)


def test_after_func_runs_asynchronously():
    """fn runs in its own goroutine: cancel does not wait for it."""
    release = gopy.Chan()
    finished = gopy.Chan(1)
    ctx, cancel = context.with_cancel(context.background())
    context.after_func(ctx, lambda: (release.recv(), finished.send("done")))
    cancel()           # returns although fn is blocked
    release.send(None)
    assert recv_value(finished) == "done"


def test_after_func_never_done_context():
    stop = context.after_func(context.background(), lambda: None)
    assert stop() is True
    assert stop() is False


def test_after_func_exception_goes_to_excepthook():
    seen = gopy.Chan(1)
    old = gopy.excepthook
    gopy.excepthook = lambda exc, gid: seen.send(exc)
    try:
        ctx, cancel = context.with_cancel(context.background())
        context.after_func(ctx, lambda: 1 / 0)
        cancel()
        assert isinstance(recv_value(seen), ZeroDivisionError)
    finally:
        gopy.excepthook = old


def test_after_func_references_released():
    import weakref

    class Fn:
        def __call__(self):
            pass

    for stop_first in (True, False):
        fn = Fn()
        ref = weakref.ref(fn)
        ctx, cancel = context.with_cancel(context.background())
        stop = context.after_func(ctx, fn)
        del fn
        if stop_first:
            assert stop()
        cancel()
        del stop, ctx, cancel
        assert wait_until(lambda: (collect(), gopy.sleep(0.001), ref() is None)[-1])


# ---- cancellation reaches every kind of waiter ---------------------------------------------


def test_cancel_wakes_goroutines_blocked_anywhere():
    """Goroutines blocked in select on ctx.done() next to a receive, a send
    on a full channel, a timer and a nil channel all wake on cancel."""
    ctx, cancel = context.with_cancel(context.background())
    woke = gopy.Chan(10)
    full = gopy.Chan(1)
    full.send(0)
    never = gopy.Chan()
    cases = {
        "recv": lambda: select(Recv(never), Recv(ctx.done())),
        "send": lambda: select(Send(full, 1), Recv(ctx.done())),
        "timer": lambda: select(Recv(gopy.after(3600)), Recv(ctx.done())),
        "nil": lambda: select(Recv(None), Recv(ctx.done())),
        "only": lambda: (1, *ctx.done().recv_ok()),
    }
    for name, f in cases.items():
        gopy.go(lambda name=name, f=f: woke.send((name, f())))
    gopy.sleep(0.05)
    assert nothing_ready(woke)
    cancel()
    got = dict(recv_value(woke) for _ in cases)
    assert got == {name: (1, None, False) for name in cases}


def test_cancel_wakes_threads_and_main_thread():
    ctx, cancel = context.with_cancel(context.background())
    results = []

    def wait():
        i, v, ok = select(Recv(ctx.done()), Recv(gopy.Chan()))
        results.append((i, ok, type(ctx.err()).__name__))

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for t in threads:
        t.start()
    gopy.after_func(0.05, cancel)
    wait()   # the main thread
    for t in threads:
        t.join(HANG)
        assert not t.is_alive()
    assert results == [(0, False, "Canceled")] * 4


def test_cancel_from_thread_wakes_goroutines():
    ctx, cancel = context.with_cancel(context.background())
    out = gopy.Chan(10)
    for _ in range(10):
        gopy.go(lambda: out.send(ctx.done().recv_ok()))
    gopy.sleep(0.02)
    run_in_thread(cancel)
    assert [recv_value(out) for _ in range(10)] == [(None, False)] * 10


@pytest.mark.timeout(300)
def test_many_goroutines_woken_by_one_cancel():
    n = 10_000
    ctx, cancel = context.with_cancel(context.background())
    counter = itertools.count(1)
    finished = gopy.Chan(1)
    done = ctx.done()

    def parked():
        done.recv()
        if next(counter) == n:
            finished.send(None)

    for _ in range(n):
        gopy.go(parked)
    gopy.sleep(0.05)
    cancel()
    recv_value(finished, timeout=60)


# ---- C: the context C API and C goroutines honouring Python contexts -------------------


@pytest.fixture(scope="module")
def clib(tmp_path_factory):
    import ctypes
    lib = build_data_lib(tmp_path_factory, "context_lib.c")
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    lib.ctx_lib_init.argtypes = [ctypes.c_void_p]
    lib.ctx_lib_init(get(gopy._gopy._C_API, b"gopy._gopy._C_API"))
    lib.ctx_make_timeout.restype = ctypes.c_void_p
    lib.ctx_make_timeout.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.ctx_release.argtypes = [ctypes.c_void_p]
    lib.ctx_cancel.argtypes = [ctypes.c_void_p]
    lib.ctx_err.argtypes = [ctypes.c_void_p]
    return lib


class Waiter:
    """Arguments of context_lib.c's wait_done goroutine."""

    def __init__(self, ctx, out):
        import ctypes

        class Job(ctypes.Structure):
            _fields_ = [("ctx", ctypes.c_void_p), ("out", ctypes.c_void_p)]

        self.job = Job(ctx.handle, out.handle)
        self.ptr = ctypes.pointer(self.job)


def test_c_goroutines_honour_python_context(clib):
    import ctypes
    ctx, cancel = context.with_cancel(context.background())
    child = context.with_value(ctx, "k", "v")   # shares ctx's handle
    out = gopy.Chan(8, ctype=ctypes.c_int64)
    waiters = [Waiter(c, out) for c in (ctx, child, ctx)]
    for w in waiters:
        gopy.go_c(clib.wait_done, w.ptr)
    gopy.sleep(0.05)
    assert len(out) == 0
    cancel()
    assert sorted(recv_value(out) for _ in waiters) == [1, 1, 1]  # GOPY_CTX_CANCELED


def test_c_goroutine_deadline_from_python(clib):
    import ctypes
    ctx, cancel = context.with_timeout(context.background(), 0.03)
    out = gopy.Chan(1, ctype=ctypes.c_int64)
    w = Waiter(ctx, out)
    gopy.go_c(clib.wait_done, w.ptr)
    assert recv_value(out) == 2  # GOPY_CTX_DEADLINE_EXCEEDED
    cancel()


def test_context_made_in_c(clib):
    h = clib.ctx_make_timeout(context.background().handle, 3600 * 10**9)
    ctx = context.Context.from_handle(h)
    clib.ctx_release(h)  # the Python object holds its own reference
    d, ok = ctx.deadline()
    assert ok and abs(d - (time.time() + 3600)) < 60
    child, cancel = context.with_cancel(ctx)
    clib.ctx_cancel(ctx.handle)
    assert is_done(child) and isinstance(child.err(), context.Canceled)
    assert clib.ctx_err(child.handle) == 1


@pytest.mark.parametrize("bad", [0, -1, 3, True, 2**70])
def test_from_handle_refuses_what_cannot_be_an_address(bad):
    with pytest.raises(ValueError, match="invalid context handle"):
        context.Context.from_handle(bad)


def test_from_handle_wants_an_int():
    with pytest.raises(TypeError, match="context handle must be an int, not str"):
        context.Context.from_handle("0x10")


def test_capsule_table_has_context_api(clib):
    import ctypes
    # context_lib.c checked the table's size in ctx_lib_init and made a
    # context through it; background's handle is the runtime's root.
    assert clib.ctx_background_is(ctypes.c_void_p(context.background().handle)) == 1


def test_cause_cycle_through_traceback_is_collected():
    """An exception given as cause whose traceback reaches the frame that
    holds its context is an ordinary cycle: the collector frees it."""
    import weakref

    class Marker:
        pass

    def handler():
        marker = Marker()
        ctx, cancel = context.with_cancel_cause(context.background())
        child, cancel_child = context.with_cancel(ctx)
        try:
            raise ValueError("failed")
        except ValueError as e:
            cancel(e)
        assert isinstance(context.cause(child), ValueError)
        return weakref.ref(marker)

    base = live_nodes()
    refs = [handler() for _ in range(50)]
    collect()
    assert [r() for r in refs] == [None] * 50
    assert live_nodes() == base


@pytest.mark.timeout(300)
def test_docs_examples_run():
    """Every Python example of docs/context.md runs."""
    import re
    import sys
    path = os.path.join(os.path.dirname(HERE), "docs", "context.md")
    with open(path) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) >= 10
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    for block in blocks:
        r = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                           timeout=120, env=env)
        assert r.returncode == 0, f"example failed:\n{block}\n{r.stderr}"
