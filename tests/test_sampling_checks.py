"""The sampling family's control run and fault rows are data (conformance/sampling/faults.toml, run by
tests/test_faults.py); the row whose message is the SDK's own is shown here."""

from __future__ import annotations

from harness import Suite

MODULE = "test_sampling.py"


def test_preset_check_fails_when_extra_body_rejected(suite: Suite) -> None:
    """The SDK-based preset check (lfm_chat sends extra_body) fails when the server refuses the fields."""
    run = suite(MODULE, faults=["extra_body_rejected"], extra=["-k", "test_recommended_preset_accepted"])
    outcome = run.outcome("test_recommended_preset_accepted[1.2B-Instruct]")
    assert outcome == "failed", run.stdout[-2000:]
    assert "top_k" in run.message("test_recommended_preset_accepted[1.2B-Instruct]")


def test_seed_check_not_run_without_deterministic_inference(suite: Suite) -> None:
    """On a server that reports ``enable_deterministic_inference: false`` (SGLang's default) the seed check
    passes only by luck, so it must say it did not run: skipped with a reason starting "not run: needs",
    which the report counts as not run (issue 20: capability-gated checks)."""
    run = suite(MODULE, faults=["deterministic_inference_off"], extra=["-k", "test_seed_reproducible"])
    for endpoint in ("chat", "completions"):
        check = f"test_seed_reproducible[1.2B-Instruct-{endpoint}]"
        assert run.outcome(check) == "skipped", run.stdout[-2000:]
        found = [c for c in run.checks if check in c["nodeid"]]
        message = str(found[0].get("message") or "")
        assert "not run: needs --enable-deterministic-inference" in message, message
        assert "enable_deterministic_inference=False" in message, message
