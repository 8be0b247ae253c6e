"""Run the workloads for gopy and each peer, and report medians, ratios and targets.

Each peer runs in a worker process of its own (``python -c ... worker_main(peer)``),
driven over a line-based JSON protocol. This keeps gevent, trio, pygolang and gopy out of
each other's way, lets a hang or crash in one peer (gopy is young) become a table cell
instead of the end of the run, and still interleaves the repetitions of all peers so
that drift on a noisy machine hits every peer alike. W8 and W13 (memory) get a fresh
worker per measurement so their RSS figures start clean. The workloads a peer lists in
``PATCHED`` (gevent, runloom: W11-W13, where the stdlib must cooperate) run in a second
worker of that peer, started with GOPY_BENCH_PATCH=1 so that the module monkey-patches
the stdlib at import; the first worker stays unpatched.

Use from code::

    from benchmarks.harness import run, format_table
    results = run(["W1", "W3"], quick=True)
    print(format_table(results))
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

if __package__ in (None, ""):  # `python benchmarks/harness.py`: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "benchmarks"

# Relative imports: this runs as `benchmarks` in a checkout and as `gopy._bench` in an
# install (setup.py ships it there for `python -m gopy`).
from .py import PATCH_ENV, PEERS
from .workloads import (BY_ID, IMPORT_ROOT, METRIC_OWNER, WrongResult, cost_ratio,
                        select_workloads)

REFERENCE = "gopy"
DEFAULT_REPS = {False: 5, True: 3}            # by quick
DEFAULT_TIMEOUT = {False: 300.0, True: 60.0}  # seconds per measurement, by quick
PEER_HELP = {
    "gopy": "gopy (this project)",
    "asyncio": "asyncio",
    "threads": "threading + queue.Queue",
    "tpe": "concurrent.futures.ThreadPoolExecutor",
    "gevent": "gevent",
    "trio": "trio",
    "pygolang": "pygolang, thread runtime",
    "runloom": "runloom, one hub on a GIL build",
}


# ============================================================================ results

@dataclass
class Cell:
    """One peer's figure for one metric."""
    status: str                      # ok | n/a | skipped | error | wrong | timeout
    value: Optional[float] = None    # median of the samples, SI units
    samples: list = field(default_factory=list)
    n: Optional[int] = None          # goroutines / items / operations actually run
    note: Optional[str] = None       # idiom used, cap, reason for "—", or the error
    capped: bool = False             # n below the workload's size for a semantic reason


@dataclass
class Result:
    """One row of the table: a metric of a Python workload, or a native (C) row."""
    id: str
    label: str
    unit: str
    scale: float                      # shown value = SI value / scale
    higher_is_better: bool
    cells: dict                       # peer -> Cell
    target: Optional[str] = None
    met: Optional[bool] = None
    met_reason: Optional[str] = None  # why `met` is None, or how a False missed
    ratio: Optional[float] = None     # python: best peer ÷ gopy; native: gopy ÷ go
    ratio_ref: Optional[str] = None   # which peer that ratio is against
    ratios: dict = field(default_factory=dict)  # python: peer -> peer ÷ gopy
    source: str = "python"            # python | native
    desc: str = ""

    def figure(self, peer: str) -> Optional[float]:
        cell = self.cells.get(peer)
        return cell.value if cell is not None and cell.status == "ok" else None


class Report(list):
    """list[Result], plus what the table needs around it."""

    def __init__(self, results=(), meta=None, peers=(), versions=None, skipped=None,
                 notes=None):
        super().__init__(results)
        self.meta = meta or {}
        self.peers = list(peers)           # peer columns, in order
        self.versions = versions or {}     # peer -> version string
        self.skipped = skipped or {}       # peer -> why it did not run
        self.notes = notes or []           # run-wide notes (native hook, ...)

    def to_dict(self) -> dict:
        return {"meta": self.meta, "peers": self.peers, "versions": self.versions,
                "skipped": self.skipped, "notes": self.notes,
                "results": [asdict(r) for r in self]}


def median(samples: list) -> Optional[float]:
    return statistics.median(samples) if samples else None


# ============================================================================ worker side

_WORKER_BOOT = ("import sys; sys.path.append({root!r}); "
                "from {package}.harness import worker_main; worker_main(sys.argv[1])")


