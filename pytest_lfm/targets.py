"""Turn the resolved configuration into :class:`~pytest_lfm.server.Target` objects.

Attach mode probes each server (health, ``/server_info``, ``/model_info``, ``/v1/models``) and works out
the variant; reference mode starts one reference server per selected variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pytest_lfm.config import LfmConfig
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import UNKNOWN, detect_local_gpu
from pytest_lfm.server.base import Target
from pytest_lfm.server.http import probe
from pytest_lfm.server.reference import ReferenceProcess, start_many
from pytest_lfm.variants import detect_variant, get_variant, is_fixture_checkpoint, select_variants, variant_ids

REFERENCE_VERSION = "0.5.23"
_LOCAL_HOSTS = ("localhost", "127.", "[::1]", "0.0.0.0")


@dataclass
class TargetSet:
    """The targets of a run and the processes this run owns."""

    targets: list[Target] = field(default_factory=list)
    processes: list[ReferenceProcess] = field(default_factory=list)

    def stop(self) -> None:
        """Stop every process this run started."""
        for p in self.processes:
            p.stop()
        self.processes.clear()


def planned_ids(cfg: LfmConfig) -> list[str]:
    """Target ids known without contacting anything (for headers and the xdist controller)."""
    ids: list[str] = []
    for spec in cfg.servers:
        if spec.is_reference:
            ids += [v.id for v in ([get_variant(spec.variant)] if spec.variant else select_variants(cfg.variants))]
        else:
            ids.append(spec.variant or spec.url or "?")
    return ids


def build_targets(cfg: LfmConfig, start_reference: bool = True) -> TargetSet:
    """Probe attached servers and start reference servers, as the configuration says."""
    out = TargetSet()
    attached = [s for s in cfg.servers if not s.is_reference]
    reference = [s for s in cfg.servers if s.is_reference]
    try:
        for spec in attached:
            assert spec.url is not None
            result = probe(spec.url, cfg.api_key)
            variant = _variant_for(spec.variant, cfg, result.model_path, spec.url, len(attached))
            hardware = cfg.hardware or (_local_hardware() if spec.url.split("//")[-1].startswith(_LOCAL_HOSTS)
                                        else UNKNOWN)
            out.targets.append(Target(
                id=variant.id,
                variant=variant, base_url=spec.url, kind="attach", version=result.version,
                hardware=hardware, model=(result.models[0] if result.models else result.model_path),
                server_args=result.server_info, model_info=result.model_info, api_key=cfg.api_key,
                random_weights=is_fixture_checkpoint(result.model_path),
            ))
        if reference and start_reference:
            chosen: list[str] = []
            for spec in reference:
                chosen += [spec.variant] if spec.variant else [v.id for v in select_variants(cfg.variants)]
            chosen = [get_variant(c).id for c in dict.fromkeys(chosen)]
            procs = start_many(chosen, cfg.faults, cfg.api_key.get() if cfg.api_key else None, REFERENCE_VERSION)
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
