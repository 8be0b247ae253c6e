"""gopy.go_c: C functions (and ctypes callbacks) run as goroutines, and
channels shared between Python and C goroutines (docs/api.md,
"Goroutines")."""

import ctypes
import os
import threading

import pytest

import gopy
from conftest import build_data_lib, collect, recv_value, run_script, wait_until


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    lib = build_data_lib(tmp_path_factory, "goc_lib.c")
    lib.get_null_calls.restype = ctypes.c_int64
    return lib


def api_table():
    """The address of the runtime's C API table (the module's capsule)."""
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get(gopy._gopy._C_API, b"gopy._gopy._C_API")


class Job(ctypes.Structure):
    _fields_ = [("api", ctypes.c_void_p), ("inp", ctypes.c_void_p), ("out", ctypes.c_void_p),
                ("n", ctypes.c_int64), ("delay_ns", ctypes.c_int64)]


def make_job(inp=None, out=None, n=0, delay=0.0):
    return Job(api_table(), inp.handle if inp is not None else None,
               out.handle if out is not None else None, n, int(delay * 1e9))


def test_get_include_has_header():
    inc = gopy.get_include()
    assert os.path.isfile(os.path.join(inc, "gopy.h"))


def test_capsule_table_version():
    class Head(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint), ("size", ctypes.c_size_t)]

    head = Head.from_address(api_table())
    assert head.version == 1
    assert head.size >= 24 * ctypes.sizeof(ctypes.c_void_p)


# ---- pure C goroutines -----------------------------------------------------------


@pytest.mark.parametrize("how", ["funcptr", "int_address"])
@pytest.mark.parametrize("arg_kind", ["pointer", "int", "byref"])
def test_go_c_writes_memory(lib, how, arg_kind):
    n = 50
    arr = (ctypes.c_int64 * (n + 2))()
    arr[1] = n
    fn = lib.fill_squares if how == "funcptr" else ctypes.cast(lib.fill_squares,
                                                               ctypes.c_void_p).value
    arg = {"pointer": ctypes.pointer(arr), "int": ctypes.addressof(arr),
           "byref": ctypes.byref(arr)}[arg_kind]
    assert gopy.go_c(fn, arg) is None
    assert wait_until(lambda: arr[0] == 1)
    assert list(arr[2:]) == [i * i for i in range(n)]


def test_go_c_none_arg_is_null(lib):
    before = lib.get_null_calls()
    for _ in range(5):
        gopy.go_c(lib.count_null)
    gopy.go_c(lib.count_null, None)
    assert wait_until(lambda: lib.get_null_calls() == before + 6)


def test_c_goroutine_sends_to_python(lib):
    for delay in (0.0, 0.05):
        ch = gopy.Chan(0, ctype=ctypes.c_int64)
        job = make_job(out=ch, n=100, delay=delay)
        gopy.go_c(lib.send_range, ctypes.pointer(job))
        assert list(ch) == list(range(100))


def test_python_goroutines_send_to_c_goroutine(lib):
    inp = gopy.Chan(4, ctype=ctypes.c_int64)
    out = gopy.Chan(2, ctype=ctypes.c_int64)
    job = make_job(inp=inp, out=out)
    gopy.go_c(lib.sum_until_closed, ctypes.pointer(job))
    done = gopy.Chan(3)

    def producer(lo, hi):
        for i in range(lo, hi):
            inp.send(i)
        done.send(None)

    gopy.go(producer, 0, 100)
    gopy.go(producer, 100, 200)
    t = threading.Thread(target=producer, args=(200, 300))
    t.start()
    for _ in range(3):
        recv_value(done)
    t.join()
    inp.close()
    assert recv_value(out) == sum(range(300))
    assert recv_value(out) == 300


def test_go_c_structure_instance_is_not_a_pointer(lib):
    job = make_job()
    with pytest.raises(TypeError):
        gopy.go_c(lib.count_null, job)  # byref(job) or pointer(job) is what is meant


def test_c_goroutine_echo(lib):
    a = gopy.Chan(0, ctype=ctypes.c_int64)
    b = gopy.Chan(0, ctype=ctypes.c_int64)
    job = make_job(inp=a, out=b)
    gopy.go_c(lib.doubler, ctypes.byref(job))
    got = gopy.Chan(1)

    def reader():
        got.send(list(b))

    gopy.go(reader)
    for i in range(20):
        a.send(i)
    a.close()
    assert recv_value(got) == [2 * i for i in range(20)]


