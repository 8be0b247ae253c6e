"""Python goroutines: real programs, and the hazards of running Python
frames as parked, stackful goroutines (issue 3)."""

import asyncio
import contextvars
import ctypes
import hashlib
import sys
import threading
import time

import pytest

import gopy
from conftest import recv_value, run_in_goroutine, run_script, settle_goroutines, wait_until


# ---- programs ---------------------------------------------------------------------

def test_prime_sieve_of_chained_goroutines():
    def generate(out):
        i = 2
        while True:
            out.send(i)
            i += 1

    def filter_(inp, out, prime):
        for v in inp:
            if v % prime:
                out.send(v)

    primes = gopy.Chan()

    def sieve():
        ch = gopy.Chan()
        gopy.go(generate, ch)
        for _ in range(30):
            prime = ch.recv()
            primes.send(prime)
            nxt = gopy.Chan()
            gopy.go(filter_, ch, nxt, prime)
            ch = nxt

    gopy.go(sieve)
    got = [recv_value(primes) for _ in range(30)]
    assert got == [p for p in range(2, 114) if all(p % d for d in range(2, p))]


def test_pipeline_preserves_order_through_stages():
    def stage(inp, out, f):
        for v in inp:
            out.send(f(v))
        out.close()

    src = gopy.Chan(16)
    a, b, c = gopy.Chan(), gopy.Chan(4), gopy.Chan()
    gopy.go(stage, src, a, lambda v: v + 1)
    gopy.go(stage, a, b, lambda v: v * 3)
    gopy.go(stage, b, c, str)

    def feed():
        for i in range(500):
            src.send(i)
        src.close()

    gopy.go(feed)
    assert list(c) == [str((i + 1) * 3) for i in range(500)]


def test_fan_out_fan_in_worker_pool():
    jobs, results = gopy.Chan(100), gopy.Chan(1000)
    done = gopy.Chan()

    def worker(wid):
        for j in jobs:
            results.send((j, j * j, wid))
        done.send(wid)

    for w in range(8):
        gopy.go(worker, w)
    for j in range(1000):
        jobs.send(j)
    jobs.close()
    got = [results.recv() for _ in range(1000)]
    finished = sorted(done.recv() for _ in range(8))
    assert sorted((j, sq) for j, sq, _ in got) == [(j, j * j) for j in range(1000)]
    assert finished == list(range(8))


def test_select_with_timeout_loop():
    data = gopy.Chan()

    def slow_producer():
        for i in range(3):
            gopy.sleep(0.02)
            data.send(i)

    gopy.go(slow_producer)
    received, timeouts = [], 0
    while len(received) < 3:
        i, v, ok = gopy.select(gopy.Recv(data), gopy.Recv(gopy.after(0.005)))
        if i == 0:
            received.append(v)
        else:
            timeouts += 1
    assert received == [0, 1, 2]
    assert timeouts >= 1


