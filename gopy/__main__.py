"""python -m gopy: a short demo of gopy, then the side-by-side benchmark table.

--no-bench shows the demo only; --no-demo runs only the benchmarks. The other options
are the table's, below. Run from a source checkout, the table also has the C rows
(gopy.h against Go); an install runs the Python rows.
"""

import os
import sys
import time

import gopy

PROG = "python -m gopy"


def demo():
    print(f"gopy {gopy.__version__}: Go's concurrency runtime, in C, for Python "
          f"(GOMAXPROCS={gopy.runtime.gomaxprocs()})\n")

    # A pipeline: generator -> square -> printer, each a goroutine.
    def gen(out, n):
        for i in range(n):
            out.send(i)
        out.close()

    def square(inp, out):
        for v in inp:
            out.send(v * v)
        out.close()

    numbers, squares = gopy.Chan(), gopy.Chan()
    gopy.go(gen, numbers.send_only(), 10)
    gopy.go(square, numbers.recv_only(), squares.send_only())
    print("pipeline (gen -> square):", list(squares))

    # select with a timeout.
    slow = gopy.Chan(1)  # buffered: the late sender does not wait forever
    gopy.after_func(0.2, slow.send, "late")
    i, value, ok = gopy.select(gopy.Recv(slow), gopy.Recv(gopy.after(0.05)))
    print("select with a 50 ms timeout:", "timed out" if i == 1 else value)

    # 10,000 goroutines parked at once, woken by one close.
    gate, done = gopy.Chan(), gopy.Chan(10_000)
    start = time.perf_counter()
    for _ in range(10_000):
        gopy.go(lambda: done.send(gate.recv_ok()[1]))
    while gopy.runtime.num_goroutine() < 10_000 or len(done):
        gopy.sleep(0.001)
    gate.close()
    woken = sum(1 for _ in range(10_000) if done.recv() is False)
    print(f"10,000 goroutines parked and woken by one close: {woken} woke, "
          f"{(time.perf_counter() - start) * 1e3:.0f} ms in all")

    # time.sleep parks a goroutine (the standard library's blocking calls do).
    start = time.perf_counter()
    finished = gopy.Chan(100)
    for _ in range(100):
        gopy.go(lambda: (time.sleep(0.05), finished.send(1)))
    total = sum(finished.recv() for _ in range(100))
    print(f"{total} goroutines each calling time.sleep(0.05): "
          f"{time.perf_counter() - start:.2f} s, not 5 s\n")


def bench_main():
    """The benchmark table's main(): a checkout's benchmarks/ first (what is being
    edited); else the copy an install ships as gopy._bench (setup.py), which has no C
    rows."""
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(checkout, "benchmarks", "harness.py")):
        if checkout not in sys.path:
            sys.path.insert(0, checkout)
        from benchmarks.harness import main
    else:
        from gopy._bench.harness import main
    return main


def benchmarks(argv):
    print("Benchmarks: gopy beside asyncio, threads, ThreadPoolExecutor, gevent, trio, "
          "pygolang, runloom and Go (progress on stderr)\n", flush=True)
    return bench_main()(argv, prog=PROG)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        print(__doc__)
        return bench_main()(["--help"], prog=PROG)  # argparse prints it and exits
    show_demo = "--no-demo" not in argv
    show_bench = "--no-bench" not in argv
    argv = [a for a in argv if a not in ("--no-demo", "--no-bench")]
    if show_demo:
        demo()
    if show_bench:
        return benchmarks(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
