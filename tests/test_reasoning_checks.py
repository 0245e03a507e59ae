"""The reasoning checks pass on a correct reference server and fail on the faults they exist to catch.

Each fault run starts the reference server with one fault mode and runs only the checks that fault
concerns (``-k``); every listed check must fail with a message naming what was expected and what came back.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_lfm.cases import load_cases
from pytest_lfm.lfm2 import REASONING_PARSERS

MODULES = ["test_reasoning_parser.py", "test_reasoning.py"]
REASONING = ["8B-A1B", "1.2B-Thinking"]


def test_reasoning_checks_pass_on_correct_server(suite: Any) -> None:
    """Every reasoning check passes (or is the declared strict xfail) on the reasoning variants and on one
    variant without a reasoning parser; the corpus runs at least 30 cases per parser name."""
    run = suite(MODULES, variants=[*REASONING, "1.2B-Instruct"])
    run.assert_passes("test_reasoning")
    assert run.ret == 0, run.stdout[-3000:]
    for parser in REASONING_PARSERS:
        passed = [n for n, o in run.outcomes("test_separate_reasoning_corpus[8B-A1B-").items()
                  if o == "passed" and n.endswith(f"-{parser}]")]
        assert len(passed) >= 30, (parser, len(passed))


def test_corpus_has_thirty_cases_per_parser_on_every_version() -> None:
    """At least 30 corpus cases hold on every SGLang version (not version-gated), for both parser names."""
    corpus = [c for c in load_cases("reasoning") if "text" in c.data]
    for parser in REASONING_PARSERS:
        assert sum(1 for c in corpus if parser in c.data and not c.fact) >= 30


# fault → (variants, [(check nodeid fragment, words the failure message must contain)])
FAULT_CASES: dict[str, tuple[list[str], list[tuple[str, tuple[str, ...]]]]] = {
    "think_in_content": (["8B-A1B"], [
        ("test_separate_reasoning_corpus[8B-A1B-complete-block-qwen3]", ("reasoning_text", "abc")),
        ("test_tagged_roundtrip_property[8B-A1B-qwen3]", ("<think>R</think>A",)),
        ("test_reasoning_split_from_content[", ("reasoning_content",)),
        ("test_forced_reasoning_case[8B-A1B-closed-block-non-stream]", ("reasoning_content", "abc")),
    ]),
    "reasoning_in_content": (["1.2B-Thinking"], [
        ("test_reasoning_split_from_content[", ("reasoning_content", "non-empty")),
    ]),
    "reasoning_after_content": (["8B-A1B"], [
        ("test_stream_reasoning_first_and_equal_to_non_stream[", ("reasoning delta", "content")),
        ("test_forced_reasoning_case[8B-A1B-closed-block-stream]", ("order",)),
    ]),
    "reasoning_tokens_uncounted": (["8B-A1B"], [
        ("test_reasoning_tokens_counted[", ("reasoning_tokens", "0 <")),
    ]),
    "reasoning_tokens_all": (["1.2B-Thinking"], [
        ("test_reasoning_tokens_counted[", ("reasoning_tokens", "content is non-empty")),
    ]),
    "thinking_not_forced": (["1.2B-Thinking"], [
        ("test_missing_open_tag_differs_between_parsers[", ("qwen3-thinking",)),
        ("test_untagged_start_roundtrip_property[", ("qwen3-thinking",)),
    ]),
    "reasoning_text_stripped": (["8B-A1B"], [
        ("test_separate_reasoning_corpus[8B-A1B-whitespace-kept-qwen3]", ("  answer  ",)),
        ("test_separate_reasoning_corpus[8B-A1B-newlines-kept-qwen3-thinking]", ("\\n\\nanswer",)),
    ]),
    "think_start_removed_everywhere": (["8B-A1B"], [
        ("test_separate_reasoning_corpus[8B-A1B-open-tag-in-answer-qwen3]", ("b<think>c",)),
    ]),
    "stream_reasoning_ignored": (["8B-A1B"], [
        ("test_stream_reasoning_false_sends_one_delta[", ("number of reasoning deltas",)),
    ]),
    "separate_reasoning_ignored": (["1.2B-Thinking"], [
        ("test_separate_reasoning_false_keeps_tags_inline[1.2B-Thinking-non-stream]", ("reasoning_content",)),
        ("test_separate_reasoning_false_keeps_tags_inline[1.2B-Thinking-stream]", ("reasoning_content",)),
    ]),
    "unterminated_think_as_content": (["8B-A1B"], [
        ("test_truncated_thinking_is_all_reasoning[8B-A1B-non-stream]", ("content",)),
        ("test_truncated_thinking_is_all_reasoning[8B-A1B-stream]", ("content",)),
    ]),
    "enable_thinking_ignored": (["8B-A1B"], [
        ("test_enable_thinking_false_gives_no_reasoning[", ("enable_thinking=false",)),
    ]),
    "reasoning_parser_always_on": (["1.2B-Instruct"], [
        ("test_no_reasoning_without_reasoning_parser[", ("without a reasoning parser",)),
        ("test_think_text_stays_in_content_without_reasoning_parser[", ("<think>abc</think>answer",)),
    ]),
    "tool_call_in_reasoning": (["8B-A1B"], [
        ("test_tool_call_after_reasoning_forced[8B-A1B-non-stream]", ("need weather",)),
        ("test_tool_call_after_reasoning_natural[", ("tool calls",)),
    ]),
    "stream_reasoning_think_leak": (["8B-A1B", "1.2B-Thinking"], [
        ("test_forced_reasoning_case[8B-A1B-stream-reasoning-false-one-delta-stream]", ("<think>abc",)),
        ("test_stream_reasoning_false_sends_one_delta[1.2B-Thinking]", ("the one reasoning delta", "<think>")),
    ]),
    "tool_call_as_text": (["8B-A1B"], [
        ("test_tool_call_after_reasoning_forced[8B-A1B-stream]", ("get_weather",)),
    ]),
}


@pytest.mark.parametrize("fault", sorted(FAULT_CASES))
def test_reasoning_check_fails_on_fault(suite: Any, fault: str) -> None:
    variants, expectations = FAULT_CASES[fault]
    selector = " or ".join(sorted({m.split("[")[0] for m, _ in expectations}))
    run = suite(MODULES, variants=variants, faults=[fault], extra=["-k", selector])
    for match, words in expectations:
        run.assert_fails(match, *words)
