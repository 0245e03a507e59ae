"""Launch-mode glue the plugin's hooks call: printing recipes and the server-log section of failing reports.

Kept out of ``plugin.py`` so that the hooks stay one-liners and this logic is testable without pytest.
"""

from __future__ import annotations

import os

from pytest_lfm.config import LfmConfig
from pytest_lfm.recipe import DEFAULT_PORT, build_recipe, secret_values
from pytest_lfm.server.base import Target
from pytest_lfm.server.launch import TAIL_LINES, pid_alive, sglang_version_of, split_command, tail
from pytest_lfm.targets import launch_hardware
from pytest_lfm.variants import select_variants

SECTION = "lfm server log"


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
    if not target.is_launched or not target.log_path:
        return None
    secrets = secret_values(os.environ, [api_key])
    lines = [f"log: {target.log_path}"]
    if target.pid is not None and not pid_alive(target.pid):
        lines.insert(0, f"the launched SGLang server for {target.id} (pid {target.pid}) is no longer running; "
                        "its remaining checks are not run")
    text = tail(target.log_path, TAIL_LINES, secrets)
    return "\n".join(lines) + f"\nlast {TAIL_LINES} lines:\n" + (text or "(empty)")
