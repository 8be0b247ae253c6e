"""gopy.offload: fn runs on a helper thread while the calling goroutine is
parked; its value or its very exception comes back; outside a goroutine fn
is simply called."""

import contextvars
import ctypes
import threading
import time
import traceback

import pytest

import gopy
from gopy import runtime
from conftest import recv_value, run_in_goroutine, run_in_thread, run_script


@pytest.fixture
def one_p():
    prev = runtime.gomaxprocs(1)
    yield
    runtime.gomaxprocs(prev)


def test_returns_fns_value():
    marker = object()
    assert run_in_goroutine(gopy.offload, lambda: marker) is marker
    assert run_in_goroutine(gopy.offload, pow, 3, 4) == 81


def test_positional_and_keyword_arguments():
    def f(a, b, /, c, *, fn, **rest):
        return (a, b, c, fn, sorted(rest.items()))

    # fn is offload's own positional-only parameter: as a keyword it is fn's.
    got = run_in_goroutine(lambda: gopy.offload(f, 1, 2, 3, fn="kw", z=26, y=25))
    assert got == (1, 2, 3, "kw", [("y", 25), ("z", 26)])


def test_exception_is_the_very_object_with_fns_frames():
    exc = ValueError("from fn")

    def raising_in_helper():
        raise exc

    def body():
        try:
            gopy.offload(raising_in_helper)
        except ValueError as raised:
            return raised
        return None

    raised = run_in_goroutine(body)
    assert raised is exc
    names = [f.name for f in traceback.extract_tb(raised.__traceback__)]
    assert names[-1] == "raising_in_helper"
    assert "body" in names


