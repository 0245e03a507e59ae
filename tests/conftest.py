"""Fixtures for testing pytest-lfm itself; the inner-run helper lives in :mod:`harness` (``suite``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from harness import Suite, SuiteRun, run_suite

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _clean_lfm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of the plugin must not see the developer's LFM_* or PYTEST_ADDOPTS settings, nor write into a
    CI job's step summary."""
    for key in list(os.environ):
        if key.startswith("LFM_") or key in ("PYTEST_ADDOPTS", "GITHUB_STEP_SUMMARY"):
            monkeypatch.delenv(key)


@pytest.fixture
def suite(tmp_path: Path) -> Suite:
    """``suite(modules, variants=..., faults=...)`` → :class:`harness.SuiteRun` (runs in ``tmp_path``)."""

    def run(modules: Iterable[str] | str, **kwargs: Any) -> SuiteRun:
        mods = [modules] if isinstance(modules, str) else list(modules)
        return run_suite(tmp_path, mods, **kwargs)

    return run


def repo_root() -> Path:
    """The checkout root."""
    return Path(__file__).resolve().parent.parent
