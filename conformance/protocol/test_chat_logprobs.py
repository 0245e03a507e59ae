"""Chat logprobs (``logprobs``/``top_logprobs`` on ``/v1/chat/completions``), non-streaming and streaming
(§3.1 logprobs, §5 streaming).

Everything is compared with the server's own outputs, greedy (temperature 0, ``repetition_penalty`` 1 so
the chosen token is the most likely one), so the checks hold on random-weight fixture checkpoints too.
Reasoning is not split (``separate_reasoning`` false) and special tokens are kept
(``skip_special_tokens`` false), so the whole generation is ``content``.

Token texts: a token that is part of a multi-byte UTF-8 character decodes alone to U+FFFD, so where an
entry's token holds U+FFFD the text comparison accepts any single character (or none) in its place.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pytest_lfm.assertions import expect_equal, expect_true, fail, not_run
from pytest_lfm.client import LfmHttp, message_of
from pytest_lfm.server.base import Target

pytestmark = pytest.mark.lfm_requires("chat")

QUESTION = "Say something short about rivers."
MESSAGES = [{"role": "user", "content": QUESTION}]
MAX_TOKENS = 12
GREEDY = {"temperature": 0, "repetition_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
          "max_tokens": MAX_TOKENS, "separate_reasoning": False, "skip_special_tokens": False,
          "chat_template_kwargs": {"enable_thinking": False}}
TOL = 0.02  # logprob agreement between two requests for the same tokens (GPU kernels differ in the last bits)
REPLACEMENT = "\ufffd"


def text_pattern(tokens: Sequence[str]) -> re.Pattern[str]:
    """A pattern the generated text matches when it is the tokens' concatenation (U+FFFD: one char or none)."""
    parts: list[str] = []
    for t in tokens:
        parts.extend(".?" if ch == REPLACEMENT else re.escape(ch) for ch in t)
    return re.compile("".join(parts), re.DOTALL)


