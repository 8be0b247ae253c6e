"""select.select, select.poll and selectors: waiting parks the goroutine.

Inside a goroutine each wait first asks the original with a zero timeout
(which also validates the arguments, with the original's errors); when
nothing is ready and the timeout is not zero, the goroutine parks on the
netpoller until one of the descriptors is ready or the timeout passes, then
asks the original with a zero timeout again and returns that.  To wait for
many descriptors at once they go into a private epoll instance, made for
that wait and closed after it, whose own descriptor is readable when any of
them is ready; an EpollSelector's epoll descriptor is waited on directly.
A timeout argument the original would reject goes to the original, which
raises.  select.poll() returns a wrapper that mirrors the registrations
(type(select.poll()) is no longer select.poll's).  select.epoll objects
used directly are not hooked.
"""

import math
import operator
import select
import selectors
import sys

from .. import _gopy
from ._deadline import deadline_after
from ._patch import Patches

_in_goroutine = _gopy.in_goroutine
_patches = Patches()

_original_select = select.select
_original_poll = select.poll

_ODD = object()  # a timeout the original should judge (it raises)
_LONGEST = 2**63 / 1e9  # seconds: CPython's time limit (nanoseconds in an int64)


def _seconds(timeout):
    """A finite non-negative number of seconds as a float, else _ODD."""
    try:
        t = timeout if isinstance(timeout, float) else operator.index(timeout)
    except TypeError:
        return _ODD
    if not 0 <= t < _LONGEST:  # also NaN
        return _ODD
    return float(t)


def _wait_any(masks, deadline):
    """Park until one of the descriptors in masks (fd -> epoll events) is
    ready: False if the deadline passed first.  A descriptor epoll refuses
    as invalid ends the wait at once, for the caller's next poll to report;
    one that cannot be polled (a regular file, never exceptional) is left
    out."""
    ep = select.epoll()
    try:
        for fd, events in masks.items():
            try:
                ep.register(fd, events)
            except PermissionError:
                pass
            except OSError:
                return True
        return _gopy.netpoll_wait(ep.fileno(), _gopy.POLL_READ, deadline)
    finally:
        ep.close()


def _fd(obj):
    return obj if isinstance(obj, int) else obj.fileno()


def _select(*args, **kwargs):
    if kwargs or not 3 <= len(args) <= 4 or not _in_goroutine():
        return _original_select(*args, **kwargs)
    timeout = args[3] if len(args) == 4 else None
    seconds = None if timeout is None else _seconds(timeout)
    if seconds is _ODD:
        return _original_select(*args)
    lists = args[:3]
    if not all(type(objs) in (list, tuple) for objs in lists):
        try:
            lists = [list(objs) for objs in lists]  # iterators: read once
        except TypeError:
            return _original_select(*args)
    ready = _original_select(*lists, 0)
    if seconds == 0 or any(ready):
        return ready
    deadline = deadline_after(seconds)
    masks = {}
    for objs, events in zip(lists, (select.EPOLLIN, select.EPOLLOUT, select.EPOLLPRI)):
        for obj in objs:
            fd = _fd(obj)
            masks[fd] = masks.get(fd, 0) | events
    while True:
        if not _wait_any(masks, deadline):
            return _original_select(*lists, 0)
        ready = _original_select(*lists, 0)
        if any(ready):
            return ready


_select.__name__ = _select.__qualname__ = "select"
_select.__doc__ = _original_select.__doc__

_DEFAULT_POLL_EVENTS = select.POLLIN | select.POLLPRI | select.POLLOUT
# poll's and epoll's event bits are the same numbers on Linux; these are
# poll's results only.
_POLL_RESULTS_ONLY = select.POLLERR | select.POLLHUP | select.POLLNVAL
# The longest poll timeout (milliseconds, either sign) poll() takes: a C
# int until CPython 3.15, the clock's range (int64 nanoseconds) from then.
_POLL_LONGEST_MS = 2**31 - 1 if sys.version_info < (3, 15) else 2**63 / 1e6


class _Poll:
    """What select.poll() returns: the real poll object, and its
    registrations mirrored (fd -> events) so that a goroutine can park."""

    __slots__ = ("_poll", "_events")

    def __init__(self):
        self._poll = _original_poll()
        self._events = {}

    def register(self, *args, **kwargs):
        self._poll.register(*args, **kwargs)
        self._events[_fd(args[0])] = args[1] if len(args) > 1 else _DEFAULT_POLL_EVENTS

    def modify(self, *args, **kwargs):
        self._poll.modify(*args, **kwargs)
        self._events[_fd(args[0])] = args[1]

    def unregister(self, *args, **kwargs):
        self._poll.unregister(*args, **kwargs)
        del self._events[_fd(args[0])]

    def poll(self, *args, **kwargs):
        if kwargs or len(args) > 1 or not _in_goroutine():
            return self._poll.poll(*args, **kwargs)
        timeout = args[0] if args else None  # milliseconds; None or negative: forever
        if timeout is None:
            ms = None
        else:
            try:
                ms = timeout if isinstance(timeout, float) else operator.index(timeout)
            except TypeError:
                ms = _ODD
            if ms is _ODD or math.isnan(ms) or abs(ms) > _POLL_LONGEST_MS:
                return self._poll.poll(*args)
            if ms < 0:
                ms = None
        ready = self._poll.poll(0)
        if ready or ms == 0:
            return ready
        deadline = deadline_after(None if ms is None else ms / 1000)
        masks = {fd: events & ~_POLL_RESULTS_ONLY for fd, events in self._events.items()}
        while True:
            if not _wait_any(masks, deadline):
                return self._poll.poll(0)
            ready = self._poll.poll(0)
            if ready:
                return ready


def _poll():
    return _Poll()


_poll.__name__ = _poll.__qualname__ = "poll"
_poll.__doc__ = _original_poll.__doc__

_SELECTOR_EVENTS = ((selectors.EVENT_READ, select.EPOLLIN), (selectors.EVENT_WRITE, select.EPOLLOUT))


def _selector_ready(selector, deadline):
    if isinstance(selector, selectors.EpollSelector):
        return _gopy.netpoll_wait(selector.fileno(), _gopy.POLL_READ, deadline)
    masks = {}
    for key in selector.get_map().values():
        masks[key.fd] = sum(bits for event, bits in _SELECTOR_EVENTS if key.events & event)
    return _wait_any(masks, deadline)


def _selector_select(original):
    def select(self, timeout=None):
        if not _in_goroutine() or timeout is not None and not (
                isinstance(timeout, (int, float)) and 0 < timeout < _LONGEST):
            return original(self, timeout)
        ready = original(self, 0)
        if ready:
            return ready
        deadline = deadline_after(timeout)
        while True:
            if not _selector_ready(self, deadline):
                return original(self, 0)
            ready = original(self, 0)
            if ready:
                return ready

    select.__doc__ = original.__doc__
    return select


def install():
    _patches.replace(select, "select", _select)
    _patches.replace(select, "poll", _poll)
    for name in ("SelectSelector", "PollSelector", "EpollSelector"):
        cls = getattr(selectors, name, None)
        if cls is not None:
            _patches.replace(cls, "select", _selector_select(vars(cls).get("select", cls.select)))


def uninstall():
    _patches.undo()