def worker_main(peer: str) -> None:
    """Child process: import the peer module, then measure workloads on request.

    Requests on stdin: {"workload": id, "n": n}. Replies on the original stdout:
    {"ok": true, "metrics": {...}} or {"ok": false, "wrong": bool, "error": str}.
    The peer's own prints go to stderr, which the harness keeps for error reports.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(msg):
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    try:
        import importlib
        module = importlib.import_module(f"{__package__}.py.{peer}_w")
        version = module.version()
    except Exception as exc:  # not installed, or broken: the harness names it skipped
        reply({"ready": False, "reason": f"{type(exc).__name__}: {exc}"})
        os._exit(0)
    no_equivalent = dict(module.NO_EQUIVALENT)
    no_equivalent.update((w.id, why) for w in BY_ID.values() if (why := w.why_not_here()))
    reply({"ready": True, "version": version,
           "has": [w.id for w in BY_ID.values()
                   if all(hasattr(module, f) for f in (w.func, *w.also))
                   and w.id not in no_equivalent],
           "no_equivalent": no_equivalent, "notes": module.NOTES,
           "caps": {k: list(v) for k, v in module.CAPS.items()},
           "patched": sorted(getattr(module, "PATCHED", ()))})

    for line in sys.stdin:
        request = json.loads(line)
        workload = BY_ID[request["workload"]]
        try:
            metrics = workload.measure_module(module, request["n"])
            reply({"ok": True, "metrics": metrics})
        except BaseException as exc:
            reply({"ok": False, "wrong": isinstance(exc, WrongResult),
                   "error": f"{type(exc).__name__}: {exc}"})
    # Skip interpreter teardown: a peer's leftover threads or goroutines must not hang us.
    os._exit(0)


# ============================================================================ parent side

class WorkerFailed(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status  # timeout | error | wrong


class PeerProcess:
    """A worker process for one peer, and the harness's end of the protocol.
    ``patched``: the peer module monkey-patches the stdlib at import (PATCH_ENV).
    ``env``: variables to set in the worker beside ours (GOMAXPROCS, for gopy)."""

    def __init__(self, peer: str, patched: bool = False, env: Optional[dict] = None):
        self.peer = peer
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ, **(env or {}))
        env.pop(PATCH_ENV, None)
        if patched:
            env[PATCH_ENV] = "1"
        self.proc = subprocess.Popen(
            [sys.executable, "-c",
             _WORKER_BOOT.format(root=IMPORT_ROOT, package=__package__), peer],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            text=True, bufsize=1, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.hello: Optional[dict] = None

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)  # EOF: the process ended

    def _receive(self, timeout: float) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close(kill=True)
            raise WorkerFailed("timeout", f"no answer within {timeout:.0f} s") from None
        if line is None:
            code = self.proc.wait()
            raise WorkerFailed("error", f"worker died (exit {code}){self.stderr_tail()}")
        return json.loads(line)

    def wait_ready(self, timeout: float = 60.0) -> dict:
        if self.hello is None:
            self.hello = self._receive(timeout)
        return self.hello

    def measure(self, workload_id: str, n: int, timeout: float) -> dict:
        self.proc.stdin.write(json.dumps({"workload": workload_id, "n": n}) + "\n")
        self.proc.stdin.flush()
        reply = self._receive(timeout)
        if not reply["ok"]:
            raise WorkerFailed("wrong" if reply["wrong"] else "error", reply["error"])
        return reply["metrics"]

    def stderr_tail(self, chars: int = 400) -> str:
        try:
            self.stderr.seek(0)
            text = self.stderr.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        return f": …{text[-chars:]}" if text else ""

    def close(self, kill: bool = False):
        if self.proc.poll() is None:
            try:
                if kill:
                    self.proc.kill()
                else:
                    self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


class Progress:
    """A one-line counter on stderr ("[ 12/150] W3 gevent rep 2/5"); plain lines if
    stderr is not a terminal."""

    def __init__(self, total: int, enabled: bool, stream=None):
        self.total, self.done, self.enabled = total, 0, enabled
        self.stream = stream or sys.stderr
        self.tty = self.enabled and self.stream.isatty()
        self.width = 0
        self.started = time.monotonic()
        self.last_heading = None

    def show(self, text: str, heading: Optional[str] = None):
        if not self.enabled:
            return
        if self.tty:
            counter = (f"[{self.done:>{len(str(self.total))}}/{self.total}] "
                       if self.total else "")
            line = f"{counter}{time.monotonic() - self.started:5.0f} s  {text}"[:99]
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
            self.stream.flush()
        elif heading and heading != self.last_heading:
            self.last_heading = heading
            counter = f"[{self.done}/{self.total}] " if self.total else ""
            self.stream.write(f"{counter}{heading}\n")
            self.stream.flush()

    def advance(self, steps: int = 1):
        self.done += steps

    def finish(self):
        if self.tty:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


@dataclass
class _PeerInfo:
    has: set
    no_equivalent: dict
    notes: dict
    caps: dict
    patched: set      # workload ids run in the peer's monkey-patched worker


def _ready(worker: PeerProcess) -> PeerProcess:
    hello = worker.wait_ready()
    if not hello["ready"]:
        worker.close()
        raise WorkerFailed("error", hello["reason"])
    return worker


def _plan_size(workload, peer_info: _PeerInfo, quick: bool, sizes=None):
    """(n, cap note or None, capped) for this peer on this workload; ``sizes``:
    {workload id: n} to run instead of the workload's own size."""
    n = (sizes or {}).get(workload.id) or workload.size(quick)
    cap, reason = peer_info.caps.get(workload.id, (None, None))
    if cap is not None and cap < n:
        return cap, reason, reason is not None
    return n, None, False


