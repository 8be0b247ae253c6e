"""The Python workloads W1-W17: what each one runs, how big, how it is checked and scored.

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
import json
import os
import random
import resource
import subprocess
import sys
import time
import urllib.request
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

# The folder that holds this package's top-level package (`benchmarks` or `gopy`): the
# checkout, or site-packages for an install's `gopy._bench`. Worker and server processes
# import the harness from it. Asked of the top-level package, not counted up from this
# file: an editable install maps `gopy._bench` to the checkout's benchmarks/.
IMPORT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    sys.modules[__package__.partition(".")[0]].__file__)))

clock = time.perf_counter

SLEEP = 0.05  # W6/W7: each goroutine sleeps this long (seconds)


class WrongResult(AssertionError):
    """A workload body returned a wrong answer (count, order or sum)."""


def check(ok: bool, what: str) -> None:
    # Not `assert`: checks must survive `python -O`.
    if not ok:
        raise WrongResult(what)


def _proc_status(field: str) -> int:
    """The number in a field of /proc/self/status (Linux), e.g. "Threads"."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def thread_count() -> int:
    """OS threads in this process now."""
    return _proc_status("Threads")


def peak_rss_bytes() -> int:
    """The most RSS this process image has had (VmHWM). Not getrusage's ru_maxrss:
    Linux carries that across fork and exec, so a worker would start at the RSS its
    parent had when it forked."""
    return _proc_status("VmHWM") * 1024


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc), else the peak RSS."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---------------------------------------------------------------------------- units, targets

def cost_ratio(value: Optional[float], reference: Optional[float],
               higher_is_better: bool) -> Optional[float]:
    """How many times `value` costs what `reference` costs (> 1: worse than reference).

    The single place where figures become ratios; for speedups (higher is better) the
    cost is the inverse of the figure.
    """
    if value is None or reference is None or value <= 0 or reference <= 0:
        return None
    return reference / value if higher_is_better else value / reference


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
MIB = Unit("MiB", 1024.0 * 1024.0)
PER_S = Unit("/s", 1.0)
COUNT = Unit("n", 1.0)


