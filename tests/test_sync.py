"""gopy's sync types (docs/api.md, "sync"): Mutex, RWMutex, WaitGroup, Once,
once_func / once_value, Cond, Pool and Map -- ported in spirit from Go's
sync tests (TestMutex, TestMutexMisuse, TestMutexFairness, TestRWMutex,
TestParallelReaders, TestWaitGroup(Misuse), TestOnce, TestOncePanic,
TestCondSignal, TestCondBroadcast, TestCondSignalStealing, TestPool(GC),
TestMapMatchesRWMutex, TestConcurrentRange), from goroutines and threads.

Values are asserted exactly; times only as generous hang bounds."""

import gc
import random
import threading
import time
import weakref

import pytest

import gopy
from conftest import (goroutines_waiting_on, join_all, recv_value, run_in_goroutine, run_script,
                      wait_until)


class Obj:
    def __init__(self, n=0):
        self.n = n


# ---- Mutex -----------------------------------------------------------------------


def test_mutex_basics():
    m = gopy.Mutex()
    assert m.try_lock() is True
    assert m.try_lock() is False
    m.unlock()
    with m as entered:
        assert entered is m
        assert m.try_lock() is False
    assert m.try_lock() is True
    m.unlock()
    m.lock()
    m.unlock()


def test_mutex_misuse():
    m = gopy.Mutex()
    with pytest.raises(RuntimeError, match="unlock of unlocked mutex"):
        m.unlock()
    # Nothing changed: it still works.
    with m:
        pass
    with pytest.raises(RuntimeError):
        m.unlock()
    with pytest.raises(TypeError):
        gopy.Mutex(1)


def test_mutex_unlock_from_another_goroutine():
    m = gopy.Mutex()
    m.lock()
    run_in_goroutine(m.unlock)  # Go allows it
    assert m.try_lock()
    m.unlock()


def _hammer_counter(m, counter, holders, n, yield_every):
    for i in range(n):
        with m:
            holders[0] += 1
            assert holders[0] == 1, "two holders inside the mutex"
            counter[0] += 1
            if i % yield_every == 0:
                gopy.runtime.gosched()  # holding it: the others must park
            holders[0] -= 1


def test_mutex_counter_goroutines_and_threads():
    m = gopy.Mutex()
    counter, holders = [0], [0]
    wg = gopy.WaitGroup()
    G, T, N = 16, 3, 300
    for _ in range(G):
        wg.go(_hammer_counter, m, counter, holders, N, 7)
    threads = [threading.Thread(target=_hammer_counter, args=(m, counter, holders, N, 11))
               for _ in range(T)]
    for t in threads:
        t.start()
    wg.wait()
    join_all(threads)
    assert counter[0] == (G + T) * N


def test_mutex_lock_parks_the_goroutine():
    m, out = gopy.Mutex(), gopy.Chan(1)
    m.lock()

    def locker():
        m.lock()
        out.send("got it")
        m.unlock()

    gopy.go(locker)
    assert wait_until(lambda: goroutines_waiting_on("sync.Mutex.Lock") == 1)
    assert len(out) == 0
    m.unlock()
    assert recv_value(out) == "got it"


def test_mutex_thread_waits_without_the_gil():
    m = gopy.Mutex()
    m.lock()
    got = threading.Event()

    def locker():
        m.lock()
        got.set()
        m.unlock()

    t = threading.Thread(target=locker)
    t.start()
    # The blocked thread released the GIL: Python keeps running here.
    spins = 0
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        spins += 1
    assert spins > 1000 and not got.is_set()
    m.unlock()
    assert got.wait(30)
    join_all([t])


@pytest.mark.timeout(120)
def test_mutex_fairness():
    """Go's TestMutexFairness: a goroutine hammering the lock (holding it
    while it sleeps) cannot starve another one: starvation mode hands the
    lock over once a waiter has waited > 1 ms."""
    m, stop, done = gopy.Mutex(), gopy.atomic.Bool(), gopy.Chan(1)

    def hammer():
        while not stop.load():
            with m:
                gopy.sleep(0.0001)

    def waiter():
        worst = 0.0
        for _ in range(10):
            gopy.sleep(0.0001)
            t0 = time.monotonic()
            m.lock()
            worst = max(worst, time.monotonic() - t0)
            m.unlock()
        done.send(worst)

    gopy.go(hammer)
    gopy.go(waiter)
    try:
        worst = recv_value(done, timeout=60)
    finally:
        stop.store(True)
    # Generous: scheduling noise on a loaded machine, never starvation.
    assert worst < 5.0, f"a waiter waited {worst:.3f} s for the mutex"


