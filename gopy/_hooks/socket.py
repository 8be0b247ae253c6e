"""socket.socket and ssl.SSLSocket: blocking operations park the goroutine.

The methods are replaced on the socket.socket class itself, so every socket
made by the standard library (socket(), create_connection, socketpair,
accept, fromfd, makefile's reads and writes, http.client, urllib, smtplib,
socketserver, ssl) parks, and isinstance checks are unchanged.  Outside a
goroutine each method calls the original at once.  Inside one:

- A socket with timeout 0 (non-blocking) calls the original: it never waits.
- A blocking socket (timeout None, the default) keeps its descriptor's
  flags, because a thread sharing the socket expects a blocking one.  recv,
  recv_into, recvfrom, recvfrom_into, recvmsg, recvmsg_into, send, sendto,
  sendmsg and sendall's pieces are called with MSG_DONTWAIT added to their
  flags; on EAGAIN the goroutine parks on the netpoller until the descriptor
  is ready, and tries again.  recv, recv_into, send and sendall do this
  in C (src/python/hooks.c, _gopy.socket_io) when their arguments are
  plain (ints, a contiguous buffer, no keywords), for sockets with a
  timeout as well (parking until ready or the deadline), and hold the GIL
  across the system call; the functions below are their fallback for the
  rest.
- A socket with a timeout already has a non-blocking descriptor, but
  CPython polls before every operation, for as long as the timeout: the
  goroutine parks until the descriptor is ready or the deadline passes
  (TimeoutError('timed out'), socket.timeout), then calls the original,
  which finds it ready.  Should another reader or writer of the same
  socket take the readiness first, that poll blocks the thread for up to
  the timeout.
- connect and connect_ex run with the socket's timeout 0 for the call (its
  descriptor non-blocking: nothing else uses a socket while it connects),
  then park until it is writable and read SO_ERROR, as CPython does.  A
  host name in the address is resolved on an offload thread.
- accept (socket._accept) parks until the socket is readable; a blocking
  socket's descriptor is then non-blocking for the accept() call alone (a
  window shared, counted, by the goroutines accepting on it at once: a
  thread calling accept() on the same socket inside that window gets
  BlockingIOError), and a goroutine that lost the connection to another
  parks again.
- sendfile on a blocking socket sends through send (os.sendfile would
  block the thread); with a timeout it is the original, which waits
  through selectors (hooked).
- close: the real close (_real_close) first calls netpoll_close, so that
  goroutines waiting on the socket wake with OSError(EBADF).

ssl.SSLSocket: read (and so recv, recv_into, makefile), write, send (and
so sendall), do_handshake and unwrap run with the socket's timeout 0 for
the call, and park on each SSLWantReadError / SSLWantWriteError until the
socket is ready (a TLS record arriving in pieces, a write larger than the
socket's buffer, a handshake's round trips), then call again; past the
timeout, one last call with a timeout of a microsecond raises the
original's own TimeoutError.  An SSLSocket serves one user at a time
(OpenSSL's rule), so no thread sees that timeout meanwhile.
"""

import errno
import operator
import os
import socket
import threading
import time

import _socket

from .. import _gopy
from ._deadline import deadline_after
from ._patch import Patches

_in_goroutine = _gopy.in_goroutine
_READ, _WRITE = _gopy.POLL_READ, _gopy.POLL_WRITE
_DONTWAIT = socket.MSG_DONTWAIT
_monotonic = time.monotonic
_ss = _socket.socket
_family = _ss.family.__get__

_patches = Patches()


def _ready(sock, mode, deadline):
    """Park until sock is ready for mode: False if the deadline (monotonic
    seconds or None) passed first.  A closed socket is 'ready': the
    original call that follows reports it."""
    fd = sock.fileno()
    return fd < 0 or _gopy.netpoll_wait(fd, mode, deadline)


def _park(sock, mode, deadline):
    if not _ready(sock, mode, deadline):
        raise TimeoutError("timed out")


def _io(sock, original, mode, args, dontwait, timeout):
    """original(sock, *args) parking instead of blocking.  dontwait: the
    same arguments with MSG_DONTWAIT in the flags, or None where they are
    not understood (the original then judges them: it raises)."""
    if timeout is None:
        if dontwait is None:
            return original(sock, *args)
        while True:
            try:
                return original(sock, *dontwait)
            except BlockingIOError:
                pass
            _park(sock, mode, None)
    _park(sock, mode, deadline_after(timeout))
    return original(sock, *args)


def _with_dontwait(args, flags_at, fill, most):
    """args with MSG_DONTWAIT or-ed into the flags at position flags_at;
    fill: the defaults of the positions from 1 up to it.  None when the
    count is wrong or the flags are no integer."""
    n = len(args)
    if not 0 < n <= most:
        return None
    if n > flags_at:
        try:
            flags = operator.index(args[flags_at])
        except TypeError:
            return None
        return args[:flags_at] + (flags | _DONTWAIT,) + args[flags_at + 1:]
    return args + fill[n - 1:] + (_DONTWAIT,)