@dataclass(frozen=True)
class Target:
    """A goal for gopy's figure: an absolute bound, or a peer's figure in the same run.

    ``peer`` with ``factor``: gopy's figure against ``factor`` × that peer's (W10: at
    least 0.9 × ThreadPoolExecutor's speedup; W13: at most 1.2 × asyncio's time).
    ``beat``: gopy's figure must also be at least as good as each of these peers'
    ("*": every peer); a peer without a figure is left out of that comparison.
    ``full_size_only``: the bound is for the full-size workload (a total time), so it
    does not apply to --quick runs with fewer goroutines.
    """
    bound: Optional[float] = None   # SI units
    strict: bool = False            # "<" rather than "≤"
    peer: Optional[str] = None      # compare with this peer's figure instead
    factor: float = 1.0             # ... times this
    beat: tuple = ()                # peers gopy must also match or better, "*" for all
    full_size_only: bool = False

    def describe(self, metric: "Metric") -> str:
        sign = "≥" if metric.higher_is_better else "≤"
        parts = []
        if self.peer is not None:
            parts.append(sign + ("" if self.factor == 1.0 else f"{self.factor:g}×") + self.peer)
        elif self.bound is not None:
            shown = metric.unit.show(self.bound)
            strict = {"≤": "<", "≥": ">"}[sign] if self.strict else sign
            parts.append(f"{strict}{shown:g} {metric.unit.label}")
        parts.extend(sign + ("peers" if p == "*" else p) for p in self.beat)
        return ",".join(parts)

    def judge(self, metric: "Metric", gopy: Optional[float], figures: dict, quick: bool
              ) -> tuple:
        """(True, None), (False, which part was missed and by how much), or (None, why
        it cannot be judged)."""
        if quick and self.full_size_only:
            return None, "applies at full size only"
        if gopy is None:
            return None, "no gopy figure"

        def shown(value):
            return f"{metric.unit.show(value):.3g} {metric.unit.label}"

        sign = "≥" if metric.higher_is_better else "≤"
        goals = []  # (what gopy must match, shown with its figure; the figure; strict)
        if self.peer is not None:
            ref = figures.get(self.peer)
            if ref is None:
                return None, f"no {self.peer} figure"
            scaled = "" if self.factor == 1.0 else f"{self.factor:g}×"
            ref *= self.factor
            goals.append((f"{sign}{scaled}{self.peer} = {shown(ref)}", ref, self.strict))
        elif self.bound is not None:
            goals.append((self.describe(metric).split(",")[0], self.bound, self.strict))
        goals += [(f"{sign}{p} = {shown(v)}", v, False) for p, v in figures.items()
                  if v is not None and p != "gopy" and ("*" in self.beat or p in self.beat)]
        if not goals:
            return None, "no peer figure"

        def ahead(other, strict):
            if metric.higher_is_better:
                return gopy > other if strict else gopy >= other
            return gopy < other if strict else gopy <= other

        # A NO says which goal gopy missed and by how much, so that it needs no rerun.
        missed = [what + ("" if behind is None else f", {behind:.2f}× behind")
                  for what, v, strict in goals if not ahead(v, strict)
                  for behind in [cost_ratio(gopy, v, metric.higher_is_better)]]
        if not missed:
            return True, None
        return False, f"gopy {shown(gopy)}, not " + "; not ".join(missed)


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
    also: tuple = ()               # other functions of the peer module it needs
    sizes: tuple = (0, 0)          # (full, quick): goroutines / items / operations
    metrics: tuple = ()
    fresh_process: bool = False    # needs a process of its own per measurement (RSS)
    warm_up: bool = True

    def size(self, quick: bool) -> int:
        return self.sizes[1] if quick else self.sizes[0]

    def why_not_here(self) -> Optional[str]:
        """Why this workload means nothing on this interpreter, if it does not."""
        return None

    def limits_note(self, quick: bool) -> Optional[str]:
        """Why ``size`` is below ``sizes`` on this machine, if it is."""
        return None

    def measure_module(self, module, n: int) -> dict:
        """Measure with the bodies of a peer module (``func`` and those in ``also``)."""
        return self.measure(getattr(module, self.func), n)

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

    def job(self) -> Callable:
        return fanout_jobs(self.kind, self.payload)

    def measure(self, body, n):
        job = self.job()
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


# ---------------------------------------------------------------------------- pools, servers

POOL_SETTLE = 0.05    # W10-W12: after the workers reported ready, time to park in recv
_direct_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies


