"""gopy.Chan and its views: rendezvous, buffering, close, iteration, views,
identity and reference counts (docs/api.md, "Channels")."""

import ctypes
import gc
import sys
import threading
import time
import typing
import weakref

import pytest

import gopy
from conftest import (CLASSES_IMMORTAL, collect, nothing_ready, parked_on, recv_value,
                      run_in_goroutine, run_script, wait_until)


class Obj:
    """A weak-referenceable payload."""

    def __init__(self, n=0):
        self.n = n


# ---- unbuffered rendezvous ------------------------------------------------------


def test_unbuffered_goroutine_to_main_rendezvous():
    for _ in range(3):
        ch = gopy.Chan()
        events = []

        def sender():
            ch.send("hello")
            events.append("sent")

        gopy.go(sender)
        time.sleep(0.1)
        # Nobody has received: an unbuffered send cannot have completed.
        assert events == []
        assert len(ch) == 0
        assert ch.recv() == "hello"
        assert wait_until(lambda: events == ["sent"])


def test_unbuffered_main_to_goroutine_rendezvous():
    for _ in range(3):
        ch = gopy.Chan()
        got = gopy.Chan(1)
        started = []

        def receiver():
            started.append(1)
            got.send(ch.recv())

        gopy.go(receiver)
        ch.send(("payload", 7))  # completes only when the goroutine takes it
        assert started == [1]
        assert recv_value(got) == ("payload", 7)


def test_unbuffered_between_two_goroutines():
    ch = gopy.Chan()
    result = gopy.Chan(1)

    def producer():
        for i in range(200):
            ch.send(i)
        ch.close()

    def consumer():
        result.send([v for v in ch])

    gopy.go(consumer)
    gopy.go(producer)
    assert recv_value(result) == list(range(200))


def test_unbuffered_send_blocks_until_received_goroutines():
    # The sender's "after" marker can only appear once the value was taken.
    ch = gopy.Chan()
    log = gopy.Chan(10)

    def sender():
        ch.send(1)
        log.send("sent")

    def receiver():
        gopy.sleep(0.1)
        log.send("receiving")
        assert ch.recv() == 1

    gopy.go(sender)
    gopy.go(receiver)
    assert [recv_value(log), recv_value(log)] == ["receiving", "sent"]


# ---- buffering ------------------------------------------------------------------


def test_buffered_fifo_len_cap():
    ch = gopy.Chan(5)
    assert ch.cap == 5
    assert len(ch) == 0
    for i in range(5):
        ch.send(i * 10)  # never blocks: room in the buffer
        assert len(ch) == i + 1
    assert ch.cap == 5
    assert [ch.recv() for _ in range(5)] == [0, 10, 20, 30, 40]
    assert len(ch) == 0


def test_unbuffered_len_cap():
    ch = gopy.Chan()
    assert ch.cap == 0
    assert len(ch) == 0
    assert gopy.Chan(0).cap == 0
    assert gopy.Chan(cap=3).cap == 3


def test_channels_and_views_are_true_empty_or_not():
    # Only a nil channel (None) is false, as in Go: `if ch:`, `tick(d) or []`.
    empty, full = gopy.Chan(), gopy.Chan(1)
    full.send(1)
    closed = gopy.Chan(2)
    closed.close()
    for ch in (empty, full, closed):
        for obj in (ch, ch.send_only(), ch.recv_only()):
            assert bool(obj) is True
    assert len(empty) == 0 and len(full) == 1
    ticker, timer = gopy.Ticker(3600), gopy.Timer(3600)
    assert (ticker.c or None) is ticker.c and bool(timer.c) is True
    ticker.stop()
    timer.stop()


def test_buffered_full_send_blocks_until_recv():
    ch = gopy.Chan(2)
    ch.send("a")
    ch.send("b")
    done = []

    def third():
        ch.send("c")
        done.append(1)

    gopy.go(third)
    time.sleep(0.1)
    assert done == []
    assert len(ch) == 2
    assert ch.recv() == "a"
    assert wait_until(lambda: done == [1])
    assert len(ch) == 2
    assert [ch.recv(), ch.recv()] == ["b", "c"]


