"""Ping-pong of one byte over a socketpair, µs per round trip (docs/decisions.md §10, §13).

    PYTHONPATH=. python benchmarks/netpoll_pingpong.py [--rounds 20000] [--reps 5]

  goroutines-netpoll  two Python goroutines on one thread; each recv is tried on a
                      non-blocking socket and waits in gopy._gopy.netpoll_wait on
                      BlockingIOError
  goroutines-hooked   the same with plain blocking sockets: socket.recv/sendall park through
                      the standard-library hooks (when installed)
  threads             two threading.Threads with blocking sockets
"""

import argparse
import socket
import statistics
import threading
import time

import gopy
from gopy import _gopy


def _netpoll_side(s, rounds, first, done):
    s.setblocking(False)
    for i in range(rounds):
        if first:
            s.send(b"x")
        while True:
            try:
                s.recv(1)
                break
            except BlockingIOError:
                _gopy.netpoll_wait(s, _gopy.POLL_READ)
        if not first:
            s.send(b"x")
    done.send(None)


def _plain_side(s, rounds, first, done):
    for _ in range(rounds):
        if first:
            s.sendall(b"x")
        s.recv(1)
        if not first:
            s.sendall(b"x")
    if done is not None:
        done.send(None)


def goroutines(rounds, side):
    a, b = socket.socketpair()
    done = gopy.Chan(2)
    start = gopy.Chan()

    def both():  # started from one goroutine: the two share its thread
        gopy.go(side, a, rounds, True, done)
        gopy.go(side, b, rounds, False, done)
        start.send(None)

    t = time.perf_counter()
    gopy.go(both)
    start.recv()
    done.recv()
    done.recv()
    el = time.perf_counter() - t
    a.close()
    b.close()
    return el / rounds * 1e6


def threads(rounds):
    a, b = socket.socketpair()
    ts = [threading.Thread(target=_plain_side, args=(a, rounds, True, None)),
          threading.Thread(target=_plain_side, args=(b, rounds, False, None))]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    el = time.perf_counter() - t
    a.close()
    b.close()
    return el / rounds * 1e6


def _hooks_installed():
    try:
        from gopy import _hooks
    except ImportError:
        return False
    return _hooks.installed()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    rows = {"goroutines-netpoll": lambda: goroutines(args.rounds, _netpoll_side),
            "goroutines-hooked": lambda: goroutines(args.rounds, _plain_side),
            "threads": lambda: threads(args.rounds)}
    if not _hooks_installed():  # plain sockets would block the shared thread for good
        del rows["goroutines-hooked"]
    for name, fn in rows.items():
        runs = [fn() for _ in range(args.reps)]
        print(f"{name:20} median {statistics.median(runs):7.2f} us   "
              f"runs {' '.join(f'{x:.2f}' for x in runs)}")


if __name__ == "__main__":
    main()
