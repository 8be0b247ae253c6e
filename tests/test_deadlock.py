"""Deadlock detection (Go's "all goroutines are asleep - deadlock!"), each
case in a fresh interpreter so no other test's threads or goroutines are
around to keep it from (or trick it into) firing."""

import pytest

from conftest import run_script

DEADLOCKS = {
    "receive, no goroutines": "gopy.Chan().recv()",
    "send, no goroutines": "gopy.Chan().send(1)",
    "select with no cases": "gopy.select()",
    "select over nil channels": "gopy.select(gopy.Recv(None), gopy.Send(None, 1))",
    "receive while goroutines are parked too":
        "[gopy.go(gopy.Chan().recv) for _ in range(10)]; gopy.sleep(0.05); gopy.Chan().recv()",
    "goroutines waiting on each other":
        "a, b = gopy.Chan(), gopy.Chan(); gopy.go(lambda: (a.recv(), b.send(1))); b.recv()",
    "full buffered channel": "c = gopy.Chan(2); c.send(1); c.send(2); c.send(3)",
    "a thread blocked too": "t = threading.Thread(target=gopy.Chan().recv, daemon=True); "
                            "t.start(); gopy.sleep(0.05); gopy.Chan().recv()",
}


@pytest.mark.parametrize("case", sorted(DEADLOCKS))
def test_deadlock_raises_in_the_blocked_thread(case):
    r = run_script(f"""
        import gopy, threading
        try:
            {DEADLOCKS[case]}
        except gopy.DeadlockError as e:
            print(type(e).__name__, isinstance(e, RuntimeError), e)
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "DeadlockError True all goroutines are asleep - deadlock!"


NOT_DEADLOCKS = {
    "a goroutine sleeps on a timer, then sends":
        "gopy.go(lambda: (gopy.sleep(0.3), ch.send('ok')))",
    "a goroutine is in a blocking call gopy cannot see":
        "gopy.go(lambda: (time.sleep(0.3), ch.send('ok')))",
    "a goroutine computes, then sends":
        "gopy.go(lambda: (sum(range(5_000_000)), ch.send('ok')))",
    "a C goroutine is in a blocking call": "gopy.go_c(libc.usleep, 300000); "
        "gopy.go(lambda: (gopy.sleep(0.35), ch.send('ok')))",
    "another thread will act, not having used gopy yet":
        "threading.Thread(target=lambda: (time.sleep(0.3), ch.send('ok'))).start()",
    "another thread holds the GIL computing, then sends":
        "threading.Thread(target=lambda: (sum(range(5_000_000)), ch.send('ok'))).start()",
    "a timer channel will fire": "gopy.go(lambda: ch.send(gopy.after(0.3).recv() and 'ok'))",
    "a goroutine waits on a timer in select":
        "gopy.go(lambda: (gopy.select(gopy.Recv(gopy.Chan()), gopy.Recv(gopy.after(0.3))), "
        "ch.send('ok')))",
}


@pytest.mark.parametrize("case", sorted(NOT_DEADLOCKS))
def test_no_false_positive(case):
    r = run_script(f"""
        import ctypes, gopy, threading, time
        libc = ctypes.CDLL(None)
        ch = gopy.Chan()
        {NOT_DEADLOCKS[case]}
        print(ch.recv())
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_no_false_positive_from_a_thread_that_was_just_woken():
    # The main thread is woken again and again by a goroutine that then
    # computes a little and ends, so main often waits for the GIL with every
    # M idle.  The other thread, waiting all along on a channel only main
    # will close, must not take main (woken, not yet back) for parked.
    r = run_script("""
        import gopy, threading
        done, results = gopy.Chan(), []
        def wait():
            try:
                results.append(done.recv())
            except gopy.DeadlockError as e:
                results.append(e)
        t = threading.Thread(target=wait)
        t.start()
        ch = gopy.Chan()
        def send_then_compute():
            ch.send(1)
            sum(range(20000))
        for _ in range(10000):
            gopy.go(send_then_compute)
            ch.recv()
        done.close()
        t.join()
        print(results)
    """, timeout=120)
    assert (r.returncode, r.stdout.strip()) == (0, "[None]"), r.stderr


def test_deadlocked_main_thread_can_go_on_afterwards():
    r = run_script("""
        import gopy
        ch = gopy.Chan()
        try:
            ch.recv()
        except gopy.DeadlockError:
            pass
        gopy.go(lambda: ch.send("after"))
        print(ch.recv())
    """, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "after"), r.stderr