def test_fifo_many_values_through_small_buffer():
    ch = gopy.Chan(3)

    def producer():
        for i in range(1000):
            ch.send(i)
        ch.close()

    gopy.go(producer)
    assert list(ch) == list(range(1000))


# ---- close ------------------------------------------------------------------------


def test_recv_on_closed_drained():
    ch = gopy.Chan()
    ch.close()
    assert ch.recv() is None
    assert ch.recv_ok() == (None, False)
    assert ch.recv() is None  # again: at once, every time
    b = gopy.Chan(3)
    b.close()
    assert b.recv_ok() == (None, False)


def test_buffered_values_survive_close_in_order():
    ch = gopy.Chan(4)
    ch.send("x")
    ch.send(None)  # a real None value is (None, True)
    ch.send("z")
    ch.close()
    assert len(ch) == 3
    assert ch.recv_ok() == ("x", True)
    assert ch.recv_ok() == (None, True)
    assert ch.recv() == "z"
    assert ch.recv_ok() == (None, False)
    assert len(ch) == 0


def test_recv_ok_returns_tuple_of_value_and_true():
    ch = gopy.Chan(1)
    ch.send(0)
    r = ch.recv_ok()
    assert type(r) is tuple and r == (0, True)
    assert r[1] is True


def test_close_twice_raises():
    ch = gopy.Chan(1)
    ch.close()
    with pytest.raises(gopy.ClosedChannelError):
        ch.close()
    with pytest.raises(RuntimeError):  # ClosedChannelError subclasses it
        ch.close()
    assert issubclass(gopy.ClosedChannelError, RuntimeError)


def test_send_on_closed_raises():
    for cap in (0, 1, 5):
        ch = gopy.Chan(cap)
        ch.close()
        with pytest.raises(gopy.ClosedChannelError):
            ch.send(1)
        assert len(ch) == 0


def test_close_wakes_all_blocked_receivers_goroutines_and_threads():
    for _ in range(3):
        ch = gopy.Chan()
        results = gopy.Chan(100)
        n_g, n_t = 8, 4

        def receiver(tag):
            results.send((tag, ch.recv_ok()))

        for i in range(n_g):
            gopy.go(receiver, f"g{i}")
        threads = [threading.Thread(target=receiver, args=(f"t{i}",)) for i in range(n_t)]
        for t in threads:
            t.start()
        assert wait_until(lambda: parked_on(ch, "chan receive") == n_g)
        time.sleep(0.05)  # let the threads reach recv (not required for correctness)
        ch.close()
        got = sorted(recv_value(results) for _ in range(n_g + n_t))
        want = sorted([(f"g{i}", (None, False)) for i in range(n_g)]
                      + [(f"t{i}", (None, False)) for i in range(n_t)])
        assert got == want
        for t in threads:
            t.join(30)
            assert not t.is_alive()
        assert nothing_ready(results)


@pytest.mark.parametrize("closer", ["main thread", "goroutine"])
def test_close_of_many_receivers_wakes_each_once_and_closes_once(closer):
    # Past 256 receivers close lets the GIL go while it wakes them (W8w):
    # the same values, one close winning a race with another, and the
    # closer's own code goes on after it as before.
    ch, results = gopy.Chan(), gopy.Chan(1000)
    n = 1000

    def receiver(i):
        results.send((i, ch.recv_ok()))

    for i in range(n):
        gopy.go(receiver, i)
    assert wait_until(lambda: parked_on(ch, "chan receive") == n)
    raised, out = gopy.Chan(2), gopy.Chan(1)

    def close():
        try:
            ch.close()
            raised.send(False)
        except gopy.ClosedChannelError:
            raised.send(True)

    rival = threading.Thread(target=close)
    if closer == "main thread":
        rival.start()
        close()
    else:
        def in_goroutine():
            close()
            out.send(threading.get_ident())

        gopy.go(in_goroutine)
        rival.start()
        assert recv_value(out) != threading.get_ident()
    rival.join(30)
    assert sorted(recv_value(raised) for _ in range(2)) == [False, True]
    assert sorted(recv_value(results) for _ in range(n)) == [(i, (None, False)) for i in range(n)]
    assert nothing_ready(results)


