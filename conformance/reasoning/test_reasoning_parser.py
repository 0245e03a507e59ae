"""Reasoning parsers, model-free: ``POST /separate_reasoning`` with fixed and generated texts.

The endpoint runs SGLang's own ``qwen3`` / ``qwen3-thinking`` detector on a given string (§7), so these
checks are exact on any server, random weights included. The corpus lives in
``conformance/reasoning/cases/separate.toml``; every case states the split for both parser names, and
the one documented difference between them (a missing opening tag) has its own check (§2).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_lfm.assertions import expect_equal
from pytest_lfm.cases import Case, load_cases
from pytest_lfm.client import LfmHttp
from pytest_lfm.hypo import check_settings
from pytest_lfm.lfm2 import REASONING_PARSERS, THINK_END, THINK_START
from pytest_lfm.server.base import Target

pytestmark = pytest.mark.lfm_requires("reasoning")

CORPUS = [c for c in load_cases("reasoning") if "text" in c.data]


# Fragments that make near-miss tags likely: partial tags, other angle brackets, whitespace, non-ASCII.
_FRAGMENTS = st.sampled_from(["<", ">", "/", "think", "<think", "</think", "think>", "\n", "\n\n", " ", "\t",
                              "<|im_end|>", "<|tool_call_start|>", "é", "🤔", "東京", "ok", "42"])
_CHARS = st.characters(blacklist_categories=("Cs", "Cc"))
_PIECE = st.lists(st.one_of(_FRAGMENTS, _CHARS), max_size=12).map("".join).filter(
    lambda s: THINK_START not in s and THINK_END not in s)


def separate(http: LfmHttp, text: str, parser: str) -> dict[str, Any]:
    """``POST /separate_reasoning`` → ``{reasoning_text, text}`` (must answer 200)."""
    __tracebackhide__ = True
    return http.post_json("/separate_reasoning", {"text": text, "reasoning_parser": parser})


def _split(body: dict[str, Any]) -> dict[str, Any]:
    return {"reasoning_text": body.get("reasoning_text"), "text": body.get("text")}


@pytest.mark.parametrize("parser", REASONING_PARSERS)
@pytest.mark.parametrize("case", CORPUS, ids=str)
def test_separate_reasoning_corpus(lfm_http: LfmHttp, case: Case, parser: str) -> None:
    """``/separate_reasoning`` splits each corpus text exactly as SGLang's Qwen3 detector does for this
    parser name: leading ``<think>`` stripped, reasoning before the first ``</think>``, the rest verbatim,
    everything reasoning without ``</think>``; ``qwen3-thinking`` forced, ``qwen3`` not (§2, §7)."""
    got = separate(lfm_http, case["text"], parser)
    expect_equal(f"/separate_reasoning {parser} split of case {case.id}", case[parser], _split(got),
                 {"text": case["text"], "case": case.description})


def test_missing_open_tag_differs_between_parsers(lfm_http: LfmHttp) -> None:
    """The one difference between the parser names: without ``<think>``, ``qwen3`` (not forced at this
    endpoint) returns everything as text while ``qwen3-thinking`` (always forced) splits at ``</think>``
    (§2, §7; recorded on 0.5.17)."""
    text = "abc</think>answer"
    plain = _split(separate(lfm_http, text, "qwen3"))
    forced = _split(separate(lfm_http, text, "qwen3-thinking"))
    expect_equal("qwen3 on a text without <think>", {"reasoning_text": "", "text": text}, plain)
    expect_equal("qwen3-thinking on a text without <think>", {"reasoning_text": "abc", "text": "answer"}, forced)


def _profile(target: Target) -> settings:
    return check_settings(target, reference=25, remote=100)


@pytest.mark.parametrize("parser", REASONING_PARSERS)
def test_tagged_roundtrip_property(lfm_http: LfmHttp, lfm_target: Target, parser: str,
                                   record_property: Any) -> None:
    """Property: for any reasoning R and answer A free of the two tags, ``<think>R</think>A`` splits back
    into exactly (R, A) with both parser names, whitespace and non-ASCII included (§2). Bounded: 25
    derandomized examples on the reference server, 100 on a real one."""
    record_property("lfm_statistic", f"hypothesis {_profile(lfm_target).max_examples} examples, all must hold")

    @_profile(lfm_target)
    @given(reasoning=_PIECE, answer=_PIECE)
    def prop(reasoning: str, answer: str) -> None:
        text = f"{THINK_START}{reasoning}{THINK_END}{answer}"
        got = _split(separate(lfm_http, text, parser))
        expect_equal(f"/separate_reasoning {parser} of <think>R</think>A", {"reasoning_text": reasoning,
                                                                              "text": answer}, got, {"text": text})

    prop()


def test_untagged_start_roundtrip_property(lfm_http: LfmHttp, lfm_target: Target, record_property: Any) -> None:
    """Property: ``R</think>A`` (no opening tag, as a model whose prompt already opened the block writes
    it) splits into (R, A) with the forced ``qwen3-thinking`` and stays all text with ``qwen3`` (§2).
    Bounded as the tagged property."""
    record_property("lfm_statistic", f"hypothesis {_profile(lfm_target).max_examples} examples, all must hold")

    @_profile(lfm_target)
    @given(reasoning=_PIECE, answer=_PIECE)
    def prop(reasoning: str, answer: str) -> None:
        text = f"{reasoning}{THINK_END}{answer}"
        forced = _split(separate(lfm_http, text, "qwen3-thinking"))
        expect_equal("/separate_reasoning qwen3-thinking of R</think>A",
                     {"reasoning_text": reasoning, "text": answer}, forced, {"text": text})
        plain = _split(separate(lfm_http, text, "qwen3"))
        expect_equal("/separate_reasoning qwen3 of R</think>A", {"reasoning_text": "", "text": text}, plain,
                     {"text": text})

    prop()