@pytest.mark.parametrize("procs", ["1", "2"])
def test_many_goroutines_under_gomaxprocs(procs):
    r = run_script("""
        import gopy
        n = 20000
        out = gopy.Chan(64)
        def w(i):
            gopy.sleep(0.001)
            out.send(i)
        for i in range(n):
            gopy.go(w, i)
        total = sum(out.recv() for _ in range(n))
        print(gopy.runtime.gomaxprocs(), total == n * (n - 1) // 2)
    """, env={"GOMAXPROCS": procs}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [procs, "True"]


# Unstarted goroutines past which a spawner lets them start (HOST_START_BATCH
# in src/runtime/proc.c).
START_BATCH = 1024


def spawn_counting(n):
    """Spawn n goroutines that each append their index to a list; return
    the list and how long it was after each spawn."""
    ran, seen = [], []
    for i in range(n):
        gopy.go(ran.append, i)
        seen.append(len(ran))
    return ran, seen


def test_a_goroutine_spawning_many_lets_them_start_in_batches():
    # Once START_BATCH wait, its M starts them before resuming it: never
    # more are pending (an M that took the GIL meanwhile may hold a few
    # half-run).  Fewer may be, if one takes the GIL at its switch interval.
    def spawner():
        _, seen = spawn_counting(4 * START_BATCH)
        return seen

    seen = run_in_goroutine(spawner)
    assert max(i + 1 - n for i, n in enumerate(seen)) <= START_BATCH + 8
    settle_goroutines()


def test_a_locked_goroutine_spawning_many_does_not_yield_to_them():
    # Its M is dedicated to it: the backlog waits for other Ms.
    def spawner():
        gopy.runtime.lock_os_thread()
        ran, _ = spawn_counting(2 * START_BATCH)
        return ran

    ran = run_in_goroutine(spawner)
    assert wait_until(lambda: len(ran) == 2 * START_BATCH)
    assert sorted(ran) == list(range(2 * START_BATCH))


@pytest.mark.parametrize("where", ["main thread", "other thread"])
def test_a_thread_spawning_many_lets_them_start(where):
    # The thread lets the GIL go to the M sent to start them (it waits 2 ms
    # at most, but tries again at every spawn past the mark): far fewer
    # than all are ever pending.
    n = 8 * START_BATCH
    result = []
    if where == "main thread":
        result.append(spawn_counting(n))
    else:
        t = threading.Thread(target=lambda: result.append(spawn_counting(n)))
        t.start()
        t.join(60)
    ran, seen = result[0]
    assert max(i + 1 - k for i, k in enumerate(seen)) <= 2 * START_BATCH
    assert wait_until(lambda: len(ran) == n)
    assert sorted(ran) == list(range(n))


# ---- Python goroutines and C goroutines sharing channels (the capsule API) ---------

@pytest.fixture(scope="module")
def capsule_ext(tmp_path_factory):
    """tests/ext/capsule_ext.c built as a third-party extension would be."""
    import importlib.util
    import subprocess
    import sysconfig

    out = tmp_path_factory.mktemp("ext")
    so = out / ("capsule_ext" + sysconfig.get_config_var("EXT_SUFFIX"))
    src = __file__.replace("test_goroutines.py", "ext/capsule_ext.c")
    cmd = ["cc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror",
           "-I" + sysconfig.get_paths()["include"], "-I" + gopy.get_include(), src,
           "-o", str(so)]
    subprocess.run(cmd, check=True)
    spec = importlib.util.spec_from_file_location("capsule_ext", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_extension_exports_only_its_init():
    """The runtime inside _gopy is compiled with -fvisibility=hidden
    (setup.py): other extensions reach it through the capsule only, and
    nothing of it can clash with another library's names."""
    import shutil
    import subprocess

    if shutil.which("nm") is None:
        pytest.skip("no nm")
    r = subprocess.run(["nm", "-D", "--defined-only", gopy._gopy.__file__],
                       capture_output=True, text=True, check=True)
    assert [line.split()[-1] for line in r.stdout.splitlines()] == ["PyInit__gopy"]


def test_extension_spawns_c_goroutines_sharing_channels(capsule_ext):
    inp = gopy.Chan(8, ctype=ctypes.c_int64)
    out = gopy.Chan(ctype=ctypes.c_int64)
    capsule_ext.start_doubler(inp.handle, out.handle)

    def feed():
        for i in range(1000):
            inp.send(i)
        inp.close()

    gopy.go(feed)
    # Received from the main thread and from a Python goroutine alike.
    first = [out.recv() for _ in range(500)]
    rest = run_in_goroutine(lambda: list(out))
    assert first + rest == [2 * i for i in range(1000)]


def test_extension_c_goroutines_with_mutex_and_waitgroup(capsule_ext):
    assert capsule_ext.count_with_mutex(8, 5000) == 40000


def test_extension_c_goroutines_on_small_stacks(capsule_ext):
    # gopy_go_small through the capsule: the table's newest entry
    assert capsule_ext.count_with_mutex(64, 2000, True) == 128000


def test_extension_offloads_from_a_c_goroutine(capsule_ext):
    # (calls made, on another thread than the goroutine's)
    assert capsule_ext.offload_probe() == (1, True)


def test_python_and_c_goroutines_in_one_select(capsule_ext):
    inp = gopy.Chan(ctype=ctypes.c_int64)
    out = gopy.Chan(ctype=ctypes.c_int64)
    py = gopy.Chan()
    capsule_ext.start_doubler(inp.handle, out.handle)
    gopy.go(lambda: [inp.send(i) for i in range(50)] and inp.close())
    gopy.go(lambda: [py.send(-i) for i in range(1, 51)] and py.close())
    from_c, from_py = [], []
    c_open = py_open = True
    while c_open or py_open:
        i, v, ok = gopy.select(gopy.Recv(out if c_open else None),
                               gopy.Recv(py if py_open else None))
        if i == 0:
            c_open = ok
            if ok:
                from_c.append(v)
        else:
            py_open = ok
            if ok:
                from_py.append(v)
    assert from_c == [2 * i for i in range(50)]
    assert from_py == [-i for i in range(1, 51)]


# ---- interpreter state belongs to each goroutine -----------------------------------

def test_exception_state_is_per_goroutine():
    a, b = gopy.Chan(), gopy.Chan()
    seen = gopy.Chan(2)

    def first():
        try:
            raise KeyError("first")
        except KeyError:
            a.send(None)              # park while handling KeyError
            b.recv()
            seen.send(repr(sys.exc_info()[1]))

    def second():
        a.recv()
        try:
            raise ValueError("second")
        except ValueError:
            b.send(None)              # park while handling ValueError
            seen.send(repr(sys.exc_info()[1]))

    gopy.go(first)
    gopy.go(second)
    assert sorted([recv_value(seen), recv_value(seen)]) == [
        "KeyError('first')", "ValueError('second')"]


def test_contextvars_are_copied_at_spawn():
    var = contextvars.ContextVar("var", default="unset")
    token = var.set("spawner")
    try:
        out = gopy.Chan(3)

        def child(tag):
            before = var.get()
            var.set(tag)
            gopy.sleep(0.001)        # others run and set their own values
            out.send((tag, before, var.get()))

        for tag in ("a", "b", "c"):
            gopy.go(child, tag)
        got = sorted(recv_value(out) for _ in range(3))
        assert got == [("a", "spawner", "a"), ("b", "spawner", "b"), ("c", "spawner", "c")]
        assert var.get() == "spawner"
    finally:
        var.reset(token)


def test_threading_local_is_per_goroutine_and_freed():
    import weakref

    class Box:
        pass

    local = threading.local()
    refs, out = [], gopy.Chan(10)

    def body(i):
        local.box = Box()
        local.i = i
        refs.append(weakref.ref(local.box))
        gopy.sleep(0.001)
        out.send(local.i == i and not hasattr(threading.local(), "box"))

    for i in range(10):
        gopy.go(body, i)
    assert all(recv_value(out) for _ in range(10))
    settle_goroutines()
    assert wait_until(lambda: all(r() is None for r in refs), timeout=10)


def test_asyncio_run_inside_goroutines():
    async def work(i):
        await asyncio.sleep(0.005)
        return i * 10

    out = gopy.Chan(4)
    for i in range(4):
        gopy.go(lambda i=i: out.send(asyncio.run(work(i))))
    assert sorted(recv_value(out) for _ in range(4)) == [0, 10, 20, 30]


def test_asyncio_loops_of_goroutines_sharing_a_thread_stay_apart():
    # time.sleep inside a coroutine parks its goroutine in the middle of
    # asyncio.run; the others on the thread run theirs meanwhile.  Each
    # must find its own running loop and task again (3.12+ keep them in
    # the thread state, 3.14 the task too).
    async def work(i):
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        for _ in range(3):
            time.sleep(0.01)
            await asyncio.sleep(0)
            assert asyncio.get_running_loop() is loop and asyncio.current_task() is task
        return i, threading.get_ident()

    prev = gopy.runtime.gomaxprocs(1)
    try:
        out = gopy.Chan(4)
        for i in range(4):
            gopy.go(lambda i=i: out.send(asyncio.run(work(i))))
        got = sorted(recv_value(out) for _ in range(4))
    finally:
        gopy.runtime.gomaxprocs(prev)
    assert [i for i, _ in got] == [0, 1, 2, 3]


def test_generators_suspended_across_parks():
    def gen():
        for i in range(3):
            yield i
            gopy.sleep(0.001)

    def body():
        g = gen()
        got = [next(g)]
        gopy.sleep(0.001)
        got.extend(g)
        return got

    outs = gopy.Chan(5)
    for _ in range(5):
        gopy.go(lambda: outs.send(body()))
    assert [recv_value(outs) for _ in range(5)] == [[0, 1, 2]] * 5


def test_pygilstate_ensure_from_c_callbacks_inside_goroutines():
    """libc qsort calling a ctypes comparator: PyGILState_Ensure in the
    callback must find the goroutine's thread state, with parks between."""
    libc = ctypes.CDLL(None)
    CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                           ctypes.POINTER(ctypes.c_int))

    def compare(a, b):
        return a[0] - b[0]

    cmp = CMP(compare)
    out = gopy.Chan(8)

    def sorter(seed):
        for round_ in range(20):
            arr = (ctypes.c_int * 8)(*[(seed * 7 + k * 13 + round_) % 17 for k in range(8)])
            libc.qsort(arr, 8, ctypes.sizeof(ctypes.c_int), cmp)
            gopy.sleep(0.0002)   # park between callbacks
        out.send(list(arr))

    for seed in range(8):
        gopy.go(sorter, seed)
    for _ in range(8):
        v = recv_value(out)
        assert v == sorted(v)


def test_recursion_error_in_goroutine():
    def rec(n):
        return rec(n + 1)

    def body():
        try:
            rec(0)
        except RecursionError:
            return "RecursionError"

    assert run_in_goroutine(body) == "RecursionError"


@pytest.mark.parametrize("through", ["sort key", "map", "metaclass"])
def test_c_recursion_error_in_goroutine(through):
    def sort_key(n):
        return sorted([1, 2], key=lambda x: sort_key(n + 1))

    def map_(n):
        return list(map(map_, [n + 1]))

    def metaclass(n):
        class Meta(type):
            def __new__(mcs, *args):
                metaclass(n + 1)

        class A(metaclass=Meta):
            pass

    rec = {"sort key": sort_key, "map": map_, "metaclass": metaclass}[through]

    def body():
        try:
            rec(0)
        except RecursionError:
            return "RecursionError"

    assert run_in_goroutine(body) == "RecursionError"


# ---- exceptions escaping goroutines ----------------------------------------------------

def test_excepthook_gets_the_exception_and_the_goroutine_id(monkeypatch):
    got = gopy.Chan(1)
    monkeypatch.setattr(gopy, "excepthook", lambda exc, gid: got.send((exc, gid)))
    err = ValueError("boom")

    def body():
        raise err

    gopy.go(body)
    exc, gid = recv_value(got)
    assert exc is err
    assert isinstance(gid, int) and gid > 0


def here():
    """The caller's line number."""
    return sys._getframe(1).f_lineno


def created_by(exc):
    return [n for n in getattr(exc, "__notes__", ()) if n.startswith("created by ")]


def test_an_escaping_exception_says_where_its_goroutine_was_created(monkeypatch):
    # As Go's "created by": a note naming the creating function, the
    # creating goroutine (none for a thread) and the line of the call.
    got = gopy.Chan(3)
    monkeypatch.setattr(gopy, "excepthook", lambda exc, gid: got.send((exc, gid)))
    lines = []

    def body(x):
        raise ValueError(x)

    def spawner():
        gopy.go(body, 1); lines.append(here())  # noqa: E702
        gopy.go(body); lines.append(here())     # noqa: E702  (wrong arity)
        raise RuntimeError("the spawner's own")

    gopy.go(spawner); spawned_at = here()  # noqa: E702
    caught = {type(e): (e, gid) for e, gid in (recv_value(got) for _ in range(3))}
    test_name = "test_an_escaping_exception_says_where_its_goroutine_was_created"
    exc, spawner_id = caught[RuntimeError]
    assert created_by(exc) == [f'created by {test_name}\n  File "{__file__}", line {spawned_at}']
    for kind, line in zip((ValueError, TypeError), lines):
        exc, _ = caught[kind]
        assert created_by(exc) == [f"created by {test_name}.<locals>.spawner in goroutine "
                                   f'{spawner_id}\n  File "{__file__}", line {line}']


def test_after_func_and_waitgroup_goroutines_were_created_by_their_callers(monkeypatch):
    got = gopy.Chan(2)
    monkeypatch.setattr(gopy, "excepthook", lambda exc, gid: got.send(exc))

    def fail(what):
        raise ValueError(what)

    gopy.after_func(0.01, fail, "timer"); timer_line = here()  # noqa: E702
    assert created_by(recv_value(got))[0].endswith(f"line {timer_line}")
    wg = gopy.WaitGroup()
    wg.go(fail, "wg"); wg_line = here()  # noqa: E702
    wg.wait()
    assert created_by(recv_value(got))[0].endswith(f"line {wg_line}")


def test_default_excepthook_prints_and_the_process_goes_on():
    r = run_script("""
        import gopy
        done = gopy.Chan()
        def bad():
            raise RuntimeError("escaped")
        gopy.go(bad)
        while gopy.runtime.num_goroutine():
            gopy.sleep(0.01)
        gopy.go(lambda: done.send("still running"))
        print(done.recv())
    """)
    assert r.returncode == 0
    assert r.stdout.strip() == "still running"
    # (3.13+ also quote the failing source line.)
    lines = r.stderr.splitlines()
    assert lines[:3] == ["Exception in goroutine 1:", "Traceback (most recent call last):",
                         '  File "<string>", line 5, in bad']
    assert lines[-3:] == ["RuntimeError: escaped", "created by <module>",
                          '  File "<string>", line 6']


def test_failing_excepthook_is_reported_not_fatal():
    r = run_script("""
        import gopy
        def hook(exc, gid):
            raise KeyError("hook broke")
        gopy.excepthook = hook
        gopy.go(lambda: 1 / 0)
        while gopy.runtime.num_goroutine():   # until the goroutine is gone
            gopy.sleep(0.01)
        print("alive")
    """)
    assert r.returncode == 0
    assert r.stdout.strip() == "alive"
    assert "ZeroDivisionError" in r.stderr
    assert "KeyError" in r.stderr


def test_system_exit_ends_only_the_goroutine():
    r = run_script("""
        import gopy, sys
        gopy.go(sys.exit, 3)
        while gopy.runtime.num_goroutine():
            gopy.sleep(0.01)
        print("alive")
    """)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "alive", "")