def test_close_wakes_all_blocked_senders():
    for cap in (0, 2):
        ch = gopy.Chan(cap)
        for i in range(cap):
            ch.send(f"buffered{i}")
        results = gopy.Chan(100)
        n_g, n_t = 6, 3

        def sender(tag):
            try:
                ch.send(tag)
                results.send((tag, "sent"))
            except gopy.ClosedChannelError:
                results.send((tag, "closed"))

        for i in range(n_g):
            gopy.go(sender, f"g{i}")
        threads = [threading.Thread(target=sender, args=(f"t{i}",)) for i in range(n_t)]
        for t in threads:
            t.start()
        assert wait_until(lambda: parked_on(ch, "chan send") == n_g)
        time.sleep(0.05)
        ch.close()
        got = sorted(recv_value(results) for _ in range(n_g + n_t))
        want = sorted([(f"g{i}", "closed") for i in range(n_g)]
                      + [(f"t{i}", "closed") for i in range(n_t)])
        assert got == want
        for t in threads:
            t.join(30)
        # The values buffered before the close are still there, in order.
        assert [ch.recv_ok() for _ in range(cap + 1)] == (
            [(f"buffered{i}", True) for i in range(cap)] + [(None, False)])


def test_close_from_goroutine_wakes_main_thread():
    ch = gopy.Chan()

    def closer():
        gopy.sleep(0.05)
        ch.close()

    gopy.go(closer)
    assert ch.recv_ok() == (None, False)


# ---- iteration ---------------------------------------------------------------------


def test_iteration_ends_at_close():
    ch = gopy.Chan(2)

    def producer():
        for i in range(10):
            ch.send(i)
        ch.close()

    gopy.go(producer)
    seen = []
    for v in ch:
        seen.append(v)
    assert seen == list(range(10))
    assert list(ch) == []  # still closed: an empty range


def test_iter_returns_self_and_next():
    ch = gopy.Chan(2)
    assert iter(ch) is ch
    ch.send("a")
    ch.close()
    assert next(ch) == "a"
    with pytest.raises(StopIteration):
        next(ch)


def test_iteration_delivers_none_values():
    ch = gopy.Chan(3)
    ch.send(None)
    ch.send(0)
    ch.send(None)
    ch.close()
    assert list(ch) == [None, 0, None]


def test_iteration_in_goroutine_over_recv_only():
    ch = gopy.Chan()
    r = ch.recv_only()

    def consume():
        return [v * 2 for v in r]

    out = gopy.Chan(1)
    gopy.go(lambda: out.send(consume()))
    for i in range(5):
        ch.send(i)
    ch.close()
    assert recv_value(out) == [0, 2, 4, 6, 8]


# ---- views ---------------------------------------------------------------------------


def test_send_only_view_members():
    ch = gopy.Chan(3)
    s = ch.send_only()
    assert isinstance(s, gopy.SendChan)
    assert not isinstance(s, gopy.Chan)
    for name in ("recv", "recv_ok", "send_only", "recv_only"):
        with pytest.raises(AttributeError):
            getattr(s, name)
    with pytest.raises(TypeError):
        iter(s)
    s.send(1)
    s.send(2)
    assert len(s) == 2
    assert s.cap == 3
    assert ch.recv() == 1
    s.close()
    assert ch.recv_ok() == (2, True)
    assert ch.recv_ok() == (None, False)
    with pytest.raises(gopy.ClosedChannelError):
        s.send(3)
    with pytest.raises(gopy.ClosedChannelError):
        s.close()


def test_recv_only_view_members():
    ch = gopy.Chan(3)
    r = ch.recv_only()
    assert isinstance(r, gopy.RecvChan)
    assert not isinstance(r, gopy.Chan)
    for name in ("send", "close", "send_only", "recv_only"):
        with pytest.raises(AttributeError):
            getattr(r, name)
    ch.send("a")
    ch.send("b")
    ch.send("c")
    assert len(r) == 3
    assert r.cap == 3
    assert r.recv() == "a"
    assert r.recv_ok() == ("b", True)
    ch.close()
    assert list(r) == ["c"]
    assert r.recv_ok() == (None, False)
    assert r.recv() is None


