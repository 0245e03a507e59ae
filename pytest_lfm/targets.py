"""Turn the resolved configuration into :class:`~pytest_lfm.server.Target` objects.

Every way of reaching a server is a :class:`ServerHandle` with one method, :meth:`~ServerHandle.open`: it
starts, launches, prepares or probes what it stands for, registers what this run owns in the
:class:`TargetSet`, and says what it found as :class:`Found` records. :func:`make_target` turns those into
targets, in this one place, so that every target carries its capabilities (HTTP API, in-process engine,
test double, server log, real weights) the same way, whatever its kind.

- :class:`AttachHandle`: probes a running server (health, ``/server_info``, ``/model_info``,
  ``/v1/models``) and works out the variant.
- :class:`ReferenceHandle`: starts one reference server per selected variant.
- :class:`LaunchHandle`: starts one SGLang server per selected variant from the verified recipe
  (:mod:`pytest_lfm.server.launch`), or, on an xdist worker, attaches to the servers the controller launched.
- :class:`EngineModeHandle`: prepares one in-process ``sgl.Engine`` per selected variant
  (:mod:`pytest_lfm.engine`; started on first use, one at a time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_lfm.config import LfmConfig, Secret
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import UNKNOWN, get_hardware, local_hardware
from pytest_lfm.label import check_label, is_reference_server
from pytest_lfm.options import ServerSpec
from pytest_lfm.server.base import Target, TargetKind
from pytest_lfm.server.http import ProbeResult, probe
from pytest_lfm.server.launch import LaunchedServer, launch_many
from pytest_lfm.server.launch_support import launch_hardware, make_launched
from pytest_lfm.server.process import install_sigterm_handler, restore_sigterm_handler
from pytest_lfm.server.reference import start_many
from pytest_lfm.variants import (
    Variant,
    detect_variant,
    get_variant,
    is_fixture_checkpoint,
    select_variants,
    variant_ids,
)

if TYPE_CHECKING:
    from pytest_lfm.engine import EnginePool

_LOCAL_HOSTS = ("localhost", "127.", "[::1]", "0.0.0.0")


class Stoppable(Protocol):
    """A process this run owns."""

    def stop(self) -> None:
        """Stop it (idempotent)."""


@dataclass
class TargetSet:
    """The targets of a run and the processes this run owns."""

    targets: list[Target] = field(default_factory=list)
    processes: list[Stoppable] = field(default_factory=list)
    launched: list[LaunchedServer] = field(default_factory=list)
    engines: EnginePool | None = None
    """Engine mode: the in-process engines (also in ``processes``, so :meth:`stop` shuts them down)."""
    sigterm: bool = False
    """Whether this run turned SIGTERM into Ctrl-C (launch and engine mode), undone by :meth:`stop`."""

    def launched_info(self) -> list[dict[str, Any]]:
        """Plain data about launched servers, for xdist workers."""
        return [s.info() for s in self.launched]

    def stop(self) -> None:
        """Stop every process this run started."""
        for p in self.processes:
            p.stop()
        self.processes.clear()
        if self.sigterm:
            restore_sigterm_handler()
            self.sigterm = False


@dataclass(frozen=True)
class Found:
    """What a handle learnt about one server: the input of :func:`make_target`."""

    variant: Variant
    kind: TargetKind
    base_url: str
    hardware: str
    probed: ProbeResult | None = None
    """HTTP targets: what the server said about itself at session start."""
    version: str | None = None
    """Targets without an HTTP API: the version the handle found (else the probe's)."""
    model: str | None = None
    """The model name to send (else the probe's first ``/v1/models`` id or model path)."""
    server_args: Mapping[str, Any] | None = None
    log_path: str | None = None
    pid: int | None = None


def make_target(found: Found, api_key: Secret | None) -> Target:
    """The one place a :class:`Target` is built."""
    p = found.probed
    model_path = p.model_path if p is not None else found.model
    model = found.model or (p.models[0] if p is not None and p.models else model_path)
    return Target(
        id=found.variant.id, variant=found.variant, base_url=found.base_url, kind=found.kind,
        version=found.version or (p.version if p is not None else None), hardware=found.hardware, model=model,
        server_args=found.server_args if found.server_args is not None else (p.server_info if p else {}),
        model_info=p.model_info if p is not None else {}, api_key=api_key if p is not None else None,
        random_weights=found.kind != "reference" and is_fixture_checkpoint(model_path),
        log_path=found.log_path, pid=found.pid,
    )


class ServerHandle(Protocol):
    """One way of reaching servers under test (attach, reference, launch, engine)."""

    def open(self, cfg: LfmConfig, out: TargetSet) -> list[Found]:
        """Start, launch, prepare or probe; register owned processes in ``out`` before anything can fail."""


@dataclass
class AttachHandle:
    """Servers someone else runs (``--lfm-server=[VARIANT=]URL``)."""

    specs: Sequence[ServerSpec]

    def open(self, cfg: LfmConfig, out: TargetSet) -> list[Found]:
        """Probe each server and work out its variant and hardware."""
        found: list[Found] = []
        for spec in self.specs:
            assert spec.url is not None
            result = probe(spec.url, cfg.api_key)
            variant = _variant_for(spec.variant, cfg, result.model_path, spec.url, len(self.specs))
            if spec.variant or cfg.variants:  # a declared label must agree with what the server serves
                check_label(variant, result, spec.url, f"{spec.variant}={spec.url}" if spec.variant
                            else f"--lfm-variant={','.join(cfg.variants)}", cfg.any_model_name)
            local = spec.url.split("//")[-1].startswith(_LOCAL_HOSTS)
            hardware = cfg.hardware or (local_hardware() if local else UNKNOWN)
            kind: TargetKind = "reference" if is_reference_server(result) else "attach"  # the bundled test double
            found.append(Found(variant, kind, spec.url, hardware, probed=result))
        return found


@dataclass
class ReferenceHandle:
    """The bundled reference server (``--lfm-server=reference`` / ``reference=VARIANT``), one per variant."""

    specs: Sequence[ServerSpec]

    def variants(self, cfg: LfmConfig) -> list[Variant]:
        """The variants to serve, each once."""
        chosen: list[str] = []
        for spec in self.specs:
            chosen += [spec.variant] if spec.variant else [v.id for v in select_variants(cfg.variants)]
        return [get_variant(c) for c in dict.fromkeys(chosen)]

    def open(self, cfg: LfmConfig, out: TargetSet) -> list[Found]:
        """Start the servers in parallel and probe each."""
        procs = start_many([v.id for v in self.variants(cfg)], cfg.faults,
                           cfg.api_key.get() if cfg.api_key else None, cfg.reference_version,
                           sglang_dir=str(cfg.reference_parsers) if cfg.reference_parsers else None,
                           hardware=cfg.hardware if cfg.hardware and cfg.hardware != UNKNOWN else None)
        out.processes.extend(procs)
        found: list[Found] = []
        for proc in procs:
            variant = get_variant(proc.variant_id)
            found.append(Found(variant, "reference", proc.base_url, cfg.hardware or UNKNOWN,
                               probed=probe(proc.base_url, cfg.api_key), model=variant.hf_path))
        return found


@dataclass
class LaunchHandle:
    """SGLang servers this run starts from the verified recipe (``--lfm-launch``)."""

    launched: Sequence[Mapping[str, Any]] | None = None
    """On an xdist worker: the servers the controller launched (attached to, not started)."""

    def open(self, cfg: LfmConfig, out: TargetSet) -> list[Found]:
        """Launch (or, on a worker, take over) the servers and probe each."""
        infos: list[Mapping[str, Any]]
        if self.launched is None:
            servers = make_launched(cfg, launch_hardware(cfg))
            out.processes.extend(servers)  # registered before start-up can fail
            out.launched.extend(servers)
            launch_many(servers, cfg.startup_timeout)
            infos = [s.info() for s in servers]
        else:
            infos = list(self.launched)
        found: list[Found] = []
        for info in infos:
            url = str(info["base_url"])
            found.append(Found(get_variant(str(info["variant"])), "launch", url, str(info["hardware"]),
                               probed=probe(url, cfg.api_key), log_path=info.get("log_path"), pid=info.get("pid")))
        return found


@dataclass
class EngineModeHandle:
    """Engine mode (``--lfm-engine``): one in-process ``sgl.Engine`` per selected variant, not started yet."""

    def open(self, cfg: LfmConfig, out: TargetSet) -> list[Found]:
        """Load the engine factory and prepare one handle per variant (engines start on first use)."""
        from pytest_lfm.engine import (
            EngineHandle,
            EnginePool,
            engine_env,
            engine_kwargs,
            factory_version,
            load_factory,
        )

        factory, spec = load_factory()
        version = factory_version(factory, spec)
        hw_id = cfg.hardware or local_hardware()
        hardware = get_hardware(hw_id) if hw_id != UNKNOWN else None
        handles: list[EngineHandle] = []
        found: list[Found] = []
        for variant_id in cfg.engine_variants:
            variant = get_variant(variant_id)
            path = _engine_model_path(variant_id, cfg.model_paths[variant_id])
            kwargs = engine_kwargs(variant, hardware, path, cfg.engine_args)
            handle = EngineHandle(variant, path, kwargs, factory, version=version, env=engine_env(variant, path))
            handles.append(handle)
            found.append(Found(variant, "engine", f"engine://{variant.id}", hw_id, version=version, model=path,
                               server_args=handle.describe()))
        out.engines = EnginePool(handles)
        out.processes.append(out.engines)
        return found


def handles(cfg: LfmConfig, start_reference: bool = True,
            launched: Sequence[Mapping[str, Any]] | None = None) -> list[ServerHandle]:
    """The handles the configuration asks for, in target order (engine, launch, attach, reference)."""
    out: list[ServerHandle] = []
    if cfg.engine:
        out.append(EngineModeHandle())
    if cfg.launch:
        out.append(LaunchHandle(launched))
    attached = [s for s in cfg.servers if not s.is_reference]
    if attached:
        out.append(AttachHandle(attached))
    reference = [s for s in cfg.servers if s.is_reference]
    if reference and start_reference:
        out.append(ReferenceHandle(reference))
    return out


def planned_ids(cfg: LfmConfig) -> list[str]:
    """Target ids known without contacting anything (for headers and the xdist controller)."""
    ids: list[str] = list(cfg.engine_variants)
    if cfg.launch:
        ids += [v.id for v in select_variants(cfg.variants)]
    for spec in cfg.servers:
        if spec.is_reference:
            ids += [v.id for v in ([get_variant(spec.variant)] if spec.variant else select_variants(cfg.variants))]
        else:
            ids.append(spec.variant or spec.url or "?")
    return ids


def open_targets(cfg: LfmConfig, start_reference: bool = True,
                 launched: Sequence[Mapping[str, Any]] | None = None) -> TargetSet:
    """Probe attached servers, start reference servers, launch SGLang and prepare engines, as configured;
    on any failure stop what was started.

    ``start_reference`` is False on the xdist controller (each worker starts its own reference servers);
    ``launched`` (xdist workers): the servers the controller launched; they are attached to, not started.
    A launching or engine run turns SIGTERM into Ctrl-C, so that a CI timeout tears the servers down.
    """
    out = TargetSet()
    if (cfg.launch and launched is None) or cfg.engine:
        install_sigterm_handler()
        out.sigterm = True
    try:
        for handle in handles(cfg, start_reference, launched):
            out.targets += [make_target(f, cfg.api_key) for f in handle.open(cfg, out)]
    except BaseException:
        out.stop()
        raise
    ids = [t.id for t in out.targets]
    if len(set(ids)) != len(ids):
        out.stop()
        raise LfmUsageError(f"two servers were given for the same variant: {ids}",
                            remedy="give each variant once (VARIANT=URL)")
    return out



def _variant_for(declared: str | None, cfg: LfmConfig, model_path: str | None, url: str,
                 n_attached: int) -> Variant:
    if declared:
        return get_variant(declared)
    if cfg.variants and n_attached == 1:
        chosen = select_variants(cfg.variants)
        if len(chosen) != 1:
            raise LfmUsageError(
                f"--lfm-variant selects {len(chosen)} variants but one server ({url}) was given",
                remedy="name the single variant it serves, or give VARIANT=URL per server",
            )
        return chosen[0]
    detected = detect_variant(model_path)
    if detected is None:
        raise LfmUsageError(
            f"cannot tell which LFM2.5 variant {url} serves (model path {model_path!r})",
            tried=["/model_info model_path", "/server_info model_path", "/v1/models ids"],
            remedy=f"pass --lfm-variant with one of: {', '.join(variant_ids())}",
        )
    return detected


def _engine_model_path(variant_id: str, path: str) -> str:
    """A local checkpoint as an absolute path; a Hugging Face id (``org/name``) as given."""
    local = Path(path).expanduser()
    if local.exists():
        return str(local.resolve())
    first = path.split("/", 1)[0]
    if path.startswith(("/", ".", "~")) or path.count("/") != 1 or Path(first).exists():  # not an org/name id
        raise LfmUsageError(
            f"--lfm-model-path {variant_id}={path}: no such checkpoint directory",
            tried=[str(local.resolve())],
            remedy="pass the directory holding config.json and the weights (relative paths are read from the "
            "current directory), or a Hugging Face id such as LiquidAI/LFM2.5-8B-A1B",
        )
    return path
