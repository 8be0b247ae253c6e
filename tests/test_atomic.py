"""gopy.atomic (docs/api.md, "gopy.atomic"): typed cells that wrap like
their C types, Bool and Value, and the functions on buffer elements --
ported in spirit from Go's sync/atomic tests (TestHammer32/64,
TestStoreLoadSeqCst, wrap-around at the boundaries, bad indexes)."""

import array
import ctypes
import struct
import sys
import threading
import weakref

import pytest

import gopy
import gopy.atomic as atomic
from conftest import recv_value

INT_TYPES = {
    # type: (bits, signed, buffer function suffix, array typecode)
    atomic.Int32: (32, True, "int32", "i"),
    atomic.Int64: (64, True, "int64", "q"),
    atomic.Uint32: (32, False, "uint32", "I"),
    atomic.Uint64: (64, False, "uint64", "Q"),
}


def wrap(v, bits, signed):
    """v as the C type would hold it."""
    v &= (1 << bits) - 1
    if signed and v >= 1 << (bits - 1):
        v -= 1 << bits
    return v


def limits(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def test_importable_both_ways():
    import gopy.atomic as a

    assert a is gopy.atomic
    assert a.Int32 is atomic.Int32
    for kind in ("int32", "int64", "uint32", "uint64"):
        for op in ("load", "store", "add", "swap", "compare_and_swap"):
            assert callable(getattr(a, f"{op}_{kind}"))


# ---- integer cells -------------------------------------------------------------


@pytest.mark.parametrize("cls", list(INT_TYPES), ids=lambda c: c.__name__)
def test_int_cell_operations(cls):
    bits, signed, _, _ = INT_TYPES[cls]
    c = cls()
    assert c.load() == 0
    assert cls(5).load() == 5
    assert cls(value=7).load() == 7
    assert c.store(10) is None and c.load() == 10
    assert c.add(5) == 15
    assert c.add(-3) == 12
    assert c.swap(100) == 12 and c.load() == 100
    assert c.compare_and_swap(99, 1) is False and c.load() == 100
    assert c.compare_and_swap(100, 1) is True and c.load() == 1
    c.store(0b1100)
    assert c.and_(0b1010) == 0b1100 and c.load() == 0b1000  # returns the old value
    assert c.or_(0b0011) == 0b1000 and c.load() == 0b1011
    assert repr(c) == f"gopy.atomic.{cls.__name__}(11)"
    with pytest.raises(TypeError):
        c.store(1.5)
    with pytest.raises(TypeError):
        c.add("1")
    with pytest.raises(TypeError):
        cls(None)
    assert c.load() == 11
    c.store(True)  # bool is an int
    assert c.load() == 1


@pytest.mark.parametrize("cls", list(INT_TYPES), ids=lambda c: c.__name__)
def test_int_cell_wraps_like_the_c_type(cls):
    bits, signed, _, _ = INT_TYPES[cls]
    lo, hi = limits(bits, signed)
    c = cls(hi)
    assert c.load() == hi
    assert c.add(1) == lo  # wraps around the top
    assert c.load() == lo
    assert c.add(-1) == hi  # and around the bottom
    assert c.swap(hi + 1) == hi
    assert c.load() == lo  # a stored value is reduced too
    for v in (-1, 1 << bits, (1 << bits) + 5, -(1 << (bits - 1)) - 1, 1 << 100, -(1 << 100) + 3):
        c.store(v)
        assert c.load() == wrap(v, bits, signed), v
    c.store(lo)
    assert c.compare_and_swap(lo + (1 << bits), 3) is True  # old is reduced as well
    assert c.load() == 3
    c.store(-1)
    assert c.and_(1 << (bits - 1)) == wrap(-1, bits, signed)
    assert c.load() == wrap(1 << (bits - 1), bits, signed)
    assert c.or_(-1) == wrap(1 << (bits - 1), bits, signed)
    assert c.load() == wrap(-1, bits, signed)


def test_bool_cell():
    b = atomic.Bool()
    assert b.load() is False
    assert atomic.Bool(True).load() is True
    b.store(True)
    assert b.load() is True
    assert b.swap(False) is True and b.load() is False
    assert b.compare_and_swap(True, True) is False
    assert b.compare_and_swap(False, True) is True and b.load() is True
    b.store(0)
    assert b.load() is False
    b.store([1])  # by truth
    assert b.load() is True
    assert repr(b) == "gopy.atomic.Bool(True)"


def test_value_cell():
    v = atomic.Value()
    assert v.load() is None
    a, b = [1], [1]
    v.store(a)
    assert v.load() is a
    assert v.compare_and_swap(b, "x") is False  # equal but not identical
    assert v.compare_and_swap(a, b) is True and v.load() is b
    assert v.swap("new") is b
    assert atomic.Value(a).load() is a
    assert repr(atomic.Value(3)) == "gopy.atomic.Value(3)"


def test_value_references():
    class Obj:
        pass

    o = Obj()
    r = weakref.ref(o)
    v = atomic.Value(o)
    del o
    assert r() is not None
    v.store(None)
    assert r() is None
    o = Obj()
    r = weakref.ref(o)
    v.store(o)
    assert v.compare_and_swap(o, 1) is True
    del o
    assert r() is None
    cyc = atomic.Value()
    cyc.store(cyc)  # a cycle, for the collector
    r = weakref.ref(cyc)
    del cyc
    import gc

    gc.collect()
    assert r() is None


# ---- functions on buffers ------------------------------------------------------


def fns(kind):
    return (getattr(atomic, f"load_{kind}"), getattr(atomic, f"store_{kind}"),
            getattr(atomic, f"add_{kind}"), getattr(atomic, f"swap_{kind}"),
            getattr(atomic, f"compare_and_swap_{kind}"))


@pytest.mark.parametrize("cls", list(INT_TYPES), ids=lambda c: c.__name__)
def test_buffer_functions(cls):
    bits, signed, kind, code = INT_TYPES[cls]
    size = bits // 8
    load, store, add, swap, cas = fns(kind)
    lo, hi = limits(bits, signed)
    fmt = "=" + code

    for buf in (bytearray(4 * size), array.array(code, [0] * 4),
                memoryview(bytearray(4 * size)), memoryview(bytearray(8 * size))[: 4 * size]):
        assert store(buf, 1, 42) is None
        assert load(buf, 1) == 42
        assert add(buf, 1, 8) == 50
        assert swap(buf, 1, hi) == 50
        assert add(buf, 1, 1) == lo  # wraps
        assert cas(buf, 1, 7, 9) is False
        assert cas(buf, 1, lo, 9) is True
        assert load(buf, 1) == 9 and load(buf, 0) == 0 and load(buf, 3) == 0
        store(buf, 3, -1)
        assert load(buf, 3) == wrap(-1, bits, signed)
        raw = bytes(buf) if not isinstance(buf, array.array) else buf.tobytes()
        assert struct.unpack_from(fmt, raw, size)[0] == 9  # native layout
        assert struct.unpack_from(fmt, raw, 3 * size)[0] == wrap(-1, bits, signed)


@pytest.mark.parametrize("kind,size", [("int32", 4), ("int64", 8), ("uint32", 4), ("uint64", 8)])
def test_buffer_bad_indexes(kind, size):
    load, store, add, swap, cas = fns(kind)
    buf = bytearray(4 * size + 1)
    with pytest.raises(IndexError):
        load(buf, 4)
    with pytest.raises(IndexError):
        store(buf, 4, 1)
    with pytest.raises(IndexError):
        add(buf, -1, 1)
    with pytest.raises(IndexError):
        swap(buf, 1 << 70, 1)
    with pytest.raises(TypeError):
        load(buf, 1.0)
    # Misaligned: a view starting one byte in.
    view = memoryview(buf)[1:]
    with pytest.raises(ValueError, match="aligned"):
        load(view, 0)
    with pytest.raises(ValueError):
        cas(view, 1, 0, 1)
    # Read-only buffers: loads work, changes raise TypeError.
    ro = bytes(4 * size)
    assert load(ro, 1) == 0
    assert load(memoryview(ro), 3) == 0
    for op, args in ((store, (1, 1)), (add, (1, 1)), (swap, (1, 1)), (cas, (1, 0, 1))):
        with pytest.raises(TypeError):
            op(ro, *args)
        with pytest.raises(TypeError):
            op(memoryview(bytearray(4 * size)).toreadonly(), *args)
    # Not a buffer, or not contiguous.
    with pytest.raises(TypeError):
        load([0] * 8, 0)
    with pytest.raises(TypeError):
        load(memoryview(bytearray(16 * size))[::2], 0)
    with pytest.raises(TypeError):
        store(bytearray(4 * size), 0)  # missing value
    with pytest.raises(TypeError):
        store(bytearray(4 * size), 0, "x")


def test_buffer_ctypes_and_numpy():
    arr = (ctypes.c_int64 * 4)()
    atomic.add_int64(arr, 2, 5)
    assert arr[2] == 5
    np = pytest.importorskip("numpy")
    a = np.zeros(8, dtype=np.uint32)
    atomic.store_uint32(a, 7, 2**32 - 1)
    assert atomic.add_uint32(a, 7, 2) == 1
    assert int(a[7]) == 1
    b = np.zeros(4, dtype=np.int64)
    assert atomic.compare_and_swap_int64(b, 0, 0, -5)
    assert int(b[0]) == -5
    with pytest.raises((TypeError, ValueError)):  # NumPy says ValueError itself
        atomic.add_int64(np.zeros(8, dtype=np.int64)[::2], 0, 1)


# ---- concurrency ---------------------------------------------------------------


def test_hammer():
    """Go's TestHammer32/64: concurrent adds and CAS loops lose nothing."""
    cells = [atomic.Int32(), atomic.Int64(), atomic.Uint32(), atomic.Uint64()]
    buf = bytearray(32)
    n_g, n_t, n = 8, 3, 500
    wg = gopy.WaitGroup()

    def hammer():
        for i in range(n):
            for c in cells:
                c.add(1)
                while True:  # a CAS increment, as Go's hammerCompareAndSwap
                    old = c.load()
                    if c.compare_and_swap(old, old + 1):
                        break
            atomic.add_int64(buf, 0, 2)
            atomic.add_uint32(buf, 2, 3)
            if i % 50 == 0:
                gopy.runtime.gosched()

    for _ in range(n_g):
        wg.go(hammer)
    threads = [threading.Thread(target=hammer) for _ in range(n_t)]
    for t in threads:
        t.start()
    wg.wait()
    for t in threads:
        t.join(60)
    total = (n_g + n_t) * n
    assert [c.load() for c in cells] == [2 * total] * 4
    assert atomic.load_int64(buf, 0) == 2 * total
    assert atomic.load_uint32(buf, 2) == 3 * total


@pytest.mark.timeout(120)
def test_store_load_sequential_consistency():
    """Go's TestStoreLoadSeqCst32/64 (Dekker): each side stores its own
    counter then loads the other's; they can never both miss the other's
    latest store."""
    N = 300  # each round trip hands the GIL over: ~3 ms
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL over often
    try:
        for kind, bits in (("uint32", 32), ("uint64", 64)):
            X = bytearray(16)
            ack = [bytearray(3 * 8), bytearray(3 * 8)]
            none = (1 << bits) - 1
            load, store = getattr(atomic, f"load_{kind}"), getattr(atomic, f"store_{kind}")
            for a in ack:
                for j in range(3):
                    store(a, j, none)
            errors = []

            def side(me):
                he = 1 - me
                for i in range(1, N):
                    store(X, me, i)
                    my = load(X, he)
                    store(ack[me], i % 3, my)
                    while load(ack[he], i % 3) == none:
                        pass
                    his = load(ack[he], i % 3)
                    if my not in (i, i - 1) or his not in (i, i - 1):
                        errors.append(("invalid", my, his, i))
                    if my != i and his != i:
                        errors.append(("not sequentially consistent", my, his, i))
                    store(ack[me], (i - 1) % 3, none)

            threads = [threading.Thread(target=side, args=(k,)) for k in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(100)
                assert not t.is_alive()
            assert errors == [], errors[:5]
    finally:
        sys.setswitchinterval(old)


def test_atomics_between_goroutines_and_threads():
    flag, counter = atomic.Bool(), atomic.Int64()
    box = atomic.Value()
    out = gopy.Chan(1)

    def producer():
        box.store("payload")
        counter.add(1)
        flag.store(True)

    def consumer():
        while not flag.load():
            gopy.runtime.gosched()
        out.send((box.load(), counter.load()))

    gopy.go(consumer)
    threading.Thread(target=producer).start()
    assert recv_value(out) == ("payload", 1)
