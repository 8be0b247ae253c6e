"""ssl.SSLSocket inside goroutines: the handshake, reads and writes park;
timeouts and errors are the originals'.  The certificate is made for the
session by the openssl command."""

import http.client
import http.server
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

import gopy
from conftest import recv_value, run_in_goroutine, run_in_thread
from hookcheck import parks, run_parked_pool


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


@pytest.fixture
def contexts(cert):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*cert)
    client = ssl.create_default_context(cafile=cert[0])
    return server, client


@pytest.fixture
def tls_pair(contexts):
    """A connected (server, client) pair of SSLSockets, handshakes done."""
    server_ctx, client_ctx = contexts
    with socket.create_server(("127.0.0.1", 0)) as listener:
        box = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "server", server_ctx.wrap_socket(listener.accept()[0], server_side=True)))
        t.start()
        client = client_ctx.wrap_socket(socket.create_connection(listener.getsockname()),
                                        server_hostname="localhost")
        t.join(30)
    yield box["server"], client
    box["server"].close()
    client.close()


@pytest.mark.parametrize("op", ["recv", "recv_into", "read", "makefile"])
def test_reads_park(tls_pair, op):
    server, client = tls_pair
    calls = {
        "recv": lambda: client.recv(100),
        "recv_into": lambda: (lambda buf: bytes(buf[:client.recv_into(buf)]))(bytearray(100)),
        "read": lambda: client.read(100),
        "makefile": lambda: client.makefile("rb").readline(),
    }
    assert parks(calls[op], lambda: server.sendall(b"hello\n")) == b"hello\n"


def test_a_record_larger_than_a_read_is_read_from_openssls_buffer(tls_pair):
    server, client = tls_pair
    server.sendall(bytes(range(100)))

    def reads():
        return [client.recv(10) for _ in range(10)]

    # The first read takes the whole record in; the other nine find their
    # bytes already decrypted (pending) and must not wait on the socket.
    assert run_in_goroutine(reads) == [bytes(range(i, i + 10)) for i in range(0, 100, 10)]


def test_sendall_parks_while_the_peer_does_not_read(tls_pair):
    server, client = tls_pair
    data = bytes(range(256)) * 16384  # 4 MiB: more than the socket buffers hold
    got = gopy.Chan(1)

    def reader():
        buf = bytearray()
        while len(buf) < len(data):
            buf += server.recv(1 << 16)
        got.send(bytes(buf))

    assert parks(lambda: client.sendall(data),
                 lambda: threading.Thread(target=reader, daemon=True).start()) is None
    assert recv_value(got) == data


def test_handshake_parks_on_both_sides(contexts):
    server_ctx, client_ctx = contexts
    with socket.create_server(("127.0.0.1", 0)) as listener:
        tls_listener = server_ctx.wrap_socket(listener, server_side=True)
        raw = socket.create_connection(tls_listener.getsockname())
        client = {}

        def start_client():
            # The client says its ClientHello only now: the server's
            # handshake (in accept) had to wait for it.
            def run():
                c = client["sock"] = client_ctx.wrap_socket(raw, server_hostname="localhost")
                c.sendall(b"after the handshake")

            threading.Thread(target=run, daemon=True).start()

        def accept():
            conn, _ = tls_listener.accept()
            with conn:
                return conn.recv(100), conn.version()

        data, version = parks(accept, start_client)
        assert data == b"after the handshake" and version.startswith("TLS")
        client["sock"].close()


def test_client_handshake_in_a_goroutine(contexts):
    server_ctx, client_ctx = contexts
    with socket.create_server(("127.0.0.1", 0)) as listener:
        go_on = threading.Event()

        def server():
            conn, _ = listener.accept()
            assert go_on.wait(30)
            with server_ctx.wrap_socket(conn, server_side=True) as s:
                s.sendall(s.recv(100).upper())

        threading.Thread(target=server, daemon=True).start()

        def block():
            with client_ctx.wrap_socket(socket.create_connection(listener.getsockname()),
                                        server_hostname="localhost") as c:
                c.sendall(b"shout")
                return c.recv(100)

        assert parks(block, go_on.set) == b"SHOUT"


def outcome(fn):
    try:
        return "returned", fn()
    except Exception as e:  # noqa: BLE001 - compared between callers
        return type(e), str(e)


def test_timeouts_are_the_originals(contexts):
    server_ctx, client_ctx = contexts
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def handshake_times_out():
            # The server accepts but never answers the ClientHello.
            with socket.create_connection(listener.getsockname()) as raw:
                raw.settimeout(0.1)
                client_ctx.wrap_socket(raw, server_hostname="localhost")

        in_thread = run_in_thread(outcome, handshake_times_out)
        assert in_thread[0] is TimeoutError
        assert re.fullmatch(r"_ssl\.c:\d+: The handshake operation timed out", in_thread[1])
        assert run_in_goroutine(outcome, handshake_times_out) == in_thread


def test_read_timeout_is_the_originals(tls_pair):
    _, client = tls_pair
    client.settimeout(0.1)
    in_thread = run_in_thread(outcome, lambda: client.recv(10))
    assert in_thread == (TimeoutError, "The read operation timed out")
    assert run_in_goroutine(outcome, lambda: client.recv(10)) == in_thread


def test_errors_are_the_originals(tls_pair, contexts):
    server, client = tls_pair
    cases = [
        lambda: client.send(b"x", 1),
        lambda: client.sendall(b"x", 1),
        lambda: client.recv(10, 1),
        lambda: client.sendall("text"),
        lambda: client.recvfrom(10),
        lambda: contexts[1].wrap_socket(socket.socket(), server_hostname="localhost").recv(1),
        lambda: contexts[1].wrap_socket(socket.socket(), server_hostname="localhost")
        .do_handshake(),
    ]
    for fn in cases:
        assert run_in_goroutine(outcome, fn) == run_in_thread(outcome, fn)


class Server(http.server.ThreadingHTTPServer):
    # Clients connect all at once: a full accept queue would drop SYNs and
    # cost a one-second retransmission.
    request_queue_size = 128


def test_https_worker_pool(cert, contexts):
    # 8 goroutines, 24 GETs over TLS to a threading server whose handler
    # sleeps 50 ms: ideal 0.15 s, serial 1.2 s.
    server_ctx, client_ctx = contexts

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(0.05)
            body = self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    # Handshakes in the handler threads, not one after another in accept.
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True,
                                          do_handshake_on_connect=False)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    def get(n):
        conn = http.client.HTTPSConnection("localhost", port, context=client_ctx, timeout=30)
        conn.request("GET", f"/{n}")
        body = conn.getresponse().read()
        conn.close()
        return body

    try:
        results, elapsed = run_parked_pool(get)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert sorted(results) == sorted(f"/{n}".encode() for n in range(24))
    assert elapsed < 0.8
