"""The completions checks pass on a correct reference server and fail on the faults they exist to catch.

``test_capital_of_france`` needs real weights and is skipped on the reference server, so no fault test can
show it failing here; it is a content check, proven on a real checkpoint only."""

from __future__ import annotations

import pytest
from harness import Suite

MODULE = "test_completions.py"


def test_completions_checks_pass_on_correct_server(suite: Suite) -> None:
    run = suite(MODULE, variants=["1.2B-Instruct", "1.2B-Thinking", "1.2B-Base"])
    run.assert_passes("test_completions")
    assert run.ret == 0, run.stdout[-2000:]
    assert run.outcome("test_capital_of_france[1.2B-Base]") == "skipped"
    assert run.outcome("test_chat_on_base_as_documented[1.2B-Base]") == "passed"


@pytest.mark.parametrize(("fault", "check", "words"), [
    ("completions_no_echo", "test_echo_returns_prompt_plus_completion[1.2B-Base]", ["prompt + completion"]),
    ("completions_logprobs_short", "test_logprobs_shape_and_counts[1.2B-Base]", ["completion_tokens"]),
    ("completions_n_ignored", "test_n_choices[1.2B-Base]", ["choice indexes", "[0, 1]"]),
    ("stop_ignored", "test_stop_honoured_with_matched_stop[1.2B-Base]", ["text before the stop string"]),
    ("completions_default_max_tokens", "test_default_max_tokens_16[1.2B-Base]", ["16"]),
    ("usage_wrong", "test_usage_arithmetic[1.2B-Base]", ["total_tokens"]),
    ("base_chat_500", "test_chat_on_base_as_documented[1.2B-Base]", ["HTTP 500"]),
])
def test_completions_check_fails_on_fault(suite: Suite, fault: str, check: str, words: list[str]) -> None:
    run = suite(MODULE, variants=["1.2B-Base"], faults=[fault])
    run.assert_fails(check, *words)