@dataclass(frozen=True)
class PoolSpec:
    """The input of a worker-pool body ``wN(spec) -> (results, seconds)`` (W10-W12).

    The body starts ``spec.workers`` goroutines; each signals that it is ready just
    before its first receive from a jobs channel (or queue); once all have, the body
    sleeps POOL_SETTLE so that the last of them are parked, and only then starts its
    clock, sends the jobs 0..n-1, waits until every ``results[i] = spec.call(i)`` is
    in, and stops the clock. It returns ``results`` and the seconds on the clock.

    ``spec.call(i)`` is the job as plain blocking Python (hashlib, time.sleep,
    subprocess, urllib), to be called as is in goroutines. A peer whose goroutines
    cannot make blocking calls (asyncio) runs its own form of the job from ``kind`` and
    the fields below, with the same result.
    """
    kind: str                   # sha256 | sleep | subprocess | http
    n: int                      # jobs
    workers: int
    delay: float = 0.0          # seconds a sleep, subprocess or http job blocks
    port: int = 0               # http: the server at 127.0.0.1:port
    hash_job: Optional[Callable] = None  # sha256: job(i) -> digest

    @property
    def argv(self) -> tuple:
        """subprocess: a command that exits 0 after `delay`. /bin/sleep, not python -c:
        a 50 ms job takes 54 ms with it and 68 ms with `python -S -c` (2026-12)."""
        return ("sleep", f"{self.delay:g}")

    def path(self, i: int) -> str:
        return f"/sleep/{round(self.delay * 1000)}/{i}"

    def request(self, i: int) -> bytes:
        """http: the bytes urllib.request sends for ``call(i)``'s GET. A peer that speaks
        HTTP itself sends these: the server shares the machine's cores, and a shorter
        request (HTTP/1.0, one header) cost it ~30 µs less per request (2026-12-06),
        time the peer's client got for free (docs/decisions.md, "W12's request")."""
        return (f"GET {self.path(i)} HTTP/1.1\r\nAccept-Encoding: identity\r\n"
                f"Host: 127.0.0.1:{self.port}\r\n"
                f"User-Agent: Python-urllib/{urllib.request.__version__}\r\n"
                "Connection: close\r\n\r\n").encode()

    def call(self, i: int):
        if self.kind == "sha256":
            return self.hash_job(i)
        if self.kind == "sleep":
            time.sleep(self.delay)
            return i
        if self.kind == "subprocess":
            return subprocess.run(self.argv).returncode
        url = f"http://127.0.0.1:{self.port}{self.path(i)}"
        with _direct_opener.open(url, timeout=60) as response:
            return response.read()

    def expected(self) -> list:
        if self.kind == "sha256":
            return [self.hash_job(i) for i in range(self.n)]
        if self.kind == "sleep":
            return list(range(self.n))
        if self.kind == "subprocess":
            return [0] * self.n
        return [str(i).encode() for i in range(self.n)]


def check_pool_output(out, expected: list, what: str) -> float:
    results, seconds = out
    check(list(results) == expected, f"{what}: results wrong, missing or misplaced")
    check(seconds > 0, f"{what}: no time measured")
    return seconds


class Server:
    """A server of benchmarks/servers.py in a process of its own (see there why); it
    exits when this process exits."""

    _running: dict = {}  # kind -> Server, one per kind per worker process

    def __init__(self, kind: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"{__package__}.servers", kind], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, cwd=IMPORT_ROOT)
        self.port = int(self.proc.stdout.readline())

    @classmethod
    def get(cls, kind: str) -> "Server":
        server = cls._running.get(kind)
        if server is None or server.proc.poll() is not None:
            server = cls._running[kind] = cls(kind)
        return server

    def get_json(self, path: str):
        with _direct_opener.open(f"http://127.0.0.1:{self.port}{path}", timeout=30) as r:
            return json.loads(r.read())


class PoolFanout(Workload):
    """W10. 8 workers parked on a jobs channel, then n × sha256 of 1 MiB (a job that
    releases the GIL) sent to them. Speedup over the same jobs run serially, beside the
    peer's fresh-goroutine-per-job fan-out (its W5 body) measured in the same call;
    W10r is the pool's speedup ÷ the fan-out's."""
    summary = ("8 parked workers fed n × sha256 of 1 MiB: speedup over serial; "
               "fan-out = W5 in the same run; r = pool ÷ fan-out")
    id, func, also, sizes = "W10", "w10", ("w5",), (64, 64)
    workers = 8
    metrics = (Metric("W10", "pool", TIMES, Target(peer="tpe", factor=0.9),
                      higher_is_better=True),
               Metric("W10f", "fan-out", TIMES, higher_is_better=True),
               Metric("W10r", "pool÷fan", TIMES, Target(0.9), higher_is_better=True))

    def measure_module(self, module, n):
        job = fanout_jobs("sha256", 1 << 20)
        start = clock()
        expected = [job(i) for i in range(n)]
        serial = clock() - start
        start = clock()
        out = module.w5((job, n))
        fanout = clock() - start
        check(list(out) == expected, "W10: the fan-out's results differ from the serial run")
        spec = PoolSpec("sha256", n, self.workers, hash_job=job)
        pool = check_pool_output(module.w10(spec), expected, "W10")
        return {"W10": serial / pool, "W10f": serial / fanout, "W10r": fanout / pool}


