"""Turn the resolved configuration into :class:`~pytest_lfm.server.Target` objects.

Attach mode probes each server (health, ``/server_info``, ``/model_info``, ``/v1/models``) and works out
the variant; reference mode starts one reference server per selected variant; launch mode starts one SGLang
server per selected variant from the verified recipe (:mod:`pytest_lfm.server.launch`), or, on an xdist
worker, attaches to the servers the controller launched; engine mode prepares one in-process ``sgl.Engine``
per selected variant (:mod:`pytest_lfm.engine`; started on first use, one at a time).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_lfm.config import LfmConfig
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import UNKNOWN, Hardware, detect_local_gpu, get_hardware, hardware_ids
from pytest_lfm.label import check_label, is_reference_server
from pytest_lfm.server.base import Target
from pytest_lfm.server.http import probe
from pytest_lfm.server.launch import LaunchedServer, gpu_count, launch_many, sglang_version_of, split_command
from pytest_lfm.server.reference import start_many
from pytest_lfm.variants import (
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

    def launched_info(self) -> list[dict[str, Any]]:
        """Plain data about launched servers, for xdist workers."""
        return [s.info() for s in self.launched]

    def stop(self) -> None:
        """Stop every process this run started."""
        for p in self.processes:
            p.stop()
        self.processes.clear()


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


def build_targets(cfg: LfmConfig, start_reference: bool = True,
                  launched: Sequence[Mapping[str, Any]] | None = None) -> TargetSet:
    """Probe attached servers, start reference servers and launch SGLang, as the configuration says.

    ``launched`` (xdist workers): the servers the controller launched; they are attached to, not started.
    """
    out = TargetSet()
    attached = [s for s in cfg.servers if not s.is_reference]
    reference = [s for s in cfg.servers if s.is_reference]
    try:
        if cfg.engine:
            _engine_targets(cfg, out)
        if cfg.launch:
            _launch_targets(cfg, out, launched)
        for spec in attached:
            assert spec.url is not None
            result = probe(spec.url, cfg.api_key)
            variant = _variant_for(spec.variant, cfg, result.model_path, spec.url, len(attached))
            if spec.variant or cfg.variants:
                check_label(variant, result, spec.url, f"{spec.variant}={spec.url}" if spec.variant
                            else f"--lfm-variant={','.join(cfg.variants)}", cfg.any_model_name)
            hardware = cfg.hardware or (_local_hardware() if spec.url.split("//")[-1].startswith(_LOCAL_HOSTS)
                                        else UNKNOWN)
            out.targets.append(Target(
                id=variant.id,
                variant=variant, base_url=spec.url, version=result.version,
                kind="reference" if is_reference_server(result) else "attach",
                hardware=hardware, model=(result.models[0] if result.models else result.model_path),
                server_args=result.server_info, model_info=result.model_info, api_key=cfg.api_key,
                random_weights=is_fixture_checkpoint(result.model_path),
            ))
        if reference and start_reference:
            chosen: list[str] = []
            for spec in reference:
                chosen += [spec.variant] if spec.variant else [v.id for v in select_variants(cfg.variants)]
            chosen = [get_variant(c).id for c in dict.fromkeys(chosen)]
            procs = start_many(chosen, cfg.faults, cfg.api_key.get() if cfg.api_key else None, cfg.reference_version,
                               sglang_dir=str(cfg.reference_parsers) if cfg.reference_parsers else None,
                               hardware=cfg.hardware if cfg.hardware and cfg.hardware != UNKNOWN else None)
            out.processes.extend(procs)
            for proc in procs:
                result = probe(proc.base_url, cfg.api_key)
                variant = get_variant(proc.variant_id)
                out.targets.append(Target(
                    id=variant.id, variant=variant, base_url=proc.base_url, kind="reference",
                    version=result.version, hardware=cfg.hardware or UNKNOWN, model=variant.hf_path,
                    server_args=result.server_info, model_info=result.model_info, api_key=cfg.api_key,
                ))
    except BaseException:
        out.stop()
        raise
    ids = [t.id for t in out.targets]
    if len(set(ids)) != len(ids):
        out.stop()
        raise LfmUsageError(f"two servers were given for the same variant: {ids}",
                            remedy="give each variant once (VARIANT=URL)")
    return out


def _variant_for(declared: str | None, cfg: LfmConfig, model_path: str | None, url: str, n_attached: int):  # type: ignore[no-untyped-def]
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


def _local_hardware() -> str:
    return detect_local_gpu()[0]


def launch_hardware(cfg: LfmConfig, purpose: str = "launch mode") -> Hardware:
    """The hardware whose recipe launch mode (or ``purpose``) uses: declared with --lfm-hardware, else
    nvidia-smi's GPU 0."""
    hw_id = cfg.hardware if cfg.hardware and cfg.hardware != UNKNOWN else None
    found = ""
    if hw_id is None:
        hw_id, found = detect_local_gpu()
    if hw_id == UNKNOWN:
        raise LfmUsageError(
            f"{purpose} needs the GPU model to pick the verified recipe, and none was declared or recognised",
            tried=[f"--lfm-hardware / LFM_HARDWARE: {cfg.hardware or 'not set'}",
                   f"nvidia-smi GPU 0: {found or 'no GPU found'}"],
            remedy=f"pass --lfm-hardware with one of: {', '.join(hardware_ids())}",
        )
    return get_hardware(hw_id)


