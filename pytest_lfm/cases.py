"""Conformance cases as data: TOML files under ``conformance/<family>/cases/``, validated with
jsonschema against ``conformance/case.schema.json`` (the one case schema every family shares) and, where
present, ``conformance/<family>/cases/schema.json`` (the family's own fields).

A case is one behaviour: a stable ``id``, a statement-style ``description``, the ``section`` of the
behaviour notes it relies on, optional version gate ``sglang`` (PEP 440 specifier: the case is skipped
on other versions) and optional ``xfail`` (a known upstream gap: a strict expected failure with a link,
so that an upstream fix shows up as an unexpected pass).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from pytest_lfm.paths import suite_dir

CASE_SCHEMA = "case.schema.json"


@dataclass(frozen=True)
class KnownFailure:
    """A strict expected failure on the SGLang versions matching ``sglang``."""

    reason: str
    link: str
    sglang: str = ">=0"


@dataclass(frozen=True)
class Case:
    """One data-driven conformance case."""

    id: str
    family: str
    description: str
    section: str
    data: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    sglang: str | None = None
    xfail: KnownFailure | None = None
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
            xf = raw.get("xfail")
            cases.append(Case(
                id=raw["id"], family=family, description=raw["description"], section=raw["section"],
                data={k: v for k, v in raw.items() if k not in ("id", "description", "section", "sglang", "xfail")},
                sglang=raw.get("sglang"),
                xfail=KnownFailure(xf["reason"], xf["link"], xf.get("sglang", ">=0")) if xf else None,
                source=path.name,
            ))
    ids = [c.id for c in cases]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate case ids in {family}: {dupes}")
    return tuple(cases)
