"""The C runtime's own test suite (tests/c/), built and run from pytest.

Builds build/libgopyrt.a with `make -C src/runtime`, compiles each
tests/c/test_*.c against it into a temporary directory, and runs every
case of every program as its own pytest test (`prog CASE` runs one case
in a fresh process), so that a failure is named.  The programs check exact
values; the only time limits are hang bounds.

tests/c/throws.c is built apart, against the debug build (GOPY_CHECKS):
each of its cases breaks one checked invariant and must die with the
check's message.
"""

import os
import re
import shutil
import signal
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CDIR = os.path.join(ROOT, "tests", "c")
LIB = os.path.join(ROOT, "build", "libgopyrt.a")
CC = os.environ.get("CC", "cc")
CFLAGS = ["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror"]

# Per-case hang bound (seconds).  The harness's own alarm (H_TIMEOUT)
# fires first and prints a goroutine summary; the subprocess timeout and
# pytest-timeout are the backstops.
CASE_TIMEOUT = 180
CASE_RE = re.compile(r"^\s*TEST(?:_NOSTRESS)?\((\w+)\)", re.M)


def _programs():
    return sorted(f[:-2] for f in os.listdir(CDIR)
                  if f.startswith("test_") and f.endswith(".c"))


def _cases(prog):
    with open(os.path.join(CDIR, prog + ".c")) as f:
        return CASE_RE.findall(f.read())


ALL_CASES = [(p, c) for p in _programs() for c in _cases(p)]


@pytest.fixture(scope="session")
def runtime_lib():
    if shutil.which(CC) is None or shutil.which("make") is None:
        pytest.skip("no C compiler or make")
    r = subprocess.run(["make", "-C", os.path.join(ROOT, "src", "runtime")],
                       capture_output=True, text=True)
    assert r.returncode == 0, "building the runtime failed:\n" + r.stdout + r.stderr
    assert os.path.exists(LIB)
    return LIB


@pytest.fixture(scope="session")
def c_programs(runtime_lib, tmp_path_factory):
    """Compile on first use; maps program name -> executable path (or the
    compiler's message when it failed, so that each case reports it)."""
    outdir = tmp_path_factory.mktemp("c_tests")
    built = {}

    def get(prog):
        if prog not in built:
            exe = str(outdir / prog)
            cmd = [CC, *CFLAGS, "-I" + os.path.join(ROOT, "include"),
                   "-I" + os.path.join(ROOT, "src", "runtime"),
                   os.path.join(CDIR, prog + ".c"), runtime_lib,
                   "-lpthread", "-lm", "-o", exe]
            r = subprocess.run(cmd, capture_output=True, text=True)
            built[prog] = exe if r.returncode == 0 else (
                "compiling %s failed:\n%s\n%s" % (prog, " ".join(cmd), r.stderr))
        return built[prog]

    return get


def _exe(c_programs, prog):
    exe = c_programs(prog)
    if not os.path.exists(exe):
        pytest.fail(exe, pytrace=False)
    return exe


