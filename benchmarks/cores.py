"""Many cores: C1-C7 beside Go, and W1-W10, at GOMAXPROCS 1, 2, 4, ... in one run.

    PYTHONPATH=. python benchmarks/cores.py [--procs 1,2,16] [--quick] [--reps N]
                                            [--json FILE] [--go-bin DIR]

For each core count it prints gopy's figure, Go's (C rows: the same C1-C7 programs
as benchmarks/native, both with GOMAXPROCS set) and their ratio, and whether each
target holds there; then a summary, core count by core count, and the total time.
Targets, at every core count: every C ratio (gopy ÷ Go) ≤ 1.0, C7-wake included
(C7-memory keeps native.py's absolute bound; C6, a speedup over GOMAXPROCS=1, is not
judged at 1); W1 ≤ 1 µs, W4 ≤ 0.5 µs, W8-wake ≤ 1 µs, W6 ≤ 0.1 s (full sizes); the
other W rows with the targets benchmarks/workloads.py gives them. Targets that name a
peer (W5, W9, W10: tpe, threads) use that peer's figures, measured once at the start:
GOMAXPROCS means nothing to a thread pool.

Everything is reused: the workers, sizes, checks and targets of benchmarks/harness.py
and benchmarks/workloads.py (gopy's worker gets GOMAXPROCS in its environment, which
the runtime reads at start), and the builds and runs of benchmarks/native/native.py.
Needs the built extension; for the C rows a C compiler, make, and Go (or Go's binary
built elsewhere: `--go-bin DIR --build-only` here, then carry DIR and pass
`--go-bin DIR` there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

if __package__ in (None, ""):  # `python benchmarks/cores.py`: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import harness
from benchmarks.harness import REFERENCE, Cell, Result, fmt_figure
from benchmarks.native import native
from benchmarks.workloads import METRIC_OWNER, cost_ratio, select_workloads

PYTHON_WORKLOADS = tuple(f"W{i}" for i in range(1, 11))   # W5 brings W5z, W9 W9c
C_TARGET_RATIO = 1.0        # gopy ÷ Go, every C row but the absolute ones (C7-memory)
# By quick, for the C and the W rows alike: the harness's 5 (a full run on 2 cores
# takes ~1.5 min), and one with --quick.
DEFAULT_REPS = {False: harness.DEFAULT_REPS[False], True: 1}


# ============================================================================ pieces

def default_procs(cpus: Optional[int] = None) -> list:
    """1, 2, 4, ... below the core count, then the core count itself."""
    cpus = cpus or os.cpu_count() or 1
    procs, p = [], 1
    while p < cpus:
        procs.append(p)
        p *= 2
    return procs + [cpus]


def parse_procs(text: str) -> list:
    """"1,2,16" -> [1, 2, 16] (sorted, without repeats); ValueError if not positive ints."""
    values = sorted({int(s) for s in text.split(",") if s.strip()})
    if not values or values[0] < 1:
        raise ValueError(f"--procs {text}: want positive integers, e.g. 1,2,16")
    return values


def split_only(only) -> tuple:
    """--only W1,C2 -> (Python workload ids, C workloads of native.py); None: all."""
    if not only:
        return list(PYTHON_WORKLOADS), list(native.WORKLOADS)
    wanted = [s.strip().upper() for s in only if s.strip()]
    python = [s for s in wanted if s.startswith("W")]
    c = [w for w in native.WORKLOADS
         if any(s == "C" or s == w.upper() or s.startswith(w.upper() + "-") for s in wanted)]
    return python, c


def gopy_gomaxprocs(procs: int) -> tuple:
    """(GOMAXPROCS, gopy's path) of a fresh interpreter started the way the harness
    starts gopy's worker, with GOMAXPROCS=procs in its environment."""
    code = ("import sys; sys.path.append({root!r}); import gopy; "
            "print(gopy.runtime.gomaxprocs(), gopy.__file__)").format(root=harness.IMPORT_ROOT)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, GOMAXPROCS=str(procs)), timeout=60)
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["gopy did not import"])[-1]
    value, path = proc.stdout.split(maxsplit=1)
    return int(value), path.strip()


