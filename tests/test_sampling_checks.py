"""The sampling family's control run and fault rows are data (conformance/sampling/faults.toml, run by
tests/test_faults.py); the row whose message is the SDK's own is shown here."""

from __future__ import annotations

from typing import Any

MODULE = "test_sampling.py"


def test_preset_check_fails_when_extra_body_rejected(suite: Any) -> None:
    """The SDK-based preset check (lfm_chat sends extra_body) fails when the server refuses the fields."""
    run = suite(MODULE, faults=["extra_body_rejected"], extra=["-k", "test_recommended_preset_accepted"])
    outcome = run.outcome("test_recommended_preset_accepted[1.2B-Instruct]")
    assert outcome == "failed", run.stdout[-2000:]
    assert "top_k" in run.message("test_recommended_preset_accepted[1.2B-Instruct]")
