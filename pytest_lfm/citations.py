"""Citations of the project's behaviour notes (``docs/sglang-behaviour.md``) from checks and case files.

Checks cite sections as ``§1.3`` (behaviour) or ``§F.2`` (chat format). :func:`sections` finds them in a
docstring or case field, :func:`anchor` turns one into the anchor id the document defines
(``<a id="s1.3">``), and :func:`locate` gives the path a user can open (``/…/sglang-behaviour.md#s1.3``).
The document ships in the wheel as ``pytest_lfm/docs/sglang-behaviour.md``; in a checkout it is
``docs/sglang-behaviour.md``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from pytest_lfm.paths import PACKAGE_DIR

DOC_NAME = "sglang-behaviour.md"
REPORT_SECTION = "lfm behaviour notes"
"""The report section a failing check carries: the cited sections of the notes, as paths."""
CITATION = re.compile(r"§\s?((?:F\.)?\d+(?:\.\d+)*|F)\b")
_ANCHOR = re.compile(r'<a id="([^"]+)"></a>')


def doc_path() -> Path:
    """The behaviour notes, inside the installed package or in a checkout."""
    for candidate in (PACKAGE_DIR / "docs" / DOC_NAME, PACKAGE_DIR.parent / "docs" / DOC_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"pytest-lfm's behaviour notes {DOC_NAME} are missing (looked in {PACKAGE_DIR / 'docs'} and "
        f"{PACKAGE_DIR.parent / 'docs'}); reinstall the package from its wheel or sdist"
    )


def sections(text: str) -> list[str]:
    """The sections cited in ``text``, in order, without repeats: ``["§1.3", "§4"]``."""
    return list(dict.fromkeys(f"§{m}" for m in CITATION.findall(text)))


def anchor(section: str) -> str:
    """``§1.3`` → ``s1.3``; ``§F.2`` → ``f2``."""
    body = section.lstrip("§").strip()
    if body.startswith("F"):
        rest = body[1:].lstrip(".")
        return f"f{rest}" if rest else "f"
    return f"s{body}"


@cache
def known_anchors() -> frozenset[str]:
    """Every anchor id the behaviour notes define."""
    return frozenset(_ANCHOR.findall(doc_path().read_text(encoding="utf-8")))


def unknown(text: str) -> list[str]:
    """Sections cited in ``text`` that the behaviour notes do not define."""
    anchors = known_anchors()
    return [s for s in sections(text) if anchor(s) not in anchors]


def locate(section: str) -> str:
    """The path and anchor a user can open for one cited section."""
    return f"{doc_path()}#{anchor(section)}"


def see_also(text: str) -> str:
    """One line pointing at every section cited in ``text`` (empty when none is cited)."""
    cited = [s for s in sections(text) if anchor(s) in known_anchors()]
    if not cited:
        return ""
    return "see " + ", ".join(f"{s} {locate(s)}" for s in cited)
