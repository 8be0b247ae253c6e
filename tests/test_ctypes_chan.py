"""Channels of ctypes values: Chan(cap, ctype=...), handle, from_handle."""

import ctypes
import gc
import sys

import pytest

import gopy
from conftest import collect


def test_int64_channel_carries_ints():
    ch = gopy.Chan(4, ctype=ctypes.c_int64)
    assert ch.ctype is ctypes.c_int64
    assert ch.cap == 4
    vals = [0, 1, -5, 2**62, -(2**63)]
    ch.send(vals[0])
    ch.send(vals[1])
    ch.send(ctypes.c_int64(vals[2]))  # an instance of the ctype is sent as is
    ch.send(vals[3])
    assert len(ch) == 4
    got = [ch.recv() for _ in range(4)]
    assert got == vals[:4]
    assert all(type(v) is int for v in got)
    ch.send(vals[4])
    assert ch.recv_ok() == (vals[4], True)
    ch.close()
    assert ch.recv_ok() == (None, False)  # the zero value is None, as for objects
    assert ch.recv() is None


def test_double_and_small_int_channels():
    d = gopy.Chan(2, ctype=ctypes.c_double)
    d.send(1.5)
    d.send(-0.25)
    assert [d.recv(), d.recv()] == [1.5, -0.25]
    b = gopy.Chan(2, ctype=ctypes.c_uint8)
    b.send(255)
    assert b.recv() == 255
    c = gopy.Chan(1, ctype=ctypes.c_char)
    c.send(b"z")
    assert c.recv() == b"z"


def test_ctype_channel_rejects_wrong_values():
    ch = gopy.Chan(2, ctype=ctypes.c_int64)
    with pytest.raises(TypeError):
        ch.send("x")
    with pytest.raises(TypeError):
        ch.send(None)
    with pytest.raises(TypeError):
        ch.send(ctypes.c_int32(1))  # a different ctypes type: not converted silently
    assert len(ch) == 0
    ch.send(3)
    assert ch.recv() == 3


def test_unbuffered_ctype_channel_between_goroutine_and_main():
    ch = gopy.Chan(0, ctype=ctypes.c_int64)

    def producer():
        for i in range(100):
            ch.send(i * 3)
        ch.close()

    gopy.go(producer)
    assert list(ch) == [i * 3 for i in range(100)]


def test_from_handle_is_same_channel():
    ch = gopy.Chan(4, ctype=ctypes.c_int64)
    other = gopy.Chan.from_handle(ch.handle, ctypes.c_int64)
    assert isinstance(other, gopy.Chan)
    assert other is not ch
    assert other == ch
    assert hash(other) == hash(ch)
    assert other.handle == ch.handle
    assert other.cap == 4
    ch.send(7)
    assert len(other) == 1
    assert other.recv() == 7
    other.send(8)
    assert ch.recv() == 8
    other.close()
    with pytest.raises(gopy.ClosedChannelError):
        ch.close()


def test_from_handle_keeps_channel_alive():
    ch = gopy.Chan(2, ctype=ctypes.c_int64)
    h = ch.handle
    other = gopy.Chan.from_handle(h, ctypes.c_int64)
    ch.send(41)
    del ch
    collect()
    assert other.recv() == 41
    other.send(42)
    assert other.recv() == 42
    assert other.handle == h


def test_from_handle_checks_ctype_size():
    ch = gopy.Chan(1, ctype=ctypes.c_int64)
    with pytest.raises(ValueError):
        gopy.Chan.from_handle(ch.handle, ctypes.c_int32)
    with pytest.raises(TypeError):
        gopy.Chan.from_handle(ch.handle, "c_int64")
    with pytest.raises((TypeError, ValueError)):
        gopy.Chan.from_handle(ch.handle, None)
    for bad in (0, -1, -ch.handle, 2**64, 2**70, ch.handle + 1):
        with pytest.raises(ValueError):  # null, negative, too big, misaligned
            gopy.Chan.from_handle(bad, ctypes.c_int64)
    with pytest.raises(TypeError):
        gopy.Chan.from_handle(float(ch.handle), ctypes.c_int64)
    with pytest.raises(TypeError):
        gopy.Chan.from_handle("0x1234", ctypes.c_int64)
    with pytest.raises(TypeError):
        gopy.Chan.from_handle(ch.handle)
    # The failed attempts took no reference: ch is still fine.
    ch.send(1)
    assert ch.recv() == 1


