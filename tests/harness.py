"""The one runner of inner pytest runs for the project's own tests.

:func:`run_suite` runs conformance modules in a fresh pytest process, against reference servers the plugin
starts (optionally with fault modes or an emulated SGLang release), a server the test started
(``server="VARIANT=URL"``; start it with :class:`pytest_lfm.server.reference.ReferenceProcess`), or any
other target given in ``extra`` (engine mode), and returns a :class:`SuiteRun` read from the run's own
``report.json``. Fault tests use it to show that a check passes on a correct server and fails, with a
message naming expected and actual, on a server with the fault it exists to catch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pytest_lfm.paths import suite_module


@dataclass
class SuiteRun:
    """Outcome of one inner pytest run of the conformance suite."""

    ret: int
    stdout: str
    checks: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    """The whole report.json ({} when the run wrote none)."""
    report_dir: Path | None = None

    def outcomes(self, match: str = "") -> dict[str, str]:
        """nodeid → outcome for checks whose nodeid contains ``match``."""
        return {c["nodeid"]: c["outcome"] for c in self.checks if match in c["nodeid"]}

    def only(self, match: str) -> dict[str, Any]:
        """The single check whose nodeid contains ``match``."""
        found = [c for c in self.checks if match in c["nodeid"]]
        assert len(found) == 1, f"expected one check matching {match!r}, found {[c['nodeid'] for c in found]}\n" \
                                f"{self.stdout[-3000:]}"
        return found[0]

    def outcome(self, match: str) -> str:
        """The single outcome of the check whose nodeid contains ``match``."""
        return str(self.only(match)["outcome"])

    def message(self, match: str) -> str:
        """The failure message of the check whose nodeid contains ``match``."""
        return str(self.only(match)["message"])

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


def read_report(report_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(report.json, every check in it) — ({}, []) when the run wrote no report."""
    path = report_dir / "report.json"
    if not path.is_file():
        return {}, []
    data: dict[str, Any] = json.loads(path.read_text())
    return data, [c for cell in data["cells"] for c in cell["checks"]] + data["other_checks"]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without the developer's LFM_* and PYTEST_ADDOPTS settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFM_") and k != "PYTEST_ADDOPTS"}
    return {**env, **(extra or {})}


def suite_args(modules: Iterable[str], *, report_dir: Path, variants: Iterable[str] = ("1.2B-Instruct",),
               faults: Iterable[str] = (), extra: Iterable[str] = (), server: str | None = None,
               version: str | None = None, hardware: str | None = None, k: str | None = None) -> list[str]:
    """The command-line arguments of an inner run of conformance modules (names under ``conformance/``).

    The target: reference servers started by the plugin for ``variants`` (with ``faults`` and the emulated
    release ``version``), or ``server`` (``VARIANT=URL`` of a server the test started), or, with
    ``server="none"``, whatever ``extra`` names (e.g. ``--lfm-engine``).
    """
    args = [str(suite_module(m)) for m in modules]
    if server != "none":
        args.append(f"--lfm-server={server or 'reference'}")
    if server is None:
        args += [f"--lfm-variant={v}" for v in variants]
    if version is not None:
        args.append(f"--lfm-reference-version={version}")
    if hardware:
        args.append(f"--lfm-hardware={hardware}")
    args += [f"--lfm-reference-fault={f}" for f in faults]
    args += [f"--lfm-report={report_dir}", "-p", "no:cacheprovider", "-q"]
    if k:
        args += ["-k", k]
    return args + list(extra)


def run_pytest(args: Iterable[str], *, cwd: Path, env: Mapping[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` in a fresh process in ``cwd`` (its own ``--basetemp`` there). ``env``: the
    whole environment (default: this one as the test left it; conftest's autouse fixture already dropped the
    developer's LFM_*; module-scoped fixtures pass :func:`clean_env`)."""
    cmd = [sys.executable, "-m", "pytest", *args, f"--basetemp={_fresh(cwd / 'basetemp')}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ if env is None else env), cwd=cwd, check=False)


def run_suite(where: Path, modules: Iterable[str], *, report_dir: Path | None = None,
              env: Mapping[str, str] | None = None, timeout: float = 600, **target: Any) -> SuiteRun:
    """Run conformance modules in a fresh pytest process in ``where`` and read back its report; ``target``:
    the keyword arguments of :func:`suite_args`. ``env`` is added to this environment."""
    report = report_dir or _fresh(where / "lfm-report")
    proc = run_pytest(suite_args(modules, report_dir=report, **target), cwd=where,
                      env={**os.environ, **(env or {})}, timeout=timeout)
    data, checks = read_report(report)
    return SuiteRun(ret=proc.returncode, stdout=proc.stdout + "\n" + proc.stderr, checks=checks, report=data,
                    report_dir=report)


def _fresh(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``, ... when a run in the same directory already used it."""
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


class Suite(Protocol):
    """The ``suite`` fixture: ``suite(modules, variants=..., faults=..., ...)`` → :class:`SuiteRun`
    (keyword arguments as :func:`run_suite`)."""

    def __call__(self, modules: Iterable[str] | str, **kwargs: Any) -> SuiteRun:
        """Run the modules (one name or several) and read back the report."""
