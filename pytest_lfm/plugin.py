"""pytest-lfm's hooks and fixtures. Logic lives in importable modules; this file only wires them.

Registered through the ``pytest11`` entry point ``lfm``. Option precedence: command line > environment
> ini > default (:mod:`pytest_lfm.config`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_lfm import options as o
from pytest_lfm.config import LfmConfig, resolve
from pytest_lfm.engine import HTTP_SKIP
from pytest_lfm.errors import LfmError
from pytest_lfm.markers import MARKERS, MarkerError, skip_reason, validate
from pytest_lfm.reporting import CheckResult, TargetInfo, write_report

if TYPE_CHECKING:
    import openai

    from pytest_lfm.client import LfmHttp
    from pytest_lfm.engine import EngineHandle
    from pytest_lfm.server.base import Target
    from pytest_lfm.targets import TargetSet  # noqa: F401 (named in the StashKey annotation below)
    from pytest_lfm.variants import Variant

CONFIG_KEY = pytest.StashKey["LfmConfig"]()
TARGETS_KEY = pytest.StashKey["TargetSet"]()
INFOS_KEY = pytest.StashKey[list[TargetInfo]]()
RESULTS_KEY = pytest.StashKey[list[CheckResult]]()

NO_TARGET = """the conformance checks need a server to check, and none was given.
  --lfm-server=HOST:PORT        attach to a running SGLang server (e.g. localhost:30000); repeat as
                                VARIANT=URL to check several variants in one run
  --lfm-server=reference        start the bundled reference server (no GPU needed), one per variant
                                selected with --lfm-variant (default: all nine)
  --lfm-launch                  start SGLang per selected variant from the verified recipe for this GPU
                                (--lfm-hardware, --lfm-framing=python|docker, --lfm-model-path VARIANT=PATH);
                                --lfm-print-recipe prints those commands and exits
  --lfm-engine                  run SGLang's offline sgl.Engine in this process, one per variant given with
                                --lfm-model-path VARIANT=PATH (checks that need HTTP skip)
Example: pytest --lfm-server=reference --lfm-report=lfm-report"""
_SECTION = re.compile(r"§\s?\d+(?:\.\d+)*")
HTTP_FIXTURES = ("lfm_http", "lfm_client", "lfm_chat")
ENGINE_SKIP = "needs --lfm-engine"
XDIST_ENGINE = """--lfm-engine runs one GPU engine inside the pytest process, and xdist (-n / --dist) would start
several pytest processes that cannot share it.
To fix: run engine mode without -n (or with -n 0); to spread checks over workers, serve the model with
--lfm-launch or --lfm-server instead."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register every ``--lfm-*`` option and its ini twin."""
    group = parser.getgroup("lfm", "LFM2.5 on SGLang conformance (pytest-lfm)")
    for spec in o.ALL_OPTIONS:
        if spec.boolean:
            group.addoption(spec.flag, dest=spec.dest, default=None, action="store_true",
                            help=f"{spec.help} [env {spec.env}; ini {spec.ini}]")
            parser.addini(spec.ini, help=spec.help, type="bool", default=False)
            continue
        group.addoption(spec.flag, dest=spec.dest, default=None, metavar=spec.metavar,
                        action="append" if spec.multiple else "store",
                        help=f"{spec.help} [env {spec.env}; ini {spec.ini}]")
        if spec.multiple:
            parser.addini(spec.ini, help=spec.help, type="linelist", default=None)
        else:
            parser.addini(spec.ini, help=spec.help, type="string", default=None)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--lfm-print-recipe``: print the SGLang launch commands of the selection and exit."""
    try:
        cfg = resolve(lambda dest: config.getoption(dest), lambda key: config.getini(key))
        if not cfg.print_recipe:
            return None
        from pytest_lfm.server.launch_support import render_recipes

        print(render_recipes(cfg), end="")
    except LfmError as exc:
        raise pytest.UsageError(exc.render()) from None
    return 0


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, resolve the configuration once, and point a bare run at the shipped suite."""
    for text in MARKERS.values():
        config.addinivalue_line("markers", text)
    try:
        cfg = resolve(lambda dest: config.getoption(dest), lambda key: config.getini(key))
    except LfmError as exc:
        raise pytest.UsageError(exc.render()) from None
    if cfg.engine and _uses_xdist(config):
        raise pytest.UsageError(XDIST_ENGINE)
    config.stash[CONFIG_KEY] = cfg
    config.stash[RESULTS_KEY] = []
    if cfg.has_target and config.args_source != pytest.Config.ArgsSource.ARGS:
        from pytest_lfm.paths import suite_dir

        config.args = [str(suite_dir())]


