"""Known failures that the reference server does not reproduce, or that show only on random weights."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pytest_lfm.expectations import KnownFailureEntry, load_known_failures


@dataclass
class FakeTarget:
    is_test_double: bool
    random_weights: bool


ENTRY = KnownFailureEntry(checks=("test_x.py::test_y",), reason="a defect of real SGLang", link="https://x/1")


@pytest.mark.parametrize(("entry", "target", "applies"), [
    (ENTRY, FakeTarget(True, False), True),
    (ENTRY, FakeTarget(False, True), True),
    (KnownFailureEntry(ENTRY.checks, ENTRY.reason, ENTRY.link, reference=False), FakeTarget(True, False), False),
    (KnownFailureEntry(ENTRY.checks, ENTRY.reason, ENTRY.link, reference=False), FakeTarget(False, False), True),
    (KnownFailureEntry(ENTRY.checks, ENTRY.reason, ENTRY.link, weights="random"), FakeTarget(False, False), False),
    (KnownFailureEntry(ENTRY.checks, ENTRY.reason, ENTRY.link, weights="random"), FakeTarget(False, True), True),
])
def test_scope(entry: KnownFailureEntry, target: FakeTarget, applies: bool) -> None:
    assert entry.applies_to_target(target) is applies  # type: ignore[arg-type]


def test_shipped_entries_carry_their_scope() -> None:
    by_check = {e.check: e for e in load_known_failures()}
    parallel = by_check["test_tool_calls.py::test_parallel_tool_calls_false_auto_one_call[non-stream]"]
    assert parallel.reference is False and parallel.weights == "any"
    top = by_check["test_chat_logprobs.py::test_chat_top_logprobs_sorted_distinct[non-stream]"]
    assert top.reference is False and top.weights == "random"


@pytest.mark.parametrize(("fatal", "test_double", "runs"), [
    (False, False, True), (False, True, True), (True, True, True), (True, False, False)])
def test_fatal_entry_is_not_sent_to_a_real_server(monkeypatch: pytest.MonkeyPatch, fatal: bool, test_double: bool,
                                                 runs: bool) -> None:
    """An entry whose request takes the server down (``fatal = true``) is a strict xfail that is not run on a
    real server, and runs on the reference server (which survives it and must still show it fails)."""
    from pytest_lfm import expectations

    entry = KnownFailureEntry(ENTRY.checks, ENTRY.reason, ENTRY.link, fatal=fatal)
    monkeypatch.setattr(expectations, "known_failures_for", lambda *_: [entry])
    item = type("Item", (), {"nodeid": "test_x.py::test_y[v]", "path": None})()
    mark = expectations.known_failure_mark(item, FakeTarget(test_double, False))  # type: ignore[arg-type]
    assert mark is not None and mark.kwargs["strict"] is True and mark.kwargs["run"] is runs
    assert ("not sent to a real server" in mark.kwargs["reason"]) is fatal


def test_repetition_penalty_zero_is_fatal_before_the_fix() -> None:
    """PR #24874: before it, repetition_penalty=0 passes validation and NaNs kill the engine."""
    entry = next(e for e in load_known_failures() if "repetition_penalty_zero_rejected" in e.check)
    assert entry.fatal and entry.fact == "!repetition-penalty-zero-rejected"