@pytest.mark.parametrize("exc_type", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_base_exceptions_propagate_as_themselves(exc_type):
    exc = exc_type(7)

    def fn():
        raise exc

    def body():
        try:
            gopy.offload(fn)
        except BaseException as raised:  # noqa: BLE001 - what came back is the test
            return raised
        return None

    assert run_in_goroutine(body) is exc


def test_runs_on_another_thread_than_the_goroutine():
    def body():
        return threading.get_ident(), gopy.offload(threading.get_ident)

    mine, its = run_in_goroutine(body)
    assert its != mine
    assert its != threading.get_ident()


def test_outside_a_goroutine_it_calls_fn_on_the_calling_thread():
    assert gopy.offload(threading.get_ident) == threading.get_ident()
    ident, its = run_in_thread(lambda: (threading.get_ident(), gopy.offload(threading.get_ident)))
    assert its == ident
    with pytest.raises(KeyError, match="direct"):
        gopy.offload({}.__getitem__, "direct")


def test_not_callable_and_missing_fn_are_type_errors():
    with pytest.raises(TypeError, match="not callable"):
        gopy.offload(5)
    with pytest.raises(TypeError, match="needs a function"):
        gopy.offload()
    with pytest.raises(TypeError, match="not callable"):
        run_in_goroutine(gopy.offload, "x")


def test_other_goroutines_on_the_same_thread_run_while_fn_blocks(one_p):
    # B is bound to A's thread and parked before A offloads; fn wakes B,
    # then waits for B.  Had A kept its thread while fn ran, B could never
    # run: fn would time out.  The two share a thread only if one thread
    # started both: on a loaded machine the GIL may go to another thread
    # first, so the scene is retried until it happened.
    shared = 0
    for _ in range(5):
        event, start, out = threading.Event(), gopy.Chan(), gopy.Chan(2)

        def b():
            start.recv()
            event.set()
            out.send(("b", threading.get_ident()))

        def fn():
            start.send(1)
            return event.wait(30)

        def a():
            out.send(("a", threading.get_ident(), gopy.offload(fn)))

        def parent():
            gopy.go(b)
            gopy.go(a)

        gopy.go(parent)
        got = dict((v[0], v[1:]) for v in (recv_value(out, 60), recv_value(out, 60)))
        assert got["a"][1] is True
        if got["a"][0] == got["b"][0]:
            shared += 1
            break
    assert shared == 1


def test_fn_runs_in_a_copy_of_the_callers_context():
    var = contextvars.ContextVar("var", default="unset")

    def fn():
        seen = var.get()
        var.set("set in fn")
        return seen, var.get()

    def body():
        before = gopy.offload(fn)
        var.set("goroutine's")
        after = gopy.offload(fn)
        return before, after, var.get()

    assert run_in_goroutine(body) == (("unset", "set in fn"), ("goroutine's", "set in fn"),
                                      "goroutine's")


def test_offload_inside_fn_runs_on_fns_thread():
    def inner():
        return threading.get_ident()

    def outer():
        return threading.get_ident(), gopy.offload(inner)

    outer_ident, inner_ident = run_in_goroutine(gopy.offload, outer)
    assert outer_ident == inner_ident


def test_a_ctypes_callback_in_a_c_goroutine_counts_as_outside():
    out = gopy.Chan(1)

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    def cb(arg):
        out.send((threading.get_ident(), gopy.offload(threading.get_ident)))

    gopy.go_c(cb)
    ident, its = recv_value(out)
    assert its == ident


def test_parked_goroutine_shows_offload_in_dumps():
    gate = threading.Event()
    done = gopy.Chan(1)
    gopy.go(lambda: done.send(gopy.offload(gate.wait, 30)))
    try:
        # The goroutine shows as parked a moment before the helper counts
        # as busy: wait for both.
        deadline = time.monotonic() + 30
        while "[waiting: offload]" not in runtime.stack() or \
                runtime.stats()["offload_busy"] < 1:
            assert time.monotonic() < deadline, (runtime.stack(), runtime.stats())
            time.sleep(0.005)
        assert runtime.stats()["offload_threads"] >= 1
    finally:
        gate.set()
    assert recv_value(done) is True


def test_main_thread_waiting_on_an_offloading_goroutine_is_no_deadlock():
    # Every goroutine is parked and every thread of the runtime idle while
    # fn sleeps: only the helper will act, so this is not a deadlock.
    out = gopy.Chan()
    gopy.go(lambda: out.send(gopy.offload(lambda: (time.sleep(0.3), "slept")[1])))
    assert out.recv() == "slept"


def test_many_concurrent_offloads_overlap():
    n, secs = 100, 0.02
    done = gopy.Chan(n)
    t0 = time.monotonic()
    for i in range(n):
        gopy.go(lambda i=i: done.send(gopy.offload(lambda: (time.sleep(secs), i)[1])))
    got = sorted(recv_value(done, 60) for _ in range(n))
    took = time.monotonic() - t0
    assert got == list(range(n))
    # 2 s one after another; 64 helpers make it two rounds.  Generous:
    # only overlap versus none is told apart.
    assert took < n * secs / 2, took
    stats = runtime.stats()
    assert 1 <= stats["offload_threads"] <= 64
    assert stats["offload_queued"] == 0


EXIT_SHAPES = {
    "sleeping": "gopy.offload(time.sleep, 3600)",
    "waiting on an event": "gopy.offload(threading.Event().wait)",
    "computing in Python": "gopy.offload(spin)",
    "in a C call": "gopy.offload(ctypes.CDLL(None).sleep, 3600)",
}


@pytest.mark.parametrize("shape", sorted(EXIT_SHAPES))
def test_exit_with_goroutines_parked_in_offload(shape):
    r = run_script(f"""
        import ctypes, threading, time, gopy

        def spin():
            x = 0
            while True:
                x += 1

        for _ in range(20):
            gopy.go(lambda: {EXIT_SHAPES[shape]})
        deadline = time.monotonic() + 30
        while gopy.runtime.stats()["offload_busy"] + gopy.runtime.stats()["offload_queued"] < 20:
            assert time.monotonic() < deadline
            gopy.sleep(0.01)
        print("bye", flush=True)
    """, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "bye"), r.stderr
    assert "Fatal" not in r.stderr and "Traceback" not in r.stderr
