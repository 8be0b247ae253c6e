"""How many threads and how much memory n echo clients (W13's gopy body) cost gopy.

    PYTHONPATH=. python benchmarks/host_threads.py [--n 10000] [--hold]

Runs W13's gopy body once against the echo server process and prints the time, the
peak RSS, the Ms the runtime made (and how often it recruited a standby), the OS
threads of the process, the CPU the client and the echo server spent, and each thread's
CPU and context switches over the process's life (the busiest first). With
--hold the clients stay connected after their round trips while the goroutines'
stacks are read (mincore): how many pages of each stack are resident and how deep
the C stack and the frames reached, which is what docs/decisions.md §15 chose the
layout of a goroutine's top of stack from.
"""

import argparse
import collections
import ctypes
import os
import resource
import sys
import time

if __package__ in (None, ""):  # `python benchmarks/host_threads.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gopy  # noqa: E402
from benchmarks.py.gopy_w import _in_goroutine as in_goroutine, echo_clients  # noqa: E402
from benchmarks.request_cpu import server_cpu_seconds  # noqa: E402
from benchmarks.servers import raise_fd_limit  # noqa: E402
from benchmarks.workloads import EchoSpec, Server  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def stack_report(grain=256):
    """Resident pages of each goroutine stack (the large anonymous mappings), and
    how far below its top the lowest and highest written bytes lie (rounded down
    to grain bytes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    slot = gopy.runtime.stats()["stack_size_python"] + PAGE  # guard page + stack
    pages, deepest, frames_top = collections.Counter(), collections.Counter(), collections.Counter()
    for line in open("/proc/self/maps"):
        fields = line.split()
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if hi - lo < 64 * slot or len(fields) >= 6:
            continue
        n = (hi - lo) // PAGE
        vec = ctypes.create_string_buffer(n)
        if libc.mincore(lo, hi - lo, vec) != 0:
            continue
        per = slot // PAGE
        for s in range(0, n - per + 1, per):
            resident = [i for i in range(per) if vec.raw[s + i] & 1]
            if not resident:
                continue
            top = lo + (s + per) * PAGE
            pages[len(resident)] += 1
            low = lo + (s + resident[0]) * PAGE
            data = ctypes.string_at(low, PAGE)
            first = next((k for k, c in enumerate(data) if c), PAGE)
            deepest[(top - low - first) // grain * grain] += 1
            high = lo + (s + resident[-1]) * PAGE
            data = ctypes.string_at(high, PAGE)
            last = max((k for k, c in enumerate(data) if c), default=0)
            frames_top[(top - high - last) // grain * grain] += 1
    print("resident pages per stack:", dict(pages.most_common(4)))
    print("lowest written byte, bytes below the top:", dict(deepest.most_common(3)))
    print("highest written byte (frames), bytes below the top:", dict(frames_top.most_common(3)))


def thread_report():
    """Each thread of this process: its name (the runtime names its own: gopy-m<id>,
    gopy-sysmon, gopy-offload), CPU seconds (user + system), voluntary and
    involuntary context switches, since it started; the busiest first."""
    tick = os.sysconf("SC_CLK_TCK")
    rows = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/self/task/{tid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        cpu = (int(fields[11]) + int(fields[12])) / tick
        rows.append((cpu, int(status["voluntary_ctxt_switches"]),
                     int(status["nonvoluntary_ctxt_switches"]), status["Name"].strip()))
    rows.sort(reverse=True)
    print("threads (name: CPU s, voluntary / involuntary switches):",
          ", ".join(f"{name}: {c:.2f} {v}/{i}" for c, v, i, name in rows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--hold", action="store_true", help="report the goroutine stacks too")
    args = ap.parse_args()
    raise_fd_limit()
    server = Server.get("echo")
    spec = EchoSpec(args.n, server.port)
    hold = gopy.WaitGroup() if args.hold else None
    if hold is not None:
        hold.add(1)
    before, server_before = resource.getrusage(resource.RUSAGE_SELF), server_cpu_seconds(server)
    start = time.perf_counter()
    received = in_goroutine(echo_clients, spec, hold)
    elapsed = time.perf_counter() - start
    after, server_after = resource.getrusage(resource.RUSAGE_SELF), server_cpu_seconds(server)
    assert all(received[i] == spec.expected(i) for i in range(spec.n))
    stats = gopy.runtime.stats()
    print(f"{args.n} clients: {elapsed:.2f} s, peak RSS {after.ru_maxrss / 1024:.1f} MiB, "
          f"Ms made {stats['ms']} (standbys recruited {stats['host_recruits']}), "
          f"threads {len(os.listdir('/proc/self/task'))}, GOMAXPROCS {stats['gomaxprocs']}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(f"CPU: client {cpu:.2f} s ({after.ru_nvcsw - before.ru_nvcsw} voluntary context "
          f"switches), echo server {server_after - server_before:.2f} s")
    thread_report()
    if hold is not None:
        stack_report()
        hold.done()


if __name__ == "__main__":
    main()
