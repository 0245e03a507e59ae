"""Concurrency invariance: a greedy answer does not depend on what else the server is serving.

LFM2 keeps a convolution state per running request; a slot reused with a stale or wrong state gives
silently wrong answers only under concurrency. N different prompts (mixed lengths; an image on every other
prompt on VL variants) are sent together (released at once by a barrier), streamed, not streamed and mixed,
at several
concurrency levels, and each answer is compared with the same prompt sent alone, token for token (text and
completion_tokens). The server is compared with itself, so this holds on random-weight checkpoints.

k of n: a server that reports ``enable_deterministic_inference`` in ``/server_info`` promises batch-invariant
numerics, so n of n answers must match. Without it SGLang's batched kernels may legitimately change a greedy
token when the batch changes; then at least ceil(n/2) of n must match (a state leak corrupts every request
that overlaps another, so it still shows). The rule used is recorded (``lfm_statistic``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pytest_lfm.assertions import expect_true
from pytest_lfm.client import LfmHttp, generated_text
from pytest_lfm.imageserver import images_dir
from pytest_lfm.server.base import Target

LEVELS = (2, 4, 8)
MODES = ("plain", "stream", "mixed")  # mixed: odd prompts streamed, even ones not, in one batch
MAX_TOKENS = 48
_LONG = ("A lighthouse stands on a rocky point at the mouth of a wide bay, and the keeper has kept its "
         "lamp burning through storms, fog and calm summer nights for many years. ")
PROMPTS = (
    "Hi.",
    "Describe a quiet lake at dawn.",
    _LONG * 3 + "What does the keeper do each evening?",
    "List three uses of copper.",
    "Why do leaves change colour in autumn? Explain it to a child.",
    _LONG * 6 + "Summarise the story in one sentence.",
    "Tell me about oak trees.",
    "Write a haiku about trains.",
)
IMAGES = ("red.png", "blue.png", "green.png", "grayscale.png")
_ALONE: dict[tuple[str, str, int], tuple[str, int]] = {}


def _image_url(name: str) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode((images_dir() / name).read_bytes()).decode()


def _request(target: Target, i: int) -> tuple[str, dict[str, Any]]:
    """Path and body of prompt ``i`` (chat where the variant chats, with an image on every other prompt on
    vision variants; completions otherwise)."""
    prompt = PROMPTS[i]
    if not target.variant.supports("chat"):
        return "/v1/completions", {"model": target.served_model, "prompt": prompt, "temperature": 0,
                                   "max_tokens": MAX_TOKENS}
    content: Any = prompt
    if target.variant.supports("vision") and i % 2 == 1:
        content = [{"type": "image_url", "image_url": {"url": _image_url(IMAGES[i // 2 % len(IMAGES)])}},
                   {"type": "text", "text": prompt}]
    return "/v1/chat/completions", {"model": target.served_model, "messages": [{"role": "user", "content": content}],
                                    "temperature": 0, "max_tokens": MAX_TOKENS}


def _answer(http: LfmHttp, target: Target, i: int, mode: str) -> tuple[str, int]:
    """(visible text, completion_tokens) of prompt ``i``."""
    path, body = _request(target, i)
    if mode == "stream":
        s = http.stream(path, {**body, "stream_options": {"include_usage": True}})
        if s.status != 200 or s.errors:
            return f"<HTTP {s.status} {s.errors or s.raw[:200]}>", -1
        text = s.text if path.endswith("/completions") and "messages" not in body else s.reasoning + s.content
        return text, int((s.usage or {}).get("completion_tokens") or -1)
    r = http.post(path, body)
    if r.status_code != 200:
        return f"<HTTP {r.status_code} {r.text[:200]}>", -1
    data = r.json()
    return generated_text(data), int((data.get("usage") or {}).get("completion_tokens") or -1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("level", LEVELS, ids=lambda n: f"n={n}")
def test_concurrent_answers_equal_alone(lfm_http: LfmHttp, lfm_target: Target, level: int, mode: str,
                                        record_property: Callable[[str, object], None]) -> None:
    """``level`` different greedy prompts sent together (mixed lengths; images on VL) get the answers the same
    prompts get alone, token for token (text and completion_tokens): n of n with
    ``enable_deterministic_inference``, else at least ceil(n/2) of n (the stated k-of-n rule) (§8: the conv
    cache per request, ``--enable-deterministic-inference``; §12)."""
    modes = [("stream" if i % 2 else "plain") if mode == "mixed" else mode for i in range(level)]
    alone = []
    for i in range(level):
        key = (lfm_target.base_url, modes[i], i)
        if key not in _ALONE:
            _ALONE[key] = _answer(lfm_http, lfm_target, i, modes[i])
        alone.append(_ALONE[key])
    barrier = threading.Barrier(level)

    def together(i: int) -> tuple[str, int]:
        barrier.wait(timeout=60)
        return _answer(lfm_http, lfm_target, i, modes[i])

    with ThreadPoolExecutor(max_workers=level) as pool:
        concurrent = list(pool.map(together, range(level)))
    same = [a == c for a, c in zip(alone, concurrent, strict=True)]
    deterministic = bool(lfm_target.server_args.get("enable_deterministic_inference"))
    need = level if deterministic else -(-level // 2)
    rule = (f"{need} of {level} (server reports enable_deterministic_inference)" if deterministic else
            f"{need} of {level} (no enable_deterministic_inference in /server_info: batch-dependent numerics "
            f"may change a greedy token)")
    record_property("lfm_statistic", f"{sum(same)}/{level} concurrent answers equal alone ({mode}); needed {rule}")
    differing = {f"prompt {i}": {"alone": alone[i], "together": concurrent[i]} for i in range(level) if not same[i]}
    expect_true(f"greedy answers sent {level} together equal the same prompts sent alone", sum(same) >= need,
                f">= {rule}", f"{sum(same)} of {level} equal", {"mode": mode, "differing": differing})
