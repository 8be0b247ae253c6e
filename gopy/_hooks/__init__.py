"""The standard library's blocking calls park the calling goroutine.

Inside a Python goroutine, time.sleep, socket.socket's operations (and so
ssl, http.client, urllib.request, smtplib, socketserver...), the resolver
calls, select.select, select.poll, selectors, waiting for a subprocess
or on its pipes, and waiting on a concurrent.futures.Future park the goroutine instead of blocking its thread, which
runs the other goroutines bound to it meanwhile.  Outside goroutines (the
main thread, threading.Threads, ctypes callbacks from C goroutines) each
hooked call goes straight to the original.  One module per family says
what it covers and how: time, socket (with ssl), select (with selectors),
subprocess, resolver, futures.

install() runs once at `import gopy`, unless the environment variable
GOPY_BLOCKING_HOOKS is 0; uninstall() puts the originals back.
"""

import os

from . import futures, resolver, select, socket, subprocess, time

_FAMILIES = (time, socket, select, subprocess, resolver, futures)
_installed = False


def install():
    """Hook every family (once)."""
    global _installed
    if not _installed:
        for family in _FAMILIES:
            family.install()
        _installed = True


def uninstall():
    """Put every original back."""
    global _installed
    if _installed:
        for family in reversed(_FAMILIES):
            family.uninstall()
        _installed = False


def installed():
    return _installed


def install_unless_disabled():
    """install(), unless GOPY_BLOCKING_HOOKS=0."""
    if os.environ.get("GOPY_BLOCKING_HOOKS", "1").strip() != "0":
        install()
