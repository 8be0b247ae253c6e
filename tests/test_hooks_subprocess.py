"""subprocess inside goroutines: waiting for a child and using its pipes
park; results and errors are the originals'."""

import io
import os
import re
import socket
import subprocess
import sys
import time

import pytest

import gopy
from gopy import _hooks
from conftest import recv_value, run_in_goroutine, run_in_thread
from hookcheck import open_fds, parks, run_parked_pool

# A child that waits for a byte on the gate's descriptor (passed as its
# first argument), then copies its stdin to stdout and says how much it
# copied on stderr.
GATED_CAT = ("import os, sys; os.read(int(sys.argv[1]), 1); data = sys.stdin.buffer.read(); "
             "sys.stdout.buffer.write(data); sys.stderr.write(str(len(data)))")


@pytest.fixture
def gate():
    """(r, release): a child given r (pass_fds) can wait on it until
    release() is called."""
    r, w = os.pipe()
    yield r, lambda: os.write(w, b"g")
    os.close(r)
    os.close(w)


def python(code, gate_fd):
    return [sys.executable, "-c", code, str(gate_fd)]


def test_wait_parks():
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert parks(p.wait, p.stdin.close) == 0
    assert p.returncode == 0


def test_wait_with_a_timeout_parks_and_expires_as_the_original():
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def expire(wait):
        try:
            wait(timeout=0.1)
        except subprocess.TimeoutExpired as e:
            return str(e), e.cmd, e.timeout
        return None

    assert parks(lambda: expire(p.wait)) == run_in_thread(expire, p.wait) == (
        "Command '['cat']' timed out after 0.1 seconds", ["cat"], 0.1)
    p.stdin.close()
    assert run_in_goroutine(p.wait, 30) == 0


def test_run_parks():
    result = parks(lambda: subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)"]))
    assert result.returncode == 0


def test_run_with_a_timeout_kills_the_child_as_the_original():
    def run():
        start = time.monotonic()
        try:
            subprocess.run(["sleep", "30"], timeout=0.2)
        except subprocess.TimeoutExpired as e:
            # The timeout it reports is what was left of it at the end.
            return re.sub(r"after 0\.[0-9]+ seconds", "after 0.2 seconds", str(e)), \
                time.monotonic() - start < 20
        return None

    assert run_in_goroutine(run) == run_in_thread(run) == (
        "Command '['sleep', '30']' timed out after 0.2 seconds", True)


def test_communicate_through_one_pipe_parks(gate):
    r, release = gate

    def block():
        p = subprocess.Popen(python("import os, sys; os.write(1, os.read(int(sys.argv[1]), 1))", r),
                             stdout=subprocess.PIPE, pass_fds=(r,))
        return p.communicate(), p.returncode

    assert parks(block, release) == ((b"g", None), 0)


def test_communicate_through_three_pipes_parks(gate):
    r, release = gate
    data = bytes(range(256)) * 4096  # 1 MiB: more than the pipes hold

    def block():
        p = subprocess.Popen(python(GATED_CAT, r), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(r,))
        return p.communicate(data)

    out, err = parks(block, release)
    assert out == data and err == b"1048576"


def test_writing_a_pipe_parks_when_it_is_full(gate):
    r, release = gate
    data = b"w" * (1 << 20)

    def block():
        p = subprocess.Popen(python(GATED_CAT, r), stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(r,))
        p.stdin.write(data)
        p.stdin.close()
        return p.stderr.read(), p.wait()

    assert parks(block, release) == (b"1048576", 0)


@pytest.mark.parametrize("text", [False, True])
def test_reading_a_pipe_line_by_line_parks(gate, text):
    r, release = gate

    def block():
        p = subprocess.Popen(
            python("import os, sys; os.read(int(sys.argv[1]), 1); print('one'); print('two')",
                   r),
            stdout=subprocess.PIPE, pass_fds=(r,), text=text)
        with p:
            return [line for line in p.stdout]

    lines = parks(block, release)
    assert lines == (["one\n", "two\n"] if text else [b"one\n", b"two\n"])


def test_unbuffered_pipes_write_everything(gate):
    r, release = gate
    data = b"u" * 300_000

    def block():
        p = subprocess.Popen(python(GATED_CAT, r), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=(r,),
                             bufsize=0)
        assert p.stdin.write(data) == len(data)  # a raw write, yet all of it
        p.stdin.close()
        return p.stdout.read(), p.stdout.readall(), p.wait()

    assert parks(block, release) == (data, b"", 0)


