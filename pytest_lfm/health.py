"""Server health during the run: a target that stops answering is one error, not hundreds of failures.

When a check against a target fails (or a declared known failure "fails as declared") the watchdog asks
the target whether it is still there: a launched process that exited, connections refused or reset, or
``/health`` answering 5xx twice in a row mean it is down. A background poller (every
:data:`POLL_INTERVAL_S` seconds per target and pytest process) notices the same between checks, and a
server that accepts connections but answers nothing for :data:`HANG_DOWN_S` seconds. From then on:

* the check that was running becomes **one error** naming the target, that check, the last check that
  succeeded against the target, what was seen, and the server log tail where there is one (launch mode);
  if the poller noticed first and the running check passed, the next check of that target carries it;
* every later check of that target is reported ``not run: server down`` (outcome ``not_run`` in
  report.json, ``not_run`` in pytest's summary line): neither failed nor a known failure;
* other targets go on; the run exits with :data:`EXIT_SERVER_DOWN`.

Under xdist each worker watches on its own; the controller keeps the first error per target and turns
the other workers' copies into ``not run``. Registered by :mod:`pytest_lfm.plugin` as the ``lfm-health``
plugin.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from pytest_lfm.server.base import Target

#: The exit status of a run in which a server went down (pytest itself uses 0-5; 75 is EX_TEMPFAIL,
#: "try again later", from sysexits.h). An interrupted run (Ctrl-C, 2) keeps pytest's status.
EXIT_SERVER_DOWN = 75
NOT_RUN_PREFIX = "not run: "
NOT_RUN = "not run: server down"
DOWN_PREFIX = "lfm: server down: "
PROPERTY = "lfm_health"
POLL_INTERVAL_S = 3.0
HANG_DOWN_S = 30.0
PROBE_TIMEOUT_S = 5.0
CATEGORY_NOT_RUN = "not_run"


@dataclass
class Down:
    """Why and when a target was declared down."""

    target: str
    seen: str
    during: str | None = None
    reported: bool = False


HEALTH_PLUGIN = "lfm-health"


def _short(nodeid: str) -> str:
    from pytest_lfm.reporting import normalize_nodeid

    return normalize_nodeid(nodeid)


def probe_down(target: Target, tries: int = 2, pause: float = 1.0, hang_s: float | None = None) -> str | None:
    """What shows that ``target`` is down, or None while it answers.

    Down: a launched process that is gone; connections refused or reset, or ``/health`` answering 5xx, on
    every one of ``tries`` attempts ``pause`` seconds apart. A timeout alone is not down (a busy server is
    slow, not gone) unless ``hang_s`` is given and every attempt timed out (the poller's long view)."""
    if target.is_engine:
        return None
    if target.is_launched and target.pid is not None:
        from pytest_lfm.server.launch import pid_alive

        if not pid_alive(target.pid):
            return f"the launched SGLang process (pid {target.pid}) has exited"
    seen: list[str] = []
    headers = {"Authorization": f"Bearer {target.api_key.get()}"} if target.api_key else {}
    for attempt in range(tries):
        if attempt:
            time.sleep(pause)
        try:
            resp = httpx.get(target.base_url + "/health", headers=headers, timeout=PROBE_TIMEOUT_S)
        except httpx.TimeoutException as exc:
            if hang_s is None:  # slow, not gone: the poller's long view decides about a hang
                return None
            seen.append(f"GET /health: {type(exc).__name__} after {PROBE_TIMEOUT_S:g} s")
            continue
        except httpx.HTTPError as exc:
            seen.append(f"GET /health: {type(exc).__name__}: {exc}")
            continue
        if resp.status_code < 500:
            return None
        seen.append(f"GET /health: HTTP {resp.status_code}")
    return "; ".join(dict.fromkeys(seen))


class _Poller(threading.Thread):
    """Polls one target until stopped; marks it down through the watchdog."""

    def __init__(self, watchdog: Watchdog, target: Target) -> None:
        super().__init__(name=f"lfm-health-{target.id}", daemon=True)
        self.watchdog = watchdog
        self.target = target
        self.stopped = threading.Event()

    def run(self) -> None:
        hanging_since: float | None = None
        while not self.stopped.wait(POLL_INTERVAL_S):
            if self.target.id in self.watchdog.down:
                return
            seen = probe_down(self.target, tries=2, pause=1.0, hang_s=HANG_DOWN_S)
            if seen is None:
                hanging_since = None
                continue
            if "Timeout" in seen and "exited" not in seen and all("Timeout" in s for s in seen.split("; ")):
                hanging_since = hanging_since or time.monotonic()
                if time.monotonic() - hanging_since < HANG_DOWN_S:
                    continue
                seen = f"no answer to GET /health for {HANG_DOWN_S:g} s ({seen})"
            if self.stopped.is_set():
                return
            self.watchdog.mark_down(self.target.id, seen)
            return


class Watchdog:
    """Per pytest process: which targets are down, the check running and the last that succeeded."""

    def __init__(self, poll: bool = True) -> None:
        self.poll = poll
        self.down: dict[str, Down] = {}
        self.last_ok: dict[str, str] = {}
        self.running: dict[str, str] = {}
        self.pollers: dict[str, _Poller] = {}
        self.lock = threading.Lock()
        self.seen_down: list[str] = []
        """Controller (or a run without xdist): targets for which an error was shown, in order."""

    # -- state

    def mark_down(self, target_id: str, seen: str) -> None:
        """Record that a target is down (first cause wins)."""
        with self.lock:
            if target_id not in self.down:
                self.down[target_id] = Down(target_id, seen, during=self.running.get(target_id))

    def watch(self, target: Target) -> None:
        """Start the background poller for a target (once per process)."""
        if not self.poll or target.is_engine or target.id in self.pollers:
            return
        poller = _Poller(self, target)
        self.pollers[target.id] = poller
        poller.start()

    def stop(self) -> None:
        """Stop every poller."""
        for p in self.pollers.values():
            p.stopped.set()
        self.pollers.clear()

    # -- messages

    def error_text(self, target: Target, nodeid: str, api_key: str | None = None) -> str:
        """The one error shown for a target that went down."""
        down = self.down[target.id]
        last = self.last_ok.get(target.id)
        lines = [
            f"{DOWN_PREFIX}{target.id} ({target.base_url}) stopped answering while {_short(nodeid)} was running",
            f"  seen: {down.seen}",
            f"  last check that succeeded against {target.id}: {_short(last) if last else 'none'}",
            f"  the remaining checks against {target.id} are reported '{NOT_RUN}'; other targets go on",
            f"To fix: find out why the server stopped (its log, dmesg for the OOM killer), restart it and run "
            f"again; pytest exits with status {EXIT_SERVER_DOWN} when a server went down during the run",
        ]
        log = _log_tail(target, api_key)
        if log:
            lines += ["", log]
        return "\n".join(lines)


def _log_tail(target: Target, api_key: str | None) -> str | None:
    if not target.is_launched:
        return None
    from pytest_lfm.server.launch_support import log_section

    return log_section(target, api_key)


def _target_of(item: pytest.Item) -> Target | None:
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("lfm_target") if callspec else None
    return target if target is not None and hasattr(target, "base_url") else None


def _props(report: pytest.TestReport) -> dict[str, Any]:
    return dict(report.user_properties)


def is_not_run(report: pytest.TestReport) -> bool:
    """A check the watchdog did not run because its server was down."""
    return _props(report).get(PROPERTY) == "not_run"


def is_down_error(report: pytest.TestReport) -> bool:
    """The one error reported for a target that went down."""
    return _props(report).get(PROPERTY) == "down"


class HealthPlugin:
    """The hooks (registered as ``lfm-health``)."""

    def __init__(self, api_key: str | None = None, poll: bool = True) -> None:
        self.watchdog = Watchdog(poll=poll)
        self.api_key = api_key

    @property
    def server_down(self) -> list[str]:
        """Targets that went down during the run (as this process saw the reports)."""
        return list(self.watchdog.seen_down)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        target = _target_of(item)
        if target is None:
            return
        wd = self.watchdog
        wd.watch(target)
        down = wd.down.get(target.id)
        if down is None:
            wd.running[target.id] = item.nodeid
            return
        if not down.reported:  # the poller noticed between checks: this check carries the one error
            down.reported = True
            item.user_properties.append((PROPERTY, "down"))
            pytest.fail(wd.error_text(target, down.during or item.nodeid, self.api_key), pytrace=False)
        item.user_properties.append((PROPERTY, "not_run"))
        pytest.skip(f"{NOT_RUN}: {target.id} stopped answering ({down.seen})")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        target = _target_of(item)
        if target is None or is_not_run(report) or is_down_error(report):
            return report
        wd = self.watchdog
        if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):
            wd.last_ok[target.id] = item.nodeid
        suspicious = report.failed or (report.skipped and hasattr(report, "wasxfail"))
        if not suspicious or (target.id not in wd.down and target.is_engine):
            return report
        if target.id not in wd.down:
            seen = probe_down(target)
            if seen is None:
                return report
            wd.mark_down(target.id, seen)
        down = wd.down[target.id]
        if down.reported:
            report.outcome = "skipped"
            report.longrepr = (str(item.path), 0, f"{NOT_RUN}: {target.id} stopped answering ({down.seen})")
            report.user_properties.append((PROPERTY, "not_run"))
        else:
            down.reported = True
            report.outcome = "failed"
            report.longrepr = wd.error_text(target, item.nodeid, self.api_key)
            report.sections = [s for s in report.sections if s[0] != "lfm server log"]  # the error carries it
            report.user_properties.append((PROPERTY, "down"))
        if hasattr(report, "wasxfail"):
            del report.wasxfail  # a known failure that met a dead server is not a known failure
        return report

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Keep one error per target across xdist workers; later copies become not run."""
        if not is_down_error(report):
            return
        target = str(_props(report).get("lfm_target", report.nodeid))
        if target in self.watchdog.seen_down:
            report.outcome = "skipped"
            text = str(report.longrepr).splitlines()
            seen = next((ln.strip()[len("seen: "):] for ln in text if ln.strip().startswith("seen: ")), "")
            report.longrepr = (report.nodeid.split("::")[0], 0, f"{NOT_RUN}: {target} stopped answering ({seen})")
            report.user_properties = [p for p in report.user_properties if p[0] != PROPERTY] + [(PROPERTY, "not_run")]
        else:
            self.watchdog.seen_down.append(target)

    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config
                                 ) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
        if is_not_run(report) and report.skipped:
            return CATEGORY_NOT_RUN, "n", ("NOT RUN", {"yellow": True})
        if is_down_error(report) and report.failed:
            return "error", "E", ("ERROR", {"red": True})
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.watchdog.stop()
        if self.server_down and int(exitstatus) != int(pytest.ExitCode.INTERRUPTED) \
                and not hasattr(session.config, "workerinput"):
            session.exitstatus = EXIT_SERVER_DOWN


def health_outcome(report: pytest.TestReport) -> str | None:
    """report.json's outcome for the watchdog's reports: ``not_run``, ``error``, or None for others."""
    if is_not_run(report):
        return "not_run"
    if is_down_error(report):
        return "error"
    return None