# ---- blocking calls gopy cannot see, and GIL-releasing work ------------------------------

def test_blocking_calls_do_not_serialise_goroutines():
    n = 100
    done = gopy.Chan(n)
    start = time.monotonic()
    for _ in range(n):
        gopy.go(lambda: (time.sleep(0.05), done.send(1)))
    assert sum(recv_value(done) for _ in range(n)) == n
    # Serialised, this would take n * 50 ms = 5 s; the bound only proves
    # they overlapped (timings live in benchmarks/).
    assert time.monotonic() - start < 4.0


def test_gil_releasing_work_runs_on_several_threads():
    # 4 MiB: each hash (2-3 ms) outlasts sysmon's patience with a queue
    # that stands still (1 ms), so another M starts goroutines even if the
    # ones sent at the spawns come late (1 MiB: all 32 once ran on one M).
    data = bytes(range(256)) * 16384
    want = hashlib.sha256(data).hexdigest()
    idents = gopy.Chan(32)
    for _ in range(32):
        gopy.go(lambda: idents.send((threading.get_ident(), hashlib.sha256(data).hexdigest())))
    got = [recv_value(idents) for _ in range(32)]
    assert all(h == want for _, h in got)
    assert len({ident for ident, _ in got}) >= 2


# ---- lock_os_thread ----------------------------------------------------------------------

