"""``/v1/completions`` on every variant (the only endpoint for Base, §11.3), and chat on Base.

Every check cites ``docs/sglang-behaviour.md``; wire shapes follow the recorded SGLang 0.5.17 responses
(``comp_*`` probes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_lfm.assertions import expect_equal, expect_status, expect_true, fail
from pytest_lfm.client import LfmHttp
from pytest_lfm.inputs import SEED_PROMPT
from pytest_lfm.server.base import Target


def complete(http: LfmHttp, target: Target, **fields: Any) -> dict[str, Any]:
    """A non-streaming completion that must answer 200."""
    __tracebackhide__ = True
    return http.post_json("/v1/completions", {"model": target.served_model, "prompt": SEED_PROMPT, **fields})


@pytest.mark.lfm_requires("completions", "real_weights")
def test_capital_of_france(lfm_http: LfmHttp, lfm_target: Target,
                           record_property: Callable[[str, object], None]) -> None:
    """With real weights, the seed's prompt "The capital of France is" is continued with Paris: greedy,
    32 tokens, the text mentions "Paris" (1 of 1, greedy is deterministic) (§11.3; §3.2)."""
    text = complete(lfm_http, lfm_target, temperature=0, max_tokens=32)["choices"][0]["text"]
    record_property("lfm_statistic", "greedy, 1 of 1 completions must mention Paris")
    expect_true("the completion names the capital", "paris" in text.lower(), "a text mentioning Paris", text)


def test_echo_returns_prompt_plus_completion(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """``echo: true`` returns the prompt followed by the same greedy completion that ``echo: false``
    returns (§3.2; recorded comp_echo_logprobs)."""
    plain = complete(lfm_http, lfm_target, temperature=0, max_tokens=8)["choices"][0]["text"]
    echoed = complete(lfm_http, lfm_target, temperature=0, max_tokens=8, echo=True)["choices"][0]["text"]
    expect_equal("echo text == prompt + completion", SEED_PROMPT + plain, echoed)


def test_logprobs_shape_and_counts(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """``logprobs: 2`` gives ``text_offset``, ``token_logprobs``, ``tokens`` and ``top_logprobs``, one
    entry per completion token (``usage.completion_tokens``); logprobs are <= 0; each top entry has 1-2
    alternatives (tokens with equal text collapse); greedy picks the top alternative. With ``echo`` the
    lists also cover the prompt (``prompt_tokens`` more) and only the first position is null
    (§3.2; recorded comp_echo_logprobs)."""
    resp = complete(lfm_http, lfm_target, temperature=0, max_tokens=8, logprobs=2)
    lp = resp["choices"][0].get("logprobs") or {}
    n = resp["usage"]["completion_tokens"]
    for key in ("text_offset", "token_logprobs", "tokens", "top_logprobs"):
        expect_equal(f"len(logprobs.{key}) == completion_tokens", n, len(lp.get(key) or []),
                     {"logprobs": lp, "usage": resp["usage"]})
    for j, (value, top) in enumerate(zip(lp["token_logprobs"], lp["top_logprobs"], strict=True)):
        expect_true(f"token_logprobs[{j}] is a number <= 0", isinstance(value, (int, float)) and value <= 1e-6,
                    "a logprob <= 0", value)
        expect_true(f"top_logprobs[{j}] has 1-2 alternatives", isinstance(top, dict) and 1 <= len(top) <= 2,
                    "a dict of 1-2 token -> logprob", top)
        expect_true(f"greedy token {j} is the most likely alternative", value >= max(top.values()) - 1e-4,
                    f">= {max(top.values())}", value, {"top_logprobs": top})
    echo = complete(lfm_http, lfm_target, temperature=0, max_tokens=8, logprobs=1, echo=True)
    elp = echo["choices"][0].get("logprobs") or {}
    total = echo["usage"]["prompt_tokens"] + echo["usage"]["completion_tokens"]
    expect_equal("echo: len(tokens) == prompt_tokens + completion_tokens", total, len(elp.get("tokens") or []),
                 {"usage": echo["usage"]})
    values = elp.get("token_logprobs") or []
    expect_true("echo: only the first token_logprob is null",
                bool(values) and values[0] is None and all(isinstance(v, (int, float)) for v in values[1:]),
                "[null, numbers…]", values[:6])


def test_n_choices(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """``n: 2`` returns two choices with index 0 and 1; ``usage.completion_tokens`` is their sum and the
    prompt is counted once (§3.2; recorded comp_n2)."""
    resp = complete(lfm_http, lfm_target, temperature=0.9, max_tokens=8, n=2, ignore_eos=True)
    choices = resp.get("choices") or []
    expect_equal("choice indexes", [0, 1], [c.get("index") for c in choices], {"choices": choices})
    single = complete(lfm_http, lfm_target, temperature=0, max_tokens=8, ignore_eos=True)
    usage = resp["usage"]
    expect_equal("n=2: completion_tokens == 2 x 8 (ignore_eos)", 16, usage.get("completion_tokens"),
                 {"usage": usage})
    expect_equal("n=2: the prompt is counted once", single["usage"]["prompt_tokens"], usage.get("prompt_tokens"),
                 {"usage": usage})


def test_stop_honoured_with_matched_stop(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """A stop string that occurs in the greedy completion ends it there: the text is the part before the
    stop string, ``finish_reason`` is "stop" and ``matched_stop`` is the string (§3.3; §9
    test_matched_stop.py). The stop string is taken from the server's own greedy output (an ASCII
    character first seen after position 0), so the proof also works on random weights."""
    full = complete(lfm_http, lfm_target, temperature=0, max_tokens=16)["choices"][0]["text"]
    stop = next((ch for i, ch in enumerate(full) if i > 0 and 32 < ord(ch) < 127 and ch not in full[:i]), None)
    if stop is None:
        pytest.skip(f"the greedy completion {full!r} has no ASCII character after its first to stop at")
    choice = complete(lfm_http, lfm_target, temperature=0, max_tokens=16, stop=[stop])["choices"][0]
    context = {"stop": stop, "full greedy text": full}
    expect_equal("text before the stop string", full[: full.index(stop)], choice.get("text"), context)
    expect_equal("finish_reason", "stop", choice.get("finish_reason"), context)
    expect_equal("matched_stop is the stop string", stop, choice.get("matched_stop"), context)


def test_default_max_tokens_16(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """Without ``max_tokens`` a completion stops after 16 tokens (``CompletionRequest.max_tokens = 16``),
    ``finish_reason: "length"`` (§3.2; recorded comp_default_max_tokens)."""
    resp = complete(lfm_http, lfm_target, temperature=0, ignore_eos=True)
    expect_equal("completion_tokens without max_tokens", 16, resp["usage"].get("completion_tokens"),
                 {"usage": resp["usage"]})
    expect_equal("finish_reason", "length", resp["choices"][0].get("finish_reason"))


def test_usage_arithmetic(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """``usage.total_tokens == prompt_tokens + completion_tokens``, ``prompt_tokens > 0`` and
    ``completion_tokens <= max_tokens``, for a single and a list prompt (§3.3, §12)."""
    for prompt in (SEED_PROMPT, [SEED_PROMPT, "Hello"]):
        resp = complete(lfm_http, lfm_target, temperature=0, max_tokens=8, prompt=prompt)
        usage = resp.get("usage") or {}
        context = {"usage": usage, "prompt": prompt}
        expect_equal("total_tokens == prompt_tokens + completion_tokens",
                     usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0), usage.get("total_tokens"),
                     context)
        expect_true("prompt_tokens > 0", usage.get("prompt_tokens", 0) > 0, "> 0", usage.get("prompt_tokens"))
        n_prompts = len(prompt) if isinstance(prompt, list) else 1
        expect_equal("one choice per prompt", n_prompts, len(resp.get("choices") or []), context)
        expect_true("completion_tokens <= max_tokens per prompt",
                    0 < usage.get("completion_tokens", 0) <= 8 * n_prompts, f"1..{8 * n_prompts}",
                    usage.get("completion_tokens"), context)


@pytest.mark.lfm_requires("completions_only")
def test_chat_on_base_as_documented(lfm_http: LfmHttp, lfm_target: Target,
                                    record_property: Callable[[str, object], None]) -> None:
    """Chat against a checkpoint without post-training behaves as SGLang documents: LFM2.5 Base ships a
    ChatML-style template, so chat answers 200 with an (un-instructed) assistant message; a checkpoint
    without any template answers 400 from ``apply_chat_template`` ("chat_template is not set"). Never a
    5xx (§5 "No chat template"; §11.3)."""
    r = lfm_http.post("/v1/chat/completions", lfm_http.chat_body([{"role": "user", "content": "Hello"}],
                                                                  temperature=0, max_tokens=8))
    expect_status("chat on a Base checkpoint", (200, 400), r.status_code, r.text)
    body = r.json()
    if r.status_code == 400:
        expect_true("the 400 names the missing chat template", "chat_template" in str(body.get("message")),
                    "a message about chat_template", body)
        record_property("lfm_finding", "Base served without a chat template: chat answers 400")
        return
    msg = (body.get("choices") or [{}])[0].get("message") or {}
    if msg.get("role") != "assistant" or not isinstance(msg.get("content"), str):
        fail("chat on Base answered 200 without an assistant message", "role assistant, string content", msg)
    record_property("lfm_finding", "Base ships a ChatML template: chat answers 200 (un-instructed)")
