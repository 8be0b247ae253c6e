"""Sharing gopy's objects between goroutines and threads that run Python at
the same moment (a free-threaded build with the GIL off: docs/free-threading.md).
Every test here also runs on GIL builds, where it asserts the same behaviour;
only what the GIL itself decides (is it off, do pure-Python goroutines
overlap) differs by build."""

import gc
import os
import threading
import time

import pytest

import gopy
from conftest import FREE_THREADED, FT_BUILD, join_all, recv_timeout, recv_value, wait_until


def run_in_both(in_goroutines, in_threads):
    """Call each function of the first list in a goroutine and each of the
    second in a thread, all at once; return when every one has."""
    wg = gopy.WaitGroup()
    for f in in_goroutines:
        wg.go(f)
    threads = [threading.Thread(target=f) for f in in_threads]
    for t in threads:
        t.start()
    wg.wait()
    join_all(threads)


def spin(n):
    acc = 0
    for k in range(n):
        acc = (acc * 31 + k) % 1_000_003
    return acc


def test_import_keeps_the_gil_off_on_a_free_threaded_build():
    # The suite runs with PYTHON_GIL=0 there; without the Py_mod_gil slot
    # importing gopy would have turned the GIL back on.
    assert (not FREE_THREADED) is (not FT_BUILD or os.environ.get("PYTHON_GIL") == "1")


def compute_in_goroutines(procs, k, n):
    """k goroutines each computing spin(n) under GOMAXPROCS=procs: their
    results, and the process's CPU time over the wall time meanwhile."""
    old = gopy.runtime.gomaxprocs(procs)
    try:
        wg = gopy.WaitGroup()
        out = [None] * k

        def work(i):
            out[i] = spin(n)

        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(k):
            wg.go(work, i)
        wg.wait()
        ratio = (time.process_time() - cpu) / (time.perf_counter() - wall)
    finally:
        gopy.runtime.gomaxprocs(old)
    return out, ratio


@pytest.mark.skipif(os.cpu_count() < 2, reason="needs two cores to overlap anything")
def test_pure_python_goroutines_overlap_only_without_the_gil():
    # Two goroutines computing in pure Python: the process's CPU time over
    # the wall time is ~2 on two cores with the GIL off, ~1 with it.
    # Generous bounds: they catch serialisation (or its absence), not speed.
    n = 1_500_000
    out, ratio = compute_in_goroutines(2, 2, n)
    assert out == [spin(n)] * 2
    if FREE_THREADED:
        assert ratio > 1.3
    else:
        assert ratio < 1.5


@pytest.mark.skipif(os.cpu_count() < 2, reason="one core caps everything at one")
def test_gomaxprocs_caps_the_goroutines_running_python_at_once():
    # Four goroutines computing under GOMAXPROCS=1: the Ms that start them
    # take turns, as Go's goroutines share one P; the GIL build's GIL does
    # it there, host slots with the GIL off (they overlapped on two cores
    # before: CPU over wall time 1.99).
    n = 1_000_000
    out, ratio = compute_in_goroutines(1, 4, n)
    assert out == [spin(n)] * 4
    assert ratio < 1.5, ratio


def test_a_goroutine_blocked_in_a_call_lets_the_next_thread_run_under_gomaxprocs_1():
    # The first goroutine blocks in threading.Lock.acquire (a C call that
    # lets the interpreter go, which gopy does not hook) on its M, keeping
    # it; the second, started on another M, needs a turn to run Python
    # and release it.  Go's sysmon retakes the P of an M in a syscall; here
    # the blocked M's host slot goes to the waiting M.
    old = gopy.runtime.gomaxprocs(1)
    lock = threading.Lock()
    lock.acquire()
    out = gopy.Chan(2)
    try:

        def blocked():
            lock.acquire()
            out.send("acquired")

        def releaser():
            spin(50_000)
            out.send("releasing")
            lock.release()

        gopy.go(blocked)
        time.sleep(0.1)  # blocked in acquire by now (the order below checks it)
        gopy.go(releaser)
        got = [recv_value(out), recv_value(out)]
    finally:
        gopy.runtime.gomaxprocs(old)
    assert got == ["releasing", "acquired"]


