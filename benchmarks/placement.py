"""Placement of Python goroutines: the figures that chose the policy (docs/decisions.md).

    PYTHONPATH=. python benchmarks/placement.py [--reps 5] [--hash-size BYTES]

Prints, median of --reps runs, in one process:
  pool-hash   8 workers started and parked on a jobs channel, then 64 x sha256 of
              --hash-size bytes (1 MiB): speedup over serial (the W10 shape)
  fresh-hash  the same 64 hashes, one fresh goroutine per job (W5)
  tpe-hash    the same with ThreadPoolExecutor(8)
  pingpong    two goroutines of different functions, unbuffered ping-pong, us per round trip (W2)
  pingpong-same  the same with both goroutines running one function (Go's classic shape)
  park-wake   20,000 goroutines of one function parked on a channel, woken by close: us each
  spawn       W1: 100,000 trivial goroutines started and joined from the main thread: us each
  homes       how many distinct threads the 8 pool workers ran on
"""

import argparse
import concurrent.futures
import hashlib
import statistics
import threading
import time

import gopy

def serial_hash(data):
    t = time.perf_counter()
    for d in data:
        hashlib.sha256(d).digest()
    return time.perf_counter() - t


def pool_hash(data):
    jobs, done = gopy.Chan(), gopy.WaitGroup()
    parked = gopy.WaitGroup()
    idents = set()
    parked.add(8)

    def worker():
        idents.add(threading.get_ident())
        parked.done()
        for d in jobs:
            hashlib.sha256(d).digest()
            done.done()

    for _ in range(8):
        gopy.go(worker)
    parked.wait()
    time.sleep(0.05)
    t = time.perf_counter()
    done.add(len(data))
    for d in data:
        jobs.send(d)
    done.wait()
    el = time.perf_counter() - t
    jobs.close()
    return el, len(idents)


def fresh_hash(data):
    wg = gopy.WaitGroup()
    t = time.perf_counter()
    wg.add(len(data))

    def job(d):
        hashlib.sha256(d).digest()
        wg.done()

    for d in data:
        gopy.go(job, d)
    wg.wait()
    return time.perf_counter() - t


def tpe_hash(ex, data):
    t = time.perf_counter()
    list(ex.map(lambda d: hashlib.sha256(d).digest(), data))
    return time.perf_counter() - t


def pingpong(n=20000, same=False):
    a, b, res = gopy.Chan(), gopy.Chan(), gopy.Chan(1)

    def server():
        for _ in range(n):
            b.send(a.recv() + 1)

    def client():
        v = 0
        for _ in range(n):
            a.send(v + 1)
            v = b.recv()
        res.send(v)

    def player(inp, out, first, report):
        v = 0
        for _ in range(n):
            if first:
                out.send(v + 1)
                v = inp.recv()
            else:
                out.send(inp.recv() + 1)
        if report:
            res.send(v)

    t = time.perf_counter()
    if same:
        gopy.go(player, a, b, False, False)
        gopy.go(player, b, a, True, True)
    else:
        gopy.go(server)
        gopy.go(client)
    res.recv()
    return (time.perf_counter() - t) / n * 1e6


def park_wake(n=20000):
    ch, ready, done = gopy.Chan(), gopy.WaitGroup(), gopy.WaitGroup()
    ready.add(n)
    done.add(n)

    def parked():
        ready.done()
        ch.recv()
        done.done()

    for _ in range(n):
        gopy.go(parked)
    ready.wait()
    time.sleep(0.1)
    t = time.perf_counter()
    ch.close()
    done.wait()
    return (time.perf_counter() - t) / n * 1e6


def spawn(n=100000):
    wg = gopy.WaitGroup()
    wg.add(n)

    def task():
        wg.done()

    t = time.perf_counter()
    for _ in range(n):
        gopy.go(task)
    wg.wait()
    return (time.perf_counter() - t) / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--hash-size", type=int, default=1 << 20, metavar="BYTES",
                    help="bytes each of the 64 hashes reads (default 1 MiB)")
    args = ap.parse_args()
    data = [bytes([i]) * args.hash_size for i in range(64)]
    rows = {k: [] for k in ("pool-hash", "fresh-hash", "tpe-hash", "pingpong", "pingpong-same",
                            "park-wake", "spawn", "homes")}
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        for _ in range(args.reps):
            s = serial_hash(data)
            el, homes = pool_hash(data)
            rows["pool-hash"].append(s / el)
            rows["homes"].append(homes)
            rows["fresh-hash"].append(s / fresh_hash(data))
            rows["tpe-hash"].append(s / tpe_hash(ex, data))
            rows["pingpong"].append(pingpong())
            rows["pingpong-same"].append(pingpong(same=True))
            rows["park-wake"].append(park_wake())
            rows["spawn"].append(spawn())
    units = {"pool-hash": "x", "fresh-hash": "x", "tpe-hash": "x", "homes": "threads"}
    for k, v in rows.items():
        print(f"{k:14} median {statistics.median(v):8.3f} {units.get(k, 'us')}   "
              f"runs {' '.join(f'{x:.3f}' for x in v)}")


if __name__ == "__main__":
    main()
