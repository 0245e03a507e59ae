"""Reports: report.json (schema, environment, cells, checks), matrix.md, matrix.html, merge, known failures
as data, JUnit XML properties, and pytest-xdist.

The end-to-end tests run ``conformance/protocol/test_protocol.py`` against the reference server in a subprocess,
with the ``usage_wrong`` fault (the usage arithmetic checks fail) or without faults.
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from harness import clean_env, run_pytest, suite_args

from pytest_lfm import expectations
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.paths import suite_module
from pytest_lfm.report_diff import diff_reports
from pytest_lfm.reporting import (
    CheckResult,
    ReportError,
    TargetInfo,
    build_report,
    cell_status,
    check_name,
    gpu_info,
    load_report,
    merge_reports,
    normalize_nodeid,
    redact,
    render_html,
    render_matrix,
    report_schema,
    validate_report,
    write_report,
)

VARIANTS = ("1.2B-Instruct", "VL-1.6B")
USAGE_CHECKS = ("test_chat_completion_shape", "test_stream_order")


def run_protocol(out: Path, *, faults: Iterable[str] = (), extra: Iterable[str] = (),
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run conformance/protocol/test_protocol.py against reference servers for VARIANTS, report into ``out``."""
    args = suite_args(["test_protocol.py"], report_dir=out, variants=VARIANTS, faults=faults, extra=extra)
    return run_pytest(args, cwd=out.parent, env=clean_env(env))


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """Two variants, one fault, under xdist (-n 2), with --junitxml."""
    base = tmp_path_factory.mktemp("faulty")
    proc = run_protocol(base / "report", faults=["usage_wrong"],
                        extra=["-n", "2", f"--junitxml={base / 'junit.xml'}"])
    return base, proc


def _checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for cell in report["cells"] for c in cell["checks"]]


# ------------------------------------------------------------------------------------------ end to end