def test_c_goroutine_select(lib):
    inp = gopy.Chan(0, ctype=ctypes.c_int64)
    out = gopy.Chan(1, ctype=ctypes.c_int64)
    job = make_job(inp=inp, out=out)
    gopy.go_c(lib.select_once, ctypes.pointer(job))
    inp.send(1234)
    assert recv_value(out) == 1234
    # Closed: the select reports ok false.
    job2 = make_job(inp=inp, out=out)
    gopy.go_c(lib.select_once, ctypes.pointer(job2))
    inp.close()
    assert recv_value(out) == -1


def test_c_channel_keeps_identity_across_from_handle(lib):
    ch = gopy.Chan(0, ctype=ctypes.c_int64)
    view = gopy.Chan.from_handle(ch.handle, ctypes.c_int64)
    job = make_job(out=ch, n=5)
    gopy.go_c(lib.send_range, ctypes.pointer(job))
    assert list(view) == [0, 1, 2, 3, 4]


class Obj:
    pass


def test_object_channel_released_last_by_c_goroutine(lib):
    # The last reference to a channel holding Python objects is dropped by a
    # C goroutine without the GIL: the objects are freed later, by the next
    # gopy call that holds the GIL (deferred decrefs), not leaked.
    import weakref
    ch = gopy.Chan(3)
    objs = [Obj(), Obj()]
    refs = [weakref.ref(o) for o in objs]
    for o in objs:
        ch.send(o)
    del objs, o
    job = make_job(out=ch, delay=0.05)
    lib.retain_chan(ctypes.c_void_p(api_table()), ctypes.c_void_p(ch.handle))
    gopy.go_c(lib.release_later, ctypes.pointer(job))
    del ch
    collect()
    assert [r() is None for r in refs] == [False, False]  # the C goroutine holds them
    assert wait_until(lambda: job.n == 1)
    gopy.sleep(0.001)  # any gopy call with the GIL drains the deferred decrefs
    gopy.go(lambda: None)
    assert wait_until(lambda: (gopy.sleep(0.001), collect(), all(r() is None for r in refs))[2])


def test_object_channel_held_by_c_keeps_its_cycle(lib):
    # While C holds the runtime channel it could still receive what is
    # buffered: a cycle through the buffer is left whole by the collector
    # (not cleared) until C lets go.
    import weakref
    ch = gopy.Chan(1)
    box = Obj()
    box.chan, box.payload = ch, Obj()
    ch.send(box)  # buffer -> box -> channel
    ref, cref = weakref.ref(box), weakref.ref(ch)
    api, handle = ctypes.c_void_p(api_table()), ctypes.c_void_p(ch.handle)
    lib.retain_chan(api, handle)
    del ch, box
    collect()
    assert ref() is not None and ref().chan is cref() and isinstance(ref().payload, Obj)
    assert len(cref()) == 1
    lib.release_chan(api, handle)
    collect()
    assert ref() is None and cref() is None


# ---- ctypes callbacks as C goroutines ----------------------------------------------

CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def test_ctypes_callback_runs_in_goroutine():
    out = gopy.Chan(1)

    @CALLBACK
    def cb(arg):
        out.send((gopy._gopy.goid(), arg, threading.current_thread() is threading.main_thread()))

    gopy.go_c(cb, 1234)
    goid, arg, on_main = recv_value(out)
    assert goid != 0
    assert arg == 1234
    assert on_main is False


def test_ctypes_callback_blocks_on_channels():
    inp, out = gopy.Chan(), gopy.Chan()
    results = gopy.Chan(10)

    @CALLBACK
    def cb(arg):
        v = inp.recv()       # blocks this C goroutine until main sends
        out.send(v + arg)    # and until main receives
        gopy.sleep(0.01)
        results.send("done")

    for i in range(3):
        gopy.go_c(cb, 10 * (i + 1))
    got = []
    for i in range(3):
        inp.send(i)
        got.append(out.recv())
    for _ in range(3):
        assert recv_value(results) == "done"
    # Each callback added its own arg to the value it got.
    assert sum(got) == (0 + 1 + 2) + (10 + 20 + 30)
    assert all(v % 10 in (0, 1, 2) and 10 <= v <= 32 for v in got)


