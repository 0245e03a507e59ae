"""Reasoning end to end: ``--reasoning-parser qwen3`` (8B-A1B) and ``qwen3-thinking`` (1.2B-Thinking) split the
chain of thought into ``reasoning_content``, in responses, streams and usage (§2, §5, §10).

Two kinds of checks, both valid on a random-weight server:

* natural output, greedy (temperature 0, so one request is deterministic): assertions that hold
  whatever the model says (tags never in content; reasoning before content; stream equals non-stream;
  ``0 < reasoning_tokens <= completion_tokens``, strictly less once the model has answered);
* forced output: the raw text is forced with SGLang's ``regex`` constraint with thinking switched off
  (``chat_template_kwargs.enable_thinking=false``, so the constraint applies from the first token and
  ``qwen3`` is not forced), which makes the parser's input exact. Only where thinking can be switched
  off (``qwen3``); with ``qwen3-thinking`` a constraint waits for the model's own ``</think>``
  (gpu-sglang-0.5.17.md). Cases: ``conformance/reasoning/cases/forced.toml``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_lfm.assertions import expect_equal, expect_true, fail
from pytest_lfm.cases import Case, load_cases
from pytest_lfm.client import LfmHttp, StreamResult, message_of
from pytest_lfm.lfm2 import BOT, EOT, THINK_END, THINK_START, render_tool_calls
from pytest_lfm.releases import has_fact
from pytest_lfm.server.base import Target
from pytest_lfm.variants import Variant

QUESTION = [{"role": "user", "content": "What is the capital of France? Think it through, then answer briefly."}]
WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
MAX_TOKENS = 256  # room to close the think block and answer on the reference server
TRUNCATE_AT = 24  # inside any think block: past "<think>", before "</think>"
THINKING_OFF: dict[str, Any] = {"enable_thinking": False}
FORCED = [c for c in load_cases("reasoning") if "raw" in c.data]
TAGS = (THINK_START, THINK_END)
MARKUP = (BOT, EOT, "get_weather(")


# ------------------------------------------------------------------------------------------ helpers


def _greedy(**fields: Any) -> dict[str, Any]:
    return {"temperature": 0, "max_tokens": MAX_TOKENS, **fields}


def _stream(http: LfmHttp, messages: list[dict[str, Any]], **fields: Any) -> StreamResult:
    __tracebackhide__ = True
    result = http.chat_stream(messages, stream_options={"include_usage": True}, **fields)
    if result.status != 200 or result.errors or not result.done:
        fail("streaming chat completion did not complete", "HTTP 200, no error events, data: [DONE]",
             {"status": result.status, "errors": result.errors, "done": result.done, "raw": result.raw[-400:]})
    return result


def _kinds(stream: StreamResult) -> list[str]:
    """What each delta carries, in order: 'reasoning', 'content', 'tool_calls' (empty deltas left out)."""
    out = []
    for d in stream.deltas():
        if d.get("reasoning_content"):
            out.append("reasoning")
        if d.get("content"):
            out.append("content")
        if d.get("tool_calls"):
            out.append("tool_calls")
    return out


def _expect_reasoning_first(what: str, stream: StreamResult) -> None:
    __tracebackhide__ = True
    kinds = _kinds(stream)
    first_other = next((i for i, k in enumerate(kinds) if k != "reasoning"), len(kinds))
    late = [i for i, k in enumerate(kinds) if k == "reasoning" and i > first_other]
    expect_true(what, not late, "every reasoning delta before the first content or tool-call delta",
                {"delta kinds in order": _compress(kinds)})


def _compress(kinds: list[str]) -> list[str]:
    out: list[str] = []
    for k in kinds:
        if out and out[-1].split(" x")[0] == k:
            n = int(out[-1].split(" x")[1]) + 1 if " x" in out[-1] else 2
            out[-1] = f"{k} x{n}"
        else:
            out.append(k)
    return out


def _no_tags(what: str, text: str | None) -> None:
    __tracebackhide__ = True
    found = [t for t in TAGS if t in (text or "")]
    expect_true(what, not found, "no <think> or </think> in the text", {"tags found": found, "text": text})


def _reasoning_variant(variant: Variant) -> None:
    if not variant.supports("reasoning"):
        pytest.skip(f"needs reasoning; variant {variant.id} has no reasoning parser")


def _switchable(variant: Variant) -> None:
    _reasoning_variant(variant)
    if variant.supports("always_thinking"):
        pytest.skip(f"{variant.id} always thinks (qwen3-thinking stays forced with enable_thinking=false), so a "
                    "regex constraint applies only after the model's own </think> (gpu-sglang-0.5.17.md)")


def _forced_body(raw: str, **fields: Any) -> dict[str, Any]:
    return {"temperature": 0, "max_tokens": 96, "regex": re.escape(raw), "chat_template_kwargs": THINKING_OFF,
            **fields}


@pytest.fixture(scope="module")
def natural(lfm_http: LfmHttp, lfm_target: Target) -> dict[str, Any]:
    """One greedy chat completion per reasoning target (shared by the checks that only read it)."""
    _reasoning_variant(lfm_target.variant)
    return lfm_http.chat(QUESTION, **_greedy())


@pytest.fixture(scope="module")
def natural_stream(lfm_http: LfmHttp, lfm_target: Target) -> StreamResult:
    """The same request, streamed."""
    _reasoning_variant(lfm_target.variant)
    return _stream(lfm_http, QUESTION, **_greedy())


# ------------------------------------------------------------------------------------------ natural output


@pytest.mark.lfm_requires("reasoning")
def test_reasoning_split_from_content(natural: dict[str, Any]) -> None:
    """With the variant's reasoning parser, a greedy answer carries non-empty ``reasoning_content`` and no
    ``<think>`` / ``</think>`` in either field (§2, §10: reasoning in content, tags leaking)."""
    msg = message_of(natural)
    reasoning = msg.get("reasoning_content")
    expect_true("reasoning_content of a thinking answer", isinstance(reasoning, str) and bool(reasoning),
                "a non-empty string", {"reasoning_content": reasoning, "content": msg.get("content")})
    _no_tags("content of a thinking answer", msg.get("content"))
    _no_tags("reasoning_content of a thinking answer", reasoning)


@pytest.mark.lfm_requires("reasoning")
def test_reasoning_tokens_counted(natural: dict[str, Any]) -> None:
    """``usage.reasoning_tokens`` counts the thinking: ``0 < r <= completion_tokens``, and ``r <
    completion_tokens`` once the model has answered (non-empty content), as SGLang's reasoning kit asserts
    (§2, §10)."""
    usage = natural.get("usage") or {}
    r, ct = usage.get("reasoning_tokens"), usage.get("completion_tokens")
    content = message_of(natural).get("content") or ""
    ok = isinstance(r, int) and isinstance(ct, int) and 0 < r <= ct and (r < ct or not content.strip())
    expect_true("usage.reasoning_tokens of a thinking answer", ok,
                "0 < reasoning_tokens <= completion_tokens, and < completion_tokens when content is non-empty",
                {"reasoning_tokens": r, "completion_tokens": ct, "content": content[:200]})


@pytest.mark.lfm_requires("reasoning")
def test_stream_reasoning_first_and_equal_to_non_stream(natural: dict[str, Any],
                                                        natural_stream: StreamResult) -> None:
    """Streaming the same greedy request: every ``reasoning_content`` delta comes before the first content
    delta, and the deltas concatenate to the non-streaming ``reasoning_content`` and ``content``; usage
    agrees (§2 streaming, §5)."""
    _expect_reasoning_first("streamed reasoning order", natural_stream)
    msg = message_of(natural)
    expect_equal("streamed reasoning_content, concatenated", msg.get("reasoning_content") or "",
                 natural_stream.reasoning)
    expect_equal("streamed content, concatenated", msg.get("content") or "", natural_stream.content)
    expect_equal("streamed finish_reason", natural["choices"][0].get("finish_reason"), natural_stream.finish_reason)
    usage = natural_stream.usage or {}
    expect_equal("streamed usage.reasoning_tokens", (natural.get("usage") or {}).get("reasoning_tokens"),
                 usage.get("reasoning_tokens"))


@pytest.mark.lfm_requires("reasoning")
def test_stream_reasoning_false_sends_one_delta(lfm_http: LfmHttp, lfm_target: Target, natural: dict[str, Any],
                                                record_property: Any) -> None:
    """``stream_reasoning=false``: the reasoning arrives in exactly one delta, before any content, equal to the
    non-streaming reasoning, and the content deltas still concatenate to the non-streaming content (§2).
    Before release fact ``stream-reasoning-false-strips-think`` (0.5.18) that delta keeps the raw ``<think>``
    tag (recorded on 0.5.17): tolerated there, and pinned by the forced case
    ``stream-reasoning-false-one-delta`` (a strict known failure there)."""
    stream = _stream(lfm_http, QUESTION, **_greedy(stream_reasoning=False))
    pieces = [d["reasoning_content"] for d in stream.deltas() if d.get("reasoning_content")]
    expected = message_of(natural).get("reasoning_content") or ""
    expect_equal("number of reasoning deltas with stream_reasoning=false", 1, len(pieces),
                 {"reasoning deltas": pieces[:5]})
    _expect_reasoning_first("reasoning order with stream_reasoning=false", stream)
    if pieces[0] == THINK_START + expected and not has_fact("stream-reasoning-false-strips-think", lfm_target.version):
        record_property("lfm_known_gap", "stream_reasoning=false delta starts with the raw <think> tag "
                                         "(!stream-reasoning-false-strips-think)")
    else:
        expect_equal("the one reasoning delta", expected, pieces[0])
    expect_equal("content with stream_reasoning=false", message_of(natural).get("content") or "", stream.content)


@pytest.mark.lfm_requires("reasoning")
@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_separate_reasoning_false_keeps_tags_inline(lfm_http: LfmHttp, natural: dict[str, Any],
                                                    stream: bool) -> None:
    """``separate_reasoning=false`` skips the reasoning parser: ``reasoning_content`` stays null (no
    reasoning deltas) and content holds the raw output — the reasoning text, ``</think>`` once the model
    closed the block, then the answer (§2; recorded on 0.5.17)."""
    split = message_of(natural)
    reasoning, answer = split.get("reasoning_content") or "", split.get("content") or ""
    if stream:
        s = _stream(lfm_http, QUESTION, **_greedy(separate_reasoning=False))
        got_reasoning, content = (s.reasoning or None), s.content
    else:
        msg = message_of(lfm_http.chat(QUESTION, **_greedy(separate_reasoning=False)))
        got_reasoning, content = msg.get("reasoning_content"), msg.get("content") or ""
    expect_equal("reasoning_content with separate_reasoning=false", None, got_reasoning)
    ok = reasoning in content and content.endswith(answer) and (THINK_END in content or not answer)
    expect_true("content with separate_reasoning=false", ok,
                {"contains": reasoning[:120], "ends with": answer[-120:], "and </think>": bool(answer)},
                {"content": content})


@pytest.mark.lfm_requires("reasoning")
@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_truncated_thinking_is_all_reasoning(lfm_http: LfmHttp, stream: bool) -> None:
    """``max_tokens`` hit inside the think block: ``finish_reason`` "length", everything in
    ``reasoning_content`` and empty content (§2: no ``</think>`` means truncated reasoning)."""
    fields = {"temperature": 0, "max_tokens": TRUNCATE_AT}
    finish: str | None
    reasoning: str | None
    content: str | None
    if stream:
        s = _stream(lfm_http, QUESTION, **fields)
        finish, reasoning, content = s.finish_reason, s.reasoning, s.content
    else:
        r = lfm_http.chat(QUESTION, **fields)
        msg = message_of(r)
        finish, reasoning, content = r["choices"][0].get("finish_reason"), msg.get("reasoning_content"), \
            msg.get("content")
    expect_equal("finish_reason when max_tokens ends the thinking", "length", finish)
    expect_equal("content when max_tokens ends the thinking", "", content or "",
                 {"reasoning_content": reasoning})
    expect_true("reasoning_content when max_tokens ends the thinking", bool(reasoning), "non-empty reasoning",
                {"reasoning_content": reasoning})
    _no_tags("truncated reasoning", reasoning)


@pytest.mark.lfm_requires("reasoning")
def test_enable_thinking_false_gives_no_reasoning(lfm_http: LfmHttp, lfm_variant: Variant) -> None:
    """``qwen3`` with ``chat_template_kwargs.enable_thinking=false``: the model does not think and the
    parser is not forced, so ``reasoning_content`` is null, ``usage.reasoning_tokens`` is 0 and the answer
    is in content (§2; recorded on 0.5.17). Not for always-thinking variants (``qwen3-thinking`` stays
    forced)."""
    _switchable(lfm_variant)
    r = lfm_http.chat(QUESTION, **_greedy(chat_template_kwargs=THINKING_OFF))
    msg = message_of(r)
    expect_equal("reasoning_content with enable_thinking=false", None, msg.get("reasoning_content"),
                 {"content": msg.get("content")})
    expect_equal("usage.reasoning_tokens with enable_thinking=false", 0, (r.get("usage") or {}).get("reasoning_tokens"))
    expect_true("content with enable_thinking=false", bool(msg.get("content")), "a non-empty answer",
                {"content": msg.get("content")})
    _no_tags("content with enable_thinking=false", msg.get("content"))


@pytest.mark.lfm_requires("chat")
def test_no_reasoning_without_reasoning_parser(lfm_http: LfmHttp, lfm_variant: Variant) -> None:
    """Variants served without ``--reasoning-parser`` never return ``reasoning_content`` (null, no reasoning
    deltas) and report ``usage.reasoning_tokens`` 0 (§2, §9: reasoning content stays empty without a
    parser)."""
    if lfm_variant.supports("reasoning"):
        pytest.skip(f"{lfm_variant.id} is served with a reasoning parser")
    r = lfm_http.chat(QUESTION, **_greedy(max_tokens=96))
    s = _stream(lfm_http, QUESTION, **_greedy(max_tokens=96))
    expect_equal("reasoning_content without a reasoning parser", None, message_of(r).get("reasoning_content"))
    expect_equal("usage.reasoning_tokens without a reasoning parser", 0, (r.get("usage") or {}).get("reasoning_tokens"))
    expect_equal("streamed reasoning without a reasoning parser", "", s.reasoning)
    expect_equal("streamed usage.reasoning_tokens without a reasoning parser", 0, (s.usage or {}).get("reasoning_tokens"))


@pytest.mark.lfm_requires("chat")
def test_think_text_stays_in_content_without_reasoning_parser(lfm_http: LfmHttp, lfm_variant: Variant) -> None:
    """Without ``--reasoning-parser`` a forced ``<think>abc</think>answer`` stays verbatim in content,
    ``reasoning_content`` null, 0 reasoning tokens (§2; gpu-sglang-0.5.17.md: the <think> text stays in
    content)."""
    if lfm_variant.supports("reasoning"):
        pytest.skip(f"{lfm_variant.id} is served with a reasoning parser")
    raw = "<think>abc</think>answer"
    r = lfm_http.chat(QUESTION, temperature=0, max_tokens=64, regex=re.escape(raw))
    msg = message_of(r)
    expect_equal("content of a forced think block without a reasoning parser", raw, msg.get("content"),
                 {"reasoning_content": msg.get("reasoning_content")})
    expect_equal("reasoning_content without a reasoning parser", None, msg.get("reasoning_content"))
    expect_equal("usage.reasoning_tokens without a reasoning parser", 0, (r.get("usage") or {}).get("reasoning_tokens"))


# ------------------------------------------------------------------------------------------ forced output


def _forced_params() -> Iterator[Any]:
    for case in FORCED:
        for mode in case["modes"]:
            yield pytest.param(case, mode, id=f"{case.id}-{mode}")


@pytest.mark.lfm_requires("reasoning")
@pytest.mark.parametrize(("case", "mode"), list(_forced_params()))
def test_forced_reasoning_case(lfm_http: LfmHttp, lfm_variant: Variant, case: Case, mode: str) -> None:
    """A regex-forced raw output (thinking off, so ``qwen3`` splits only on ``<think>``) gives exactly the
    case's ``reasoning_content`` and ``content``; streamed, reasoning deltas come first and concatenate to
    the same texts (§2; cases in cases/reasoning/forced.toml, recorded on 0.5.17)."""
    _switchable(lfm_variant)
    exp = case["expect"]
    body = _forced_body(case["raw"], **case.get("request", {}))
    ctx = {"raw": case["raw"], "request": case.get("request", {})}
    if mode == "non-stream":
        r = lfm_http.chat(QUESTION, **body)
        msg = message_of(r)
        expect_equal(f"reasoning_content of case {case.id}", exp["reasoning"] or None, msg.get("reasoning_content"),
                     {**ctx, "content": msg.get("content")})
        expect_equal(f"content of case {case.id}", exp["content"], msg.get("content"), ctx)
        expect_equal(f"finish_reason of case {case.id}", exp["finish_reason"], r["choices"][0].get("finish_reason"))
        return
    s = _stream(lfm_http, QUESTION, **body)
    _expect_reasoning_first(f"streamed order of case {case.id}", s)
    if "reasoning_deltas" in exp:
        pieces = [d["reasoning_content"] for d in s.deltas() if d.get("reasoning_content")]
        expect_equal(f"number of reasoning deltas of case {case.id}", exp["reasoning_deltas"], len(pieces),
                     {"reasoning deltas": pieces[:5]})
    expect_equal(f"streamed reasoning of case {case.id}", exp["reasoning"], s.reasoning, ctx)
    expect_equal(f"streamed content of case {case.id}", exp["content"], s.content, ctx)
    expect_equal(f"streamed finish_reason of case {case.id}", exp["finish_reason"], s.finish_reason)


def _calls(tool_calls: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    out = []
    for tc in tool_calls:
        fn = tc.get("function") or tc
        try:
            args = json.loads(fn.get("arguments") or "")
        except ValueError:
            args = fn.get("arguments")
        out.append((str(fn.get("name")), args))
    return out


@pytest.mark.lfm_requires("reasoning", "tools")
@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_tool_call_after_reasoning_forced(lfm_http: LfmHttp, lfm_variant: Variant, stream: bool) -> None:
    """A forced ``<think>need weather</think>`` + LFM2 tool-call block: the reasoning is split first, the
    call after ``</think>`` is parsed into ``tool_calls`` (finish_reason "tool_calls"), and its markup is
    in neither content nor reasoning_content (§2, §5: the tool parser sees only the post-</think> text;
    recorded on 0.5.17)."""
    _switchable(lfm_variant)
    raw = "<think>need weather</think>" + render_tool_calls([("get_weather", {"location": "Paris"})])
    body = _forced_body(raw, tools=[WEATHER_TOOL], tool_choice="auto", max_tokens=120)
    if stream:
        s = _stream(lfm_http, WEATHER, **body)
        _expect_reasoning_first("streamed order of reasoning and the tool call", s)
        reasoning: str | None
        content: str | None
        finish: str | None
        reasoning, content, calls, finish = s.reasoning, s.content, s.tool_calls(), s.finish_reason
    else:
        r = lfm_http.chat(WEATHER, **body)
        msg = message_of(r)
        reasoning, content = msg.get("reasoning_content"), msg.get("content")
        calls, finish = msg.get("tool_calls") or [], r["choices"][0].get("finish_reason")
    ctx = {"raw": raw, "content": content, "reasoning_content": reasoning}
    expect_equal("reasoning before a tool call", "need weather", reasoning, ctx)
    expect_equal("tool calls after </think>", [("get_weather", {"location": "Paris"})], _calls(calls), ctx)
    expect_equal("content beside a tool call", "", content or "", ctx)
    expect_equal("finish_reason with a tool call", "tool_calls", finish)


@pytest.mark.lfm_requires("reasoning", "tools")
def test_tool_call_after_reasoning_natural(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """Unforced, greedy: asked for the weather with a weather tool, a reasoning model thinks, then calls
    the tool; the call is in ``tool_calls`` and no tool-call markup or think tag is in content or
    reasoning_content (§2, §5). Needs meaningful model output: real weights or the reference server
    (a random-weight model never closes its think block)."""
    if not lfm_target.coherent_output:
        pytest.skip(f"needs real weights; {lfm_target.id} is a random-weight checkpoint")
    r = lfm_http.chat(WEATHER, temperature=0, max_tokens=1024, tools=[WEATHER_TOOL], tool_choice="auto")
    msg = message_of(r)
    reasoning, content = msg.get("reasoning_content") or "", msg.get("content") or ""
    ctx = {"content": content, "reasoning_content": reasoning[-300:]}
    expect_true("reasoning before a tool call", bool(reasoning), "non-empty reasoning_content", ctx)
    names = [n for n, _ in _calls(msg.get("tool_calls") or [])]
    expect_true("tool calls after thinking", bool(names) and set(names) <= {"get_weather"},
                "one or more get_weather calls", {**ctx, "tool_calls": msg.get("tool_calls")})
    leaked = {field: [m for m in (*MARKUP, *TAGS) if m in text]
              for field, text in (("content", content), ("reasoning_content", reasoning))}
    expect_true("tool-call markup and think tags outside tool_calls", not any(leaked.values()),
                "no <|tool_call_start|>, <|tool_call_end|>, call text or think tags in either field",
                {**ctx, "found": leaked})
