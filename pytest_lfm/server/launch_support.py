"""Launch-mode glue: the hardware and servers a launch uses, printing recipes, and the server-log section of
failing reports.

Kept out of ``plugin.py`` so that the hooks stay one-liners and this logic is testable without pytest.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pytest_lfm.config import LfmConfig
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import UNKNOWN, Hardware, detect_local_gpu, get_hardware, gpu_count, hardware_ids
from pytest_lfm.recipe import DEFAULT_PORT, build_recipe
from pytest_lfm.redaction import secret_values
from pytest_lfm.server.base import Target
from pytest_lfm.server.launch import (
    TAIL_LINES,
    LaunchedServer,
    pid_alive,
    sglang_version_of,
    split_command,
    tail,
)
from pytest_lfm.variants import select_variants

SECTION = "lfm server log"


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


def render_recipes(cfg: LfmConfig) -> str:
    """``--lfm-print-recipe``: the launch command of every selected variant, secrets as ``<secret>``."""
    hardware = launch_hardware(cfg, purpose="--lfm-print-recipe")
    command = split_command(cfg.sglang_command)
    version = sglang_version_of(command) if cfg.framing == "python" and cfg.sglang_command else None
    api_key = cfg.api_key.get() if cfg.api_key else None
    blocks: list[str] = []
    for variant in select_variants(cfg.variants):
        recipe = build_recipe(variant, hardware, framing=cfg.framing, version=version, port=DEFAULT_PORT,
                              model_path=cfg.model_paths.get(variant.id), image=cfg.sglang_image,
                              extra_args=cfg.sglang_args, command=command, api_key=api_key)
        note = ""
        if cfg.framing == "docker" and not cfg.sglang_image and variant.recipe.image_reason:
            note = f"; image {variant.recipe.image_tag}{hardware.docker_image_suffix}: {variant.recipe.image_reason}"
        blocks.append(f"# {variant.hf_path} on {hardware.name} ({cfg.framing}{note})\n{recipe.render()}\n")
    return "\n".join(blocks)


def log_section(target: Target, api_key: str | None = None) -> str | None:
    """The section attached to a failing report of a launched target: liveness and the log tail."""
    if not target.log_path:
        return None
    secrets = secret_values(os.environ, [api_key])
    lines = [f"log: {target.log_path}"]
    if target.pid is not None and not pid_alive(target.pid):
        lines.insert(0, f"the launched SGLang server for {target.id} (pid {target.pid}) is no longer running; "
                        "its remaining checks are not run")
    text = tail(target.log_path, TAIL_LINES, secrets)
    return "\n".join(lines) + f"\nlast {TAIL_LINES} lines:\n" + (text or "(empty)")