def test_pipes_of_a_popen_made_in_a_goroutine():
    def make():
        return subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    inside, outside = run_in_goroutine(make), make()
    for p in (inside, outside):
        assert type(p.stdin) is io.BufferedWriter and type(p.stdout) is io.BufferedReader
        assert (p.stdin.raw.mode, p.stdout.raw.mode) == ("wb", "rb")
        assert (p.stdin.raw.name, p.stdout.raw.name) == (p.stdin.fileno(), p.stdout.fileno())
        assert p.stdout.raw._blksize == os.fstat(p.stdout.fileno()).st_blksize
        assert os.get_blocking(p.stdin.fileno()) and os.get_blocking(p.stdout.fileno())
    assert type(inside.stdout.raw) is _hooks.subprocess.PipeReader
    assert type(inside.stdin.raw) is _hooks.subprocess.PipeWriter
    assert type(outside.stdout.raw) is io.FileIO and type(outside.stdin.raw) is io.FileIO
    # Threads use a goroutine's pipes as plain blocking files.
    run_in_thread(lambda: (inside.stdin.write(b"from a thread"), inside.stdin.close()))
    assert run_in_thread(inside.stdout.read) == b"from a thread"
    inside.stdout.close()
    assert inside.wait() == 0
    assert outside.communicate() == (b"", None) and outside.returncode == 0


def test_closing_a_pipe_wakes_its_reader():
    errors = gopy.Chan(1)

    def reader(p):
        try:
            p.stdout.read(10)
        except OSError as e:
            errors.send(e.errno)

    def block():
        p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        gopy.go(reader, p)
        gopy.sleep(0.05)
        p.stdout.close()
        import errno
        got = recv_value(errors) == errno.EBADF
        p.stdin.close()
        return got, p.wait()

    assert run_in_goroutine(block) == (True, 0)


def test_wait_without_a_pidfd_is_the_original(monkeypatch):
    def no_pidfd(pid, flags=0):  # 3.15's subprocess passes flags
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)

    def block():
        return p.wait(timeout=30)

    # The original polls with time.sleep, which parks.
    assert parks(block, p.stdin.close) == 0


def test_errors_are_the_originals():
    def outcome(fn):
        try:
            return "returned", fn()
        except Exception as e:  # noqa: BLE001
            return type(e), str(e)

    cases = [
        lambda: subprocess.run(["/nonexistent/program"]),
        lambda: subprocess.run(["true"], timeout="x"),
        lambda: subprocess.Popen(["true"]).wait(timeout="x"),
        lambda: subprocess.run(["false"], check=True),
        lambda: subprocess.run(["cat"], input="text", capture_output=True).stdout,
        lambda: subprocess.run(["cat"], input="text", capture_output=True, text=True).stdout,
        lambda: subprocess.Popen(["cat"], stdin=subprocess.PIPE).stdin.write("text"),
        lambda: subprocess.check_output(["echo", "out"]),
    ]
    for fn in cases:
        assert run_in_goroutine(outcome, fn) == run_in_thread(outcome, fn)


def test_worker_pool_of_subprocesses_does_not_serialise():
    # 8 workers parked on a jobs channel, 24 runs of `sleep 0.05`: ideal
    # 0.15 s, serial 1.2 s.
    results, elapsed = run_parked_pool(lambda n: subprocess.run(["sleep", "0.05"]).returncode)
    assert results == [0] * 24
    assert elapsed < 0.8


def test_no_descriptors_leak():
    def children():
        subprocess.run(["true"])
        subprocess.run(["cat"], input=b"x" * 100_000, capture_output=True)
        with subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as p:
            p.stdin.write(b"line\n")
            p.stdin.flush()
            p.stdout.readline()
        try:
            subprocess.run(["sleep", "5"], timeout=0.01)
        except subprocess.TimeoutExpired:
            pass

    run_in_goroutine(children)
    before = open_fds()
    for _ in range(5):
        run_in_goroutine(children)
    assert open_fds() == before


def test_close_needs_no_module_globals(monkeypatch):
    # Pipes and sockets left open are closed while the interpreter exits,
    # after module globals are gone (seen on 3.13).
    p = run_in_goroutine(lambda: subprocess.Popen(["cat"], stdin=subprocess.PIPE,
                                                  stdout=subprocess.PIPE))
    a, b = socket.socketpair()
    for module in (_hooks.subprocess, _hooks.socket):
        for name, value in list(vars(module).items()):
            if not name.startswith("__") and not isinstance(value, type):
                monkeypatch.setattr(module, name, None)
    p.stdin.close()
    p.stdout.close()
    a.close()
    b.close()
    monkeypatch.undo()
    assert p.wait() == 0 and a.fileno() == -1
