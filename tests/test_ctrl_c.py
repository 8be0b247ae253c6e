"""Ctrl-C (SIGINT) interrupts the main thread blocked in a gopy call with
KeyboardInterrupt, and the channel stays usable (docs/api.md,
"Conventions").  Each case runs in a fresh interpreter; the parent sends
SIGINT once the child says it is about to block."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT

PRELUDE = """
import sys, time, weakref
import gopy
from gopy import Recv, Send, select

# A running thread could wake any channel: keeps deadlock detection from
# answering the blocked main thread before the SIGINT does.
import threading
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()

def ready():
    print("READY", flush=True)

def interrupted(fn, *args):
    ready()
    t0 = time.monotonic()
    try:
        r = fn(*args)
    except KeyboardInterrupt:
        print("KI %.3f" % (time.monotonic() - t0), flush=True)
        return
    print("RETURNED", repr(r), flush=True)
"""


def run_with_sigint(body, n_signals=1, delay=0.3, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = PRELUDE + textwrap.dedent(body)
    p = subprocess.Popen([sys.executable, "-u", "-c", code], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines = []
    try:
        deadline = time.monotonic() + timeout
        sent = 0
        while sent < n_signals:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                time.sleep(delay)
                p.send_signal(signal.SIGINT)
                sent += 1
            assert time.monotonic() < deadline, "child too slow"
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        p.kill()
        p.communicate()
        raise
    lines += out.splitlines()
    return p.returncode, [ln for ln in lines if ln != "READY"], err


def assert_prompt(line):
    assert line.startswith("KI "), line
    assert float(line.split()[1]) < 10.0  # 60 s blocks: interrupted promptly


@pytest.mark.timeout(90)
def test_ctrl_c_interrupts_recv_and_channel_still_works():
    rc, lines, err = run_with_sigint("""
        ch = gopy.Chan()
        interrupted(ch.recv)
        gopy.go(lambda: ch.send(42))
        print("after", ch.recv())
        ch.send_only()
        b = gopy.Chan(1)
        interrupted(b.recv)
        b.send("buffered later")
        print("after", b.recv())
    """, n_signals=2)
    assert rc == 0, err
    assert len(lines) == 4, (lines, err)
    assert_prompt(lines[0])
    assert lines[1] == "after 42"
    assert_prompt(lines[2])
    assert lines[3] == "after buffered later"


@pytest.mark.timeout(90)
def test_ctrl_c_interrupts_sleep():
    rc, lines, err = run_with_sigint("""
        interrupted(gopy.sleep, 60)
        t0 = time.monotonic()
        gopy.sleep(0.05)
        print("slept", time.monotonic() - t0 >= 0.04)
    """)
    assert rc == 0, err
    assert_prompt(lines[0])
    assert lines[1] == "slept True"


@pytest.mark.timeout(90)
def test_ctrl_c_interrupts_select():
    rc, lines, err = run_with_sigint("""
        a, b = gopy.Chan(), gopy.Chan()
        interrupted(select, Recv(a), Recv(b), Recv(gopy.after(60)))
        gopy.go(lambda: b.send("b"))
        print("after", select(Recv(a), Recv(b)))
        interrupted(select)  # select {} on the main thread: interruptible too
        print("done")
    """, n_signals=2)
    assert rc == 0, err
    assert_prompt(lines[0])
    assert lines[1] == "after (1, 'b', True)"
    assert_prompt(lines[2])
    assert lines[3] == "done"


@pytest.mark.timeout(90)
def test_ctrl_c_interrupts_send_without_delivering_or_leaking():
    rc, lines, err = run_with_sigint("""
        class Obj: pass
        ch = gopy.Chan()
        o = Obj()
        ref = weakref.ref(o)
        before = sys.getrefcount(o)
        interrupted(ch.send, o)
        print("refcount restored", sys.getrefcount(o) == before)
        print("nothing delivered", select(Recv(ch), default=True))
        del o
        print("freed", ref() is None)
        gopy.go(lambda: print("goroutine got", ch.recv(), flush=True))
        ch.send("real")
        gopy.sleep(0.2)
    """)
    assert rc == 0, err
    assert_prompt(lines[0])
    assert lines[1:] == ["refcount restored True", "nothing delivered (-1, None, False)",
                         "freed True", "goroutine got real"]


@pytest.mark.timeout(90)
def test_ctrl_c_interrupts_select_send_without_leaking():
    rc, lines, err = run_with_sigint("""
        class Obj: pass
        a, b = gopy.Chan(), gopy.Chan()
        o = Obj()
        before = sys.getrefcount(o)
        interrupted(select, Send(a, o), Send(b, o), Recv(gopy.Chan()))
        print("refcount restored", sys.getrefcount(o) == before)
        print("nothing delivered", select(Recv(a), Recv(b), default=True))
    """)
    assert rc == 0, err
    assert_prompt(lines[0])
    assert lines[1:] == ["refcount restored True", "nothing delivered (-1, None, False)"]


@pytest.mark.timeout(90)
def test_ctrl_c_interrupts_iteration_and_timer_channel():
    rc, lines, err = run_with_sigint("""
        ch = gopy.Chan()
        interrupted(list, ch)
        interrupted(gopy.after(60).recv)
        t = gopy.Timer(60)
        interrupted(t.c.recv)
        print("stop", t.stop())
    """, n_signals=3)
    assert rc == 0, err
    assert len(lines) == 4, (lines, err)
    for ln in lines[:3]:
        assert_prompt(ln)
    assert lines[3] == "stop True"


@pytest.mark.timeout(90)
def test_signal_handler_that_does_not_raise_keeps_waiting():
    rc, lines, err = run_with_sigint("""
        import signal
        calls = []
        signal.signal(signal.SIGINT, lambda *a: calls.append(1))
        ch = gopy.Chan()
        def later():
            gopy.sleep(1.0)
            ch.send("value")
        gopy.go(later)
        interrupted(ch.recv)
        print("handler calls", len(calls))
    """)
    assert rc == 0, err
    assert lines == ["RETURNED 'value'", "handler calls 1"]


@pytest.mark.timeout(90)
def test_uncaught_ctrl_c_exits_with_keyboardinterrupt():
    rc, lines, err = run_with_sigint("""
        ready()
        gopy.Chan().recv()
    """)
    assert "KeyboardInterrupt" in err
    assert rc != 0
