"""How deep one step of a W13 client reaches into a goroutine's stack.

    PYTHONPATH=. python benchmarks/stack_depth.py [STEP ...] [--n 300]

For each step (default: all, each in a fresh process), n goroutines each make that call
once and then park in a WaitGroup wait; their stacks are read as
`benchmarks/host_threads.py --hold` reads them, to the byte: resident pages, and how far
below the top the lowest written byte (C frames) and the highest (Python frames) lie. What docs/decisions.md §15 ("W13's second page, gone") found the deepest calls with.
"""

import argparse
import os
import socket
import subprocess
import sys

if __package__ in (None, ""):  # `python benchmarks/stack_depth.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gopy  # noqa: E402
from benchmarks.host_threads import stack_report  # noqa: E402
from benchmarks.py.gopy_w import _in_goroutine as in_goroutine  # noqa: E402
from benchmarks.servers import raise_fd_limit  # noqa: E402
from benchmarks.workloads import Server  # noqa: E402


def steps(port):
    address = ("127.0.0.1", port)

    def connect():
        s = socket.socket()
        s.connect(address)
        return s

    def round_trip():
        s = socket.create_connection(address)
        s.sendall(b"x" * 64)
        s.recv(64)
        return s

    # Each returns what it opened: kept open while the stacks are read (a
    # socket dropped in the goroutine would be finalised there, deeper).
    return {
        "park": lambda: None,
        "socket": socket.socket,
        "getaddrinfo": lambda: socket.getaddrinfo(*address, 0, socket.SOCK_STREAM),
        "connect": connect,
        "create_connection": lambda: socket.create_connection(address),
        "round_trip": round_trip,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", nargs="*", help="park, socket, getaddrinfo, connect, "
                                            "create_connection, round_trip (default: all)")
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    raise_fd_limit()
    table = steps(Server.get("echo").port)
    if len(args.step) != 1:
        # One process per step: a stack reused from an earlier step keeps its
        # pages and its deepest bytes.
        for name in args.step or table:
            subprocess.run([sys.executable, __file__, name, "--n", str(args.n)], check=True)
        return
    for name in args.step:
        call, keep = table[name], []
        ready, hold = gopy.WaitGroup(), gopy.WaitGroup()
        ready.add(args.n)
        hold.add(1)

        def goroutine():
            keep.append(call())
            ready.done()
            hold.wait()

        def body():
            for _ in range(args.n):
                gopy.go(goroutine)
            ready.wait()
            print(f"== {name}")
            stack_report(grain=1)
            hold.done()

        in_goroutine(body)
        for s in keep:
            if s is not None and hasattr(s, "close"):
                s.close()


if __name__ == "__main__":
    main()
