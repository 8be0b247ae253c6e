"""gopy.runtime: gomaxprocs, num_cpu, num_goroutine, gosched, stats, stack."""

import os
import threading

import pytest

import gopy
from gopy import runtime
from conftest import parked_on, recv_value, run_in_goroutine, run_in_thread, run_script, wait_until


@pytest.fixture
def restore_gomaxprocs():
    prev = runtime.gomaxprocs()
    yield prev
    runtime.gomaxprocs(prev)


def test_gomaxprocs_query_and_set(restore_gomaxprocs):
    prev = restore_gomaxprocs
    assert isinstance(prev, int) and prev >= 1
    assert runtime.gomaxprocs() == prev
    assert runtime.gomaxprocs(0) == prev      # n < 1 only queries
    assert runtime.gomaxprocs(-3) == prev
    assert runtime.gomaxprocs(1) == prev      # returns the previous value
    assert runtime.gomaxprocs() == 1
    assert runtime.stats()["gomaxprocs"] == 1
    assert runtime.gomaxprocs(3) == 1
    assert runtime.gomaxprocs() == 3
    assert runtime.stats()["ps"] == 3
    assert runtime.gomaxprocs(prev) == 3
    assert runtime.gomaxprocs() == prev


def test_goroutines_work_after_gomaxprocs_changes(restore_gomaxprocs):
    for n in (1, 4, 2):
        runtime.gomaxprocs(n)
        out = gopy.Chan(100)
        for i in range(20):
            gopy.go(lambda i=i: (gopy.sleep(0.001), out.send(i)))
        assert sorted(recv_value(out) for _ in range(20)) == list(range(20))


def test_gomaxprocs_bad_args():
    with pytest.raises(TypeError):
        runtime.gomaxprocs("2")
    with pytest.raises(TypeError):
        runtime.gomaxprocs(1.5)
    with pytest.raises((OverflowError, ValueError)):
        runtime.gomaxprocs(2**70)


def test_gomaxprocs_environment():
    r = run_script("import gopy.runtime as r; print(r.gomaxprocs())", env={"GOMAXPROCS": "3"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"
    r = run_script("import os, gopy.runtime as r; print(r.gomaxprocs(), os.cpu_count())")
    assert r.returncode == 0, r.stderr
    got, cpus = r.stdout.split()
    assert got == cpus


def test_num_cpu():
    n = runtime.num_cpu()
    assert isinstance(n, int) and n >= 1
    assert n <= (os.cpu_count() or n)


def test_num_cpu_is_counted_once_as_in_go():
    # Go counts the CPUs at startup; a later change of the process's
    # affinity does not show.  (It is also on a contended mutex's spin path.)
    r = run_script("""
        import os
        from gopy import runtime
        first, allowed = runtime.num_cpu(), len(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        print(first, allowed, runtime.num_cpu(), len(os.sched_getaffinity(0)))
    """)
    assert r.returncode == 0, r.stderr
    first, allowed, later, now = map(int, r.stdout.split())
    assert (first, later, now) == (allowed, allowed, 1)


def test_num_goroutine_counts_parked():
    # In a fresh interpreter, so that no other test's goroutines count.
    r = run_script("""
        import threading, time
        import gopy
        from gopy import runtime

        def wait_for(n):
            deadline = time.monotonic() + 30
            while runtime.num_goroutine() != n and time.monotonic() < deadline:
                time.sleep(0.005)
            return runtime.num_goroutine()

        print(runtime.num_goroutine())
        ch = gopy.Chan()
        for _ in range(10):
            gopy.go(ch.recv)
        print(wait_for(10), runtime.stats()["goroutines"])
        t = threading.Thread(target=ch.recv)  # a thread is not a goroutine
        t.start()
        time.sleep(0.05)
        print(runtime.num_goroutine())
        ch.close()
        t.join()
        print(wait_for(0))
        gopy.go(gopy.sleep, 0.05)
        print(runtime.num_goroutine())
        print(wait_for(0))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:6] == ["0", "10 10", "10", "0", "1", "0"]


def test_num_goroutine_in_process():
    ch = gopy.Chan()
    for _ in range(5):
        gopy.go(ch.recv)
    assert wait_until(lambda: parked_on(ch, "chan receive") == 5)
    assert runtime.num_goroutine() >= 5
    ch.close()
    assert wait_until(lambda: parked_on(ch) == 0)


def test_gosched_everywhere():
    assert runtime.gosched() is None
    assert run_in_goroutine(runtime.gosched) is None
    assert run_in_thread(runtime.gosched) is None


def test_gosched_lets_others_run(restore_gomaxprocs):
    runtime.gomaxprocs(1)
    log = []
    done = gopy.Chan(2)

    def worker(tag):
        for i in range(3):
            log.append((tag, i))
            runtime.gosched()
        done.send(tag)

    gopy.go(worker, "a")
    gopy.go(worker, "b")
    recv_value(done)
    recv_value(done)
    assert sorted(log) == [(t, i) for t in "ab" for i in range(3)]


def test_stats_keys():
    s = runtime.stats()
    for key in ("goroutines", "ms", "ps", "context_switches", "steals"):
        assert key in s
        assert isinstance(s[key], int) and s[key] >= 0
    assert s["ps"] == runtime.gomaxprocs()
    assert s["ms"] >= 1 or s["goroutines"] == 0


def thread_name(tid=None):
    """The OS name of thread tid of this process (None: the caller's)."""
    with open("/proc/thread-self/comm" if tid is None else f"/proc/self/task/{tid}/comm") as f:
        return f.read().strip()


def test_the_runtime_names_its_threads():
    """top -H, ps -L and gdb tell the runtime's threads apart: gopy-m<id> for
    the Ms, gopy-sysmon, gopy-offload for offload's helpers."""
    name = run_in_goroutine(thread_name)
    assert name.startswith("gopy-m") and name[len("gopy-m"):].isdigit(), name
    assert run_in_goroutine(gopy.offload, thread_name) == "gopy-offload"
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            names.append(thread_name(tid))
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    assert names.count("gopy-sysmon") == 1, names
    assert thread_name() != "gopy-sysmon"  # the main thread keeps its own


def test_context_switches_increase():
    before = runtime.stats()["context_switches"]
    ch = gopy.Chan()

    def ping():
        for i in range(10):
            ch.send(i)

    gopy.go(ping)
    assert [ch.recv() for _ in range(10)] == list(range(10))
    assert runtime.stats()["context_switches"] > before


def test_stack_shows_parked_goroutine():
    ch = gopy.Chan()

    def parked_here_for_the_test():
        ch.recv()

    gopy.go(parked_here_for_the_test)
    assert wait_until(lambda: "parked_here_for_the_test" in runtime.stack())
    dump = runtime.stack()
    block = [b for b in dump.split("\n\n") if "parked_here_for_the_test" in b]
    assert len(block) == 1
    assert block[0].startswith("goroutine ")
    assert "[waiting: chan receive" in block[0]
    ch.close()
    assert wait_until(lambda: "parked_here_for_the_test" not in runtime.stack())


def test_lock_os_thread_in_goroutine():
    def f():
        runtime.lock_os_thread()
        try:
            ids = set()
            for _ in range(5):
                ids.add(threading.get_ident())
                gopy.sleep(0.001)
            return len(ids)
        finally:
            runtime.unlock_os_thread()

    assert run_in_goroutine(f) == 1