def test_faulty_run_writes_all_three_files(faulty: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    base, proc = faulty
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("report.json", "matrix.md", "matrix.html"):
        assert (base / "report" / name).is_file(), f"{name} missing\n{proc.stdout[-2000:]}"
    report = load_report(base / "report" / "report.json")  # validates against the shipped schema
    assert [c["variant"] for c in report["cells"]] == list(VARIANTS)
    for cell in report["cells"]:
        assert cell["key"] == f"unknown/{cell['variant']}/bf16/tp1/1"
        assert cell["status"] == "Failed"
        assert cell["counts"]["failed"] == 2 and cell["counts"]["passed"] >= 5
        failed = {c["check"] for c in cell["checks"] if c["outcome"] == "failed"}
        assert failed == {f"test_protocol.py::{n}" for n in USAGE_CHECKS}
        for c in cell["checks"]:
            assert c["duration"] >= 0
            assert c["section"].startswith("§"), c
            assert c["family"] == "test_protocol"
            if c["outcome"] == "failed":
                assert "Expected" in c["message"] and "Actual" in c["message"]
    env = report["environment"]
    assert env["sglang_versions"] == ["0.5.23"]
    assert env["gpu"] == gpu_info()
    assert env["plugin_version"] and env["time"] and env["python"]
    md = (base / "report" / "matrix.md").read_text()
    assert "| hardware not declared |" in md and "**Failed** (" in md and "Not run" in md
    assert "| unknown |" not in md and "| h100 |" not in md  # only rows that ran
    assert "Selection: paths" in md  # the run named one module: every cell is at most Partial
    assert "test_stream_order[VL-1.6B]" in md
    html_text = (base / "report" / "matrix.html").read_text()
    assert "<script src" not in html_text and "<link" not in html_text and "http://" not in html_text.split(
        "<h2>Cells</h2>")[0]


def test_xdist_collects_results_from_all_workers(faulty: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    base, proc = faulty
    assert "bringing up nodes" in proc.stdout, proc.stdout[-2000:]  # it did run under xdist
    report = load_report(base / "report")
    per_variant = {cell["variant"]: len(cell["checks"]) for cell in report["cells"]}
    collected = len([n for n in expectations.suite_checks() if n.startswith("test_protocol.py::")])
    assert per_variant == dict.fromkeys(VARIANTS, collected)


def test_junitxml_carries_variant_hardware_and_version(faulty: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    base, _ = faulty
    root = ET.parse(base / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == len(VARIANTS) * len([n for n in expectations.suite_checks()
                                              if n.startswith("test_protocol.py::")])
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.findall("./properties/property")}
        assert props["lfm_variant"] in VARIANTS, props
        assert props["lfm_hardware"] == "unknown"
        assert props["lfm_sglang_version"] == "0.5.23"
        assert str(props["lfm_target"]) in (case.get("name") or "")


def test_known_failures_as_data_xfail_and_unexpected_pass(tmp_path: Path) -> None:
    """An entry for VL-* makes the usage check a strict expected failure there: xfailed with the fault,
    an unexpected pass (run fails, cell Failing) on a correct server; entries for other versions do
    nothing."""
    kf = tmp_path / "kf.toml"
    kf.write_text(
        '[[known_failure]]\ncheck = "test_protocol.py::test_chat_completion_shape"\nvariants = ["VL-*"]\n'
        'reason = "usage arithmetic off by one (test entry)"\nlink = "https://example.org/1"\n'
        '[[known_failure]]\ncheck = "test_protocol.py::test_stream_*"\nfact = "!lfm2-robust-detector"\n'
        'reason = "applies to old versions only (test entry)"\nlink = "https://example.org/2"\n')
    env = {expectations.ENV_VAR: str(kf)}
    proc = run_protocol(tmp_path / "faulty", faults=["usage_wrong"], env=env)
    report = load_report(tmp_path / "faulty")
    by = {c["nodeid"].split("::")[-1]: c for c in _checks(report)}
    assert by["test_chat_completion_shape[VL-1.6B]"]["outcome"] == "xfailed", proc.stdout[-3000:]
    assert "https://example.org/1" in by["test_chat_completion_shape[VL-1.6B]"]["message"]
    assert by["test_chat_completion_shape[1.2B-Instruct]"]["outcome"] == "failed"
    assert by["test_stream_order[VL-1.6B]"]["outcome"] == "failed"  # the <0.5 entry does not apply
    md = (tmp_path / "faulty" / "matrix.md").read_text()
    assert "Known failures" in md and "example.org/1" in md

    proc = run_protocol(tmp_path / "clean", env=env)
    assert proc.returncode == 1
    report = load_report(tmp_path / "clean")
    by = {c["nodeid"].split("::")[-1]: c for c in _checks(report)}
    assert by["test_chat_completion_shape[VL-1.6B]"]["outcome"] == "xpassed", proc.stdout[-3000:]
    cells = {c["variant"]: c["status"] for c in report["cells"]}
    assert cells["VL-1.6B"] == "Failed"  # a known failure that passed
    assert re.fullmatch(r"Partial \((\d+) of \1 checks\)", cells["1.2B-Instruct"]), cells  # one module given
    fixes = diff_reports(load_report(tmp_path / "faulty"), report).fixes
    assert any("test_chat_completion_shape[VL-1.6B]" in f.nodeid and f.new == "xpassed" for f in fixes)


def test_known_failure_for_missing_check_is_a_usage_error(tmp_path: Path) -> None:
    kf = tmp_path / "kf.toml"
    kf.write_text('[[known_failure]]\ncheck = "test_protocol.py::test_no_such_check"\n'
                  'reason = "points at nothing (test entry)"\nlink = "https://example.org/3"\n')
    proc = run_protocol(tmp_path / "r", env={expectations.ENV_VAR: str(kf)})
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "test_no_such_check" in proc.stderr and "matches no check in the suite" in proc.stderr
    assert str(kf) in proc.stderr


# ------------------------------------------------------------------------------------------ units


def _info(variant: str = "1.2B-Instruct", hardware: str = "h100", **kw: Any) -> TargetInfo:
    return TargetInfo(id=variant, variant=variant, hardware=hardware, sglang_version="0.5.23",
                      base_url="http://gpu:30000", mode="attach", **kw)


def _result(name: str, outcome: str, target: str = "1.2B-Instruct", family: str = "test_protocol",
            message: str = "") -> CheckResult:
    return CheckResult(nodeid=f"conformance/{family}.py::{name}[{target}]", target=target, family=family,
                       outcome=outcome, duration=0.01, message=message, section="§7")


def test_report_schema_is_valid_and_versioned() -> None:
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["report_version"] == {"const": 1, "description": schema["properties"][
        "report_version"]["description"]}
    report = build_report([_info()], [_result("test_a", "passed")])
    validate_report(report)
    report["report_version"] = 99
    with pytest.raises(ReportError, match="report_version 99"):
        validate_report(report, "x.json")


def test_cells_use_the_cookbook_axes_from_server_args() -> None:
    info = _info(server_args={"tp_size": 2, "quantization": "FP8", "nnodes": 2})
    cell = build_report([info], [])["cells"][0]
    assert (cell["quantization"], cell["strategy"], cell["nodes"]) == ("fp8", "tp2", 2)
    assert cell["key"] == "h100/1.2B-Instruct/fp8/tp2/2"
    assert cell["status"] == "Partial (0 of 0 checks)"


def test_redact_hides_secrets_but_not_tokenizer_path() -> None:
    args = {"api_key": "s3cret", "hf_token": "hf_abcdefghijklmnopqrstu", "tokenizer_path": "LiquidAI/x",
            "launch_command": "sglang serve --api-key s3cret --model x", "admin_api_key": None,
            "nested": {"password": "pw", "note": "token hf_abcdefghijklmnopqrstuvwx here"}}
    out = redact(args)
    text = json.dumps(out)
    assert "s3cret" not in text and "hf_abcdefghijklmnop" not in text and '"pw"' not in text
    assert out["tokenizer_path"] == "LiquidAI/x"
    assert out["launch_command"] == "sglang serve --api-key *** --model x"
    assert out["admin_api_key"] is None


def test_build_report_redacts_server_args_in_the_file(tmp_path: Path) -> None:
    write_report(tmp_path, [_info(server_args={"api_key": "top-secret-value"})], [_result("test_a", "passed")])
    for name in ("report.json", "matrix.md", "matrix.html"):
        assert "top-secret-value" not in (tmp_path / name).read_text()


def test_check_name_strips_target_and_suite_prefix() -> None:
    assert check_name("conformance/test_x.py::t[1.2B-Instruct]", "1.2B-Instruct") == "test_x.py::t"
    assert check_name("conformance/test_x.py::t[case-a-1.2B-Instruct]", "1.2B-Instruct") == "test_x.py::t[case-a]"
    assert check_name("site/pytest_lfm/conformance/sub/test_y.py::C::t[VL-1.6B-b]", "VL-1.6B") == \
        "test_y.py::C::t[b]"  # check ids name the module by file name: a family folder is not part of it
    assert normalize_nodeid("/abs/conformance/test_x.py::t[a]") == "test_x.py::t[a]"
    assert normalize_nodeid("conformance/vision/test_vision.py::t[a]") == "test_vision.py::t[a]"


@pytest.mark.parametrize(("counts", "status"), [
    ({"passed": 3}, "Verified"), ({"passed": 3, "xfailed": 1, "skipped": 2}, "Verified"),
    ({"passed": 3, "failed": 1}, "Failed"), ({"error": 1}, "Failed"), ({"passed": 1, "xpassed": 1}, "Failed"),
    ({"skipped": 4}, "Partial (0 of 4 checks)"), ({}, "Partial (0 of 0 checks)"),
])
def test_cell_status(counts: dict[str, int], status: str) -> None:
    assert cell_status(counts) == status


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"weights": "reference"}, "Passed (reference server)"),
    ({"weights": "random"}, "Passed (random weights)"),
    ({"hardware_confirmed": False}, "Passed (hardware not confirmed)"),
    ({"complete": False, "planned": 340}, "Partial (3 of 340 checks)"),
    ({"complete": False, "interrupted": True, "planned": 340}, "Interrupted"),
    ({"complete": False, "server_down": True}, "Server down"),
])
def test_cell_status_says_what_was_verified(kwargs: dict[str, Any], status: str) -> None:
    assert cell_status({"passed": 3}, **kwargs) == status


