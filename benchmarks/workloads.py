"""The Python workloads W1-W9: what each one runs, how big, how it is checked and scored.

This module is the single place where workloads are timed and their results checked.
A peer module (``benchmarks/py/<peer>_w.py``) only supplies the body of each workload
as a function ``w1``, ``w2``, ... following the contracts documented on the classes
below; ``Workload.measure`` times that body, verifies what it returned (raising
``WrongResult``, so a fast wrong answer cannot pass) and turns it into metrics.

Metric values are in SI units (seconds, bytes) or plain numbers (speedups); ``Unit``
says how to show them.
"""

from __future__ import annotations

import gc
import hashlib
import os
import random
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

clock = time.perf_counter

SLEEP = 0.05  # W6/W7: each goroutine sleeps this long (seconds)


class WrongResult(AssertionError):
    """A workload body returned a wrong answer (count, order or sum)."""


def check(ok: bool, what: str) -> None:
    # Not `assert`: checks must survive `python -O`.
    if not ok:
        raise WrongResult(what)


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc), else the peak RSS."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------------- units, targets

@dataclass(frozen=True)
class Unit:
    label: str
    scale: float  # SI value / scale = shown value

    def show(self, si_value: float) -> float:
        return si_value / self.scale


US = Unit("µs", 1e-6)
MS = Unit("ms", 1e-3)
SEC = Unit("s", 1.0)
KIB = Unit("KiB", 1024.0)
TIMES = Unit("×", 1.0)


@dataclass(frozen=True)
class Target:
    """A goal for gopy's figure: an absolute bound, or a peer's figure in the same run.

    ``full_size_only``: the bound is for the full-size workload (a total time), so it
    does not apply to --quick runs with fewer goroutines.
    """
    bound: Optional[float] = None   # SI units
    strict: bool = False            # "<" rather than "≤"
    peer: Optional[str] = None      # compare with this peer's figure instead
    full_size_only: bool = False

    def describe(self, metric: "Metric") -> str:
        if self.peer is not None:
            return ("≥" if metric.higher_is_better else "≤") + self.peer
        shown = metric.unit.show(self.bound)
        return f"{'<' if self.strict else '≤'}{shown:g} {metric.unit.label}"

    def judge(self, metric: "Metric", gopy: Optional[float], figures: dict, quick: bool
              ) -> tuple:
        """(True/False, None), or (None, why it cannot be judged)."""
        if quick and self.full_size_only:
            return None, "applies at full size only"
        if gopy is None:
            return None, "no gopy figure"
        ref = self.bound if self.peer is None else figures.get(self.peer)
        if ref is None:
            return None, f"no {self.peer} figure"
        if metric.higher_is_better:
            return (gopy > ref if self.strict else gopy >= ref), None
        return (gopy < ref if self.strict else gopy <= ref), None


@dataclass(frozen=True)
class Metric:
    """One row of the results table. A workload yields one or more metrics."""
    id: str
    label: str
    unit: Unit
    target: Optional[Target] = None
    higher_is_better: bool = False


# ---------------------------------------------------------------------------- workloads

class Workload:
    id: str = ""
    summary: str = ""              # one line for the table's legend
    func: str = ""                 # name of the peer module's function
    sizes: tuple = (0, 0)          # (full, quick): goroutines / items / operations
    metrics: tuple = ()
    fresh_process: bool = False    # needs a process of its own per measurement (RSS)
    warm_up: bool = True

    def size(self, quick: bool) -> int:
        return self.sizes[1] if quick else self.sizes[0]

    def make_input(self, n: int):
        return n

    def measure(self, body: Callable, n: int) -> dict:
        """Time one call of the peer's body, check what it returned, give metrics."""
        arg = self.make_input(n)
        start = clock()
        out = body(arg)
        elapsed = clock() - start
        return self.score(n, arg, out, elapsed)

    def score(self, n: int, arg, out, elapsed: float) -> dict:
        raise NotImplementedError


class SpawnJoin(Workload):
    """W1. ``w1(n) -> out``: start n goroutines, goroutine i sets ``out[i] = i``; wait for all."""
    summary = "spawn goroutines and join them (WaitGroup): µs per goroutine"
    id, func, sizes = "W1", "w1", (50_000, 5_000)
    metrics = (Metric("W1", "spawn+join", US, Target(1e-6)),)

    def score(self, n, arg, out, elapsed):
        check(list(out) == list(range(n)), "W1: not every goroutine ran exactly once")
        return {"W1": elapsed / n}