class PoolBlocking(Workload):
    """W11. 8 workers parked on a jobs channel, then n jobs that each block 50 ms:
    time.sleep, a subprocess (/bin/sleep), an HTTP GET to a local server whose handler
    sleeps. Total seconds per kind; the ideal is n / 8 rounds of 50 ms."""
    summary = ("8 parked workers fed n jobs of 50 ms each (time.sleep / subprocess / "
               "HTTP GET): total s; ideal 0.15 s")
    id, func, sizes = "W11", "w11", (24, 24)
    workers, delay = 8, 0.05
    metrics = (Metric("W11s", "sleep", SEC, Target(1.3 * 0.15)),  # same n when --quick
               Metric("W11p", "subproc", SEC, Target(1.3 * 0.15)),
               Metric("W11h", "HTTP", SEC, Target(1.3 * 0.15)))

    def measure(self, body, n):
        port = Server.get("http").port
        metrics = {}
        for metric, kind in (("W11s", "sleep"), ("W11p", "subprocess"), ("W11h", "http")):
            spec = PoolSpec(kind, n, self.workers, delay=self.delay, port=port)
            metrics[metric] = check_pool_output(body(spec), spec.expected(),
                                                f"W11 ({kind})")
        return metrics


class HttpFanout(Workload):
    """W12. 64 workers parked on a jobs channel, then n GETs with urllib.request to a
    local ThreadingHTTPServer (another process) whose handler sleeps 20 ms. Requests per
    second, and the most requests the server had in flight at once."""
    summary = ("64 parked workers make n urllib GETs to a local server whose handler "
               "sleeps 20 ms: requests/s; most in flight at the server")
    id, func, sizes = "W12", "w12", (2_000, 256)
    workers, delay = 64, 0.02
    metrics = (Metric("W12", "HTTP GETs", PER_S, Target(beat=("*",)),
                      higher_is_better=True),
               Metric("W12i", "in flight", COUNT, Target(60), higher_is_better=True))

    def measure(self, body, n):
        server = Server.get("http")
        spec = PoolSpec("http", n, self.workers, delay=self.delay, port=server.port)
        server.get_json("/reset")
        seconds = check_pool_output(body(spec), spec.expected(), "W12")
        stats = server.get_json("/stats")
        check(stats["served"] == n, f"W12: the server answered {stats['served']} of {n}")
        return {"W12": n / seconds, "W12i": stats["max_in_flight"]}


FD_HEADROOM = 500  # descriptors a W13 client process keeps for everything but its sockets


def ephemeral_ports() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = map(int, f.read().split())
        return high - low + 1
    except (OSError, ValueError):
        return 16_384  # IANA's dynamic range, the smallest common default


def fd_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1 << 30 if hard == resource.RLIM_INFINITY else hard


@dataclass(frozen=True)
class EchoSpec:
    """The input of ``w13(spec) -> received``: ``spec.n`` client goroutines, each
    connecting to 127.0.0.1:spec.port; once all are connected (each waits for that,
    parked), each does ``spec.trips`` round trips: send ``message(i, t)``, receive as
    many bytes. ``received[i]`` is everything client i received, joined."""
    n: int
    port: int
    trips: int = 10

    @staticmethod
    def message(i: int, t: int) -> bytes:
        return f"client {i:05d} trip {t:02d} ".encode().ljust(31, b".") + b"\n"

    def expected(self, i: int) -> bytes:
        return b"".join(self.message(i, t) for t in range(self.trips))

    def exchange(self, sock, i: int) -> bytes:
        """Client i's round trips over a connected socket with blocking calls (for
        goroutines that may make them); returns what it received."""
        received = []
        for t in range(self.trips):
            message = self.message(i, t)
            sock.sendall(message)
            echo = b""
            while len(echo) < len(message):
                chunk = sock.recv(len(message) - len(echo))
                if not chunk:
                    raise ConnectionError("W13: the echo server closed the connection")
                echo += chunk
            received.append(echo)
        return b"".join(received)


