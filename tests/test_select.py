"""gopy.select, Recv, Send (docs/api.md, "select")."""

import sys
import threading
import time
import weakref

import pytest

import gopy
from gopy import Recv, Send, select
from conftest import collect, nothing_ready, parked_in, recv_value, run_in_goroutine, wait_until


class Obj:
    pass


# Chi-square critical values for a false-positive rate of 1e-7.
CHI2_1E7 = {1: 28.37, 2: 32.24, 3: 35.05, 4: 37.55, 7: 44.30}


def chi_square(counts):
    n = sum(counts)
    e = n / len(counts)
    return sum((c - e) ** 2 / e for c in counts)


# ---- basic choice ---------------------------------------------------------------


def test_ready_recv_case_is_chosen():
    a, b, c = gopy.Chan(1), gopy.Chan(1), gopy.Chan(1)
    b.send("from b")
    for _ in range(3):
        assert select(Recv(a), Recv(b), Recv(c), default=True) in [(1, "from b", True),
                                                                    (-1, None, False)]
    # Exactly one value was there: one of the selects above got it.
    assert len(b) == 0
    b.send("again")
    assert select(Recv(a), Recv(b), Recv(c)) == (1, "again", True)
    assert len(b) == 0


def test_ready_send_case_is_chosen():
    full = gopy.Chan(1)
    full.send("x")
    room = gopy.Chan(1)
    unbuf = gopy.Chan()
    assert select(Send(full, 1), Send(room, 2), Send(unbuf, 3)) == (1, None, True)
    assert room.recv() == 2
    assert full.recv() == "x"  # the other sends did not happen
    assert len(full) == 0 and len(room) == 0


def test_returns_plain_tuple():
    ch = gopy.Chan(1)
    ch.send(5)
    r = select(Recv(ch))
    assert type(r) is tuple and r == (0, 5, True)
    assert type(r[0]) is int and r[2] is True


def test_default_when_nothing_ready():
    a, b = gopy.Chan(), gopy.Chan(1)
    b.send(1)
    full = b
    for _ in range(3):
        assert select(Recv(a), Send(full, 2), default=True) == (-1, None, False)
    assert full.recv() == 1
    assert select(default=True) == (-1, None, False)
    # default=False is the blocking form; with a ready case it behaves alike.
    a2 = gopy.Chan(1)
    a2.send("v")
    assert select(Recv(a2), default=False) == (0, "v", True)


def test_default_with_ready_case_performs_it():
    ch = gopy.Chan(1)
    ch.send(3)
    assert select(Recv(ch), default=True) == (0, 3, True)
    assert select(Send(ch, 4), default=True) == (0, None, True)
    assert ch.recv() == 4


def test_default_truthiness():
    ch = gopy.Chan()
    assert select(Recv(ch), default="yes") == (-1, None, False)
    assert select(Recv(ch), default=1) == (-1, None, False)

    class Bad:
        def __bool__(self):
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        select(Recv(ch), default=Bad())


def test_nil_cases_never_proceed():
    assert select(Recv(None), Send(None, 1), default=True) == (-1, None, False)
    ch = gopy.Chan(1)
    for i in range(50):
        ch.send(i)
        assert select(Recv(None), Send(None, "never"), Recv(ch)) == (2, i, True)
    c2 = gopy.Chan(1)
    for _ in range(50):
        assert select(Send(None, 1), Send(c2, "x"), Recv(None)) == (1, None, True)
        assert c2.recv() == "x"


def test_nil_case_attributes():
    r = Recv(None)
    s = Send(None, 5)
    assert r.chan is None
    assert s.chan is None and s.value == 5
    ch = gopy.Chan()
    assert Recv(ch).chan is ch
    assert Send(ch, "v").value == "v"
    assert repr(Recv(None)) == "gopy.Recv(None)"
    assert repr(Send(None, 5)) == "gopy.Send(None, 5)"
    assert Recv(chan=ch).chan is ch
    assert Send(chan=ch, value=1).value == 1


def test_blocking_select_woken_by_goroutine():
    for which in range(3):
        chans = [gopy.Chan() for _ in range(3)]

        def sender():
            gopy.sleep(0.02)
            chans[which].send(f"v{which}")

        gopy.go(sender)
        assert select(*[Recv(c) for c in chans]) == (which, f"v{which}", True)


def test_blocking_select_send_woken_by_receiver():
    a, b = gopy.Chan(), gopy.Chan()
    got = gopy.Chan(1)
    gopy.go(lambda: got.send(b.recv()))
    assert select(Send(a, "to a"), Send(b, "to b")) == (1, None, True)
    assert recv_value(got) == "to b"


