"""Conformance cases as data: TOML files under ``conformance/<family>/cases/``, validated with
jsonschema against ``conformance/case.schema.json`` (the one case schema every family shares) and, where
present, ``conformance/<family>/cases/schema.json`` (the family's own fields).

A case is one behaviour: a stable ``id``, a statement-style ``description``, the ``section`` of the
behaviour notes it relies on, and an optional version gate ``fact`` naming SGLang release facts
(``pytest_lfm/data/release_facts.toml``: ``fact = "name"`` runs the case only on releases with the new
behaviour, ``fact = "!name"`` only on releases without it). Known upstream gaps are not written here:
every known failure, of a case or of a plain check, is an entry of
``conformance/expectations/known_failures.toml`` (:mod:`pytest_lfm.expectations`).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from pytest_lfm.errors import LfmUsageError
from pytest_lfm.paths import suite_dir
from pytest_lfm.releases import check_gate

CASE_SCHEMA = "case.schema.json"


@dataclass(frozen=True)
class Case:
    """One data-driven conformance case."""

    id: str
    family: str
    description: str
    section: str
    data: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    fact: str | tuple[str, ...] | None = None
    """The version gate: release-fact references (see the module docstring); None runs everywhere."""
    source: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """A field of the case's data."""
        return self.data.get(key, default)

    def __str__(self) -> str:
        return self.id


def _schema(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@cache
def load_cases(family: str, root: str | None = None) -> tuple[Case, ...]:
    """Every case of a family, validated; ids are unique within the family. ``root`` is the suite
    directory (default: the installed or checked-out ``conformance/``)."""
    base = Path(root) if root else suite_dir()
    common = _schema(base / CASE_SCHEMA)
    if common is None:
        raise FileNotFoundError(f"the shared case schema {base / CASE_SCHEMA} is missing")
    own = _schema(base / family / "cases" / "schema.json")
    cases: list[Case] = []
    for path in sorted((base / family / "cases").glob("*.toml")):
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        for raw in doc.get("case", []):
            for schema in (common, own):
                if schema is not None:
                    try:
                        jsonschema.validate(raw, schema)
                    except jsonschema.ValidationError as exc:
                        raise ValueError(f"{path.name}: case {raw.get('id')!r}: {exc.message}") from None
            gate = raw.get("fact")
            if gate is not None:
                try:
                    check_gate(gate)
                except LfmUsageError as exc:
                    raise ValueError(f"{path.name}: case {raw.get('id')!r}: {exc}") from None
            cases.append(Case(
                id=raw["id"], family=family, description=raw["description"], section=raw["section"],
                data={k: v for k, v in raw.items() if k not in ("id", "description", "section", "fact")},
                fact=gate if gate is None or isinstance(gate, str) else tuple(gate),
                source=path.name,
            ))
    ids = [c.id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate case ids in {family}: {dupes}")
    return tuple(cases)
