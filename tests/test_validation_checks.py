"""The validation checks (the §4 table and the fuzz) pass on a correct reference server, fail on the faults
they exist to catch, and apply their version gates: a reference server emulating SGLang 0.5.10 / 0.5.17
(attached with ``--lfm-server=URL``) runs the cases gated to those versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Suite, run_suite

from pytest_lfm.server.reference import ReferenceProcess

MODULE = "test_validation.py"


def test_validation_checks_pass_on_correct_server(suite: Suite) -> None:
    run = suite(MODULE, variants=["1.2B-Instruct", "1.2B-Base"])
    run.assert_passes("test_validation")
    assert run.ret == 0, run.stdout[-2000:]
    # the default reference emulates 0.5.23: the 0.5.23 gates run, the older ones are skipped
    assert run.outcome("test_validation_case[1.2B-Instruct-top_k_zero_rejected]") == "passed"
    assert run.outcome("test_validation_case[1.2B-Instruct-top_k_zero_accepted_0517]") == "skipped"
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
def test_validation_check_fails_on_fault(suite: Suite, fault: str, checks: list[str], words: list[str]) -> None:
    run = suite(MODULE, faults=[fault])
    for check in checks:
        run.assert_fails(check, *words)


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
    """On 0.5.10 repetition_penalty=0 is accepted: the accepting case runs and passes, the 400 case is skipped."""
    outcomes = _attached_run(tmp_path, old_reference.base_url)
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_accepted_0510"] == "passed", outcomes
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_rejected"] == "skipped", outcomes
    assert outcomes["1.2B-Instruct-top_k_zero_accepted_0517"] == "passed", outcomes
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert not bad, bad


@pytest.mark.parametrize("old_reference", ["0.5.17"], indirect=True)
def test_version_gates_0517(tmp_path: Path, old_reference: ReferenceProcess) -> None:
    """On 0.5.17 (as recorded) top_k=0 is accepted and repetition_penalty=0 rejected."""
    outcomes = _attached_run(tmp_path, old_reference.base_url)
    assert outcomes["1.2B-Instruct-top_k_zero_accepted_0517"] == "passed", outcomes
    assert outcomes["1.2B-Instruct-top_k_zero_rejected"] == "skipped", outcomes
    assert outcomes["1.2B-Instruct-repetition_penalty_zero_rejected"] == "passed", outcomes
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "skipped")}
    assert not bad, bad
