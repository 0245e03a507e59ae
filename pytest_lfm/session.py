"""What one pytest session of pytest-lfm holds, and the xdist facts the hooks ask about.

Everything lives in ``config.stash`` under the keys below (no module globals): the resolved configuration
(resolved once, in ``pytest_configure``), the targets and the processes this run owns, the report's target
descriptions and the collected check results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from pytest_lfm.config import LfmConfig, resolve
from pytest_lfm.errors import LfmError
from pytest_lfm.reporting import CheckResult, TargetInfo

if TYPE_CHECKING:
    from pytest_lfm.targets import TargetSet  # noqa: F401 (named in the StashKey annotation below)

CONFIG_KEY = pytest.StashKey[LfmConfig]()
TARGETS_KEY = pytest.StashKey["TargetSet"]()
INFOS_KEY = pytest.StashKey[list[TargetInfo]]()
RESULTS_KEY = pytest.StashKey[list[CheckResult]]()
REPORT_KEY = pytest.StashKey[dict[str, Any]]()
"""The report dict built at session end (written to --lfm-report, read by the terminal and step summaries)."""

XDIST_ENGINE = """--lfm-engine runs one GPU engine inside the pytest process, and xdist (-n / --dist) would start
several pytest processes that cannot share it.
To fix: run engine mode without -n (or with -n 0); to spread checks over workers, serve the model with
--lfm-launch or --lfm-server instead."""


def resolve_config(config: pytest.Config) -> LfmConfig:
    """The ``--lfm-*`` configuration (CLI > env > ini > default), resolved once per session and stashed;
    a bad value is a :class:`pytest.UsageError` that says what to do."""
    cfg = config.stash.get(CONFIG_KEY, None)
    if cfg is not None:
        return cfg
    try:
        cfg = resolve(lambda dest: config.getoption(dest), lambda key: config.getini(key))
    except LfmError as exc:
        raise pytest.UsageError(exc.render()) from None
    config.stash[CONFIG_KEY] = cfg
    return cfg


def check_combination(config: pytest.Config, cfg: LfmConfig) -> None:
    """Refuse what the configuration cannot do under this run's plugins (engine mode under xdist). Called
    from ``pytest_configure``: xdist settles ``-n`` into ``--dist`` in its own ``pytest_cmdline_main``."""
    if cfg.engine and uses_xdist(config):
        raise pytest.UsageError(XDIST_ENGINE)


def is_worker(config: pytest.Config) -> bool:
    """True on an xdist worker."""
    return hasattr(config, "workerinput")


def is_xdist_controller(config: pytest.Config) -> bool:
    """True on the xdist controller (it collects reports; the workers run the checks)."""
    return bool(config.pluginmanager.has_plugin("dsession")) and not is_worker(config)


def uses_xdist(config: pytest.Config) -> bool:
    """True when xdist distributes this run (``-n N`` with N > 0, ``--dist``) or this is one of its workers."""
    return is_worker(config) or getattr(config.option, "dist", "no") not in ("no", None)