def _is_xdist_controller(config: pytest.Config) -> bool:
    return bool(config.pluginmanager.has_plugin("dsession")) and not hasattr(config, "workerinput")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _uses_xdist(config: pytest.Config) -> bool:
    """True when xdist distributes this run (``-n N`` with N > 0, ``--dist``) or this is one of its workers."""
    return _is_worker(config) or getattr(config.option, "dist", "no") not in ("no", None)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Probe attached servers (one clear error on failure) and start reference servers."""
    from pytest_lfm.targets import TargetSet, build_targets, planned_ids

    config = session.config
    cfg = config.stash[CONFIG_KEY]
    config.stash[TARGETS_KEY] = TargetSet()
    config.stash[INFOS_KEY] = []
    if not cfg.has_target:
        return
    controller = _is_xdist_controller(config)
    launched = config.workerinput.get("lfm_launched") if _is_worker(config) else None  # type: ignore[attr-defined]
    if (cfg.launch and launched is None) or cfg.engine:
        from pytest_lfm.server.process import install_sigterm_handler

        install_sigterm_handler()  # a CI timeout's SIGTERM tears the servers down like Ctrl-C
    try:
        targets = build_targets(cfg, start_reference=not controller, launched=launched)
    except LfmError as exc:
        raise pytest.UsageError(exc.render()) from None
    config.stash[TARGETS_KEY] = targets
    infos = [_info(t) for t in targets.targets]
    if controller and cfg.uses_reference:
        from pytest_lfm.variants import get_variant

        known = {i.id for i in infos}
        for tid in planned_ids(cfg):
            if tid not in known:
                v = get_variant(tid)
                infos.append(TargetInfo(id=v.id, variant=v.id, hardware=cfg.hardware or "unknown",
                                        sglang_version=cfg.reference_version, base_url="(one per xdist worker)",
                                        mode="reference"))
    config.stash[INFOS_KEY] = infos


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the launched servers to each worker (they attach; GPUs allow no copies)."""
    targets = node.config.stash.get(TARGETS_KEY, None)
    if targets is not None and targets.launched:
        node.workerinput["lfm_launched"] = targets.launched_info()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the launched server's log tail (section "lfm server log") to failing reports only."""
    report = yield
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("lfm_target") if callspec else None
    if report.failed and target is not None and getattr(target, "is_launched", False):
        from pytest_lfm.server.launch_support import SECTION, log_section

        cfg = item.config.stash[CONFIG_KEY]
        text = log_section(target, cfg.api_key.get() if cfg.api_key else None)
        if text:
            report.sections.append((SECTION, text))
    return report


