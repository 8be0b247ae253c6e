"""Shared checks of the blocking-call hooks' tests (tests/test_hooks_*.py).

parks(block, unblock) proves that a call parks its goroutine rather than
blocking its thread: goroutine A runs block(); goroutine B is bound to A's
thread (GOMAXPROCS 1, B started by A and first run while A waits for it;
checked by comparing threading.get_ident(), the scene retried if the GIL
went elsewhere).  While A is inside block(), the main thread sends B a
ping: B can only answer if A's thread is free, that is if A parked.  B
answers with its thread and whether A was inside block() then.  Only then
does unblock() let block() return.  No timing is asserted: a call that
blocks its thread makes the ping wait for the hang bound.
"""

import os
import threading
import time

import pytest

import gopy
from conftest import collect, recv_value

HANG = 30.0  # seconds: a hang bound, never a timing assertion


def send_timeout(ch, value, timeout=HANG):
    i, _, _ = gopy.select(gopy.Send(ch, value), gopy.Recv(gopy.after(timeout)))
    return i == 0


def parks(block, unblock=None, attempts=5):
    """block() in a goroutine whose thread another goroutine uses while
    block() waits; returns block()'s result (or raises its exception)."""
    prev = gopy.runtime.gomaxprocs(1)
    try:
        for _ in range(attempts):
            ping, pong, ready, result = gopy.Chan(), gopy.Chan(), gopy.Chan(1), gopy.Chan(1)
            inside = [False]

            def b():
                while ping.recv() is not None:
                    pong.send((threading.get_ident(), inside[0]))

            def a():
                me = threading.get_ident()
                gopy.go(b)
                ping.send("hello")
                if pong.recv()[0] != me:
                    ping.send(None)
                    ready.send(None)
                    return
                ready.send(me)
                inside[0] = True
                try:
                    got = (True, block())
                except BaseException as e:  # noqa: BLE001 - handed to the test
                    got = (False, e)
                inside[0] = False
                ping.send(None)
                result.send(got)

            gopy.go(a)
            me = recv_value(ready, HANG)
            if me is None:
                continue  # B started on another thread: set the scene again
            answered = send_timeout(ping, "are you there")
            if not answered and unblock is not None:
                unblock()  # let A go before failing
            assert answered, "the call blocked its goroutine's thread"
            ident, a_inside = recv_value(pong, HANG)
            assert ident == me
            assert a_inside, "the call returned before the other goroutine ran"
            if unblock is not None:
                unblock()
            ok, value = recv_value(result, HANG)
            if not ok:
                raise value
            return value
        pytest.fail("two goroutines never shared a thread")
    finally:
        gopy.runtime.gomaxprocs(prev)


def open_fds():
    """How many descriptors this process has open now, garbage collected
    first (what an earlier test's unreachable objects hold is not a leak of
    the code under test)."""
    collect()
    return len(os.listdir("/proc/self/fd"))


def run_parked_pool(job, jobs=24, workers=8):
    """The issue's worker pool: `workers` goroutines started (at GOMAXPROCS 1,
    so that they share one thread) and parked on a jobs channel, then `jobs`
    jobs sent; each worker calls job(n) for job n.  Returns the results in
    the order they came and the seconds from the first send to the last
    result: the callers assert a bound that catches serialisation (their jobs
    take 50 ms: ideal 0.15 s, one at a time 1.2 s)."""
    todo, done = gopy.Chan(), gopy.Chan(jobs)

    def worker():
        for n in todo:
            done.send(job(n))

    prev = gopy.runtime.gomaxprocs(1)
    try:
        for _ in range(workers):
            gopy.go(worker)
        time.sleep(0.1)  # the workers park on the jobs channel
        start = time.monotonic()
        for n in range(jobs):
            todo.send(n)
        results = [recv_value(done) for _ in range(jobs)]
        elapsed = time.monotonic() - start
        todo.close()
    finally:
        gopy.runtime.gomaxprocs(prev)
    return results, elapsed