def test_views_compare_equal_to_their_channel():
    ch = gopy.Chan()
    other = gopy.Chan()
    s, r = ch.send_only(), ch.recv_only()
    assert s == ch and ch == s
    assert r == ch and ch == r
    assert s == r
    assert s != other.send_only()
    assert r != other
    assert ch != other
    assert not (ch == other)
    assert hash(s) == hash(r) == hash(ch)
    assert len({ch, s, r, ch.send_only(), other}) == 2
    assert ch.send_only() is not s  # a new view each time, still equal
    assert ch != 1 and not (ch == "x")


def test_view_constructors():
    ch = gopy.Chan(1)
    s = gopy.SendChan(ch)
    r = gopy.RecvChan(ch)
    assert s == ch and r == ch
    s.send(5)
    assert r.recv() == 5
    with pytest.raises(TypeError):
        gopy.SendChan(42)
    with pytest.raises(TypeError):
        gopy.RecvChan()


def test_views_work_in_select():
    ch = gopy.Chan(1)
    s, r = ch.send_only(), ch.recv_only()
    assert gopy.select(gopy.Send(s, "v")) == (0, None, True)
    assert gopy.select(gopy.Recv(r)) == (0, "v", True)
    assert gopy.select(gopy.Recv(r), default=True) == (-1, None, False)
    s.close()
    assert gopy.select(gopy.Recv(r)) == (0, None, False)


def test_views_keep_channel_alive():
    ch = gopy.Chan(1)
    ref = weakref.ref(ch)
    r = ch.recv_only()
    s = ch.send_only()
    del ch
    collect()
    assert ref() is not None  # the views hold the Chan
    s.send(9)
    assert r.recv() == 9
    del r, s
    collect()
    assert ref() is None


def test_views_across_goroutines():
    ch = gopy.Chan()
    s, r = ch.send_only(), ch.recv_only()

    def producer(out):
        for i in range(5):
            out.send(i)
        out.close()

    gopy.go(producer, s)
    assert list(r) == [0, 1, 2, 3, 4]


# ---- typing ---------------------------------------------------------------------------


def annotated(a: gopy.Chan[int], b: gopy.SendChan[str], c: gopy.RecvChan[bytes]) -> gopy.Chan[int]:
    return a


def test_generic_alias_in_annotations():
    alias = gopy.Chan[int]
    assert typing.get_origin(alias) is gopy.Chan
    assert typing.get_args(alias) == (int,)
    hints = typing.get_type_hints(annotated)
    assert hints == {"a": gopy.Chan[int], "b": gopy.SendChan[str], "c": gopy.RecvChan[bytes],
                     "return": gopy.Chan[int]}
    # Calling through the alias makes a real channel.
    ch = gopy.Chan[int](2)
    assert type(ch) is gopy.Chan and ch.cap == 2


def test_generic_alias_with_string_annotations():
    ns = {}
    exec("from __future__ import annotations\nimport gopy\n"
         "def f(x: gopy.Chan[list[int]]) -> gopy.RecvChan[float]: pass", ns)
    assert typing.get_type_hints(ns["f"]) == {"x": gopy.Chan[list[int]],
                                              "return": gopy.RecvChan[float]}


# ---- identity and reference counts -------------------------------------------------------


def test_objects_keep_identity():
    ch = gopy.Chan(3)
    objs = [object(), Obj(), [1, 2]]
    for o in objs:
        ch.send(o)
    for o in objs:
        assert ch.recv() is o
    # Through an unbuffered channel, goroutine to main.
    u = gopy.Chan()
    o = Obj()
    gopy.go(u.send, o)
    assert u.recv() is o
    # And main to goroutine.
    gopy.go(lambda: u.send(u.recv()))
    u.send(o)
    assert u.recv() is o


