"""Bad input never crashes (issue 7): thousands of random steps drive the
Python API with random operations and random arguments -- wrong types,
huge and negative sizes, NaN and infinite durations, None, closed
channels, views of the wrong direction, selects of mixed garbage, and
objects whose __index__ / __bool__ / __hash__ / __eq__ / total_seconds /
__del__ call back into gopy (or raise) while gopy is parsing them, plus
re-entrant callbacks: an excepthook and after_func / context callbacks
that use channels themselves.

Only documented exceptions may come out (TypeError, ValueError,
OverflowError, MemoryError, ClosedChannelError; RuntimeError from
unlocking what is not locked; IndexError from the atomic buffer
functions; AttributeError for calling a method a view does not have; and
FuzzError, raised on purpose by the callbacks).  The driver runs in a
subprocess, so a crash fails the test instead of killing pytest; the seed
is printed to replay it:

    python tests/test_fuzz_api.py --seed SEED --steps N [--trace]

(--trace prints each step before running it, so a crash shows its step;
--stats counts the outcomes of each kind of operation.)
The main thread only makes calls that cannot wait forever (non-blocking
forms, selects with a timer case, short sleeps); goroutines make any call,
and those that end up waiting forever stay parked until exit, as in Go.
scripts/asan_python.sh runs this under AddressSanitizer.
"""

import ctypes
import datetime
import faulthandler
import gc
import os
import random
import signal
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

STEPS = int(os.environ.get("GOPY_FUZZ_STEPS", 3000))


# ---- the test -----------------------------------------------------------------------


