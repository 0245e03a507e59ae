"""Every fault mode of the reference server is used by at least one fault test (issue 3: each fault mode
turns at least one named check red), and every conformance module is run by some test in tests/."""

from __future__ import annotations

from pathlib import Path

from pytest_lfm.paths import suite_dir
from pytest_lfm.reference.faults import FAULTS

TESTS = Path(__file__).resolve().parent


def test_every_fault_mode_is_exercised() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name)
    unused = [name for name in FAULTS if f'"{name}"' not in text and f"'{name}'" not in text]
    assert not unused, f"fault modes no test uses: {unused}"


def test_every_check_module_has_fault_tests() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in TESTS.glob("test_*.py") if p.name != Path(__file__).name)
    missing = [m.name for m in suite_dir().glob("test_*.py") if m.name not in text]
    assert not missing, f"conformance modules no test of the plugin names: {missing}"
