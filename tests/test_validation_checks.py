"""The validation checks (the §4 table and the fuzz) pass on a correct reference server, fail on the faults
they exist to catch, and apply their version gates: a reference server emulating SGLang 0.5.10 / 0.5.17
(attached with ``--lfm-server=URL``) runs the cases gated to those versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_lfm.paths import suite_dir
from pytest_lfm.server.reference import ReferenceProcess

MODULE = "test_validation.py"


def test_validation_checks_pass_on_correct_server(suite: Any) -> None:
    run = suite(MODULE, variants=["1.2B-Instruct", "1.2B-Base"])
    run.assert_passes("test_validation")
    assert run.ret == 0, run.stdout[-2000:]
    # the default reference emulates 0.5.23: cases gated on facts it has run, "!fact" ones are skipped;
    # top_k is checked the same way on every release (greedy sets it to 1 first), so both top_k cases run
    assert run.outcome("test_validation_case[1.2B-Instruct-top_k_zero_rejected]") == "passed"
    assert run.outcome("test_validation_case[1.2B-Instruct-top_k_zero_accepted_0517]") == "passed"
    assert run.outcome("test_validation_case[1.2B-Instruct-repetition_penalty_zero_accepted_0510]") == "skipped"


@pytest.mark.parametrize(("fault", "checks", "words"), [
    ("no_validation", ["test_validation_case[1.2B-Instruct-top_p_above_one]",
                       "test_validation_case[1.2B-Instruct-top_p_above_one_stream]",
                       "test_validation_case[1.2B-Instruct-completions_max_tokens_huge]",
                       "test_fuzz_sampling_domain[1.2B-Instruct]"], ["HTTP"]),
    ("error_500", ["test_validation_case[1.2B-Instruct-presence_penalty_three]",
                   "test_fuzz_sampling_domain[1.2B-Instruct]"], ["500"]),
    ("sampling_error_generic", ["test_validation_case[1.2B-Instruct-min_p_above_one]"],
     ["min_p must be in [0, 1], got 2.0.", "Invalid sampling parameters."]),
])
def test_validation_check_fails_on_fault(suite: Any, fault: str, checks: list[str], words: list[str]) -> None:
    run = suite(MODULE, faults=[fault])
    for check in checks:
        run.assert_fails(check, *words)


@pytest.fixture
def old_reference(request: pytest.FixtureRequest) -> Iterator[ReferenceProcess]:
    proc = ReferenceProcess("1.2B-Instruct", version=request.param)
    proc.spawn()
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def _attached_run(pytester: pytest.Pytester, url: str) -> dict[str, str]:
    report = pytester.path / "lfm-report"
    result = pytester.runpytest_subprocess(
        str(suite_dir() / MODULE), f"--lfm-server={url}", "--lfm-variant=1.2B-Instruct", f"--lfm-report={report}",
        "-p", "no:cacheprovider", "-q", "-k", "test_validation_case", timeout=300)
    data = json.loads((report / "report.json").read_text())
    checks = [c for cell in data["cells"] for c in cell["checks"]] + data["other_checks"]
    assert checks, result.stdout.str()[-2000:]
    return {c["nodeid"].split("[", 1)[-1].rstrip("]"): c["outcome"] for c in checks}


@pytest.mark.parametrize("old_reference", ["0.5.10"], indirect=True)
def test_version_gates_0510(pytester: pytest.Pytester, old_reference: ReferenceProcess) -> None:
    """On 0.5.10 repetition_penalty=0 is accepted: the accepting case runs and passes, the 400 case is skipped."""
    outcomes = _attached_run(pytester, old_reference.base_url)
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_accepted_0510"] == "passed", outcomes
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_rejected"] == "skipped", outcomes
    assert outcomes["1.2B-Instruct-top_k_zero_accepted_0517"] == "passed", outcomes
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert not bad, bad


@pytest.mark.parametrize("old_reference", ["0.5.17"], indirect=True)
def test_version_gates_0517(pytester: pytest.Pytester, old_reference: ReferenceProcess) -> None:
    """On 0.5.17 (as recorded) top_k=0 is accepted and repetition_penalty=0 rejected."""
    outcomes = _attached_run(pytester, old_reference.base_url)
    assert outcomes["1.2B-Instruct-top_k_zero_accepted_0517"] == "passed", outcomes
    assert outcomes["1.2B-Instruct-top_k_zero_rejected"] == "passed", outcomes  # top_k is checked on every release
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_rejected"] == "passed", outcomes
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert not bad, bad
