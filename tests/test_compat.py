"""What differs between CPython versions (src/python/compat.c)."""

import ctypes
import sys

import pytest

import gopy
from gopy import _gopy
from conftest import run_in_goroutine

POINTER = ctypes.sizeof(ctypes.c_void_p)


@pytest.mark.parametrize("built_with, running, shift", [
    # 3.14.4 appended datastack_cached_chunk to PyThreadState: the internal
    # fields after it move one pointer on, whichever side was built first.
    (0x030E03F0, 0x030E0AF0, POINTER),    # built on 3.14.3, running 3.14.10
    (0x030E0AF0, 0x030E03F0, -POINTER),   # built on 3.14.10, running 3.14.3
    (0x030E04F0, 0x030E0AF0, 0),
    (0x030E00F0, 0x030E03F0, 0),
    (0x030E0AF0, 0x030E04A1, 0),          # a 3.14.4 pre-release has it too
    (0x030F02F0, 0x030F00F0, 0),          # 3.15: from its first release
    (0x030D0FF0, 0x030D00F0, 0),
    (0x030B07F0, 0x030B0AF0, 0),
])
def test_thread_state_layout_is_taken_from_the_running_interpreter(built_with, running, shift):
    assert _gopy._ts_impl_shift(built_with, running) == shift


def test_the_running_interpreter_is_the_one_decided_on():
    # Import checked the layout against this thread's stack bounds (3.14+)
    # with the shift for this very interpreter.
    assert _gopy._ts_impl_shift(sys.hexversion, sys.hexversion) == 0
    assert run_in_goroutine(lambda: 6 * 7) == 42


def test_pure_python_recursion_in_a_goroutine_is_bounded():
    # 3.11 caps the goroutine's recursion limit by its stack (one counter
    # for Python and C levels); later versions keep the thread's limit.
    def depth():
        n = [0]

        def rec():
            n[0] += 1
            rec()

        try:
            rec()
        except RecursionError:
            return n[0]

    got = run_in_goroutine(depth)
    limit = sys.getrecursionlimit()
    if sys.version_info < (3, 12):
        cap = min(limit, gopy.runtime.stats()["stack_size_python"] // 2048)
        assert cap - 10 <= got <= cap
    else:
        assert limit - 10 <= got <= limit