def test_mutex_fairness_threads():
    """The same with a thread hammering and a thread waiting."""
    m, stop = gopy.Mutex(), threading.Event()
    result = []

    def hammer():
        while not stop.is_set():
            with m:
                time.sleep(0.0001)

    def waiter():
        worst = 0.0
        for _ in range(10):
            time.sleep(0.0001)
            t0 = time.monotonic()
            with m:
                worst = max(worst, time.monotonic() - t0)
        result.append(worst)

    threads = [threading.Thread(target=hammer), threading.Thread(target=waiter)]
    for t in threads:
        t.start()
    threads[1].join(60)
    stop.set()
    join_all(threads)
    assert result and result[0] < 5.0, result


# ---- RWMutex ---------------------------------------------------------------------


def test_rwmutex_basics_and_misuse():
    rw = gopy.RWMutex()
    with pytest.raises(RuntimeError, match="Unlock of unlocked RWMutex"):
        rw.unlock()
    with pytest.raises(RuntimeError, match="RUnlock of unlocked RWMutex"):
        rw.runlock()
    assert rw.try_rlock() and rw.try_rlock()
    assert rw.try_lock() is False
    with pytest.raises(RuntimeError):
        rw.unlock()  # only readers hold it
    rw.runlock()
    rw.runlock()
    with rw as entered:
        assert entered is rw
        assert rw.try_lock() is False and rw.try_rlock() is False
        with pytest.raises(RuntimeError):
            rw.runlock()  # only the writer holds it
    r = rw.rlocker()
    with r as entered:
        assert entered is r
        assert rw.try_rlock()
        rw.runlock()
        assert not rw.try_lock()
    r.lock()
    r.unlock()
    with pytest.raises(RuntimeError):
        r.unlock()
    assert rw.try_lock()
    rw.unlock()


def test_rwmutex_parallel_readers():
    """Go's TestParallelReaders: all readers hold the lock at once."""
    rw, inside, leave = gopy.RWMutex(), gopy.Chan(), gopy.Chan()
    N = 20

    def reader():
        rw.rlock()
        inside.send(1)
        leave.recv()
        rw.runlock()
        inside.send(2)

    for _ in range(N):
        gopy.go(reader)
    for _ in range(N):
        assert recv_value(inside) == 1
    assert rw.try_lock() is False
    for _ in range(N):
        leave.send(None)
    for _ in range(N):
        assert recv_value(inside) == 2
    assert rw.try_lock()
    rw.unlock()


def test_rwmutex_writer_preference():
    """A waiting writer keeps new readers out; it goes first."""
    rw, order, finished = gopy.RWMutex(), [], gopy.Chan(2)
    rw.rlock()

    def writer():
        with rw:
            order.append("writer")
        finished.send(None)

    def late_reader():
        with rw.rlocker():
            order.append("reader")
        finished.send(None)

    gopy.go(writer)
    assert wait_until(lambda: goroutines_waiting_on("sync.RWMutex.Lock") == 1)
    assert rw.try_rlock() is False  # the writer waits: no new reader
    gopy.go(late_reader)
    assert wait_until(lambda: goroutines_waiting_on("sync.RWMutex.RLock") == 1)
    assert order == []
    rw.runlock()
    recv_value(finished)
    recv_value(finished)
    assert order == ["writer", "reader"]


def test_rwmutex_hammer():
    """Go's HammerRWMutex: readers and writers never overlap."""
    rw = gopy.RWMutex()
    # Atomic, as in Go: readers overlap (in parallel on a free-threaded
    # build, where `activity += 1` on a plain int could lose updates).
    activity = gopy.atomic.Int64()
    wg = gopy.WaitGroup()

    def reader(n):
        for i in range(n):
            with rw.rlocker():
                assert 1 <= activity.add(1) < 10000
                if i % 3 == 0:
                    gopy.runtime.gosched()
                activity.add(-1)

    def writer(n):
        for i in range(n):
            with rw:
                assert activity.add(10000) == 10000
                gopy.runtime.gosched()
                activity.add(-10000)

    for i in range(12):
        wg.go(writer if i % 4 == 0 else reader, 200)
    threads = [threading.Thread(target=reader, args=(300,)),
               threading.Thread(target=writer, args=(100,))]
    for t in threads:
        t.start()
    wg.wait()
    join_all(threads)
    assert activity.load() == 0
    assert rw.try_lock()
    rw.unlock()


