"""Inputs the check families share: tool schemas (``fixtures/tools/*.json``), prompts, and the k-of-n rule
for checks whose answers vary under sampling.

One module, so that two families asking "the weather question" send the same request, and a tool schema is
edited in one file.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from pytest_lfm.assertions import fail
from pytest_lfm.paths import fixtures_dir

# ------------------------------------------------------------------------------------------ prompts

PROSE = "Write two sentences about a river valley in spring."
"""Free text with no single right answer (sampling and determinism checks)."""
SEED_PROMPT = "The capital of France is"
"""The cookbook's Base example (§11.3)."""
REPEAT_PROMPTS = ("ab ab ab ab ab ab ab ab ab ab ab ab", "the cat, the cat, the cat, the cat, the cat,")
"""Prompts whose continuation repeats (repetition-penalty checks)."""
WEATHER_Q = [{"role": "user", "content": "What is the weather like in Paris right now?"}]
"""A question a weather tool answers (tool-call checks)."""

# ------------------------------------------------------------------------------------------ tools


@cache
def _tool_text(name: str) -> str:
    return (fixtures_dir() / "tools" / f"{name}.json").read_text(encoding="utf-8")


def tool(name: str) -> dict[str, Any]:
    """An OpenAI tool object from ``fixtures/tools/<name>.json`` (a fresh copy: callers may change it)."""
    return copy.deepcopy(_tool_object(name))


@cache
def _tool_object(name: str) -> dict[str, Any]:
    data = json.loads(_tool_text(name))
    if not isinstance(data, dict):
        raise ValueError(f"fixtures/tools/{name}.json: expected a JSON object, got {type(data).__name__}")
    return data


def tools(*names: str) -> list[dict[str, Any]]:
    """Several tool objects, in the order named."""
    return [tool(n) for n in names]


# ------------------------------------------------------------------------------------------ statistics

K_OF_N = (2, 3)
"""Checks on sampled answers pass when at least k of n answers are right."""


def k_of_n(ask: Callable[[], str], ok: Callable[[str], bool], record: Callable[[str, object], None],
           what: str, expected: str, rule: tuple[int, int] = K_OF_N) -> None:
    """Ask n times with the recommended sampling; pass when at least k answers are right. The tally is
    recorded as the check's ``lfm_statistic`` (shown in the report)."""
    __tracebackhide__ = True
    k, n = rule
    answers = [ask() for _ in range(n)]
    hits = sum(1 for a in answers if ok(a))
    record("lfm_statistic", f"{what}: {hits}/{n} correct (need {k}/{n}) with the recommended sampling")
    if hits < k:
        fail(f"{what}: {hits} of {n} answers right", f"at least {k} of {n} answers with {expected}", answers)
