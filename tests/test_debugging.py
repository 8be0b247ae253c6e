"""Goroutine dumps and warnings: runtime.stack(), GOPY_TRACEBACK on
SIGQUIT and on fatal errors, and the stall warning."""

import signal
import sys

import pytest

import gopy
from conftest import FREE_THREADED, FT_BUILD, build_overflowing_lib, run_script, wait_until


def test_stack_lists_every_goroutine_with_state_and_wait_reason():
    gate, ready = gopy.Chan(), gopy.Chan(3)

    def in_select():
        ready.send(1)
        gopy.select(gopy.Recv(gate), gopy.Recv(None))

    def sleeping():
        ready.send(1)
        gopy.sleep(60)

    def receiving():
        ready.send(1)
        gate.recv()

    for f in (in_select, sleeping, receiving):
        gopy.go(f)
    for _ in range(3):
        ready.recv()
    assert wait_until(lambda: all(name in gopy.runtime.stack() for name in
                                  ("in_select", "sleeping", "receiving")))
    def innermost(block):  # the last frame's function, before "created by"
        frames = [line for line in block.splitlines() if line.startswith("  File ")]
        return frames[-1].rsplit(" in ", 1)[-1] if frames else None

    blocks = {innermost(b): b.splitlines()[0] for b in gopy.runtime.stack().split("\n\n")
              if innermost(b) in ("in_select", "sleeping", "receiving")}
    assert blocks["in_select"].endswith("[waiting: select]:")
    assert blocks["sleeping"].endswith("[waiting: sleep]:")
    assert blocks["receiving"].endswith("[waiting: chan receive]:")
    gate.close()


@pytest.mark.skipif(not hasattr(signal, "SIGQUIT"), reason="no SIGQUIT")
def test_sigquit_dumps_goroutines_and_exits_2_with_gopy_traceback():
    r = run_script("""
        import gopy, os, signal
        gate = gopy.Chan()
        def parked_here():
            gate.recv()
        for _ in range(3):
            gopy.go(parked_here)
        gopy.sleep(0.1)
        os.kill(os.getpid(), signal.SIGQUIT)
        gopy.sleep(30)
    """, env={"GOPY_TRACEBACK": "all"})
    assert r.returncode == 2
    assert r.stderr.startswith("SIGQUIT: quit")
    assert r.stderr.count("[waiting: chan receive]:") == 3
    assert r.stderr.count("in parked_here") == 3


def test_fatal_error_with_gopy_traceback_all_lists_goroutines(tmp_path):
    lib = build_overflowing_lib(tmp_path)
    r = run_script(f"""
        import ctypes, gopy
        gate = gopy.Chan()
        gopy.go(gate.recv)
        gopy.sleep(0.05)
        gopy.go_c(ctypes.CDLL({str(lib)!r}).run)
        gopy.sleep(30)
    """, env={"GOPY_TRACEBACK": "all"}, timeout=60)
    assert r.returncode != 0
    assert "gopy: fatal error: stack overflow in goroutine" in r.stderr
    assert "[waiting: chan receive]: Python goroutine on thread M" in r.stderr
    assert "[running]: C goroutine" in r.stderr


def test_stall_warning_when_a_thread_blocks_its_goroutines():
    # The hazard of holding a threading.Lock across a park: the goroutine
    # that then blocks on the lock blocks its whole thread, and the
    # lock's holder, bound to that thread, can never run to release it.
    r = run_script("""
        import gopy, threading, time
        lock = threading.Lock()
        out = gopy.Chan(2)
        start = time.monotonic()
        def holder():
            with lock:
                gopy.sleep(0.1)
            out.send(("holder done", time.monotonic() - start > 2.5, threading.get_ident()))
        def blocker():
            gopy.sleep(0.01)
            got = lock.acquire(timeout=3)
            if got:
                lock.release()
            out.send(("blocker got the lock" if got else "blocker timed out",
                      time.monotonic() - start > 2.5, threading.get_ident()))
        gopy.go(holder)
        gopy.go(blocker)
        for _ in range(2):
            print(*out.recv())
    """, env={"GOPY_STALL_WARNING": "0.5"}, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [line.rsplit(" ", 2) for line in r.stdout.split("\n")[:2]]
    lines = [(what, late == "True", ident) for what, late, ident in lines]
    if lines[0][2] != lines[1][2]:
        # With the GIL off an idle M may start the blocker at once, on a
        # thread of its own: then there is no hazard, and no warning (and
        # either may report first once the holder lets the lock go).
        assert FREE_THREADED
        assert sorted(what for what, _, _ in lines) == ["blocker got the lock", "holder done"]
        assert "gopy: warning" not in r.stderr
        return
    # The holder, on the blocked thread, got to run only after the blocker
    # timed out (which of the two then reported first is the scheduler's
    # choice: the blocker may be preempted as its call returns).
    assert sorted(lines)[0][:2] == ("blocker timed out", True)
    assert sorted(lines)[1][:2] == ("holder done", True)
    assert "gopy: warning: thread M" in r.stderr
    assert "has been blocked in one goroutine's call for" in r.stderr
    assert "goroutine(s) bound to that thread wait to run" in r.stderr
    assert "[running]: Python goroutine on thread M" in r.stderr
    assert "[runnable]: Python goroutine on thread M" in r.stderr
    # ... and where the blocked goroutine is, from the binding.
    assert "The goroutine running on that thread, most recent call last:" in r.stderr
    assert ", in blocker\n" in r.stderr


def test_stall_warning_names_a_goroutine_computing_where_it_cannot_be_preempted():
    r = run_script("""
        import gopy, threading, time
        out = gopy.Chan(2)
        def gen():
            end = time.perf_counter() + 1.5
            while time.perf_counter() < end:
                yield 1
        def computer():
            gopy.sleep(0.01)
            out.send(("computer", sum(gen()) > 0, threading.get_ident()))
        def other():
            gopy.sleep(0.05)
            out.send(("other", True, threading.get_ident()))
        gopy.go(computer)
        gopy.go(other)
        for _ in range(2):
            print(*out.recv())
    """, env={"GOPY_STALL_WARNING": "0.5"}, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.split("\n")[:2]]
    if lines[0][2] != lines[1][2]:
        assert FREE_THREADED  # two threads: nothing stalls
        assert "gopy: warning" not in r.stderr
        return
    # A generator that sum() consumes is Python called back from C: not
    # preempted, so the other goroutine waits, and the warning says why.
    assert [line[0] for line in lines] == ["computer", "other"]
    assert "has computed in one goroutine for" in r.stderr
    assert "without parking while 1 goroutine(s) bound to that thread wait to run" in r.stderr
    assert "The goroutine running on that thread, most recent call last:" in r.stderr
    assert ", in gen\n" in r.stderr
    # With the GIL off the thread runs on while the binding looks: only its
    # innermost frame is safe to read.
    assert (", in computer\n" in r.stderr) == (not FT_BUILD)


def test_no_stall_warning_for_a_lone_blocking_call():
    r = run_script("""
        import gopy, time
        done = gopy.Chan()
        gopy.go(lambda: (time.sleep(1.0), done.send(1)))
        done.recv()
    """, env={"GOPY_STALL_WARNING": "0.3"}, timeout=60)
    assert (r.returncode, r.stderr) == (0, "")


def test_set_stall_warning_validates_its_argument():
    with pytest.raises(TypeError):
        gopy.runtime.set_stall_warning("soon")
    gopy.runtime.set_stall_warning(5.0)