# ---- WaitGroup -------------------------------------------------------------------


def test_waitgroup():
    """Go's TestWaitGroup: two rounds on one group."""
    wg1, wg2 = gopy.WaitGroup(), gopy.WaitGroup()
    N = 16
    for _ in range(2):
        wg1.add(N)
        wg2.add(N)
        exited = gopy.Chan(N)
        for _ in range(N):
            gopy.go(lambda: (wg1.done(), wg2.wait(), exited.send(True)))
        wg1.wait()
        for _ in range(N):
            assert len(exited) == 0  # nobody passed wg2 yet
            wg2.done()
        for _ in range(N):
            assert recv_value(exited) is True


def test_waitgroup_zero_and_misuse():
    wg = gopy.WaitGroup()
    wg.wait()  # zero: returns at once
    with pytest.raises(ValueError, match="negative WaitGroup counter"):
        wg.done()
    wg.add(2)
    with pytest.raises(ValueError):
        wg.add(-3)
    wg.add(-2)  # the failed add changed nothing
    wg.wait()
    with pytest.raises(TypeError):
        wg.add(1.0)
    with pytest.raises(TypeError):
        wg.add("1")
    with pytest.raises(ValueError):
        wg.add(2**40)


def test_waitgroup_threads_and_goroutines():
    wg = gopy.WaitGroup()
    box = []
    lock = threading.Lock()

    def work(i):
        with lock:
            box.append(i)
        wg.done()

    wg.add(20)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for i in range(10, 20):
        gopy.go(work, i)
    # Several waiters: a goroutine, a thread and us.
    waited = gopy.Chan(2)
    gopy.go(lambda: (wg.wait(), waited.send("g")))
    t = threading.Thread(target=lambda: (wg.wait(), waited.send("t")))
    t.start()
    wg.wait()
    assert sorted(box) == list(range(20))
    assert sorted([recv_value(waited), recv_value(waited)]) == ["g", "t"]
    join_all(threads + [t])


def test_waitgroup_go(monkeypatch):
    wg, out = gopy.WaitGroup(), []
    for i in range(10):
        wg.go(lambda a, *, b: out.append(a + b), i, b=100)
    wg.wait()
    assert sorted(out) == [100 + i for i in range(10)]

    # An exception is reported (gopy.excepthook) before Done: when wait()
    # returns, the report has happened.
    reports = []
    monkeypatch.setattr(gopy, "excepthook", lambda exc, gid: reports.append((exc, gid)))

    def fails():
        raise KeyError("boom")

    wg.go(fails)
    wg.wait()
    assert len(reports) == 1
    assert isinstance(reports[0][0], KeyError) and reports[0][1] > 0
    with pytest.raises(TypeError):
        wg.go(42)
    wg.wait()  # a failed go() added nothing


# ---- Once, once_func, once_value ---------------------------------------------------


def test_once_runs_once_under_a_race():
    """Go's TestOnce: every caller returns after f has run, and f ran once."""
    for _ in range(5):
        o, calls, finished = gopy.Once(), [0], [False]

        def f():
            calls[0] += 1
            gopy.sleep(0.01)  # others arrive meanwhile and must wait
            finished[0] = True

        results = gopy.Chan(100)

        def caller():
            o.do(f)
            results.send(finished[0])

        for _ in range(30):
            gopy.go(caller)
        threads = [threading.Thread(target=caller) for _ in range(3)]
        for t in threads:
            t.start()
        caller()
        assert all(recv_value(results) for _ in range(34))
        join_all(threads)
        assert calls[0] == 1
        assert o.done


def test_once_exception():
    """Go's TestOncePanic: a failing f still counts as done."""
    o = gopy.Once()
    assert o.done is False
    with pytest.raises(ZeroDivisionError):
        o.do(lambda: 1 / 0)
    assert o.done is True
    o.do(lambda: pytest.fail("f ran again"))
    with pytest.raises(TypeError):
        o.do(42)


def test_once_recursive_do_raises():
    o = gopy.Once()
    with pytest.raises(RuntimeError, match="own function"):
        o.do(lambda: o.do(lambda: None))
    assert o.done