def _info(t: Target) -> TargetInfo:
    return TargetInfo(id=t.id, variant=t.variant.id, hardware=t.hardware, sglang_version=t.version,
                      base_url=t.base_url, mode=t.kind, server_args=dict(t.server_args))


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line per target: URL, variant, SGLang version, hardware."""
    cfg = config.stash.get(CONFIG_KEY, None)
    if cfg is None or not cfg.has_target:
        return ["lfm: no target (pass --lfm-server=HOST:PORT or --lfm-server=reference)"]
    infos = config.stash.get(INFOS_KEY, [])
    lines = [f"lfm: {i.id}: {i.base_url} variant={i.variant} sglang={i.sglang_version or 'unknown'} "
             f"hardware={i.hardware} mode={i.mode}"
             # the chunk size the streaming checks test (SGLang's --stream-interval, from /server_info)
             + (f" stream_interval={i.server_args['stream_interval']}" if "stream_interval" in i.server_args else "")
             for i in infos]
    if cfg.faults:
        lines.append(f"lfm: reference fault modes: {', '.join(cfg.faults)}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The target axis: one session-scoped parameter per server under test."""
    if "lfm_target" not in metafunc.fixturenames:
        return
    targets = metafunc.config.stash[TARGETS_KEY].targets
    if targets:
        metafunc.parametrize("lfm_target", targets, ids=[t.id for t in targets], indirect=True, scope="session")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Apply markers, case version gates and known failures per target; tag items for the report."""
    from pytest_lfm.cases import Case

    uses_target = [i for i in items if "lfm_target" in getattr(i, "fixturenames", ())]
    if uses_target and not config.stash[TARGETS_KEY].targets:
        raise pytest.UsageError(NO_TARGET)
    for item in uses_target:
        callspec = getattr(item, "callspec", None)
        target: Target | None = callspec.params.get("lfm_target") if callspec else None
        if target is None:
            continue
        section = ""
        _engine_mode_skips(item, target)
        for mark in item.iter_markers():
            if mark.name in MARKERS:
                try:
                    validate(mark.name, mark.args, dict(mark.kwargs))
                except MarkerError as exc:
                    raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
                reason = skip_reason(mark.name, mark.args, target)
                if reason:
                    item.add_marker(pytest.mark.skip(reason=reason))
        case = callspec.params.get("case") if callspec else None
        if isinstance(case, Case):
            section = case.section
            if case.sglang and not target.version_matches(case.sglang):
                item.add_marker(pytest.mark.skip(
                    reason=f"case {case.id} applies to SGLang {case.sglang}; server reports {target.version}"))
            elif case.xfail and target.version_matches(case.xfail.sglang):
                item.add_marker(pytest.mark.xfail(strict=True, reason=f"{case.xfail.reason} ({case.xfail.link})"))
        from pytest_lfm.expectations import known_failure_mark

        known = known_failure_mark(item, target)  # conformance/expectations/known_failures.toml
        if known is not None:
            item.add_marker(known)
        if not section:
            doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
            found = _SECTION.findall(doc)
            section = ", ".join(dict.fromkeys(s.replace(" ", "") for s in found))
        item.user_properties += [("lfm_target", target.id), ("lfm_variant", target.variant.id),
                                 ("lfm_sglang_version", target.version or "unknown"),
                                 ("lfm_hardware", target.hardware),
                                 ("lfm_family", _module_name(item)),
                                 ("lfm_section", section)]


def _engine_mode_skips(item: pytest.Item, target: Target) -> None:
    """Engine targets have no HTTP API: checks using an HTTP fixture skip there; engine checks skip elsewhere."""
    names = getattr(item, "fixturenames", ())
    if target.is_engine:
        used = [f for f in HTTP_FIXTURES if f in names]
        if used:
            item.add_marker(pytest.mark.skip(reason=f"{HTTP_SKIP} (uses {', '.join(used)})"))
    elif "lfm_engine" in names:
        item.add_marker(pytest.mark.skip(reason=f"{ENGINE_SKIP}; {target.id} is a {target.kind} target"))


def _module_name(item: pytest.Item) -> str:
    module = getattr(item, "module", None)
    return module.__name__.rsplit(".", 1)[-1] if module is not None else ""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect each check's outcome for the report (on the xdist controller, reports arrive here)."""
    props = dict(report.user_properties)
    if "lfm_target" not in props:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed) or \
            (report.when == "teardown" and report.failed):
        wasxfail = hasattr(report, "wasxfail")
        if report.passed:
            outcome = "xpassed" if wasxfail else "passed"
        elif report.skipped:
            outcome = "xfailed" if wasxfail else "skipped"
        else:
            outcome = "failed" if report.when == "call" else "error"
            if "XPASS(strict)" in str(report.longrepr):
                outcome = "xpassed"
        message = ""
        if report.failed:
            message = str((getattr(report.longrepr, "reprcrash", None) and report.longrepr.reprcrash.message)  # type: ignore[union-attr]
                          or report.longreprtext)[:2000]
        elif report.skipped and isinstance(report.longrepr, tuple):
            message = str(report.longrepr[2])
        elif wasxfail:
            message = str(report.wasxfail)
        extra = {k: v for k, v in props.items() if not k.startswith("lfm_") or k == "lfm_statistic"}
        _results(report).append(CheckResult(
            nodeid=report.nodeid, target=str(props["lfm_target"]), family=str(props.get("lfm_family", "")),
            outcome=outcome, duration=round(report.duration, 4), message=message,
            section=str(props.get("lfm_section", "")), properties=extra))


_SESSION_CONFIG: list[pytest.Config] = []


def _results(report: pytest.TestReport) -> list[CheckResult]:
    return _SESSION_CONFIG[-1].stash[RESULTS_KEY] if _SESSION_CONFIG else []


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """Remember the config for the logreport hook (which gets no config argument)."""
    _SESSION_CONFIG.append(session.config)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the report (not on xdist workers) and stop the servers this run started."""
    config = session.config
    cfg = config.stash.get(CONFIG_KEY, None)
    try:
        if cfg is not None and cfg.report_dir is not None and not _is_worker(config):
            infos: list[TargetInfo] = config.stash.get(INFOS_KEY, [])
            results: list[CheckResult] = config.stash.get(RESULTS_KEY, [])
            path = write_report(cfg.report_dir, infos, results)
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(f"lfm: report written to {path}, {path.with_name('matrix.md')} and "
                                    f"{path.with_name('matrix.html')}")
    finally:
        targets = config.stash.get(TARGETS_KEY, None)
        if targets is not None:
            targets.stop()
        if cfg is not None and (cfg.launch or cfg.engine):
            from pytest_lfm.server.process import restore_sigterm_handler

            restore_sigterm_handler()
        if _SESSION_CONFIG and _SESSION_CONFIG[-1] is config:
            _SESSION_CONFIG.pop()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line per cell: Verified / Failing / Not run with counts."""
    from pytest_lfm.reporting import OUTCOMES, cell_status

    results = config.stash.get(RESULTS_KEY, [])
    infos = config.stash.get(INFOS_KEY, [])
    if not results or _is_worker(config):
        return
    terminalreporter.section("lfm conformance")
    for info in infos:
        mine = [r for r in results if r.target == info.id]
        counts = {k: sum(1 for r in mine if r.outcome == k) for k in OUTCOMES}
        summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        terminalreporter.write_line(f"{info.id:16s} {cell_status(counts):9s} {summary}")


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def lfm_config(pytestconfig: pytest.Config) -> LfmConfig:
    """The resolved ``--lfm-*`` configuration (CLI > env > ini > default)."""
    return pytestconfig.stash[CONFIG_KEY]


