"""Hardware registry (H100, H200, B200, B300) and GPU detection with ``nvidia-smi``."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Literal

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


def detect_local_gpu(timeout: float = 5.0) -> tuple[str, str]:
    """(hardware id, raw GPU name) of GPU 0 on this host via nvidia-smi; ("unknown", "") without one."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return UNKNOWN, ""
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN, ""
    first = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    return (match_gpu_name(first) if first else UNKNOWN), first
