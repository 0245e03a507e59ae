"""Fault modes of the reference server: one per regression class a conformance check exists to catch.

Each name maps to what the faulty server does (and the catalogue entry of
``sglang-lfm2-behaviour.md`` §10 it stands for). ``tests/`` starts the reference server with each
fault and shows that the checks named in :data:`CAUGHT_BY` fail on it.
"""

from __future__ import annotations

from collections.abc import Iterable

FAULTS: dict[str, str] = {
    # reasoning (§2, §10 C)
    "think_in_content": "the reasoning parser is bypassed: <think>…</think> stays inline in content",
    "reasoning_in_content": "reasoning text is returned in content (tags removed), reasoning_content null",
    "reasoning_after_content": "streaming sends the reasoning deltas after the content deltas",
    "reasoning_tokens_uncounted": "usage.reasoning_tokens is always 0",
    "thinking_not_forced": "qwen3-thinking is not forced: output without <think> lands in content",
    # tool calls (§1, §5, §10 A/B)
    "tool_call_as_text": "the lfm2 parser is bypassed: tool-call markup stays in content, no tool_calls",
    "tool_call_bad_id": "tool call ids are not 'call_' + 24 hex",
    "tool_call_finish_stop": "finish_reason stays 'stop' when tool_calls are returned",
    "tool_call_stream_index_zero": "every streamed tool-call delta has index 0 (calls merge client-side)",
    "tool_args_ascii_escaped": "tool-call arguments are JSON with non-ASCII escaped and keys re-sorted",
    "tool_parser_drops_nested": "the parser drops calls whose arguments hold nested dicts or lists",
    "tool_choice_ignored": "tool_choice none/required/named is ignored (treated as auto)",
    # sampling (§3-§4, §10 D)
    "ignore_top_k": "top_k from extra_body never reaches the sampler",
    "ignore_min_p": "min_p from extra_body never reaches the sampler",
    "ignore_top_p": "top_p never reaches the sampler",
    "ignore_repetition_penalty": "repetition_penalty from extra_body never reaches the sampler",
    "repetition_penalty_inverted": "repetition_penalty multiplies positive logits (rewards repeats)",
    "ignore_penalties": "frequency_penalty and presence_penalty never reach the sampler",
    "ignore_seed": "seed is ignored: every request draws from fresh entropy",
    "no_validation": "out-of-range sampling values are accepted (200) instead of 400",
    "error_500": "client input errors answer 500 Internal Server Error instead of 400",
    "usage_wrong": "usage.total_tokens is not prompt_tokens + completion_tokens",
    # completions (§3.2)
    "completions_no_echo": "echo=true does not prepend the prompt",
    "completions_default_max_tokens": "the default max_tokens of /v1/completions is not 16",
    "stop_ignored": "stop strings are not honoured and matched_stop is null",
    # streaming protocol (§5)
    "stream_no_role_chunk": "the first stream chunk carries content instead of the assistant role",
    "stream_no_done": "the stream ends without 'data: [DONE]'",
    # vision (§6, §10 E)
    "image_dropped": "image parts are silently dropped before the model sees them",
    "image_stale": "the first image ever seen is used for every later request (prefix-cache class)",
    "bad_media_500": "undecodable or unreachable media answers 500 instead of 400",
    "image_tokens_uncounted": "image tokens are not counted in usage.prompt_tokens",
}


class Faults:
    """The set of active fault modes."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        names = list(names)
        unknown = [n for n in names if n not in FAULTS]
        if unknown:
            raise ValueError(
                f"unknown fault mode(s) {', '.join(unknown)}; known: {', '.join(sorted(FAULTS))}"
            )
        self.names = frozenset(names)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name not in FAULTS:
            raise KeyError(f"no fault mode named {name!r}")
        return name in self.names

    def __repr__(self) -> str:
        return f"Faults({sorted(self.names)})"
