"""Before and after, for gopy alone: W1-W9 (with W5z, W8w, W9c), K repetitions, medians.

    python benchmarks/compare.py --reps 5 --json after.json
    python benchmarks/compare.py --reps 5 --against benchmarks/baseline/w1-w9-main.json

With --against, each figure is shown beside the baseline's, with their ratio as a cost
(> 1: slower now; for speedups, the baseline's ÷ now). A ratio above --tolerance is
marked SLOWER; --strict makes the command exit 1 then. On a shared, noisy machine
compare runs taken close together, and rerun a SLOWER row before believing it.

benchmarks/baseline/w1-w9-main.json: gopy's code as on main at 91f97c7 (2026-12-04),
CPython 3.11, 2 cores shared with other busy jobs, made with
    python benchmarks/compare.py --reps 5 --json benchmarks/baseline/w1-w9-main.json
"""

import argparse
import json
import os
import sys

if __package__ in (None, ""):  # `python benchmarks/compare.py`: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.harness import REFERENCE, fmt_figure, run
from benchmarks.workloads import cost_ratio

WORKLOADS = [f"W{i}" for i in range(1, 10)]   # W5 brings W5z, W9 brings W9c


def measure(reps: int, quick: bool, progress: bool) -> dict:
    report = run(WORKLOADS, quick=quick, reps=reps, progress=progress, peers=[REFERENCE],
                 native=False)
    metrics = {}
    for result in report:
        cell = result.cells[REFERENCE]
        metrics[result.id] = {"median": cell.value, "samples": cell.samples,
                              "status": cell.status, "note": cell.note,
                              "unit": result.unit, "scale": result.scale,
                              "higher_is_better": result.higher_is_better}
    return {"meta": report.meta, "version": report.versions.get(REFERENCE),
            "skipped": report.skipped.get(REFERENCE), "metrics": metrics}


def _shown(entry) -> str:
    if entry is None:
        return "—"
    if entry["median"] is None:
        return entry["status"]
    return fmt_figure(entry["median"] / entry["scale"])


def format_comparison(now: dict, base: dict = None, tolerance: float = 1.1) -> tuple:
    """(text, ids of metrics slower than the baseline by more than `tolerance`)."""
    lines = [f"gopy {now['version']} · {now['meta']['python']} · {now['meta']['cpus']} CPUs "
             f"· median of {now['meta']['reps']}"
             + (" · --quick" if now["meta"]["quick"] else "")]
    if now.get("skipped"):
        lines.append(f"gopy did not run: {now['skipped']}")
    if base is not None:
        lines.append(f"baseline: {base['meta']['date']}, gopy {base['version']}, median of "
                     f"{base['meta']['reps']}")
        if base["meta"]["quick"] != now["meta"]["quick"]:
            lines.append("WARNING: one run used --quick and the other did not: sizes differ")
    header = f"{'metric':<8}{'unit':>5}{'now':>10}"
    if base is not None:
        header += f"{'base':>10}{'now/base':>10}"
    lines.append(header)
    slower = []
    for metric_id, entry in now["metrics"].items():
        line = f"{metric_id:<8}{entry['unit']:>5}{_shown(entry):>10}"
        if base is not None:
            old = base["metrics"].get(metric_id)
            ratio = None if old is None else cost_ratio(
                entry["median"], old["median"], entry["higher_is_better"])
            line += f"{_shown(old):>10}{fmt_figure(ratio):>10}"
            if ratio is not None and ratio > tolerance:
                line += "  SLOWER"
                slower.append(metric_id)
        lines.append(line)
    if base is not None:
        lines.append("now/base: cost now ÷ cost then (speedups inverted); > 1 is slower")
    return "\n".join(lines), slower


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/compare.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--quick", action="store_true", help="reduced sizes")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--against", metavar="BASE.json",
                        help="a --json file of an earlier run: print ratios to it")
    parser.add_argument("--tolerance", type=float, default=1.1, metavar="R",
                        help="mark a metric SLOWER when now/base > R (default 1.1)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a metric is marked SLOWER")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    base = None
    if args.against:
        with open(args.against) as f:
            base = json.load(f)
    now = measure(args.reps, args.quick, not args.no_progress)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(now, f, indent=1, ensure_ascii=False)
            f.write("\n")
    text, slower = format_comparison(now, base, args.tolerance)
    print(text)
    failed = any(e["status"] != "ok" for e in now["metrics"].values())
    return 1 if failed or (args.strict and slower) else 0


if __name__ == "__main__":
    sys.exit(main())
