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


def _getaddrinfo_hook(original):
    offloaded = _offloaded(original)
    numeric = socket.AI_NUMERICHOST

    @functools.wraps(original)
    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if _in_goroutine() and isinstance(flags, int):
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
