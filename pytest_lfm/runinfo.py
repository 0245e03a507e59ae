"""What a run covered: the selection (``-k``, ``-m``, paths, ``--lf``), interruption, and per target how
many checks were collected and selected. The report uses it to say "Verified" only for a cell whose whole
suite ran, uninterrupted and unfiltered, against real weights on confirmed hardware.

Registered by :mod:`pytest_lfm.plugin` as the ``lfm-runinfo`` plugin. Under xdist each worker collects
and sends its counts to the controller (``workeroutput``); the controller records interruption.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_lfm.server.base import Target

_OUTPUT_KEY = "lfm_runinfo"


@dataclass
class Selection:
    """How the user narrowed the run."""

    keyword: str | None = None
    markexpr: str | None = None
    args: list[str] = field(default_factory=list)
    last_failed: bool = False
    deselected: int = 0

    @property
    def paths_filtered(self) -> bool:
        """Explicit paths or node ids other than the whole conformance suite."""
        from pytest_lfm.paths import suite_dir

        suite = suite_dir().resolve()
        for arg in self.args:
            path, sep, _ = arg.partition("::")
            if sep:
                return True
            try:
                if Path(path).resolve() != suite:
                    return True
            except OSError:
                return True
        return False

    @property
    def filtered(self) -> bool:
        """Anything that keeps part of the suite from running."""
        return bool(self.keyword or self.markexpr or self.last_failed or self.deselected or self.paths_filtered)

    def as_dict(self) -> dict[str, Any]:
        """report.json's ``run.selection``."""
        return {"keyword": self.keyword, "markexpr": self.markexpr, "args": list(self.args),
                "last_failed": self.last_failed, "deselected": self.deselected}


@dataclass
class RunInfo:
    """The run as a whole."""

    selection: Selection = field(default_factory=Selection)
    interrupted: bool = False
    stopped_early: bool = False
    """-x / --maxfail ended the run before every selected check ran."""
    collected: Counter[str] = field(default_factory=Counter)
    """Checks per target before deselection (-k, -m, --lf)."""
    selected: Counter[str] = field(default_factory=Counter)
    """Checks per target that were to run."""
    server_down: list[str] = field(default_factory=list)

    @property
    def filtered(self) -> bool:
        """The selection kept part of the suite from running."""
        return self.selection.filtered

    def as_dict(self) -> dict[str, Any]:
        """report.json's top-level ``run``."""
        return {"selection": self.selection.as_dict(), "filtered": self.filtered, "interrupted": self.interrupted,
                "server_down": list(self.server_down)}


RUNINFO_PLUGIN = "lfm-runinfo"


def _target_id(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("lfm_target") if callspec else None
    return str(target.id) if target is not None and hasattr(target, "id") else None


def _count(items: list[pytest.Item]) -> Counter[str]:
    return Counter(t for t in (_target_id(i) for i in items) if t is not None)


class RunInfoPlugin:
    """The hooks (registered as ``lfm-runinfo``)."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.option
        self.info = RunInfo(selection=Selection(
            keyword=getattr(opt, "keyword", "") or None, markexpr=getattr(opt, "markexpr", "") or None,
            args=[str(a) for a in config.args] if config.args_source == pytest.Config.ArgsSource.ARGS else [],
            last_failed=bool(getattr(opt, "lf", False))))

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.info.collected = _count(items)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.info.selection.deselected += len(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.info.selected = _count(session.items)

    def pytest_keyboard_interrupt(self) -> None:
        self.info.interrupted = True

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: take the counts a worker collected (every worker collects the same items)."""
        data = getattr(node, "workeroutput", {}).get(_OUTPUT_KEY)
        if not data:
            return
        info = self.info
        for key in ("collected", "selected"):
            mine: Counter[str] = getattr(info, key)
            for target, n in data[key].items():
                mine[target] = max(mine[target], int(n))
        info.selection.deselected = max(info.selection.deselected, int(data["deselected"]))
        info.selection.last_failed = info.selection.last_failed or bool(data["last_failed"])
        if data.get("args") and not info.selection.args:
            info.selection.args = list(data["args"])

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if int(exitstatus) == int(pytest.ExitCode.INTERRUPTED):
            self.info.interrupted = True
        if session.shouldstop or session.shouldfail:
            self.info.stopped_early = True
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[_OUTPUT_KEY] = {"collected": dict(self.info.collected),
                                         "selected": dict(self.info.selected),
                                         "deselected": self.info.selection.deselected,
                                         "last_failed": self.info.selection.last_failed,
                                         "args": self.info.selection.args}


# ------------------------------------------------------------------------------------------ per target


def weights_of(target: Target) -> str:
    """``"reference"`` (the bundled test double), ``"random"`` (a fixture checkpoint) or ``"real"``."""
    if target.is_reference:
        return "reference"
    return "real" if target.real_weights else "random"


@functools.lru_cache(maxsize=1)
def _local_gpu() -> str:
    from pytest_lfm.hardware import detect_local_gpu

    return detect_local_gpu()[0]


def _reported_gpu(server_args: Any) -> str | None:
    """A GPU named in what the server said about itself (``gpu_name``/``device_name``-like fields)."""
    from pytest_lfm.hardware import UNKNOWN, match_gpu_name

    if not isinstance(server_args, dict):
        return None
    for key, value in server_args.items():
        if isinstance(value, str) and ("gpu" in str(key).lower() or "device_name" in str(key).lower()):
            found = match_gpu_name(value)
            if found != UNKNOWN:
                return found
    return None


def hardware_confirmed(target: Target) -> bool:
    """The declared hardware is the one the checks ran on: the server names that GPU, or it runs on this
    host (launched, in-process, or attached on localhost) and nvidia-smi shows that GPU."""
    from pytest_lfm.hardware import UNKNOWN

    if target.hardware == UNKNOWN or target.is_reference:
        return False
    reported = _reported_gpu(dict(target.server_args))
    if reported is not None:
        return reported == target.hardware
    local = target.kind in ("launch", "engine") or target.base_url.split("//")[-1].startswith(
        ("localhost", "127.", "[::1]", "0.0.0.0"))
    return local and _local_gpu() == target.hardware


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The terminal summary: one line per cell with its status and counts, then what the run covered."""
    lines = []
    for cell in report["cells"]:
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in cell["counts"].items() if v)
        lines.append(f"{cell['id']:16s} {cell['status']}: {counts or 'no checks'}")
    run = report.get("run")
    if run:
        from pytest_lfm.reporting import _run_text

        lines.append(_run_text(run))
    return lines
