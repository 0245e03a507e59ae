"""Shared helpers for testing pytest-lfm itself with pytester.

``run_suite`` runs conformance modules in a fresh pytest process against the bundled reference server
(optionally with fault modes) and returns per-check outcomes and failure messages read from the run's
own ``report.json``. Fault tests use it to show that a check passes on a correct server and fails, with
a message naming expected and actual, on a server with the fault it exists to catch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_lfm.paths import suite_module

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _clean_lfm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of the plugin must not see the developer's LFM_* or PYTEST_ADDOPTS settings, nor write into a
    CI job's step summary."""
    for key in list(os.environ):
        if key.startswith("LFM_") or key in ("PYTEST_ADDOPTS", "GITHUB_STEP_SUMMARY"):
            monkeypatch.delenv(key)


@dataclass
class SuiteRun:
    """Outcome of one inner pytest run of the conformance suite."""

    ret: int
    stdout: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def outcomes(self, match: str = "") -> dict[str, str]:
        """nodeid → outcome for checks whose nodeid contains ``match``."""
        return {c["nodeid"]: c["outcome"] for c in self.checks if match in c["nodeid"]}

    def outcome(self, match: str) -> str:
        """The single outcome of the check whose nodeid contains ``match``."""
        found = self.outcomes(match)
        assert len(found) == 1, f"expected one check matching {match!r}, found {sorted(found)}\n{self.stdout[-3000:]}"
        return next(iter(found.values()))

    def message(self, match: str) -> str:
        """The failure message of the check whose nodeid contains ``match``."""
        found = [c for c in self.checks if match in c["nodeid"]]
        assert len(found) == 1, f"expected one check matching {match!r}, found {[c['nodeid'] for c in found]}"
        return str(found[0]["message"])

    def assert_passes(self, match: str = "") -> None:
        """Every matching check passed (or was a declared expected failure); at least one ran."""
        found = self.outcomes(match)
        assert found, f"no check matches {match!r}\n{self.stdout[-3000:]}"
        bad = {k: v for k, v in found.items() if v not in ("passed", "xfailed", "skipped")}
        assert not bad, f"checks did not pass on a correct server: {bad}\n" + "\n".join(
            self.message(k) for k in bad)
        assert any(v == "passed" for v in found.values()), f"nothing passed for {match!r}: {found}"

    def assert_fails(self, match: str, *expected_in_message: str) -> str:
        """The matching check failed and its message names what was expected and what came back."""
        outcome = self.outcome(match)
        msg = self.message(match)
        assert outcome == "failed", f"{match} was {outcome}, expected failed\n{self.stdout[-3000:]}"
        for text in ("Expected", "Actual", *expected_in_message):
            assert text in msg, f"failure message of {match} lacks {text!r}:\n{msg}"
        return msg


def run_suite(pytester: pytest.Pytester, modules: Iterable[str], *, variants: Iterable[str] = ("1.2B-Instruct",),
              faults: Iterable[str] = (), extra: Iterable[str] = (), server: str | None = None,
              version: str | None = None) -> SuiteRun:
    """Run conformance modules (names under ``conformance/``) against reference servers started by the
    plugin, or against ``server`` (``VARIANT=URL`` or a URL of a server the test started itself)."""
    report = pytester.path / "lfm-report"
    args = [str(suite_module(m)) for m in modules]
    args += [f"--lfm-server={server or 'reference'}", f"--lfm-report={report}", "-p", "no:cacheprovider", "-q"]
    if server is None:
        args += [f"--lfm-variant={v}" for v in variants]
    if version is not None:
        args.append(f"--lfm-reference-version={version}")
    args += [f"--lfm-reference-fault={f}" for f in faults]
    args += list(extra)
    result = pytester.runpytest_subprocess(*args, timeout=600)
    stdout = result.stdout.str() + "\n" + result.stderr.str()
    checks: list[dict[str, Any]] = []
    path = report / "report.json"
    if path.is_file():
        data = json.loads(path.read_text())
        checks = [c for cell in data["cells"] for c in cell["checks"]] + data["other_checks"]
    return SuiteRun(ret=int(result.ret), stdout=stdout, checks=checks)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Any:
    """``suite(modules, variants=..., faults=...)`` → :class:`SuiteRun`."""

    def run(modules: Iterable[str] | str, **kwargs: Any) -> SuiteRun:
        mods = [modules] if isinstance(modules, str) else list(modules)
        return run_suite(pytester, mods, **kwargs)

    return run


def repo_root() -> Path:
    """The checkout root."""
    return Path(__file__).resolve().parent.parent
