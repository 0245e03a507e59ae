"""Hardware registry (H100, H200, B200, B300) and the host's GPUs as ``nvidia-smi`` reports them (the one
hardware-probe module)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from pytest_lfm.errors import LfmUsageError

UNKNOWN = "unknown"


class Hardware(BaseModel):
    """A GPU target and what the checks need to know about it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str
    family: Literal["hopper", "blackwell"]
    compute_capability: str
    memory_gb: int
    nvidia_smi_names: tuple[str, ...]
    mm_attention_backend: str
    docker_image_suffix: str

    @property
    def is_blackwell(self) -> bool:
        """Blackwell (sm100+) needs an explicit attention backend for some variants."""
        return self.family == "blackwell"


@lru_cache(maxsize=1)
def load_hardware() -> tuple[Hardware, ...]:
    """Every hardware target of the registry."""
    text = resources.files("pytest_lfm").joinpath("data/hardware.toml").read_text(encoding="utf-8")
    return tuple(Hardware.model_validate(h) for h in tomllib.loads(text)["hardware"])


def hardware_ids() -> list[str]:
    """Every registered hardware id."""
    return [h.id for h in load_hardware()]


def get_hardware(hw_id: str) -> Hardware:
    """The hardware target with this id, or a usage error naming the known ids."""
    for h in load_hardware():
        if h.id == hw_id.strip().lower():
            return h
    raise LfmUsageError(
        f"unknown hardware {hw_id!r}",
        tried=[f"the registry's ids: {', '.join(hardware_ids())}"],
        remedy=f"pass --lfm-hardware with one of those, or '{UNKNOWN}'",
    )


def match_gpu_name(gpu_name: str) -> str:
    """The hardware id whose nvidia-smi name occurs in ``gpu_name``, else ``"unknown"``."""
    upper = gpu_name.upper()
    # Longest names first so that "GB300" is not read as "B300"'s neighbour by accident.
    pairs = sorted(
        ((n.upper(), h.id) for h in load_hardware() for n in h.nvidia_smi_names), key=lambda p: -len(p[0])
    )
    for needle, hw_id in pairs:
        if needle in upper:
            return hw_id
    return UNKNOWN


def nvidia_smi(*fields: str, timeout: float = 5.0) -> list[list[str]] | None:
    """One row per GPU of ``nvidia-smi --query-gpu=FIELDS --format=csv,noheader`` (values stripped); None when
    nvidia-smi is missing, fails or times out. The one place the project runs nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, f"--query-gpu={','.join(fields)}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [[p.strip() for p in line.split(",")] for line in out.stdout.strip().splitlines() if line.strip()]


def detect_local_gpu(timeout: float = 5.0) -> tuple[str, str]:
    """(hardware id, raw GPU name) of GPU 0 on this host via nvidia-smi; ("unknown", "") without one."""
    rows = nvidia_smi("name", timeout=timeout)
    first = rows[0][0] if rows else ""
    return (match_gpu_name(first) if first else UNKNOWN), first


def local_hardware() -> str:
    """The hardware id of this host's GPU 0, or ``"unknown"``."""
    return detect_local_gpu()[0]


def gpu_count(timeout: float = 5.0) -> int | None:
    """Visible NVIDIA GPUs (``CUDA_VISIBLE_DEVICES`` respected); None when nvidia-smi is unavailable."""
    rows = nvidia_smi("index", timeout=timeout)
    if rows is None:
        return None
    n = len(rows)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        n = min(n, len([d for d in visible.split(",") if d.strip()]))
    return n


def gpu_info(timeout: float = 5.0) -> dict[str, Any]:
    """GPU names and driver of the host running pytest, from ``nvidia-smi``; ``"none"`` without one."""
    rows = nvidia_smi("name", "driver_version", timeout=timeout)
    if not rows:
        return {"name": "none", "driver": "none", "count": 0}
    names = list(dict.fromkeys(r[0] for r in rows))
    drivers = list(dict.fromkeys(r[1] for r in rows if len(r) > 1))
    return {"name": ", ".join(names), "driver": ", ".join(drivers) or "unknown", "count": len(rows)}
