"""Known upstream failures, as data: ``conformance/expectations/known_failures.toml``.

The one known-failure mechanism of the suite: data cases and plain test functions alike. Each entry::

    [[known_failure]]
    check = "test_reasoning.py::test_forced_reasoning_case[stream-reasoning-false-one-delta-stream]"
    # or a list of checks: check = ["test_x.py::t[a]", "test_x.py::t[b]"]; FILE.py::TEST[PARAMS], no [target]
    variants = ["8B-A1B", "1.2B-Thinking"]            # optional; globs allowed
    fact = "!stream-reasoning-false-strips-think"     # optional release-fact gate; absent: every release
    reason = "stream_reasoning=false leaks the <think> tag into reasoning_content"
    link = "https://github.com/sgl-project/sglang/issues/NNNN"

makes the matching checks strict expected failures (``xfail(strict=True)``) on the SGLang releases where
the gate holds (``fact = "!name"``: releases without the new behaviour of fact ``name``, see
:mod:`pytest_lfm.releases`): an upstream fix then shows as an unexpected pass, which fails the run until
the entry is narrowed, so the list stays true. Version strings are never written here. The file is
validated with ``known_failures.schema.json`` next to it; an entry whose ``check`` matches no test in
the suite is an error. In ``check``, ``*`` and ``?`` are
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

from pytest_lfm.errors import LfmUsageError
from pytest_lfm.paths import suite_dir
from pytest_lfm.releases import check_gate, describe_gate, gate_holds

if TYPE_CHECKING:
    import pytest

    from pytest_lfm.cases import Case
    from pytest_lfm.server.base import Target

ENV_VAR = "LFM_KNOWN_FAILURES"


@dataclass(frozen=True)
class KnownFailureEntry:
    """One known upstream failure of a check on some SGLang versions (and optionally some variants)."""

    checks: tuple[str, ...]
    reason: str
    link: str
    fact: str | tuple[str, ...] | None = None
    variants: tuple[str, ...] = ()
    source: str = ""
    reference: bool = True
    """False: the bundled reference server answers per the contract here (it does not reproduce this
    upstream defect), so the entry does not apply to it; it applies to every real server."""
    weights: str = "any"
    """"random": the defect shows only on random-weight fixture checkpoints (e.g. many ids decoding alike)."""
    fatal: bool = False
    """True: on the releases where the entry applies, the check's request takes the server down (e.g. a
    device-side assert kills the scheduler), so a real server is not sent it: the check is reported as a
    known failure that was not run. The bundled reference server (a test double, which survives it) runs it."""

    def applies_to_target(self, target: Target) -> bool:
        """The entry's server scope: real servers (and the reference server unless ``reference`` is false),
        with any weights or only random ones."""
        if target.is_test_double and not self.reference:
            return False
        return self.weights == "any" or bool(target.random_weights)

    @property
    def check(self) -> str:
        """The first check pattern (the entry's label)."""
        return self.checks[0]

    def applies_to_version(self, version: str | None) -> bool:
        """True when the fact gate holds on ``version`` (no gate: every release)."""
        return self.fact is None or gate_holds(self.fact, version)

    def applies_to_variant(self, variant_id: str) -> bool:
        """True when ``variants`` is absent or one of its globs matches ``variant_id``."""
        return not self.variants or any(fnmatch.fnmatchcase(variant_id, v) for v in self.variants)

    def matches(self, *names: str) -> bool:
        """True when one of the ``check`` patterns matches one of the given check names."""
        return any(_pattern(c).fullmatch(n) for c in self.checks for n in names)

    def describe(self) -> str:
        """The xfail reason shown in reports."""
        where = f"fact {describe_gate(self.fact)}" if self.fact else "every SGLang release"
        fatal = "; not sent to a real server: it takes the server down" if self.fatal else ""
        return f"known failure ({where}{fatal}): {self.reason} ({self.link})"


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
        patterns = (raw["check"],) if isinstance(raw["check"], str) else tuple(raw["check"])
        gate = raw.get("fact")
        entry = KnownFailureEntry(checks=patterns, reason=raw["reason"], link=raw["link"],
                                  fact=gate if gate is None or isinstance(gate, str) else tuple(gate),
                                  variants=tuple(raw.get("variants", ())), source=path.name,
                                  reference=bool(raw.get("reference", True)), weights=str(raw.get("weights", "any")),
                                  fatal=bool(raw.get("fatal", False)))
        label = f"entry {n} ({entry.check!r})"
        if entry.fact is not None:
            try:
                check_gate(entry.fact)
            except LfmUsageError as exc:
                raise _error(path, f"{label}: {exc.render()}",
                             'write fact = "name" or "!name" with a fact of pytest_lfm/data/release_facts.toml') \
                    from None
        for v in entry.variants:
            if not any(fnmatch.fnmatchcase(i, v) for i in ids):
                raise _error(path, f"{label}: variant {v!r} matches no known variant",
                             f"use one of: {', '.join(ids)}")
        for check in entry.checks:
            function_part = check.split("[", 1)[0]
            if not any(_pattern(function_part).fullmatch(c) for c in known_checks):
                raise _error(path, f"{label}: {check!r} matches no check in the suite (looked at the test "
                                   f"functions under {suite_dir()})",
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
            if e.matches(*names) and e.applies_to_variant(target.variant.id) and e.applies_to_version(target.version)
            and e.applies_to_target(target)]


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
    run = target.is_test_double or not any(e.fatal for e in entries)
    return pytest.mark.xfail(strict=True, run=run, reason="; ".join(e.describe() for e in entries))


def case_gate_skip(case: Case, target: Target) -> str | None:
    """Why a data case does not run on ``target`` (its ``fact`` gate does not hold), or None."""
    if case.fact is None or gate_holds(case.fact, target.version):
        return None
    return (f"case {case.id} applies to SGLang with {describe_gate(case.fact)}; "
            f"server reports {target.version or 'an unknown version'}")
