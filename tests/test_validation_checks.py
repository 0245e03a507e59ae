"""The validation checks apply their version gates (their control run and fault rows are data,
conformance/validation/faults.toml, run by tests/test_faults.py): a reference server emulating SGLang 0.5.10 / 0.5.17
(attached with ``--lfm-server=URL``) runs the cases gated to those versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import run_suite

from pytest_lfm.server.reference import ReferenceProcess

MODULE = "test_validation.py"


@pytest.fixture
def old_reference(request: pytest.FixtureRequest) -> Iterator[ReferenceProcess]:
    """A reference server emulating an older release, started by the test so the inner run attaches to it."""
    with ReferenceProcess("1.2B-Instruct", version=request.param) as proc:
        yield proc


def _attached_run(where: Path, url: str) -> dict[str, str]:
    run = run_suite(where, [MODULE], server=url, extra=["--lfm-variant=1.2B-Instruct"], k="test_validation_case",
                    timeout=300)
    assert run.checks, run.stdout[-2000:]
    return {c["nodeid"].split("[", 1)[-1].rstrip("]"): c["outcome"] for c in run.checks}


@pytest.mark.parametrize("old_reference", ["0.5.10"], indirect=True)
def test_version_gates_0510(tmp_path: Path, old_reference: ReferenceProcess) -> None:
    """On 0.5.10 repetition_penalty=0 is accepted (and crashes a real engine): the contract case is a strict
    known failure there, not an expected 200."""
    outcomes = _attached_run(tmp_path, old_reference.base_url)
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_rejected"] == "xfailed", outcomes
    assert outcomes["1.2B-Instruct-top_k_zero_accepted_0517"] == "passed", outcomes
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped", "xfailed")}
    assert not bad, bad


@pytest.mark.parametrize("old_reference", ["0.5.17"], indirect=True)
def test_version_gates_0517(tmp_path: Path, old_reference: ReferenceProcess) -> None:
    """On 0.5.17 (as recorded) top_k=0 is accepted and repetition_penalty=0 rejected."""
    outcomes = _attached_run(tmp_path, old_reference.base_url)
    assert outcomes["1.2B-Instruct-top_k_zero_accepted_0517"] == "passed", outcomes
    assert outcomes["1.2B-Instruct-top_k_zero_rejected"] == "passed", outcomes  # top_k is checked on every release
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_rejected"] == "passed", outcomes
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert not bad, bad
