"""The benchmark workloads W10-W13 and their targets: results checked, never timed.

Figures come from benchmarks/ (python -m gopy); here only that the bodies compute what
the workloads check, that a wrong answer is caught, and how targets are judged.
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from conftest import ROOT

if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.py import gopy_w  # noqa: E402
from benchmarks.workloads import (BY_ID, EchoSpec, Metric, PoolSpec, Server,  # noqa: E402
                                  Target, TIMES, SEC, WrongResult, COUNT)

SPEEDUP = Metric("x", "speedup", TIMES, higher_is_better=True)
SECONDS = Metric("t", "time", SEC)


def test_target_against_a_fraction_of_one_peer():
    target = Target(peer="tpe", factor=0.9)
    assert target.describe(SPEEDUP) == "≥0.9×tpe"
    assert target.judge(SPEEDUP, 1.8, {"gopy": 1.8, "tpe": 2.0}, False) == (True, None)
    assert target.judge(SPEEDUP, 1.7, {"gopy": 1.7, "tpe": 2.0}, False) == (
        False, "gopy 1.7 ×, not ≥0.9×tpe = 1.8 ×, 1.06× behind")
    assert target.judge(SPEEDUP, 1.7, {"gopy": 1.7, "tpe": None}, False) == (
        None, "no tpe figure")


def test_target_beat_every_peer_that_ran():
    target = Target(beat=("*",))
    assert target.describe(SPEEDUP) == "≥peers"
    assert target.judge(SPEEDUP, 100, {"gopy": 100, "asyncio": 90, "gevent": None},
                        False) == (True, None)
    assert target.judge(SPEEDUP, 100, {"gopy": 100, "asyncio": 90, "threads": 120},
                        False) == (False, "gopy 100 ×, not ≥threads = 120 ×, 1.20× behind")
    assert target.judge(SPEEDUP, 100, {"gopy": 100, "tpe": None}, False) == (
        None, "no peer figure")


def test_target_factor_and_named_peers_to_beat():
    target = Target(peer="asyncio", factor=1.2, beat=("gevent", "runloom"))
    assert target.describe(SECONDS) == "≤1.2×asyncio,≤gevent,≤runloom"
    figures = {"gopy": 1.1, "asyncio": 1.0, "gevent": 1.2, "runloom": None, "tpe": 0.5}
    assert target.judge(SECONDS, 1.1, figures, False) == (True, None)
    figures["gevent"] = 1.05  # gopy within 1.2x asyncio, but behind gevent
    assert target.judge(SECONDS, 1.1, figures, False) == (
        False, "gopy 1.1 s, not ≤gevent = 1.05 s, 1.05× behind")
    figures["asyncio"] = 0.9  # 1.1 > 1.2 x 0.9, and behind gevent too: both are named
    assert target.judge(SECONDS, 1.1, figures, False) == (
        False, "gopy 1.1 s, not ≤1.2×asyncio = 1.08 s, 1.02× behind; "
               "not ≤gevent = 1.05 s, 1.05× behind")
    figures["gevent"] = 2.0
    assert target.judge(SECONDS, 1.1, figures, False)[1] == (
        "gopy 1.1 s, not ≤1.2×asyncio = 1.08 s, 1.02× behind")


def test_target_bounds_point_the_right_way():
    at_least = Metric("i", "in flight", COUNT, higher_is_better=True)
    assert Target(60).describe(at_least) == "≥60 n"
    assert Target(0.5, strict=True).describe(SECONDS) == "<0.5 s"
    assert Target(60).judge(at_least, 64, {"gopy": 64}, False) == (True, None)
    assert Target(60).judge(at_least, 59, {"gopy": 59}, False) == (
        False, "gopy 59 n, not ≥60 n, 1.02× behind")
    assert Target(0.5, strict=True).judge(SECONDS, 0.5, {"gopy": 0.5}, False) == (
        False, "gopy 0.5 s, not <0.5 s, 1.00× behind")


def test_pool_workloads_check_gopy_results():
    w10 = BY_ID["W10"].measure_module(gopy_w, 8)
    assert sorted(w10) == ["W10", "W10f", "W10r"]
    assert all(v > 0 for v in w10.values())
    w11 = BY_ID["W11"].measure_module(gopy_w, 4)
    assert sorted(w11) == ["W11h", "W11p", "W11s"]
    w12 = BY_ID["W12"].measure_module(gopy_w, 8)
    assert w12["W12"] > 0
    assert 1 <= w12["W12i"] <= 8  # never more in flight than requests made


def test_pool_spec_jobs_give_the_expected_results():
    server = Server.get("http")  # shared with the other tests of this process
    server.get_json("/reset")
    for kind in ("sleep", "subprocess", "http"):
        spec = PoolSpec(kind, 3, 1, delay=0.01, port=server.port)
        assert [spec.call(i) for i in range(3)] == spec.expected()
    assert server.get_json("/stats") == {"served": 3, "max_in_flight": 1}
    assert server.get_json("/reset")["served"] == 3
    assert server.get_json("/stats") == {"served": 0, "max_in_flight": 0}


def test_pool_spec_request_is_the_one_urllib_sends():
    """The asyncio peer sends spec.request(i) itself: the very bytes of spec.call(i)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        spec = PoolSpec("http", 8, 1, delay=0.02, port=listener.getsockname()[1])
        received = []

        def serve():
            conn, _ = listener.accept()
            with conn:
                data = b""
                while not data.endswith(b"\r\n\r\n"):
                    chunk = conn.recv(4096)
                    if not chunk:  # closed early: the comparison below fails
                        break
                    data += chunk
                received.append(data)
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n7")

        server = threading.Thread(target=serve)
        server.start()
        assert spec.call(7) == b"7"
        server.join(timeout=60)
    assert received == [spec.request(7)]
    assert spec.request(7).startswith(b"GET /sleep/20/7 HTTP/1.1\r\n")