def test_report_records_selection_and_completeness() -> None:
    from collections import Counter

    from pytest_lfm.runinfo import RunInfo, Selection

    run = RunInfo(selection=Selection(keyword="tool", deselected=242), collected=Counter({"1.2B-Instruct": 340}),
                  selected=Counter({"1.2B-Instruct": 98}))
    results = [_result(f"test_{i}", "passed") for i in range(98)]
    report = build_report([_info(hardware_confirmed=True)], results, run)
    validate_report(report)
    cell = report["cells"][0]
    assert cell["status"] == "Partial (98 of 340 checks)" and cell["complete"] is False
    assert report["run"]["selection"]["keyword"] == "tool" and report["run"]["filtered"] is True
    md = render_matrix(report)
    assert "Selection: -k 'tool', 242 deselected (cells are Partial)" in md
    whole = RunInfo(collected=Counter({"1.2B-Instruct": 98}), selected=Counter({"1.2B-Instruct": 98}))
    assert build_report([_info(hardware_confirmed=True)], results, whole)["cells"][0]["status"] == "Verified"
    assert build_report([_info(weights="reference")], results, whole)["cells"][0]["status"] == \
        "Passed (reference server)"
    whole.interrupted = True
    assert build_report([_info(hardware_confirmed=True)], results[:5], whole)["cells"][0]["status"] == "Interrupted"