def test_refcount_after_buffered_round_trip():
    ch = gopy.Chan(2)
    for _ in range(3):
        o = Obj()
        before = sys.getrefcount(o)
        ch.send(o)
        assert sys.getrefcount(o) == before + 1  # the channel's one reference
        r = ch.recv()
        assert r is o
        del r
        assert sys.getrefcount(o) == before


def test_refcount_after_unbuffered_round_trip():
    ch = gopy.Chan()
    o = Obj()
    before = sys.getrefcount(o)
    for _ in range(10):
        gopy.go(ch.send, o)
        r = ch.recv()
        assert r is o
        del r
    assert wait_until(lambda: sys.getrefcount(o) == before)


def test_recv_ok_refcount():
    ch = gopy.Chan(1)
    o = Obj()
    before = sys.getrefcount(o)
    ch.send(o)
    t = ch.recv_ok()
    assert t == (o, True) and t[0] is o
    del t
    assert sys.getrefcount(o) == before


def test_dropping_channel_frees_buffered_objects():
    ch = gopy.Chan(5)
    objs = [Obj(i) for i in range(5)]
    refs = [weakref.ref(o) for o in objs]
    for o in objs:
        ch.send(o)
    del objs, o
    collect()
    assert all(r() is not None for r in refs)  # held by the channel
    del ch
    collect()
    assert [r() for r in refs] == [None] * 5


def test_dropping_closed_channel_frees_buffered_objects():
    ch = gopy.Chan(3)
    refs = []
    for i in range(3):
        o = Obj(i)
        refs.append(weakref.ref(o))
        ch.send(o)
    del o
    ch.close()
    assert ch.recv().n == 0
    collect()
    assert refs[0]() is None
    assert refs[1]() is not None
    del ch
    collect()
    assert [r() for r in refs] == [None] * 3


def test_failed_send_does_not_leak():
    ch = gopy.Chan(1)
    ch.close()
    o = Obj()
    before = sys.getrefcount(o)
    for _ in range(5):
        with pytest.raises(gopy.ClosedChannelError):
            ch.send(o)
    assert sys.getrefcount(o) == before


def test_sender_woken_by_close_does_not_leak():
    ch = gopy.Chan()
    o = Obj()
    ref = weakref.ref(o)
    done = gopy.Chan(1)

    def sender(x):
        try:
            ch.send(x)
        except gopy.ClosedChannelError:
            done.send("closed")

    gopy.go(sender, o)
    del o
    assert wait_until(lambda: parked_on(ch, "chan send") == 1)
    ch.close()
    assert recv_value(done) == "closed"
    assert wait_until(lambda: (collect(), ref() is None)[1])


def test_channel_itself_is_freed():
    ch = gopy.Chan(2)
    ch.send(ch)
    assert ch.recv() is ch
    ref = weakref.ref(ch)
    del ch
    collect()
    assert ref() is None


def test_many_channels_do_not_leak_objects():
    o = Obj()
    before = sys.getrefcount(o)
    for _ in range(200):
        ch = gopy.Chan(4)
        ch.send(o)
        ch.send(o)
        del ch
    gc.collect()
    assert sys.getrefcount(o) == before


# ---- garbage collection: cycles through channels -----------------------------------------


class Finalized:
    """Records its number in `log` when finalized (__del__)."""

    def __init__(self, n, log, ref=None):
        self.n, self.log, self.ref = n, log, ref

    def __del__(self):
        self.log.append(self.n)


def test_cycle_through_buffered_value_is_collected():
    log = []
    ch = gopy.Chan(2)
    ch.send([ch, Finalized(1, log)])  # buffer -> list -> channel
    ch.send(Finalized(2, log, ch))    # buffer -> object -> channel
    ref = weakref.ref(ch)
    del ch
    collect()
    assert ref() is None
    assert sorted(log) == [1, 2]


def test_cycle_through_buffered_tuple_is_collected():
    # A tuple has no tp_clear: the channel must break the cycle itself.
    log = []
    ch = gopy.Chan(1)
    ch.send((ch, Finalized(1, log)))
    ref = weakref.ref(ch)
    del ch
    collect()
    assert ref() is None and log == [1]