def test_wrong_pool_results_are_caught():
    def misplaced(spec):
        results, seconds = gopy_w.w11(spec)
        return results[::-1], seconds

    with pytest.raises(WrongResult, match="sleep"):
        BY_ID["W11"].measure(misplaced, 3)


def test_echo_workload_checks_gopy_clients():
    metrics = BY_ID["W13"].measure_module(gopy_w, 20)
    assert sorted(metrics) == ["W13", "W13m", "W13t"]
    assert metrics["W13m"] > 0 and metrics["W13t"] >= 1


def test_wrong_echo_bytes_are_caught():
    def one_byte_short(spec):
        received = gopy_w.w13(spec)
        return received[:-1] + [received[-1][:-1]]

    with pytest.raises(WrongResult, match="1 of 5 clients"):
        BY_ID["W13"].measure(one_byte_short, 5)
    message = EchoSpec.message(7, 3)
    assert len(message) == 32 and message.startswith(b"client 00007 trip 03 ")


@pytest.mark.parametrize("peer", ["gopy_w", "asyncio_w", "threads_w"])
def test_loop_bridge_bodies_compute_what_w16_and_w17_check(peer):
    import importlib

    module = importlib.import_module(f"benchmarks.py.{peer}")
    assert sorted(BY_ID["W16"].measure_module(module, 50)) == ["W16"]
    assert sorted(BY_ID["W17"].measure_module(module, 50)) == ["W17"]


def test_w16_and_w17_catch_a_wrong_answer():
    with pytest.raises(WrongResult):
        BY_ID["W16"].score(3, None, [0, 2, 5], 1.0)
    with pytest.raises(WrongResult):
        BY_ID["W17"].score(3, None, 5, 1.0)