def test_select_in_goroutine():
    a, b = gopy.Chan(), gopy.Chan()

    def f():
        return select(Recv(a), Recv(b))

    out = gopy.Chan(1)
    gopy.go(lambda: out.send(f()))
    b.send(10)
    assert recv_value(out) == (1, 10, True)


# ---- closed channels -------------------------------------------------------------


def test_send_case_on_closed_channel_raises():
    ch = gopy.Chan(1)
    ch.close()
    with pytest.raises(gopy.ClosedChannelError):
        select(Send(ch, 1))
    with pytest.raises(gopy.ClosedChannelError):
        select(Send(ch, 1), Recv(gopy.Chan()))
    with pytest.raises(gopy.ClosedChannelError):
        select(Send(ch, 1), default=True)  # a closed channel is "ready"


def test_blocked_select_send_raises_when_closed():
    ch = gopy.Chan()
    out = gopy.Chan(1)

    def select_send_then_closed():
        try:
            select(Send(ch, "v"), Recv(gopy.Chan()))
            out.send("sent")
        except gopy.ClosedChannelError:
            out.send("closed")

    gopy.go(select_send_then_closed)
    assert wait_until(lambda: parked_in("select_send_then_closed", "select") == 1)
    ch.close()
    assert recv_value(out) == "closed"


def test_recv_case_on_closed_channel():
    a = gopy.Chan()
    a.close()
    b = gopy.Chan()
    for _ in range(10):
        assert select(Recv(b), Recv(a)) == (1, None, False)
    c = gopy.Chan(2)
    c.send("left")
    c.close()
    assert select(Recv(c)) == (0, "left", True)
    assert select(Recv(c)) == (0, None, False)


def test_blocked_select_recv_woken_by_close():
    ch = gopy.Chan()

    def closer():
        gopy.sleep(0.02)
        ch.close()

    gopy.go(closer)
    assert select(Recv(gopy.Chan()), Recv(ch)) == (1, None, False)


# ---- randomness --------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_uniform_choice_among_closed_channels():
    chans = [gopy.Chan() for _ in range(4)]
    for c in chans:
        c.close()
    cases = [Recv(c) for c in chans]
    counts = [0] * 4
    for _ in range(4000):
        i, v, ok = select(*cases)
        assert v is None and ok is False
        counts[i] += 1
    assert chi_square(counts) < CHI2_1E7[3], counts


@pytest.mark.timeout(120)
def test_uniform_choice_among_buffered_values():
    chans = [gopy.Chan(1) for _ in range(4)]
    for k, c in enumerate(chans):
        c.send(k)
    cases = [Recv(c) for c in chans]
    counts = [0] * 4
    for _ in range(4000):
        i, v, ok = select(*cases)
        assert (v, ok) == (i, True)
        counts[i] += 1
        chans[i].send(i)
    assert chi_square(counts) < CHI2_1E7[3], counts


@pytest.mark.timeout(120)
def test_uniform_choice_mixed_send_and_recv_with_nil():
    r1, r2 = gopy.Chan(1), gopy.Chan(1)
    s1, s2 = gopy.Chan(1), gopy.Chan(1)
    r1.send("r1")
    r2.send("r2")
    cases = [Recv(None), Recv(r1), Send(s1, "s1"), Send(None, 0), Recv(r2), Send(s2, "s2")]
    counts = {1: 0, 2: 0, 4: 0, 5: 0}
    for _ in range(4000):
        i, v, ok = select(*cases)
        counts[i] += 1
        if i == 1:
            assert (v, ok) == ("r1", True)
            r1.send("r1")
        elif i == 4:
            assert (v, ok) == ("r2", True)
            r2.send("r2")
        elif i == 2:
            assert (v, ok) == (None, True)
            assert s1.recv() == "s1"
        else:
            assert (i, v, ok) == (5, None, True)
            assert s2.recv() == "s2"
    assert chi_square(list(counts.values())) < CHI2_1E7[3], counts


@pytest.mark.timeout(120)
def test_uniform_choice_in_goroutine():
    chans = [gopy.Chan() for _ in range(4)]
    for c in chans:
        c.close()

    def run():
        counts = [0] * 4
        cases = [Recv(c) for c in chans]
        for _ in range(4000):
            counts[select(*cases)[0]] += 1
        return counts

    counts = run_in_goroutine(run, timeout=100)
    assert chi_square(counts) < CHI2_1E7[3], counts


# ---- timeouts, same channel twice, many cases ----------------------------------------


def test_timeout_with_after():
    ch = gopy.Chan()
    start = time.time()
    i, v, ok = select(Recv(ch), Recv(gopy.after(0.05)))
    end = time.time()
    assert (i, ok) == (1, True)
    assert isinstance(v, float)
    assert start + 0.04 <= v <= end + 0.01
    assert end - start < 10


