"""``python -m pytest_lfm diff``: sections, message normalisation, collapsed cells, partial runs, exit codes.

Reports are built in memory with :func:`pytest_lfm.reporting.build_report` (no server), so each test states
the outcomes it compares. ``tests/test_report_cli.py`` runs the command on real runs of the suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_lfm.__main__ import main
from pytest_lfm.report_diff import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REGRESSION,
    diff_reports,
    normalise_message,
    render_diff,
    run_info,
)
from pytest_lfm.reporting import CheckResult, TargetInfo, build_report
from pytest_lfm.runinfo import RunInfo

SEVEN = ("350M", "1.2B-Instruct", "1.2B-Thinking", "VL-1.6B", "8B-A1B", "24B-A2B", "VL-450M")

Outcomes = dict[str, tuple[str, str]]


def report(outcomes: Outcomes | dict[str, Outcomes], variants: tuple[str, ...] = SEVEN,
           version: str = "0.5.22", run: dict[str, Any] | None = None) -> dict[str, Any]:
    """A report whose every variant has ``outcomes`` (check name → (outcome, message)); a dict keyed by
    variant gives each variant its own outcomes. ``{version}`` in a message becomes the server version."""
    infos = [TargetInfo(id=v, variant=v, hardware="h200", sglang_version=version, base_url="http://127.0.0.1:1",
                        mode="attach") for v in variants]
    results = []
    for v in variants:
        per_variant = all(isinstance(x, dict) for x in outcomes.values())
        own: Outcomes = outcomes[v] if per_variant else outcomes  # type: ignore[assignment]
        for name, (o, m) in own.items():
            results.append(CheckResult(nodeid=f"conformance/test_f.py::{name}[{v}]", target=v, family="test_f",
                                       outcome=o, duration=0.1, message=m.format(version=version)))
    doc = build_report(infos, results)
    if run is not None:
        doc["run"] = {**RunInfo().as_dict(), **run}  # the full "run" record, with the given fields
    return doc


def write(tmp_path: Path, name: str, doc: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def run_cli(tmp_path: Path, old: dict[str, Any], new: dict[str, Any], capsys: pytest.CaptureFixture[str],
            *flags: str) -> tuple[int, str]:
    code = main(["diff", *flags, write(tmp_path, "old.json", old), write(tmp_path, "new.json", new)])
    return code, capsys.readouterr().out


BASE: Outcomes = {
    "test_ok": ("passed", ""),
    "test_gate[case_new]": ("skipped", "case case_new applies to SGLang >=0.5.23; server reports {version}"),
    "test_known": ("xfailed", "known upstream bug (https://github.com/sgl-project/sglang/issues/1)"),
    "test_port": ("failed", "AssertionError: connect to http://127.0.0.1:41234 failed (pid 4242) in 12.5 s\n"
                            "  Expected: 200\n  Actual: 503"),
    "test_id": ("failed", "AssertionError: id chatcmpl-9f8e7d6c5b4a reused\n  Expected: unique\n  Actual: repeated"),
    "test_tmp": ("skipped", "no fixture at /tmp/pytest-of-ci/pytest-7/test_x0/img.png"),
}


# ------------------------------------------------------------------------------------------ identical


def test_identical_releases_say_so_in_a_few_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = report(BASE, version="0.5.19")
    new = report({**BASE,
                  "test_port": ("failed", "AssertionError: connect to http://127.0.0.1:50001 failed (pid 99) in "
                                          "3.1 s\n  Expected: 200\n  Actual: 503"),
                  "test_id": ("failed", "AssertionError: id chatcmpl-0a1b2c3d4e5f6 reused\n  Expected: unique\n"
                                        "  Actual: repeated"),
                  "test_tmp": ("skipped", "no fixture at /tmp/pytest-of-ci/pytest-9/test_x1/img.png")},
                 version="0.5.20")
    code, out = run_cli(tmp_path, old, new, capsys)
    assert code == EXIT_OK, out
    lines = out.strip().splitlines()
    assert len(lines) <= 6, out
    assert f"{len(BASE) * len(SEVEN)} check results compared in 7 cell(s)" in out
    assert "identical results" in out and lines[-1] == "no regression: no differences"
    assert diff_reports(old, new).identical


@pytest.mark.parametrize(("a", "b"), [
    ("server reports 0.5.19", "server reports 0.5.20"),
    ("sglang v0.5.12.post1 detector", "sglang v0.5.13.post1 detector"),
    ("at http://localhost:30000/v1", "at http://localhost:30123/v1"),
    ("listening on port 8000", "listening on port 8080"),
    ("worker pid 123 died", "worker pid 456 died"),
    ("call_abc123DEF456 missing", "call_zzz999yyy888 missing"),
    ("request 3f2a9c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b", "request 00000000-1111-2222-3333-444444444444"),
    ("wrote /tmp/tmpab12cd/out.json", "wrote /tmp/tmpzz99yy/out.json"),
    ("took 1.5 s", "took 22 s"),
])
def test_normalise_masks_what_differs_between_runs_of_the_same_code(a: str, b: str) -> None:
    assert normalise_message(a) == normalise_message(b)


def test_normalise_keeps_what_matters() -> None:
    assert normalise_message("Expected: 85") != normalise_message("Expected: 86")
    assert normalise_message("name 'get_weather'") != normalise_message("name 'get_time'")
    assert normalise_message("x\n\n  Expected: 1\n  Actual: 2\n  more") == "x · Expected: 1 · Actual: 2"


# ------------------------------------------------------------------------------------------ sections


def test_each_section_and_collapsed_cells(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = report({
        "test_reg": ("passed", ""),
        "test_fix": ("failed", "AssertionError: split\n  Expected: a\n  Actual: b"),
        "test_gate_ended_still_bad": ("xfailed", "known bug"),
        "test_gate_ended_good": ("xfailed", "known bug"),
        "test_known_fixed": ("xfailed", "known bug"),
        "test_skip_now": ("passed", ""),
        "test_cause": ("failed", "AssertionError: calls\n  Expected: 1\n  Actual: 2"),
        "test_newly_run": ("skipped", "/flush_cache answered 400 for 20 s"),
        "test_gone": ("passed", ""),
        "test_known_now": ("passed", ""),
    }, version="0.5.18")
    new = report({
        "test_reg": ("failed", "AssertionError: split of case x\n  Expected: a\n  Actual: b"),
        "test_fix": ("passed", ""),
        "test_gate_ended_still_bad": ("failed", "AssertionError: still\n  Expected: a\n  Actual: b"),
        "test_gate_ended_good": ("passed", ""),
        "test_known_fixed": ("xpassed", "known bug"),
        "test_skip_now": ("skipped", "needs real weights"),
        "test_cause": ("failed", "AssertionError: names\n  Expected: x\n  Actual: y"),
        "test_newly_run": ("passed", ""),
        "test_added": ("passed", ""),
        "test_added_failing": ("failed", "AssertionError: new\n  Expected: 1\n  Actual: 2"),
        "test_known_now": ("xfailed", "known bug in this release"),
    }, version="0.5.19")
    d = diff_reports(old, new)
    sections = {attr: sorted({c.check.split("::")[1] for c in getattr(d, attr)}) for attr in (
        "regressions", "absent", "fixes", "expectations", "newly_not_run", "failing_differently", "newly_run",
        "added")}
    assert sections == {
        "regressions": ["test_added_failing", "test_known_now", "test_reg"],
        "absent": ["test_gone"],
        "fixes": ["test_fix", "test_known_fixed"],
        "expectations": ["test_gate_ended_good", "test_gate_ended_still_bad"],
        "newly_not_run": ["test_skip_now"],
        "failing_differently": ["test_cause"],
        "newly_run": ["test_newly_run"],
        "added": ["test_added"],
    }
    code, out = run_cli(tmp_path, old, new, capsys)
    assert code == EXIT_REGRESSION
    # one line per check, naming all seven cells, not seven lines
    assert out.count("test_f.py::test_reg:") == 1
    assert "  - test_f.py::test_reg: passed → failed  [all 7 cells]" in out
    assert "Regressions (" in out and ": 21 (3 distinct)" in out
    assert "Fixes (failing before, passing now): 14 (2 distinct)" in out
    assert "Changed expectations (" in out and "Newly not run (" in out and "Absent from the newer report" in out
    assert "the known failure no longer covers this release, and the check still fails" in out
    assert "message was: AssertionError: calls · Expected: 1 · Actual: 2" in out
    assert "Newly run (" in out and "New checks (" in out
    # the fix and the new-cause failure are in different sections
    fixes = out.split("Fixes (")[1].split("\n\n")[0]
    assert "test_cause" not in fixes and "test_fix" in fixes
    assert out.rstrip().splitlines()[-1].startswith("REGRESSION: 21 regressions, 7 absent from the newer report")


def test_cells_named_when_only_some_changed() -> None:
    old = report({"test_a": ("passed", "")})
    new = report({v: {"test_a": ("failed", f"AssertionError: a\n  Expected: 1\n  Actual: {i}")
                      if v in ("350M", "VL-1.6B") else ("passed", "")} for i, v in enumerate(SEVEN)})
    out = render_diff(diff_reports(old, new), old, new)
    assert "  - test_f.py::test_a: passed → failed  [350M, VL-1.6B]" in out
    assert "details differ between the cells" in out  # Actual differs: the first is shown, the difference said


def test_cells_on_other_hardware_are_named_by_their_full_key() -> None:
    def two_gpus(outcome: str) -> dict[str, Any]:
        doc = report({"test_a": (outcome, "AssertionError: a" if outcome == "failed" else "")}, variants=("350M",))
        b200 = json.loads(json.dumps(doc["cells"][0]))
        b200["hardware"], b200["key"] = "b200", "b200/350M/bf16/tp1/1"
        doc["cells"].append(b200)
        return doc

    old, new = two_gpus("passed"), two_gpus("failed")
    new["cells"][0]["checks"][0]["outcome"] = "passed"
    out = render_diff(diff_reports(old, new), old, new)
    assert "  - test_f.py::test_a: passed → failed  [b200/350M/bf16/tp1/1]" in out


# ------------------------------------------------------------------------------------------ partial runs


def test_interrupted_run_is_flagged_and_absent_checks_are_a_regression(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = report({"test_a": ("passed", ""), "test_b": ("passed", ""), "test_c": ("passed", "")})
    cut = report({"test_a": ("passed", "")}, run={
        "selection": {"keyword": None, "markexpr": None, "args": [], "last_failed": False, "deselected": 0},
        "filtered": False, "interrupted": True, "server_down": []})
    code, out = run_cli(tmp_path, full, cut, capsys)
    assert code == EXIT_REGRESSION, out
    assert "warning: NEW is a PARTIAL run: the run was interrupted" in out
    assert "Absent from the newer report (in OLD, not in NEW): 14 (2 distinct)" in out
    assert "14 check(s) absent from NEW count as a regression (the run was interrupted)" in out
    assert out.rstrip().splitlines()[-1] == "REGRESSION: 14 absent from the newer report"
    code, out = run_cli(tmp_path, full, cut, capsys, "--allow-partial")
    assert code == EXIT_OK, out
    assert "not counted (--allow-partial)" in out and out.rstrip().endswith("no regression: 14 absent from the "
                                                                              "newer report")


def test_filtered_run_names_its_selection() -> None:
    run = {"selection": {"keyword": "tool", "markexpr": None, "args": ["conformance/test_tool_parser.py"],
                         "last_failed": True, "deselected": 40}, "filtered": True, "interrupted": False,
           "server_down": []}
    info = run_info({"run": run, "cells": []})
    assert info.partial
    assert info.describe() == ("the run was filtered (-k 'tool', --lf, paths conformance/test_tool_parser.py, "
                               "40 deselected)")


def test_not_run_outcomes_and_old_reports_without_run_block() -> None:
    old = report({"test_a": ("passed", ""), "test_b": ("passed", "")})
    assert "run" not in old and not run_info(old).partial  # reports from before the run block: a full run
    new = report({"test_a": ("passed", ""), "test_b": ("passed", "")})
    for cell in new["cells"]:  # the honesty contract: checks a run did not reach are "not_run"
        cell["checks"][1]["outcome"] = "not_run"
        cell["checks"][1]["message"] = "not run: interrupted"
    d = diff_reports(old, new)
    assert run_info(new).partial and run_info(new).not_run == 7
    assert len(d.newly_not_run) == 7 and not d.has_regression
    assert "warning: NEW is a PARTIAL run: 7 check(s) not run" in render_diff(d, old, new)


def test_partial_old_report_lists_new_checks_not_regressions() -> None:
    old = report({"test_a": ("passed", "")}, run={"selection": {"keyword": "a"}, "filtered": True,
                                                  "interrupted": False})
    new = report({"test_a": ("passed", ""), "test_b": ("passed", "")})
    d = diff_reports(old, new)
    assert not d.has_regression and len(d.added) == 7
    assert "warning: OLD is a PARTIAL run: the run was filtered (-k 'a')" in render_diff(d, old, new)


# ------------------------------------------------------------------------------------------ exit codes


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = report({"test_a": ("passed", "")})
    bad = report({"test_a": ("failed", "AssertionError: a")})
    assert run_cli(tmp_path, good, good, capsys)[0] == EXIT_OK
    assert run_cli(tmp_path, bad, good, capsys)[0] == EXIT_OK
    assert run_cli(tmp_path, good, bad, capsys)[0] == EXIT_REGRESSION
    (tmp_path / "junk.json").write_text("[]")
    assert main(["diff", str(tmp_path / "junk.json"), write(tmp_path, "g.json", good)]) == EXIT_BAD_INPUT
    assert "not a pytest-lfm report" in capsys.readouterr().err


def test_json_output_has_every_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = report({"test_a": ("passed", ""), "test_b": ("passed", "")})
    new = report({"test_a": ("failed", "AssertionError: a")})
    code, out = run_cli(tmp_path, old, new, capsys, "--json")
    data = json.loads(out)
    assert code == EXIT_REGRESSION and data["regression"] is True and data["identical"] is False
    assert len(data["regressions"]) == 7 and len(data["absent"]) == 7
    assert {"fixes", "expectations", "newly_not_run", "new_run", "old_run"} <= data.keys()


def test_long_informational_sections_are_shortened_unless_full(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    full = report({f"test_{i}": ("passed", "") for i in range(60)})
    cut = report({"test_0": ("passed", "")}, run={"interrupted": True})
    code, out = run_cli(tmp_path, full, cut, capsys)
    assert code == EXIT_REGRESSION
    assert "Absent from the newer report (in OLD, not in NEW): 413 (59 distinct)" in out
    assert "… and 39 more (--full or --json lists them all)" in out and len(out.splitlines()) < 40
    code, out = run_cli(tmp_path, full, cut, capsys, "--full")
    assert out.count("→ absent") == 59


def test_cells_marked_incomplete_make_a_partial_run() -> None:
    new = report({"test_a": ("passed", "")})
    new["cells"][0]["complete"] = False
    info = run_info(new)
    assert info.partial and info.describe() == "1 cell(s) did not run the whole suite (e.g. -x stopped the run)"


def test_version_gate_moves_are_changed_expectations_and_keep_their_bounds() -> None:
    old = report({"test_new_behaviour": ("skipped", "case x applies to SGLang >=0.5.23; server reports {version}"),
                  "test_old_behaviour": ("passed", ""),
                  "test_weights": ("passed", "")}, version="0.5.22")
    new = report({"test_new_behaviour": ("passed", ""),
                  "test_old_behaviour": ("skipped", "case y applies to SGLang <0.5.23; server reports {version}"),
                  "test_weights": ("skipped", "needs real weights; 350M is a random-weight checkpoint")},
                 version="0.5.23")
    d = diff_reports(old, new)
    assert sorted(c.check for c in d.expectations) == ["test_f.py::test_new_behaviour"] * 7 + [
        "test_f.py::test_old_behaviour"] * 7
    assert {c.check for c in d.newly_not_run} == {"test_f.py::test_weights"}  # coverage lost, not a gate
    out = render_diff(d, old, new)
    assert "applies to SGLang >=0.5.23; server reports <version>" in out  # the bound is kept, the server's masked
    assert "(a version gate now includes this release)" in out and "(a version gate now excludes this release)" in out


def test_a_module_moved_into_a_folder_keeps_its_check_ids() -> None:
    old = report({"test_a": ("passed", "")})
    new = json.loads(json.dumps(old))
    for cell in new["cells"]:
        for r in cell["checks"]:
            r["nodeid"] = r["nodeid"].replace("conformance/", "conformance/tools/")
            r["check"] = "tools/" + r["check"]
    assert diff_reports(old, new).identical
