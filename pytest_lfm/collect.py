"""Collect what the report needs during a run: one :class:`TargetInfo` per cell and one :class:`CheckResult`
per check outcome; write the report and the terminal summary at the end.

:class:`ResultCollector` is registered as a plugin object per session (``pytest_configure``), so the
``pytest_runtest_logreport`` hook, which gets no config argument, appends to that session's own list: no
module-level state. On an xdist run the controller receives every worker's reports and writes the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_lfm.config import LfmConfig
from pytest_lfm.health import HEALTH_PLUGIN
from pytest_lfm.outcomes import check_result
from pytest_lfm.reporting import CheckResult, TargetInfo, build_report, write_report_files
from pytest_lfm.runinfo import RUNINFO_PLUGIN, RunInfo, hardware_confirmed, weights_of
from pytest_lfm.server.base import Target
from pytest_lfm.targets import planned_ids
from pytest_lfm.variants import get_variant

PLUGIN_NAME = "lfm-results"


class ResultCollector:
    """The per-session sink of check results (a pytest plugin object)."""

    def __init__(self, results: list[CheckResult]) -> None:
        self.results = results

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect each check's outcome (on the xdist controller, the workers' reports arrive here)."""
        result = check_result(report)
        if result is not None:
            self.results.append(result)


def info_of(t: Target) -> TargetInfo:
    """The report's description of one target."""
    return TargetInfo(id=t.id, variant=t.variant.id, hardware=t.hardware, sglang_version=t.version,
                      base_url=t.base_url, mode=t.kind, server_args=dict(t.server_args), weights=weights_of(t),
                      hardware_confirmed=hardware_confirmed(t))


def target_infos(cfg: LfmConfig, targets: list[Target], controller: bool) -> list[TargetInfo]:
    """One info per target; the xdist controller, which starts no reference servers (each worker starts its
    own), lists the planned reference cells too."""
    infos = [info_of(t) for t in targets]
    if controller and cfg.uses_reference:
        known = {i.id for i in infos}
        for tid in planned_ids(cfg):
            if tid not in known:
                v = get_variant(tid)
                infos.append(TargetInfo(id=v.id, variant=v.id, hardware=cfg.hardware or "unknown",
                                        sglang_version=cfg.reference_version, base_url="(one per xdist worker)",
                                        mode="reference"))
    return infos


def header_lines(cfg: LfmConfig | None, infos: list[TargetInfo]) -> list[str]:
    """``pytest_report_header``: one line per target (URL, variant, SGLang version, hardware)."""
    if cfg is None or not cfg.has_target:
        return ["lfm: no target (pass --lfm-server=HOST:PORT or --lfm-server=reference)"]
    lines = [f"lfm: {i.id}: {i.base_url} variant={i.variant} sglang={i.sglang_version or 'unknown'} "
             f"hardware={i.hardware} mode={i.mode}"
             # the chunk size the streaming checks test (SGLang's --stream-interval, from /server_info)
             + (f" stream_interval={i.server_args['stream_interval']}" if "stream_interval" in i.server_args else "")
             for i in infos]
    if cfg.faults:
        lines.append(f"lfm: reference fault modes: {', '.join(cfg.faults)}")
    return lines


def run_info(config: pytest.Config) -> RunInfo | None:
    """The run's selection, interruption and servers that went down (:mod:`pytest_lfm.runinfo`)."""
    plugin = config.pluginmanager.get_plugin(RUNINFO_PLUGIN)
    if plugin is None:
        return None
    health = config.pluginmanager.get_plugin(HEALTH_PLUGIN)
    plugin.info.server_down = health.server_down if health is not None else []
    info: RunInfo = plugin.info
    return info


def build(infos: list[TargetInfo], results: list[CheckResult], run: RunInfo | None) -> dict[str, Any]:
    """The report dict of this run."""
    return build_report(infos, results, run)


def write(report_dir: Path, report: dict[str, Any], reporter: Any | None) -> Path:
    """Write report.json, matrix.md and matrix.html and say where."""
    path = write_report_files(report_dir, report)
    if reporter is not None:
        reporter.write_line(f"lfm: report written to {path}, {path.with_name('matrix.md')} and "
                            f"{path.with_name('matrix.html')}")
    return path