def test_matrix_lists_each_known_failure_once_with_its_cells() -> None:
    results = [_result("test_k", "xfailed", target=v, message="upstream bug (https://example.org/1)")
               for v in ("1.2B-Instruct", "350M", "VL-1.6B")]
    report = build_report([_info(v) for v in ("1.2B-Instruct", "350M", "VL-1.6B")], results)
    md = render_matrix(report)
    known = md.split("## Known failures")[1]
    assert known.count("test_protocol.py::test_k") == 1, known
    assert "h100 / 1.2B-Instruct, h100 / 350M, h100 / VL-1.6B" in known


def test_matrix_md_has_cookbook_shape() -> None:
    report = build_report([_info(), _info("VL-1.6B", "b200")],
                          [_result("test_a", "passed"), _result("test_b", "failed", message="bad | pipe\nExpected: 1"),
                           _result("test_a", "skipped", target="VL-1.6B")])
    md = render_matrix(report)
    header = next(line for line in md.splitlines() if line.startswith("| hardware |"))
    assert header.split(" | ")[1:8] == ["8B-A1B", "1.2B-Instruct", "1.2B-Thinking", "350M", "1.2B-JP-202606",
                                        "VL-1.6B", "VL-450M |"]
    rows = {line.split(" | ")[0].strip("| "): line for line in md.splitlines() if line.startswith("| ")}
    assert set(rows) == {"hardware", "h100", "b200"}  # only the hardware that ran: no empty h200 row
    assert "**Failed** (1 passed, 1 failed)" in rows["h100"]
    assert "**Partial (0 of 1 checks)** (0 passed, 1 skipped)" in rows["b200"]
    unknown = render_matrix(build_report([_info(hardware="unknown")], [_result("test_a", "passed")]))
    assert "| hardware not declared |" in unknown and "UNKNOWN" not in unknown.upper().replace("UNKNOWN)", "")
    assert "bad \\| pipe · Expected: 1" in md  # the pipe cannot break the table


def test_html_escapes_messages_and_is_self_contained() -> None:
    evil = "<script>alert(1)</script> & \"quotes\""
    report = build_report([_info()], [_result("test_a", "failed", message=evil)])
    page = render_html(report)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # only the page's own inline script
    assert "src=" not in page and "<link" not in page and "@import" not in page


