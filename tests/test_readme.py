"""The README stays true: every option, every conformance module, the quick-start commands."""

from __future__ import annotations

from pathlib import Path

from pytest_lfm import options as o
from pytest_lfm.paths import suite_dir

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_option_is_documented() -> None:
    for spec in o.ALL_OPTIONS:
        assert f"`{spec.flag}" in README, spec.flag
        assert f"`{spec.ini}` / `{spec.env}`" in README, spec.flag


def test_every_check_module_is_listed() -> None:
    modules = sorted(suite_dir().glob("*/test_*.py"))  # one folder per family
    assert modules
    for module in modules:
        assert f"`{module.name}`" in README, module.name


def test_quick_start_commands() -> None:
    assert "pip install . && pytest --lfm-server=reference --lfm-report=lfm-report" in README
    assert 'pip install -e ".[dev]" && pytest -n auto' in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert 'pip install -q -e ".[dev]"' in ci and "run_pytest pytest -n auto" in ci
    assert "run_pytest pytest --lfm-server=reference --lfm-report=lfm-report" in ci
