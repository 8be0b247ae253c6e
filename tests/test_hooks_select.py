"""select.select, select.poll and selectors inside goroutines park; the
results and errors are the originals'."""

import math
import os
import select
import selectors
import socket

import pytest

from gopy import _hooks
from conftest import run_in_goroutine, run_in_thread
from hookcheck import open_fds, parks


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_select_parks(pair):
    a, b = pair
    assert parks(lambda: select.select([a], [], []), lambda: b.send(b"x")) == ([a], [], [])


def test_select_with_a_timeout_parks_and_times_out(pair):
    a, _ = pair
    assert parks(lambda: select.select([a, a.fileno()], [], [a], 0.2)) == ([], [], [])


def test_select_returns_everything_ready_at_once(pair):
    a, b = pair
    b.send(b"x")
    r, w, x = run_in_goroutine(select.select, [a, b], [a, b], [a, b])
    assert (r, w, x) == ([a], [a, b], [])


def test_select_reads_iterators_once(pair):
    a, b = pair

    def block():
        return select.select(iter([b, a]), (), (s for s in [a]), 30)

    assert parks(block, lambda: b.send(b"x")) == ([a], [], [])


def test_poll_parks(pair):
    a, b = pair

    def block():
        p = select.poll()
        p.register(a, select.POLLIN)
        p.register(b.fileno(), select.POLLIN)
        p.modify(b, select.POLLIN | select.POLLPRI)
        p.unregister(b)
        return p.poll()

    assert parks(block, lambda: b.send(b"x")) == [(a.fileno(), select.POLLIN)]


def test_poll_timeout_in_milliseconds(pair):
    a, _ = pair

    def block():
        p = select.poll()
        p.register(a, select.POLLIN)
        return p.poll(200), p.poll(0), p.poll(1.5)

    assert parks(block) == ([], [], [])


def test_poll_reports_hang_up(pair):
    a, b = pair

    def block():
        p = select.poll()
        p.register(a, 0)  # no events asked for: still told of a hang-up
        return p.poll()

    fd = a.fileno()
    assert parks(block, lambda: b.shutdown(socket.SHUT_RDWR)) == [(fd, select.POLLHUP)]


@pytest.mark.parametrize("cls", ["SelectSelector", "PollSelector", "EpollSelector",
                                 "DefaultSelector"])
def test_selectors_park(pair, cls):
    a, b = pair

    def block():
        with getattr(selectors, cls)() as sel:
            sel.register(a, selectors.EVENT_READ, "a")
            sel.register(b, selectors.EVENT_READ, "b")
            sel.modify(b, selectors.EVENT_READ, "b again")
            return [(key.fileobj, key.data, mask) for key, mask in sel.select()]

    assert parks(block, lambda: b.send(b"x")) == [(a, "a", selectors.EVENT_READ)]


@pytest.mark.parametrize("cls", ["SelectSelector", "PollSelector", "EpollSelector"])
def test_selectors_time_out_and_wait_on_nothing(cls):
    def block():
        with getattr(selectors, cls)() as sel:
            return sel.select(0.1), sel.select(-1), sel.select(0)

    assert parks(block) == ([], [], [])


def outcome(fn):
    try:
        return "returned", fn()
    except Exception as e:  # noqa: BLE001 - compared between callers
        return type(e), str(e)


_pipe = []


def _writable_fd():
    """The write end of a pipe kept open for the session (always writable)."""
    if not _pipe:
        _pipe.extend(os.pipe())
    return _pipe[1]


def errors_cases():
    def closed_fd():
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        return r

    def writable_poll():
        p = select.poll()
        p.register(_writable_fd(), select.POLLOUT)
        return p

    def poll_of(*fds):
        p = select.poll()
        for fd in fds:
            p.register(fd)
        return p

    return {
        "select negative timeout": lambda: select.select([], [], [], -1),
        "select NaN": lambda: select.select([], [], [], math.nan),
        "select str timeout": lambda: select.select([], [], [], "1"),
        "select huge timeout": lambda: select.select([], [], [], 1e300),
        "select not a list": lambda: select.select(5, [], []),
        "select bad member": lambda: select.select(["x"], [], [], 0.01),
        "select negative fd": lambda: select.select([-1], [], [], 0.01),
        "select closed fd": lambda: select.select([closed_fd()], [], [], 0.01),
        "select two args": lambda: select.select([], []),
        "select keyword": lambda: select.select([], [], [], timeout=1),
        "select ready and bad timeout": lambda: select.select([0], [1], [], "x"),
        "poll str timeout": lambda: poll_of().poll("x"),
        "poll NaN": lambda: poll_of().poll(math.nan),
        # Past an int (CPython 3.15 takes it: then it returns at once).
        "poll huge": lambda: writable_poll().poll(2**40),
        "poll huge negative": lambda: writable_poll().poll(-2**40),
        "poll beyond the clock": lambda: poll_of().poll(2**70),
        "poll two args": lambda: poll_of().poll(1, 2),
        "poll closed fd": lambda: poll_of(closed_fd()).poll(10),
        "poll register bad": lambda: poll_of("x"),
        "poll modify unknown": lambda: select.poll().modify(0, 1),
        "poll unregister unknown": lambda: select.poll().unregister(0),
        "selector str timeout": lambda: selectors.EpollSelector().select("x"),
        "selector NaN timeout": lambda: selectors.PollSelector().select(math.nan),
    }


@pytest.mark.parametrize("case", sorted(errors_cases()))
def test_results_and_errors_are_the_originals(case):
    fn = errors_cases()[case]
    in_thread = run_in_thread(outcome, fn)
    assert run_in_goroutine(outcome, fn) == in_thread
    assert outcome(fn) == in_thread


def test_select_of_a_regular_file_in_the_exceptional_list(tmp_path):
    # epoll refuses regular files; select finds them always readable and
    # writable, never exceptional.
    with open(tmp_path / "f", "w") as f:
        assert run_in_goroutine(select.select, [], [], [f], 0.05) == ([], [], [])
        assert run_in_goroutine(select.select, [f], [], [f], 5) == ([f], [], [])


def test_outside_goroutines_the_originals_run():
    assert select.select is not _hooks.select._original_select
    p = select.poll()
    assert type(p._poll) is type(_hooks.select._original_poll())
    r, w = os.pipe()
    os.write(w, b"x")
    assert select.select([r], [], [], 5) == ([r], [], [])
    assert run_in_thread(select.select, [r], [], [], 5) == ([r], [], [])
    os.close(r)
    os.close(w)


def test_no_descriptors_leak(pair):
    a, b = pair

    def waits():
        select.select([a], [], [], 0.01)
        p = select.poll()
        p.register(a, select.POLLIN)
        p.poll(10)
        for cls in (selectors.SelectSelector, selectors.PollSelector, selectors.EpollSelector):
            with cls() as sel:
                sel.register(a, selectors.EVENT_READ)
                sel.select(0.01)

    run_in_goroutine(waits)
    before = open_fds()
    for _ in range(20):
        run_in_goroutine(waits)
    assert open_fds() == before