class PingPong(Workload):
    """W2. ``w2(n) -> v``: two goroutines pass an int over two unbuffered channels n
    round trips; each hop adds 1, so the final value is 2n."""
    summary = "two goroutines, two unbuffered channels: µs per round trip"
    id, func, sizes = "W2", "w2", (20_000, 2_000)
    metrics = (Metric("W2", "ping-pong", US, Target(1e-6)),)

    def score(self, n, arg, out, elapsed):
        check(out == 2 * n, f"W2: final value {out!r}, expected {2 * n}")
        return {"W2": elapsed / n}


class Stream(Workload):
    """W3. ``w3(n) -> received``: a producer sends 0..n-1 into a 1024-slot channel and
    closes it; a consumer collects everything in order."""
    summary = "producer → Chan(1024) → consumer: µs per item"
    id, func, sizes = "W3", "w3", (200_000, 20_000)
    metrics = (Metric("W3", "stream", US, Target(0.25e-6)),)

    def score(self, n, arg, out, elapsed):
        check(list(out) == list(range(n)), "W3: items lost, duplicated or reordered")
        return {"W3": elapsed / n}


class Select4(Workload):
    """W4. ``w4(ks) -> (chosen, total)``: four channels of capacity 1; for j, k in
    enumerate(ks): send j on channel k (the one ready case), then a 4-case receive
    select; append the chosen case index to ``chosen`` and add the value to ``total``."""
    summary = "4-case select, one random case ready: µs per select (with its send)"
    id, func, sizes = "W4", "w4", (100_000, 10_000)
    metrics = (Metric("W4", "select", US, Target(0.5e-6)),)

    def make_input(self, n):
        rng = random.Random(4)
        return [rng.randrange(4) for _ in range(n)]

    def score(self, n, ks, out, elapsed):
        chosen, total = out
        check(list(chosen) == ks, "W4: select picked a case that was not ready")
        check(total == n * (n - 1) // 2, "W4: wrong values received")
        return {"W4": elapsed / n}


# W5: jobs that release the GIL. Job i hashes (or compresses) payload i % _DISTINCT.
_DISTINCT = 8


class _FanoutJobs:
    """A callable ``job(i)`` for fan-out, with its payloads built once per process."""

    def __init__(self, kind: str, size: int):
        self.kind = kind
        rng = random.Random(5)
        if kind == "sha256":
            self.payloads = [rng.randbytes(size) for _ in range(_DISTINCT)]
        else:  # zlib wants compressible input: text-like runs of random "words"
            words = [rng.randbytes(rng.randint(2, 9)).hex().encode() for _ in range(2000)]
            self.payloads = [b" ".join(rng.choices(words, k=size // 8))[:size]
                             for _ in range(_DISTINCT)]

    def __call__(self, i: int):
        data = self.payloads[i % _DISTINCT]
        if self.kind == "sha256":
            return hashlib.sha256(data).digest()
        return zlib.crc32(zlib.compress(data))   # default level; keep only a checksum


_jobs_cache: dict = {}


def fanout_jobs(kind: str, size: int) -> _FanoutJobs:
    key = (kind, size)
    if key not in _jobs_cache:
        _jobs_cache[key] = _FanoutJobs(kind, size)
    return _jobs_cache[key]


class Fanout(Workload):
    """W5. ``w5(arg) -> results`` with ``arg = (job, n)``: run ``job(i)`` for i in
    range(n) concurrently, ``results[i] = job(i)``. Scored as speedup over running the
    same jobs serially in the same process just before."""
    summary = "n × sha256 of 1 MiB in goroutines: speedup over serial (higher is better)"
    id, func, sizes = "W5", "w5", (64, 64)
    kind, payload = "sha256", 1 << 20
    metrics = (Metric("W5", "sha256", TIMES, Target(peer="tpe"), higher_is_better=True),)

    def measure(self, body, n):
        job = fanout_jobs(self.kind, self.payload)
        start = clock()
        expected = [job(i) for i in range(n)]
        serial = clock() - start
        start = clock()
        out = body((job, n))
        parallel = clock() - start
        check(list(out) == expected, f"{self.id}: results differ from the serial run")
        return {self.metrics[0].id: serial / parallel}


class FanoutZlib(Fanout):
    """W5z. As W5 with zlib.compress of 256 KiB (1 MiB would take ~1 s serially)."""
    summary = "n × zlib.compress of 256 KiB in goroutines: speedup over serial"
    id, func, sizes = "W5z", "w5", (64, 32)
    kind, payload = "zlib", 256 << 10
    metrics = (Metric("W5z", "zlib", TIMES, Target(peer="tpe"), higher_is_better=True),)


class Sleepers(Workload):
    """W6. ``w6(n) -> done``: n goroutines each sleep SLEEP with the peer's own sleep;
    returns how many finished. Scored as total wall time."""
    summary = "n goroutines each sleep 50 ms: total ms"
    id, func, sizes = "W6", "w6", (10_000, 1_000)
    metrics = (Metric("W6", "sleepers", MS, Target(100e-3, full_size_only=True)),)

    def score(self, n, arg, out, elapsed):
        check(out == n, f"W6: {out!r} of {n} sleepers finished")
        check(elapsed >= SLEEP * 0.99, "W6: finished before the sleep could have elapsed")
        return {self.metrics[0].id: elapsed}


class BlockingCalls(Sleepers):
    """W7. ``w7(n) -> done``: n goroutines each call ``time.sleep(SLEEP)``, which knows
    nothing of the runtime and blocks its OS thread. Scored as total wall time."""
    summary = "n goroutines each call time.sleep(0.05), blocking their OS thread: total s"
    id, func, sizes = "W7", "w7", (200, 40)
    metrics = (Metric("W7", "blocking", SEC, Target(0.5, strict=True, full_size_only=True)),)


class Parked(Workload):
    """W8. ``w8(n) -> (rss_delta, wake_seconds, woken)``: after a warm-up, take RSS,
    park n goroutines on one channel (or the peer's nearest broadcast primitive), take
    RSS again once all are parked, then time waking all of them with one close/set until
    every one has run. The body does its own timing because RSS must be read mid-way."""
    summary = "n goroutines parked on one channel: RSS KiB each; wake all by close: µs each"
    id, func, sizes = "W8", "w8", (100_000, 10_000)
    metrics = (Metric("W8", "memory", KIB, Target(16 * 1024.0)),
               Metric("W8w", "wake-all", US, Target(1e-6)))
    fresh_process = True
    warm_up = False

    def measure(self, body, n):
        gc.collect()
        rss_delta, wake_seconds, woken = body(n)
        check(woken == n, f"W8: {woken!r} of {n} parked goroutines woke")
        return {"W8": rss_delta / n, "W8w": wake_seconds / n}


class LockUncontended(Workload):
    """W9. ``w9(n) -> count``: one goroutine does lock(); count += 1; unlock() n times."""
    summary = "uncontended lock+unlock: µs per pair"
    id, func, sizes = "W9", "w9", (1_000_000, 100_000)
    metrics = (Metric("W9", "mutex", US, Target(peer="threads")),)

    def score(self, n, arg, out, elapsed):
        check(out == n, f"W9: count {out!r}, expected {n}")
        return {"W9": elapsed / n}


class LockContended(Workload):
    """W9c. ``w9c(n) -> counter``: two goroutines each do n // 2 times
    lock(); shared += 1; unlock() on one mutex. n is even."""
    summary = "2 goroutines incrementing a shared counter under one lock: µs per increment"
    id, func, sizes = "W9c", "w9c", (200_000, 20_000)
    metrics = (Metric("W9c", "contended", US),)

    def score(self, n, arg, out, elapsed):
        expected = 2 * (n // 2)
        check(out == expected, f"W9c: counter {out!r}, expected {expected}: lost updates")
        return {"W9c": elapsed / expected}


WORKLOADS = [SpawnJoin(), PingPong(), Stream(), Select4(), Fanout(), FanoutZlib(),
             Sleepers(), BlockingCalls(), Parked(), LockUncontended(), LockContended()]
BY_ID = {w.id: w for w in WORKLOADS}
METRIC_OWNER = {m.id: w for w in WORKLOADS for m in w.metrics}  # metric id -> workload


def select_workloads(only: Optional[list]) -> list:
    """``only`` holds ids like "W1" or "W5"; "W5" also selects the variant "W5z"."""
    if not only:
        return list(WORKLOADS)
    wanted = [s.strip().upper() for s in only if s.strip()]

    def chosen(w):
        wid = w.id.upper()
        return any(wid == s or (wid.startswith(s) and wid[len(s):].isalpha()) for s in wanted)

    return [w for w in WORKLOADS if chosen(w)]
