"""C1-C7 of docs/benchmarks.md: gopy's C API against Go's own runtime, in one run.

C7s is C7 with gopy's goroutines started by gopy_go_small (gopy_bench --small),
beside the same Go program: Go's goroutines start small without being asked.

Builds c/ against include/gopy.h and build/libgopyrt.a, and go/ with `go build`,
into a temporary directory; runs every workload in a process of its own, gopy
and Go alternately, `reps` times; reports the medians and gopy's ratio to Go.
Only ratios from one run mean anything on a shared, noisy machine.

    python benchmarks/native/native.py [--quick] [--reps N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
C_SOURCES = HERE / "c"
GO_SOURCES = HERE / "go"
INCLUDE = REPO / "include"
RUNTIME_LIB = REPO / "build" / "libgopyrt.a"

WORKLOADS = ("C1", "C2", "C3", "C4", "C5", "C6", "C7", "C7s")
# The "workload" keys of the JSON lines each program prints for a workload.
MEASUREMENTS = {
    "C1": ("C1",),
    "C2": ("C2",),
    "C3": ("C3",),
    "C4": ("C4",),
    "C5": ("C5-uncontended", "C5-contended"),
    "C6": ("C6",),
    "C7": ("C7-memory", "C7-wake"),
    "C7s": ("C7s-memory", "C7s-wake"),
}
# Workloads that run another's program with arguments of their own per side;
# their figures are renamed after them ("C7-memory" -> "C7s-memory").
VARIANTS = {"C7s": ("C7", {"gopy": ["--small"], "go": []})}
SIDES = ("gopy", "go")

TARGET_RATIO = 1.5
# Measurements whose target is an absolute figure for gopy, not a ratio to Go.
ABSOLUTE_TARGETS = {"C7-memory": 4096.0}  # bytes per parked goroutine
# Units where more is better (a speedup): the ratio is then Go's over gopy's, so
# that a ratio above 1 always means gopy is behind.
HIGHER_IS_BETTER_UNITS = {"x"}

BUILD_TIMEOUT_S = 600
RUN_TIMEOUT_S = {False: 300, True: 60}


class Unavailable(Exception):
    """A side could not be built or run; the message says why."""


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _run_command(cmd: list[str], *, cwd: Path, timeout: float,
                 env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{cmd[0]} timed out after {timeout:.0f} s") from None
    except OSError as e:
        raise Unavailable(f"cannot run {cmd[0]}: {e}") from None
    if proc.returncode != 0:
        raise Unavailable(f"{' '.join(cmd[:3])} ... failed: "
                          f"{_tail(proc.stderr or proc.stdout)}")


def build_gopy(outdir: Path) -> Path:
    """Link the C programs against the static runtime, made (or brought up
    to date: make is incremental) first, so a stale library is never timed."""
    _run_command(["make", "-C", "src/runtime"], cwd=REPO, timeout=BUILD_TIMEOUT_S)
    if not RUNTIME_LIB.exists():
        raise Unavailable(f"make -C src/runtime did not produce "
                          f"{RUNTIME_LIB.relative_to(REPO)}")
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise Unavailable(f"no C compiler ({cc})")
    binary = outdir / "gopy_bench"
    sources = sorted(str(p) for p in C_SOURCES.glob("*.c"))
    _run_command([cc, "-O2", "-std=c11", f"-I{INCLUDE}", *sources, str(RUNTIME_LIB),
                  "-lpthread", "-o", str(binary)], cwd=REPO, timeout=BUILD_TIMEOUT_S)
    return binary


def build_go(outdir: Path) -> Path:
    """Build the Go twins; offline, and without stamping VCS state of this checkout."""
    go = shutil.which("go")
    if go is None:
        raise Unavailable("go is not installed (Debian: golang-go)")
    env = dict(os.environ, GOPROXY="off", GOFLAGS="-buildvcs=false")
    if not (env.get("GOCACHE") or env.get("HOME") or env.get("XDG_CACHE_HOME")):
        env["GOCACHE"] = str(outdir / "gocache")
    binary = outdir / "gobench"
    _run_command([go, "build", "-o", str(binary), "."], cwd=GO_SOURCES,
                 env=env, timeout=BUILD_TIMEOUT_S)
    return binary


def _run_env(side: str, procs: int | None = None) -> dict[str, str]:
    """The environment of one run. procs: GOMAXPROCS for both sides (both read it
    from the environment at start); None: gopy inherits ours, Go gets its default."""
    env = dict(os.environ)
    if procs is not None:
        env["GOMAXPROCS"] = str(procs)
    elif side == "go":
        env.pop("GOMAXPROCS", None)  # Go's default, as the workloads assume
    return env


def run_workload(binary: Path, side: str, workload: str, quick: bool,
                 procs: int | None = None) -> list[dict]:
    """Run one workload in a fresh process; return the JSON lines it printed.

    A nonzero exit whose reason is in the lines (a failed check) returns them;
    any other failure raises Unavailable."""
    program, args = VARIANTS.get(workload, (workload, {}))
    cmd = [str(binary), *args.get(side, []), program] + (["--quick"] if quick else [])
    timeout = RUN_TIMEOUT_S[quick]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=_run_env(side, procs))
    except subprocess.TimeoutExpired:
        raise Unavailable(f"{workload} timed out after {timeout} s") from None
    lines = []
    for text in proc.stdout.splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if program != workload and str(line.get("workload", "")).startswith(program):
            line["workload"] = workload + line["workload"][len(program):]
        lines.append(line)
    if proc.returncode != 0 and all(line.get("check") == "ok" for line in lines):
        if proc.returncode < 0:
            how = f"killed by {signal.Signals(-proc.returncode).name}"
        else:
            how = f"exit status {proc.returncode}"
        stderr = _tail(proc.stderr)
        raise Unavailable(f"{workload}: {how}" + (f": {stderr}" if stderr else ""))
    return lines


def _ratio(unit: str, gopy: float | None, go: float | None) -> float | None:
    if gopy is None or go is None or gopy <= 0 or go <= 0:
        return None
    return go / gopy if unit in HIGHER_IS_BETTER_UNITS else gopy / go


def _row(key: str, meta: dict, samples: dict, problems: dict) -> dict:
    medians = {side: statistics.median(line["value"] for line in samples[side][key])
               if samples[side][key] else None for side in SIDES}
    desc, unit = meta.get(key, ("", ""))
    ratio = _ratio(unit, medians["gopy"], medians["go"])
    target_abs = ABSOLUTE_TARGETS.get(key)
    if target_abs is not None:
        meets = None if medians["gopy"] is None else medians["gopy"] <= target_abs
    else:
        meets = None if ratio is None else ratio <= TARGET_RATIO
    missing = [f"{side}: {problems[side].get(key, 'no result')}"
               for side in SIDES if medians[side] is None]
    return {
        "workload": key,
        "desc": desc,
        "gopy": medians["gopy"],
        "go": medians["go"],
        "unit": unit,
        "ratio": ratio,
        "target_ratio": None if target_abs is not None else TARGET_RATIO,
        "target_abs": target_abs,
        "meets_target": meets,
        "skipped": "; ".join(missing) or None,
        "samples": {side: [line["value"] for line in samples[side][key]] for side in SIDES},
    }


def _drop_checksum_mismatches(samples: dict, problems: dict) -> None:
    """Where both sides print a checksum (C6), gopy's must equal Go's."""
    for key, gopy_lines in samples["gopy"].items():
        go_sums = {line["checksum"] for line in samples["go"][key] if "checksum" in line}
        gopy_sums = {line["checksum"] for line in gopy_lines if "checksum" in line}
        if go_sums and gopy_sums and gopy_sums != go_sums:
            problems["gopy"][key] = (f"checksum {sorted(gopy_sums)} differs from "
                                     f"Go's {sorted(go_sums)}")
            gopy_lines.clear()


GO_BINARY = "gobench"  # what build_go makes, and what --go-bin DIR of cores.py holds


def build(outdir: Path, go_dir: Path | None = None,
          progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """Build both sides into outdir: ({side: binary}, {side: why it has none}).

    go_dir: a directory for Go's binary instead of outdir; one already there
    (say, built on another machine and carried here) is used as it is."""
    note = progress or (lambda message: None)
    outdir = Path(outdir).resolve()  # the builds run elsewhere (go: in GO_SOURCES)
    go_dir = outdir if go_dir is None else Path(go_dir).resolve()
    binaries, failures = {}, {}
    for side in SIDES:
        if side == "go" and (go_dir / GO_BINARY).is_file():
            binaries[side] = go_dir / GO_BINARY
            continue
        note(f"building {side}")
        try:
            if side == "gopy":
                binaries[side] = build_gopy(outdir)
            else:
                go_dir.mkdir(parents=True, exist_ok=True)
                binaries[side] = build_go(go_dir)
        except Unavailable as e:
            failures[side] = f"build failed: {e}"
    return binaries, failures


def run_native(quick: bool, reps: int = 3,
               progress: Callable[[str], None] | None = None, *,
               procs: int | None = None, binaries: dict | None = None,
               build_failures: dict | None = None, workloads=WORKLOADS) -> list[dict]:
    """Run C1-C7 for gopy and Go; one row per measurement, medians of `reps` runs.

    Row: workload, desc, gopy, go, unit, ratio (above 1: gopy behind Go),
    target_ratio (or target_abs for C7-memory), meets_target, skipped (why a
    side has no figure, else None), samples ({side: each run's figure}).

    procs: GOMAXPROCS for both sides (None: see _run_env). binaries, build_failures:
    what build() returned, to run binaries built once for several calls; None:
    build into a temporary directory now. workloads: a subset of WORKLOADS."""
    if binaries is None:
        with tempfile.TemporaryDirectory(prefix="gopy-native-") as tmp:
            built, failures = build(Path(tmp), progress=progress)
            return run_native(quick, reps, progress, procs=procs, binaries=built,
                              build_failures=failures, workloads=workloads)

    workloads = [w for w in WORKLOADS if w in workloads]
    keys = [key for workload in workloads for key in MEASUREMENTS[workload]]
    samples: dict = {side: {key: [] for key in keys} for side in SIDES}
    problems: dict = {side: {} for side in SIDES}  # side -> key -> why no figure
    broken: dict = {side: set() for side in SIDES}  # workloads not to run again
    meta: dict = {}  # key -> (desc, unit), as the programs print them
    note = progress or (lambda message: None)
    for side, why in (build_failures or {}).items():
        for key in keys:
            problems[side][key] = why

    for rep in range(reps):
        for workload in workloads:
            # Alternate which side goes first, so neither always meets a
            # machine the other has just warmed or loaded.
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                if side not in binaries or workload in broken[side]:
                    continue
                note(f"rep {rep + 1}/{reps} {workload} {side}")
                try:
                    lines = run_workload(binaries[side], side, workload, quick, procs)
                except Unavailable as e:
                    broken[side].add(workload)
                    for key in MEASUREMENTS[workload]:
                        problems[side][key] = str(e)
                    continue
                for line in lines:
                    key = line.get("workload")
                    if key not in samples[side]:
                        continue
                    meta.setdefault(key, (line["desc"], line["unit"]))
                    if line.get("check") == "ok":
                        samples[side][key].append(line)
                    else:  # a wrong result: its timing means nothing
                        problems[side][key] = str(line.get("check"))
                        samples[side][key].clear()
                        broken[side].add(workload)

    _drop_checksum_mismatches(samples, problems)
    return [_row(key, meta, samples, problems) for key in keys]


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def format_table(rows: list[dict]) -> str:
    header = ("workload", "desc", "gopy", "go", "unit", "ratio", "target", "status")
    table = [header]
    for row in rows:
        if row["target_abs"] is not None:
            target = f"<= {row['target_abs']:g}"
        else:
            target = f"<= {row['target_ratio']:g}x"
        if row["skipped"]:
            status = "skipped: " + row["skipped"]
        else:
            status = {True: "ok", False: "MISS", None: "-"}[row["meets_target"]]
        table.append((row["workload"], row["desc"], _fmt(row["gopy"]), _fmt(row["go"]),
                      row["unit"], _fmt(row["ratio"]), target, status))
    widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[-1]
                     for r in table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes")
    parser.add_argument("--reps", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = run_native(args.quick, args.reps,
                      progress=lambda message: print(f"  {message}", file=sys.stderr))
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
