"""The check families' fault tables (``conformance/<family>/faults.toml``, schema
``conformance/faults.schema.json``) read into rows, grouped into inner runs, and checked for coverage.

Used by ``tests/test_faults.py`` (the one generic fault-test runner) and ``tests/test_fault_tables.py`` (the
data sanity tests: every check has a fault row or a reason why none applies).
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from pytest_lfm.paths import suite_dir

SCHEMA = "faults.schema.json"
TABLE = "faults.toml"
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Fails:
    """A check that must fail on a faulty server, and words its message must contain."""

    check: str
    words: tuple[str, ...]
    variant: str | None = None

    @property
    def function(self) -> str:
        """``FILE.py::test_name`` without parameters."""
        return self.check.split("[", 1)[0]

    def matches(self, check_id: str) -> bool:
        """True when a report's check id is named by this entry (exact, every parametrisation when the
        entry has no ``[params]``, ``*`` for anything)."""
        if "[" not in self.check:
            return check_id == self.check or check_id.startswith(self.check + "[")
        return glob_match(self.check, check_id)


@dataclass(frozen=True)
class FaultRow:
    """One row: a fault mode, the variants it applies to, the checks that must fail."""

    family: str
    fault: str
    variants: tuple[str, ...]
    fails: tuple[Fails, ...]
    proof: str | None = None

    def label(self) -> str:
        return f"{self.family}/faults.toml: {self.fault} on {', '.join(self.variants)}"


@dataclass(frozen=True)
class NoFault:
    """A check no fault row names, and why."""

    family: str
    check: str
    reason: str
    gap: bool = False


@dataclass(frozen=True)
class Control:
    """The family's run without a fault."""

    variants: tuple[str, ...]
    extra: tuple[str, ...] = ()
    outcomes: dict[str, str] = field(default_factory=dict, hash=False)
    min_passed: dict[str, int] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class FamilyTable:
    """A family folder: its modules, its control run, its fault rows, its no-fault lines."""

    family: str
    modules: tuple[str, ...]
    control: Control | None
    rows: tuple[FaultRow, ...]
    no_fault: tuple[NoFault, ...]


def glob_match(pattern: str, text: str) -> bool:
    """``*`` matches any text; everything else (brackets included) is literal."""
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), text) is not None


def family_checks(folder: Path) -> dict[str, str]:
    """``FILE.py::test_name`` → module file name, for every test function of a family folder (read with
    :mod:`ast`, nothing imported)."""
    out: dict[str, str] = {}
    for path in sorted(folder.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                out[f"{path.name}::{node.name}"] = path.name
    return out


def load_table(folder: Path, root: Path) -> FamilyTable:
    """One family's fault table, validated against the shared schema."""
    path = folder / TABLE
    if not path.is_file():
        raise FileNotFoundError(f"{folder.name}/ has test modules but no {TABLE}: add one ({root / SCHEMA})")
    doc = tomllib.loads(path.read_text(encoding="utf-8"))
    schema = json.loads((root / SCHEMA).read_text(encoding="utf-8"))
    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as exc:
        raise ValueError(f"{folder.name}/{TABLE}: {exc.message} (at {list(exc.absolute_path)})") from None
    c: dict[str, Any] | None = doc.get("control")
    control = None if c is None else Control(
        variants=tuple(c["variants"]), extra=tuple(c.get("extra", ())), outcomes=dict(c.get("outcomes", {})),
        min_passed=dict(c.get("min_passed", {})))
    rows = tuple(FaultRow(
        family=folder.name, fault=r["fault"], variants=tuple(r["variants"]), proof=r.get("proof"),
        fails=tuple(Fails(f["check"], tuple(f["words"]), f.get("variant")) for f in r["fails"]),
    ) for r in doc.get("fault", []))
    no_fault = tuple(NoFault(folder.name, n["check"], n["reason"], bool(n.get("gap", False)))
                     for n in doc.get("no_fault", []))
    modules = tuple(sorted(p.name for p in folder.glob("test_*.py")))
    return FamilyTable(folder.name, modules, control, rows, no_fault)


def family_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and any(d.glob("test_*.py")))


def load_tables(root: Path | None = None) -> list[FamilyTable]:
    """Every family's table (``root``: the suite directory, default the checkout's ``conformance/``)."""
    base = root or suite_dir()
    return [load_table(d, base) for d in family_folders(base)]


@cache
def tables() -> tuple[FamilyTable, ...]:
    return tuple(load_tables())


def fault_runs() -> dict[str, list[FaultRow]]:
    """fault mode → the rows the generic runner checks with it. One inner run per fault mode serves every
    row of every family that names it (variants and modules united)."""
    out: dict[str, list[FaultRow]] = {}
    for t in tables():
        for row in t.rows:
            if row.proof is None:
                out.setdefault(row.fault, []).append(row)
    return dict(sorted(out.items()))


def coverage_problems(root: Path | None = None, known_faults: set[str] | None = None) -> list[str]:
    """Everything that makes fault coverage not structural: a check without a fault row or a reason,
    a row naming a check or module that does not exist, an unknown fault mode, a proof test that is missing
    or does not use its fault."""
    base = root or suite_dir()
    problems: list[str] = []
    for folder in family_folders(base):
        try:
            table = load_table(folder, base)
        except (FileNotFoundError, ValueError) as exc:
            problems.append(str(exc))
            continue
        checks = family_checks(folder)
        named: set[str] = set()
        for row in table.rows:
            if known_faults is not None and row.fault not in known_faults:
                problems.append(f"{row.label()}: no fault mode named {row.fault!r}")
            for f in row.fails:
                if f.function not in checks:
                    problems.append(f"{row.label()}: {f.check} is not a check of {folder.name}/")
                if f.variant is not None and f.variant not in row.variants:
                    problems.append(f"{row.label()}: {f.check} names variant {f.variant} the row does not run")
                named.add(f.function)
            if row.proof is not None:
                problems += _proof_problems(row)
        for n in table.no_fault:
            if n.check not in checks:
                problems.append(f"{folder.name}/{TABLE}: no_fault names {n.check}, not a check of {folder.name}/")
            elif n.check in named:
                problems.append(f"{folder.name}/{TABLE}: {n.check} has a fault row and a no_fault line; keep one")
            named.add(n.check)
        for check in sorted(set(checks) - named):
            problems.append(f"{folder.name}/{TABLE}: {check} is named by no [[fault]] row and has no [[no_fault]] "
                            "line saying why no fault applies")
    return problems


def _proof_problems(row: FaultRow) -> list[str]:
    assert row.proof is not None
    file, _, name = row.proof.partition("::")
    path = REPO / file
    if not path.is_file():
        return [f"{row.label()}: proof {row.proof}: no such file"]
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if name not in funcs:
        return [f"{row.label()}: proof {row.proof}: no such test"]
    if f'"{row.fault}"' not in (ast.get_source_segment(text, funcs[name]) or ""):
        return [f"{row.label()}: proof {row.proof} does not use the fault {row.fault!r}"]
    return []
