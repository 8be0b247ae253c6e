"""Property-based tests (hypothesis): random programs of channel, select
and close operations, checked against a model of Go's semantics (issue 7).

Two models:

- Sequential: one goroutine (or the main thread) runs the whole program,
  so every result is determined by the model (a buffer and a closed flag
  per channel) except select's random choice among ready cases, which must
  be one of the cases the model finds ready.  An operation the model says
  would block is run as a select with default, which must say "not ready".

- Concurrent: several goroutines (and, once THREAD_ACTORS is on, sometimes
  a threading.Thread) run a program each, interleaved by the scheduler.
  Results are checked with invariants that hold in every interleaving: every value whose send
  completed is received exactly once (by a program or by the final drain),
  no other value is ever received; one sender's values reach each
  receiver in the order sent; a value drained after the programs ended was
  sent after every value of that sender that a program received; exactly
  one close of each channel succeeds; once a program has seen a channel
  closed, its sends and closes raise ClosedChannelError and once it has
  seen it closed and drained, receives give (None, False); len is within
  [0, cap].  Programs cannot hang: a blocking select always has a timeout
  case, and plain sends and receives that would wait forever are released
  by closing every channel when the programs have made no progress for a
  while (a close is an operation like any other for the model).

HYPOTHESIS_PROFILE=stress runs 25 times the examples (about 3 minutes for
this file on 2 cores, instead of ~8 s).  A failure prints the falsifying
program and hypothesis' @reproduce_failure blob; a hung program fails with
gopy.runtime.stack() in the message.
"""

import collections
import os
import threading

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gopy  # noqa: E402
from gopy import ClosedChannelError, Recv, Send, select  # noqa: E402
from conftest import run_in_goroutine  # noqa: E402

STRESS = os.environ.get("HYPOTHESIS_PROFILE") == "stress"


