"""``python -m pytest_lfm diff|merge``: the upstream-gating tool and the multi-GPU merge, on real runs.

The diff between a clean and a faulty run (``usage_wrong``) of two variants must exit 1 and name the
checks that regressed (once each, naming the cells); two clean runs are identical; a run cut short is a
regression unless ``--allow-partial``; bad input files exit 2 with an error naming the file. Every
section and the message normalisation are unit-tested in ``tests/test_report_diff.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import clean_env, run_pytest, suite_args

from pytest_lfm.__main__ import build_parser, main
from pytest_lfm.reporting import load_report

VARIANTS = ("1.2B-Instruct", "VL-1.6B")


def _run(out: Path, *faults: str) -> Path:
    args = suite_args(["test_protocol.py"], report_dir=out, variants=VARIANTS, faults=faults)
    proc = run_pytest(args, cwd=out.parent, env=clean_env())
    assert (out / "report.json").is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "report.json"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """report.json of a clean run and of a run with the usage_wrong fault."""
    base = tmp_path_factory.mktemp("runs")
    return {"clean": _run(base / "clean"), "faulty": _run(base / "faulty", "usage_wrong")}


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest_lfm ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "pytest_lfm", *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


def test_diff_clean_to_faulty_is_a_regression_naming_the_check(runs: dict[str, Path]) -> None:
    proc = cli("diff", runs["clean"], runs["faulty"])
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "Regressions (" in out and "): 4 (2 distinct)" in out
    # one line per check naming both cells, not one per variant
    assert "  - test_protocol.py::test_chat_completion_shape: passed → failed  [all 2 cells]" in out
    assert "  - test_protocol.py::test_stream_order: passed → failed  [all 2 cells]" in out
    assert "Expected: " in out and "Actual: " in out  # the failure message comes along
    assert out.rstrip().splitlines()[-1] == "REGRESSION: 4 regressions"


def test_diff_faulty_to_clean_lists_fixes_and_exits_0(runs: dict[str, Path]) -> None:
    proc = cli("diff", runs["faulty"], runs["clean"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Fixes (" in proc.stdout and "failed → passed  [all 2 cells]" in proc.stdout
    assert proc.stdout.rstrip().endswith("no regression: 4 fixes")


def test_diff_of_two_runs_of_the_same_code_is_a_few_lines(runs: dict[str, Path], tmp_path: Path) -> None:
    """Two clean runs on different ports, pids and times (and with the version masked) do not differ."""
    again = _run(tmp_path / "again")
    proc = cli("diff", runs["clean"], again)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the run is one module, so each side carries a "PARTIAL run" warning line (report.json "run")
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("warning: ")]
    assert "identical results" in proc.stdout and len(lines) <= 5, proc.stdout


def test_diff_same_report_and_json_output(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(runs["clean"]), str(runs["clean"].parent)]) == 0
    assert "no regression: no differences" in capsys.readouterr().out
    assert main(["diff", "--json", str(runs["clean"]), str(runs["faulty"])]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["regression"] is True
    assert {c["nodeid"] for c in data["regressions"]} == {
        f"test_protocol.py::{n}[{v}]" for n in ("test_chat_completion_shape", "test_stream_order") for v in VARIANTS}


def test_diff_full_against_interrupted_run_is_a_regression(runs: dict[str, Path], tmp_path: Path) -> None:
    """A run cut short (here: half its checks dropped and the run block saying interrupted) is flagged, and
    its absent checks are a regression unless --allow-partial."""
    cut = json.loads(runs["clean"].read_text())
    for cell in cut["cells"]:
        cell["checks"] = cell["checks"][: len(cell["checks"]) // 2]
    cut["run"] = {"selection": {"keyword": None, "markexpr": None, "args": [], "last_failed": False,
                                "deselected": 0}, "filtered": False, "interrupted": True, "server_down": []}
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(cut))
    proc = cli("diff", runs["clean"], path)
    assert proc.returncode == 1, proc.stdout
    assert "warning: NEW is a PARTIAL run: the run was interrupted" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("REGRESSION: ")
    assert "absent from the newer report" in proc.stdout.rstrip().splitlines()[-1]
    assert cli("diff", "--allow-partial", runs["clean"], path).returncode == 0


def test_diff_bad_input_exits_2_naming_the_file(tmp_path: Path, runs: dict[str, Path]) -> None:
    bad = tmp_path / "not-a-report.json"
    bad.write_text(json.dumps({"hello": "world"}))
    proc = cli("diff", bad, runs["clean"])
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "error:" in proc.stderr and proc.stdout == ""
    proc = cli("diff", runs["clean"], tmp_path / "missing.json")
    assert proc.returncode == 2 and "missing.json: cannot read the report" in proc.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    proc = cli("merge", runs["clean"], broken, "-o", tmp_path / "m")
    assert proc.returncode == 2 and "broken.json: not JSON" in proc.stderr


def test_merge_two_gpu_runs(tmp_path: Path, runs: dict[str, Path]) -> None:
    other = json.loads(runs["faulty"].read_text())
    for cell in other["cells"]:  # pretend the faulty run was on a B200
        cell["hardware"] = "b200"
    b200 = tmp_path / "b200.json"
    b200.write_text(json.dumps(other))
    proc = cli("merge", runs["clean"], b200, "-o", tmp_path / "merged")
    assert proc.returncode == 0, proc.stderr
    assert "into 4 cell(s): " in proc.stdout and "2 Failed" in proc.stdout, proc.stdout
    merged = load_report(tmp_path / "merged")
    assert sorted(c["key"] for c in merged["cells"]) == sorted(
        f"{hw}/{v}/bf16/tp1/1" for hw in ("unknown", "b200") for v in VARIANTS)
    md = (tmp_path / "merged" / "matrix.md").read_text()
    b200_row = next(line for line in md.splitlines() if line.startswith("| b200 |"))
    assert b200_row.count("**Failed**") == 2
    assert (tmp_path / "merged" / "matrix.html").is_file()


def test_help_texts() -> None:
    parser = build_parser()
    text = parser.format_help()
    assert "diff" in text and "merge" in text
    proc = cli("diff", "--help")
    assert proc.returncode == 0 and "exit" in proc.stdout.lower() and "OLD.json NEW.json" in proc.stdout
    assert "--allow-partial" in proc.stdout and "0 no regression; 1 a regression" in proc.stdout
    proc = cli("merge", "--help")
    assert proc.returncode == 0 and "--output DIR" in proc.stdout
    proc = cli("releases", "compare", "--help")
    assert proc.returncode == 0 and "0 the comparison ran" in proc.stdout and "2 unusable input" in proc.stdout
    proc = cli()
    assert proc.returncode == 2 and "diff,merge,releases" in proc.stderr