@pytest.mark.parametrize("spinner_locked", [False, True], ids=["spinner", "locked spinner"])
def test_a_computing_goroutine_takes_turns_with_another_thread_under_gomaxprocs_1(spinner_locked):
    # A goroutine spins until another sets a flag.  The setter is locked to
    # a thread of its own, so under GOMAXPROCS=1 its M waits for the slot
    # the spinner's M holds; that M lets it go after a slice (the spinner
    # preempted at a back-edge, even locked to its thread: it has nobody to
    # switch to, but takes turns for the slot), as the GIL's switch
    # interval lets the GIL go on a GIL build.
    old = gopy.runtime.gomaxprocs(1)
    flag = []
    go_ahead = gopy.Chan()
    out = gopy.Chan(3)
    try:

        def setter():
            gopy.runtime.lock_os_thread()
            out.send(threading.get_native_id())
            go_ahead.recv()
            flag.append(1)
            out.send("set")

        def spinner():
            if spinner_locked:
                gopy.runtime.lock_os_thread()
            out.send(threading.get_native_id())
            while not flag:
                pass
            out.send("saw it")

        gopy.go(setter)
        setter_thread = recv_value(out)
        gopy.go(spinner)
        spinner_thread = recv_value(out)
        go_ahead.send(None)
        got = [recv_value(out), recv_value(out)]
    finally:
        gopy.runtime.gomaxprocs(old)
    assert setter_thread != spinner_thread
    # Both, whatever their order: the setter may lose its turn between
    # setting the flag and sending (its slice up while the OS held its
    # thread, or its slot revoked then), as a Go goroutine may be
    # preempted there; the spinner then sends first.  What fails is a
    # spinner that never lets the setter run: no "set", no "saw it".  (The
    # cap itself: test_gomaxprocs_caps_the_goroutines_running_python_at_once.)
    assert sorted(got) == ["saw it", "set"]


def test_atomic_value_swapped_and_loaded_from_many_goroutines():
    # Loads race swaps that drop the old object's last reference: a load
    # must never take a reference to an object already freed.
    v = gopy.atomic.Value(object())
    seen = gopy.atomic.Int64()

    def swapper():
        for i in range(20_000):
            old = v.swap([i])
            assert type(old) in (list, object)  # the first object, or a swapper's list

    def loader():
        for _ in range(20_000):
            x = v.load()
            if isinstance(x, list):
                seen.add(1)
                assert len(x) == 1

    run_in_both([swapper, swapper, loader, loader], [swapper, loader])
    assert isinstance(v.load(), list)
    assert seen.load() > 0


def test_atomic_value_compare_and_swap_counts_exactly():
    # A counter kept in a Value by compare-and-swap: no increment lost.
    v = gopy.atomic.Value(0)

    def incr():
        for _ in range(2_000):
            while True:
                old = v.load()
                if v.compare_and_swap(old, old + 1):
                    break

    run_in_both([incr] * 4, [incr] * 2)
    assert v.load() == 6 * 2_000


def test_concurrent_cancels_leave_exactly_one_cause_and_it_is_seen():
    # Goroutines and threads cancel one context with causes of their own;
    # anyone who sees it done sees the winner's cause, never None.
    for _ in range(50):
        ctx, cancel = gopy.context.with_cancel_cause(gopy.context.background())
        causes = [ValueError(i) for i in range(6)]
        seen = []
        go_ = gopy.Chan()

        def canceller(c):
            go_.recv()
            cancel(c)
            seen.append(gopy.context.cause(ctx))

        fns = [lambda c=c: canceller(c) for c in causes]
        gopy.go(go_.close)
        run_in_both(fns[:4], fns[4:])
        winner = gopy.context.cause(ctx)
        assert winner in causes
        assert seen == [winner] * 6


def test_done_channel_is_one_object_for_every_caller():
    ctx, cancel = gopy.context.with_cancel(gopy.context.background())
    got = gopy.Chan(8)
    start = gopy.Chan()

    def get():
        start.recv()
        got.send(ctx.done())

    for _ in range(8):
        gopy.go(get)
    start.close()
    views = [recv_value(got) for _ in range(8)]
    assert all(d is views[0] for d in views)
    cancel()
    assert recv_timeout(views[0]) == (None, False)


