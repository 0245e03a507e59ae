"""The reference server's fault modes are named hooks at defined points (no inline fault branches)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_lfm.reference import (
    fault_hooks,  # noqa: F401  (registers the hooks)
    hooks,
)
from pytest_lfm.reference.faults import FAULTS, Faults
from pytest_lfm.reference.parsers import ParserBackend, ProjectParsers

REFERENCE = Path(__file__).resolve().parents[1] / "pytest_lfm" / "reference"


def test_every_fault_mode_has_a_hook() -> None:
    registered = hooks.registered()
    missing = sorted(set(FAULTS) - set(registered))
    assert not missing, f"fault modes with no hook in fault_hooks.py: {missing}"


def test_serving_code_names_no_fault() -> None:
    """Only faults.py and fault_hooks.py may name a fault mode; the serving code calls hook points."""
    names = "|".join(re.escape(n) for n in FAULTS)
    pattern = re.compile(rf"[\"']({names})[\"']")
    offenders = []
    for path in sorted(REFERENCE.glob("*.py")):
        if path.name in {"faults.py", "fault_hooks.py"}:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "inline fault branches:\n" + "\n".join(offenders)


def test_hook_registration_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown fault mode"):
        hooks.fault_hook("no_such_fault", hooks.VALIDATE)
    with pytest.raises(ValueError, match="unknown hook point"):
        hooks.fault_hook("no_validation", "no.such.point")


def test_hooks_apply_only_active_faults_in_order() -> None:
    both = hooks.FaultHooks(Faults(["ignore_seed", "seed_constant"]))
    assert both(hooks.SEED, 5) is None  # ignore_seed wins over seed_constant
    assert hooks.FaultHooks(Faults(["seed_constant"]))(hooks.SEED, 5) == 0
    assert hooks.FaultHooks(Faults())(hooks.SEED, 5) == 5
    assert not hooks.FaultHooks(Faults()).active_at(hooks.VALIDATE)


def test_project_parsers_satisfy_the_protocol() -> None:
    assert isinstance(ProjectParsers(), ParserBackend)