def _io_method(name, mode, flags_at, fill, most):
    original = getattr(_ss, name)

    def method(self, *args, **kwargs):
        if kwargs or not _in_goroutine():
            return original(self, *args, **kwargs)
        timeout = self.gettimeout()
        if timeout == 0.0:
            return original(self, *args)
        return _io(self, original, mode, args, _with_dontwait(args, flags_at, fill, most),
                   timeout)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = original.__doc__
    return method


# name, waits for, position of flags, defaults of the positions before it, most arguments
_IO_METHODS = (
    ("recv", _READ, 1, (), 2),
    ("recv_into", _READ, 2, (0,), 3),
    ("recvfrom", _READ, 1, (), 2),
    ("recvfrom_into", _READ, 2, (0,), 3),
    ("recvmsg", _READ, 2, (0,), 3),
    ("recvmsg_into", _READ, 2, (0,), 3),
    ("send", _WRITE, 1, (), 2),
    ("sendmsg", _WRITE, 2, ((),), 4),
)


def sendto(self, *args, **kwargs):
    if kwargs or not _in_goroutine():
        return _ss.sendto(self, *args, **kwargs)
    timeout = self.gettimeout()
    if timeout == 0.0:
        return _ss.sendto(self, *args)
    dontwait = None
    if len(args) == 2:  # sendto(data, address)
        dontwait = (args[0], _DONTWAIT, args[1])
    elif len(args) == 3:  # sendto(data, flags, address)
        try:
            dontwait = (args[0], operator.index(args[1]) | _DONTWAIT, args[2])
        except TypeError:
            pass
    return _io(self, _ss.sendto, _WRITE, args, dontwait, timeout)


def sendall(self, *args, **kwargs):
    if kwargs or not _in_goroutine():
        return _ss.sendall(self, *args, **kwargs)
    timeout = self.gettimeout()
    if timeout == 0.0 or not 0 < len(args) <= 2:
        return _ss.sendall(self, *args)
    try:
        flags = operator.index(args[1]) if len(args) == 2 else 0
    except TypeError:
        return _ss.sendall(self, *args)
    # As CPython's since 3.5, the timeout bounds the whole call.
    deadline = deadline_after(timeout)
    data = args[0]
    # The first piece is the whole: send rejects what sendall would, alike.
    sent = _io(self, _ss.send, _WRITE, (data, flags), (data, flags | _DONTWAIT), timeout)
    with memoryview(data) as view, view.cast("B") as octets:
        while sent < len(octets):
            if deadline is not None:
                timeout = deadline - _monotonic()
                if timeout <= 0:
                    raise TimeoutError("timed out")
            rest = octets[sent:]
            sent += _io(self, _ss.send, _WRITE, (rest, flags), (rest, flags | _DONTWAIT), timeout)


def _names_a_host(family, address):
    """Does connect(address) make CPython resolve a host name (a blocking
    getaddrinfo)?  Not for an address literal."""
    if family not in (socket.AF_INET, socket.AF_INET6) or type(address) is not tuple \
            or not address or not isinstance(address[0], str) \
            or address[0] in ("", "<broadcast>"):
        return False
    try:
        _socket.inet_pton(family, address[0])
    except (OSError, ValueError):
        return True
    return False


_TIMED_OUT = -1  # _connect's result when the timeout passed


def _connect(sock, original, address):
    """original(sock, address), connect or connect_ex, parking while the
    connection is made: errno (0: connected) or _TIMED_OUT; the errors of
    the call itself are original's own."""
    timeout = sock.gettimeout()
    if timeout == 0.0 or sock.fileno() < 0:
        return original(sock, address) or 0
    sock.settimeout(0.0)
    try:
        try:
            # The C getter's int: socket.family's enum conversion goes through a
            # Python metaclass __call__, the deepest C stack of a W13 client.
            if _names_a_host(_family(sock), address):
                err = _gopy.offload(original, sock, address)
            else:
                err = original(sock, address)
        except BlockingIOError as e:  # connect's EINPROGRESS
            err = e.errno
    finally:
        sock.settimeout(timeout)
    if err == errno.EAGAIN and timeout is None:
        # A Unix socket's listener with a full backlog: a blocking connect
        # waits for room, which no readiness announces.
        return original(sock, address) or 0
    if err != errno.EINPROGRESS:
        return err or 0
    if not _ready(sock, _WRITE, deadline_after(timeout)):
        return _TIMED_OUT
    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return 0 if err == errno.EISCONN else err


def connect(self, *args, **kwargs):
    if kwargs or len(args) != 1 or not _in_goroutine():
        return _ss.connect(self, *args, **kwargs)
    err = _connect(self, _ss.connect, args[0])
    if err == _TIMED_OUT:
        raise TimeoutError("timed out")
    if err:
        raise OSError(err, os.strerror(err))


def connect_ex(self, *args, **kwargs):
    if kwargs or len(args) != 1 or not _in_goroutine():
        return _ss.connect_ex(self, *args, **kwargs)
    err = _connect(self, _ss.connect_ex, args[0])
    return errno.EWOULDBLOCK if err == _TIMED_OUT else err