def test_lock_os_thread_dedicates_the_thread():
    locked_ident = gopy.Chan(1)
    release = gopy.Chan()
    others = gopy.Chan(50)

    def locked():
        gopy.runtime.lock_os_thread()
        me = threading.get_ident()
        locked_ident.send(me)
        release.recv()                      # blocks this thread only
        same = threading.get_ident() == me
        gopy.runtime.unlock_os_thread()
        locked_ident.send(same)

    gopy.go(locked)
    me = recv_value(locked_ident)
    for _ in range(50):
        gopy.go(lambda: others.send(threading.get_ident()))
    idents = {recv_value(others) for _ in range(50)}
    assert me not in idents                 # no new goroutine started on it
    release.send(None)
    assert recv_value(locked_ident) is True


# ---- the main thread and threading.Thread interoperate ----------------------------------

def test_threads_and_goroutines_in_both_directions():
    to_thread, to_goroutine, results = gopy.Chan(), gopy.Chan(), gopy.Chan(10)

    def thread_body():
        for i in range(100):
            to_goroutine.send(i)
            results.send(("thread got", to_thread.recv()))

    def goroutine_body():
        for _ in range(100):
            v = to_goroutine.recv()
            to_thread.send(v * 2)

    gopy.go(goroutine_body)
    t = threading.Thread(target=thread_body, daemon=True)
    t.start()
    got = [recv_value(results) for _ in range(100)]
    t.join(30)
    assert got == [("thread got", 2 * i) for i in range(100)]