def test_what_only_parked_goroutines_hold_survives_collections_on_other_threads():
    # A parked goroutine's frames are on no thread's frame chain.  The
    # collector must still count what they hold (greenlet #511: 3.14t's
    # deferred stack references are found only by walking threads' frames,
    # which is why gopy refuses to import there).  Locals of every kind a
    # frame holds: a cycle, a function made in the frame (its own code and
    # closure), a class, an instance of it, all reachable from nothing else,
    # while collections run from the main thread and goroutines compute
    # and collect on other Ms.
    n = 40
    release = gopy.Chan()
    results = gopy.Chan(n)
    wg = gopy.WaitGroup()

    def holder(i):
        cycle = [i]
        cycle.append(cycle)

        def made_here(x, i=i):
            return x * 1000 + i

        class Local:
            def __init__(self, v):
                self.v = v

        obj = Local(made_here(i))
        release.recv()  # parked: these live only in this frame now
        gc.collect()
        results.send((cycle[0], cycle[1] is cycle, made_here(2), obj.v, type(obj).__name__))

    def churn():
        for _ in range(5):
            spin(20_000)
            gc.collect()

    for i in range(n):
        gopy.go(holder, i)
    assert wait_until(lambda: gopy.runtime.stats()["goroutines"] >= n)
    time.sleep(0.05)  # all parked in release.recv by now (the checks below hold either way)
    for _ in range(2):
        wg.go(churn)
    for _ in range(5):
        gc.collect()
    wg.wait()
    for _ in range(n):
        release.send(None)
    got = sorted(recv_value(results) for _ in range(n))
    assert got == sorted((i, True, 2000 + i, 1000 * i + i, "Local") for i in range(n))


def test_goroutine_parked_inside_a_critical_section_lets_its_lock_go():
    # list.sort holds the list's lock (a critical section, on a free-threaded
    # build) while it calls the key function; this one receives from a
    # channel, so the goroutine parks mid-sort.  Another goroutine then
    # appends to the list: it must get the lock (the parked one let it go),
    # not wait for a sort that waits for it.  CPython reports the change
    # when the sort ends, as it does for a thread.
    lst = [3, 1, 2]
    keys = gopy.Chan()
    result = gopy.Chan(1)

    def sorter():
        try:
            lst.sort(key=lambda x: keys.recv())
            result.send("sorted")
        except ValueError as exc:
            result.send(str(exc))

    def appender():
        for k in (30, 10, 20):
            keys.send(k)
            if k == 10:
                lst.append(4)

    gopy.go(sorter)
    gopy.go(appender)
    assert recv_value(result) == "list modified during sort"
    assert sorted(lst) == [1, 2, 3]  # the sort keeps its own items (CPython drops the 4)


def test_once_value_exception_raised_to_many_callers_keeps_its_traceback():
    def fail():
        raise KeyError("once")

    f = gopy.once_value(fail)
    got = gopy.Chan(16)

    def call():
        try:
            f()
        except KeyError as exc:
            tb = exc.__traceback__
            while tb.tb_next is not None:
                tb = tb.tb_next
            got.send((exc, tb.tb_frame.f_code.co_name))

    run_in_both([call] * 12, [call] * 4)
    results = [recv_value(got) for _ in range(16)]
    # One exception object for every caller, its traceback ending where fn
    # raised (callers still propagating it add their own frames above).
    assert len({id(e) for e, _ in results}) == 1
    assert {name for _, name in results} == {"fail"}


def test_stack_read_while_goroutines_switch_on_other_threads():
    # runtime.stack() reads parked goroutines' frames while their Ms resume
    # and park them again (held still while read, without the GIL): it
    # never crashes, and shows each parked goroutine where it waits.
    stop = gopy.Chan()
    done = gopy.WaitGroup()

    def player(inp, out):
        while True:
            i, v, _ = gopy.select(gopy.Recv(inp), gopy.Recv(stop))
            if i == 1 or gopy.select(gopy.Send(out, v + 1), gopy.Recv(stop))[0] == 1:
                return

    pairs = [(gopy.Chan(), gopy.Chan()) for _ in range(4)]
    for a, b in pairs:
        done.go(player, a, b)
        done.go(player, b, a)
        a.send(0)
    try:
        for _ in range(100):
            text = gopy.runtime.stack()
            assert text.count("goroutine ") >= 8
    finally:
        stop.close()
        done.wait()
    # Once they wait where they will stay, their frames show.
    ready, release = gopy.Chan(), gopy.Chan()

    def parked_here():
        ready.send(None)
        release.recv()

    gopy.go(parked_here)
    ready.recv()
    try:
        assert wait_until(lambda: "in parked_here" in gopy.runtime.stack())
    finally:
        release.close()