# Blocking listening sockets made non-blocking for the accept() calls of
# goroutines now in one: fd -> how many.  The first in sets O_NONBLOCK,
# the last out clears it.  Guarded by _window_lock, held only around the
# count and fcntl, never across a wait.
_window_lock = threading.Lock()
_windows = {}


def _window(sock, fd, enter):
    with _window_lock:
        n = _windows.get(fd, 0)
        if enter:
            if n == 0:
                os.set_blocking(fd, False)  # before counting: it may raise
            _windows[fd] = n + 1
        elif n > 1:
            _windows[fd] = n - 1
        else:
            del _windows[fd]
            # Only while fd is still this socket's: a number closed
            # meanwhile may already name someone else's file.
            if sock.fileno() == fd:
                os.set_blocking(fd, True)


def _accept(self):
    if not _in_goroutine():
        return _ss._accept(self)
    timeout = self.gettimeout()
    fd = self.fileno()
    if timeout == 0.0 or fd < 0:
        return _ss._accept(self)
    if timeout is not None:
        _park(self, _READ, deadline_after(timeout))
        return _ss._accept(self)
    while True:
        _park(self, _READ, None)
        _window(self, fd, True)
        try:
            return _ss._accept(self)
        except BlockingIOError:
            pass  # another took the connection first
        finally:
            _window(self, fd, False)


_original_sendfile = socket.socket.sendfile
_original_real_close = socket.socket._real_close


def sendfile(self, file, offset=0, count=None):
    if _in_goroutine() and self.gettimeout() is None:
        return self._sendfile_use_send(file, offset, count)
    return _original_sendfile(self, file, offset, count)


sendfile.__doc__ = _original_sendfile.__doc__


# Default arguments: sockets are closed while the interpreter exits too,
# after this module's globals are gone.
def _real_close(self, _ss=_ss, _netpoll_close=_gopy.netpoll_close,
                _original=_original_real_close):
    fd = self.fileno()
    if fd >= 0:
        _netpoll_close(fd)
    _original(self, _ss)


# ---- ssl ------------------------------------------------------------------------

def _install_ssl():
    import ssl

    want = (ssl.SSLWantReadError, ssl.SSLWantWriteError)

    def parking(original, needs_sslobj=True):
        """original(self, ...) run non-blocking, parking on each
        SSLWantRead/WriteError until the socket is ready, then again."""

        def method(self, *args, **kwargs):
            timeout = self.gettimeout()
            if timeout == 0.0 or needs_sslobj and self._sslobj is None or not _in_goroutine():
                return original(self, *args, **kwargs)
            deadline = deadline_after(timeout)
            while True:
                self.settimeout(0.0)
                try:
                    return original(self, *args, **kwargs)
                except want as e:
                    mode = _READ if isinstance(e, ssl.SSLWantReadError) else _WRITE
                finally:
                    self.settimeout(timeout)
                if not _ready(self, mode, deadline):
                    # One last try that may wait a moment, so that the
                    # TimeoutError is the original's own (its messages
                    # differ by operation, the handshake's carries a line
                    # of _ssl.c).
                    self.settimeout(1e-6)
                    try:
                        return original(self, *args, **kwargs)
                    finally:
                        self.settimeout(timeout)

        method.__name__ = method.__qualname__ = original.__name__
        method.__doc__ = original.__doc__
        return method

    SSLSocket = ssl.SSLSocket
    # recv, recv_into and makefile's reads go through read; sendall through
    # send.  do_handshake(block=True) of a non-blocking socket blocks, as
    # the original does.
    for name in ("read", "write", "send", "unwrap"):
        _patches.replace(SSLSocket, name, parking(getattr(SSLSocket, name)))
    original_handshake = SSLSocket.do_handshake
    parked_handshake = parking(original_handshake)

    def do_handshake(self, block=False):
        if block and self.gettimeout() == 0.0:
            return original_handshake(self, block)
        return parked_handshake(self)

    do_handshake.__doc__ = original_handshake.__doc__
    _patches.replace(SSLSocket, "do_handshake", do_handshake)


# Done in C (hooks.c, socket_io) for a socket that waits, with plain
# arguments, inside a goroutine; the Python hooks above are their fallback.
_IN_C = ("recv", "recv_into", "send", "sendall")


def install():
    cls = socket.socket
    hooks = {spec[0]: _io_method(*spec) for spec in _IO_METHODS}
    for fn in (sendto, sendall, connect, connect_ex):
        fn.__doc__ = getattr(_ss, fn.__name__).__doc__
        hooks[fn.__name__] = fn
    for name in _IN_C:
        hooks[name] = _gopy.socket_io(name, getattr(_ss, name), hooks[name])
    for name, hook in hooks.items():
        _patches.replace(cls, name, hook)
    _patches.replace(cls, "_accept", _accept)
    _patches.replace(cls, "sendfile", sendfile)
    _patches.replace(cls, "_real_close", _real_close)
    _install_ssl()


def uninstall():
    _patches.undo()
