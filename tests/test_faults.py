"""The one generic fault-test runner: every family's fault table (``conformance/<family>/faults.toml``) run
against the reference server.

- ``test_family_passes_without_fault``: the family's modules on the control variants, no fault: every check
  passes, is a declared expected failure or skips; the outcomes the table states hold; and every check a
  fault row names passes here (so its failure under the fault is the fault's doing; rows with a ``proof``
  need a GPU or an engine, and their plain tests show the passing side).
- ``test_fault_turns_its_checks_red``: one inner run per fault mode serves every row that names it, in
  every family (variants and modules united, ``-k`` narrowed to the named checks); each named check fails
  on each of its row's variants, and its message names Expected, Actual and the row's words.

Rows with a ``proof`` are shown by that plain test instead (they need a reported GPU, an attached server or
a fake engine). Coverage itself is checked without running anything in ``tests/test_fault_tables.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from fault_tables import FamilyTable, FaultRow, fault_runs, glob_match, tables
from harness import Suite

from pytest_lfm.reporting import normalize_nodeid

RUNS = fault_runs()
CONTROLLED = {t.family: t for t in tables() if t.control is not None}


def _ordered(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


@pytest.mark.parametrize("family", sorted(CONTROLLED))
def test_family_passes_without_fault(suite: Suite, family: str) -> None:
    table: FamilyTable = CONTROLLED[family]
    assert table.control is not None
    run = suite(list(table.modules), variants=list(table.control.variants), extra=list(table.control.extra))
    run.assert_passes()
    assert run.ret == 0, run.stdout[-3000:]
    problems: list[str] = []
    for pattern, outcome in table.control.outcomes.items():
        found = {normalize_nodeid(c["nodeid"]): c["outcome"] for c in run.checks
                 if glob_match(pattern, normalize_nodeid(c["nodeid"]))}
        if not found or set(found.values()) != {outcome}:
            problems.append(f"[control.outcomes] {pattern!r}: expected every match {outcome}, got {found}")
    for pattern, least in table.control.min_passed.items():
        passed = [c for c in run.checks if c["outcome"] == "passed" and glob_match(pattern, normalize_nodeid(c["nodeid"]))]
        if len(passed) < least:
            problems.append(f"[control.min_passed] {pattern!r}: expected at least {least} passed, got {len(passed)}")
    for row in (r for r in table.rows if r.proof is None):  # a proof test shows its own passing side
        for f in row.fails:
            for variant in [f.variant] if f.variant else row.variants:
                if variant not in table.control.variants:
                    continue
                found = {c["nodeid"]: c["outcome"] for c in run.checks if c["target"] == variant and f.matches(c["check"])}
                if not found or set(found.values()) != {"passed"}:
                    problems.append(f"{row.label()}: {f.check} on {variant} must pass without the fault: {found}")
    assert not problems, "\n".join(problems) + "\n" + run.stdout[-2000:]


def _check_row(run: Any, row: FaultRow) -> list[str]:
    problems: list[str] = []
    for f in row.fails:
        for variant in [f.variant] if f.variant else row.variants:
            found = [c for c in run.checks if c["target"] == variant and f.matches(c["check"])]
            if not found:
                problems.append(f"{row.label()}: no check {f.check} ran on {variant}")
            for c in found:
                if c["outcome"] != "failed":
                    problems.append(f"{row.label()}: {c['nodeid']} was {c['outcome']}, expected failed")
                    continue
                missing = [w for w in ("Expected", "Actual", *f.words) if w not in str(c["message"])]
                if missing:
                    problems.append(f"{row.label()}: the failure message of {c['nodeid']} lacks {missing}:\n"
                                    f"{c['message']}")
    return problems


@pytest.mark.parametrize("fault", sorted(RUNS))
def test_fault_turns_its_checks_red(suite: Suite, fault: str) -> None:
    rows = RUNS[fault]
    variants = _ordered([v for r in rows for v in r.variants])
    modules = _ordered([f.check.split("::")[0] for r in rows for f in r.fails])
    functions = _ordered([f.function.split("::")[1] for r in rows for f in r.fails])
    run = suite(modules, variants=variants, faults=[fault], extra=["-k", " or ".join(functions)])
    problems = [p for row in rows for p in _check_row(run, row)]
    assert not problems, "\n".join(problems) + "\n" + run.stdout[-2000:]
