"""Interpreter exit, fork, subinterpreters and stack overflow: each in a
fresh interpreter."""

import sys

import pytest

from conftest import build_overflowing_lib, run_script

EXIT_SHAPES = {
    "parked on a channel": "gopy.go(lambda: gopy.Chan().recv())",
    "in gopy.sleep": "gopy.go(gopy.sleep, 3600)",
    "in time.sleep": "gopy.go(time.sleep, 3600)",
    "mid-computation": "gopy.go(spin)",
    "a C goroutine in a blocking call": "gopy.go_c(ctypes.CDLL(None).sleep, 3600)",
    "a locked goroutine": "gopy.go(locked)",
    "in select with no cases": "gopy.go(gopy.select)",
    "a ctypes callback computing in Python": "gopy.go_c(py_callback)",
    "a ctypes callback using a channel": "gopy.go_c(chan_callback)",
}


@pytest.mark.parametrize("shape", sorted(EXIT_SHAPES))
def test_exit_with_goroutines_neither_hangs_nor_crashes(shape):
    r = run_script(f"""
        import ctypes, time, gopy

        def spin():
            x = 0
            while True:
                x += 1

        def locked():
            gopy.runtime.lock_os_thread()
            gopy.Chan().recv()

        @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        def py_callback(arg):
            while True:
                sum(range(100))

        shared = gopy.Chan(5)

        @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        def chan_callback(arg):
            while True:
                gopy.select(gopy.Send(shared, 1), gopy.Recv(shared))

        for _ in range(20):
            {EXIT_SHAPES[shape]}
        gopy.sleep(0.1)
        print("goroutines", gopy.runtime.num_goroutine() >= 1)
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "goroutines True"
    assert "Fatal" not in r.stderr and "Traceback" not in r.stderr


def test_a_c_goroutine_woken_after_the_exit_began_runs_no_more_python():
    # Taking its thread state back then would, on CPython 3.13 and before,
    # end its thread with pthread_exit once finalisation starts, unwinding
    # the goroutine's stack; it parks for good instead.  The wake-up comes
    # from an atexit handler registered before gopy's, so it runs after it.
    r = run_script("""
        import atexit, time

        def wake():
            ch.send(1)
            time.sleep(0.3)  # the GIL is free: the callback could resume here

        atexit.register(wake)

        import ctypes, sys, gopy
        ch = gopy.Chan()

        @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        def callback(arg):
            ch.recv()
            sys.stdout.write("resumed\\n")
            sys.stdout.flush()

        gopy.go_c(callback)
        gopy.sleep(0.05)
        print("bye")
    """, timeout=60)
    assert (r.returncode, r.stdout) == (0, "bye\n"), r.stderr
    assert "Fatal" not in r.stderr and "Traceback" not in r.stderr


def test_exit_while_main_thread_started_many_goroutines_of_every_kind():
    r = run_script("""
        import time, gopy
        ch = gopy.Chan()
        for i in range(300):
            gopy.go([ch.recv, lambda: gopy.sleep(60), lambda: time.sleep(60)][i % 3])
        gopy.sleep(0.05)
        print("bye")
    """, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "bye"), r.stderr


def test_threads_still_running_at_exit_can_use_goroutines():
    # Non-daemon threads are joined after the main thread's code ends; until
    # they are, goroutines must start and run for them (this was refused
    # with "the interpreter is shutting down", or hung).
    r = run_script("""
        import threading, time, gopy
        def worker(n):
            time.sleep(0.2)  # the main thread's code has ended by now
            ch = gopy.Chan()
            def compute():
                gopy.sleep(0.05)
                ch.send(n * n)
            gopy.go(compute)
            print(ch.recv(), flush=True)
        for n in (3, 4):
            threading.Thread(target=worker, args=(n,)).start()
            time.sleep(0.1)
        print("main done", flush=True)
    """, timeout=60)
    assert (r.returncode, r.stdout.splitlines()) == (0, ["main done", "9", "16"]), r.stderr


def test_atexit_handlers_registered_after_import_can_use_goroutines():
    r = run_script("""
        import atexit, gopy
        def at_exit():
            ch = gopy.Chan()
            gopy.go(lambda: ch.send("ran at exit"))
            print(ch.recv())
        atexit.register(at_exit)
    """, timeout=60)
    assert (r.returncode, r.stdout.strip()) == (0, "ran at exit"), r.stderr


def test_fork_child_gets_a_fresh_runtime():
    r = run_script("""
        import os, gopy, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        gate = gopy.Chan()
        for _ in range(10):
            gopy.go(gate.recv)
        gopy.sleep(0.05)
        before = gopy.runtime.num_goroutine()
        pid = os.fork()
        if pid == 0:
            fresh = gopy.runtime.num_goroutine()
            out = gopy.Chan()
            gopy.go(lambda: out.send(sum(range(100))))
            ok = fresh == 0 and out.recv() == 4950
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        gate.close()
        print(before, os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["10", "0"]


def test_import_in_a_subinterpreter_raises_import_error():
    r = run_script("""
        import _testcapi
        code = ("try:\\n    import gopy\\n"
                "except ImportError as e:\\n"
                "    print('ImportError:', 'subinterpreter' in str(e))\\n")
        _testcapi.run_in_subinterp(code)
    """)
    if "No module named '_testcapi'" in r.stderr:
        pytest.skip("this CPython has no _testcapi")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ImportError: True"


def test_stack_overflow_is_a_clear_fatal_error_naming_the_goroutine(tmp_path):
    # Unbounded C recursion in a C goroutine: nothing but the guard page
    # can stop it, and the process must say which goroutine overflowed.
    lib = build_overflowing_lib(tmp_path)
    r = run_script(f"""
        import ctypes, gopy
        lib = ctypes.CDLL({str(lib)!r})
        gopy.go_c(lib.run)
        gopy.sleep(30)
    """, timeout=60)
    assert r.returncode != 0
    assert "gopy: fatal error: stack overflow in goroutine" in r.stderr


@pytest.mark.parametrize("through", ["sorted", "map", "class"])
@pytest.mark.parametrize("stack", ["128k", None])
def test_python_recursion_through_c_raises_recursionerror_not_a_crash(through, stack):
    # Unbounded recursion through C code, the recursion limit raised far
    # past what the stack holds, inside the goroutine: RecursionError, as
    # on a thread, on every version (3.11 counts Python and C levels in one
    # counter, capped for goroutines by their stack size; raising the limit
    # used to lift the cap and end at the guard page).
    r = run_script(f"""
        import sys, gopy
        def rec(n):
            if {through!r} == "sorted":
                return sorted([1, 2], key=lambda x: rec(n + 1))
            if {through!r} == "map":
                return list(map(rec, [n + 1]))
            class Node:
                def __init__(self):
                    self.child = rec(n + 1)
            return Node()
        def body():
            sys.setrecursionlimit(100_000)
            try:
                rec(0)
            except RecursionError:
                print("RecursionError")
        gopy.go(body)
        gopy.sleep(0.1)
        while gopy.runtime.num_goroutine():
            gopy.sleep(0.05)
    """, timeout=60, env={"GOPY_PYTHON_STACK_SIZE": stack} if stack else None)
    assert (r.returncode, r.stdout, r.stderr) == (0, "RecursionError\n", "")