def _run_driver(seed, steps, timeout):
    """Run the driver; returns (exit status or None if it hung, stdout, stderr).
    A hung driver is sent SIGUSR1 first: it dumps every thread's stack."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("GOMAXPROCS", None)
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--seed", str(seed),
                          "--steps", str(steps)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGUSR1)
        try:
            out, err = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        return None, out, err


if __name__ != "__main__":
    import pytest

    @pytest.mark.timeout(600)
    @pytest.mark.parametrize("which", ["fixed-seed", "random-seed"])
    def test_fuzz_api_never_crashes(which):
        seed = 20261126 if which == "fixed-seed" else random.SystemRandom().randrange(2**32)
        seed = int(os.environ.get("GOPY_FUZZ_SEED", seed))
        status, out, err = _run_driver(seed, STEPS, timeout=300)
        detail = (f"seed {seed}, " + ("HUNG (stacks below)" if status is None else
                                     f"exit status {status}")
                  + f"; replay: python tests/test_fuzz_api.py --seed {seed} --steps {STEPS} "
                  f"--trace\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-12000:]}")
        assert status == 0, detail
        assert f"fuzz ok: {STEPS} steps" in out, detail


# ---- the driver ------------------------------------------------------------------------


class FuzzError(Exception):
    """Raised on purpose by callbacks and hooks."""


class Sink:
    """sys.stderr while fuzzing: tracebacks of the excepthook's own
    failures are expected, and would drown the output."""

    def write(self, text):
        return len(text)

    def flush(self):
        pass


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int64), ("y", ctypes.c_double)]


class Fuzzer:
    def __init__(self, seed, steps, trace, stats=False):
        import collections

        import gopy

        self.gopy = gopy
        self.rng = random.Random(seed)
        self.seed = seed
        self.steps = steps
        self.trace = trace
        self.stats = collections.Counter() if stats else None
        self.violations = []
        self.depth = 0                     # re-entrancy depth of callbacks
        self.shared = [gopy.Chan(1), gopy.Chan(0), gopy.Chan(8)]  # goroutines use these
        self.private = []                  # (Chan, cap) only the main thread touches
        self.timers = []
        self.syncs = []
        self.contexts = []
        self.cancels = []                  # every context's cancel, called at the end
        self.libc = ctypes.CDLL(None)
        self.libc.malloc.restype = ctypes.c_void_p
        self.ops = self._op_table()
        self.allowed = (TypeError, ValueError, OverflowError, MemoryError,
                        gopy.ClosedChannelError, FuzzError)
        gopy.excepthook = self.excepthook

    # -- helpers --------------------------------------------------------------

    def violation(self, where, exc):
        self.violations.append(f"{where}: {type(exc).__name__}: {exc}\n"
                               + "".join(traceback.format_exception(exc)))

    def chan(self):
        return self.rng.choice(self.shared)

    def shared_chan(self):
        return self.rng.choice(self.shared)

    def value(self):
        r = self.rng
        return r.choice([None, 0, -1, 2**100, 1.5, float("nan"), "s", b"b", (), [], {},
                         object(), self.evil(), self.shared_chan(), Point(1, 2)])

    def evil(self, value=None):
        mode = self.rng.choice(["reenter", "raise", "plain"])
        if value is None:
            value = self.rng.choice([0, 1, 3, -1, 2**70, 1e-4])
        return Evil(self, value, mode)

    def size(self):
        r = self.rng
        # (2**24: a 128 MiB buffer that can be made; 2**31 would be 16 GiB, which
        # ASan's allocator makes too, slowly: the huge ones fail at once.)
        return r.choice([0, 1, 2, 5, 64, -1, -(2**70), 2**24, 2**40, 2**62, 2**63 - 1, 2**64,
                         10**100, sys.maxsize, True, 1.5, float("nan"), None, "3", b"3",
                         self.evil(), self.evil(2), [], Point(0, 0)])

    def duration(self, finite_small=False):
        r = self.rng
        small = [0, 0.0, 1e-4, 0.001, -1, -1e308, float("-inf"), False,
                 datetime.timedelta(microseconds=50), datetime.timedelta(days=-3),
                 self.evil(1e-4)]
        if finite_small:
            return r.choice(small)
        return r.choice(small + [True, float("nan"), float("inf"), 1e308, 10**30, 2**63, -(2**70),
                                 datetime.timedelta(days=999999999), None, "1", b"", [],
                                 object(), Point(0, 0), self.evil(), self.evil(float("nan"))])

    def ctype(self):
        return self.rng.choice([None, ctypes.c_int64, ctypes.c_double, ctypes.c_int8, Point,
                                ctypes.c_char * 0, ctypes.c_char * 70000, ctypes.c_char * 3,
                                ctypes.c_int64(1), int, "c_int64", 8, self.evil()])

    def case(self):
        g, r = self.gopy, self.rng
        pick = r.random()
        if pick < 0.35:
            return g.Recv(r.choice([self.chan(), None, self.chan().recv_only()]))
        if pick < 0.7:
            return g.Send(r.choice([self.chan(), None, self.chan().send_only()]), self.value())
        if pick < 0.8:
            return g.Recv(g.after(self.duration(finite_small=True)))
        # garbage: wrong direction, not a channel, not a case
        return r.choice([lambda: g.Recv(self.chan().send_only()),
                         lambda: g.Send(self.chan().recv_only(), 1),
                         lambda: g.Send(g.after(1), 1),
                         lambda: g.Recv(self.value()),
                         lambda: self.value(),
                         lambda: g.Recv,
                         lambda: self.chan()])()

    def reenter(self):
        """A callback's gopy call: never waits (callbacks run inside gopy
        calls, timers and hooks), but may yield."""
        if self.depth > 3:
            return
        self.depth += 1
        try:
            g, r = self.gopy, self.rng
            which = r.randrange(7)
            if which == 0:
                g.select(g.Send(self.shared_chan(), r.random()), g.Recv(self.shared_chan()),
                         default=True)
            elif which == 1:
                g.go(self.goroutine, r.randrange(2**32))
            elif which == 2:
                g.after(r.choice([0, 1e-4, float("inf")]))
            elif which == 3:
                try:
                    self.shared_chan().close()
                except g.ClosedChannelError:
                    pass
                self.replace_closed()
            elif which == 4:
                len(self.shared_chan()), g.runtime.num_goroutine()
            elif which == 5:
                g.after_func(r.choice([0, 1e-4]), self.callback)
            else:
                g.runtime.gosched()
        finally:
            self.depth -= 1

    def replace_closed(self):
        # Keep some open shared channels around (closed ones stay in use too).
        if len(self.shared) < 12:
            self.shared.append(self.gopy.Chan(self.rng.choice([0, 1, 4])))
        elif self.rng.random() < 0.5:
            self.shared[self.rng.randrange(len(self.shared))] = self.gopy.Chan(1)

    def callback(self, *args, **kwargs):
        self.reenter()
        if self.rng.random() < 0.2:
            raise FuzzError("callback")

    def excepthook(self, exc, goid):
        if not isinstance(exc, self.allowed + (RuntimeError,)):
            self.violation(f"goroutine {goid}", exc)
        self.reenter()
        if self.rng.random() < 0.1:
            raise FuzzError("excepthook")  # printed (to the sink), process keeps running

    # -- goroutines: any call, blocking allowed --------------------------------

    def goroutine(self, seed):
        g = self.gopy
        r = random.Random(seed)
        for _ in range(r.randrange(1, 5)):
            ch = r.choice(self.shared)
            which = r.randrange(13)
            try:
                if which == 0:
                    ch.send(self.value())
                elif which == 1:
                    ch.recv()
                elif which == 2:
                    ch.recv_ok()
                elif which == 3:
                    for _ in ch:
                        if r.random() < 0.5:
                            break
                elif which == 4:
                    ch.close()
                elif which == 5:
                    g.select(*[self.case() for _ in range(r.randrange(4))],
                             default=r.random() < 0.3)
                elif which == 6:
                    g.sleep(self.duration())
                elif which == 7:
                    if self.syncs:
                        self.sync_op(r.choice(self.syncs), blocking=True)
                elif which == 8:
                    raise FuzzError("goroutine")
                elif which == 9:
                    g.go(self.goroutine, r.randrange(2**32))
                elif which == 10:
                    g.runtime.lock_os_thread()
                    g.runtime.gosched()
                    g.runtime.unlock_os_thread()
                elif which == 11:
                    g.offload(self.callback, self.value(), key=self.value())
                else:
                    self.reenter()
            except (TypeError, ValueError, OverflowError, MemoryError, RuntimeError,
                    IndexError, FuzzError):
                pass  # ClosedChannelError is a RuntimeError

    # -- the operations of the main thread ---------------------------------------

    def _op_table(self):
        return [
            (6, self.op_make_chan), (8, self.op_private_chan), (8, self.op_shared_nonblocking),
            (3, self.op_close), (4, self.op_views), (10, self.op_select), (6, self.op_timers),
            (4, self.op_timer_methods), (3, self.op_after_func), (8, self.op_go),
            (2, self.op_go_c), (2, self.op_offload), (2, self.op_ctypes_chan),
            (2, self.op_runtime),
            (4, self.op_sync), (3, self.op_atomic), (3, self.op_context), (2, self.op_errgroup),
            (2, self.op_evil_del), (1, self.op_gc),
        ]

    def op_make_chan(self):
        g = self.gopy
        if self.rng.random() < 0.5:
            g.Chan(self.size())
        else:
            g.Chan(self.size(), ctype=self.ctype())

    def op_private_chan(self):
        """A channel only this thread uses, whose state is known exactly:
        blocking calls only when they cannot wait."""
        g, r = self.gopy, self.rng
        if not self.private or r.random() < 0.1:
            cap = r.choice([0, 1, 3])
            self.private.append([g.Chan(cap), cap, False])
            if len(self.private) > 8:
                self.private.pop(0)
        entry = r.choice(self.private)
        ch, cap, closed = entry
        n = len(ch)
        assert 0 <= n <= cap == ch.cap, (n, cap, ch.cap)
        which = r.randrange(6)
        if which == 0 and (closed or n < cap):
            try:
                ch.send(self.value())
                assert not closed and len(ch) == n + 1
            except g.ClosedChannelError:
                assert closed
        elif which == 1 and (closed or n > 0):
            v, ok = ch.recv_ok()
            assert ok == (n > 0) and len(ch) == max(n - 1, 0)
        elif which == 2 and (closed or n > 0):
            ch.recv()
        elif which == 3:
            try:
                ch.close()
                assert not closed
                entry[2] = True
            except g.ClosedChannelError:
                assert closed
        elif which == 4 and closed:
            assert len(list(ch)) == n and len(ch) == 0
        else:
            i, _, ok = g.select(g.Recv(ch), default=True)
            assert (i, ok) == ((0, True) if n else (0, False) if closed else (-1, False))

    def op_shared_nonblocking(self):
        g, r = self.gopy, self.rng
        ch = self.shared_chan()
        which = r.randrange(4)
        if which == 0:
            g.select(g.Send(ch, self.value()), default=True)
        elif which == 1:
            g.select(g.Recv(ch), default=r.choice([True, 1, "y", self.evil(1)]))
        elif which == 2:
            len(ch), ch.cap, repr(ch), hash(ch), ch == self.shared_chan(), ch.handle
        else:
            g.select(g.Recv(ch), g.Recv(g.after(r.choice([0, 1e-4, 0.001]))))

    def op_close(self):
        i = self.rng.randrange(len(self.shared))
        try:
            self.shared[i].close()
        finally:
            if self.rng.random() < 0.7:  # goroutines may still hold the closed one
                self.shared[i] = self.gopy.Chan(self.rng.choice([0, 1, 4]))

    def op_views(self):
        g, r = self.gopy, self.rng
        ch = self.chan()
        s, rv = ch.send_only(), ch.recv_only()
        which = r.randrange(6)
        if which == 0:
            g.SendChan(r.choice([ch, s, rv, None, 1, g.after(1)]))
        elif which == 1:
            g.RecvChan(r.choice([ch, s, rv, None, "x"]))
        elif which == 2:
            try:
                r.choice([lambda: rv.send(1), lambda: s.recv(), lambda: s.recv_ok(),
                          lambda: iter(s), lambda: rv.close()])()
            except (AttributeError, TypeError):
                return
        elif which == 3:
            g.select(g.Send(s, self.value()), g.Recv(rv), default=True)
        elif which == 4:
            len(s), len(rv), s.cap, rv.cap, repr(s), repr(rv), s == rv, hash(rv)
        else:
            g.Chan.send_only(r.choice([ch, None, 1]))

    def op_select(self):
        g, r = self.gopy, self.rng
        cases = [self.case() for _ in range(r.randrange(6))]
        if r.random() < 0.02:
            cases = [g.Recv(None)] * 65537  # too many cases
        kwargs = {}
        pick = r.random()
        if pick < 0.5:
            kwargs["default"] = r.choice([True, 1, "x", [0], self.evil(1)])
        elif pick < 0.55:
            kwargs[r.choice(["defualt", "timeout"])] = True
        elif pick < 0.6:
            kwargs["default"] = self.evil(0)  # may turn out falsy: then a timer bounds it
            cases.append(g.Recv(g.after(0.001)))
        else:
            # Blocking: a timer case bounds the wait.
            cases.append(g.Recv(g.after(r.choice([0, 1e-4, 0.001]))))
            r.shuffle(cases)
        g.select(*cases, **kwargs)

    def op_timers(self):
        g, r = self.gopy, self.rng
        which = r.randrange(7)
        if which == 0:
            self.keep_timer(g.Timer(self.duration()))
        elif which == 1:
            self.keep_timer(g.Ticker(self.duration()))
        elif which == 2:
            g.after(self.duration())
        elif which == 3:
            g.tick(self.duration())
        elif which == 4:
            g.sleep(self.duration(finite_small=True))
        elif which == 5:
            g.Timer(d=self.duration()).c
        else:
            g.Timer(*[self.duration() for _ in range(r.randrange(3))])

    def keep_timer(self, t):
        self.timers.append(t)
        if len(self.timers) > 20:
            self.timers.pop(self.rng.randrange(len(self.timers)))

    def op_timer_methods(self):
        g, r = self.gopy, self.rng
        if not self.timers:
            return
        t = r.choice(self.timers)
        which = r.randrange(4)
        if which == 0:
            t.stop()
        elif which == 1:
            t.reset(self.duration())
        elif which == 2 and t.c is not None:
            g.select(g.Recv(t.c), default=True)
        else:
            t.reset(r.choice([0, 1e-4]))

    def op_after_func(self):
        g, r = self.gopy, self.rng
        fn = r.choice([self.callback, self.callback, self.reenter, None, 1, self.evil()])
        args = [self.duration(), fn] + [self.value() for _ in range(r.randrange(3))]
        if r.random() < 0.1:
            args = args[:r.randrange(2)]
        t = g.after_func(*args)
        self.keep_timer(t)

    def op_go(self):
        g, r = self.gopy, self.rng
        which = r.randrange(5)
        if which == 0:
            g.go(self.goroutine, r.randrange(2**32))
        elif which == 1:
            g.go(r.choice([None, 1, "x", self.shared_chan()]))
        elif which == 2:
            g.go(self.callback, self.value(), key=self.value())
        elif which == 3:
            g.go(lambda *a, **k: (_ for _ in ()).throw(FuzzError("gen")), self.value())
        else:
            g.go()

    def op_offload(self):
        g, r = self.gopy, self.rng
        which = r.randrange(3)
        if which == 0:  # outside a goroutine: a plain call
            g.offload(self.callback, self.value(), key=self.value())
        elif which == 1:
            g.offload(r.choice([None, 1, "x", self.shared_chan()]))
        else:
            g.offload()

    def op_go_c(self):
        g, r = self.gopy, self.rng
        which = r.randrange(4)
        if which == 0:
            g.go_c(self.libc.free, self.libc.malloc(16))
        elif which == 1:  # rejected before anything runs
            g.go_c(r.choice([0, -1, 2**64, 2**100, None, "f", b"f", 1.5, [], self.evil()]))
        elif which == 2:
            g.go_c(self.libc.free, r.choice([-1, 2**64, "x", b"x", 1.5, object()]))
        else:
            g.go_c(CALLBACK(self.c_callback), r.choice([None, 5, ctypes.c_void_p(7)]))

    def c_callback(self, arg):
        # Python called back from a C goroutine.
        g = self.gopy
        try:
            g.select(g.Send(self.shared_chan(), arg), default=True)
            self.reenter()
        except (ValueError, TypeError, RuntimeError, FuzzError):
            pass

    def op_ctypes_chan(self):
        g, r = self.gopy, self.rng
        ch = g.Chan(r.choice([0, 1, 4]), ctype=r.choice([ctypes.c_int64, ctypes.c_double, Point]))
        which = r.randrange(5)
        if which == 0:
            g.select(g.Send(ch, self.value()), default=True)
        elif which == 1:
            g.Chan.from_handle(r.choice([0, -1, 2**64, 3, "x", None, self.shared_chan().handle,
                                         ch.handle]),
                               r.choice([ctypes.c_int64, ctypes.c_int32, Point, None, 1]))
        elif which == 2:
            g.select(g.Send(ch, self.value()), g.Recv(ch), default=True)
        elif which == 3:
            if ch.cap:
                ch.send(r.choice([1, 2.5, Point(1, 2), ctypes.c_int64(3)]))
                ch.recv()
        else:
            g.Chan.from_handle(ch.handle, ctypes.c_char * 8)

    def op_runtime(self):
        g, r = self.gopy, self.rng
        rt = g.runtime
        which = r.randrange(6)
        if which == 0:
            rt.gomaxprocs(r.choice([0, 1, 2, 3, 4, 8, -1, 2**31, 2**70, "2", 1.5, None,
                                    self.evil(2)]))
        elif which == 1:
            rt.num_goroutine(), rt.num_cpu(), rt.stats()
        elif which == 2:
            if r.random() < 0.2:
                rt.stack()
        elif which == 3:
            rt.gosched()
        elif which == 4:
            rt.lock_os_thread()
            rt.unlock_os_thread()
        else:
            rt.gomaxprocs(r.choice([1, 2, 4]))

    def op_sync(self):
        g, r = self.gopy, self.rng
        if not hasattr(g, "Mutex"):
            return
        if not self.syncs or r.random() < 0.2:
            make = r.choice([g.Mutex, g.RWMutex, g.WaitGroup, g.Once, g.Pool, g.Map,
                             lambda: g.Cond(r.choice([g.Mutex(), g.RWMutex(), None, 1])),
                             lambda: g.Pool(new=r.choice([None, self.callback, 1]))])
            self.syncs.append(make())
            if len(self.syncs) > 12:
                self.syncs.pop(0)
            return
        self.sync_op(r.choice(self.syncs), blocking=False)

    def sync_op(self, obj, blocking):
        """Random calls on a sync object; blocking ones only when allowed."""
        g, r = self.gopy, self.rng
        name = type(obj).__name__
        try:
            if name == "Mutex":
                if blocking:
                    with obj:
                        g.runtime.gosched()
                elif obj.try_lock():
                    obj.unlock()
                else:
                    obj.unlock()  # not ours to unlock: may raise RuntimeError
            elif name == "RWMutex":
                pick = r.randrange(4)
                if pick == 0 and (blocking or obj.try_rlock()):
                    if blocking:
                        obj.rlock()
                    obj.runlock()
                elif pick == 1 and (blocking or obj.try_lock()):
                    if blocking:
                        obj.lock()
                    obj.unlock()
                elif pick == 2:
                    obj.runlock()
                else:
                    with obj.rlocker() if blocking else Nothing():
                        pass
            elif name == "WaitGroup":
                pick = r.randrange(4)
                if pick == 0:
                    obj.add(r.choice([1, -1, 0, 2**31, 2**70, "1", None, self.evil(1)]))
                elif pick == 1:
                    obj.done()
                elif pick == 2:
                    obj.go(self.callback, self.value())
                elif blocking:
                    obj.wait()
            elif name == "Once":
                obj.do(r.choice([self.callback, None, 1, self.reenter]))
            elif name == "Pool":
                obj.put(self.value()) if r.random() < 0.5 else obj.get()
            elif name == "Map":
                k = r.choice([1, "k", None, (1, 2), [], {}, self.evil(1), self.value()])
                pick = r.randrange(7)
                if pick == 0:
                    obj.store(k, self.value())
                elif pick == 1:
                    obj.load(k)
                elif pick == 2:
                    obj.load_or_store(k, self.value())
                elif pick == 3:
                    obj.delete(k)
                elif pick == 4:
                    obj.range(r.choice([lambda k, v: self.reenter(), lambda k, v: False, None,
                                        lambda: None]))
                elif pick == 5:
                    obj.compare_and_swap(k, self.value(), self.value())
                else:
                    obj.clear()
            elif name == "Cond":
                pick = r.randrange(3)
                if pick == 0:
                    obj.signal()
                elif pick == 1:
                    obj.broadcast()
                elif blocking:
                    with obj.l:
                        obj.wait()
        except RuntimeError as e:
            if isinstance(e, g.DeadlockError):
                raise
            # unlock of an unlocked lock, negative WaitGroup counter, ...

    def op_atomic(self):
        g, r = self.gopy, self.rng
        a = getattr(g, "atomic", None)
        if a is None:
            return
        which = r.randrange(4)
        v = r.choice([0, 1, -1, 2**31, 2**63, 2**64, 2**100, -(2**100), 1.5, None, "1",
                      self.evil(3)])
        if which == 0:
            cell = r.choice([a.Int32, a.Int64, a.Uint32, a.Uint64])(r.choice([0, 5, v]))
            r.choice([cell.load, lambda: cell.store(v), lambda: cell.add(v), lambda: cell.swap(v),
                      lambda: cell.compare_and_swap(v, v), lambda: cell.and_(v),
                      lambda: cell.or_(v)])()
        elif which == 1:
            cell = r.choice([a.Bool, a.Value])(self.value())
            r.choice([cell.load, lambda: cell.store(self.value()),
                      lambda: cell.swap(self.value()),
                      lambda: cell.compare_and_swap(cell.load(), self.value())])()
        else:
            buf = r.choice([bytearray(16), bytearray(3), b"12345678", memoryview(bytearray(16))[1:],
                            (ctypes.c_int64 * 2)(), None, "x", bytearray(0)])
            fn = getattr(a, r.choice(["load", "store", "add", "swap", "compare_and_swap"]) + "_"
                         + r.choice(["int32", "int64", "uint32", "uint64"]))
            i = r.choice([0, 1, -1, 2, 2**40, 2**70, "0", None, self.evil(0)])
            try:
                fn(buf, i, *[v] * (fn.__name__.startswith(("store", "add", "swap")) +
                                   2 * fn.__name__.startswith("compare")))
            except IndexError:
                pass

    def op_context(self):
        g, r = self.gopy, self.rng
        try:
            from gopy import context
        except ImportError:
            return
        parent = r.choice(self.contexts + [context.background(), context.todo(), None, 1])
        which = r.randrange(9)
        if which == 0:
            ctx, cancel = context.with_cancel(parent)
            self.cancels.append(cancel)
            self.keep_ctx(ctx)
            if r.random() < 0.5:
                cancel(*([self.value()] if r.random() < 0.3 else []))
        elif which == 1:
            ctx, cancel = context.with_timeout(parent, self.duration())
            self.cancels.append(cancel)
            self.keep_ctx(ctx)
        elif which == 2:
            ctx, cancel = context.with_deadline(parent, r.choice([0, -1, 1e300, float("nan"),
                                                                  float("inf"), None, "x",
                                                                  datetime.datetime.now()]))
            self.cancels.append(cancel)
            self.keep_ctx(ctx)
        elif which == 3:
            self.keep_ctx(context.with_value(parent, r.choice([1, "k", [], self.evil(1)]),
                                             self.value()))
        elif which == 4:
            stop = context.after_func(parent, r.choice([self.callback, None, 1]))
            if r.random() < 0.5:
                stop()
        elif which == 5 and self.contexts:
            ctx = r.choice(self.contexts)
            ctx.err(), ctx.deadline(), ctx.value(r.choice([1, "k", [], self.evil(1)]))
            context.cause(ctx)
            if ctx.done() is not None:
                g.select(g.Recv(ctx.done()), default=True)
        elif which == 6:
            ctx, cancel = context.with_cancel_cause(parent)
            cancel(r.choice([None, ValueError("x"), 1, self.evil()]))
            self.keep_ctx(ctx)
        elif which == 7:
            context.without_cancel(parent)
        else:
            context.Context.from_handle(r.choice([0, -1, 3, True, 2**64, "x", None, 1.5]))

    def keep_ctx(self, ctx):
        self.contexts.append(ctx)
        if len(self.contexts) > 20:
            self.contexts.pop(self.rng.randrange(len(self.contexts)))

    def op_errgroup(self):
        r = self.rng
        try:
            from gopy import context, errgroup
        except ImportError:
            return
        if r.random() < 0.5:
            grp = errgroup.Group()
        else:
            grp, _ = errgroup.with_context(r.choice(self.contexts + [context.background(), None]))
        # (not 0: go() would wait forever for a slot)
        grp.set_limit(r.choice([-1, 1, 2, 2**70, "x", None]) if r.random() < 0.3 else -1)
        for _ in range(r.randrange(3)):
            r.choice([lambda: grp.go(self.callback, self.value()),
                      lambda: grp.try_go(self.callback),
                      lambda: grp.go(r.choice([None, 1])),
                      lambda: grp.go(lambda: FuzzError("returned"))])()
        # wait could block on a goroutine that blocks forever: only bounded ones
        # run here (callback never waits), so wait returns.
        try:
            grp.wait()
        except FuzzError:
            pass

    def op_evil_del(self):
        """Values whose __del__ calls gopy, dropped by gopy itself: in a
        channel freed with values buffered, in select's unchosen sends."""
        g, r = self.gopy, self.rng
        ch = g.Chan(2)
        ch.send(DelHook(self))
        ch.send(DelHook(self))
        if r.random() < 0.5:
            g.select(g.Send(g.Chan(1), DelHook(self)), g.Send(g.Chan(1), DelHook(self)))
        del ch

    def op_gc(self):
        gc.collect()

    # -- the loop ----------------------------------------------------------------

    def run(self):
        g = self.gopy
        weights = [w for w, _ in self.ops]
        fns = [f for _, f in self.ops]
        for step in range(self.steps):
            fn = self.rng.choices(fns, weights)[0]
            if self.trace:
                print(f"step {step}: {fn.__name__}", file=sys.__stderr__, flush=True)
            outcome = "ok"
            try:
                fn()
            except self.allowed as e:
                outcome = type(e).__name__
            except RuntimeError as e:
                outcome = type(e).__name__
                if isinstance(e, g.DeadlockError) or fn not in (self.op_sync, self.op_errgroup):
                    self.fail(step, fn, e)
            except BaseException as e:  # noqa: BLE001
                self.fail(step, fn, e)
            if self.violations:
                self.fail(step, fn, None)
            if self.stats is not None:
                self.stats[(fn.__name__, outcome)] += 1
        # Half the contexts are cancelled in the end, as Go asks; the others
        # are only dropped, which frees them too (docs/decisions.md §23): the
        # fuzzer runs that path under the sanitizers as well.
        for cancel in self.cancels:
            if self.rng.random() < 0.5:
                cancel()
        # Let the goroutines and timers started at the end run a little.
        g.sleep(0.05)
        if self.violations:
            self.fail(self.steps, None, None)
        if self.stats is not None:
            for (name, outcome), n in sorted(self.stats.items()):
                print(f"  {name:24} {outcome:20} {n}")
        print(f"fuzz ok: {self.steps} steps, seed {self.seed}, "
              f"{g.runtime.num_goroutine()} goroutines left parked", flush=True)

    def fail(self, step, fn, exc):
        out = sys.__stderr__
        print(f"FUZZ FAILURE at step {step} ({getattr(fn, '__name__', '-')}), seed {self.seed}",
              file=out)
        if exc is not None:
            traceback.print_exception(exc, file=out)
        for v in self.violations:
            print(v, file=out)
        out.flush()
        os._exit(1)


CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Evil:
    """A value whose dunder methods call back into gopy, or raise."""

    def __init__(self, fz, value, mode):
        self.fz, self.value, self.mode = fz, value, mode

    def _hook(self):
        if self.mode == "reenter":
            self.fz.reenter()
        elif self.mode == "raise":
            raise FuzzError("evil")

    def __index__(self):
        self._hook()
        if isinstance(self.value, int):
            return self.value
        raise TypeError("not an int")

    def __float__(self):
        self._hook()
        return float(self.value)

    def total_seconds(self):
        self._hook()
        return float(self.value)

    def __bool__(self):
        self._hook()
        return bool(self.value)

    def __hash__(self):
        self._hook()
        return hash(self.value)

    def __eq__(self, other):
        self._hook()
        return self is other

    def __call__(self, *args, **kwargs):
        self._hook()

    def __repr__(self):
        return f"Evil({self.value!r}, {self.mode})"


class DelHook:
    """Calls gopy from __del__ (never waiting)."""

    def __init__(self, fz):
        self.fz = fz

    def __del__(self):
        try:
            self.fz.reenter()
        except Exception:  # noqa: BLE001 - __del__ cannot raise
            pass


def main(argv):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=random.SystemRandom().randrange(2**32))
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--trace", action="store_true")
    p.add_argument("--stats", action="store_true", help="count the outcomes of each operation")
    args = p.parse_args(argv)
    faulthandler.enable(file=sys.__stderr__)
    # A hang: `kill -USR1` (the test does) dumps every thread's Python stack.
    faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    print(f"fuzz: seed {args.seed}, {args.steps} steps", flush=True)
    fz = Fuzzer(args.seed, args.steps, args.trace, args.stats)
    sys.stderr = Sink()
    sys.unraisablehook = lambda u: None
    fz.run()


if __name__ == "__main__":
    main(sys.argv[1:])