def peer_results(python_ids: list, quick: bool, reps: int, progress: bool,
                 timeout: Optional[float], sizes: Optional[dict] = None) -> dict:
    """{metric id: {peer: Cell}} for the peers that the targets of these workloads
    name (W5, W10: tpe; W9: threads), measured once: they do not read GOMAXPROCS."""
    selected = select_workloads(python_ids)
    need = {}  # workload id -> None, in order
    peers = set()
    for workload in selected:
        for metric in workload.metrics:
            target = metric.target
            named = ([target.peer] if target and target.peer else []) + \
                    [p for p in (target.beat if target else ()) if p != "*"]
            if named:
                need[workload.id] = None
                peers.update(named)
    if not need:
        return {}
    report = harness.run(list(need), quick=quick, reps=reps, progress=progress,
                         peers=sorted(peers), native=False, timeout=timeout, sizes=sizes)
    cells = {r.id: {p: c for p, c in r.cells.items()} for r in report}
    for peer, why in report.skipped.items():
        for row in cells.values():
            row[peer] = Cell("skipped", note=why)
    return cells


def with_peers(result: Result, peer_cells: dict, quick: bool) -> Result:
    """gopy's row with the peers' cells beside it, judged again (harness.python_result)."""
    metric = next(m for m in METRIC_OWNER[result.id].metrics if m.id == result.id)
    cells = {REFERENCE: result.cells[REFERENCE], **peer_cells.get(result.id, {})}
    return harness.python_result(metric, cells, quick)


def judge_c(result: Result, procs: int) -> Result:
    """The C rows' targets here: gopy ÷ Go ≤ C_TARGET_RATIO, at every core count;
    an absolute bound (C7-memory) stays as native.py gives it."""
    if result.id in native.ABSOLUTE_TARGETS:
        return result
    harness.judge_ratio(result, C_TARGET_RATIO)
    if result.id == "C6" and procs == 1:
        result.met, result.met_reason = None, "a speedup over GOMAXPROCS=1, at 1"
    return result


# ============================================================================ rows

@dataclass
class Row:
    """One line of a core count's table, in shown units."""
    id: str
    label: str
    unit: str
    gopy: Optional[float]
    ref: Optional[float] = None        # Go's figure (C), or the target's peer's (W)
    ref_name: Optional[str] = None     # "go", "tpe", "threads"
    ratio: Optional[float] = None      # gopy's cost ÷ ref's: > 1, gopy behind
    target: Optional[str] = None
    met: Optional[bool] = None
    why: Optional[str] = None          # why met is None or False, or a figure is missing

    @property
    def met_text(self) -> str:
        if not self.target:
            return ""
        if self.met is None:
            return "n/a" if self.why in ("applies at full size only",
                                         "a speedup over GOMAXPROCS=1, at 1") else "?"
        return "yes" if self.met else "NO"


def _cell_value(result: Result, side: str) -> Optional[float]:
    value = result.figure(side)
    return None if value is None else value / result.scale


def _cell_problem(result: Result, side: str) -> Optional[str]:
    cell = result.cells.get(side)
    if cell is None or cell.status == "ok":
        return None
    return f"{side}: {cell.status}" + (f": {cell.note}" if cell.note else "")


def row_of(result: Result) -> Row:
    if result.source == "native":
        ref_name = "go"
    else:  # the peer its target names, if any
        metric = next(m for m in METRIC_OWNER[result.id].metrics if m.id == result.id)
        ref_name = metric.target.peer if metric.target else None
    gopy, ref = _cell_value(result, REFERENCE), None
    if ref_name:
        ref = _cell_value(result, ref_name)
    ratio = cost_ratio(result.figure(REFERENCE), result.figure(ref_name),
                       result.higher_is_better) if ref_name else None
    problems = [p for p in (_cell_problem(result, REFERENCE),
                            ref_name and _cell_problem(result, ref_name)) if p]
    label = result.label if result.source == "python" else result.desc
    return Row(result.id, label, result.unit if result.source == "native"
               else {"×": "x"}.get(result.unit, result.unit),
               gopy, ref, ref_name, ratio, result.target, result.met,
               "; ".join(problems) or result.met_reason)


@dataclass
class Level:
    """The results at one GOMAXPROCS."""
    procs: int
    gopy_gomaxprocs: Optional[int] = None   # what gopy's runtime said it runs with
    seconds: float = 0.0
    rows: list = field(default_factory=list)      # Row
    results: list = field(default_factory=list)   # harness.Result, for the JSON
    notes: list = field(default_factory=list)


