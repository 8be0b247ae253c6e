"""Goroutine stacks as a kernel before Linux 6.13 makes them: GOPY_GUARD=mprotect
forces the mprotect fallback for guard pages (src/runtime/stack.c), which guards
only a quarter of vm.max_map_count and then no more stacks.  Each test runs a
fresh interpreter, since the runtime reads GOPY_GUARD when it starts.  The C
side is tests/c/test_guard.c."""

import pytest

from conftest import build_overflowing_lib, run_script

FORCE = {"GOPY_GUARD": "mprotect"}
WARNING = "gopy: warning: "


def mprotect_budget():
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read()) // 4
    except (OSError, ValueError):
        return 65530 // 4


def test_100k_python_goroutines_park_and_wake_under_the_mprotect_fallback():
    n = 100_000
    r = run_script(f"""
        import gopy
        from gopy.atomic import Int64
        n = {n}
        c = gopy.Chan()
        wg = gopy.WaitGroup()
        started = Int64()
        def parked():
            started.add(1)
            v = c.recv()  # nobody sends until all of them wait here
            assert 0 <= v < n
            wg.done()
        wg.add(n)
        for _ in range(n):
            gopy.go(parked)
        while started.load() < n:
            gopy.sleep(0.01)
        print(gopy.runtime.stats()["stack_guard"])
        for i in range(n):
            c.send(i)  # wakes them one by one
        wg.wait()
        # The last ones may still be on their way out after wg.done() (in
        # parallel, with the GIL off): a hang bound, not a timing.
        for _ in range(30_000):
            if gopy.runtime.num_goroutine() == 0:
                break
            gopy.sleep(0.001)
        print(gopy.runtime.num_goroutine())
    """, timeout=120, env=FORCE)
    assert r.returncode == 0, r.stderr
    if n > mprotect_budget():
        # Guarded while the budget lasts, then unguarded: it still works,
        # and says so once, on stderr and in stats.
        assert r.stdout == "mprotect+none\n0\n"
        assert r.stderr.count(WARNING) == 1, r.stderr
        assert "a quarter of vm.max_map_count" in r.stderr
    else:
        assert (r.stdout, r.stderr) == ("mprotect\n0\n", "")


@pytest.mark.parametrize("spawn", ["go_c", "go"])
def test_stack_overflow_under_the_mprotect_fallback_is_the_clean_fatal_error(tmp_path, spawn):
    # Unbounded C recursion on a C goroutine's stack (go_c) or a Python
    # goroutine's (go, through ctypes): the mprotect guard page stops it.
    lib = build_overflowing_lib(tmp_path)
    r = run_script(f"""
        import ctypes, sys, gopy
        lib = ctypes.CDLL({str(lib)!r})
        gopy.go(lambda: None)  # a first stack: the guard mode is chosen
        gopy.sleep(0.05)
        print("guard:", gopy.runtime.stats()["stack_guard"], file=sys.stderr, flush=True)
        if {spawn!r} == "go_c":
            gopy.go_c(lib.run)
        else:
            gopy.go(lib.run, None)
        gopy.sleep(30)
    """, timeout=60, env=FORCE)
    assert r.returncode != 0
    assert "guard: mprotect\n" in r.stderr
    assert "gopy: fatal error: stack overflow in goroutine" in r.stderr