def make_launched(cfg: LfmConfig, hardware: Hardware) -> list[LaunchedServer]:
    """One (not yet started) :class:`LaunchedServer` per selected variant, with GPUs assigned."""
    variants = select_variants(cfg.variants)
    command = split_command(cfg.sglang_command)
    version = sglang_version_of(command) if cfg.framing == "python" else None
    log_dir = cfg.log_dir or Path(tempfile.mkdtemp(prefix="pytest-lfm-logs-"))
    gpus = gpu_count()
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if gpus is not None and gpus > 0 and len(variants) > gpus:
        raise LfmUsageError(
            f"--lfm-launch would start {len(variants)} SGLang servers ({', '.join(v.id for v in variants)}) on "
            f"{gpus} GPU(s); each server sizes its memory pools to most of one GPU, so they cannot share",
            tried=[f"nvidia-smi: {gpus} visible GPU(s)", f"--lfm-variant: {', '.join(cfg.variants) or 'all'}"],
            remedy=f"select at most {gpus} variant(s) with --lfm-variant and run once per group",
        )
    servers: list[LaunchedServer] = []
    for i, variant in enumerate(variants):
        environ: dict[str, str] | None = None
        if gpus and len(variants) > 1:
            environ = dict(os.environ, CUDA_VISIBLE_DEVICES=visible[i] if i < len(visible) else str(i))
        servers.append(LaunchedServer(
            variant=variant, hardware=hardware, framing=cfg.framing, command=command, version=version,
            model_path=cfg.model_paths.get(variant.id), image=cfg.sglang_image, extra_args=cfg.sglang_args,
            api_key=cfg.api_key.get() if cfg.api_key else None, log_dir=log_dir, environ=environ,
        ))
    return servers


def _launch_targets(cfg: LfmConfig, out: TargetSet, launched: Sequence[Mapping[str, Any]] | None) -> None:
    infos: list[Mapping[str, Any]]
    if launched is None:
        hardware = launch_hardware(cfg)
        servers = make_launched(cfg, hardware)
        out.processes.extend(servers)  # registered before start-up can fail
        out.launched.extend(servers)
        launch_many(servers, cfg.startup_timeout)
        infos = [s.info() for s in servers]
    else:
        infos = list(launched)
    for info in infos:
        variant = get_variant(str(info["variant"]))
        result = probe(str(info["base_url"]), cfg.api_key)
        out.targets.append(Target(
            id=variant.id, variant=variant, base_url=str(info["base_url"]), kind="launch", version=result.version,
            hardware=str(info["hardware"]), model=(result.models[0] if result.models else result.model_path),
            server_args=result.server_info, model_info=result.model_info, api_key=cfg.api_key,
            log_path=info.get("log_path"), pid=info.get("pid"),
            random_weights=is_fixture_checkpoint(result.model_path),
        ))


def _engine_targets(cfg: LfmConfig, out: TargetSet) -> None:
    """Engine mode: one :class:`~pytest_lfm.engine.EngineHandle` per selected variant (not started yet)."""
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
    hw_id = cfg.hardware or _local_hardware()
    hardware = get_hardware(hw_id) if hw_id != UNKNOWN else None
    handles: list[EngineHandle] = []
    for variant_id in cfg.engine_variants:
        variant = get_variant(variant_id)
        path = _engine_model_path(variant_id, cfg.model_paths[variant_id])
        kwargs = engine_kwargs(variant, hardware, path, cfg.engine_args)
        handle = EngineHandle(variant, path, kwargs, factory, version=version, env=engine_env(variant, path))
        handles.append(handle)
        out.targets.append(Target(
            id=variant.id, variant=variant, base_url=f"engine://{variant.id}", kind="engine", version=version,
            hardware=hw_id, model=path, server_args=handle.describe(),
            random_weights=is_fixture_checkpoint(path),
        ))
    out.engines = EnginePool(handles)
    out.processes.append(out.engines)


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
