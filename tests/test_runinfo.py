"""report.json records what a run covered, and a cell says "Verified" only for the whole, uninterrupted,
unfiltered suite (pytest_lfm.runinfo, pytest_lfm.reporting.cell_status)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fake_server import fake_server, sglang_like

CHECKS = """
import pytest

def test_a(lfm_target):
    pass

def test_b(lfm_target):
    pass

def test_c(lfm_target):
    pass
"""


def _report(pytester: pytest.Pytester, *args: str) -> tuple[Any, dict[str, Any]]:
    with fake_server(sglang_like("LiquidAI/LFM2.5-350M")) as url:
        result = pytester.runpytest_subprocess(f"--lfm-server={url}", "--lfm-report=rep", "-p", "no:cacheprovider",
                                               *args)
    return result, json.loads((pytester.path / "rep" / "report.json").read_text())


@pytest.mark.parametrize("workers", [0, 2])
def test_keyword_selection_is_partial_and_recorded(pytester: pytest.Pytester, workers: int) -> None:
    pytester.makepyfile(test_checks=CHECKS)
    xdist = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
    result, report = _report(pytester, "-k", "test_a or test_b", *xdist, "test_checks.py")
    assert result.ret == 0, result.stdout.str()
    cell = report["cells"][0]
    assert cell["status"] == "Partial (2 of 3 checks)" and cell["complete"] is False, cell["status"]
    run = report["run"]
    assert run["selection"]["keyword"] == "test_a or test_b" and run["selection"]["deselected"] >= 1
    assert run["filtered"] is True and run["interrupted"] is False and run["server_down"] == []
    assert run["selection"]["args"] == ["test_checks.py"]
    md = (pytester.path / "rep" / "matrix.md").read_text()
    assert "Partial (2 of 3 checks)" in md and "Verified" not in md.split("## ")[0].split("| hardware |")[1]
    assert "350M" in result.stdout.str() and "Partial (2 of 3 checks)" in result.stdout.str()


def test_interrupted_run_is_interrupted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks="""
def test_a(lfm_target):
    pass

def test_b(lfm_target):
    raise KeyboardInterrupt

def test_c(lfm_target):
    pass
""")
    result, report = _report(pytester, "-p", "no:xdist", "test_checks.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    cell = report["cells"][0]
    assert report["run"]["interrupted"] is True
    assert cell["status"] == "Interrupted" and cell["complete"] is False


def test_random_weights_never_verified(pytester: pytest.Pytester) -> None:
    """A fixture checkpoint (tiny-lfm2*) is random weights: at best "Passed (random weights)"."""
    from pytest_lfm.reporting import cell_status

    assert cell_status({"passed": 10}, weights="random") == "Passed (random weights)"
    assert cell_status({"passed": 10}, weights="reference") == "Passed (reference server)"
