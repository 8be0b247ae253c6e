"""Loopback servers for W11-W13, each run as a process of its own.

    python -m benchmarks.servers http    ThreadingHTTPServer (W11, W12)
    python -m benchmarks.servers echo    asyncio TCP echo server (W13)

The server prints its port on stdout, then serves until its stdin reaches EOF, which
happens when the process that started it exits, however it exits (the benchmark worker
leaves with os._exit): no server outlives its benchmark.

Why a process of its own: a server in the measured process would compete for the GIL
with the client it serves, and that competition would differ between peers (gevent's
hub, gopy's Ms, asyncio's one thread). In another process every peer meets the same
server.

HTTP paths: ``GET /sleep/<ms>/<i>`` sleeps ms milliseconds and answers ``<i>``;
``GET /stats`` answers JSON {"served", "max_in_flight"}; ``GET /reset`` too, then zeroes
both.
A request is in flight from the start of its handler to the end of its answer.
"""

import json
import os
import resource
import sys
import threading
import time

LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft if hard == resource.RLIM_INFINITY else hard


def exit_when_parent_goes() -> None:
    """Exit the process once stdin reaches EOF (the parent closed it or died)."""
    def watch():
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def serve_http() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    counts_lock = threading.Lock()
    counts = {"served": 0, "in_flight": 0, "max_in_flight": 0}  # guarded by counts_lock

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            parts = self.path.strip("/").split("/")
            if parts[0] == "sleep" and len(parts) == 3:
                with counts_lock:
                    counts["in_flight"] += 1
                    counts["max_in_flight"] = max(counts["max_in_flight"],
                                                  counts["in_flight"])
                # Counted before the answer: a client that has its answer may
                # /reset at once (the next workload), and a count landing after
                # that reset was taken for one of the next workload's requests.
                try:
                    time.sleep(int(parts[1]) / 1000)
                finally:
                    with counts_lock:
                        counts["in_flight"] -= 1
                        counts["served"] += 1
                self._answer(parts[2].encode())
            elif parts[0] in ("stats", "reset"):
                with counts_lock:
                    body = {k: counts[k] for k in ("served", "max_in_flight")}
                    if parts[0] == "reset":
                        counts["served"] = counts["max_in_flight"] = 0
                self._answer(json.dumps(body).encode())
            else:
                self.send_error(404)

        def _answer(self, body: bytes):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # one line per request would cost more than the work
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = LISTEN_BACKLOG  # socketserver's default of 5 drops SYNs

    raise_fd_limit()
    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    exit_when_parent_goes()
    server.serve_forever()


def keep_freed_memory() -> None:
    """Let malloc keep what it frees, on glibc (a no-op elsewhere).

    asyncio reads each socket with ``recv(256 KiB)``: a 256 KiB buffer per message, cut
    to the message's size. Past glibc's default thresholds that buffer is either mapped
    and unmapped each time, or taken from the top of the heap and given back to the
    kernel each time (brk up, page faults, brk down), depending on where the heap's free
    space happens to lie: W13's echo server then spent 3.4 s or 6-9 s of CPU on the same
    100,000 messages, run by run, and W13's time followed it whichever peer was the
    client (docs/decisions.md §15, "W13's two groups")."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    mallopt(M_MMAP_THRESHOLD, 1 << 20)
    mallopt(M_TRIM_THRESHOLD, 64 << 20)


def serve_echo() -> None:
    import asyncio

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=LISTEN_BACKLOG)
        print(server.sockets[0].getsockname()[1], flush=True)
        exit_when_parent_goes()
        await server.serve_forever()

    raise_fd_limit()
    keep_freed_memory()
    asyncio.run(main())


if __name__ == "__main__":
    {"http": serve_http, "echo": serve_echo}[sys.argv[1]]()