class ManyConnections(Workload):
    """W13. n concurrent TCP echo clients on loopback against an asyncio echo server
    (another process, the same for every peer): all connect, then each does 10 round
    trips of 32 bytes. Total seconds, the peak RSS of the client process (a fresh
    process per measurement, so the peak is this run's), and the OS threads the client
    process has at the end (idle ones included: the goal is GOMAXPROCS threads in all).

    Each side holds n sockets: n is scaled down when the hard limit on open files or
    the ephemeral port range is too small (``size`` says so in ``limits_note``)."""
    summary = ("n TCP echo clients, all connected at once, 10 round trips each, "
               "against an asyncio server process: total s; client peak RSS MiB; its threads at the end")
    id, func, sizes = "W13", "w13", (10_000, 1_000)
    metrics = (Metric("W13", "echo conns", SEC,
                      Target(peer="asyncio", factor=1.2, beat=("gevent", "runloom"))),
               Metric("W13m", "RSS", MIB,
                      Target(peer="asyncio", factor=1.2, beat=("gevent", "runloom"))),
               Metric("W13t", "threads", COUNT))
    fresh_process = True
    warm_up = False

    def size(self, quick):
        return min(super().size(quick), fd_hard_limit() - FD_HEADROOM,
                   ephemeral_ports() // 2)

    def limits_note(self, quick) -> Optional[str]:
        n, wanted = self.size(quick), super().size(quick)
        if n == wanted:
            return None
        return (f"W13: {n:,} clients, not {wanted:,}: hard limit on open files "
                f"{fd_hard_limit():,}, {ephemeral_ports():,} ephemeral ports")

    def measure(self, body, n):
        from .servers import raise_fd_limit
        raise_fd_limit()
        spec = EchoSpec(n, Server.get("echo").port)
        gc.collect()
        start = clock()
        received = body(spec)
        elapsed = clock() - start
        check(len(received) == n, f"W13: {len(received)} of {n} clients reported")
        wrong = sum(received[i] != spec.expected(i) for i in range(n))
        check(wrong == 0, f"W13: {wrong} of {n} clients got back other bytes than they sent")
        return {"W13": elapsed, "W13m": peak_rss_bytes(), "W13t": thread_count()}


def spin_for(secs: float) -> int:
    """W14's spinner: pure Python for ``secs`` (perf_counter), no call that parks or
    releases the GIL; the loop's count."""
    end = time.perf_counter() + secs
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


TICK = 0.010  # W14's ticker period


class Fairness(Workload):
    """W14. ``w14(secs) -> (ticks, spins)``: one goroutine (a thread, a task, a
    greenlet) spins ``spin_for(secs)`` beside another that counts the ticks of a 10 ms
    ticker that arrive meanwhile; both started the plain way, wherever the scheduler
    puts them.  Go preempts the spinner every 10 ms and gets ~200 ticks in 2 s;
    cooperative schedulers get none while the spinner runs."""
    summary = "a 2 s pure-Python spin beside a 10 ms ticker: ticks that got through"
    id, func, sizes = "W14", "w14", (2, 1)  # seconds of spin
    metrics = (Metric("W14", "ticks", COUNT,
                      Target(150, full_size_only=True), higher_is_better=True),)
    warm_up = False

    def score(self, n, arg, out, elapsed):
        ticks, spins = out
        check(spins > 0, "W14: the spinner never looped")
        check(elapsed >= n, f"W14: took {elapsed:.2f} s, less than the {n} s spin")
        return {"W14": float(ticks)}


def py_kernel(i: int) -> int:
    """W15's job: pure Python (no call releases the GIL), about 20 ms."""
    acc = i
    for k in range(300_000):
        acc = (acc * 31 + k) % 1_000_003
    return acc


def gil_enabled() -> bool:
    return getattr(sys, "_is_gil_enabled", lambda: True)()


class FreeThreadedFanout(Fanout):
    """W15. As W5 (``w15 = w5`` in the peers) with ``py_kernel``: 64 pure-Python jobs
    at once, scored as speedup over running them serially just before (what
    GOMAXPROCS=1 gets).  Free-threaded builds only: with a GIL, pure Python takes turns."""
    summary = "64 pure-Python CPU jobs in goroutines, GIL off: speedup over serial"
    id, func, sizes = "W15", "w15", (64, 16)
    metrics = (Metric("W15", "py CPU fan-out", TIMES, Target(0.8 * (os.cpu_count() or 1)),
                      higher_is_better=True),)

    def job(self):
        return py_kernel

    def why_not_here(self):
        return "GIL build: pure Python runs one thread at a time" if gil_enabled() else None


class LoopAwait(Workload):
    """W16. ``w16(n) -> results``: a coroutine on an asyncio loop awaits, one after
    another, n calls of ``f(i) = 2 * i`` run off the loop: in a goroutine for gopy
    (``await gopy.to_goroutine(f, i)``), on the loop's default executor for asyncio
    (``run_in_executor``), with ``asyncio.to_thread`` for threads.  The loop sleeps in
    its selector during each call, so each await pays a wake-up of the loop's thread."""
    summary = "a coroutine awaits n calls run off the loop, one at a time: µs per await"
    id, func, sizes = "W16", "w16", (5_000, 500)
    metrics = (Metric("W16", "loop await", US, Target(5e-6)),)

    def score(self, n, arg, out, elapsed):
        check(list(out) == [2 * i for i in range(n)], "W16: results lost or wrong")
        return {"W16": elapsed / n}


def loop_thread_ping_pong(n, await_get):
    """W17 for the thread-based peers: a thread echoes ints (+1) between two
    queue.SimpleQueues; the coroutine puts, then awaits ``await_get(pong.get)``
    (an awaitable running the blocking get off the loop).  The final value."""
    import asyncio
    import queue
    import threading

    ping, pong = queue.SimpleQueue(), queue.SimpleQueue()

    def server():
        while (v := ping.get()) is not None:
            pong.put(v + 1)

    async def main():
        t = threading.Thread(target=server)
        t.start()
        v = 0
        for _ in range(n):
            ping.put(v + 1)
            v = await await_get(pong.get)
        ping.put(None)
        t.join()
        return v

    return asyncio.run(main())


class LoopPingPong(Workload):
    """W17. ``w17(n) -> v``: a coroutine and a goroutine (a thread for the peers) pass an
    int back and forth n round trips, each hop adding 1, so the final value is 2n: gopy
    with ``asend``/``arecv`` on two unbuffered channels, asyncio with
    ``run_in_executor(None, queue.get)``, threads with ``asyncio.to_thread(queue.get)``."""
    summary = "coroutine ↔ goroutine (thread) ping-pong: µs per round trip"
    id, func, sizes = "W17", "w17", (5_000, 500)
    metrics = (Metric("W17", "loop ping-pong", US),)

    def score(self, n, arg, out, elapsed):
        check(out == 2 * n, f"W17: final value {out!r}, expected {2 * n}")
        return {"W17": elapsed / n}


WORKLOADS = [SpawnJoin(), PingPong(), Stream(), Select4(), Fanout(), FanoutZlib(),
             Sleepers(), BlockingCalls(), Parked(), LockUncontended(), LockContended(),
             PoolFanout(), PoolBlocking(), HttpFanout(), ManyConnections(), Fairness(),
             FreeThreadedFanout(), LoopAwait(), LoopPingPong()]
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
