"""What the blocking-call hooks cost.

Outside goroutines (the main thread) every hooked call is the original
behind one check: the table compares the hooked call with the original,
called on the same objects, for calls that do not wait (time.sleep(0), a
recv with data ready, a send, a zero-timeout select, a resolver call of a
numeric address).  Inside a goroutine: the socket calls that do not wait,
against the originals with MSG_DONTWAIT; a socketpair ping-pong between two
goroutines (each recv parks until the other's send), and the same between
two threads with the originals, per round trip.  Also `import gopy` with
the hooks and with GOPY_BLOCKING_HOOKS=0.

    PYTHONPATH=. python benchmarks/hooks_overhead.py [--repeat 5]
"""

import argparse
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time

import _socket

import gopy
from gopy import _hooks


def per_call(fn, n):
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def outside_rows(n):
    a, b = socket.socketpair()
    payload = b"x" * 16
    original_sleep = _hooks.time._original
    original_select = _hooks.select._original_select
    original_gai = socket.getaddrinfo.__wrapped__

    def recv_hooked():
        b.send(payload)
        a.recv(64)

    def recv_original():
        _socket.socket.send(b, payload)
        _socket.socket.recv(a, 64)

    rows = [
        ("time.sleep(0)", lambda: time.sleep(0), lambda: original_sleep(0)),
        ("send + recv, data ready", recv_hooked, recv_original),
        ("select.select, timeout 0", lambda: select.select([a], [a], [], 0),
         lambda: original_select([a], [a], [], 0)),
        ("getaddrinfo('127.0.0.1', 80)", lambda: socket.getaddrinfo("127.0.0.1", 80),
         lambda: original_gai("127.0.0.1", 80)),
    ]
    out = [(name, per_call(hooked, n), per_call(original, n)) for name, hooked, original in rows]
    a.close()
    b.close()
    return out


def inside_rows(n):
    """Inside a goroutine, calls that do not wait, hooked and as the original
    with MSG_DONTWAIT (what the hook asks of the system), and the cost of a
    would-block the original reports (a BlockingIOError): per call, seconds."""
    def rows():
        a, b = socket.socketpair()
        payload = b"x" * 16
        dontwait = socket.MSG_DONTWAIT
        ss = _socket.socket

        def would_block():
            try:
                ss.recv(a, 64, dontwait)
            except BlockingIOError:
                pass

        table = [
            ("send + recv, data ready", lambda: (b.send(payload), a.recv(64)),
             lambda: (ss.send(b, payload, dontwait), ss.recv(a, 64, dontwait))),
            ("sendall + recv_into, data ready",
             lambda: (b.sendall(payload), a.recv_into(buf)),
             lambda: (ss.sendall(b, payload, dontwait), ss.recv_into(a, buf, 0, dontwait))),
            ("recv that would block (original raises)", None, would_block),
        ]
        buf = bytearray(64)
        out = [(name, hooked and per_call(hooked, n), per_call(original, n))
               for name, hooked, original in table]
        a.close()
        b.close()
        return out

    box = gopy.Chan(1)
    gopy.go(lambda: box.send(rows()))
    return box.recv()


def ping_pong_goroutines(rounds):
    a, b = socket.socketpair()
    done = gopy.Chan(1)

    def echo():
        for _ in range(rounds):
            b.sendall(b.recv(64))

    def pinger():
        start = time.perf_counter()
        for _ in range(rounds):
            a.sendall(b"ping")
            a.recv(64)
        done.send(time.perf_counter() - start)

    gopy.go(echo)
    gopy.go(pinger)
    elapsed = done.recv()
    a.close()
    b.close()
    return elapsed / rounds


def ping_pong_threads(rounds):
    a, b = socket.socketpair()

    def echo():
        for _ in range(rounds):
            _socket.socket.sendall(b, _socket.socket.recv(b, 64))

    t = threading.Thread(target=echo)
    t.start()
    start = time.perf_counter()
    for _ in range(rounds):
        _socket.socket.sendall(a, b"ping")
        _socket.socket.recv(a, 64)
    elapsed = time.perf_counter() - start
    t.join()
    a.close()
    b.close()
    return elapsed / rounds


def import_time(hooks_on):
    env = dict(os.environ, GOPY_BLOCKING_HOOKS="1" if hooks_on else "0")
    code = "import time; t = time.perf_counter(); import gopy; print(time.perf_counter() - t)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       check=True)
    return float(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("-n", type=int, default=20000)
    args = ap.parse_args()
    runs = [outside_rows(args.n) for _ in range(args.repeat)]
    print(f"outside goroutines, µs per call (medians of {args.repeat}):")
    print(f"{'call':32} {'hooked':>8} {'original':>9} {'extra':>7}")
    for i, (name, _, _) in enumerate(runs[0]):
        hooked = statistics.median(r[i][1] for r in runs) * 1e6
        original = statistics.median(r[i][2] for r in runs) * 1e6
        print(f"{name:32} {hooked:8.3f} {original:9.3f} {hooked - original:7.3f}")
    runs = [inside_rows(args.n) for _ in range(args.repeat)]
    print(f"\ninside a goroutine, µs per call (medians of {args.repeat}; the original with "
          "MSG_DONTWAIT):")
    print(f"{'call':40} {'hooked':>8} {'original':>9}")
    for i, (name, hooked, _) in enumerate(runs[0]):
        h = "" if hooked is None else f"{statistics.median(r[i][1] for r in runs) * 1e6:8.3f}"
        original = statistics.median(r[i][2] for r in runs) * 1e6
        print(f"{name:40} {h:>8} {original:9.3f}")
    rounds = args.n // 4
    g = statistics.median(ping_pong_goroutines(rounds) for _ in range(args.repeat)) * 1e6
    t = statistics.median(ping_pong_threads(rounds) for _ in range(args.repeat)) * 1e6
    print(f"\nsocketpair ping-pong, µs per round trip: goroutines (parking) {g:.2f}, "
          f"threads (originals) {t:.2f}")
    on = statistics.median(import_time(True) for _ in range(args.repeat)) * 1e3
    off = statistics.median(import_time(False) for _ in range(args.repeat)) * 1e3
    print(f"import gopy, ms: hooks on {on:.1f}, GOPY_BLOCKING_HOOKS=0 {off:.1f}")


if __name__ == "__main__":
    main()
