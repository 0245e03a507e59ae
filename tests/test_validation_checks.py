"""The validation checks apply their version gates (their control run and fault rows are data,
conformance/validation/faults.toml, run by tests/test_faults.py): a reference server emulating SGLang 0.5.10 / 0.5.17
(attached with ``--lfm-server=URL``) runs the cases gated to those versions."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pytest_lfm.paths import suite_module
from pytest_lfm.server.reference import ReferenceProcess

MODULE = "test_validation.py"


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
        str(suite_module(MODULE)), f"--lfm-server={url}", "--lfm-variant=1.2B-Instruct", f"--lfm-report={report}",
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
    assert outcomes["1.2B-Instruct-top_k_zero_rejected"] == "skipped", outcomes
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_rejected"] == "passed", outcomes
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert not bad, bad
