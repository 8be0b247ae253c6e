"""The resolver calls run on an offload thread inside goroutines.

getaddrinfo, gethostbyname, gethostbyname_ex, gethostbyaddr, getnameinfo
and getfqdn block in the C library (files, DNS, NSS modules) where no
netpoller can see: inside a goroutine they go through gopy.offload, as Go
sends its cgo resolver's calls to a thread of their own; the goroutine
parks meanwhile and gets the very result or exception.  Outside goroutines
they are the originals.  Replaced as attributes of the socket module, so
socket.create_connection and every module that calls socket.getaddrinfo
at call time is covered; a name bound earlier with `from socket import
getaddrinfo` is not.
"""

import functools
import socket

from .. import _gopy
from ._patch import Patches

NAMES = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo",
         "getfqdn")

_in_goroutine = _gopy.in_goroutine
_offload = _gopy.offload
_patches = Patches()


def _offloaded(original):
    @functools.wraps(original)
    def hook(*args, **kwargs):
        if _in_goroutine():
            return _offload(original, *args, **kwargs)
        return original(*args, **kwargs)

    return hook


# The one entry getaddrinfo gives a numeric address, by socket type: the
# type as the enum and the protocol it fills in (glibc's gaih_inet_typeproto
# table).  The enum members are looked up here, not made per call: an enum's
# constructor is a Python metaclass __call__, called from C, the deepest C
# stack of a goroutine that connects.
_KIND_AND_PROTOCOL = {socket.SOCK_STREAM: (socket.SOCK_STREAM, socket.IPPROTO_TCP),
                      socket.SOCK_DGRAM: (socket.SOCK_DGRAM, socket.IPPROTO_UDP)}
_FAMILIES = (socket.AF_INET, socket.AF_INET6)  # AddressFamily members
# Plain ints: IntFlag's operators are Python methods, called from C (deep).
_OTHER_FLAGS = ~int(socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)


def _numeric_addrinfo(host, port, family, type, proto, flags):
    """getaddrinfo's answer for an address literal with a numeric port, in the
    common case (one socket type, no flag that changes the answer), computed
    without the C library, or None for every other case.  As asyncio's
    _ipaddr_info does, for the same reasons: no resolver is needed, and
    glibc's getaddrinfo uses over 3 KiB of C stack even for a literal, which
    would take every goroutine that connects a page of memory more.  Only
    inet_pton's strict literals (dotted quads, RFC 4291 text, no scope) are
    taken: getaddrinfo reads '127.1' and '010.0.0.1' its own way."""
    # No generator here (all(...)): each resumption is a C-level call of the
    # evaluator, a stack page of its own for every goroutine that connects.
    if not (isinstance(family, int) and isinstance(type, int) and isinstance(proto, int)):
        return None
    if (flags & _OTHER_FLAGS) or type not in _KIND_AND_PROTOCOL:
        return None
    kind, protocol = _KIND_AND_PROTOCOL[type]
    if proto not in (0, protocol):
        return None
    if port is None:
        port = 0
    elif isinstance(port, (str, bytes)):
        if not (port.isdigit() and port.isascii() and len(port) <= 5):
            return None
        port = int(port)
    elif port.__class__ is not int:  # not bool, nor an int subclass
        return None
    if not 0 <= port <= 65535:
        return None
    if isinstance(host, bytes):
        if not host.isascii():
            return None
        host = host.decode("ascii")
    elif not isinstance(host, str) or not host.isascii():
        return None
    for af in _FAMILIES:
        if family not in (0, af):
            continue
        try:
            packed = socket.inet_pton(af, host)
        except OSError:
            continue
        if af == socket.AF_INET:  # inet_pton took it: already in inet_ntop's form
            address = (host, port)
        else:
            address = (socket.inet_ntop(af, packed), port, 0, 0)
        return [(af, kind, protocol, "", address)]
    return None


def _getaddrinfo_hook(original):
    offloaded = _offloaded(original)
    numeric = int(socket.AI_NUMERICHOST)

    @functools.wraps(original)
    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if _in_goroutine() and isinstance(flags, int):
            answer = _numeric_addrinfo(host, port, family, type, proto, flags)
            if answer is not None:
                return answer
            try:
                return original(host, port, family, type, proto, flags | numeric)
            except socket.gaierror:
                pass  # a name to resolve, or an error the real call reports itself
        return offloaded(host, port, family, type, proto, flags)

    return getaddrinfo


def install():
    for name in NAMES:
        original = getattr(socket, name)
        hook = _getaddrinfo_hook(original) if name == "getaddrinfo" else _offloaded(original)
        _patches.replace(socket, name, hook)


def uninstall():
    _patches.undo()