@pytest.fixture(scope="session")
def lfm_target(request: pytest.FixtureRequest) -> Target:
    """The server under test: base URL, variant, SGLang version, hardware, resolved server args."""
    param = getattr(request, "param", None)
    if param is None:
        raise pytest.UsageError(NO_TARGET)
    return param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def lfm_server(lfm_target: Target) -> Target:
    """Alias of ``lfm_target`` (the server handle: ``base_url``, ``variant``, ``version``, ``server_args``)."""
    return lfm_target


@pytest.fixture(scope="session")
def lfm_variant(lfm_target: Target) -> Variant:
    """The LFM2.5 variant the server under test serves."""
    return lfm_target.variant


@pytest.fixture
def lfm_engine(lfm_target: Target, request: pytest.FixtureRequest) -> EngineHandle:
    """Engine mode: the in-process ``sgl.Engine`` of the target's variant, wrapped in an
    :class:`~pytest_lfm.engine.EngineHandle` (``generate``, ``chat``, SGLang's parsers). Started on first
    use, one engine alive at a time, shut down at session end (also on failure and Ctrl-C). Skips with
    "needs --lfm-engine" on other targets. An engine that fails to start fails this check with what was
    tried and ends the session as failed (one clear error, not one per check)."""
    if not lfm_target.is_engine:
        pytest.skip(f"{ENGINE_SKIP}; {lfm_target.id} is a {lfm_target.kind} target")
    pool = request.config.stash[TARGETS_KEY].engines
    assert pool is not None, "engine targets without an engine pool"
    from pytest_lfm.engine import EngineFailed

    try:
        handle: EngineHandle = pool.acquire(lfm_target.variant.id)
    except EngineFailed as exc:
        message = exc.render()
    else:
        if not handle.start_reported and handle.started_after is not None:  # on the check that started it
            handle.start_reported = True
            request.node.user_properties.append(("engine_start_s", round(handle.started_after, 1)))
        return handle
    request.session.shouldfail = f"lfm: the engine for {lfm_target.id} did not start"
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def lfm_http(lfm_target: Target, lfm_config: LfmConfig) -> Iterator[LfmHttp]:
    """A protocol-level JSON/SSE client for the server under test (exact wire shapes)."""
    from pytest_lfm.client import LfmHttp

    http = LfmHttp(lfm_target, timeout=lfm_config.timeout)
    yield http
    http.close()


@pytest.fixture(scope="session")
def lfm_client(lfm_target: Target, lfm_config: LfmConfig) -> Iterator[openai.OpenAI]:
    """``openai.OpenAI`` pointed at the server under test (``max_retries=0``)."""
    import openai

    # The SDK's own HTTP client: openai 3 moved to httpx2, so an httpx client of ours would be the wrong type.
    client = openai.OpenAI(base_url=lfm_target.base_url + "/v1",
                           api_key=lfm_target.api_key.get() if lfm_target.api_key else "EMPTY",
                           max_retries=0, timeout=lfm_config.timeout)
    yield client
    client.close()


@pytest.fixture
def lfm_chat(lfm_client: openai.OpenAI, lfm_target: Target) -> Callable[..., Any]:
    """``chat(messages, **overrides)``: a chat completion with the variant's recommended sampling
    (temperature plus ``extra_body`` sampler fields, as the cookbook's §3.1 helper sends them);
    overrides win, and ``extra_body`` overrides are merged into the preset's."""

    def chat(messages: list[dict[str, Any]], **overrides: Any) -> Any:
        preset = lfm_target.variant.sampling_kwargs()
        extra = {**preset["extra_body"], **overrides.pop("extra_body", {})}
        kwargs = {"temperature": preset["temperature"], **overrides, "extra_body": extra}
        return lfm_client.chat.completions.create(model=lfm_target.served_model, messages=cast(Any, messages),
                                                  **kwargs)

    return chat
