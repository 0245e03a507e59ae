"""The sampling checks pass on a correct reference server and fail on the faults they exist to catch."""

from __future__ import annotations

import pytest
from harness import Suite

MODULE = "test_sampling.py"


def test_sampling_checks_pass_on_correct_server(suite: Suite) -> None:
    run = suite(MODULE, variants=["1.2B-Instruct", "1.2B-Thinking", "1.2B-Base"])
    run.assert_passes("test_sampling")
    assert run.ret == 0, run.stdout[-2000:]


@pytest.mark.parametrize(("fault", "checks", "words"), [
    # a field dropped before the sampler
    ("ignore_top_k", ["test_restriction_makes_temperature_1_greedy[1.2B-Instruct-top_k=1-chat]",
                      "test_restriction_makes_temperature_1_greedy[1.2B-Instruct-top_k=1-completions]"],
     ["top_k=1", "seeds equal greedy"]),
    ("ignore_min_p", ["test_restriction_makes_temperature_1_greedy[1.2B-Instruct-min_p=1.0-chat]"],
     ["min_p=1.0", "seeds equal greedy"]),
    ("ignore_top_p", ["test_restriction_makes_temperature_1_greedy[1.2B-Instruct-top_p=1e-6-completions]"],
     ["top_p=1e-6"]),
    ("ignore_repetition_penalty", ["test_repetition_penalty_changes_repetitive_greedy[1.2B-Instruct-chat]",
                                   "test_repetition_penalty_changes_repetitive_greedy[1.2B-Instruct-completions]"],
     ["repetition_penalty=2.0"]),
    ("ignore_penalties", ["test_penalty_changes_repetitive_greedy[1.2B-Instruct-frequency_penalty-chat]",
                          "test_penalty_changes_repetitive_greedy[1.2B-Instruct-presence_penalty-completions]"],
     ["penalty=2 changes"]),
    # a field applied with the wrong semantics
    ("repetition_penalty_inverted", ["test_repetition_penalty_changes_repetitive_greedy[1.2B-Instruct-completions]"],
     ["repetition_penalty=2.0"]),
    ("ignore_seed", ["test_seed_reproducible[1.2B-Instruct-chat]", "test_seed_reproducible[1.2B-Instruct-completions]"],
     ["same text every time"]),
    ("seed_constant", ["test_different_seeds_differ[1.2B-Instruct-chat]"], ["different seeds"]),
    # the preset's sampler fields refused; a 500 on an unknown field
    ("extra_body_rejected", ["test_recommended_preset_accepted_on_completions[1.2B-Instruct]"], ["HTTP 200", "HTTP 400"]),
    ("unknown_field_500", ["test_misspelled_field_is_a_finding[1.2B-Instruct]"], ["HTTP 500"]),
])
def test_sampling_check_fails_on_fault(suite: Suite, fault: str, checks: list[str], words: list[str]) -> None:
    run = suite(MODULE, faults=[fault])
    for check in checks:
        run.assert_fails(check, *words)


def test_preset_check_fails_when_extra_body_rejected(suite: Suite) -> None:
    """The SDK-based preset check (lfm_chat sends extra_body) fails when the server refuses the fields."""
    run = suite(MODULE, faults=["extra_body_rejected"], extra=["-k", "test_recommended_preset_accepted"])
    outcome = run.outcome("test_recommended_preset_accepted[1.2B-Instruct]")
    assert outcome == "failed", run.stdout[-2000:]
    assert "top_k" in run.message("test_recommended_preset_accepted[1.2B-Instruct]")
