"""Constrained decoding, as far as the toy model needs it: one string a ``regex`` constraint accepts.

SGLang masks every token the grammar forbids, so a constrained model emits text the regex matches. The
toy model emits the *first* string of the regex's language (literals as written, the first branch of an
alternation, the first member of a class, the minimum repeat count), which makes ``re.escape(text)`` force
exactly ``text`` — the forced-output technique the conformance suite uses on real SGLang too.
"""

from __future__ import annotations

import re
from typing import Any

try:  # Python 3.11+: the regex parser lives in re._parser
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_constants
    import sre_parse


class UnsupportedPattern(ValueError):
    """The pattern uses something the toy model cannot satisfy deterministically."""


def first_match(pattern: str) -> str:
    """A string that ``re.fullmatch(pattern, ...)`` accepts (the first of its language)."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as exc:
        raise UnsupportedPattern(f"invalid regex: {exc}") from exc
    text = _emit(list(parsed))
    if re.fullmatch(pattern, text, flags=re.DOTALL) is None:
        raise UnsupportedPattern(f"cannot construct a match for {pattern!r}")
    return text


def _emit(items: list[tuple[Any, Any]]) -> str:
    out: list[str] = []
    c = sre_constants
    for op, av in items:
        if op is c.LITERAL:
            out.append(chr(av))
        elif op is c.SUBPATTERN:
            out.append(_emit(list(av[-1])))
        elif op is c.BRANCH:
            out.append(_emit(list(av[1][0])))
        elif op is c.IN:
            out.append(_first_in(av))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", object())):
            lo, _hi, sub = av
            out.append(_emit(list(sub)) * lo)
        elif op is c.AT:
            continue
        elif op is c.ANY:
            out.append("a")
        else:
            raise UnsupportedPattern(f"regex construct {op} is not supported by the reference model")
    return "".join(out)


def _first_in(av: list[tuple[Any, Any]]) -> str:
    c = sre_constants
    for op, value in av:
        if op is c.LITERAL:
            return chr(value)
        if op is c.RANGE:
            return chr(value[0])
        if op is c.CATEGORY:
            return {"CATEGORY_DIGIT": "0", "CATEGORY_SPACE": " ", "CATEGORY_WORD": "a"}.get(str(value), "a")
        if op is c.NEGATE:
            continue
    raise UnsupportedPattern("character class without a plain member")