@pytest.mark.parametrize("prog", _programs())
def test_case_list_matches_source(c_programs, prog):
    """The harness's registry agrees with the cases collected here."""
    exe = _exe(c_programs, prog)
    r = subprocess.run([exe, "--list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(_cases(prog))


@pytest.mark.timeout(CASE_TIMEOUT + 30)
@pytest.mark.parametrize("prog,case", ALL_CASES,
                         ids=["%s::%s" % pc for pc in ALL_CASES])
def test_c(c_programs, prog, case):
    exe = _exe(c_programs, prog)
    env = dict(os.environ)
    env.setdefault("H_TIMEOUT", str(CASE_TIMEOUT - 20))
    try:
        r = subprocess.run([exe, case], capture_output=True, text=True,
                           timeout=CASE_TIMEOUT, env=env)
    except subprocess.TimeoutExpired as e:
        out = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        pytest.fail("%s %s hung (killed after %d s)\n%s" % (prog, case, CASE_TIMEOUT, out),
                    pytrace=False)
    if r.returncode != 0:
        how = ("killed by signal %d" % -r.returncode if r.returncode < 0
               else "exit status %d" % r.returncode)
        pytest.fail("%s %s failed (%s)\n--- stderr ---\n%s--- stdout ---\n%s"
                    % (prog, case, how, r.stderr, r.stdout), pytrace=False)


# ---- what the runtime exports ----------------------------------------------

def test_library_exports_only_gopy_names(runtime_lib):
    """The archive defines no global outside gopy_* (src/runtime/Makefile
    localizes the rest), so a program's own names cannot clash with it."""
    if shutil.which("nm") is None:
        pytest.skip("no nm")
    r = subprocess.run(["nm", "-g", "--defined-only", runtime_lib],
                       capture_output=True, text=True, check=True)
    names = [f[2] for f in (line.split() for line in r.stdout.splitlines()) if len(f) == 3]
    assert names and [n for n in names if not n.startswith("gopy_")] == []


def test_program_with_runtime_names_links(runtime_lib, tmp_path):
    """A program defining sched, getg and newproc (the runtime's internal
    names) links against the library as gopy.h says, and both sides keep
    their own."""
    exe = str(tmp_path / "link_clash")
    cmd = [CC, *CFLAGS, "-I" + os.path.join(ROOT, "include"),
           os.path.join(CDIR, "link_clash.c"), runtime_lib, "-lpthread", "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, " ".join(cmd) + "\n" + r.stderr
    r = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "sum=6 sched=7 getg=35 newproc=1\n"), r.stderr


# ---- the checks of GOPY_CHECKS builds (tests/c/throws.c) -------------------

# throws CASE must abort with "gopy: fatal error: " and this (a regex).
THROWS = {
    "chan_overfull": r"chan: more values buffered than the capacity",
    "chan_receiver_on_nonempty": r"chan: a receiver waits on a non-empty buffer",
    "chan_sender_on_nonfull": r"chan: a sender waits on a non-full buffer",
    "sudog_queued_twice": r"sudog queued twice",
    "waitq_corrupted": r"wait queue is corrupted",
    "g_queued_twice": r"G queued twice",
    "gqueue_corrupted": r"G queue is corrupted",
    "ready_running_g": r"bad g->status in ready",
    "recv_spurious_wakeup": r"G waiting list is corrupted",
    "select_bad_wakeup": r"selectgo: bad wakeup",
    "lock_order_sched_chan":
        r"lock ordering problem: chan lock 0x[0-9a-f]+ taken while holding sched lock",
    "lock_order_chan_address":
        r"lock ordering problem: chan lock 0x[0-9a-f]+ taken while holding chan lock",
    "lock_recursive": r"lock ordering problem: chan lock 0x[0-9a-f]+ taken again by its holder",
    "lock_unranked": r"lock 0x[0-9a-f]+ has no rank",
    "unlock_not_held": r"unlock of chan lock 0x[0-9a-f]+ that this thread does not hold",
    "throw_with_goroutines": r"test throw \(2 goroutines\)",
}


@pytest.fixture(scope="session")
def throws_program(tmp_path_factory):
    if shutil.which(CC) is None or shutil.which("make") is None:
        pytest.skip("no C compiler or make")
    # throws.c reaches into the runtime's internals: the unhidden archive.
    r = subprocess.run(["make", "-C", os.path.join(ROOT, "src", "runtime"), "VARIANT=debug",
                        "internal"], capture_output=True, text=True)
    assert r.returncode == 0, "building the debug runtime failed:\n" + r.stdout + r.stderr
    exe = str(tmp_path_factory.mktemp("c_throws") / "throws")
    cmd = [CC, *CFLAGS, "-DGOPY_CHECKS", "-I" + os.path.join(ROOT, "include"),
           "-I" + os.path.join(ROOT, "src", "runtime"), os.path.join(CDIR, "throws.c"),
           os.path.join(ROOT, "build", "debug", "libgopyrt-internal.a"), "-lpthread", "-lm",
           "-o", exe]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, "compiling throws.c failed:\n" + r.stderr
    return exe


def _throw(exe, case, **env):
    e = {k: v for k, v in os.environ.items() if k != "GOPY_TRACEBACK"}
    e.update(env)
    r = subprocess.run([exe, case], capture_output=True, text=True, timeout=60, env=e)
    assert r.returncode == -signal.SIGABRT, (r.returncode, r.stderr)
    assert re.search("^gopy: fatal error: " + THROWS[case], r.stderr, re.M), r.stderr
    return r.stderr


def test_throws_case_list(throws_program):
    r = subprocess.run([throws_program, "--list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split()) == sorted(THROWS)


@pytest.mark.parametrize("case", sorted(THROWS))
def test_check_throws(throws_program, case):
    """The check fires with its message and aborts; without GOPY_TRACEBACK
    there is no goroutine dump."""
    assert "goroutine " not in _throw(throws_program, case)


def test_throw_dumps_goroutines_under_gopy_traceback_all(throws_program):
    err = _throw(throws_program, "throw_with_goroutines", GOPY_TRACEBACK="all")
    assert err.count("[waiting: chan receive]: C goroutine") == 2, err