def test_cycle_through_closed_channel_is_collected():
    log = []
    ch = gopy.Chan(3)
    for i in range(3):
        ch.send(Finalized(i, log, ch))
    ch.close()
    ref = weakref.ref(ch)
    del ch
    collect()
    assert ref() is None and sorted(log) == [0, 1, 2]


@pytest.mark.parametrize("view", ["send_only", "recv_only"])
def test_view_in_a_cycle_is_collected(view):
    log = []
    ch = gopy.Chan(1)
    v = getattr(ch, view)()
    ch.send([v, Finalized(1, log)])  # buffer -> list -> view -> channel
    ref = weakref.ref(ch)
    del ch, v
    collect()
    assert ref() is None and log == [1]


@pytest.mark.xfail(CLASSES_IMMORTAL, strict=True,
                   reason="3.13t never frees a class once a thread has started (gh-117783)")
def test_cycle_through_ctype_is_collected():
    class Point(ctypes.Structure):
        _fields_ = [("x", ctypes.c_int64)]

    ch = gopy.Chan(1, ctype=Point)
    Point.chan = ch  # type -> dict -> channel -> ctype
    ch.send(Point(3))
    ref, tref = weakref.ref(ch), weakref.ref(Point)
    del ch, Point
    collect()
    assert ref() is None and tref() is None


def test_collector_sees_buffered_values_in_order():
    ch = gopy.Chan(3)
    a, b, c = Obj(1), Obj(2), Obj(3)
    ch.send(a)
    ch.send(b)
    assert gc.get_referents(ch) == [a, b]
    assert ch.recv() is a
    ch.send(c)
    ch.send(a)  # wraps around the ring
    assert gc.get_referents(ch) == [b, c, a]
    assert gc.get_referents(ch.send_only()) == [ch]
    assert gc.get_referents(gopy.Chan(1, ctype=ctypes.c_int64)) == [ctypes.c_int64]
    assert gc.get_referents(gopy.Chan()) == []


def test_dropping_a_long_chain_of_channels_does_not_overflow_the_stack():
    # Each channel buffers the next (or a view of it): freeing the head
    # frees them all, one inside the other.  On the main thread and on a
    # goroutine's smaller stack.  In a child: an overflow is a crash.
    r = run_script("""
        import gopy
        def chain(n, views):
            head = c = gopy.Chan(1)
            for _ in range(n):
                nxt = gopy.Chan(1)
                c.send(nxt.recv_only() if views else nxt)
                c = nxt
            return head
        h = chain(300_000, views=False)
        del h
        done = gopy.Chan()
        def in_goroutine():
            h = chain(100_000, views=True)
            del h
            done.send("goroutine")
        gopy.go(in_goroutine)
        print("main", done.recv())
    """, timeout=120)
    assert (r.returncode, r.stdout.strip()) == (0, "main goroutine"), r.stderr[-2000:]


def test_reachable_channel_keeps_its_values_through_collections():
    # A parked sender's value is the sender's, not the channel's; a
    # buffered one is the channel's: neither is touched while the channel
    # is reachable.
    log = []
    ch = gopy.Chan(1)
    ch.send([ch, Finalized(1, log)])
    gopy.go(ch.send, [ch, Finalized(2, log)])
    assert wait_until(lambda: parked_on(ch, "chan send") == 1)
    collect()
    first, second = ch.recv(), ch.recv()
    assert first[0] is ch and first[1].n == 1
    assert second[0] is ch and second[1].n == 2
    assert log == []


