"""gopy.errgroup (docs/api.md, "gopy.errgroup"):
golang.org/x/sync/errgroup's tests (errgroup_test.go) and examples written
with gopy -- JustErrors, Parallel, the MD5All pipeline over a temporary
directory -- and the GetFriends fan-out with fake lookups."""

import hashlib
import itertools
import os
import threading
import traceback

import pytest

import gopy
from gopy import Recv, Send, select
from gopy import context, errgroup
from conftest import (nothing_ready, recv_value, run_in_goroutine, run_in_thread,
                      settle_goroutines)

HANG = 20.0


def raise_(exc):
    raise exc


def is_done(ctx):
    return select(Recv(ctx.done()), default=True) == (0, None, False)


# ---- errgroup_test.go -------------------------------------------------------------------


def test_zero_group():
    """TestZeroGroup: the first failure is kept, whether raised or
    returned; later ones are dropped."""
    err1 = ValueError("errgroup_test: 1")
    err2 = ValueError("errgroup_test: 2")
    cases = [[], [None], [err1], [err1, None], [err1, None, err2]]
    for errs in cases:
        g = errgroup.Group()
        first = None
        for k, err in enumerate(errs):
            if k % 2 == 0:
                g.go(lambda err=err: err)                        # returned
            else:
                g.go(lambda err=err: raise_(err) if err else None)  # raised
            if first is None and err is not None:
                first = err
            if first is None:
                assert g.wait() is None
            else:
                with pytest.raises(ValueError) as info:
                    g.wait()
                assert info.value is first


def test_with_context_cancels_on_first_error_and_on_wait():
    """TestWithContext: wait returns the first error; ctx is done after
    wait whether or not something failed."""
    doom = RuntimeError("group_test: doomed")
    for errs, want in (([], None), ([None], None), ([doom], doom), ([doom, None], doom)):
        g, ctx = errgroup.with_context(context.background())
        for err in errs:
            g.go(lambda err=err: err)
        if want is None:
            assert g.wait() is None
        else:
            with pytest.raises(RuntimeError) as info:
                g.wait()
            assert info.value is want
        assert is_done(ctx)
        assert isinstance(ctx.err(), context.Canceled)


def test_cancel_cause():
    """TestCancelCause: cause(ctx) is the first error, else Canceled."""
    doom = RuntimeError("group_test: doomed")
    for errs, want in (([], None), ([None], None), ([doom], doom), ([doom, None], doom)):
        g, ctx = errgroup.with_context(context.background())
        for err in errs:
            g.try_go(lambda err=err: err)
        if want is None:
            g.wait()
            assert isinstance(context.cause(ctx), context.Canceled)
        else:
            with pytest.raises(RuntimeError):
                g.wait()
            assert context.cause(ctx) is want


def test_first_failure_cancels_others():
    g, ctx = errgroup.with_context(context.background())
    stopped = gopy.Chan(10)

    def waits():
        ctx.done().recv()
        stopped.send(context.cause(ctx))
        return context.Canceled()       # later failures are dropped

    for _ in range(5):
        g.go(waits)
    gopy.sleep(0.02)
    assert nothing_ready(stopped)
    boom = KeyError("boom")
    g.go(raise_, boom)
    with pytest.raises(KeyError) as info:
        g.wait()
    assert info.value is boom
    assert [recv_value(stopped) for _ in range(5)] == [boom] * 5


@pytest.mark.timeout(300)
def test_first_error_wins_under_contention():
    for _ in range(20):
        g = errgroup.Group()
        start = gopy.Chan()
        errs = [ValueError(i) for i in range(20)]

        def fail(e):
            start.recv_ok()
            return e

        for e in errs:
            g.go(fail, e)
        start.close()
        with pytest.raises(ValueError) as info:
            g.wait()
        assert info.value in errs
        # wait() again: the same object
        with pytest.raises(ValueError) as info2:
            g.wait()
        assert info2.value is info.value


