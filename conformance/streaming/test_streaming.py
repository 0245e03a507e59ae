"""Streaming: a streamed answer is the non-streamed answer, surface by surface, at any chunk size.

A user who switches ``stream`` on must get the same answer: the same content (before, between and after
tool calls), the same ``reasoning_content``, the same tool calls (names, JSON-equal arguments, ``call_`` ids,
one distinct index per call, in order), the same ``finish_reason``/``matched_stop`` and the same usage. When
tool calls come back, content is compared without surrounding whitespace: SGLang's non-streamed tool parser
strips the text around a block while the stream sends it as generated (a ``"\n\n"`` after ``</think>``). SGLang
sends ``--stream-interval`` tokens per chunk; the parsers must not depend on where chunks split (a tag at the
end of one chunk, text after a closing tag in the same chunk). The interval the server reports in
``/server_info`` is recorded on every check (report property ``stream_interval``); the project's tests run
these checks against the reference server at 1 token per chunk and at several (§5).

Stop strings while streaming (chat and completions): the streamed text equals the non-streamed text, no
prefix of the stop string leaks into the stream (text a server held back as a possible match released at
the end), and ``matched_stop`` names the stop string in both (§3.1 stop, §5) — once with a stop string from
the server's own greedy answer (needs coherent text) and once on an answer forced with ``regex``.

Every check compares the server with itself (greedy, the same request twice), so it holds on a random-weight
fixture checkpoint: cases that need content around tool calls force it with a ``regex`` constraint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from pytest_lfm.assertions import expect_true, fail
from pytest_lfm.cases import Case, load_cases
from pytest_lfm.client import LfmHttp, StreamResult, generated_text
from pytest_lfm.paths import fixtures_dir
from pytest_lfm.server.base import Target

PARITY = load_cases("streaming")  # cases/parity.toml
MAX_TOKENS = 160
CALL_ID = re.compile(r"^call_[0-9a-zA-Z_-]+$")
STOP_PROSE = "Write three sentences about a lighthouse keeper."
STOP_PROMPT = "The old lighthouse keeper climbed the stairs every evening and"
FORCED_STOP_TEXT = "The keeper climbs the stairs and lights the lamp."
# words of the chat format's markup (<think>, <|tool_call_start|>, <|im_end|>): a stop string inside one would
# match the raw output where the visible text does not show it
MARKUP = "<think></think><|tool_call_start|><|tool_call_end|><|im_start|><|im_end|>"


def tool(name: str) -> dict[str, Any]:
    """An OpenAI tool object from ``fixtures/tools/<name>.json``."""
    return json.loads((fixtures_dir() / "tools" / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def stream_interval(target: Target, record_property: Callable[[str, object], None]) -> Any:
    """The server's ``--stream-interval`` (``/server_info``), recorded as the report property
    ``stream_interval`` (None when the server does not report it)."""
    value = target.server_args.get("stream_interval")
    record_property("stream_interval", value if value is not None else "not reported")
    return value


def json_equal(a: str, b: str) -> bool:
    """Whether two JSON texts decode to equal values."""
    try:
        return bool(json.loads(a) == json.loads(b))
    except (TypeError, ValueError):
        return False


def _calls(raw: Any) -> list[dict[str, Any]]:
    return [{"id": c.get("id"), "index": c.get("index"), "name": (c.get("function") or {}).get("name"),
             "arguments": (c.get("function") or {}).get("arguments") or ""} for c in raw or []]


def _streamed_calls(s: StreamResult) -> list[dict[str, Any]]:
    """Streamed calls in order of first appearance, each with its index (not merged by index, so that
    two calls sharing an index stay two and show the shared index)."""
    calls: list[dict[str, Any]] = []
    for d in s.deltas():
        for tc in d.get("tool_calls") or []:
            fn = tc.get("function") or {}
            if tc.get("id") or fn.get("name") or not calls:
                calls.append({"id": tc.get("id"), "index": tc.get("index"), "name": fn.get("name") or "",
                              "arguments": fn.get("arguments") or ""})
            else:
                same = [c for c in calls if c["index"] == tc.get("index")] or calls
                same[-1]["arguments"] += fn.get("arguments") or ""
    return calls


def surface_differences(full: Mapping[str, Any], s: StreamResult,
                        compare_matched_stop: bool = False) -> dict[str, dict[str, Any]]:
    """Surface → {non-streamed, streamed} for every surface where the two answers differ. ``matched_stop`` is
    compared when no call turned finish_reason into tool_calls, or when ``compare_matched_stop`` asks (one
    case owns that surface, so one upstream defect fails one case)."""
    choice = full["choices"][0]
    msg = choice.get("message") or {}
    out: dict[str, dict[str, Any]] = {}

    def differ(name: str, expected: Any, actual: Any) -> None:
        out[name] = {"non-streamed": expected, "streamed": actual}

    want, got = _calls(msg.get("tool_calls")), _streamed_calls(s)
    content, streamed = msg.get("content") or "", s.content
    if want or got:  # SGLang's non-streamed detector strips the text around a block (§1): whitespace aside
        content, streamed = content.strip(), streamed.strip()
    if content != streamed:
        differ("content", content, streamed)
    if (msg.get("reasoning_content") or "") != s.reasoning:
        differ("reasoning_content", msg.get("reasoning_content") or "", s.reasoning)
    if [c["name"] for c in want] != [c["name"] for c in got]:
        differ("tool_calls names", [c["name"] for c in want], [c["name"] for c in got])
    elif not all(json_equal(a["arguments"], b["arguments"]) for a, b in zip(want, got, strict=True)):
        differ("tool_calls arguments", [c["arguments"] for c in want], [c["arguments"] for c in got])
    if [c["index"] for c in got] != list(range(len(got))):
        differ("tool_calls index (one per call, in order)", list(range(len(got))), [c["index"] for c in got])
    bad_ids = [c["id"] for c in want + got if not isinstance(c["id"], str) or not CALL_ID.match(c["id"])]
    if bad_ids:
        differ("tool_calls id format (call_...)", "call_<id> on every call", bad_ids)
    if choice.get("finish_reason") != s.finish_reason:
        differ("finish_reason", choice.get("finish_reason"), s.finish_reason)
    tool_finish = choice.get("finish_reason") == "tool_calls"
    if (compare_matched_stop or not tool_finish) and choice.get("matched_stop") != s.matched_stop:
        differ("matched_stop", choice.get("matched_stop"), s.matched_stop)
    keys = ["prompt_tokens", "completion_tokens", "total_tokens"]
    if "reasoning_tokens" in (full.get("usage") or {}) and "reasoning_tokens" in (s.usage or {}):
        keys.append("reasoning_tokens")  # compared where both report it (its presence is a shape check)
    u_full = {k: (full.get("usage") or {}).get(k) for k in keys}
    u_stream = {k: (s.usage or {}).get(k) for k in keys}
    if u_full != u_stream:
        differ("usage", u_full, u_stream)
    return out


@pytest.mark.lfm_requires("chat")
@pytest.mark.parametrize("case", PARITY, ids=str)
def test_stream_matches_non_stream(lfm_http: LfmHttp, lfm_target: Target, case: Case,
                                   record_property: Callable[[str, object], None]) -> None:
    """Streamed and non-streamed greedy answers to one request agree on every parsed surface: content,
    reasoning_content, tool_calls (names, arguments, ``call_`` ids, indexes 0..n-1), finish_reason,
    matched_stop and usage; at the server's ``--stream-interval``, recorded as ``stream_interval`` (§1, §2, §5)."""
    missing = [c for c in case.get("requires", []) if not lfm_target.variant.supports(c)]
    if missing:
        pytest.skip(f"case {case.id} needs {', '.join(missing)}; variant {lfm_target.variant.id} lacks it")
    interval = stream_interval(lfm_target, record_property)
    fields: dict[str, Any] = {"temperature": 0, "max_tokens": MAX_TOKENS}
    if case.get("tools"):
        fields["tools"] = [tool(n) for n in case["tools"]]
    forced = case.get("forced")
    if forced and lfm_target.variant.reasoning_parser:  # a forced answer after a short think block, so the
        forced = "<think>r</think>" + forced           # tool parser sees it (else it all lands in reasoning)
    if forced:
        fields["regex"] = re.escape(forced)
    messages = [{"role": "user", "content": case["prompt"]}]
    full = lfm_http.chat(messages, **fields)
    s = lfm_http.chat_stream(messages, stream_options={"include_usage": True}, **fields)
    expect_true("the streamed request answers 200 with chunks and no error event", s.status == 200 and not s.errors,
                "HTTP 200, no error events", {"status": s.status, "errors": s.errors, "raw": s.raw[:300]})
    if forced and "<|tool_call_start|>" in forced:  # the case is about calls: it must really make one
        expect_true("the forced call is parsed into tool_calls (non-streamed)",
                    bool((full["choices"][0].get("message") or {}).get("tool_calls")), "at least one tool call",
                    {"message": full["choices"][0].get("message"), "forced": forced})
    diffs = surface_differences(full, s, compare_matched_stop=bool(case.get("compare_matched_stop")))
    if diffs:
        fail(f"streamed and non-streamed answers differ on {', '.join(diffs)} (stream_interval={interval})",
             {k: v["non-streamed"] for k, v in diffs.items()}, {k: v["streamed"] for k, v in diffs.items()},
             {"case": case.id, "request": fields, "stream_interval": interval})


