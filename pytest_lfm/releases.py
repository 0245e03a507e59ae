"""SGLang release facts: what changed between the releases the suite knows, as data.

``pytest_lfm/data/release_facts.toml`` (validated with ``release_facts.schema.json`` next to it) lists
the known releases in order and, for each behaviour that changed between two of them, one *fact*: a
name, the old and the new behaviour, the first release with the new behaviour (``since``) and the
upstream change when known. The facts were derived by running the model-free corpora over every
release's own parser code (``tests/test_release_facts.py`` re-checks that each fact's cases flip
exactly between the release before ``since`` and ``since``).

Every version gate and every known failure refers to a fact by name, never to a version string::

    fact = "lfm2-robust-detector"      # the server has the new behaviour
    fact = "!lfm2-robust-detector"     # the server still has the old behaviour
    fact = ["a", "!b"]                 # all of them (a behaviour that came with a and left with b)

An unknown or unparsable server version counts as the newest release (every fact present). A version
between two known releases (0.5.13 before 0.5.13.post1) is placed by version order.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jsonschema
from packaging.version import InvalidVersion, Version

from pytest_lfm.errors import LfmUsageError

DATA = Path(__file__).resolve().parent / "data"
FACTS_FILE = DATA / "release_facts.toml"
SCHEMA_FILE = DATA / "release_facts.schema.json"


@dataclass(frozen=True)
class ReleaseFact:
    """One behaviour that changed between two SGLang releases."""

    name: str
    since: str
    """The first release with the new behaviour."""
    old: str
    new: str
    area: str
    link: str = ""
    """The upstream pull request or commit, when known."""
    evidence: str = ""
    """How the fact was established (which corpus cases flip, or which source lines changed)."""

    @property
    def since_version(self) -> Version:
        """``since`` as a comparable version."""
        return Version(self.since)

    def present_in(self, version: str | None) -> bool:
        """Whether the release at ``version`` has the new behaviour (unknown → newest → True)."""
        v = parse_version(version)
        return v is None or v >= self.since_version


@dataclass(frozen=True)
class ReleaseFacts:
    """The whole file: known releases (oldest first) and the facts by name."""

    releases: tuple[str, ...]
    facts: dict[str, ReleaseFact]

    def previous(self, release: str) -> str | None:
        """The known release before ``release`` (None for the oldest)."""
        i = self.releases.index(release)
        return self.releases[i - 1] if i > 0 else None


def parse_version(version: str | None) -> Version | None:
    """A comparable version, or None for missing or unparsable text."""
    if not version:
        return None
    try:
        return Version(version.strip().lstrip("v"))
    except InvalidVersion:
        return None


def _error(what: str, remedy: str = "") -> LfmUsageError:
    return LfmUsageError(f"release facts {FACTS_FILE}: {what}",
                         remedy=remedy or "fix the file (format: pytest_lfm/releases.py docstring)")


@cache
def load(path: Path = FACTS_FILE) -> ReleaseFacts:
    """Read and validate the facts file (cached)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise _error(f"cannot be read: {exc}") from None
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise _error(f"at {where}: {exc.message}") from None
    releases = tuple(doc["releases"])
    if list(releases) != sorted(releases, key=Version) or len(set(releases)) != len(releases):
        raise _error(f"releases are not in ascending order without repeats: {releases}")
    facts: dict[str, ReleaseFact] = {}
    for raw in doc.get("fact", []):
        f = ReleaseFact(name=raw["name"], since=raw["since"], old=raw["old"], new=raw["new"], area=raw["area"],
                        link=raw.get("link", ""), evidence=raw.get("evidence", ""))
        if f.name in facts:
            raise _error(f"fact {f.name!r} is listed twice")
        if f.since not in releases:
            raise _error(f"fact {f.name!r}: since {f.since!r} is not one of the known releases",
                         f"use one of {', '.join(releases)} or add the release to `releases`")
        facts[f.name] = f
    return ReleaseFacts(releases=releases, facts=facts)


def known_releases() -> tuple[str, ...]:
    """The SGLang releases the facts know, oldest first."""
    return load().releases


def newest_release() -> str:
    """The newest release the facts know."""
    return load().releases[-1]


def all_facts() -> tuple[ReleaseFact, ...]:
    """Every fact, in file order."""
    return tuple(load().facts.values())


def fact(name: str) -> ReleaseFact:
    """The fact called ``name`` (an :class:`LfmUsageError` naming the known facts otherwise)."""
    facts = load().facts
    try:
        return facts[name]
    except KeyError:
        raise LfmUsageError(f"unknown SGLang release fact {name!r}",
                            remedy=f"use one of: {', '.join(sorted(facts))} "
                                   f"(pytest_lfm/data/release_facts.toml)") from None


def has_fact(name: str, version: str | None) -> bool:
    """True when the release at ``version`` has the NEW behaviour of fact ``name`` (unknown → newest)."""
    return fact(name).present_in(version)


FactGate = str | Sequence[str]


def gate_refs(gate: FactGate) -> tuple[str, ...]:
    """The references of a gate (``"name"``, ``"!name"`` or a list of them) as a tuple."""
    return (gate,) if isinstance(gate, str) else tuple(gate)


def check_gate(gate: FactGate) -> None:
    """Raise :class:`LfmUsageError` unless every reference names a known fact."""
    refs = gate_refs(gate)
    if not refs:
        raise LfmUsageError("an empty fact gate", remedy='write fact = "name" or fact = "!name"')
    for ref in refs:
        if not isinstance(ref, str):
            raise LfmUsageError(f"fact gate {gate!r}: {ref!r} is not a string",
                                remedy='write fact = "name" or fact = "!name"')
        fact(ref.removeprefix("!"))


def gate_holds(gate: FactGate, version: str | None) -> bool:
    """Whether every reference of the gate holds on ``version`` (``"!name"``: the fact is absent)."""
    check_gate(gate)
    return all(has_fact(r[1:], version) is False if r.startswith("!") else has_fact(r, version)
               for r in gate_refs(gate))


def describe_gate(gate: FactGate) -> str:
    """Human words for a gate: ``lfm2-robust-detector (SGLang >= 0.5.19)``."""
    parts = []
    for ref in gate_refs(gate):
        f = fact(ref.removeprefix("!"))
        parts.append(f"{ref} (SGLang {'<' if ref.startswith('!') else '>='} {f.since})")
    return " and ".join(parts)