def test_cores_core_counts():
    from benchmarks import cores

    assert cores.default_procs(16) == [1, 2, 4, 8, 16]
    assert cores.default_procs(6) == [1, 2, 4, 6]
    assert cores.default_procs(1) == [1]
    assert cores.parse_procs("16,1,2,2") == [1, 2, 16]
    with pytest.raises(ValueError):
        cores.parse_procs("0,2")
    assert cores.split_only(["w1", "C5-contended", "C7"]) == (["W1"], ["C5", "C7"])
    assert cores.split_only(["c7s-memory"]) == ([], ["C7s"])
    assert cores.split_only(None) == (list(cores.PYTHON_WORKLOADS), ["C1", "C2", "C3", "C4",
                                                                      "C5", "C6", "C7", "C7s"])


@pytest.mark.timeout(300)  # builds the C program and, where Go is installed, Go's
def test_cores_runs_each_core_count_at_tiny_sizes():
    """benchmarks/cores.py's pieces, one C row and three W rows at two core counts:
    the structure of what it prints and writes, never the figures."""
    import json

    from benchmarks import cores

    meta, levels, peer_cells = cores.run(
        [1, 2], quick=True, reps=1, only=["W1", "W9", "C2"], progress=False,
        sizes={"W1": 200, "W9": 2_000, "W9c": 2_000})
    assert meta["procs"] == [1, 2] and meta["sizes"]["W1"] == 200
    assert sorted(peer_cells) == ["W9", "W9c"]  # W9's target names threads
    assert peer_cells["W9"]["threads"].status == "ok"
    assert [lv.procs for lv in levels] == [1, 2]
    for level in levels:
        assert level.gopy_gomaxprocs == level.procs  # gopy's worker ran with it
        rows = {r.id: r for r in level.rows}
        assert list(rows) == ["C2", "W1", "W9", "W9c"]
        c2 = rows["C2"]
        assert c2.ref_name == "go" and c2.target == "≤1×" and c2.unit == "ns/op"
        assert c2.gopy is not None and c2.gopy > 0, c2.why
        c2_result = next(r for r in level.results if r.id == "C2")
        assert c2_result.source == "native" and len(c2_result.cells["gopy"].samples) == 1
        if c2.ref is None:  # no Go here: the row says why
            assert "go" in c2.why and c2.met is None
        else:
            assert c2.ratio == pytest.approx(c2.gopy / c2.ref) and c2.met is not None
        assert rows["W1"].target == "≤1 µs" and rows["W1"].met is not None
        assert rows["W1"].gopy > 0 and rows["W1"].ref_name is None
        w9 = rows["W9"]
        assert w9.ref_name == "threads" and w9.ref > 0 and w9.target == "≤threads"
        assert w9.ratio == pytest.approx(w9.gopy / w9.ref) and w9.met is not None
        assert rows["W9c"].target is None and rows["W9c"].met_text == ""
        text = cores.format_level(level)
        assert text.startswith(f"GOMAXPROCS={level.procs} (")
        assert all(f"  {rid} " in text for rid in rows)
    summary = cores.format_summary(levels)
    assert "P=1" in summary and "P=2" in summary and "targets held:" in summary
    table = cores.markdown_table(levels).splitlines()
    assert table[0] == "| row | target | GOMAXPROCS=1 | GOMAXPROCS=2 |"
    assert len(table) == 2 + 4
    dumped = json.loads(json.dumps(cores.to_dict(meta, levels, peer_cells)))
    assert [lv["procs"] for lv in dumped["levels"]] == [1, 2]
    assert {r["id"] for r in dumped["levels"][0]["results"]} == {"C2", "W1", "W9", "W9c"}