def test_merge_combines_gpus_into_one_matrix(tmp_path: Path) -> None:
    a = build_report([_info(hardware="h100")], [_result("test_a", "passed")])
    b = build_report([_info(hardware="b200")], [_result("test_a", "failed", message="x")])
    c = build_report([_info(hardware="h100")], [_result("test_a", "failed", message="y"),
                                                _result("test_b", "passed")])
    merged, warnings = merge_reports([("a.json", a), ("b.json", b), ("c.json", c)])
    validate_report(merged)
    cells = {cell["key"]: cell for cell in merged["cells"]}
    assert set(cells) == {"h100/1.2B-Instruct/bf16/tp1/1", "b200/1.2B-Instruct/bf16/tp1/1"}
    h100 = cells["h100/1.2B-Instruct/bf16/tp1/1"]
    assert {r["check"]: r["outcome"] for r in h100["checks"]} == {"test_protocol.py::test_a": "failed",
                                                                  "test_protocol.py::test_b": "passed"}
    assert h100["status"] == "Failed"
    assert len(warnings) == 1 and "a.json" in warnings[0] and "c.json" in warnings[0]
    assert [m["source"] for m in merged["environment"]["merged_from"]] == ["a.json", "b.json", "c.json"]


def test_load_report_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match=r"bad\.json: not JSON"):
        load_report(bad)
    with pytest.raises(ReportError, match=r"missing\.json: cannot read"):
        load_report(tmp_path / "missing.json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**build_report([], []), "cells": [{"id": 1}]}))
    with pytest.raises(ReportError, match=r"wrong\.json: not a valid pytest-lfm report: at cells/0"):
        load_report(wrong)


# ------------------------------------------------------------------------------------------ expectations


def _kf(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "kf.toml"
    path.write_text(body)
    return path


ENTRY = ('[[known_failure]]\ncheck = "{check}"\n{fact}reason = "a reason long enough"\n'
         'link = "https://example.org/x"\n{extra}')


def test_shipped_known_failures_file_is_valid() -> None:
    assert expectations.default_path().is_file()
    expectations.load_file(expectations.default_path())


@pytest.mark.parametrize(("check", "fact", "extra", "error"), [
    ("test_protocol.py::test_nope", "", "", "matches no check in the suite"),
    ("test_protocol.py::test_health", 'fact = "no-such-fact"\n', "", "unknown SGLang release fact"),
    ("test_protocol.py::test_health", 'sglang = "<0.5.18"\n', "", "Additional properties"),
    ("test_protocol.py::test_health", "", 'variants = ["9B-Nope"]\n', "matches no known variant"),
    ("test_health", "", "", "does not match"),
    ("test_protocol.py::test_health", "", 'severity = "high"\n', "Additional properties"),
])
def test_bad_known_failure_entries_are_reported(tmp_path: Path, check: str, fact: str, extra: str,
                                               error: str) -> None:
    path = _kf(tmp_path, ENTRY.format(check=check, fact=fact, extra=extra))
    with pytest.raises(LfmUsageError, match=error) as info:
        expectations.load_file(path)
    assert str(path) in str(info.value)


def test_known_failure_patterns_match_check_names(tmp_path: Path) -> None:
    checks = frozenset({"test_t.py::test_a", "test_t.py::test_b"})
    path = _kf(tmp_path, ENTRY.format(check="test_t.py::test_a[case-1]", fact='fact = "!lfm2-robust-detector"\n',
                                      extra='variants = ["8B-A1B", "1.2B-Th*"]\n'))
    (entry,) = expectations.load_file(path, checks)
    assert entry.matches("test_t.py::test_a[case-1]", "test_t.py::test_a")
    assert not entry.matches("test_t.py::test_a[case-2]", "test_t.py::test_a")
    assert entry.applies_to_variant("1.2B-Thinking") and not entry.applies_to_variant("350M")
    assert entry.applies_to_version("0.5.18") and not entry.applies_to_version("0.5.19")
    assert not entry.applies_to_version(None)  # an unknown version counts as the newest release
    path = _kf(tmp_path, ENTRY.format(check="test_t.py::test_*", fact="", extra=""))
    (entry,) = expectations.load_file(path, checks)
    assert entry.matches("test_t.py::test_b[x]", "test_t.py::test_b")


def test_item_check_names(tmp_path: Path) -> None:
    path = suite_module("test_protocol.py")
    full, bare = expectations.item_check_names("conformance/test_protocol.py::test_x[c1-VL-1.6B]", path, "VL-1.6B")
    assert (full, bare) == ("test_protocol.py::test_x[c1]", "test_protocol.py::test_x")
