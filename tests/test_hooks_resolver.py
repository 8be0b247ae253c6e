"""The resolver calls inside goroutines run on an offload thread while the
goroutine parks; results and errors are the originals'."""

import socket
import threading

import pytest

import gopy
from gopy import _hooks
from conftest import run_in_goroutine, run_in_thread
from hookcheck import parks

NAMES = ["getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo",
         "getfqdn"]


@pytest.fixture
def slow_resolver():
    """Every resolver call replaced, under the hooks, by one that waits for
    release() and says which thread it ran on."""
    release = threading.Event()
    threads = []

    def slow(*args, **kwargs):
        flags = args[5] if len(args) > 5 else kwargs.get("flags", 0)
        if flags & socket.AI_NUMERICHOST and not args[0][0].isdigit():
            # getaddrinfo's first, numeric-only try (no resolver needed)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        threads.append(threading.get_ident())
        if flags & socket.AI_NUMERICHOST:
            return "numeric", threading.get_ident()
        assert release.wait(60)
        return args, kwargs

    _hooks.resolver.uninstall()
    originals = {name: getattr(socket, name) for name in NAMES}
    try:
        for name in NAMES:
            setattr(socket, name, slow)
        _hooks.resolver.install()
        yield release, threads
    finally:
        _hooks.resolver.uninstall()
        for name, fn in originals.items():
            setattr(socket, name, fn)
        _hooks.resolver.install()
        assert socket.getaddrinfo.__wrapped__ is originals["getaddrinfo"]


@pytest.mark.parametrize("name", NAMES)
def test_resolver_calls_park_on_an_offload_thread(slow_resolver, name):
    release, threads = slow_resolver

    def block():
        return getattr(socket, name)("host.example", 80, flags=1), threading.get_ident()

    (args, me) = parks(block, release.set)
    if name == "getaddrinfo":  # the hook passes its parameters on by position
        assert args == (("host.example", 80, 0, 0, 0, 1), {})
    else:
        assert args == (("host.example", 80), {"flags": 1})
    assert len(threads) == 1 and threads[0] != me


def test_getaddrinfo_of_a_numeric_address_stays_on_the_goroutines_thread(slow_resolver):
    def resolve():
        return socket.getaddrinfo("127.0.0.1", 80), threading.get_ident()

    (result, ran_on), me = run_in_goroutine(resolve)
    assert result == "numeric" and ran_on == me


def test_getaddrinfo_of_a_literal_for_one_socket_type_calls_no_resolver(slow_resolver):
    """create_connection's lookup of an address literal is answered in Python, as
    asyncio's _ipaddr_info does: not even the numeric-only C call is made."""
    release, threads = slow_resolver
    got = run_in_goroutine(socket.getaddrinfo, "127.0.0.1", 80, 0, socket.SOCK_STREAM)
    assert got == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80))]
    assert [type(x) for x in got[0][:2]] == [socket.AddressFamily, socket.SocketKind]
    got = run_in_goroutine(socket.getaddrinfo, "::1", "443", socket.AF_INET6, socket.SOCK_DGRAM)
    assert got == [(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_UDP, "",
                    ("::1", 443, 0, 0))]
    assert threads == []


# Literals, and strings the C library reads as literals its own way ('127.1',
# octal '010.0.0.1', a scope): none needs a name server.
LITERAL_HOSTS = ["127.0.0.1", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1", "255.255.255.255",
                 "fe80::1", "fe80::1%lo", "2001:DB8::0001", "1:2:3:4:5:6:7:8", "127.1",
                 "010.0.0.1", "127.0.0.01", b"127.0.0.1", b"::1", None]
LITERAL_PORTS = [0, 80, "80", b"80", "080", 65535, 65536, -1, None, "", True, "\u0663"]


def test_getaddrinfo_of_literals_answers_as_the_c_library_does():
    """Every answer given without the C library equals the C library's, types
    included; what it does not take goes to the original."""
    import itertools

    cases = list(itertools.product(
        LITERAL_HOSTS, LITERAL_PORTS, [0, socket.AF_INET, socket.AF_INET6],
        [0, socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW], [0, 6, 17],
        [0, socket.AI_NUMERICHOST, socket.AI_NUMERICSERV, socket.AI_PASSIVE, socket.AI_CANONNAME]))

    def typed(result):
        if result[0] != "returned":
            return result
        return "returned", [(e, [type(x) for x in e]) for e in result[1]]

    def answers():
        return [typed(outcome(socket.getaddrinfo, *case)) for case in cases]

    # A bound that catches a hang only: over half the cases are errors that go
    # to the offloaded original (on 3.13t with the GIL off, about 13 s of them
    # on a quiet machine; over 30 s during a CI run).
    want = run_in_thread(answers, timeout=600)
    assert run_in_goroutine(answers, timeout=600) == want
    taken = sum(_hooks.resolver._numeric_addrinfo(*case) is not None for case in cases)
    assert taken == 1848  # of 34,560: the cases the Python answer covers (so it is tested)


def test_outside_goroutines_the_originals_run_on_the_callers_thread(slow_resolver):
    release, threads = slow_resolver
    release.set()
    socket.getaddrinfo("localhost", 80)
    run_in_thread(socket.gethostbyname, "localhost")
    assert threads[0] == threading.get_ident()
    assert len(threads) == 2 and threads[1] != threads[0]


def outcome(fn, *args):
    try:
        return "returned", fn(*args)
    except Exception as e:  # noqa: BLE001 - compared between callers
        return type(e), e.args


CASES = {
    "getaddrinfo localhost": (socket.getaddrinfo, "localhost", 80, 0, socket.SOCK_STREAM),
    "getaddrinfo literal": (socket.getaddrinfo, "127.0.0.1", "80"),
    "getaddrinfo no name": (socket.getaddrinfo, None, None),
    "getaddrinfo bad service": (socket.getaddrinfo, "localhost", "no-such-service"),
    "getaddrinfo bad type": (socket.getaddrinfo, 5, 80),
    "gethostbyname": (socket.gethostbyname, "localhost"),
    "gethostbyname bad type": (socket.gethostbyname, 5),
    "gethostbyname_ex": (socket.gethostbyname_ex, "127.0.0.1"),
    "gethostbyaddr": (socket.gethostbyaddr, "127.0.0.1"),
    "getnameinfo": (socket.getnameinfo, ("127.0.0.1", 80), socket.NI_NUMERICHOST),
    "getnameinfo bad address": (socket.getnameinfo, "x", 0),
    "getfqdn": (socket.getfqdn, "localhost"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_results_and_errors_are_the_originals(case):
    fn, *args = CASES[case]
    in_thread = run_in_thread(outcome, fn, *args)
    assert run_in_goroutine(outcome, fn, *args) == in_thread
    assert outcome(fn, *args) == in_thread


def test_many_goroutines_resolve_at_once():
    results = gopy.Chan(50)
    for _ in range(50):
        gopy.go(lambda: results.send(socket.getaddrinfo("localhost", 80, socket.AF_INET,
                                                        socket.SOCK_STREAM)))
    want = socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)
    got = [gopy.select(gopy.Recv(results), gopy.Recv(gopy.after(60)))[1] for _ in range(50)]
    assert got == [want] * 50
