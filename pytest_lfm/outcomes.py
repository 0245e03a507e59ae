"""Classify one pytest report phase into the report's check outcome (:data:`~pytest_lfm.reporting.OUTCOMES`)."""

from __future__ import annotations

import pytest

from pytest_lfm.health import health_outcome
from pytest_lfm.reporting import CheckResult

MESSAGE_LIMIT = 2000


def is_outcome_phase(report: pytest.TestReport) -> bool:
    """The phase that decides a check's outcome: the call, a setup that did not pass, a failed teardown."""
    return report.when == "call" or (report.when == "setup" and not report.passed) or \
        (report.when == "teardown" and report.failed)


def classify(report: pytest.TestReport) -> str:
    """passed / failed / error / skipped / xfailed / xpassed (a strict XPASS counts as xpassed)."""
    wasxfail = hasattr(report, "wasxfail")
    if report.passed:
        return "xpassed" if wasxfail else "passed"
    if report.skipped:
        return "xfailed" if wasxfail else "skipped"
    if "XPASS(strict)" in str(report.longrepr):
        return "xpassed"
    return "failed" if report.when == "call" else "error"


def message(report: pytest.TestReport) -> str:
    """The failure's crash line (else the whole repr), the skip reason, or the xfail reason."""
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        return str((crash.message if crash is not None else None) or report.longreprtext)[:MESSAGE_LIMIT]
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    return ""


def check_result(report: pytest.TestReport) -> CheckResult | None:
    """The report's :class:`CheckResult`, or None for phases that decide nothing and for items that
    check no target (plain tests run alongside the suite)."""
    props = dict(report.user_properties)
    if "lfm_target" not in props or not is_outcome_phase(report):
        return None
    extra = {k: v for k, v in props.items() if not k.startswith("lfm_") or k == "lfm_statistic"}
    return CheckResult(
        nodeid=report.nodeid, target=str(props["lfm_target"]), family=str(props.get("lfm_family", "")),
        outcome=health_outcome(report) or classify(report), duration=round(report.duration, 4), message=message(report),
        section=str(props.get("lfm_section", "")), properties=extra)