def test_wait_reraises_with_traceback():
    def deep_helper():
        raise LookupError("deep down")

    def task():
        deep_helper()

    g = errgroup.Group()
    g.go(task)
    with pytest.raises(LookupError) as info:
        g.wait()
    names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "task" in names and "deep_helper" in names


def test_returned_exception_instance_is_a_failure_but_other_values_are_not():
    g = errgroup.Group()
    g.go(lambda: 42)
    g.go(lambda: "error?")
    g.go(lambda: ValueError)       # a class, not an instance
    assert g.wait() is None
    e = OSError(5, "io")
    g.go(lambda: e)
    with pytest.raises(OSError) as info:
        g.wait()
    assert info.value is e


def test_failures_do_not_reach_excepthook():
    seen = []
    old = gopy.excepthook
    gopy.excepthook = lambda exc, gid: seen.append(exc)
    try:
        g = errgroup.Group()
        g.go(raise_, ValueError("a"))
        g.go(raise_, ValueError("b"))
        with pytest.raises(ValueError):
            g.wait()
        gopy.sleep(0.01)
        assert seen == []
    finally:
        gopy.excepthook = old


def test_go_passes_arguments():
    out = gopy.Chan(1)
    g = errgroup.Group()
    g.go(lambda a, b, *, c: out.send((a, b, c)), 1, 2, c=3)
    g.wait()
    assert recv_value(out) == (1, 2, 3)


@pytest.mark.timeout(300)
def test_try_go():
    """TestTryGo."""
    g = errgroup.Group()
    n = 42
    g.set_limit(42)
    ch = gopy.Chan()

    def fn():
        ch.send(None)

    for i in range(n):
        assert g.try_go(fn), f"try_go should succeed but failed at call {i}"
    assert not g.try_go(fn), "try_go is expected to fail but succeeded"
    gopy.go(lambda: [ch.recv() for _ in range(n)])
    g.wait()
    assert g.try_go(fn), "try_go should succeed after all goroutines"
    gopy.go(ch.recv)
    g.wait()
    # Switch limit.
    g.set_limit(1)
    assert g.try_go(fn)
    assert not g.try_go(fn)
    gopy.go(ch.recv)
    g.wait()
    # Block all calls.
    g.set_limit(0)
    for _ in range(1 << 10):
        assert not g.try_go(fn)
    g.wait()


@pytest.mark.timeout(300)
def test_go_limit():
    """TestGoLimit: never more than the limit active."""
    limit = 10
    g = errgroup.Group()
    g.set_limit(limit)
    state = {"active": 0, "max": 0}
    lock = threading.Lock()

    def work():
        with lock:
            state["active"] += 1
            n = state["active"]
            state["max"] = max(state["max"], n)
        if n > limit:
            return RuntimeError(f"saw {n} active goroutines; want <= {limit}")
        gopy.sleep(0.000001)
        with lock:
            state["active"] -= 1

    for _ in range((1 << 10) + 1):
        g.go(work)
    g.wait()
    assert 1 <= state["max"] <= limit


def test_go_blocks_at_limit():
    g = errgroup.Group()
    g.set_limit(2)
    release = gopy.Chan()
    started = gopy.Chan(10)
    for _ in range(2):
        g.go(lambda: (started.send(1), release.recv()))
    third_started = gopy.Chan(1)
    gopy.go(lambda: (g.go(started.send, 3), third_started.send(None)))
    recv_value(started)
    recv_value(started)
    gopy.sleep(0.03)
    assert nothing_ready(third_started)     # blocked in go()
    release.send(None)
    recv_value(third_started)
    assert recv_value(started) == 3
    release.send(None)
    g.wait()


def test_set_limit_rejected_while_active():
    g = errgroup.Group()
    release = gopy.Chan()
    g.go(release.recv)
    with pytest.raises(RuntimeError, match="1 goroutines in the group are still active"):
        g.set_limit(3)
    g.set_limit(-1)   # removing the limit is allowed (as in Go)
    release.send(None)
    g.wait()
    g.set_limit(3)    # nothing active: fine
    with pytest.raises(TypeError):
        g.set_limit("3")