def entries_of(choice: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``choice.logprobs.content`` (an empty list when absent)."""
    lp = choice.get("logprobs") or {}
    return list(lp.get("content") or []) if isinstance(lp, Mapping) else []


def check_entries_match_text(what: str, entries: Sequence[Mapping[str, Any]], text: str, finish: Any,
                             completion_tokens: Any) -> None:
    """One entry per generated token, and the tokens concatenate to the text (a trailing stop token that the
    text does not show is allowed when finish_reason is stop)."""
    __tracebackhide__ = True
    tokens = [str(e.get("token")) for e in entries]
    context = {"tokens": tokens, "text": text, "finish_reason": finish}
    expect_equal(f"{what}: logprobs entries (one per generated token) == usage.completion_tokens",
                 completion_tokens, len(entries), context)
    ok = bool(text_pattern(tokens).fullmatch(text))
    if not ok and finish == "stop" and tokens:
        ok = bool(text_pattern(tokens[:-1]).fullmatch(text))
    expect_true(f"{what}: the logprobs tokens concatenate to the generated text", ok,
                repr(text), repr("".join(tokens)), context)


def check_top_lists(what: str, entries: Sequence[Mapping[str, Any]], k: int) -> None:
    """Per position: ``k`` alternatives (fewer only where candidates collide on text), sorted by logprob
    (highest first), distinct, and the chosen token among them with its own logprob."""
    __tracebackhide__ = True
    for i, e in enumerate(entries):
        top = list(e.get("top_logprobs") or [])
        lps = [t.get("logprob") for t in top]
        context = {"position": i, "token": e.get("token"), "logprob": e.get("logprob"), "top_logprobs": top}
        expect_true(f"{what}: top_logprobs[{i}] holds {k} entries", 0 < len(top) <= k, f"1 to {k} entries",
                    len(top), context)
        expect_true(f"{what}: top_logprobs[{i}] sorted by logprob, highest first",
                    all(isinstance(x, (int, float)) for x in lps) and lps == sorted(lps, reverse=True),
                    "non-increasing logprobs", lps, context)
        texts = [t.get("token") for t in top]
        expect_equal(f"{what}: top_logprobs[{i}] tokens are distinct", len(texts), len(set(texts)), context)
        chosen = [t for t in top if t.get("token") == e.get("token")
                  and _close(t.get("logprob"), e.get("logprob"), 1e-4)]
        expect_true(f"{what}: the chosen token is among top_logprobs[{i}] with its logprob", bool(chosen),
                    f"{e.get('token')!r} at {e.get('logprob')}", top, context)


def _close(a: Any, b: Any, tol: float) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=tol)


def compare_entries(what: str, expected: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]],
                    context: Mapping[str, Any]) -> None:
    """Same tokens in the same order, logprobs within :data:`TOL`."""
    __tracebackhide__ = True
    expect_equal(f"{what}: tokens", [e.get("token") for e in expected], [e.get("token") for e in actual], context)
    for i, (a, b) in enumerate(zip(expected, actual, strict=True)):
        if not _close(a.get("logprob"), b.get("logprob"), TOL):
            fail(f"{what}: logprob of token {i} ({a.get('token')!r}) within {TOL}", a.get("logprob"),
                 b.get("logprob"), context)


@pytest.mark.parametrize("mode", ["non-stream", "stream"])
def test_chat_logprobs_match_generated_tokens(lfm_http: LfmHttp, mode: str) -> None:
    """``logprobs: true`` gives one entry per generated token (as many as ``usage.completion_tokens``), the
    entries' tokens concatenate to the generated text, and each entry's single ``top_logprobs`` alternative
    (``top_logprobs: 1``) is the chosen token with the same logprob (greedy). Streaming: the entries carried
    by the chunks, in order, are the non-streamed response's (same tokens, logprobs within 0.02) and
    concatenate to the streamed text (§3.1, §5)."""
    full = lfm_http.chat(MESSAGES, logprobs=True, top_logprobs=1, **GREEDY)
    choice = full["choices"][0]
    entries = entries_of(choice)
    text = str(message_of(full).get("content") or "")
    usage = full.get("usage") or {}
    if mode == "non-stream":
        check_entries_match_text("non-streamed", entries, text, choice.get("finish_reason"),
                                 usage.get("completion_tokens"))
        check_top_lists("non-streamed", entries, 1)
        return
    s = lfm_http.chat_stream(MESSAGES, logprobs=True, top_logprobs=1, stream_options={"include_usage": True},
                             **GREEDY)
    expect_equal("streaming HTTP status", 200, s.status, {"body": s.raw[:400]})
    streamed = [e for c in s.choice_chunks() for e in entries_of(c["choices"][0])]
    context = {"streamed tokens": [e.get("token") for e in streamed], "non-streamed tokens":
               [e.get("token") for e in entries], "streamed text": s.content}
    expect_equal("streamed logprobs entries (from every chunk) == non-streamed entries", len(entries),
                 len(streamed), context)
    compare_entries("streamed logprobs vs non-streamed", entries, streamed, context)
    check_entries_match_text("streamed", streamed, s.content, s.finish_reason,
                             (s.usage or {}).get("completion_tokens", usage.get("completion_tokens")))
    check_top_lists("streamed", streamed, 1)


@pytest.mark.parametrize("mode", ["non-stream", "stream"])
def test_chat_top_logprobs_sorted_distinct(lfm_http: LfmHttp, mode: str) -> None:
    """``top_logprobs: 20``: at every position at most 20 alternatives, sorted by logprob (highest first),
    with distinct tokens, and the chosen token among them with its own logprob (greedy: it is the most
    likely one). OpenAI allows fewer than requested; it does not allow a list out of order or an
    alternative carrying another candidate's logprob (§3.1).

    Upstream: SGLang keys each position's alternatives by decoded text, so candidates that decode to the
    same text (byte pieces of a multi-byte character all decode to U+FFFD) collapse into one entry that
    keeps the first one's place and the last one's logprob: the list comes back short and out of order
    (open issue https://github.com/sgl-project/sglang/issues/32290, unchanged through 0.5.23; recorded on
    0.5.17 with ``top_logprobs: 21``). It shows wherever two of the top 20 collide, which random-weight
    checkpoints do at nearly every position and real weights rarely do on plain English."""
    if mode == "non-stream":
        resp = lfm_http.chat(MESSAGES, logprobs=True, top_logprobs=20, **GREEDY)
        entries = entries_of(resp["choices"][0])
    else:
        s = lfm_http.chat_stream(MESSAGES, logprobs=True, top_logprobs=20, **GREEDY)
        expect_equal("streaming HTTP status", 200, s.status, {"body": s.raw[:400]})
        entries = [e for c in s.choice_chunks() for e in entries_of(c["choices"][0])]
    expect_true(f"{mode}: logprobs entries", bool(entries), "at least one entry", entries)
    check_top_lists(mode, entries, 20)


def _prompt_candidates() -> list[str]:
    """The LFM2.5 chat format of :data:`MESSAGES` as a raw prompt, without and with the BOS text (a server
    whose tokenizer adds BOS itself needs the first)."""
    turns = f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n"
    return [turns, "<|startoftext|>" + turns]


def test_chat_logprobs_match_completions(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """The chat answer's logprobs equal ``/v1/completions`` logprobs for the same greedy continuation: the
    conversation rendered in the LFM2.5 chat format and sent as a raw prompt (the rendering whose
    ``prompt_tokens`` equal the chat request's) continues with the same tokens, with logprobs within 0.02
    (§3.1, §3.2). Where neither rendering gives the chat request's prompt length, the variant's template
    is not the plain format this check renders: not run, with the counts."""
    chat = lfm_http.chat(MESSAGES, logprobs=True, top_logprobs=1, **GREEDY)
    entries = entries_of(chat["choices"][0])
    chat_prompt = (chat.get("usage") or {}).get("prompt_tokens")
    tried = {}
    for prompt in _prompt_candidates():
        body = {"model": lfm_target.served_model, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0,
                "repetition_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0, "logprobs": 1,
                "skip_special_tokens": False}
        comp = lfm_http.post_json("/v1/completions", body)
        tried[prompt[:16]] = (comp.get("usage") or {}).get("prompt_tokens")
        if tried[prompt[:16]] != chat_prompt:
            continue
        lp = comp["choices"][0].get("logprobs") or {}
        comp_entries = [{"token": t, "logprob": v} for t, v in
                        zip(lp.get("tokens") or [], lp.get("token_logprobs") or [], strict=False)]
        context = {"chat tokens": [e.get("token") for e in entries],
                   "completions tokens": [e["token"] for e in comp_entries], "prompt": prompt}
        expect_equal("number of logprobs entries: chat vs /v1/completions", len(comp_entries), len(entries),
                     context)
        compare_entries("chat logprobs vs /v1/completions logprobs", comp_entries, entries, context)
        return
    not_run("the variant's chat template to be the plain LFM2.5 format this check renders",
            f"chat prompt_tokens {chat_prompt}, raw renderings gave {tried}")
