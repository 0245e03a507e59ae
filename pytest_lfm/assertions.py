"""Assertion helpers: every failure names what was expected and what came back, with context."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import pytest

NOT_RUN = "not run: "  # the skip-reason prefix the report counts as "not run" (a check that could not be judged)


def _show(value: Any, limit: int = 600) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def fail(what: str, expected: Any, actual: Any, context: Mapping[str, Any] | None = None) -> None:
    """Raise an AssertionError with ``Expected:`` / ``Actual:`` lines and context."""
    __tracebackhide__ = True
    lines = [what, f"  Expected: {_show(expected)}", f"  Actual:   {_show(actual)}"]
    for key, value in (context or {}).items():
        lines.append(f"  {key}: {_show(value, 400)}")
    raise AssertionError("\n".join(lines))


def expect_equal(what: str, expected: Any, actual: Any, context: Mapping[str, Any] | None = None) -> None:
    """Fail unless ``actual == expected``."""
    __tracebackhide__ = True
    if actual != expected:
        fail(what, expected, actual, context)


def expect_true(what: str, condition: bool, expected: Any, actual: Any,
                context: Mapping[str, Any] | None = None) -> None:
    """Fail unless ``condition``; ``expected`` describes the requirement, ``actual`` what was seen."""
    __tracebackhide__ = True
    if not condition:
        fail(what, expected, actual, context)


def expect_status(what: str, expected: int | tuple[int, ...], status: int, body: Any,
                  context: Mapping[str, Any] | None = None) -> None:
    """Fail unless the HTTP status is (one of) ``expected``; the body is shown."""
    __tracebackhide__ = True
    allowed = (expected,) if isinstance(expected, int) else expected
    if status not in allowed:
        fail(what, f"HTTP {' or '.join(map(str, allowed))}", f"HTTP {status}: {_show(body, 400)}", context)


def expect_restriction_is_greedy(restriction: str, greedy: str, free: Mapping[Any, str],
                                 restricted: Mapping[Any, str], record: Any, applied: str,
                                 context: Mapping[str, Any]) -> None:
    """The behavioural proof that a sampling filter (``top_k=1``, ``min_p=1.0``, a tiny ``top_p``) reaches the
    sampler: at temperature 1, every seed decodes greedily with the filter, while without it at least one
    seed leaves greedy (else the proof could not tell a filter from a server that ignores temperature).
    ``free`` and ``restricted`` map seed → text; ``applied`` says how the filter was sent."""
    __tracebackhide__ = True
    n = len(restricted)
    same = sum(t == greedy for t in restricted.values())
    left = sum(t != greedy for t in free.values())
    record("lfm_statistic", f"{restriction} @T=1: {same}/{n} seeds equal greedy; "
                            f"unrestricted @T=1: {left}/{len(free)} seeds differ from greedy")
    if left == 0:
        fail("temperature 1 without a filter never left greedy: the proof cannot tell a filter from a server "
             "that ignores temperature", f">= 1 of {len(free)} seeds differ from greedy", "0", {"greedy": greedy})
    if same != n:
        bad = {s: t for s, t in restricted.items() if t != greedy}
        seed, text = next(iter(bad.items()))
        fail(f"{restriction} at temperature 1 did not decode greedily (is {restriction.split('=')[0]} {applied}?)",
             f"{n}/{n} seeds equal greedy: {greedy!r}", f"{same}/{n}; e.g. seed {seed}: {text!r}", context)


def not_run(needs: str, detail: str) -> NoReturn:
    """Skip a check that can only pass where the server has ``needs`` (a capability it reports, a setup the
    check depends on): the reason starts with :data:`NOT_RUN`, so the report counts the check as not run
    rather than passed or merely skipped. ``detail`` says what the server reported."""
    pytest.skip(f"{NOT_RUN}needs {needs}; {detail}")



def repeated_fraction(text: str, n: int = 4) -> float:
    """The share of character n-grams that occur earlier in the text (0: no repeats, near 1: a loop)."""
    grams = [text[i:i + n] for i in range(max(0, len(text) - n + 1))]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def expect_penalty_changes_repetition(plain: Sequence[str], penal: Sequence[str], need: int, record: Any,
                                      context: Mapping[str, Any]) -> None:
    """The behavioural proof that ``repetition_penalty=2.0`` reaches the sampler: greedy continuations of
    repetitive prompts with it differ from those without it on at least ``need`` prompts, and repeat less.
    ``plain`` and ``penal`` are the continuations at 1.0 and 2.0, prompt by prompt; the figures are recorded."""
    __tracebackhide__ = True
    differ = sum(x != y for x, y in zip(plain, penal, strict=True))
    rep_plain = sum(repeated_fraction(t) for t in plain)
    rep_penal = sum(repeated_fraction(t) for t in penal)
    record("lfm_statistic", f"rp=2 differs from rp=1 on {differ}/{len(plain)} prompts; "
                            f"repeated 4-gram share {rep_plain:.2f} -> {rep_penal:.2f}")
    shown = {"rp=1.0": list(plain), "rp=2.0": list(penal), **context}
    expect_true("repetition_penalty=2.0 changes a repetitive greedy continuation", differ >= need,
                f">= {need}/{len(plain)} prompts differ", f"{differ}/{len(plain)}", shown)
    expect_true("repetition_penalty=2.0 lowers repetition", rep_penal < rep_plain,
                f"repeated 4-gram share below {rep_plain:.2f}", f"{rep_penal:.2f}", shown)