def test_once_value_and_func():
    calls = []
    v = gopy.once_value(lambda: calls.append(1) or Obj(7))
    first = v()
    assert first.n == 7 and v() is first and calls == [1]

    f = gopy.once_func(lambda: calls.append(2) or "ignored")
    assert f() is None and f() is None and calls == [1, 2]

    boom = KeyError("x")

    def fails():
        calls.append(3)
        raise boom

    g = gopy.once_func(fails)
    tbs = []
    for _ in range(3):
        with pytest.raises(KeyError) as info:
            g()
        assert info.value is boom  # the same exception every time
        tbs.append(len(list(_walk_tb(info.value.__traceback__))))
    assert calls == [1, 2, 3]
    assert tbs[0] == tbs[1] == tbs[2]  # its traceback does not grow
    h = gopy.once_value(fails)
    for _ in range(2):
        with pytest.raises(KeyError):
            h()
    assert calls == [1, 2, 3, 3]
    with pytest.raises(TypeError):
        gopy.once_value(1)
    with pytest.raises(TypeError):
        v(1)


def _walk_tb(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_once_value_concurrent():
    calls = [0]

    def slow():
        calls[0] += 1
        gopy.sleep(0.01)
        return Obj(1)

    v = gopy.once_value(slow)
    out = gopy.Chan(40)
    for _ in range(40):
        gopy.go(lambda: out.send(v()))
    seen = {id(recv_value(out)) for _ in range(40)}
    assert len(seen) == 1 and calls == [1]


# ---- Cond ------------------------------------------------------------------------


def test_cond_signal():
    """Go's TestCondSignal: each signal wakes exactly one waiter."""
    m = gopy.Mutex()
    c = gopy.Cond(m)
    assert c.l is m
    n = 8
    running, awake = gopy.Chan(n), gopy.Chan(n)

    def waiter():
        with m:
            running.send(True)
            c.wait()
        awake.send(True)

    for _ in range(n):
        gopy.go(waiter)
    for _ in range(n):
        recv_value(running)
    for i in range(n):
        assert len(awake) == 0
        with m:
            c.signal()
        recv_value(awake)
        assert wait_until(lambda: goroutines_waiting_on("sync.Cond.Wait") == n - 1 - i)
    c.signal()  # nobody left


def test_cond_broadcast():
    """Go's TestCondBroadcast: every round wakes every waiter."""
    m = gopy.Mutex()
    c = gopy.Cond(m)
    n, rounds = 6, 10
    running, awake = gopy.Chan(n), gopy.Chan(n)
    seen = [0] * n

    def waiter(k):
        for _ in range(rounds):
            with m:
                running.send(k)
                c.wait()
                seen[k] += 1
            awake.send(k)

    for k in range(n):
        gopy.go(waiter, k)
    for r in range(rounds):
        assert sorted(recv_value(running) for _ in range(n)) == list(range(n))
        with m:
            c.broadcast()
        for _ in range(n):
            recv_value(awake)
        assert seen == [r + 1] * n


def test_cond_signal_stealing():
    """Go's TestCondSignalStealing: a broadcast racing a new waiter still
    wakes the waiter that was already there."""
    for _ in range(100):
        m = gopy.Mutex()
        c = gopy.Cond(m)
        ch, done = gopy.Chan(), [False]

        def first():
            with m:
                ch.send(1)
                c.wait()
            ch.send(2)

        def second():
            with m:
                while not done[0]:
                    c.wait()

        gopy.go(first)
        assert recv_value(ch) == 1
        with m:
            pass  # first is inside wait() now
        gopy.go(c.broadcast)
        wg = gopy.WaitGroup()
        wg.go(second)
        assert recv_value(ch) == 2
        with m:
            done[0] = True
        c.broadcast()
        wg.wait()


def test_cond_with_threads_and_rlocker():
    rw = gopy.RWMutex()
    c = gopy.Cond(rw.rlocker())
    state, woke = [], []

    def waiter():
        with rw.rlocker():
            while not state:
                c.wait()
            woke.append(threading.get_ident())

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    assert wait_until(lambda: gopy.runtime.num_goroutine() >= 0 and len(woke) == 0)
    time.sleep(0.05)
    with rw:  # the writer waits for the readers to be inside wait()
        state.append(1)
    c.broadcast()
    join_all(threads)
    assert len(woke) == 3


def test_cond_locker_errors():
    class Locker:
        def __init__(self):
            self.calls = []

        def lock(self):
            self.calls.append("lock")

        def unlock(self):
            self.calls.append("unlock")

    lk = Locker()
    c = gopy.Cond(lk)
    gopy.go(lambda: (gopy.sleep(0.01), c.signal()))
    c.wait()  # any lock()/unlock() object will do
    assert lk.calls == ["unlock", "lock"]
    with pytest.raises(TypeError):
        gopy.Cond(object())
    with pytest.raises(TypeError):
        gopy.Cond()
    # Waiting without holding a gopy.Mutex: its unlock raises, nothing waits.
    m = gopy.Mutex()
    c = gopy.Cond(m)
    with pytest.raises(RuntimeError):
        c.wait()
    # The ticket it gave up does not swallow a later signal.
    out = gopy.Chan(1)

    def waiter():
        with m:
            c.wait()
        out.send("woken")

    gopy.go(waiter)
    assert wait_until(lambda: goroutines_waiting_on("sync.Cond.Wait") == 1)
    c.signal()
    assert recv_value(out) == "woken"


# ---- Pool ------------------------------------------------------------------------


def test_pool_basics():
    """Go's TestPool, from one goroutine."""

    def body():
        p = gopy.Pool()
        assert p.get() is None
        a, b = Obj(1), Obj(2)
        p.put(a)
        p.put(b)
        assert p.get() is a  # the private slot first, then the shared deque
        assert p.get() is b
        assert p.get() is None
        p.put(None)  # ignored
        assert p.get() is None

    run_in_goroutine(body)


def test_pool_new():
    made = []
    p = gopy.Pool(new=lambda: made.append(1) or Obj(len(made)))
    assert p.get().n == 1
    x = Obj(9)
    p.put(x)
    assert p.get() is x
    assert p.get().n == 2
    p.new = None
    assert p.get() is None
    with pytest.raises(TypeError):
        gopy.Pool(new=3)
    with pytest.raises(TypeError):
        p.new = 3


def test_pool_gc():
    """Go's TestPoolGC: pooled objects survive one collection (as victims)
    and are dropped by the next."""
    p = gopy.Pool()
    x = Obj()
    ref = weakref.ref(x)
    p.put(x)
    del x
    gc.collect()
    y = p.get()
    assert y is not None and y is ref()  # survived one collection
    p.put(y)
    del y
    gc.collect()
    gc.collect()
    assert ref() is None  # dropped and released
    assert p.get() is None
    # Freeing a pool releases what it holds.
    z = Obj()
    ref = weakref.ref(z)
    p.put(z)
    del z, p
    assert ref() is None


def test_pool_stress():
    """Go's TestPoolStress: concurrent get/put; an object is never handed to
    two holders at once."""
    p = gopy.Pool()
    objs = [Obj(i) for i in range(16)]
    for o in objs:
        p.put(o)
    held = set()
    wg = gopy.WaitGroup()
    lock = threading.Lock()

    def worker(n):
        for i in range(n):
            o = p.get()
            if o is None:
                continue
            with lock:
                assert o.n not in held
                held.add(o.n)
            if i % 5 == 0:
                gopy.runtime.gosched()
            with lock:
                held.discard(o.n)
            p.put(o)

    for _ in range(8):
        wg.go(worker, 500)
    threads = [threading.Thread(target=worker, args=(500,)) for _ in range(2)]
    for t in threads:
        t.start()
    wg.wait()
    join_all(threads)
    assert not held


# ---- Map -------------------------------------------------------------------------


def test_map_api():
    m = gopy.Map()
    assert m.load("a") == (None, False)
    m.store("a", 1)
    assert m.load("a") == (1, True)
    assert m.load_or_store("a", 2) == (1, True)
    assert m.load_or_store("b", 3) == (3, False)
    assert m.swap("a", 4) == (1, True)
    assert m.swap("c", 5) == (None, False)
    assert m.compare_and_swap("a", 1, 6) is False
    assert m.compare_and_swap("a", 4, 6) is True
    assert m.compare_and_swap("zz", None, 1) is False
    assert m.compare_and_delete("a", 4) is False
    assert m.compare_and_delete("a", 6) is True
    assert m.load_and_delete("b") == (3, True)
    assert m.load_and_delete("b") == (None, False)
    m.delete("c")
    m.delete("never there")
    assert m.load("c") == (None, False)
    seen = []
    for k in range(10):
        m.store(k, k * k)
    m.range(lambda k, v: seen.append((k, v)))  # None goes on
    assert sorted(seen) == [(k, k * k) for k in range(10)]
    m.clear()
    seen.clear()
    m.range(lambda k, v: seen.append(k))
    assert seen == []


def test_map_keys_compare_like_a_dict():
    m = gopy.Map()
    m.store(1, "int")
    assert m.load(1.0) == ("int", True)
    assert m.load(True) == ("int", True)
    m.store(True, "bool")  # the same key: the first key object is kept
    seen = []
    m.range(lambda k, v: seen.append((k, v)))
    assert seen == [(1, "bool")] and type(seen[0][0]) is int
    nan = float("nan")
    m.store(nan, "nan")
    assert m.load(nan) == ("nan", True)  # identity, as in a dict
    assert m.load(float("nan")) == (None, False)
    with pytest.raises(TypeError):
        m.store([], 1)
    with pytest.raises(TypeError):
        m.load({})


class Colliding:
    """Keys whose hashes all collide (full 64-bit collisions: chains)."""

    def __init__(self, k):
        self.k = k

    def __hash__(self):
        return 42

    def __eq__(self, other):
        return isinstance(other, Colliding) and other.k == self.k


def test_map_matches_a_dict():
    """Go's TestMapMatchesRWMutex: random operations agree with a dict."""
    rng = random.Random(1234)
    for make_key in (lambda k: k, lambda k: f"k{k}", Colliding):
        m, model = gopy.Map(), {}
        for _ in range(4000):
            k = make_key(rng.randrange(200))
            v = rng.randrange(1000)
            op = rng.randrange(9)
            if op == 0:
                assert m.load(k) == ((model[k], True) if k in model else (None, False))
            elif op == 1:
                m.store(k, v)
                model[k] = v
            elif op == 2:
                got = m.load_or_store(k, v)
                assert got == ((model[k], True) if k in model else (v, False))
                model.setdefault(k, v)
            elif op == 3:
                assert m.load_and_delete(k) == ((model.pop(k), True) if k in model
                                                else (None, False))
            elif op == 4:
                m.delete(k)
                model.pop(k, None)
            elif op == 5:
                assert m.swap(k, v) == ((model[k], True) if k in model else (None, False))
                model[k] = v
            elif op == 6:
                old = model.get(k) if rng.random() < 0.5 else v
                ok = k in model and model[k] == old
                assert m.compare_and_swap(k, old, v) is ok
                if ok:
                    model[k] = v
            elif op == 7:
                old = model.get(k) if rng.random() < 0.5 else v
                ok = k in model and model[k] == old
                assert m.compare_and_delete(k, old) is ok
                if ok:
                    del model[k]
            elif rng.random() < 0.01:
                m.clear()
                model.clear()
        seen = {}
        m.range(lambda k, v: seen.__setitem__(k, v))
        assert seen == model


def test_map_concurrent_writers_and_readers():
    """Writers on their own keys, readers everywhere (TestConcurrentRange):
    a loaded value is always its key's, and the end state is exact."""
    m = gopy.Map()
    wg = gopy.WaitGroup()
    stop = gopy.atomic.Bool()
    final = {}
    lock = threading.Lock()

    def writer(wid, n):
        rng = random.Random(wid)
        mine = {}
        for i in range(n):
            k = wid + 10 * rng.randrange(30)
            if rng.random() < 0.7:
                m.store(k, ("v", k))
                mine[k] = ("v", k)
            else:
                m.delete(k)
                mine.pop(k, None)
            if i % 16 == 0:
                gopy.runtime.gosched()
        with lock:
            final.update(mine)

    def reader():
        while not stop.load():
            for k in range(300):
                v, ok = m.load(k)
                assert not ok or v == ("v", k)
            m.range(lambda k, v: v == ("v", k) or pytest.fail(f"{k}: {v}"))
            gopy.runtime.gosched()

    readers = gopy.WaitGroup()
    for _ in range(3):
        readers.go(reader)
    rt = threading.Thread(target=reader)
    rt.start()
    for wid in range(8):
        wg.go(writer, wid, 400)
    threads = [threading.Thread(target=writer, args=(wid, 400)) for wid in (8, 9)]
    for t in threads:
        t.start()
    wg.wait()
    join_all(threads)
    stop.store(True)
    readers.wait()
    join_all([rt])
    seen = {}
    m.range(lambda k, v: seen.__setitem__(k, v))
    assert seen == final


def test_map_range_stops_and_may_change_the_map():
    m = gopy.Map()
    for k in range(10):
        m.store(k, k)
    calls = []

    def fn(k, v):
        calls.append(k)
        return len(calls) < 3

    m.range(fn)
    assert len(calls) == 3

    def mutate(k, v):
        m.delete(k)
        m.store(k + 100, v)

    m.range(mutate)  # a snapshot: the new keys are not visited
    seen = {}
    m.range(lambda k, v: seen.__setitem__(k, v))
    assert seen == {k + 100: k for k in range(10)}
    with pytest.raises(ZeroDivisionError):
        m.range(lambda k, v: 1 / 0)
    with pytest.raises(TypeError):
        m.range(3)


def test_map_callback_errors_change_nothing():
    class BadEq:
        def __hash__(self):
            return 7

        def __eq__(self, other):
            raise ValueError("no comparing")

    m = gopy.Map()
    a = BadEq()
    m.store(a, 1)  # identical keys never call __eq__
    assert m.load(a) == (1, True)
    with pytest.raises(ValueError):
        m.load(BadEq())
    with pytest.raises(ValueError):
        m.store(BadEq(), 2)
    with pytest.raises(ValueError):
        m.delete(BadEq())
    seen = []
    m.range(lambda k, v: seen.append((k, v)))
    assert seen == [(a, 1)]

    class BadValue:
        def __eq__(self, other):
            raise KeyError("values")

    m.store("k", BadValue())
    with pytest.raises(KeyError):
        m.compare_and_swap("k", Obj(), 1)
    assert isinstance(m.load("k")[0], BadValue)


def test_map_releases_what_it_drops():
    m = gopy.Map()
    k, v1, v2 = Obj(1), Obj(2), Obj(3)
    rk, r1, r2 = weakref.ref(k), weakref.ref(v1), weakref.ref(v2)
    m.store(k, v1)
    del v1
    m.store(k, v2)  # replaced: released by the call
    assert r1() is None
    del v2
    assert r2() is not None
    m.delete(k)
    assert r2() is None
    del k
    assert rk() is None
    x = Obj()
    rx = weakref.ref(x)
    m.store("x", x)
    del x
    m.clear()
    assert rx() is None
    y = Obj()
    ry = weakref.ref(y)
    m.store(y, y)
    del y, m
    assert ry() is None


def test_map_cycles_are_collected():
    m = gopy.Map()
    m.store("self", m)
    r = weakref.ref(m)
    del m
    gc.collect()
    assert r() is None


# ---- Ctrl-C, in a fresh interpreter ------------------------------------------------

CTRL_C = """
import os, signal, sys, threading, time
import gopy
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()

def interrupt_soon():
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGINT)

def interrupted(fn, *args):
    threading.Thread(target=interrupt_soon).start()
    try:
        fn(*args)
    except KeyboardInterrupt:
        print("KI", flush=True)
        return
    print("RETURNED", flush=True)
"""


@pytest.mark.timeout(120)
def test_ctrl_c_interrupts_sync_waits():
    r = run_script(CTRL_C + """
m, rw, wg, o = gopy.Mutex(), gopy.RWMutex(), gopy.WaitGroup(), gopy.Once()
c = gopy.Cond(m)
release = gopy.Chan()
def hold():
    with m, rw:
        release.recv()
gopy.go(hold)
time.sleep(0.1)
interrupted(m.lock)
interrupted(rw.rlock)
interrupted(rw.lock)
wg.add(1)
interrupted(wg.wait)
gopy.go(lambda: o.do(release.recv))
time.sleep(0.1)
interrupted(o.do, lambda: None)
release.send(None)   # hold() lets go
release.send(None)   # the once's function returns
# Everything still works, from goroutines and from here.
m.lock(); m.unlock()
rw.rlock(); rw.runlock()
rw.lock(); rw.unlock()
wg.done(); wg.wait()
o.do(lambda: print("ran again?"))
with m:
    interrupted(c.wait)
    print("relocked", not m.try_lock(), flush=True)
out = gopy.Chan(1)
def waiter():
    with m:
        c.wait()
    out.send("woken")
gopy.go(waiter)
time.sleep(0.1)
c.signal()
print(out.recv(), flush=True)
""")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines == ["KI"] * 5 + ["KI", "relocked", "True", "woken"], r.stdout + r.stderr