def run_level(procs: int, python_ids: list, c_ids: list, quick: bool, reps: int,
              progress: bool, timeout: Optional[float], peer_cells: dict,
              binaries: Optional[dict], build_failures: Optional[dict],
              sizes: Optional[dict] = None) -> Level:
    started = time.monotonic()
    level = Level(procs)
    if python_ids:
        level.gopy_gomaxprocs, where = gopy_gomaxprocs(procs)
        if level.gopy_gomaxprocs is None:
            level.notes.append(f"gopy: {where}")
        elif level.gopy_gomaxprocs != procs:
            level.notes.append(f"gopy ran with GOMAXPROCS={level.gopy_gomaxprocs}, "
                               f"not {procs} ({where})")
    if c_ids:
        results, notes = harness.native_results(
            quick, progress, reps=reps, procs=procs, binaries=binaries,
            build_failures=build_failures, workloads=c_ids)
        level.results.extend(judge_c(r, procs) for r in results)
        level.notes.extend(notes)
    if python_ids:
        report = harness.run(python_ids, quick=quick, reps=reps, progress=progress,
                             peers=[REFERENCE], native=False, timeout=timeout,
                             env={"GOMAXPROCS": str(procs)}, sizes=sizes)
        level.notes.extend(f"gopy skipped: {why}" for why in report.skipped.values())
        level.notes.extend(report.notes)
        level.results.extend(with_peers(r, peer_cells, quick) for r in report)
    level.rows = [row_of(r) for r in level.results]
    level.seconds = time.monotonic() - started
    return level


# ============================================================================ tables

def format_level(level: Level) -> str:
    out = [f"GOMAXPROCS={level.procs} ({level.seconds:.0f} s)"]
    head = (f"  {'row':<40}{'gopy':>9} {'vs':<7}{'figure':>9} {'unit':<16}"
            f"{'ratio':>6}  {'target':<12}{'met':>3}")
    out.append(head)
    for r in level.rows:
        label = f"{r.id} {r.label}"
        if len(label) > 39:
            label = label[:38] + "…"
        out.append((f"  {label:<40}{fmt_figure(r.gopy):>9} {r.ref_name or '':<7}"
                    f"{'' if r.ref_name is None else fmt_figure(r.ref):>9} {r.unit:<16}"
                    f"{'' if r.ratio is None else fmt_figure(r.ratio):>6}  "
                    f"{r.target or '':<12}{r.met_text:>3}").rstrip())
    for r in level.rows:
        if r.why and r.met_text not in ("n/a", "yes"):  # a NO says by how much
            out.append(f"  {r.id}: {r.why}")
    out.extend(f"  note: {n}" for n in level.notes)
    return "\n".join(out)


def _grid(levels: list):
    """(core counts, row ids in first-seen order, {id: {procs: Row}})."""
    procs = [lv.procs for lv in levels]
    order, rows = [], {}
    for lv in levels:
        for r in lv.rows:
            if r.id not in rows:
                order.append(r.id)
                rows[r.id] = {}
            rows[r.id][lv.procs] = r
    return procs, order, rows


def _cells(by: dict, procs: list, text) -> list:
    """text(row) for each core count, "" where the row was not run."""
    return [text(by[p]) if p in by else "" for p in procs]