def test_ctypes_callbacks_started_from_a_goroutine_block_and_yield():
    # The callbacks' M runs them locked to it, Python goroutines' Ms hold
    # the host lock: a callback parked in a send must be resumed without
    # it (this hung, or aborted, once).  In a child: a hang must not stall
    # the suite.
    r = run_script("""
        import ctypes, gopy
        ping, done = gopy.Chan(), gopy.Chan()
        @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        def cb(arg):
            ping.send(1)
            gopy.runtime.gosched()
        def starter():
            n = 0
            for _ in range(200):
                gopy.go_c(cb)
                n += ping.recv()
            done.send(n)
        gopy.go(starter)
        print(done.recv())
    """, timeout=120)
    assert (r.returncode, r.stdout.strip()) == (0, "200"), r.stderr[-2000:]


def test_many_ctypes_callbacks():
    out = gopy.Chan(100)

    @CALLBACK
    def cb(arg):
        out.send(arg)

    for i in range(1, 51):
        gopy.go_c(cb, i)
    assert sorted(recv_value(out) for _ in range(50)) == list(range(1, 51))


def test_objects_dropped_in_a_callback_are_freed_at_once():
    # A callback runs Python on its C goroutine's stack with its M's own
    # thread state.  3.14+ compare the stack pointer with that state's
    # stack bounds to decide whether a deallocation must be deferred (the
    # trashcan): the bounds of the M's thread deferred every one, for good,
    # when the C stacks lay below it, and the deferred list later crashed
    # the collector.  In a child, so that the Ms' threads exist before
    # the first C goroutine stack is mapped (below them).
    r = run_script("""
        import ctypes, weakref, gopy
        class Thing:
            pass
        ready = gopy.Chan()
        for _ in range(4):
            gopy.go(lambda: ready.send(gopy._gopy.goid()))
        [ready.recv() for _ in range(4)]
        out = gopy.Chan(40)
        @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        def cb(arg):
            things = [Thing() for _ in range(3)]
            refs = [weakref.ref(t) for t in things]
            del things
            out.send(sum(r() is None for r in refs))
        for _ in range(40):
            gopy.go_c(cb)
        print(sorted(out.recv() for _ in range(40)))
    """, timeout=120)
    assert (r.returncode, r.stdout.strip()) == (0, str([3] * 40)), r.stderr[-2000:]


def test_callback_kept_alive_until_it_returns():
    # go_c keeps fn alive: dropping our reference before it runs is safe.
    out = gopy.Chan()

    def body(arg):
        out.send(arg)

    for i in range(1, 6):
        gopy.go_c(CALLBACK(body), i)  # no reference kept here
    import gc
    gc.collect()
    assert sorted(recv_value(out) for _ in range(5)) == [1, 2, 3, 4, 5]


# ---- bad arguments -------------------------------------------------------------------


def test_go_c_bad_arguments(lib):
    with pytest.raises(TypeError):
        gopy.go_c()
    with pytest.raises(TypeError):
        gopy.go_c(1.5)
    with pytest.raises(TypeError):
        gopy.go_c(object())
    with pytest.raises((TypeError, ValueError)):
        gopy.go_c(None)
    with pytest.raises(ValueError):
        gopy.go_c(0)
    with pytest.raises(ValueError):
        gopy.go_c(ctypes.c_void_p(None))
    with pytest.raises((OverflowError, ValueError)):
        gopy.go_c(2**64)
    with pytest.raises(TypeError):
        gopy.go_c(lib.count_null, 1.5)
    with pytest.raises(TypeError):
        gopy.go_c(lib.count_null, object())
    with pytest.raises(TypeError):
        gopy.go_c(lib.count_null, None, None)


@pytest.mark.parametrize("call", ['go_c("x")', 'go_c(b"xy")', "go_c(-1)",
                                  'go_c(FN, "not a pointer")', 'go_c(FN, b"bytes")'])
def test_go_c_str_bytes_negative_rejected(call):
    r = run_script(f"""
        import ctypes, gopy, time
        FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda a: None)
        try:
            gopy.{call}
        except (TypeError, ValueError) as e:
            print("raised", type(e).__name__)
        else:
            time.sleep(0.2)
            print("accepted")
    """)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("raised"), r.stdout