def test_collections_while_goroutines_and_threads_use_a_channel():
    # Values refer back to the channel (cycles while buffered) and log
    # their finalization: a collection running while receivers -- threads
    # without the GIL too, some in select -- take values out must neither
    # lose a value nor finalize one still in use.
    log = []
    ch = gopy.Chan(4)
    n_prod, per = 6, 300
    done = gopy.Chan(n_prod)
    got = []

    def producer(k):
        for i in range(per):
            ch.send(Finalized(k * per + i, log, ch))
        done.send(k)

    def consumer():
        mine = list(ch)
        got.append(mine)

    def selecting_consumer():
        mine = []
        r = ch.recv_only()
        while True:
            _, v, ok = gopy.select(gopy.Recv(r))
            if not ok:
                break
            mine.append(v)
        got.append(mine)

    threads = [threading.Thread(target=f) for f in (consumer, consumer, selecting_consumer)]
    threads += [threading.Thread(target=producer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    finished = gopy.Chan(2)
    for f in (consumer, selecting_consumer):
        gopy.go(lambda f=f: (f(), finished.send(None)))
    for k in range(2, n_prod):
        gopy.go(producer, k)
    produced = 0
    while produced < n_prod:
        gc.collect()
        # A pause between collections: on a free-threaded build each one
        # stops every thread, and back to back they would starve the rest.
        if gopy.select(gopy.Recv(done), gopy.Recv(gopy.after(0.001)))[0] == 0:
            produced += 1
    ch.close()
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    recv_value(finished)
    recv_value(finished)
    assert sorted(v.n for mine in got for v in mine) == list(range(n_prod * per))
    assert log == []  # nothing finalized while in use
    ref = weakref.ref(ch)
    del got, ch
    collect()
    assert ref() is None
    assert sorted(log) == list(range(n_prod * per))


# ---- subclassing, repr -------------------------------------------------------------------


def test_subclass_of_chan():
    class MyChan(gopy.Chan):
        pass

    ch = MyChan(2)
    ch.send(1)
    assert gopy.select(gopy.Recv(ch)) == (0, 1, True)
    assert ch.recv_only() == ch
    ch.extra = "attribute"  # a subclass gets a __dict__
    ref = weakref.ref(ch)
    del ch
    collect()
    assert ref() is None


def test_repr_mentions_type_and_sizes():
    ch = gopy.Chan(4)
    ch.send(1)
    assert repr(ch).startswith("<gopy.Chan cap=4 len=1")
    assert repr(ch.send_only()).startswith("<gopy.SendChan cap=4 len=1")
    assert repr(ch.recv_only()).startswith("<gopy.RecvChan cap=4 len=1")


# ---- goroutine basics the channel tests rely on --------------------------------------------


def test_go_passes_args_and_kwargs():
    out = gopy.Chan(1)

    def f(a, b, *, c):
        out.send((a, b, c, gopy._gopy.goid() != 0))

    gopy.go(f, 1, [2], c="three")
    assert recv_value(out) == (1, [2], "three", True)


def test_go_runs_in_copy_of_context():
    import contextvars
    var = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    out = gopy.Chan(1)

    def f():
        seen = var.get()
        var.set("goroutine")
        out.send(seen)

    gopy.go(f)
    assert recv_value(out) == "caller"
    assert var.get() == "caller"  # the goroutine changed only its copy


def test_goid_is_zero_outside_goroutines():
    assert gopy._gopy.goid() == 0
    ids = {run_in_goroutine(gopy._gopy.goid) for _ in range(5)}
    assert 0 not in ids
    assert all(isinstance(i, int) for i in ids)


def test_excepthook_gets_exception_and_goroutine_id(monkeypatch):
    seen = gopy.Chan(1)
    monkeypatch.setattr(gopy, "excepthook", lambda exc, gid: seen.send((exc, gid)))
    out = gopy.Chan(1)
    err = ValueError("boom")

    def f():
        out.send(gopy._gopy.goid())
        raise err

    gopy.go(f)
    gid = recv_value(out)
    exc, hook_gid = recv_value(seen)
    assert exc is err
    assert hook_gid == gid and isinstance(hook_gid, int)
    # The runtime kept going.
    assert run_in_goroutine(lambda: 41 + 1) == 42


def test_chan_with_ctypes_none_is_object_channel():
    ch = gopy.Chan(1, ctype=None)
    assert ch.ctype is None
    ch.send("s")
    assert ch.recv() == "s"
    assert gopy.Chan(1, ctype=ctypes.c_int8).ctype is ctypes.c_int8
