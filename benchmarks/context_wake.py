"""Waking goroutines parked on one context: the cost per goroutine.

N goroutines park receiving from ctx.done(); the clock runs from cancel()
until the last of them has woken and finished.  Reported per goroutine,
for Python goroutines and (if a C compiler is at hand) C goroutines that
honour the same Python context through its handle and the C API.

    PYTHONPATH=. python benchmarks/context_wake.py [-n 100000] [--repeat 3]

The cancel() time alone (closing done and readying every waiter) is shown
too.  Target (issue 5): <= 1 us per goroutine at N = 100,000.
"""

import argparse
import ctypes
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time

import gopy
from gopy import context

C_SOURCE = r"""
#include <stdint.h>
#include <gopy.h>

static const struct gopy_api *api;
static int64_t left;
static gopy_chan *finished;

int wake_init(const struct gopy_api *table, gopy_chan *fin, int64_t n)
{
    if (table->size < sizeof(struct gopy_api))
        return -1;
    api = table;
    finished = fin;
    __atomic_store_n(&left, n, __ATOMIC_SEQ_CST);
    return 0;
}

/* Park on ctx's done channel; the last one to wake closes finished. */
void wake_parked(void *ctx)
{
    api->chan_recv(api->context_done(ctx), NULL);
    if (__atomic_sub_fetch(&left, 1, __ATOMIC_SEQ_CST) == 0)
        api->chan_close(finished);
}
"""


def settle(goal=0, timeout=600.0):
    """Wait until at least `goal` goroutines exist and the count is stable
    (they have all reached their receive, or the last round's have all
    exited)."""
    deadline = time.monotonic() + timeout
    last, stable = -1, 0
    while time.monotonic() < deadline:
        n = gopy.runtime.num_goroutine()
        stable = stable + 1 if n == last and n >= goal else 0
        if stable >= 5:
            return
        last = n
        time.sleep(0.02)
    raise SystemExit("goroutines did not settle")


def python_round(n, plain_channel=False):
    if plain_channel:   # baseline: the same goroutines parked on a Chan, woken by close()
        ch = gopy.Chan()
        done, cancel = ch.recv_only(), ch.close
    else:
        ctx, cancel = context.with_cancel(context.background())
        done = ctx.done()
    started = itertools.count(1)
    counter = itertools.count(1)
    all_started = gopy.Chan(1)
    finished = gopy.Chan(1)

    def parked():
        if next(started) == n:
            all_started.send(None)
        done.recv()
        if next(counter) == n:
            finished.send(None)

    for _ in range(n):
        gopy.go(parked)
    all_started.recv()
    time.sleep(0.2)     # the last ones reach their receive and park
    t0 = time.perf_counter()
    cancel()
    t1 = time.perf_counter()
    finished.recv()
    t2 = time.perf_counter()
    return (t1 - t0) / n, (t2 - t0) / n


def build_c(tmpdir):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    src = os.path.join(tmpdir, "wake.c")
    lib = os.path.join(tmpdir, "libwake.so")
    with open(src, "w") as f:
        f.write(C_SOURCE)
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-I", gopy.get_include(), src, "-o", lib],
                   check=True)
    return ctypes.CDLL(lib)


def api_table():
    get = ctypes.pythonapi.PyCapsule_GetPointer
    get.restype = ctypes.c_void_p
    get.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get(gopy._gopy._C_API, b"gopy._gopy._C_API")


def c_round(lib, n):
    ctx, cancel = context.with_cancel(context.background())
    ctx.done()
    finished = gopy.Chan(0, ctype=ctypes.c_int64)
    lib.wake_init.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    if lib.wake_init(api_table(), finished.handle, n) != 0:
        raise SystemExit("C API table too old")
    settle()  # the last round's goroutines may still be exiting
    base = gopy.runtime.num_goroutine()
    for _ in range(n):
        gopy.go_c(lib.wake_parked, ctx.handle)
    settle(base + n)
    time.sleep(0.1)
    t0 = time.perf_counter()
    cancel()
    t1 = time.perf_counter()
    finished.recv_ok()
    t2 = time.perf_counter()
    return (t1 - t0) / n, (t2 - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="goroutines (default 100000)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, GOMAXPROCS={gopy.runtime.gomaxprocs()}, "
          f"{os.cpu_count()} CPUs, N={args.n}")
    rows = []
    for r in range(args.repeat):
        rows.append(("python", *python_round(args.n)))
    for r in range(args.repeat):
        rows.append(("python/Chan", *python_round(args.n, plain_channel=True)))
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_c(tmp)
        if lib is not None:
            for r in range(args.repeat):
                rows.append(("C", *c_round(lib, args.n)))
    print(f"{'goroutines':>12}  {'cancel() ns/goroutine':>22}  {'cancel..all woke ns/goroutine':>30}")
    for kind, cancel_s, total_s in rows:
        print(f"{kind:>12}  {cancel_s * 1e9:>22.0f}  {total_s * 1e9:>30.0f}")
    print("(python/Chan: the same Python goroutines parked on a plain Chan woken by close(),"
          " for comparison)")
    for kind in ("python", "python/Chan", "C"):
        best = [t for k, _, t in rows if k == kind]
        if best:
            print(f"best {kind}: {min(best) * 1e9:.0f} ns per goroutine woken "
                  f"({'within' if min(best) <= 1e-6 else 'OVER'} the 1 us target)")


if __name__ == "__main__":
    main()