def format_summary(levels: list) -> str:
    """Rows × core counts: the ratio for rows with a reference (Go, a peer), else
    gopy's figure; "!" where the target is missed, "?" where it cannot be judged."""
    procs, order, rows = _grid(levels)
    # The ratio where the target is one (C rows, W5, W9, W10); C7-memory's is bytes.
    shows_ratio = {rid: by[next(iter(by))].ref_name is not None
                   and rid not in native.ABSOLUTE_TARGETS for rid, by in rows.items()}
    names = {rid: f"{rid} {'ratio' if shows_ratio[rid] else next(iter(by.values())).unit}"
             for rid, by in rows.items()}
    width = max([len(n) for n in names.values()] + [20]) + 2
    out = ["summary: gopy ÷ Go (C rows) or ÷ the peer its target names (W5, W9, W10), "
           "> 1: gopy behind; else gopy's figure. !: target missed, ?: not judged",
           f"  {'row':<{width}}{'target':<12}" + "".join(f"{f'P={p}':>10}" for p in procs)]
    for rid in order:
        by = rows[rid]
        any_row = next(iter(by.values()))

        def summary_cell(r, ratio=shows_ratio[rid]):
            mark = {False: "!", None: "?" if r.target and r.met_text != "n/a" else ""}.get(
                r.met, "")
            return fmt_figure(r.ratio if ratio else r.gopy) + mark

        cells = _cells(by, procs, summary_cell)
        out.append(f"  {names[rid]:<{width}}{any_row.target or '':<12}"
                   + "".join(f"{c:>10}" for c in cells))
    missed = [f"P={lv.procs}: " + ", ".join(r.id for r in lv.rows if r.met is False)
              for lv in levels if any(r.met is False for r in lv.rows)]
    judged = [r for lv in levels for r in lv.rows if r.met is not None]
    held = sum(r.met for r in judged)
    out.append(f"targets held: {held} of {len(judged)} judged"
               + ("; missed at " + "; ".join(missed) if missed else ""))
    return "\n".join(out)


def _markdown_cell(r) -> str:
    text = fmt_figure(r.gopy)
    if r.ref_name:
        text += f" / {fmt_figure(r.ref)} = {fmt_figure(r.ratio)}"
    return f"**{text}** ✗" if r.met is False else text