def test_from_handle_same_size_other_type():
    ch = gopy.Chan(1, ctype=ctypes.c_int64)
    d = gopy.Chan.from_handle(ch.handle, ctypes.c_uint64)
    ch.send(-1)
    assert d.recv() == 2**64 - 1


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_double), ("tag", ctypes.c_char * 8)]


class Big(ctypes.Structure):  # larger than the binding's on-stack element buffer
    _fields_ = [("data", ctypes.c_int64 * 40), ("n", ctypes.c_int32)]


def test_structure_round_trip():
    ch = gopy.Chan(2, ctype=Point)
    p = Point(3, 2.5, b"abc")
    ch.send(p)
    ch.send(Point(-1, 0.0, b"12345678"))
    q = ch.recv()
    assert type(q) is Point
    assert q is not p  # a copy of the bytes
    assert (q.x, q.y, q.tag) == (3, 2.5, b"abc")
    r = ch.recv()
    assert (r.x, r.y, r.tag) == (-1, 0.0, b"12345678")
    p.x = 99  # the channel copied: later changes are not seen
    ch.send(p)
    assert ch.recv().x == 99


def test_structure_round_trip_unbuffered_goroutine():
    ch = gopy.Chan(0, ctype=Point)
    gopy.go(lambda: [ch.send(Point(i, i / 2, b"g")) for i in range(10)])
    got = [ch.recv() for _ in range(10)]
    assert [(p.x, p.y, p.tag) for p in got] == [(i, i / 2, b"g") for i in range(10)]


def test_large_structure_round_trip():
    assert ctypes.sizeof(Big) > 64
    ch = gopy.Chan(1, ctype=Big)
    b = Big()
    for i in range(40):
        b.data[i] = i * 1000
    b.n = 40
    ch.send(b)
    c = ch.recv()
    assert list(c.data) == [i * 1000 for i in range(40)] and c.n == 40
    # Unbuffered, via a goroutine, and in select.
    u = gopy.Chan(0, ctype=Big)
    gopy.go(u.send, b)
    assert list(u.recv().data) == list(b.data)
    gopy.go(u.send, b)
    i, v, ok = gopy.select(gopy.Recv(u))
    assert (i, ok) == (0, True) and v.n == 40 and list(v.data) == list(b.data)
    ch.close()
    assert ch.recv_ok() == (None, False)


def test_array_element_type():
    arr_t = ctypes.c_int16 * 3
    ch = gopy.Chan(1, ctype=arr_t)
    ch.send(arr_t(1, 2, 3))
    v = ch.recv()
    assert list(v) == [1, 2, 3]


def test_ctype_channel_in_select():
    a = gopy.Chan(1, ctype=ctypes.c_int64)
    b = gopy.Chan(1, ctype=Point)
    assert gopy.select(gopy.Send(a, 5), gopy.Recv(b)) == (0, None, True)
    assert gopy.select(gopy.Recv(a), gopy.Recv(None)) == (0, 5, True)
    assert gopy.select(gopy.Send(b, Point(1, 1.0, b"s"))) == (0, None, True)
    i, v, ok = gopy.select(gopy.Recv(a), gopy.Recv(b))
    assert (i, ok, v.x, v.tag) == (1, True, 1, b"s")
    with pytest.raises(TypeError):
        gopy.select(gopy.Send(a, "not an int"))
    assert len(a) == 0
    a.close()
    assert gopy.select(gopy.Recv(a)) == (0, None, False)


def test_ctype_channel_ints_are_not_refcounted_objects():
    ch = gopy.Chan(3, ctype=ctypes.c_int64)
    big = 10**15 + 7
    before = sys.getrefcount(big)
    ch.send(big)
    assert sys.getrefcount(big) == before
    assert ch.recv() == big


def test_bad_ctypes():
    with pytest.raises(TypeError):
        gopy.Chan(1, ctype=int)
    with pytest.raises(TypeError):
        gopy.Chan(1, ctype="c_int")
    with pytest.raises(TypeError):
        gopy.Chan(1, ctype=ctypes.c_int64(3))  # an instance, not a type
    with pytest.raises(ValueError):
        gopy.Chan(1, ctype=ctypes.c_int64 * 0)  # zero-sized
    with pytest.raises(TypeError):
        gopy.Chan(1, ctypes.c_int64)  # ctype is keyword-only
    gc.collect()


def test_from_handle_refuses_object_channel():
    from conftest import run_script
    r = run_script("""
        import ctypes, gopy
        objs = gopy.Chan(1)
        try:
            alias = gopy.Chan.from_handle(objs.handle, ctypes.c_int64)
        except (TypeError, ValueError):
            print("refused")
        else:
            alias.send(5)
            print("accepted", objs.recv())
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "refused"