def test_remove_limit_while_active():
    g = errgroup.Group()
    g.set_limit(1)
    release = gopy.Chan()
    g.go(release.recv)
    g.set_limit(-1)
    g.go(lambda: None)     # no longer limited
    release.send(None)
    g.wait()
    assert g.try_go(lambda: None)
    g.wait()


def test_wait_from_thread_and_main_thread():
    g = errgroup.Group()
    release = gopy.Chan()
    for _ in range(3):
        g.go(release.recv)
    gopy.go(lambda: [release.send(None) for _ in range(3)])
    run_in_thread(g.wait)
    g.wait()


def test_go_from_threads_and_goroutines():
    g = errgroup.Group()
    g.set_limit(3)
    out = gopy.Chan(100)
    for i in range(10):
        run_in_thread(g.go, out.send, i)
        run_in_goroutine(g.go, out.send, 100 + i)
    g.wait()
    assert sorted(out.recv() for _ in range(20)) == list(range(10)) + list(range(100, 110))


def test_context_manager():
    out = gopy.Chan(10)
    with errgroup.Group() as g:
        for i in range(5):
            g.go(out.send, i)
    assert sorted(out.recv() for _ in range(5)) == list(range(5))
    with pytest.raises(ZeroDivisionError):
        with errgroup.Group() as g:
            g.go(lambda: 1 / 0)


def test_context_manager_body_error_cancels_and_propagates():
    """The block's own exception wins; the group's context is cancelled
    first, so goroutines waiting for it end instead of hanging wait."""
    g, ctx = errgroup.with_context(context.background())
    seen = gopy.Chan(1)
    with pytest.raises(KeyError) as info:
        with g:
            g.go(lambda: seen.send(ctx.done().recv_ok()))
            raise KeyError("body")
    assert info.value.args == ("body",)
    assert recv_value(seen) == (None, False)
    assert isinstance(context.cause(ctx), KeyError)


def test_group_bad_arguments():
    g = errgroup.Group()
    with pytest.raises(TypeError):
        g.go()
    with pytest.raises(TypeError):
        g.go(42)
    with pytest.raises(TypeError):
        g.try_go("f")
    with pytest.raises(TypeError):
        errgroup.Group(1)
    with pytest.raises(TypeError):
        errgroup.with_context(None)
    assert g.wait() is None


@pytest.mark.timeout(300)
def test_many_goroutines_and_no_leak(no_leftover_goroutines):
    base = no_leftover_goroutines
    g, ctx = errgroup.with_context(context.background())
    total = itertools.count()
    for _ in range(2000):
        g.go(lambda: next(total))
    g.wait()
    assert next(total) == 2000
    assert settle_goroutines() == base


# ---- the package examples ---------------------------------------------------------------


def test_example_just_errors():
    """ExampleGroup_justErrors: fetch URLs concurrently, report the first
    failure."""
    def http_get(url):
        gopy.sleep(0.001)
        if "somestupidname" in url:
            raise ConnectionError(f"Get {url}: no such host")
        return f"<html>{url}</html>"

    g = errgroup.Group()
    urls = ["http://www.golang.org/", "http://www.google.com/", "http://www.somestupidname.com/"]
    for url in urls:
        g.go(http_get, url)
    printed = []
    try:
        g.wait()
        printed.append("Successfully fetched all URLs.")
    except ConnectionError as e:
        printed.append(str(e))
    assert printed == ["Get http://www.somestupidname.com/: no such host"]


def fake_search(kind):
    def search(ctx, query):
        return f"{kind} result for {query!r}"
    return search


Web, Image, Video = fake_search("web"), fake_search("image"), fake_search("video")


