"""The sampling family's control run and fault rows are data (conformance/sampling/faults.toml, run by
tests/test_faults.py); shown here: the row whose message is the SDK's own, and the declared-defaults rows (they
need a reference server started with --sampling-defaults)."""

from __future__ import annotations

from harness import Suite, SuiteRun

from pytest_lfm.server.reference import ReferenceProcess

MODULE = "test_sampling.py"
DEFAULTS = {"temperature": 0.3, "top_k": 20, "repetition_penalty": 1.3}


def _declared(suite: Suite, faults: tuple[str, ...]) -> SuiteRun:
    with ReferenceProcess("1.2B-Instruct", faults, sampling_defaults=DEFAULTS) as proc:
        return suite(MODULE, server=f"1.2B-Instruct={proc.base_url}", extra=["-k", "omitted"])


def test_declared_defaults_check_catches_ignored_defaults(suite: Suite) -> None:
    """With --sampling-defaults the omitted-fields checks pass on a correct server (and record where they read
    the defaults), and fail when the server ignores them (sampling_defaults_ignored)."""
    good = _declared(suite, ())
    good.assert_passes("test_omitted_fields_get_declared_defaults")
    good.assert_passes("test_omitted_repetition_penalty_gets_declared_default")
    props = [c.get("properties", {}) for c in good.checks]
    assert any("preferred_sampling_params" in str(p.get("sampling_defaults")) for p in props), props
    bad = _declared(suite, ("sampling_defaults_ignored",))
    bad.assert_fails("test_omitted_fields_get_declared_defaults[1.2B-Instruct]", "declared defaults")
    bad.assert_fails("test_omitted_repetition_penalty_gets_declared_default[1.2B-Instruct]", "declared default 1.3")


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
