"""``python -m pytest_lfm diff|merge``: the upstream-gating tool and the multi-GPU merge.

The diff between a clean and a faulty run (``usage_wrong``) of two variants must exit 1 and name the
checks that regressed; bad input files exit 2 with an error naming the file.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_lfm.__main__ import build_parser, main
from pytest_lfm.paths import suite_dir
from pytest_lfm.reporting import CheckResult, TargetInfo, build_report, load_report

VARIANTS = ("1.2B-Instruct", "VL-1.6B")


def _run(out: Path, *faults: str) -> Path:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LFM_") and k != "PYTEST_ADDOPTS"}
    args = [sys.executable, "-m", "pytest", str(suite_dir() / "test_protocol.py"), "--lfm-server=reference",
            f"--lfm-report={out}", "-p", "no:cacheprovider", "-q"]
    args += [f"--lfm-variant={v}" for v in VARIANTS] + [f"--lfm-reference-fault={f}" for f in faults]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=clean, check=False)
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
    assert "Regressions (passed before, failing now): 4" in out
    for variant in VARIANTS:
        assert f"test_protocol.py::test_chat_completion_shape[{variant}]: passed → failed" in out
        assert f"test_protocol.py::test_stream_order[{variant}]: passed → failed" in out
        # one module was run, so the clean cell was Partial, not Verified
        assert re.search(rf"unknown/{re.escape(variant)}/bf16/tp1/1: Partial \(\d+ of \d+ checks\) → Failed", out), out
    assert "Expected: " in out and "Actual: " in out  # the failure message comes along
    assert out.rstrip().splitlines()[-1].startswith("REGRESSION: 4 regressions, 2 newly failing cells")


def test_diff_faulty_to_clean_lists_fixes_and_exits_0(runs: dict[str, Path]) -> None:
    proc = cli("diff", runs["faulty"], runs["clean"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Fixes (" in proc.stdout and "failed → passed" in proc.stdout
    assert proc.stdout.rstrip().endswith("no regression: 4 fixes")


def test_diff_same_report_and_json_output(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(runs["clean"]), str(runs["clean"].parent)]) == 0
    assert "no regression: no differences" in capsys.readouterr().out
    assert main(["diff", "--json", str(runs["clean"]), str(runs["faulty"])]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["regression"] is True
    assert {c["nodeid"] for c in data["regressions"]} == {
        f"test_protocol.py::{n}[{v}]" for n in ("test_chat_completion_shape", "test_stream_order") for v in VARIANTS}


def _report(outcomes: dict[str, tuple[str, str]], stat: Any = None) -> dict[str, Any]:
    info = TargetInfo(id="350M", variant="350M", hardware="h200", sglang_version="0.5.23", base_url="u",
                      mode="attach")
    results = [CheckResult(nodeid=f"conformance/test_f.py::{name}[350M]", target="350M", family="test_f",
                           outcome=o, duration=0.1, message=m,
                           properties={"lfm_statistic": stat} if stat is not None and name == "test_s" else {})
               for name, (o, m) in outcomes.items()]
    return build_report([info], results)


def test_diff_categories(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = _report({"test_fix": ("failed", "E1"), "test_known": ("xfailed", "k"), "test_skip": ("passed", ""),
                   "test_msg": ("failed", "old message"), "test_s": ("passed", ""), "test_gone": ("passed", ""),
                   "test_err": ("skipped", "why")}, stat=1.0)
    new = _report({"test_fix": ("passed", ""), "test_known": ("xpassed", "k"), "test_skip": ("skipped", "no"),
                   "test_msg": ("failed", "new message"), "test_s": ("passed", ""), "test_new": ("passed", ""),
                   "test_err": ("error", "boom")}, stat=2.0)
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    code = main(["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")])
    out = capsys.readouterr().out
    # old cell was already Failing and nothing went passed → failed: not a regression, even with test_err
    assert code == 0, out
    sections = {line.split(":")[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    assert any(k.startswith("Fixes") and line.endswith(": 2") for k, line in sections.items()), out
    assert "test_f.py::test_known[350M]: xfailed → xpassed" in out
    assert "test_f.py::test_skip[350M]: passed → skipped" in out
    assert "test_f.py::test_msg[350M]: failed → failed" in out and "message was: old message" in out
    assert "statistic 1.0 → 2.0" in out
    assert "test_f.py::test_err[350M]: skipped → error" in out
    assert "test_f.py::test_new[350M]: absent → passed" in out
    assert "test_f.py::test_gone[350M]: passed → absent" in out


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
    proc = cli("merge", "--help")
    assert proc.returncode == 0 and "--output DIR" in proc.stdout
    proc = cli()
    assert proc.returncode == 2 and "diff,merge" in proc.stderr
