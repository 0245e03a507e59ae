"""pytest-lfm's hooks and fixtures. This file only wires them; the decisions live in importable modules:
:mod:`~pytest_lfm.session` (configuration and stash keys), :mod:`~pytest_lfm.targets` (the servers under
test), :mod:`~pytest_lfm.gating` (skips, version gates and known failures at collection),
:mod:`~pytest_lfm.outcomes` and :mod:`~pytest_lfm.collect` (the report).

Registered through the ``pytest11`` entry point ``lfm``. Option precedence: command line > environment
> ini > default (:mod:`pytest_lfm.config`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import pytest

from pytest_lfm import citations, collect, gating
from pytest_lfm import options as o
from pytest_lfm.client import LfmHttp, openai_client, preset_chat
from pytest_lfm.config import LfmConfig
from pytest_lfm.engine import EngineFailed, EngineHandle
from pytest_lfm.errors import LfmError
from pytest_lfm.health import HEALTH_PLUGIN, HealthPlugin
from pytest_lfm.markers import MARKERS
from pytest_lfm.paths import suite_dir
from pytest_lfm.runinfo import RUNINFO_PLUGIN, RunInfoPlugin, summary_lines
from pytest_lfm.server.base import Target
from pytest_lfm.server.launch_support import SECTION, log_section, render_recipes
from pytest_lfm.session import (
    CONFIG_KEY,
    INFOS_KEY,
    REPORT_KEY,
    RESULTS_KEY,
    TARGETS_KEY,
    check_combination,
    is_worker,
    is_xdist_controller,
    resolve_config,
)
from pytest_lfm.summary import write_step_summary
from pytest_lfm.targets import TargetSet, open_targets
from pytest_lfm.variants import Variant

if TYPE_CHECKING:
    import openai

__all__ = ["CONFIG_KEY", "INFOS_KEY", "REPORT_KEY", "RESULTS_KEY", "TARGETS_KEY"]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register every ``--lfm-*`` option and its ini twin."""
    group = parser.getgroup("lfm", "LFM2.5 on SGLang conformance (pytest-lfm); exit status 75 when a server "
                                   "went down during the run (its remaining checks: 'not run: server down')")
    for spec in o.ALL_OPTIONS:
        help_text = f"{spec.help} [env {spec.env}; ini {spec.ini}]"
        if spec.boolean:
            group.addoption(spec.flag, dest=spec.dest, default=None, action="store_true", help=help_text)
            parser.addini(spec.ini, help=spec.help, type="bool", default=False)
        else:
            group.addoption(spec.flag, dest=spec.dest, default=None, metavar=spec.metavar,
                            action="append" if spec.multiple else "store", help=help_text)
            ini_type: Literal["linelist", "string"] = "linelist" if spec.multiple else "string"
            parser.addini(spec.ini, help=spec.help, type=ini_type, default=None)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--lfm-print-recipe``: print the SGLang launch commands of the selection and exit."""
    cfg = resolve_config(config)
    if not cfg.print_recipe:
        return None
    try:
        print(render_recipes(cfg), end="")
    except LfmError as exc:
        raise pytest.UsageError(exc.render()) from None
    return 0


def pytest_configure(config: pytest.Config) -> None:
    """Register markers, resolve the configuration, start collecting results, and point a bare run at the
    shipped suite."""
    for text in MARKERS.values():
        config.addinivalue_line("markers", text)
    # Checks record figures with record_property for report.json; junit's default xunit2 family has no place
    # for them, so pytest would warn once per check on every --junitxml run.
    config.addinivalue_line("filterwarnings",
                            "ignore:record_property is incompatible with junit_family:pytest.PytestWarning")
    cfg = resolve_config(config)
    check_combination(config, cfg)
    config.stash[RESULTS_KEY] = []
    config.pluginmanager.register(collect.ResultCollector(config.stash[RESULTS_KEY]), collect.PLUGIN_NAME)
    if cfg.has_target:
        config.pluginmanager.register(HealthPlugin(cfg.api_key.get() if cfg.api_key else None), HEALTH_PLUGIN)
        config.pluginmanager.register(RunInfoPlugin(config), RUNINFO_PLUGIN)
    if cfg.has_target and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(suite_dir())]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Probe attached servers (one clear error on failure), start reference servers, launch or prepare
    engines, as configured."""
    config = session.config
    cfg = config.stash[CONFIG_KEY]
    config.stash[TARGETS_KEY] = TargetSet()
    config.stash[INFOS_KEY] = []
    if not cfg.has_target:
        return
    controller = is_xdist_controller(config)
    launched = config.workerinput.get("lfm_launched") if is_worker(config) else None  # type: ignore[attr-defined]
    try:
        targets = open_targets(cfg, start_reference=not controller, launched=launched)
    except LfmError as exc:
        raise pytest.UsageError(exc.render()) from None
    config.stash[TARGETS_KEY] = targets
    config.stash[INFOS_KEY] = collect.target_infos(cfg, targets.targets, controller)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the launched servers to each worker (they attach; GPUs allow no copies)."""
    targets = node.config.stash.get(TARGETS_KEY, None)
    if targets is not None and targets.launched:
        node.workerinput["lfm_launched"] = targets.launched_info()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On failing reports only: the behaviour notes the check cites, as paths a user can open (section
    "lfm behaviour notes"), and the launched server's log tail (section "lfm server log")."""
    report = yield
    if report.failed:
        cited = citations.see_also(gating.section_of(item))
        if cited:
            report.sections.append((citations.REPORT_SECTION, cited))
    target = gating.item_target(item)
    if report.failed and target is not None and target.log_path:
        cfg = item.config.stash[CONFIG_KEY]
        text = log_section(target, cfg.api_key.get() if cfg.api_key else None)
        if text:
            report.sections.append((SECTION, text))
    return report