# ------------------------------------------------------------------------------------------ stop strings


def _stop_string(text: str) -> str | None:
    """A stop string taken from the middle of the server's own greedy text: the first 4-5 letters of the
    first run of 4+ ASCII letters starting at or after the text's 6th character whose first occurrence is
    there (so the stop matches exactly at that place) and that is no part of the chat markup. None when the
    text has no such run."""
    for m in re.finditer(r"[A-Za-z]{4,}", text):
        if m.start() < 5:
            continue
        word = m.group()[:5]
        if text.find(word) == m.start() and word.lower() not in MARKUP:
            return word
    return None


def _stop_body(lfm_http: LfmHttp, target: Target, endpoint: str) -> tuple[str, dict[str, Any]]:
    """The path and greedy request of the stop-string checks (skips chat on completions-only variants)."""
    if endpoint == "chat" and not target.variant.supports("chat"):
        pytest.skip(f"needs chat; variant {target.variant.id} is completions-only")
    if endpoint == "chat":
        return "/v1/chat/completions", {**lfm_http.chat_body([{"role": "user", "content": STOP_PROSE}]),
                                        "temperature": 0, "max_tokens": 48}
    return "/v1/completions", {"model": target.served_model, "prompt": STOP_PROMPT, "temperature": 0,
                               "max_tokens": 48}