def test_cores_command_line(tmp_path, capsys):
    import json

    from benchmarks import cores

    out = tmp_path / "cores.json"
    assert cores.main(["--quick", "--procs", "1", "--only", "W2", "--json", str(out),
                       "--no-progress", "--markdown"]) == 0
    text = capsys.readouterr().out
    assert "GOMAXPROCS=1 (" in text and "W2 ping-pong" in text
    assert "| W2 µs | ≤1 µs |" in text
    assert "total run time:" in text
    written = json.loads(out.read_text())
    assert written["meta"]["procs"] == [1] and written["meta"]["total_seconds"] > 0
    assert [r["id"] for r in written["levels"][0]["rows"]] == ["W2"]


@pytest.mark.timeout(120)
def test_an_install_runs_the_table_from_its_own_harness(tmp_path):
    """`python -m gopy` from an install: build_py ships the harness as gopy._bench
    (setup.py, pyproject.toml), and the Python rows run from there, far from the checkout.

    In a bare venv of its own: beside an editable install of this checkout (CI's), a
    module the build left out would be found in the checkout instead, and the C rows
    would run."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", site],
                   cwd=ROOT, check=True, capture_output=True)
    bench = os.path.join(site, "gopy", "_bench")
    assert sorted(os.listdir(bench)) == [
        "__init__.py", "harness.py", "py", "servers.py", "workloads.py"]
    assert os.path.isfile(os.path.join(bench, "py", "gopy_w.py"))
    shutil.copy(importlib.util.find_spec("gopy._gopy").origin, os.path.join(site, "gopy"))
    matplotlib = importlib.util.find_spec("matplotlib")
    if matplotlib is not None:  # this environment's, after the venv's own gopy
        with open(os.path.join(site, "outer.pth"), "w") as f:
            f.write(os.path.dirname(os.path.dirname(matplotlib.origin)) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("GOMAXPROCS", "PYTHONPATH")}
    proc = subprocess.run([python, "-m", "gopy", "--no-demo", "--quick", "--only",
                           "W1,C1", "--peers", "gopy", "--reps", "1", "--no-progress",
                           "--json", "out.json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    if matplotlib is None:
        assert "no chart: the chart needs matplotlib" in proc.stdout
    else:
        assert "wrote out.png (the chart)" in proc.stdout  # --quick's chart, by its JSON
        assert (tmp_path / "out.png").stat().st_size > 0
    assert f"({site}/gopy/" in "".join(proc.stdout.split())  # the install's gopy, wrapped
    assert "\nW1 spawn+join" in proc.stdout
    assert "native (C) workloads skipped: they build against gopy's C sources" in proc.stdout


def test_every_no_in_the_table_says_which_target_and_by_how_much():
    from benchmarks.harness import Cell, Report, format_table, native_result, python_result

    w4 = BY_ID["W4"].metrics[0]
    missed = python_result(w4, {"gopy": Cell("ok", value=0.62e-6),
                                "asyncio": Cell("ok", value=5e-6)}, quick=True)
    held = python_result(w4, {"gopy": Cell("ok", value=0.4e-6)}, quick=True)
    c5 = native_result({"workload": "C5-contended", "desc": "mutex", "gopy": 300.0,
                        "go": 100.0, "unit": "ns/op", "target_ratio": 1.5})
    c7 = native_result({"workload": "C7-memory", "desc": "parked", "gopy": 4000.0,
                        "go": 2000.0, "unit": "B/g", "target_abs": 3000})
    assert (missed.met, held.met, c5.met, c7.met) == (False, True, False, False)
    text = format_table(Report([missed, c5, c7], peers=["gopy", "asyncio"]))
    nos = [line.split()[0] for line in text.splitlines()
           if " NO " in line + " " and not line.startswith(" ")]
    assert nos == ["W4", "C5-contended", "C7-memory"]
    assert "  W4 NO: gopy 0.62 µs, not ≤0.5 µs, 1.24× behind" in text
    assert "  C5-contended NO: gopy ÷ go = 3.00, not ≤1.5" in text
    assert "  C7-memory NO: gopy 4,000 B/g, not ≤3,000" in text
    assert "W4 NO" not in format_table(Report([held], peers=["gopy"]))