def test_value_beats_a_long_timeout():
    ch = gopy.Chan(1)
    gopy.go(lambda: (gopy.sleep(0.01), ch.send("value")))
    assert select(Recv(ch), Recv(gopy.after(60))) == (0, "value", True)


def test_same_channel_twice_recv():
    for _ in range(20):
        ch = gopy.Chan(1)
        ch.send("only")
        i, v, ok = select(Recv(ch), Recv(ch))
        assert i in (0, 1) and (v, ok) == ("only", True)
        assert len(ch) == 0


def test_same_channel_twice_send():
    for _ in range(20):
        ch = gopy.Chan(1)
        i, v, ok = select(Send(ch, "a"), Send(ch, "b"))
        assert (v, ok) == (None, True)
        assert ch.recv() == "ab"[i]
        assert len(ch) == 0


def test_send_and_recv_same_unbuffered_channel_do_not_pair():
    ch = gopy.Chan()
    assert select(Send(ch, 1), Recv(ch), default=True) == (-1, None, False)
    # With a partner goroutine, one of the two happens.
    got = gopy.Chan(1)
    gopy.go(lambda: got.send(ch.recv()))
    assert select(Send(ch, 1), Recv(ch)) == (0, None, True)
    assert recv_value(got) == 1


def test_send_and_recv_same_buffered_channel():
    ch = gopy.Chan(1)
    assert select(Send(ch, "v"), Recv(ch)) == (0, None, True)  # only the send is ready
    assert select(Send(ch, "w"), Recv(ch)) == (1, "v", True)   # only the recv is ready


def test_many_cases():
    chans = [gopy.Chan(1) for _ in range(40)]
    chans[33].send("here")
    cases = [Recv(c) for c in chans]
    assert select(*cases) == (33, "here", True)
    assert select(*cases, default=True) == (-1, None, False)
    sends = [Send(c, k) for k, c in enumerate(chans)]
    for k in range(40):
        i, v, ok = select(*sends)
        assert (v, ok) == (None, True)
        assert chans[i].recv() == i
    # A blocking select over many cases woken by a goroutine.
    gopy.go(lambda: (gopy.sleep(0.01), chans[17].send("late")))
    assert select(*cases) == (17, "late", True)


def test_same_case_object_reused():
    ch = gopy.Chan(1)
    s = Send(ch, "v")
    r = Recv(ch)
    for _ in range(100):
        assert select(s) == (0, None, True)
        assert select(r) == (0, "v", True)


# ---- references of unchosen sends -----------------------------------------------------


def test_unchosen_send_values_not_leaked():
    ready = gopy.Chan(1)
    blocked = gopy.Chan()
    full = gopy.Chan(1)
    full.send("fill")
    for _ in range(3):
        objs = [Obj(), Obj()]
        before = [sys.getrefcount(o) for o in objs]
        refs = [weakref.ref(o) for o in objs]
        ready.send("r")
        assert select(Send(blocked, objs[0]), Send(full, objs[1]), Recv(ready)) == (2, "r", True)
        assert [sys.getrefcount(o) for o in objs] == before
        del objs
        collect()
        assert [r() for r in refs] == [None, None]


def test_default_path_does_not_leak_send_values():
    full = gopy.Chan(1)
    full.send(0)
    o = Obj()
    before = sys.getrefcount(o)
    for _ in range(100):
        assert select(Send(full, o), Send(gopy.Chan(), o), default=True) == (-1, None, False)
    assert sys.getrefcount(o) == before


def test_chosen_send_value_reaches_receiver_once():
    ch = gopy.Chan(1)
    o = Obj()
    before = sys.getrefcount(o)
    assert select(Send(ch, o), Send(gopy.Chan(), o)) == (0, None, True)
    assert sys.getrefcount(o) == before + 1  # the channel's reference
    assert ch.recv() is o
    assert sys.getrefcount(o) == before


def test_blocking_select_unchosen_send_not_leaked():
    a, b = gopy.Chan(), gopy.Chan()
    o = Obj()
    ref = weakref.ref(o)
    out = gopy.Chan(1)

    def select_unchosen_send(x):
        out.send(select(Send(a, x), Recv(b)))

    gopy.go(select_unchosen_send, o)
    del o
    assert wait_until(lambda: parked_in("select_unchosen_send", "select") == 1)
    b.send("wake")
    assert recv_value(out) == (1, "wake", True)
    assert wait_until(lambda: (collect(), ref() is None)[1])