def pytest_report_header(config: pytest.Config) -> list[str]:
    """One line per target: URL, variant, SGLang version, hardware."""
    return collect.header_lines(config.stash.get(CONFIG_KEY, None), config.stash.get(INFOS_KEY, []))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The target axis: one session-scoped parameter per server under test."""
    if "lfm_target" not in metafunc.fixturenames:
        return
    targets = metafunc.config.stash[TARGETS_KEY].targets
    if targets:
        metafunc.parametrize("lfm_target", targets, ids=[t.id for t in targets], indirect=True, scope="session")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Apply markers, case version gates and known failures per target; tag items for the report."""
    gating.gate_items(items, have_targets=bool(config.stash[TARGETS_KEY].targets))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the report (not on xdist workers) and stop the servers this run started."""
    config = session.config
    cfg = config.stash.get(CONFIG_KEY, None)
    try:
        if cfg is not None and (cfg.has_target or cfg.report_dir is not None) and not is_worker(config):
            config.stash[REPORT_KEY] = collect.build(config.stash.get(INFOS_KEY, []),
                                                     config.stash.get(RESULTS_KEY, []), collect.run_info(config))
        if cfg is not None and cfg.report_dir is not None and not is_worker(config):
            collect.write(cfg.report_dir, config.stash[REPORT_KEY], config.pluginmanager.get_plugin("terminalreporter"))
        if cfg is not None and cfg.step_summary is not None and REPORT_KEY in config.stash and not is_worker(config):
            line = write_step_summary(cfg, config.stash[REPORT_KEY], getattr(config.option, "xmlpath", None))
            config.get_terminal_writer().line(line)  # $GITHUB_STEP_SUMMARY / --lfm-step-summary
    finally:
        targets = config.stash.get(TARGETS_KEY, None)
        if targets is not None:
            targets.stop()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One line per cell: its status (Verified, Passed (...), Partial (N of M checks), ...) with counts."""
    report = config.stash.get(REPORT_KEY, None)
    if report is None or not config.stash.get(RESULTS_KEY, []) or is_worker(config):
        return
    terminalreporter.section("lfm conformance")
    for line in summary_lines(report):
        terminalreporter.write_line(line)


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
        raise pytest.UsageError(gating.NO_TARGET)
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
    if not lfm_target.has_engine:
        pytest.skip(f"{gating.ENGINE_SKIP}; {lfm_target.id} is served over HTTP ({lfm_target.kind} mode)")
    pool = request.config.stash[TARGETS_KEY].engines
    assert pool is not None, "engine targets without an engine pool"
    try:
        handle: EngineHandle = pool.acquire(lfm_target.variant.id)
    except EngineFailed as exc:
        request.session.shouldfail = f"lfm: the engine for {lfm_target.id} did not start"
        pytest.fail(exc.render(), pytrace=False)
    if not handle.start_reported and handle.started_after is not None:  # on the check that started it
        handle.start_reported = True
        request.node.user_properties.append(("engine_start_s", round(handle.started_after, 1)))
    return handle


@pytest.fixture(scope="session")
def lfm_http(lfm_target: Target, lfm_config: LfmConfig) -> Iterator[LfmHttp]:
    """A protocol-level JSON/SSE client for the server under test (exact wire shapes)."""
    http = LfmHttp(lfm_target, timeout=lfm_config.timeout)
    yield http
    http.close()


@pytest.fixture(scope="session")
def lfm_client(lfm_target: Target, lfm_config: LfmConfig) -> Iterator[openai.OpenAI]:
    """``openai.OpenAI`` pointed at the server under test (``max_retries=0``)."""
    client = openai_client(lfm_target, lfm_config.timeout)
    yield client
    client.close()


@pytest.fixture
def lfm_chat(lfm_client: openai.OpenAI, lfm_target: Target) -> Callable[..., Any]:
    """``chat(messages, **overrides)``: a chat completion with the variant's recommended sampling
    (temperature plus the sampler fields in ``extra_body``, as the cookbook's §3.1 helper sends them);
    overrides win, and ``extra_body`` overrides are merged into the preset's."""
    return preset_chat(lfm_client, lfm_target)