def test_example_parallel():
    """ExampleGroup_parallel: results written to distinct slots."""
    def google(ctx, query):
        g, ctx = errgroup.with_context(ctx)
        searches = [Web, Image, Video]
        results = [None] * len(searches)
        for i, search in enumerate(searches):
            def run(i=i, search=search):
                results[i] = search(ctx, query)
            g.go(run)
        g.wait()
        return results

    results = google(context.background(), "golang")
    assert results == ["web result for 'golang'", "image result for 'golang'",
                       "video result for 'golang'"]


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def md5_all(ctx, root, read=read_file):
    """The errgroup package's pipeline example (MD5All): a walker feeds
    paths to 20 digesters; results are collected until the group ends; the
    first error cancels the rest."""
    g, ctx = errgroup.with_context(ctx)
    paths = gopy.Chan()

    def walk():
        try:
            for dirpath, dirnames, filenames in os.walk(root, onerror=raise_):
                dirnames.sort()
                for name in sorted(filenames):
                    path = os.path.join(dirpath, name)
                    if not os.path.isfile(path) or os.path.islink(path):
                        continue
                    i, _, _ = select(Send(paths, path), Recv(ctx.done()))
                    if i == 1:
                        return ctx.err()
        finally:
            paths.close()

    g.go(walk)
    c = gopy.Chan()
    num_digesters = 20

    def digester():
        for path in paths:
            data = read(path)
            i, _, _ = select(Send(c, (path, hashlib.md5(data).digest())), Recv(ctx.done()))
            if i == 1:
                return ctx.err()

    for _ in range(num_digesters):
        g.go(digester)

    def closer():
        try:
            g.wait()
        except BaseException:  # noqa: BLE001 - reported by the last wait below
            pass
        c.close()

    gopy.go(closer)
    m = {}
    for path, digest in c:
        m[path] = digest
    g.wait()   # raises the first failure
    return m


@pytest.mark.timeout(300)
def test_md5_all_pipeline(tmp_path):
    files = {}
    for d in range(5):
        sub = tmp_path / f"dir{d}" / "nested"
        sub.mkdir(parents=True)
        for k in range(30):
            p = sub / f"f{k}.bin"
            data = os.urandom(100 + 37 * k) + bytes([d, k])
            p.write_bytes(data)
            files[str(p)] = hashlib.md5(data).digest()
    (tmp_path / "empty.txt").write_bytes(b"")
    files[str(tmp_path / "empty.txt")] = hashlib.md5(b"").digest()
    m = run_in_goroutine(md5_all, context.background(), str(tmp_path), timeout=120)
    assert m == files
    # From the main thread too.
    assert md5_all(context.background(), str(tmp_path)) == files


def test_md5_all_pipeline_first_error_cancels(tmp_path):
    """A file that cannot be read fails the group: the error is the one
    raised, and the walker and other digesters stop."""
    for k in range(200):
        (tmp_path / f"f{k:03d}").write_bytes(b"x" * k)
    reads = itertools.count()

    def flaky_read(path):
        next(reads)
        if path.endswith("f100"):
            raise PermissionError(13, "Permission denied", path)
        return read_file(path)

    with pytest.raises(PermissionError) as info:
        md5_all(context.background(), str(tmp_path), read=flaky_read)
    assert info.value.filename.endswith("f100")
    assert next(reads) <= 200


def test_md5_all_pipeline_cancelled_by_caller(tmp_path):
    for k in range(100):
        (tmp_path / f"f{k:03d}").write_bytes(b"z" * k)
    ctx, cancel = context.with_cancel(context.background())
    cancel()
    with pytest.raises(context.Canceled):
        md5_all(ctx, str(tmp_path))


# ---- GetFriends: a fan-out over fake lookups ------------------------------------------------


class User:
    def __init__(self, name):
        self.name = name


FRIEND_PAGES = {("alice", 0): (["bob", "carol", "dave"], 1),
                ("alice", 1): (["erin", "frank"], 2),
                ("alice", 2): (["grace"], 0)}
# Many pages: with an expired context, some select is sure to see it.
FRIEND_PAGES.update({("many", p): ([f"user{p}_{k}" for k in range(50)], (p + 1) % 4)
                     for p in range(4)})


def get_friend_ids(user, cursor):
    gopy.sleep(0.001)
    return FRIEND_PAGES[(user, cursor)]


def get_user_profile(uid, fail_on=None):
    gopy.sleep(0.001)
    if uid == fail_on:
        raise LookupError(f"profile {uid}: not found")
    return User(uid.capitalize())