def _expect_stop_parity(lfm_http: LfmHttp, path: str, body: dict[str, Any], endpoint: str, stop: str,
                        context: dict[str, Any]) -> None:
    """The request with ``stop`` streamed and not: no prefix of the stop string leaks into the stream, the
    streamed text equals the non-streamed text, which ends before the stop string, and both finish with
    ``stop`` and ``matched_stop`` the stop string."""
    __tracebackhide__ = True
    body = {**body, "stop": [stop]}
    full = lfm_http.post_json(path, body)
    s = lfm_http.stream(path, body)
    plain = generated_text(full)
    streamed = s.text if endpoint == "completions" else s.reasoning + s.content
    context = {"endpoint": endpoint, "stop": stop, **context}
    leaked = [stop[:k] for k in range(len(stop), 0, -1) if streamed.endswith(stop[:k]) and not plain.endswith(stop[:k])]
    expect_true("no prefix of the stop string leaks into the stream", not leaked,
                f"streamed text without a trailing prefix of {stop!r}", {"streamed": streamed, "leaked": leaked[:1]},
                context)
    expect_true("the streamed text equals the non-streamed text with a stop string", streamed == plain,
                plain, streamed, context)
    expect_true("the stop string ends the answer before it", stop not in plain,
                f"text without {stop!r}", plain, context)
    choice = full["choices"][0]
    expect_true("matched_stop names the stop string, streamed and not",
                choice.get("matched_stop") == stop and s.matched_stop == stop,
                {"non-streamed": stop, "streamed": stop},
                {"non-streamed": choice.get("matched_stop"), "streamed": s.matched_stop}, context)
    expect_true("finish_reason is stop, streamed and not", choice.get("finish_reason") == "stop" == s.finish_reason,
                "stop", {"non-streamed": choice.get("finish_reason"), "streamed": s.finish_reason}, context)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_stop_string_stream_matches_non_stream(lfm_http: LfmHttp, lfm_target: Target, endpoint: str,
                                               record_property: Callable[[str, object], None]) -> None:
    """A stop string taken from the server's own greedy answer ends the answer there, streamed and not: the
    streamed text equals the non-streamed text, no prefix of the stop string leaks into the stream, and
    finish_reason is ``stop`` with ``matched_stop`` the stop string in both (§3.1 stop, §5). Skips when the
    answer has no run of 4+ letters (random weights); the forced variant below runs there."""
    interval = stream_interval(lfm_target, record_property)
    path, body = _stop_body(lfm_http, lfm_target, endpoint)
    free = generated_text(lfm_http.post_json(path, body))
    stop = _stop_string(free)
    if stop is None:
        pytest.skip(f"the server's greedy answer has no run of 4+ letters to use as a stop string: {free[:120]!r} "
                    "(test_forced_stop_string_stream_matches_non_stream forces one)")
    _expect_stop_parity(lfm_http, path, body, endpoint, stop,
                        {"stream_interval": interval, "without stop": free[:200]})


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_forced_stop_string_stream_matches_non_stream(lfm_http: LfmHttp, lfm_target: Target, endpoint: str,
                                                      record_property: Callable[[str, object], None]) -> None:
    """As the check above on an answer forced with a ``regex`` constraint (SGLang's extension), so that it
    runs on any checkpoint, random weights included: the forced sentence is cut by a stop string from its
    middle, streamed and not (§3.1 stop, regex; §5). Chat on a variant with a reasoning parser skips: there
    SGLang applies a ``regex`` only after the think block (its reasoner grammar backend), which a random-weight
    checkpoint may never close; completions covers it."""
    if endpoint == "chat" and lfm_target.variant.reasoning_parser:
        pytest.skip(f"{lfm_target.variant.id} has a reasoning parser: a regex constrains the answer only after "
                    "the think block, which the model must close itself; the completions variant forces the text")
    interval = stream_interval(lfm_target, record_property)
    path, body = _stop_body(lfm_http, lfm_target, endpoint)
    stop = _stop_string(FORCED_STOP_TEXT)
    assert stop is not None  # the constant has one
    _expect_stop_parity(lfm_http, path, {**body, "regex": re.escape(FORCED_STOP_TEXT)}, endpoint, stop,
                        {"stream_interval": interval, "forced": FORCED_STOP_TEXT})