def markdown_table(levels: list) -> str:
    """The summary as a Markdown table (for docs/decisions.md)."""
    procs, order, rows = _grid(levels)
    lines = ["| row | target | " + " | ".join(f"GOMAXPROCS={p}" for p in procs) + " |",
             "|---|---|" + "---|" * len(procs)]
    for rid in order:
        by = rows[rid]
        first = next(iter(by.values()))
        cells = _cells(by, procs, _markdown_cell)
        unit = f" {first.unit}" if first.unit else ""
        lines.append(f"| {rid}{unit} | {first.target or ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_dict(meta: dict, levels: list, peer_cells: dict) -> dict:
    return {"meta": meta,
            "peer_figures": {rid: {p: asdict(c) for p, c in cells.items()}
                             for rid, cells in peer_cells.items()},
            "levels": [{"procs": lv.procs, "gopy_gomaxprocs": lv.gopy_gomaxprocs,
                        "seconds": lv.seconds, "notes": lv.notes,
                        "rows": [asdict(r) for r in lv.rows],
                        "results": [asdict(r) for r in lv.results]} for lv in levels]}


# ============================================================================ the run

def build_binaries(outdir: Path, go_dir: Optional[Path], progress: bool) -> tuple:
    bar = harness.Progress(0, progress)
    try:
        return native.build(outdir, go_dir=go_dir,
                            progress=lambda m: bar.show(f"native (C): {m}",
                                                        heading="native (C): build"))
    finally:
        bar.finish()


def run(procs: list, quick: bool = False, reps: Optional[int] = None, only=None,
        go_dir: Optional[Path] = None, progress: bool = True,
        timeout: Optional[float] = None, sizes: Optional[dict] = None,
        on_level: Optional[Callable[[dict, list, dict], None]] = None) -> tuple:
    """Every selected row at each GOMAXPROCS in `procs`: (meta, levels, peer cells).
    ``on_level(meta, levels so far, peer cells)`` runs as each core count is done."""
    reps = reps or DEFAULT_REPS[quick]
    python_ids, c_ids = split_only(only)
    meta = harness.run_meta(quick, reps)
    meta.update(procs=list(procs), only=list(only) if only else None,
                c_target_ratio=C_TARGET_RATIO)
    meta.pop("gomaxprocs_env", None)
    if sizes:
        meta["sizes"].update(sizes)
    levels = []
    with tempfile.TemporaryDirectory(prefix="gopy-cores-") as tmp:
        binaries = failures = None
        if c_ids:
            binaries, failures = build_binaries(Path(tmp), go_dir, progress)
            meta["binaries"] = {side: str(path) for side, path in binaries.items()}
            meta["build_failures"] = failures
        peer_cells = (peer_results(python_ids, quick, reps, progress, timeout, sizes)
                      if python_ids else {})
        for p in procs:
            level = run_level(p, python_ids, c_ids, quick, reps, progress, timeout,
                              peer_cells, binaries, failures, sizes)
            levels.append(level)
            if on_level is not None:
                on_level(meta, levels, peer_cells)
    return meta, levels, peer_cells


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/cores.py",
        description="C1-C7 beside Go and W1-W10 at GOMAXPROCS 1, 2, 4, ... up to the "
                    "cores here, in one run; targets judged at each core count.")
    parser.add_argument("--procs", metavar="1,2,16",
                        help="core counts to run at (default: 1, 2, 4, ... and "
                             f"os.cpu_count(), here {','.join(map(str, default_procs()))})")
    parser.add_argument("--quick", action="store_true",
                        help="reduced sizes and 1 repetition (unless --reps): "
                             "seconds, not minutes")
    parser.add_argument("--reps", type=int, metavar="N",
                        help="repetitions per figure, C and W rows alike (default "
                             f"{DEFAULT_REPS[False]}, --quick 1); the median is shown")
    parser.add_argument("--only", metavar="W1,C2",
                        help="only these rows (W5 includes W5z, W9 W9c; C all C rows)")
    parser.add_argument("--json", metavar="FILE",
                        help="also write everything as JSON (rewritten after each core count)")
    parser.add_argument("--go-bin", metavar="DIR", type=Path,
                        help=f"Go's binary: DIR/{native.GO_BINARY} if there, else built "
                             "into DIR (to carry to a machine without Go)")
    parser.add_argument("--build-only", action="store_true",
                        help="build the C and Go binaries (Go's into --go-bin), then stop")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="seconds one W measurement may take (default 300, --quick 60)")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the summary as a Markdown table")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress counter on stderr")
    args = parser.parse_args(argv)
    if args.reps is not None and args.reps < 1:
        parser.error("--reps must be at least 1")
    try:
        procs = parse_procs(args.procs) if args.procs else default_procs()
    except ValueError as exc:
        parser.error(str(exc))
    only = args.only.split(",") if args.only else None
    if only:
        python_ids, c_ids = split_only(only)
        if not select_workloads(python_ids) and not c_ids:
            parser.error(f"--only {args.only}: no W1-W10 or C1-C7 row")
    if args.build_only:
        with tempfile.TemporaryDirectory(prefix="gopy-cores-") as tmp:
            binaries, failures = build_binaries(Path(tmp), args.go_bin, not args.no_progress)
        for side, why in failures.items():
            print(f"{side}: {why}")
        if "go" in binaries:
            print(f"go: {binaries['go']}")
        return 1 if failures else 0

    started = time.monotonic()
    reps = args.reps or DEFAULT_REPS[args.quick]
    print(f"gopy on many cores · {os.cpu_count()} CPUs · GOMAXPROCS {procs} · "
          f"median of {reps} · {'reduced sizes (--quick)' if args.quick else 'full sizes'}",
          flush=True)

    def on_level(meta, levels, peer_cells):
        print("\n" + format_level(levels[-1]), flush=True)
        if args.json:  # a run cut short still leaves the core counts it finished
            _write_json(args.json, meta, levels, peer_cells)

    try:
        meta, levels, peer_cells = run(procs, quick=args.quick, reps=reps, only=only,
                                       go_dir=args.go_bin, progress=not args.no_progress,
                                       timeout=args.timeout, on_level=on_level)
    except KeyboardInterrupt:
        print(f"\ninterrupted after {time.monotonic() - started:.0f} s", flush=True)
        return 130
    total = time.monotonic() - started
    meta["total_seconds"] = total
    print("\n" + format_summary(levels))
    if args.markdown:
        print("\n" + markdown_table(levels))
    if args.json:
        _write_json(args.json, meta, levels, peer_cells)
        print(f"wrote {args.json}", file=sys.stderr)
    print(f"total run time: {total:.0f} s ({total / 60:.1f} min)")
    wrong = any(c.status == "wrong" for lv in levels for r in lv.results
                for c in r.cells.values())
    return 1 if wrong else 0


def _write_json(path: str, meta: dict, levels: list, peer_cells: dict) -> None:
    with open(path, "w") as f:
        json.dump(to_dict(meta, levels, peer_cells), f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
