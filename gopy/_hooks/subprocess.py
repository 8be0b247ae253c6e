"""subprocess: waiting for a child and using its pipes park the goroutine.

- Popen._wait (wait(), and so run, call, communicate, the with-block's
  end): inside a goroutine, the goroutine parks on the netpoller until a
  pidfd of the child (os.pidfd_open) is readable, that is until the child
  has exited, or until wait's timeout (then TimeoutExpired, as the
  original raises it); the original then reaps the child without
  blocking.  Where no pidfd can be had (an old kernel, a child reaped by
  someone else) it is the original, whose timeout polling sleeps through
  the hooked time.sleep.
- The pipes (stdin, stdout, stderr = PIPE) of a Popen made inside a
  goroutine sit on a FileIO subclass of their own: a goroutine's read
  first parks until the pipe is readable and a write writes PIPE_BUF
  bytes at a time, each after parking until the pipe is writable (such a
  write never blocks; a raw write still writes everything, as a blocking
  one does).  The descriptors keep their flags (the child, or a second
  child the pipe is handed to, expects them blocking), and threads using
  these pipes get FileIO's behaviour.  Closing the pipe wakes a goroutine
  waiting on it with OSError(EBADF).  The buffered and text layers above
  are io's own, made as io.open makes them, so proc.stdout.read(),
  readline(), iteration and communicate's one-pipe shortcut all park.
  They are made so by giving subprocess an io module whose open() builds
  them for descriptors opened inside goroutines.
- communicate with several pipes, or a timeout, waits in a
  selectors.PollSelector (hooked).

Not covered: Popen's own start (fork/exec, and the read that waits for the
exec to succeed) runs on the thread, a millisecond or so.
"""

import io
import os
import select
import subprocess
import types

from .. import _gopy
from ._deadline import deadline_after
from ._patch import Patches

_in_goroutine = _gopy.in_goroutine
_READ, _WRITE = _gopy.POLL_READ, _gopy.POLL_WRITE
_PIPE_BUF = select.PIPE_BUF
_READ_CHUNK = 65536  # a pipe's default capacity
_patches = Patches()


def _wait_for(file, mode):
    if not file.closed:  # else the original call says so
        _gopy.netpoll_wait(file.fileno(), mode)


class _PipeFileIO(io.FileIO):
    # A default argument: close may run while the interpreter exits, after
    # this module's globals are gone.
    def close(self, _netpoll_close=_gopy.netpoll_close):
        if not self.closed:
            _netpoll_close(self.fileno())
        super().close()


class PipeReader(_PipeFileIO):
    """The read end of a Popen pipe made inside a goroutine."""

    def readinto(self, buffer):
        if _in_goroutine():
            _wait_for(self, _READ)
        return super().readinto(buffer)

    def read(self, size=-1):
        if _in_goroutine():
            if size is None or isinstance(size, int) and size < 0:
                return self.readall()
            _wait_for(self, _READ)
        return super().read(size)

    def readall(self):
        if not _in_goroutine():
            return super().readall()
        chunks = []
        while True:
            _wait_for(self, _READ)
            chunk = super().read(_READ_CHUNK)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


class PipeWriter(_PipeFileIO):
    """The write end of a Popen pipe made inside a goroutine."""

    def write(self, b):
        if not _in_goroutine() or self.closed:
            return super().write(b)
        try:
            view = memoryview(b)
        except TypeError:
            return super().write(b)  # which rejects it in its own words
        with view, view.cast("B") as octets:
            written = 0
            while True:
                _wait_for(self, _WRITE)
                written += super().write(octets[written:written + _PIPE_BUF])
                if written >= len(octets):
                    return written


def _open(file, mode="r", buffering=-1, *args, **kwargs):
    """io.open for subprocess: Popen's pipes made inside a goroutine get
    PipeReader / PipeWriter under io's buffered layer, sized as io.open
    sizes it."""
    if type(file) is not int or mode not in ("rb", "wb") or buffering == 1 or args or kwargs \
            or not _in_goroutine():
        return io.open(file, mode, buffering, *args, **kwargs)
    raw = PipeReader(file, "r") if mode == "rb" else PipeWriter(file, "w")
    if buffering == 0:
        return raw
    size = raw._blksize if buffering < 0 else buffering
    return io.BufferedReader(raw, size) if mode == "rb" else io.BufferedWriter(raw, size)


_io_for_subprocess = types.ModuleType(io.__name__, io.__doc__)
vars(_io_for_subprocess).update(vars(io))
_io_for_subprocess.open = _open

_original_wait = subprocess.Popen._wait


def _pidfd(pid):
    """A pidfd of our child pid that has not been reaped, or None."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
    try:
        # Still our child (the pid not reaped and reused meanwhile)?
        os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except (AttributeError, OSError):
        os.close(fd)
        return None
    return fd


def _wait(self, timeout):
    if self.returncode is not None or not _in_goroutine() \
            or timeout is not None and not isinstance(timeout, (int, float)):
        return _original_wait(self, timeout)
    deadline = deadline_after(timeout)
    fd = _pidfd(self.pid)
    if fd is None:
        return _original_wait(self, timeout)
    try:
        exited = _gopy.netpoll_wait(fd, _READ, deadline)
    finally:
        _gopy.netpoll_close(fd)
        os.close(fd)
    if not exited:
        raise subprocess.TimeoutExpired(self.args, timeout)
    return _original_wait(self, timeout)


def install():
    _patches.replace(subprocess, "io", _io_for_subprocess)
    _patches.replace(subprocess.Popen, "_wait", _wait)


def uninstall():
    _patches.undo()