def examples(n):
    """n examples (25 n under the stress profile), with a hang guard to match."""
    s = settings(max_examples=n * 25 if STRESS else n, deadline=None, print_blob=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    guard = pytest.mark.timeout(3600 if STRESS else 300)
    return lambda fn: guard(s(fn))


CAPS = st.sampled_from([0, 0, 1, 2, 3, 5])
VIEWS = st.sampled_from(["chan", "view"])  # the Chan itself or a directional view


def case(nchan):
    # ("send" | "recv", channel index or None for Go's nil channel)
    chan = st.one_of(st.integers(0, nchan - 1), st.none()) if nchan else st.none()
    return st.tuples(st.sampled_from(["send", "recv"]), chan)


# Operation kinds, weighted: values should flow before channels get closed.
KINDS = (["send"] * 6 + ["recv"] * 4 + ["recv_ok"] * 3 + ["close"] + ["len"]
         + ["select_default"] * 3 + ["select_timeout"] * 3)


def op(nchan):
    c = st.integers(0, nchan - 1)

    def build(kind):
        if kind == "select_default":
            return st.tuples(st.just(kind), st.lists(case(nchan), min_size=0, max_size=4))
        if kind == "select_timeout":
            return st.tuples(st.just(kind), st.lists(case(nchan), min_size=0, max_size=3),
                             st.sampled_from([0, 0.0005, 0.002]))
        return st.tuples(st.just(kind), c, VIEWS)

    return st.sampled_from(KINDS).flatmap(build)


@st.composite
def sequential_programs(draw):
    caps = draw(st.lists(CAPS, min_size=1, max_size=3))
    ops = draw(st.lists(op(len(caps)), min_size=1, max_size=40))
    iterate = draw(st.booleans())  # finish with `for v in ch` over closed channels
    return caps, ops, iterate


# ---- the sequential model ------------------------------------------------------------


class ChanModel:
    def __init__(self, cap):
        self.cap = cap
        self.buf = collections.deque()
        self.closed = False

    def send_ready(self):  # a send proceeds (or raises: closed) without blocking
        return self.closed or len(self.buf) < self.cap

    def recv_ready(self):
        return bool(self.buf) or self.closed


def endpoint(ch, view, direction):
    if view == "chan":
        return ch
    return ch.send_only() if direction == "send" else ch.recv_only()


def run_sequential(caps, ops, iterate):
    """Run the program on real channels, asserting each result against the
    model.  Returns the log of what happened (for the failure message)."""
    chans = [gopy.Chan(c) for c in caps]
    models = [ChanModel(c) for c in caps]
    log = []
    serial = iter(range(10**9))

    def would_block_send(ch, value):
        assert select(Send(ch, value), default=True) == (-1, None, False)

    def would_block_recv(ch):
        assert select(Recv(ch), default=True) == (-1, None, False)

    for o in ops:
        kind = o[0]
        if kind in ("send", "recv", "recv_ok", "close", "len"):
            _, i, view = o
            m = models[i]
            ch = endpoint(chans[i], view, "recv" if kind.startswith("recv") or kind == "len"
                          else "send")
            if kind == "send":
                v = ("v", next(serial))
                if m.closed:
                    with pytest.raises(ClosedChannelError):
                        ch.send(v)
                    log.append((kind, i, "closed"))
                elif m.send_ready():
                    assert ch.send(v) is None
                    m.buf.append(v)
                    log.append((kind, i, v))
                else:
                    would_block_send(ch, v)
                    log.append((kind, i, "blocks"))
            elif kind in ("recv", "recv_ok"):
                if not m.recv_ready():
                    would_block_recv(ch)
                    log.append((kind, i, "blocks"))
                    continue
                want = (m.buf.popleft(), True) if m.buf else (None, False)
                got = ch.recv_ok() if kind == "recv_ok" else (ch.recv(), want[1])
                assert got == want, (kind, i, got, want)
                log.append((kind, i, got))
            elif kind == "close":
                if m.closed:
                    with pytest.raises(ClosedChannelError):
                        ch.close()
                else:
                    assert ch.close() is None
                    m.closed = True
                log.append((kind, i))
            else:
                assert (len(ch), ch.cap) == (len(m.buf), m.cap)
        else:
            cases, objs = [], []
            for direction, i in o[1]:
                ch = chans[i] if i is not None else None
                if direction == "send":
                    v = ("v", next(serial))
                    cases.append(("send", i, v))
                    objs.append(Send(ch, v))
                else:
                    cases.append(("recv", i, None))
                    objs.append(Recv(ch))
            ready = {k for k, (d, i, _) in enumerate(cases) if i is not None and
                     (models[i].send_ready() if d == "send" else models[i].recv_ready())}
            closed_sends = {k for k in ready
                            if cases[k][0] == "send" and models[cases[k][1]].closed}
            if kind == "select_default":
                try:
                    k, value, ok = select(*objs, default=True)
                except ClosedChannelError:
                    assert closed_sends, "ClosedChannelError with no send case on a closed channel"
                    log.append((kind, "closed"))
                    continue
                if k == -1:
                    assert not ready and (value, ok) == (None, False)
                    log.append((kind, -1))
                    continue
            else:
                timeout = len(objs)
                objs.append(Recv(gopy.after(o[2])))
                try:
                    k, value, ok = select(*objs)
                except ClosedChannelError:
                    assert closed_sends
                    log.append((kind, "closed"))
                    continue
                if k == timeout:
                    # The timer may win even when a case was ready: it is a
                    # ready case too once it has fired.
                    assert ok and isinstance(value, float)
                    log.append((kind, "timeout"))
                    continue
            assert k in ready, (k, ready, cases)
            assert k not in closed_sends, "a send on a closed channel was performed"
            d, i, v = cases[k]
            m = models[i]
            if d == "send":
                assert (value, ok) == (None, True)
                m.buf.append(v)
            else:
                want = (m.buf.popleft(), True) if m.buf else (None, False)
                assert (value, ok) == want
            log.append((kind, k, value, ok))

    if iterate:
        for ch, m in zip(chans, models):
            if m.closed:
                assert list(ch.recv_only() if m.buf else ch) == list(m.buf)
                m.buf.clear()
    # What is left is exactly what the model holds, in order.
    for ch, m in zip(chans, models):
        assert len(ch) == len(m.buf)
        left = [select(Recv(ch), default=True) for _ in range(len(m.buf))]
        assert [v for _, v, _ in left] == list(m.buf)
        assert len(ch) == 0
    return log


@examples(150)
@given(sequential_programs())
def test_sequential_program_main_thread(program):
    run_sequential(*program)


@examples(100)
@given(sequential_programs())
def test_sequential_program_in_goroutine(program):
    run_in_goroutine(run_sequential, *program)


# ---- concurrent programs ---------------------------------------------------------------

STALL = 0.1  # no actor finished for this long: close every channel (not a timing assertion)
# One actor is sometimes a threading.Thread.  Off for now: a thread blocked
# on a channel gets a false DeadlockError when the main thread wakes from a
# timed wait (a woken foreign thread still counts as blocked until it has
# retaken the GIL: reported in issue 7).  Turn on once that is fixed.
THREAD_ACTORS = True


@st.composite
def concurrent_programs(draw):
    caps = draw(st.lists(CAPS, min_size=1, max_size=3))
    nactors = draw(st.integers(2, 4))
    programs = [draw(st.lists(op(len(caps)), min_size=1, max_size=15)) for _ in range(nactors)]
    # Sometimes one actor is a threading.Thread instead of a goroutine.
    thread_actor = draw(st.one_of(st.none(), st.integers(0, nactors - 1))) \
        if THREAD_ACTORS else None
    return caps, programs, thread_actor


class Actor:
    """Runs one program; records every event for the checker."""

    def __init__(self, aid, program, chans):
        self.aid = aid
        self.program = program
        self.chans = chans
        self.seq = 0
        self.events = []      # (kind, chan index, details...)
        self.errors = []      # invariant violations seen on the spot

    def tag(self):
        self.seq += 1
        return (self.aid, self.seq)

    def run(self):
        try:
            for o in self.program:
                self.step(o)
        except BaseException as e:  # noqa: BLE001 - reported by the checker
            self.errors.append(f"actor {self.aid}: unexpected {type(e).__name__}: {e}")

    def step(self, o):
        kind = o[0]
        chans = self.chans
        if kind in ("send", "recv", "recv_ok", "close", "len"):
            _, i, view = o
            ch = endpoint(chans[i], view, "recv" if kind.startswith("recv") or kind == "len"
                          else "send")
            if kind == "send":
                v = self.tag()
                try:
                    ch.send(v)
                    self.events.append(("sent", i, v))
                except ClosedChannelError:
                    self.events.append(("send_closed", i, v))
            elif kind == "recv":
                v = ch.recv()
                self.events.append(("recv", i, v, v is not None))
            elif kind == "recv_ok":
                v, ok = ch.recv_ok()
                if (v is None) == ok:
                    self.errors.append(f"recv_ok gave {(v, ok)}")
                self.events.append(("recv", i, v, ok))
            elif kind == "close":
                try:
                    ch.close()
                    self.events.append(("closed", i))
                except ClosedChannelError:
                    self.events.append(("close_closed", i))
            else:
                n, cap = len(ch), ch.cap
                if cap != chans[i].cap or not 0 <= n <= cap:
                    self.errors.append(f"len {n} cap {cap} of chan {i}")
            return
        cases, objs = [], []
        for direction, i in o[1]:
            ch = chans[i] if i is not None else None
            if direction == "send":
                v = self.tag()
                cases.append(("send", i, v))
                objs.append(Send(ch, v))
            else:
                cases.append(("recv", i, None))
                objs.append(Recv(ch))
        n = len(objs)
        try:
            if kind == "select_default":
                k, value, ok = select(*objs, default=True)
            else:
                k, value, ok = select(*objs, Recv(gopy.after(o[2])))
        except ClosedChannelError:
            # Some send case's channel is closed: that case was chosen.
            if not any(d == "send" and i is not None for d, i, _ in cases):
                self.errors.append("select raised ClosedChannelError without a send case")
            self.events.append(("select_closed", [i for d, i, _ in cases if d == "send"]))
            return
        if k == -1 or k == n:
            if k == -1 and kind != "select_default":
                self.errors.append("select without default returned -1")
            return
        if not 0 <= k < n:
            self.errors.append(f"select returned index {k} of {n}")
            return
        d, i, v = cases[k]
        if i is None:
            self.errors.append(f"select chose a nil-channel case {k}")
        elif d == "send":
            if (value, ok) != (None, True):
                self.errors.append(f"send case gave {(value, ok)}")
            self.events.append(("sent", i, v))
        else:
            self.events.append(("recv", i, value, ok))


def run_concurrent(caps, programs, thread_actor):
    chans = [gopy.Chan(c) for c in caps]
    actors = [Actor(a, p, chans) for a, p in enumerate(programs)]
    done = gopy.Chan(len(actors))

    def body(actor):
        actor.run()
        done.send(actor.aid)

    threads = []
    for a in actors:
        if a.aid == thread_actor:
            t = threading.Thread(target=body, args=(a,), daemon=True)
            t.start()
            threads.append(t)
        else:
            gopy.go(body, a)

    main_events = []

    def close_and_record(c, ch):
        try:
            ch.close()
            main_events.append(("closed", c))
        except ClosedChannelError:
            main_events.append(("close_closed", c))

    # Wait for the actors; if none finishes for a while, the rest are
    # blocked on plain sends/receives: close every channel to release them.
    finished = 0
    released = False
    rounds = 0
    while finished < len(actors):
        rounds += 1
        if rounds >= 400:  # 40 s: a hang, not slowness
            pytest.fail("actors did not finish after their channels were closed; "
                        f"{len(actors) - finished} left:\n{gopy.runtime.stack()}")
        i, _, _ = select(Recv(done), Recv(gopy.after(STALL)))
        if i == 0:
            finished += 1
        elif not released:
            for c, ch in enumerate(chans):
                close_and_record(c, ch)
            released = True
    for t in threads:
        t.join(30)
        assert not t.is_alive()

    # Every program has ended: close what is still open and drain.
    drained = []
    for c, ch in enumerate(chans):
        close_and_record(c, ch)
        n = len(ch)
        got = []
        while True:
            v, ok = ch.recv_ok()
            if not ok:
                break
            got.append(v)
        assert len(got) == n, f"chan {c}: len said {n}, drained {len(got)}"
        assert ch.recv_ok() == (None, False) and len(ch) == 0
        drained.append(got)
    check_concurrent(caps, actors, main_events, drained)


def check_concurrent(caps, actors, main_events, drained):
    errors = [e for a in actors for e in a.errors]
    assert not errors, errors

    # Exactly once: values whose send completed, per channel, are the
    # values received plus the values drained; nothing else shows up.
    sent = collections.Counter()
    received = collections.Counter()
    failed_sends = set()
    for a in actors:
        for e in a.events:
            if e[0] == "sent":
                sent[(e[1], e[2])] += 1
            elif e[0] == "send_closed":
                failed_sends.add(e[2])
            elif e[0] == "recv" and e[3]:
                received[(e[1], e[2])] += 1
    for c, got in enumerate(drained):
        for v in got:
            received[(c, v)] += 1
    assert all(n == 1 for n in sent.values())
    assert received == sent, (
        f"lost: {sorted((sent - received).elements())}, "
        f"phantom or duplicated: {sorted((received - sent).elements())}")
    assert not failed_sends & {v for (_, v) in received}, "a failed send was delivered"

    # FIFO per channel per sender, for each receiver; drained values come
    # after everything any program received from that sender.
    last_received = collections.defaultdict(int)  # (chan, sender) -> max seq any program got
    for a in actors:
        seen = collections.defaultdict(int)
        for e in a.events:
            if e[0] == "recv" and e[3]:
                c, (sender, seq) = e[1], e[2]
                assert seq > seen[(c, sender)], \
                    f"actor {a.aid} got {(sender, seq)} on chan {c} after seq {seen[(c, sender)]}"
                seen[(c, sender)] = seq
                last_received[(c, sender)] = max(last_received[(c, sender)], seq)
    for c, got in enumerate(drained):
        seen = collections.defaultdict(int)
        for sender, seq in got:
            assert seq > max(seen[sender], last_received[(c, sender)]), \
                f"drained {(sender, seq)} from chan {c} out of order"
            seen[sender] = seq
        if caps[c] == 0:
            assert got == [], "an unbuffered channel held values"

    # Close: exactly one close of each channel succeeds.
    closes = collections.Counter()
    for e in main_events + [e for a in actors for e in a.events]:
        if e[0] == "closed":
            closes[e[1]] += 1
    assert all(closes[c] == 1 for c in range(len(caps))), closes

    # Once a program has seen a channel closed, sends and closes fail, and
    # once it has seen it closed and drained, receives stay (None, False).
    for a in actors:
        seen_closed, seen_drained = set(), set()
        for e in a.events:
            kind, c = e[0], e[1]
            if kind == "sent" and c in seen_closed:
                raise AssertionError(f"actor {a.aid}: send on chan {c} after it saw it closed")
            if kind == "recv" and e[3] and c in seen_drained:
                raise AssertionError(f"actor {a.aid}: value from chan {c} after (None, False)")
            if kind == "select_closed":
                continue
            if kind in ("closed", "close_closed", "send_closed"):
                seen_closed.add(c)
            elif kind == "recv" and not e[3]:
                seen_closed.add(c)
                seen_drained.add(c)
        closes_after = [e for e in a.events if e[0] == "closed"]
        assert len(closes_after) <= len(caps)


@examples(60)
@given(concurrent_programs())
def test_concurrent_programs_keep_go_semantics(program):
    run_concurrent(*program)


# ---- a few fixed programs, so that the model checks are known to bite -----------------


def test_checker_catches_a_lost_value():
    caps = [2]
    a = Actor(0, [], None)
    a.events = [("sent", 0, (0, 1)), ("sent", 0, (0, 2))]
    b = Actor(1, [], None)
    b.events = [("recv", 0, (0, 1), True)]
    with pytest.raises(AssertionError, match="lost"):
        check_concurrent(caps, [a, b], [("closed", 0)], [[]])


def test_checker_catches_reordering_and_duplicates():
    a = Actor(0, [], None)
    a.events = [("sent", 0, (0, 1)), ("sent", 0, (0, 2))]
    b = Actor(1, [], None)
    b.events = [("recv", 0, (0, 2), True), ("recv", 0, (0, 1), True)]
    with pytest.raises(AssertionError, match="after seq"):
        check_concurrent([2], [a, b], [("closed", 0)], [[]])
    b.events = [("recv", 0, (0, 2), True)]
    with pytest.raises(AssertionError, match="out of order"):
        check_concurrent([2], [a, b], [("closed", 0)], [[(0, 1)]])
    b.events = [("recv", 0, (0, 1), True), ("recv", 0, (0, 1), True)]
    with pytest.raises(AssertionError, match="duplicated"):
        check_concurrent([2], [a, b], [("closed", 0)], [[(0, 2)]])


def test_checker_catches_close_violations():
    a = Actor(0, [], None)
    a.events = [("closed", 0), ("sent", 0, (0, 1))]
    with pytest.raises(AssertionError, match="after it saw it closed"):
        check_concurrent([1], [a], [], [[(0, 1)]])
    a.events = [("closed", 0)]
    with pytest.raises(AssertionError, match="Counter"):
        check_concurrent([1], [a], [("closed", 0)], [[]])  # closed twice
    a.events = [("recv", 0, None, False), ("recv", 0, (1, 1), True)]
    b = Actor(1, [], None)
    b.events = [("sent", 0, (1, 1))]
    with pytest.raises(AssertionError, match=r"after \(None, False\)"):
        check_concurrent([1], [a, b], [("closed", 0)], [[]])


def test_fixed_fan_in_program():
    # Two senders, one receiver, all plain blocking operations.
    caps = [1]
    programs = [[("send", 0, "chan")] * 5, [("send", 0, "view")] * 5,
                [("recv", 0, "chan")] * 10]
    run_concurrent(caps, programs, None)


def test_fixed_program_needing_release():
    # A receiver that waits for more than is sent is released by the close.
    run_concurrent([0], [[("send", 0, "chan")] * 2, [("recv_ok", 0, "chan")] * 3],
                   1 if THREAD_ACTORS else None)


def test_fixed_thread_and_goroutine_program():
    # A thread sends, a goroutine receives; nobody waits forever.
    run_concurrent([1], [[("send", 0, "view")] * 8, [("recv", 0, "view")] * 8], 0)
