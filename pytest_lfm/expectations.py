"""Known failures per SGLang version, as data: ``conformance/expectations/known_failures.toml``.

Data cases (``conformance/<family>/cases/*.toml``) carry their own ``xfail``; this file covers the checks that
are plain test functions. Each entry::

    [[known_failure]]
    check = "test_reasoning.py::test_stream_reasoning_false*"   # FILE.py::TEST[PARAMS], no [target] part
    variants = ["8B-A1B", "1.2B-Thinking"]                       # optional; globs allowed
    sglang = "<0.5.18"                                           # PEP 440 specifier
    reason = "stream_reasoning=false leaks the <think> tag into reasoning_content"
    link = "https://github.com/sgl-project/sglang/issues/NNNN"

makes the matching checks strict expected failures (``xfail(strict=True)``) on the matching SGLang
versions: an upstream fix then shows as an unexpected pass, which fails the run until the entry is
narrowed, so the list stays true. The file is validated with ``known_failures.schema.json`` next to it;
an entry whose ``check`` matches no test in the suite is an error. In ``check``, ``*`` and ``?`` are
wildcards and brackets are literal. A pattern without ``[...]`` matches every parametrisation.

``LFM_KNOWN_FAILURES`` (paths separated by ``os.pathsep``) adds files of the same format, e.g. a
site's own list.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from pytest_lfm.errors import LfmUsageError
from pytest_lfm.paths import suite_dir

if TYPE_CHECKING:
    import pytest

    from pytest_lfm.server.base import Target

ENV_VAR = "LFM_KNOWN_FAILURES"


@dataclass(frozen=True)
class KnownFailureEntry:
    """One known upstream failure of a check on some SGLang versions (and optionally some variants)."""

    check: str
    sglang: str
    reason: str
    link: str
    variants: tuple[str, ...] = ()
    source: str = ""

    def applies_to_variant(self, variant_id: str) -> bool:
        """True when ``variants`` is absent or one of its globs matches ``variant_id``."""
        return not self.variants or any(fnmatch.fnmatchcase(variant_id, v) for v in self.variants)

    def matches(self, *names: str) -> bool:
        """True when the ``check`` pattern matches one of the given check names."""
        rx = _pattern(self.check)
        return any(rx.fullmatch(n) for n in names)

    def describe(self) -> str:
        """The xfail reason shown in reports."""
        return f"known failure on SGLang {self.sglang}: {self.reason} ({self.link})"


@cache
def _pattern(check: str) -> re.Pattern[str]:
    return re.compile(re.escape(check).replace(r"\*", ".*").replace(r"\?", "."))


def default_path() -> Path:
    """The shipped list, ``conformance/expectations/known_failures.toml``."""
    return suite_dir() / "expectations" / "known_failures.toml"


def schema() -> dict[str, Any]:
    """The JSON Schema of a known-failures file."""
    path = suite_dir() / "expectations" / "known_failures.schema.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _error(path: Path, what: str, remedy: str = "") -> LfmUsageError:
    return LfmUsageError(f"known failures file {path}: {what}",
                         remedy=remedy or "fix the entry (format: pytest_lfm/expectations.py docstring) "
                                          "or remove it")


def suite_checks(root: Path | None = None) -> frozenset[str]:
    """``FILE.py::TEST`` (and ``FILE.py::Class::TEST``) for every test function in the suite, read with
    :mod:`ast` without importing anything. Files that do not parse are skipped (pytest reports them)."""
    base = root or suite_dir()
    return _suite_checks(str(base))


@cache
def _suite_checks(base: str) -> frozenset[str]:
    names: set[str] = set()
    root = Path(base)
    for path in sorted(root.rglob("test_*.py")):
        rel = path.name  # check ids name the module by file name, without its family folder
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                names.add(f"{rel}::{node.name}")
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                names.update(f"{rel}::{node.name}::{m.name}" for m in node.body
                             if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef) and m.name.startswith("test"))
    return frozenset(names)


def load_file(path: Path, checks: frozenset[str] | None = None) -> tuple[KnownFailureEntry, ...]:
    """Read, validate and return one file's entries; every entry must match a test of the suite
    (``checks``, default :func:`suite_checks`) and name known variants."""
    from pytest_lfm.variants import variant_ids

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _error(path, f"cannot be read ({exc.strerror or exc})",
                     f"check the path (set through {ENV_VAR}?)") from None
    except tomllib.TOMLDecodeError as exc:
        raise _error(path, f"is not valid TOML: {exc}") from None
    try:
        jsonschema.validate(doc, schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise _error(path, f"at {where}: {exc.message}") from None
    known_checks = suite_checks() if checks is None else checks
    ids = variant_ids()
    out: list[KnownFailureEntry] = []
    for n, raw in enumerate(doc.get("known_failure", []), start=1):
        entry = KnownFailureEntry(check=raw["check"], sglang=raw["sglang"], reason=raw["reason"],
                                  link=raw["link"], variants=tuple(raw.get("variants", ())), source=path.name)
        label = f"entry {n} ({entry.check!r})"
        try:
            SpecifierSet(entry.sglang, prereleases=True)
        except InvalidSpecifier:
            raise _error(path, f"{label}: sglang {entry.sglang!r} is not a PEP 440 specifier",
                         "write e.g. sglang = \"<0.5.18\" or \"==0.5.17\"") from None
        for v in entry.variants:
            if not any(fnmatch.fnmatchcase(i, v) for i in ids):
                raise _error(path, f"{label}: variant {v!r} matches no known variant",
                             f"use one of: {', '.join(ids)}")
        function_part = entry.check.split("[", 1)[0]
        if not any(_pattern(function_part).fullmatch(c) for c in known_checks):
            raise _error(path, f"{label}: matches no check in the suite (looked at the test functions under "
                               f"{suite_dir()})",
                         "name an existing check as FILE.py::TEST relative to the suite, or remove the entry")
        out.append(entry)
    return tuple(out)


def entry_files() -> tuple[Path, ...]:
    """The shipped file (when present) plus the files named by ``LFM_KNOWN_FAILURES``."""
    files = [default_path()] if default_path().is_file() else []
    files += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    return tuple(files)


@cache
def _load_all(files: tuple[Path, ...]) -> tuple[KnownFailureEntry, ...]:
    return tuple(e for f in files for e in load_file(f))


def load_known_failures() -> tuple[KnownFailureEntry, ...]:
    """Every entry of :func:`entry_files`, validated (cached per set of files)."""
    return _load_all(entry_files())


def item_check_names(nodeid: str, path: Path | None, target_id: str) -> tuple[str, str]:
    """(name with non-target parameters, bare name) of a collected check, relative to the suite:
    ``test_x.py::t[case-a]`` and ``test_x.py::t`` for ``conformance/test_x.py::t[case-a-1.2B-Instruct]``."""
    from pytest_lfm.reporting import check_name

    rest = nodeid.split("::", 1)[1] if "::" in nodeid else nodeid
    rel = nodeid.split("::", 1)[0]
    if path is not None:
        try:
            rel = Path(path).resolve().relative_to(suite_dir().resolve()).name
        except ValueError:
            pass
    full = check_name(f"{rel}::{rest}", target_id)
    return full, full.split("[", 1)[0]


def known_failures_for(nodeid: str, path: Path | None, target: Target) -> list[KnownFailureEntry]:
    """The entries that apply to this check on this target (variant and SGLang version)."""
    names = item_check_names(nodeid, path, target.id)
    return [e for e in load_known_failures()
            if e.matches(*names) and e.applies_to_variant(target.variant.id) and target.version_matches(e.sglang)]


def known_failure_mark(item: pytest.Item, target: Target) -> pytest.MarkDecorator | None:
    """A strict xfail marker for ``item`` on ``target`` when a known failure applies, else None.
    A bad known-failures file becomes a :class:`pytest.UsageError` that names the file and entry."""
    import pytest

    try:
        entries = known_failures_for(item.nodeid, getattr(item, "path", None), target)
    except LfmUsageError as exc:
        raise pytest.UsageError(exc.render()) from None
    if not entries:
        return None
    return pytest.mark.xfail(strict=True, reason="; ".join(e.describe() for e in entries))