def run(workloads=None, quick: bool = False, reps: Optional[int] = None,
        progress: bool = True, peers=None, native: bool = True,
        timeout: Optional[float] = None, env: Optional[dict] = None,
        sizes: Optional[dict] = None, size: Optional[int] = None) -> Report:
    """Run the selected workloads (ids like "W1", or "W1,W3"; all when None) for each
    peer and return the rows of the table. Peers not installed are named in
    ``report.skipped``; they never vanish silently.

    ``env``: variables to set in the peers' workers (``{"GOMAXPROCS": "2"}``: gopy's
    runtime reads it at start). ``sizes``: {workload id: n} instead of the workloads'
    own sizes; ``size``: one n for every selected workload (goroutines, items,
    operations), as in a figure recorded at another size. None reaches the native rows."""
    if isinstance(workloads, str):
        workloads = workloads.split(",")
    selected = select_workloads(workloads)
    reps = reps or DEFAULT_REPS[quick]
    timeout = timeout or DEFAULT_TIMEOUT[quick]
    unknown = [p for p in peers or () if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown peers {unknown}; known: {PEERS}")
    peers = [p for p in PEERS if not peers or p in peers]  # gopy first, then a fixed order

    if size:
        sizes = {**{w.id: size for w in selected}, **(sizes or {})}
    report = Report(peers=peers, meta=run_meta(quick, reps, env))
    report.meta["size"] = size
    report.meta["sizes"].update(sizes or {})
    workers: dict = {}   # (peer, patched) -> its worker (fresh-process workloads: none)
    info: dict = {}      # peer -> _PeerInfo
    started = {p: PeerProcess(p, env=env) for p in peers}  # together: imports overlap
    try:
        for peer, worker in started.items():
            try:
                hello = worker.wait_ready()
            except WorkerFailed as exc:
                hello = {"ready": False, "reason": str(exc)}
            if not hello["ready"]:
                report.skipped[peer] = hello["reason"]
                worker.close()
                continue
            workers[(peer, False)] = worker
            report.versions[peer] = hello["version"]
            info[peer] = _PeerInfo(set(hello["has"]), hello["no_equivalent"],
                                   hello["notes"], {k: tuple(v) for k, v in hello["caps"].items()},
                                   set(hello["patched"]))

        steps = sum((reps + w.warm_up) * sum(w.id in info[p].has for p in info)
                    for w in selected)
        bar = Progress(steps, progress)
        for workload in selected:
            # The note explains a workload's own size, which --size replaces.
            note = None if size else workload.limits_note(quick)
            if note:
                report.notes.append(note)
            report.extend(_run_workload(workload, peers, info, workers, report.skipped,
                                        quick, reps, timeout, bar, env, sizes))
        bar.finish()
    finally:  # also on Ctrl-C: no worker outlives the run
        for worker in [*started.values(), *workers.values()]:
            worker.close()

    if native:
        _add_native(report, workloads, quick, progress)
    return report


def _run_workload(workload, peers, info, workers, skipped, quick, reps, timeout, bar,
                  env=None, sizes=None):
    cells = {}                    # peer -> {metric id -> Cell}
    runnable = []
    for peer in peers:
        if peer in skipped:
            cells[peer] = {m.id: Cell("skipped", note=None) for m in workload.metrics}
            continue
        pi = info[peer]
        if workload.id not in pi.has:
            reason = pi.no_equivalent.get(workload.id, "not implemented for this peer")
            cells[peer] = {m.id: Cell("n/a", note=reason) for m in workload.metrics}
            continue
        n, cap_note, capped = _plan_size(workload, pi, quick, sizes)
        note = "; ".join(x for x in (pi.notes.get(workload.id), cap_note) if x) or None
        cells[peer] = {m.id: Cell("ok", n=n, note=note, capped=capped) for m in workload.metrics}
        runnable.append(peer)

    def measure(peer, n, label):
        bar.show(f"{workload.id} {peer:<8} {label}", heading=f"{workload.id} ({label})")
        patched = workload.id in info[peer].patched
        if workload.fresh_process:
            worker = _ready(PeerProcess(peer, patched, env))
            try:
                return worker.measure(workload.id, n, timeout)
            finally:
                worker.close()
        worker = workers.get((peer, patched))
        if worker is None or worker.proc.poll() is not None:  # first use, or after a failure
            worker = workers[(peer, patched)] = _ready(PeerProcess(peer, patched, env))
        return worker.measure(workload.id, n, timeout)

    failed = set()

    def attempt(peer, n, label, keep):
        try:
            metrics = measure(peer, n, label)
        except WorkerFailed as exc:
            failed.add(peer)
            for cell in cells[peer].values():
                cell.status, cell.note = exc.status, str(exc)
            return
        finally:
            bar.advance()
        if keep:
            for metric_id, value in metrics.items():
                cells[peer][metric_id].samples.append(value)

    if workload.warm_up:  # first-use costs (imports, pools, runtime start) stay out
        for peer in runnable:
            n = cells[peer][workload.metrics[0].id].n
            attempt(peer, max(2, n // 10), "warm-up", keep=False)
    for rep in range(reps):
        # Rotate the order each repetition so no peer always runs first or last.
        shift = rep % len(runnable) if runnable else 0
        for peer in runnable[shift:] + runnable[:shift]:
            if peer in failed:
                bar.advance()
                continue
            attempt(peer, cells[peer][workload.metrics[0].id].n, f"rep {rep + 1}/{reps}",
                    keep=True)
    for peer in failed:  # a worker that failed is replaced before its next workload
        for key in [(peer, False), (peer, True)]:
            if key in workers:
                workers.pop(key).close(kill=True)

    results = []
    for metric in workload.metrics:
        row = {peer: cells[peer][metric.id] for peer in peers}
        for cell in row.values():
            if cell.status == "ok":
                cell.value = median(cell.samples)
        results.append(python_result(metric, row, quick))
    return results


def python_result(metric, cells: dict, quick: bool) -> Result:
    """The row of one metric from its cells ({peer: Cell}, values set): ratios, target."""
    result = Result(id=metric.id, label=metric.label, unit=metric.unit.label,
                    scale=metric.unit.scale, higher_is_better=metric.higher_is_better,
                    cells=cells)
    figures = {peer: result.figure(peer) for peer in cells}
    gopy = figures.get(REFERENCE)
    for peer, value in figures.items():
        if peer != REFERENCE:
            ratio = cost_ratio(value, gopy, metric.higher_is_better)  # peer ÷ gopy
            if ratio is not None:
                result.ratios[peer] = ratio
    if result.ratios:
        result.ratio_ref = min(result.ratios, key=result.ratios.get)  # the best peer
        result.ratio = result.ratios[result.ratio_ref]
    if metric.target is not None:
        result.target = metric.target.describe(metric)
        result.met, result.met_reason = metric.target.judge(metric, gopy, figures, quick)
    return result


def run_meta(quick: bool, reps: int, env: Optional[dict] = None) -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "gomaxprocs_env": (env or {}).get("GOMAXPROCS", os.environ.get("GOMAXPROCS")),
        "quick": quick,
        "reps": reps,
        "size": None,
        "sizes": {w.id: w.size(quick) for w in BY_ID.values()},
        "values": "cell values and samples in SI units (seconds, bytes; speedups as plain "
                  "numbers), shown ÷ scale in `unit`; native rows in their own unit",
    }


# ============================================================================ native rows

def _add_native(report: Report, workloads, quick: bool, progress: bool) -> None:
    """Merge rows from benchmarks/native/native.py (C API against Go), if it is there."""
    wanted = [s.strip().upper() for s in workloads or [] if s.strip()]
    native_wanted = [s for s in wanted if s.startswith("C")]
    if wanted and not native_wanted:
        return  # --only named Python workloads only
    results, notes = native_results(quick, progress)
    report.notes.extend(notes)
    for result in results:
        # "C" selects every native row, "C5" selects C5-contended and C5-uncontended.
        rid = result.id.upper()
        if not native_wanted or any(s in ("C", rid) or rid.startswith(s + "-")
                                    for s in native_wanted):
            report.append(result)


def native_results(quick: bool, progress: bool, **native_kwargs) -> tuple:
    """(rows as Results, notes) from benchmarks/native/native.py's run_native(quick,
    **native_kwargs); what failed (the module missing, an exception) is a note."""
    notes = []
    try:
        from .native.native import run_native
    except ModuleNotFoundError as exc:
        if exc.name in (f"{__package__}.native", f"{__package__}.native.native"):
            # An install ships the Python harness only: the C rows link the runtime
            # built from the checkout's sources (build/libgopyrt.a) and need Go.
            notes.append("native (C) workloads skipped: they build against gopy's C "
                         "sources, which only a source checkout has (benchmarks/native; "
                         "a C compiler and Go); run `python -m gopy` there for the C rows")
        else:
            notes.append(f"native (C) workloads skipped: import failed: {exc}")
        return [], notes
    except Exception as exc:
        notes.append(f"native (C) workloads skipped: import failed: "
                     f"{type(exc).__name__}: {exc}")
        return [], notes
    bar = Progress(0, progress)
    kwargs = dict(native_kwargs)
    try:
        if "progress" in inspect.signature(run_native).parameters:
            kwargs["progress"] = lambda message: bar.show(f"native (C): {message}",
                                                          heading="native (C) workloads")
    except (TypeError, ValueError):
        pass
    bar.show("native (C): building", heading="native (C) workloads")
    try:
        rows = run_native(quick, **kwargs)
    except Exception as exc:
        notes.append(f"native (C) workloads failed: {type(exc).__name__}: {exc}")
        return [], notes
    finally:
        bar.finish()
    results = []
    for row in rows or []:
        try:
            results.append(native_result(row))
        except (KeyError, TypeError, ValueError) as exc:
            notes.append(f"native row ignored ({exc!r}): {row!r}")
    return results, notes


_HIGHER_IS_BETTER_UNITS = {"x", "×"}  # a speedup


def native_result(row: dict) -> Result:
    """Row: {"workload", "desc", "gopy", "go", "unit", "target_ratio"}; optionally
    "target_abs" (a bound on gopy's figure instead of a ratio), "higher_is_better"
    (default: unit "x"), "skipped" (why a side has no figure), "samples" ({side: each
    run's figure}; else the median stands alone)."""
    unit = str(row.get("unit", ""))
    higher = bool(row.get("higher_is_better", unit in _HIGHER_IS_BETTER_UNITS))
    cells = {}
    for side in ("gopy", "go"):
        value = row.get(side)
        samples = (row.get("samples") or {}).get(side) or [value]
        cells[side] = (Cell("ok", value=float(value), samples=[float(v) for v in samples])
                       if value is not None else
                       Cell("skipped", note=row.get("skipped") or f"no {side} figure"))
    result = Result(id=str(row["workload"]), label=str(row.get("desc", "")), unit=unit,
                    scale=1.0, higher_is_better=higher, cells=cells, source="native",
                    desc=str(row.get("desc", "")))
    result.ratio = cost_ratio(result.figure("gopy"), result.figure("go"), higher)  # gopy ÷ go
    result.ratio_ref = "go"
    gopy = result.figure("gopy")
    if row.get("target_abs") is not None:
        bound = float(row["target_abs"])
        result.target = f"{'≥' if higher else '≤'}{fmt_figure(bound)}"
        if gopy is None:
            result.met_reason = "no gopy figure"
        else:
            result.met = gopy >= bound if higher else gopy <= bound
            if not result.met:
                result.met_reason = f"gopy {fmt_figure(gopy)} {unit}, not {result.target}"
    elif row.get("target_ratio") is not None:
        judge_ratio(result, float(row["target_ratio"]))
    return result


def judge_ratio(result: Result, bound: float) -> None:
    """A C row's target: gopy ÷ Go at most `bound`; a miss says by how much."""
    result.target = f"≤{bound:g}×"
    if result.ratio is None:
        result.met, result.met_reason = None, "no gopy or no go figure"
    else:
        result.met = result.ratio <= bound
        result.met_reason = None if result.met else (
            f"gopy ÷ go = {result.ratio:.2f}, not ≤{bound:g}")


# ============================================================================ table

_CELL_TEXT = {"n/a": "—", "skipped": "skip", "error": "error", "wrong": "WRONG",
              "timeout": "timeout"}
_LABEL_W, _FIG_W, _RATIO_W = 16, 8, 6


def fmt_figure(x: Optional[float]) -> str:
    """A figure in 3-4 significant digits for a table cell; "—" for None."""
    if x is None:
        return "—"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    if a >= 0.01:
        return f"{x:.3f}"
    return f"{x:.2g}"


def _cell_text(result: Result, peer: str) -> str:
    cell = result.cells.get(peer)
    if cell is None:
        return ""
    if cell.status != "ok":
        return _CELL_TEXT.get(cell.status, cell.status)
    return fmt_figure(cell.value / result.scale) + ("*" if cell.capped else "")


def _met_text(result: Result) -> str:
    if not result.target:
        return ""
    if result.met is None:
        gopy = result.cells.get(REFERENCE)
        not_here = gopy is not None and gopy.status == "n/a"  # W15 on a GIL build
        return "n/a" if not_here or result.met_reason == "applies at full size only" else "?"
    return "yes" if result.met else "NO"


def format_table(results, width: int = 100) -> str:
    """The results as plain text that fits a `width`-column terminal."""
    import textwrap

    report = results if isinstance(results, Report) else Report(results)
    python_rows = [r for r in report if r.source == "python"]
    native_rows = [r for r in report if r.source == "native"]
    peers = report.peers or list(dict.fromkeys(p for r in python_rows for p in r.cells))
    meta = report.meta
    out = []
    if meta:
        if meta.get("size"):
            sizes = f"n={meta['size']:,} (--size)"
        else:
            sizes = "reduced sizes (--quick)" if meta.get("quick") else "full sizes"
        out.append(f"gopy benchmarks · {meta['python']} · {meta['platform']} · "
                   f"{meta['cpus']} CPUs · median of {meta['reps']} · {sizes}")
    if report.versions:
        out.append(textwrap.fill("peers: " + ", ".join(f"{p} {v}" for p, v in
                                                      report.versions.items()),
                                 width, subsequent_indent="  "))
    for peer, reason in report.skipped.items():
        out.append(textwrap.fill(f"skipped: {peer}: {reason}", width, subsequent_indent="  "))

    if python_rows:
        unit_of = {"µs": " µs", "ms": " ms", "s": " s", "KiB": " KiB", "×": " ×"}

        def line(label, figures, ratio, target, met):
            # The target last: a long one ("≤1.2×asyncio,≤gevent") pushes no column.
            return (f"{label:<{_LABEL_W}}" + "".join(f"{f:>{_FIG_W}} " for f in figures)
                    + f"{ratio:>{_RATIO_W}} {met:>3} {target}").rstrip()

        out.append("")
        out.append(line("workload", peers, "ratio", "target", "met"))
        for r in python_rows:
            label = f"{r.id} {r.label}"[:_LABEL_W - len(unit_of.get(r.unit, r.unit))]
            label += unit_of.get(r.unit, " " + r.unit)
            ratio = "" if r.ratio is None else fmt_figure(r.ratio)
            out.append(line(label, [_cell_text(r, p) for p in peers], ratio, r.target or "",
                            _met_text(r)))
        out.append(textwrap.fill(
            "ratio: the best peer's figure ÷ gopy's (where higher is better: speedups ×, "
            "requests /s, in flight n: gopy's ÷ the best peer's); > 1 means gopy is ahead. "
            "—: no honest equivalent (see notes). *: fewer goroutines than the workload's "
            "size (see notes). met n/a: the target does not apply here (a total-time target "
            "needs full sizes; W15 needs the GIL off); ?: no gopy figure; NO: the notes say which "
            "goal gopy missed, by how much.",
            width))
        out.extend(_ratio_lines(python_rows, peers, width))
        out.extend(_legend_lines(python_rows, peers, meta, width))

    if native_rows:
        out.append("")
        out.append(f"{'From C (gopy.h) against Go':<46}{'gopy':>9} {'go':>9} {'unit':<6}"
                   f"{'ratio':>6} {'target':>7} {'met':>3}")
        for r in native_rows:
            label = textwrap.shorten(f"{r.id} {r.desc}", 45, placeholder="…")
            out.append(f"{label:<46}{_cell_text(r, 'gopy'):>9} {_cell_text(r, 'go'):>9} "
                       f"{r.unit:<6}{'' if r.ratio is None else fmt_figure(r.ratio):>6} "
                       f"{r.target or '':>7} {_met_text(r):>3}".rstrip())
        out.append("ratio: gopy ÷ Go (for a speedup, Go's ÷ gopy's); > 1 means gopy is behind")
        notes = [f"{r.id} NO: {r.met_reason}" for r in native_rows if r.met is False]
        notes += [f"{r.id} {side}: {cell.note}" for r in native_rows
                  for side, cell in r.cells.items() if cell.note]
        out.extend(textwrap.fill(n, width, initial_indent="  ", subsequent_indent="    ")
                   for n in notes)
    for note in report.notes:
        out.append(textwrap.fill(note, width))
    return "\n".join(out)


def _ratio_lines(rows, peers, width) -> list:
    """A second grid: each peer's cost ÷ gopy's, when gopy ran."""
    others = [p for p in peers if p != REFERENCE]
    if not any(r.ratios for r in rows):
        return []
    lines = ["", (f"{'peer ÷ gopy':<{_LABEL_W}}"
                  + "".join(f"{p:>{_FIG_W}} " for p in others)).rstrip()]
    for r in rows:
        if r.ratios:
            lines.append((f"{r.id:<{_LABEL_W}}" + "".join(
                f"{fmt_figure(r.ratios.get(p)) if p in r.ratios else '':>{_FIG_W}} "
                for p in others)).rstrip())
    return lines


def _legend_lines(rows, peers, meta, width) -> list:
    import textwrap

    lines = [""]
    sizes = meta.get("sizes", {})
    shown = []
    for r in rows:
        workload = METRIC_OWNER.get(r.id)
        if workload is not None and workload not in shown:
            shown.append(workload)
            n = sizes.get(workload.id)
            lines.append(textwrap.shorten(
                f"{workload.id}: {'' if n is None else f'n={n:,} · '}{workload.summary}", width))
    def cells_of(peer, workload):
        return [c for r in rows if METRIC_OWNER.get(r.id) is workload
                for c in [r.cells.get(peer)] if c is not None]

    def note_of(peer, workload):
        return next((c.note for c in cells_of(peer, workload) if c.note), None)

    # A note every peer that was there shares (W15 on a GIL build) is said once.
    shared = {}
    for w in shown:
        present = [p for p in peers if any(c.status != "skipped" for c in cells_of(p, w))]
        found = {note_of(p, w) for p in present}
        if len(present) > 1 and len(found) == 1 and None not in found:
            shared[w] = found.pop()
    # Every NO first, with the goal gopy missed and by how much.
    notes = [f"{r.id} NO: {r.met_reason}" for r in rows if r.met is False]
    notes += [f"{w.id}, every peer: {n}" for w, n in shared.items()]
    for peer in peers:
        for workload in shown:
            note = note_of(peer, workload)
            if note and workload not in shared:
                notes.append(f"{peer} {workload.id}: {note}")
    if notes:
        lines.append("notes:")
        lines.extend(textwrap.fill(n, width, initial_indent="  ", subsequent_indent="    ")
                     for n in notes)
    return lines


# ============================================================================ JSON and plot

def write_json(report: Report, path: str) -> None:
    with open(path, "w") as f:
        json.dump(report.to_dict(), f, indent=1, ensure_ascii=False)
        f.write("\n")


# --quick's chart when there is no --json to put it beside.
QUICK_PLOT = os.path.join(tempfile.gettempdir(), "gopy-bench-quick.png")


class PlotUnavailable(RuntimeError):
    pass


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        # No benchmarks/requirements.txt to point at: an install has no such file.
        raise PlotUnavailable("the chart needs matplotlib, which is not installed: "
                              "pip install matplotlib") from None
    return plt


def write_plot(report: Report, path: str) -> None:
    """Bar chart of ratios: each peer ÷ gopy per Python workload (log scale), and
    gopy ÷ Go per native workload. Without gopy, peers are shown ÷ the best peer."""
    plt = _pyplot()
    from matplotlib import ticker
    python_rows = [r for r in report if r.source == "python"]
    native_rows = [r for r in report if r.source == "native" and r.ratio is not None]
    have_gopy = any(r.figure(REFERENCE) is not None for r in python_rows)
    panels = 1 + bool(native_rows)
    # Wider as rows are added, and tick labels slanted: side by side, "W10r pool÷fan" and
    # "C5-uncontended" ran into their neighbours.
    fig, axes = plt.subplots(panels, 1, squeeze=False,
                             figsize=(max(11, 0.5 * len(python_rows) + 2), 5 * panels))
    slanted = dict(rotation=35, ha="right", rotation_mode="anchor", fontsize=8)

    ax = axes[0][0]
    peers = [p for p in report.peers if (p != REFERENCE or not have_gopy)
             and any(r.figure(p) is not None for r in python_rows)]
    width = 0.8 / max(1, len(peers))
    plotted = [1.0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, peer in enumerate(peers):
        xs, ys, capped = [], [], []
        for i, r in enumerate(python_rows):
            if have_gopy:
                y = r.ratios.get(peer)
            else:
                figures = [r.figure(p) for p in report.peers if r.figure(p) is not None]
                best = (max if r.higher_is_better else min)(figures) if figures else None
                y = cost_ratio(r.figure(peer), best, r.higher_is_better)
            if y is not None:
                xs.append(i + (k - (len(peers) - 1) / 2) * width)
                ys.append(y)
                capped.append(r.cells[peer].capped)
        # Bars grow from 1 (parity): up where gopy is ahead, down where it is behind.
        # Hatched: the peer ran fewer goroutines than the workload's size.
        color = colors[k % len(colors)]
        for hatched in (False, True):
            pick = [j for j, c in enumerate(capped) if c == hatched]
            ax.bar([xs[j] for j in pick], [ys[j] - 1.0 for j in pick], width, bottom=1.0,
                   color=color, hatch="//" if hatched else None,
                   label=None if hatched else peer)
        plotted.extend(ys)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(min(plotted) / 1.5, max(plotted) * 1.5)
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    ax.set_xticks(range(len(python_rows)))
    ax.set_xticklabels([f"{r.id} {r.label}" for r in python_rows], **slanted)
    ax.set_ylabel("peer ÷ gopy (> 1: gopy ahead)" if have_gopy else
                  "peer ÷ best peer (gopy did not run)")
    ax.set_title("From Python: " + ("how many times gopy is ahead of each peer" if have_gopy
                                    else "each peer against the best peer")
                 + " (hatched: fewer goroutines, see the table's notes)", fontsize=10)
    # Legends beside the plots, where no bar can run into them.
    beside = dict(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    if peers:  # --peers gopy leaves none to draw, and --quick draws unasked
        ax.legend(**beside)

    if native_rows:
        ax = axes[1][0]
        # Red: the row missed its target, which for an absolute one (C7-memory) is not
        # the dashed line: written over its bar.
        ax.bar(range(len(native_rows)), [r.ratio for r in native_rows], 0.6,
               color=["tab:red" if r.met is False else "tab:blue" for r in native_rows])
        for i, r in enumerate(native_rows):
            if r.target and not r.target.endswith("×"):
                ax.annotate(f"target {r.target} {r.unit}", (i, r.ratio), xytext=(0, 3),
                            textcoords="offset points", ha="center", fontsize=7,
                            bbox=dict(facecolor="white", edgecolor="none", pad=1))
        ax.margins(y=0.12)  # room for a target written over the tallest bar
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(1.5, color="tab:red", linewidth=0.8, linestyle="--", label="target ≤1.5×")
        ax.set_xticks(range(len(native_rows)))
        ax.set_xticklabels([r.id for r in native_rows], **slanted)
        ax.set_ylabel("gopy ÷ Go (< 1: gopy ahead)")
        ax.set_title("From C (gopy.h) against Go (red: target missed, see the table's notes)",
                     fontsize=10)
        ax.legend(**beside)
    meta = report.meta
    if meta:
        fig.suptitle(f"{meta['python']} · {meta['platform']} · {meta['cpus']} CPUs · "
                     f"median of {meta['reps']}{' · --quick' if meta['quick'] else ''}",
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ============================================================================ command line

def main(argv=None, prog: str = "python -m benchmarks.run") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="gopy against its Python peers (and Go, for the C-API workloads). "
                    "Peers: " + ", ".join(f"{p} = {h}" for p, h in PEER_HELP.items()) + ".")
    parser.add_argument("--quick", action="store_true",
                        help="reduced sizes and 3 repetitions: the whole run takes < 1 minute")
    parser.add_argument("--only", metavar="W1,W3",
                        help="run only these workloads (W5 includes W5z, W9 includes W9c; "
                             "C selects all native rows, C5 the C5-* rows)")
    parser.add_argument("--reps", type=int, metavar="N",
                        help="repetitions per figure (default 5, --quick 3); the median is shown")
    parser.add_argument("--size", type=int, metavar="N",
                        help="n of every selected Python workload (goroutines, items, operations) "
                             "instead of its own; --json keeps each repetition's figure")
    parser.add_argument("--peers", metavar="gopy,asyncio",
                        help="run only these peers (default: all of " + ",".join(PEERS) + ")")
    parser.add_argument("--no-native", action="store_true",
                        help="skip the native (C) rows from benchmarks/native")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="seconds one measurement may take before the peer is marked "
                             "timeout (default 300, --quick 60)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also write a bar chart of the ratios (needs matplotlib); "
                             "--quick writes one by default, beside --json's file, else "
                             f"to {QUICK_PLOT}")
    parser.add_argument("--no-plot", action="store_true", help="no chart, even with --quick")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress counter on stderr")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.size is not None and args.size < 2:
        parser.error("--size must be at least 2 (W9c splits n between two goroutines)")
    if args.no_plot:
        args.plot = None
    # --quick is the first look: it draws the chart unasked, where matplotlib is there.
    default_plot = args.quick and not args.plot and not args.no_plot
    if default_plot:
        args.plot = os.path.splitext(args.json)[0] + ".png" if args.json else QUICK_PLOT
    no_chart = None  # why --quick's chart is not drawn: said under the table
    if args.plot:
        try:
            _pyplot()  # fail now, not after minutes of measuring
        except PlotUnavailable as exc:
            if not default_plot:
                parser.error(f"--plot: {exc}")
            args.plot, no_chart = None, f"no chart: {exc}"
    only = args.only.split(",") if args.only else None
    if only and not select_workloads(only) and not any(s.strip().upper().startswith("C")
                                                       for s in only):
        parser.error(f"--only {args.only}: no such workload (known: {', '.join(BY_ID)})")
    try:
        report = run(only, quick=args.quick, reps=args.reps, progress=not args.no_progress,
                     peers=args.peers.split(",") if args.peers else None,
                     native=not args.no_native, timeout=args.timeout, size=args.size)
    except ValueError as exc:
        parser.error(str(exc))
    print(format_table(report))
    # Where the files went, under the table: a default chart path is news to the reader.
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(report, args.plot)
        print(f"wrote {args.plot} (the chart)")
    elif no_chart:
        print(no_chart)
    # A wrong answer is a bug in a workload body or in a peer: make it fail the run.
    return 1 if any(c.status == "wrong" for r in report for c in r.cells.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
