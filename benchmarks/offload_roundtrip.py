"""The cost of one gopy.offload round trip, from Python and from C.

    PYTHONPATH=. python benchmarks/offload_roundtrip.py

From a Python goroutine: offload(noop) with an idle helper taking each
call; for scale, the same call made directly, and the round trips of the
usual ways to run a call on another thread (ThreadPoolExecutor with one
worker, from a thread; asyncio.to_thread from a running loop).  Then it
builds and runs benchmarks/native/offload/roundtrip.c (a C goroutine: warm,
and cold -- a helper made for the call, which only the C test hooks can
arrange quickly) if make and a C compiler are there.  Prints µs per call.
"""

import asyncio
import concurrent.futures
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import gopy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, RUNS, COLD = 20000, 7, 50


def noop():
    pass


def per_call_us(call, n=N, runs=RUNS):
    """Best and median µs per call of `runs` runs of n calls."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        times.append((time.perf_counter() - t0) / n * 1e6)
    return min(times), statistics.median(times)


def in_goroutine(fn):
    out = gopy.Chan(1)
    gopy.go(lambda: out.send(fn()))
    return out.recv()


def main():
    for _ in range(1000):
        in_goroutine(lambda: gopy.offload(noop))
    best, med = in_goroutine(lambda: per_call_us(lambda: gopy.offload(noop)))
    print(f"Python goroutine, warm helper:  {best:.2f} us (best), {med:.2f} us (median of "
          f"{RUNS} x {N})")
    best, med = per_call_us(lambda: gopy.offload(noop))
    print(f"main thread (direct call):      {best:.3f} us")
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        best, med = per_call_us(lambda: ex.submit(noop).result())
    print(f"ThreadPoolExecutor(1) from a thread: {best:.2f} us (best), {med:.2f} us (median)")

    async def to_thread_loop():
        for _ in range(1000):
            await asyncio.to_thread(noop)
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            for _ in range(N // 4):
                await asyncio.to_thread(noop)
            times.append((time.perf_counter() - t0) / (N // 4) * 1e6)
        return min(times), statistics.median(times)

    best, med = asyncio.run(to_thread_loop())
    print(f"asyncio.to_thread:              {best:.2f} us (best), {med:.2f} us (median)")

    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None or shutil.which("make") is None:
        print("(no C compiler or make: the C round trip is not measured)")
        return
    subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "src", "runtime")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "roundtrip")
        subprocess.run([cc, "-O2", "-std=c11", "-I" + os.path.join(ROOT, "include"),
                        "-I" + os.path.join(ROOT, "src", "runtime"),
                        os.path.join(ROOT, "benchmarks", "native", "offload", "roundtrip.c"),
                        os.path.join(ROOT, "build", "libgopyrt.a"), "-lpthread", "-o", exe],
                       check=True)
        sys.stdout.flush()
        subprocess.run([exe], check=True)


if __name__ == "__main__":
    main()