def test_closed_send_case_does_not_leak():
    ch = gopy.Chan(1)
    ch.close()
    o = Obj()
    before = sys.getrefcount(o)
    for _ in range(20):
        with pytest.raises(gopy.ClosedChannelError):
            select(Send(ch, o), Send(gopy.Chan(), o))
    assert sys.getrefcount(o) == before


def test_conversion_error_midway_does_not_leak():
    ok_chan = gopy.Chan(1)
    typed = gopy.Chan(1, ctype=__import__("ctypes").c_int64)
    o = Obj()
    before = sys.getrefcount(o)
    for _ in range(20):
        with pytest.raises(TypeError):
            select(Send(ok_chan, o), Send(typed, "not an int"))
    assert sys.getrefcount(o) == before
    assert len(ok_chan) == 0


def test_conversion_error_first_case_does_not_leak():
    import ctypes
    typed = gopy.Chan(1, ctype=ctypes.c_int64)
    ok_chan = gopy.Chan(1)
    o = Obj()
    before = sys.getrefcount(o)
    for _ in range(20):
        with pytest.raises(TypeError):
            select(Send(typed, "not an int"), Send(ok_chan, o))
    assert sys.getrefcount(o) == before
    assert len(ok_chan) == 0 and len(typed) == 0


def test_recv_value_refcount_through_select():
    ch = gopy.Chan(1)
    o = Obj()
    before = sys.getrefcount(o)
    ch.send(o)
    r = select(Recv(ch))
    assert r[1] is o
    del r
    assert sys.getrefcount(o) == before


# ---- select {} -------------------------------------------------------------------------


def test_empty_select_blocks_forever_in_goroutine():
    flag = []
    started = gopy.Chan(1)

    def select_forever_no_cases():
        started.send(None)
        select()
        flag.append("returned")

    gopy.go(select_forever_no_cases)
    recv_value(started)
    assert wait_until(lambda: parked_in("select_forever_no_cases", "select (no cases)") == 1)
    time.sleep(0.3)
    gopy.sleep(0.1)
    assert flag == []
    assert parked_in("select_forever_no_cases", "select (no cases)") == 1


def test_only_nil_cases_block_forever_in_goroutine():
    flag = []
    started = gopy.Chan(1)

    def select_forever_nil_cases():
        started.send(None)
        select(Recv(None), Send(None, 1))
        flag.append("returned")

    gopy.go(select_forever_nil_cases)
    recv_value(started)
    assert wait_until(lambda: parked_in("select_forever_nil_cases") == 1)
    time.sleep(0.3)
    assert flag == []
    assert parked_in("select_forever_nil_cases") == 1


# ---- bad cases ---------------------------------------------------------------------------


def test_bad_cases():
    ch = gopy.Chan(1)
    with pytest.raises(TypeError):
        select(42)
    with pytest.raises(TypeError):
        select(Recv(ch), "x")
    with pytest.raises(TypeError):
        select(ch)  # a channel is not a case
    with pytest.raises(TypeError):
        select(Recv(ch), timeout=1)
    with pytest.raises(TypeError):
        Recv(42)
    with pytest.raises(TypeError):
        Recv()
    with pytest.raises(TypeError):
        Recv(ch, 1)
    with pytest.raises(TypeError):
        Send(42, 1)
    with pytest.raises(TypeError):
        Send(ch)
    with pytest.raises(TypeError):
        Send(ch.recv_only(), 1)
    with pytest.raises(TypeError):
        Recv(ch.send_only())
    with pytest.raises(TypeError):
        Send(gopy.after(10), 1)  # a timer's channel is receive-only
    with pytest.raises(TypeError):
        Recv(gopy.Chan)  # the type, not a channel
    # Nothing happened to ch.
    assert len(ch) == 0


def test_cases_keep_channels_alive():
    ch = gopy.Chan(1)
    ref = weakref.ref(ch)
    r = Recv(ch)
    s = Send(ch, "v")
    del ch
    collect()
    assert ref() is not None
    assert select(s) == (0, None, True)
    assert select(r) == (0, "v", True)
    del r, s
    collect()
    assert ref() is None


def test_case_cycle_collected():
    # A Send case whose value refers to the case itself: gc must free it.
    ch = gopy.Chan(1)
    o = Obj()
    s = Send(ch, o)
    o.case = s
    ref = weakref.ref(o)
    del s, o
    collect()
    assert ref() is None


def test_select_from_threads():
    a = gopy.Chan()
    results = []

    def t():
        results.append(select(Recv(a), Recv(gopy.after(30))))

    threads = [threading.Thread(target=t) for _ in range(4)]
    for th in threads:
        th.start()
    for k in range(4):
        a.send(k)
    for th in threads:
        th.join(30)
    assert sorted(results) == [(0, k, True) for k in range(4)]
    assert nothing_ready(a)
