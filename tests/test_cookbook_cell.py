"""``python -m pytest_lfm cookbook-cell``: only cells that truly earned "Verified" become cookbook cells.

A whole-suite run on real weights and confirmed hardware prints the cell in lfm2.5.jsx's shape (cookbook ids,
the recipe's flags with the values the server reported, the recipe's env) with its evidence; a cell that
is Partial, on random weights or the reference server, unconfirmed hardware, failing, from a report written
before honest cell status, or of a variant outside the cookbook's matrix is refused with each reason (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_lfm.__main__ import main
from pytest_lfm.cookbook import EXIT_BAD_INPUT, EXIT_OK, EXIT_REFUSED, judge, render_cell
from pytest_lfm.reporting import CheckResult, TargetInfo, build_report
from pytest_lfm.runinfo import RunInfo, Selection

RECIPE_ARGS: dict[str, dict[str, Any]] = {
    "8B-A1B": {"trust_remote_code": True, "tp_size": 1, "tool_call_parser": "lfm2", "reasoning_parser": "qwen3",
               "attention_backend": "flashinfer", "mem_fraction_static": 0.85},
    "VL-450M": {"trust_remote_code": True, "tp_size": 1, "tool_call_parser": "lfm2", "attention_backend": "flashinfer",
                "mm_attention_backend": "fa4", "mem_fraction_static": 0.8},
    "1.2B-Base": {"trust_remote_code": True, "tp_size": 1},
}


def make_report(variant: str = "8B-A1B", hardware: str = "b200", *, weights: str = "real", confirmed: bool = True,
                mode: str = "launch", outcomes: tuple[str, ...] = ("passed", "passed", "xfailed", "skipped"),
                run: RunInfo | None = None, server_args: dict[str, Any] | None = None) -> dict[str, Any]:
    args = dict(RECIPE_ARGS[variant] if server_args is None else server_args)
    args.setdefault("model_path", f"/models/LFM2.5-{variant}")
    args["api_key"] = "sk-supersecretsupersecret"
    info = TargetInfo(id=variant, variant=variant, hardware=hardware, sglang_version="0.5.23",
                      base_url="http://127.0.0.1:30000", mode=mode, server_args=args, weights=weights,
                      hardware_confirmed=confirmed)
    results = [CheckResult(nodeid=f"conformance/test_f.py::test_{i}[{variant}]", target=variant, family="test_f",
                           outcome=o, duration=0.1, message="AssertionError: x" if o == "failed" else "")
               for i, o in enumerate(outcomes)]
    if run is None:
        run = RunInfo()
        run.collected[variant] = run.selected[variant] = len(outcomes)
    return build_report([info], results, run)


def write(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_a_verified_cell_prints_in_the_cookbook_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = make_report()
    assert report["cells"][0]["status"] == "Verified"
    assert main(["cookbook-cell", write(tmp_path, report)]) == EXIT_OK
    out = capsys.readouterr().out
    assert '  match: { hw: "b200", variant: "8b-a1b", quant: "bf16", strategy: "default", nodes: "single" },' in out
    assert "  verified: true,\n  env: [],\n" in out
    flags = ['"--trust-remote-code",', '"--model-path {{MODEL_NAME}}",', '"--tp 1",', '"--attention-backend flashinfer",',
             '"--reasoning-parser qwen3",', '"--tool-call-parser lfm2",', '"--host {{HOST_IP}}",', '"--port {{PORT}}",']
    lines = [line.strip() for line in out.splitlines()]
    assert lines[lines.index("flags: [") + 1: lines.index("flags: [") + 1 + len(flags)] == flags
    assert "SGLang 0.5.23" in out and "2 passed, 1 skipped, 1 xfailed (of 4 planned)" in out
    assert "Selection: the whole suite" in out and "report.json" in out
    assert "declared known failures (xfailed): test_f.py::test_2" in out
    assert "supersecret" not in out


def test_vl_cell_carries_the_recipe_env_and_memory_fraction(tmp_path: Path) -> None:
    [judged] = judge(make_report("VL-450M"))
    assert judged.earned, judged.refusals
    assert judged.cell["env"] == ["SGLANG_USE_CUDA_IPC_TRANSPORT=1", "SGLANG_USE_IPC_POOL_HANDLE_CACHE=1"]
    assert judged.cell["flags"][3:6] == ["--attention-backend flashinfer", "--mm-attention-backend fa4",
                                         "--tool-call-parser lfm2"]
    assert "--mem-fraction-static 0.8" in judged.cell["flags"]
    assert 'env: [\n    "SGLANG_USE_CUDA_IPC_TRANSPORT=1",' in render_cell(judged)


def test_a_value_the_server_ran_with_is_printed_as_run_and_named(tmp_path: Path) -> None:
    args = {**RECIPE_ARGS["8B-A1B"], "attention_backend": "torch_native", "trust_remote_code": False}
    [judged] = judge(make_report(server_args=args))
    assert "--attention-backend torch_native" in judged.cell["flags"]
    assert "--trust-remote-code" not in judged.cell["flags"]
    assert judged.evidence["differs_from_recipe"] == [
        "--trust-remote-code (the server ran without it)",
        "--attention-backend flashinfer (the server ran with --attention-backend torch_native)"]
    assert "// differs from the recipe: --trust-remote-code" in render_cell(judged)


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"weights": "random"}, "ran against random weights"),
    ({"weights": "reference", "mode": "reference"}, "ran in reference mode"),
    ({"confirmed": False}, "declared hardware 'b200' was not confirmed"),
    ({"outcomes": ("passed", "failed")}, "checks did not pass: 1 failed"),
    ({"outcomes": ("passed", "xpassed")}, "1 xpassed"),
    ({"mode": "engine"}, "ran in engine mode"),
    ({"hardware": "unknown"}, "hardware 'unknown' is not a cookbook hardware"),
    ({"variant": "1.2B-Base"}, "variant '1.2B-Base' is not in the cookbook's matrix"),
    ({"server_args": {}}, "did not report tool_call_parser"),
])
def test_cells_that_did_not_earn_verified_are_refused_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], kwargs: dict[str, Any], reason: str) -> None:
    assert main(["cookbook-cell", write(tmp_path, make_report(**kwargs))]) == EXIT_REFUSED
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("refused ") and reason in captured.err, captured.err


def test_partial_and_interrupted_runs_are_refused() -> None:
    filtered = RunInfo(selection=Selection(keyword="tool"))
    filtered.collected["8B-A1B"], filtered.selected["8B-A1B"] = 10, 4
    [judged] = judge(make_report(run=filtered))
    assert any("Partial (4 of 10 checks)" in r for r in judged.refusals)
    assert "the run was filtered (-k, -m, paths or --lf)" in judged.refusals
    interrupted = RunInfo(interrupted=True)
    interrupted.collected["8B-A1B"] = interrupted.selected["8B-A1B"] = 10
    [judged] = judge(make_report(run=interrupted))
    assert "its status is 'Interrupted', not 'Verified'" in judged.refusals


def test_a_report_from_before_honest_status_is_refused_even_when_it_says_verified(tmp_path: Path) -> None:
    report = make_report()
    for key in ("weights", "complete", "hardware_confirmed"):
        del report["cells"][0][key]
    report["cells"][0]["status"] = "Verified"
    [judged] = judge(report)
    assert judged.refusals == ["the report has no weights, complete, hardware_confirmed record for it (written "
                               "before honest cell status): re-run the suite with this pytest-lfm"]


def test_cell_selection_json_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, make_report())
    assert main(["cookbook-cell", "--cell", "b200/8B-A1B", "--json", path]) == EXIT_OK
    [entry] = json.loads(capsys.readouterr().out)
    assert entry["earned"] and entry["cell"]["match"]["variant"] == "8b-a1b" and entry["refusals"] == []
    assert main(["cookbook-cell", "--cell", "h100/350M", path]) == EXIT_BAD_INPUT
    assert "no cell of" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("[]")
    assert main(["cookbook-cell", str(tmp_path / "junk.json")]) == EXIT_BAD_INPUT


def test_merged_reports_keep_what_the_cookbook_needs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = write(tmp_path / "a", make_report())
    b = write(tmp_path / "b", make_report("VL-450M", weights="random"))
    assert main(["merge", a, b, "-o", str(tmp_path / "merged")]) == 0
    capsys.readouterr()
    assert main(["cookbook-cell", str(tmp_path / "merged")]) == EXIT_REFUSED
    out, err = capsys.readouterr()
    assert '"8b-a1b"' in out and "(merged from 2 reports)" in out and "complete; a merged report" in out
    assert err.startswith("refused b200/VL-450M/bf16/tp1/1: its status is 'Passed (random weights)'")
