"""Channels shared by goroutines and threading.Threads, in both directions."""

import collections
import threading
import time

import pytest

import gopy
from gopy import Recv, Send, select
from conftest import join_all, recv_value


def test_thread_to_goroutine_and_back():
    for _ in range(3):
        to_g = gopy.Chan()
        to_t = gopy.Chan()
        got = []

        def goroutine():
            for v in to_g:
                to_t.send(v * 10)
            to_t.close()

        def reader():
            got.extend(to_t)

        gopy.go(goroutine)
        r = threading.Thread(target=reader)
        r.start()
        w = threading.Thread(target=lambda: ([to_g.send(i) for i in range(50)], to_g.close()))
        w.start()
        join_all([w, r])
        assert got == [i * 10 for i in range(50)]


def test_goroutine_to_thread_unbuffered_rendezvous():
    ch = gopy.Chan()
    events = []

    def thread():
        time.sleep(0.1)
        events.append("receiving")
        events.append(ch.recv())

    t = threading.Thread(target=thread)
    t.start()
    out = gopy.Chan(1)

    def goroutine():
        ch.send("value")
        out.send(list(events))  # the send completed: the thread was receiving

    gopy.go(goroutine)
    assert recv_value(out)[0] == "receiving"
    join_all([t])
    assert events == ["receiving", "value"]


def test_thread_blocked_in_send_released_by_goroutine():
    ch = gopy.Chan()
    done = []
    t = threading.Thread(target=lambda: (ch.send("from thread"), done.append(1)))
    t.start()
    time.sleep(0.05)
    assert done == []
    out = gopy.Chan(1)
    gopy.go(lambda: out.send(ch.recv()))
    assert recv_value(out) == "from thread"
    join_all([t])
    assert done == [1]


@pytest.mark.timeout(120)
def test_many_threads_blocked_in_recv_released_by_one_close():
    for _ in range(2):
        ch = gopy.Chan()
        results = []
        lock = threading.Lock()
        started = threading.Barrier(17)

        def waiter():
            started.wait()
            r = ch.recv_ok()
            with lock:
                results.append(r)

        threads = [threading.Thread(target=waiter) for _ in range(16)]
        for t in threads:
            t.start()
        started.wait()
        time.sleep(0.1)
        assert results == []  # nobody was released early
        ch.close()
        join_all(threads)
        assert results == [(None, False)] * 16


@pytest.mark.timeout(120)
def test_many_threads_blocked_in_send_released_by_close():
    ch = gopy.Chan()
    results = collections.Counter()
    lock = threading.Lock()

    def sender():
        try:
            ch.send(1)
            r = "sent"
        except gopy.ClosedChannelError:
            r = "closed"
        with lock:
            results[r] += 1

    threads = [threading.Thread(target=sender) for _ in range(12)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    ch.close()
    join_all(threads)
    assert results == {"closed": 12}


@pytest.mark.timeout(180)
def test_many_to_many_mixed():
    """4 thread + 4 goroutine producers, 2 thread + 2 goroutine consumers:
    every value arrives exactly once, each producer's values in order."""
    ch = gopy.Chan(8)
    n = 250
    consumed = gopy.Chan(10)
    producers_done = gopy.Chan(8)

    def producer(tag):
        for i in range(n):
            ch.send((tag, i))
        producers_done.send(tag)

    def consumer():
        got = [v for v in ch]
        consumed.send(got)

    cons_threads = [threading.Thread(target=consumer) for _ in range(2)]
    for t in cons_threads:
        t.start()
    for _ in range(2):
        gopy.go(consumer)
    prod_threads = [threading.Thread(target=producer, args=(f"t{k}",)) for k in range(4)]
    for t in prod_threads:
        t.start()
    for k in range(4):
        gopy.go(producer, f"g{k}")
    assert sorted(recv_value(producers_done, 120) for _ in range(8)) == sorted(
        [f"t{k}" for k in range(4)] + [f"g{k}" for k in range(4)])
    ch.close()
    lists = [recv_value(consumed, 120) for _ in range(4)]
    join_all(prod_threads + cons_threads)
    everything = [v for lst in lists for v in lst]
    assert len(everything) == 8 * n
    assert len(set(everything)) == 8 * n
    # Per consumer, each producer's values arrive in increasing order (FIFO).
    for lst in lists:
        last = {}
        for tag, i in lst:
            assert i > last.get(tag, -1)
            last[tag] = i


def test_thread_select_with_goroutine_partner():
    a, b = gopy.Chan(), gopy.Chan()
    res = []

    def thread():
        for _ in range(10):
            res.append(select(Recv(a), Send(b, "from thread")))

    t = threading.Thread(target=thread)
    t.start()
    out = gopy.Chan(1)

    def goroutine():
        got = []
        for k in range(10):
            if k % 2:
                a.send(k)
            else:
                got.append(b.recv())
        out.send(got)

    gopy.go(goroutine)
    assert recv_value(out) == ["from thread"] * 5
    join_all([t])
    assert [r for r in res if r[0] == 0] == [(0, k, True) for k in (1, 3, 5, 7, 9)]
    assert [r for r in res if r[0] == 1] == [(1, None, True)] * 5


def test_goroutines_started_from_threads():
    out = gopy.Chan(100)

    def thread(k):
        for i in range(5):
            gopy.go(out.send, (k, i))

    threads = [threading.Thread(target=thread, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    join_all(threads)
    assert sorted(recv_value(out) for _ in range(20)) == [(k, i) for k in range(4)
                                                         for i in range(5)]


def test_goroutine_waits_for_thread_sleep_timer():
    ch = gopy.Chan()

    def thread():
        gopy.sleep(0.05)
        ch.send("late")

    t = threading.Thread(target=thread)
    t.start()
    out = gopy.Chan(1)
    gopy.go(lambda: out.send(select(Recv(ch), Recv(gopy.after(30)))))
    i, v, ok = recv_value(out)
    assert (i, v, ok) == (0, "late", True)
    join_all([t])


def test_thread_local_values_not_confused():
    # A goroutine and threads each see their own threading.local.
    local = threading.local()
    local.v = "main"
    out = gopy.Chan(5)

    def g():
        out.send(getattr(local, "v", "unset"))

    gopy.go(g)

    def t():
        local.v = "thread"
        out.send(local.v)

    th = threading.Thread(target=t)
    th.start()
    join_all([th])
    assert sorted([recv_value(out), recv_value(out)]) == ["thread", "unset"]
    assert local.v == "main"