def get_friends(ctx, user, n_workers=4, fail_on=None):
    """The GetFriends fan-out: produce ids page by page, map them to
    profiles with n_workers goroutines, reduce into a dict; the first error
    cancels everything."""
    g, ctx = errgroup.with_context(ctx)
    friend_ids = gopy.Chan()

    def produce():
        try:
            cursor = 0
            while True:
                ids, nxt = get_friend_ids(user, cursor)
                for fid in ids:
                    i, _, _ = select(Send(friend_ids, fid), Recv(ctx.done()))
                    if i == 1:
                        return ctx.err()
                if nxt == 0:
                    return None
                cursor = nxt
        finally:
            friend_ids.close()

    g.go(produce)
    friends = gopy.Chan()
    workers_left = [n_workers]
    lock = threading.Lock()

    def mapper():
        try:
            for fid in friend_ids:
                friend = get_user_profile(fid, fail_on)
                i, _, _ = select(Send(friends, friend), Recv(ctx.done()))
                if i == 1:
                    return ctx.err()
        finally:
            with lock:           # last one out closes shop
                workers_left[0] -= 1
                last = workers_left[0] == 0
            if last:
                friends.close()

    for _ in range(n_workers):
        g.go(mapper)
    ret = {}

    def reduce():
        for friend in friends:
            ret[friend.name] = friend

    g.go(reduce)
    g.wait()
    return ret


def test_get_friends_fan_out(no_leftover_goroutines):
    base = no_leftover_goroutines
    got = get_friends(context.background(), "alice")
    assert sorted(got) == ["Bob", "Carol", "Dave", "Erin", "Frank", "Grace"]
    assert all(isinstance(u, User) and u.name == k for k, u in got.items())
    got = run_in_goroutine(get_friends, context.background(), "alice", 1)
    assert len(got) == 6
    assert settle_goroutines() == base


def test_get_friends_first_error(no_leftover_goroutines):
    base = no_leftover_goroutines
    with pytest.raises(LookupError, match="profile erin: not found"):
        get_friends(context.background(), "alice", fail_on="erin")
    assert settle_goroutines() == base


def test_get_friends_expired_context():
    assert len(get_friends(context.background(), "many")) == 200
    ctx, cancel = context.with_timeout(context.background(), 0)
    with pytest.raises(context.DeadlineExceeded):
        get_friends(ctx, "many")
    cancel()


def test_failure_cycle_through_traceback_is_collected():
    """wait() re-raises the stored failure, whose traceback then reaches the
    caller's frame holding the group: a cycle the collector frees."""
    import weakref

    class Marker:
        pass

    def caller():
        marker = Marker()
        g, ctx = errgroup.with_context(context.background())
        g.go(raise_, KeyError("k"))
        try:
            g.wait()
        except KeyError:
            pass
        return weakref.ref(marker)

    refs = [caller() for _ in range(50)]
    import gc
    for _ in range(3):
        gc.collect()
    assert [r() for r in refs] == [None] * 50


@pytest.mark.timeout(90)
def test_ctrl_c_interrupts_wait_and_go_at_limit():
    """The main thread blocked in wait() or in go() at the limit is
    interrupted by Ctrl-C (KeyboardInterrupt); the group stays usable."""
    from test_ctrl_c import assert_prompt, run_with_sigint
    rc, lines, err = run_with_sigint("""
        from gopy import context, errgroup
        release = gopy.Chan()
        g, ctx = errgroup.with_context(context.background())
        g.set_limit(1)
        g.go(release.recv)
        interrupted(g.wait)
        interrupted(g.go, print, "never")
        interrupted(select, Recv(ctx.done()))
        release.send(None)
        g.wait()
        print("ctx", type(ctx.err()).__name__, g.try_go(lambda: None))
        g.wait()
    """, n_signals=3)
    assert rc == 0, err
    assert len(lines) == 4, (lines, err)
    for line in lines[:3]:
        assert_prompt(line)
    assert lines[3] == "ctx Canceled True"
