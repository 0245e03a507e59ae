"""Fault coverage is structural: every check of every family is named by a fault row or by a line saying why
no fault applies, every fault mode of the reference server is in some row, and the tables and case files
validate against their one shared schema each. Also keeps docs/where-things-live.md true: a new case file
or family is picked up with no code change, and a check without a fault row fails the sanity test."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from fault_tables import REPO, coverage_problems, family_folders, tables

from pytest_lfm.cases import load_cases
from pytest_lfm.paths import suite_dir
from pytest_lfm.reference.faults import FAULTS


def test_every_check_has_a_fault_row_or_a_reason() -> None:
    problems = coverage_problems(known_faults=set(FAULTS))
    assert not problems, "\n".join(problems)


def test_every_fault_mode_turns_a_named_check_red() -> None:
    used = {row.fault for t in tables() for row in t.rows}
    unused = sorted(set(FAULTS) - used)
    assert not unused, f"fault modes no fault table names (add a [[fault]] row to the family it breaks): {unused}"


def test_every_family_case_file_validates() -> None:
    families = [d.name for d in family_folders(suite_dir()) if (d / "cases").is_dir()]
    assert {"tool_calls", "reasoning", "validation", "vision", "sampling", "engine"} <= set(families)
    for family in families:
        assert load_cases(family), family


@pytest.fixture
def suite_copy(tmp_path: Path) -> Path:
    """A copy of the suite to change without touching the checkout."""
    root = tmp_path / "conformance"
    shutil.copytree(suite_dir(), root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


NEW_CASE = """
[[case]]
id = "new_case_from_data"
description = "A case added as data alone is loaded, validated and parametrised with no code change."
section = "§4"
endpoint = "chat"
body = {top_p = 2.0}
status = 400
"""


def test_a_new_case_file_is_picked_up_with_no_code_change(suite_copy: Path) -> None:
    before = {c.id for c in load_cases("validation", str(suite_copy))}
    (suite_copy / "validation" / "cases" / "zz_new.toml").write_text(NEW_CASE, encoding="utf-8")
    load_cases.cache_clear()
    cases = {c.id: c for c in load_cases("validation", str(suite_copy))}
    assert set(cases) - before == {"new_case_from_data"}
    assert cases["new_case_from_data"].source == "zz_new.toml"


def test_a_case_breaking_the_shared_schema_is_refused(suite_copy: Path) -> None:
    bad = NEW_CASE.replace("A case added", "This case should be")
    (suite_copy / "validation" / "cases" / "zz_bad.toml").write_text(bad, encoding="utf-8")
    load_cases.cache_clear()
    with pytest.raises(ValueError, match=re.escape("zz_bad.toml: case 'new_case_from_data'")):
        load_cases("validation", str(suite_copy))


def test_a_check_without_a_fault_row_fails_the_sanity_test(suite_copy: Path) -> None:
    assert coverage_problems(suite_copy, set(FAULTS)) == []
    module = suite_copy / "protocol" / "test_protocol.py"
    module.write_text(module.read_text(encoding="utf-8") + "\n\ndef test_brand_new_check() -> None:\n    pass\n",
                      encoding="utf-8")
    problems = coverage_problems(suite_copy, set(FAULTS))
    assert len(problems) == 1 and "test_protocol.py::test_brand_new_check is named by no [[fault]] row" in problems[0]
    table = suite_copy / "protocol" / "faults.toml"
    table.write_text(table.read_text(encoding="utf-8") + '\n[[no_fault]]\ncheck = "test_protocol.py::test_brand_new_check"\n'
                     'reason = "a placeholder check that asserts nothing a server can get wrong"\n', encoding="utf-8")
    assert coverage_problems(suite_copy, set(FAULTS)) == []


def test_a_new_family_folder_needs_a_fault_table(suite_copy: Path) -> None:
    family = suite_copy / "newfamily"
    family.mkdir()
    (family / "test_newfamily.py").write_text("def test_something() -> None:\n    pass\n", encoding="utf-8")
    problems = coverage_problems(suite_copy, set(FAULTS))
    assert problems == [f"newfamily/ has test modules but no faults.toml: add one ({suite_copy / 'faults.schema.json'})"]


def test_fault_rows_name_real_checks_and_faults(suite_copy: Path) -> None:
    table = suite_copy / "completions" / "faults.toml"
    text = table.read_text(encoding="utf-8")
    table.write_text(text.replace('fault = "completions_no_echo"', 'fault = "no_such_fault"', 1)
                     .replace("test_n_choices", "test_no_such_check", 1), encoding="utf-8")
    problems = "\n".join(coverage_problems(suite_copy, set(FAULTS)))
    assert "no fault mode named 'no_such_fault'" in problems
    assert "test_completions.py::test_no_such_check is not a check of completions/" in problems
    assert "test_completions.py::test_n_choices is named by no [[fault]] row" in problems


def test_where_things_live_names_files_that_exist() -> None:
    doc = (REPO / "docs" / "where-things-live.md").read_text(encoding="utf-8")
    assert "docs/where-things-live.md" in (REPO / "README.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"`((?:conformance|pytest_lfm|tests|fixtures|scripts|docs)/[^`<>*\s]+)`", doc))
    assert len(paths) >= 10, paths
    pending = {"pytest_lfm/data/release_facts.toml", "pytest_lfm/releases.py"}  # the release-facts work, in flight
    missing = sorted(p for p in paths - pending if not (REPO / p).exists())
    assert not missing, f"docs/where-things-live.md names paths that do not exist: {missing}"


def test_module_file_names_are_unique_across_families() -> None:
    """Check ids name a module by its file name without the family folder, so two families must not both
    have a ``test_x.py``."""
    names = [p.name for p in suite_dir().glob("*/test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert not list(suite_dir().glob("test_*.py")), "check modules live in a family folder under conformance/"