# ---- runtime.stack() ----------------------------------------------------------------------

def test_stack_dump_shows_parked_goroutines_with_tracebacks():
    gate = gopy.Chan()

    def parked_in_recv_here():
        gate.recv()

    for _ in range(3):
        gopy.go(parked_in_recv_here); spawned_at = here()  # noqa: E702
    assert wait_until(lambda: gopy.runtime.stack().count("parked_in_recv_here") >= 3)
    dump = gopy.runtime.stack()
    blocks = [b for b in dump.split("\n\n") if "parked_in_recv_here" in b]
    assert len(blocks) == 3
    for b in blocks:
        assert b.startswith("goroutine ")
        assert "[waiting: chan receive" in b
        assert "test_goroutines.py" in b
        assert b.rstrip().endswith("  created by test_stack_dump_shows_parked_goroutines_with_tracebacks\n"
                          f'    File "{__file__}", line {spawned_at}')
    gate.close()


def test_stack_dump_says_group_goroutines_were_created_by_their_caller():
    # Group.go's goroutines keep the line of the user's call (a failure in
    # one goes to wait(), not to excepthook: only the dump shows it).
    from gopy import errgroup
    gate = gopy.Chan()

    def parked_in_group_here():
        gate.recv()

    g = errgroup.Group()
    g.go(parked_in_group_here); spawned_at = here()  # noqa: E702
    assert wait_until(lambda: "parked_in_group_here" in gopy.runtime.stack())
    blocks = [b for b in gopy.runtime.stack().split("\n\n") if "parked_in_group_here" in b]
    assert len(blocks) == 1
    assert blocks[0].rstrip().endswith(
        "  created by test_stack_dump_says_group_goroutines_were_created_by_their_caller\n"
        f'    File "{__file__}", line {spawned_at}')
    gate.close()
    g.wait()


def test_a_parked_goroutine_with_a_shallow_call_chain_costs_one_page():
    # Its G, record, first C frames and first Python frames share one page
    # of its stack (docs/decisions.md §15); 8 KiB each before.  A fresh
    # process, so that no reused stack was touched deeper earlier.
    r = run_script("""
        import gopy, time
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096
        n, ready, ch = 4000, gopy.WaitGroup(), gopy.Chan()
        def parked():
            ready.done()
            ch.recv_ok()
        ready.add(1)
        gopy.go(parked)   # the runtime's own threads and first allocations
        ready.wait()
        time.sleep(0.1)
        base = rss()
        ready.add(n)
        for _ in range(n):
            gopy.go(parked)
        ready.wait()
        time.sleep(0.1)
        print((rss() - base) / n)
        ch.close()
    """)
    assert r.returncode == 0, r.stderr
    per_goroutine = float(r.stdout)
    # Debug builds' C frames are several times larger.
    limit = 12 * 1024 if hasattr(sys, "gettotalrefcount") else 6 * 1024
    assert 4096 <= per_goroutine <= limit, per_goroutine
