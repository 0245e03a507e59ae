"""One frozen configuration object, resolved once: command line > environment > ini > default."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_lfm import options as o
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import UNKNOWN, get_hardware


class Secret:
    """A string that never shows itself in reprs, logs or reports."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        """The secret value, for the Authorization header only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class LfmConfig:
    """The resolved ``--lfm-*`` configuration of a run."""

    servers: tuple[o.ServerSpec, ...] = ()
    variants: tuple[str, ...] = ()
    hardware: str | None = None
    api_key: Secret | None = None
    timeout: float = 120.0
    report_dir: Path | None = None
    faults: tuple[str, ...] = ()
    image_host: str = "127.0.0.1"
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_target(self) -> bool:
        """True when the run names a server to check."""
        return bool(self.servers)

    @property
    def uses_reference(self) -> bool:
        """True when the bundled reference server is (one of) the target(s)."""
        return any(s.is_reference for s in self.servers)


Getter = Callable[[str], Any]


def resolve(cli: Getter, ini: Getter, env: Mapping[str, str] | None = None) -> LfmConfig:
    """Resolve every option in precedence order. ``cli``/``ini`` return None (or []) when unset."""
    environ = os.environ if env is None else env
    sources: dict[str, str] = {}

    def pick(spec: o.OptionSpec) -> Any:
        value = cli(spec.dest)
        if value not in (None, [], ()):
            sources[spec.dest] = "cli"
            return list(value) if spec.multiple else value
        if environ.get(spec.env, "").strip():
            sources[spec.dest] = "env"
            raw = environ[spec.env]
            return o.split_env_list(raw) if spec.multiple else raw.strip()
        ini_value = ini(spec.ini)
        if ini_value not in (None, "", [], ()):
            sources[spec.dest] = "ini"
            if spec.multiple:
                items = ini_value if isinstance(ini_value, list) else str(ini_value).split()
                return [str(i).strip() for i in items if str(i).strip()]
            return str(ini_value).strip()
        sources[spec.dest] = "default"
        return [] if spec.multiple else spec.default

    servers = tuple(o.parse_server(s) for s in pick(o.SERVER))
    variants = tuple(pick(o.VARIANT))
    hardware = pick(o.HARDWARE)
    if hardware is not None and hardware.strip().lower() != UNKNOWN:
        hardware = get_hardware(hardware).id
    api_key = pick(o.API_KEY)
    timeout = o.parse_timeout(str(pick(o.TIMEOUT)))
    report = pick(o.REPORT)
    faults = tuple(pick(o.FAULT))
    image_host = pick(o.IMAGE_HOST) or "127.0.0.1"
    if faults and not any(s.is_reference for s in servers):
        raise LfmUsageError(
            "--lfm-reference-fault only applies to the bundled reference server",
            remedy="add --lfm-server=reference, or drop --lfm-reference-fault",
        )
    if sum(1 for s in servers if s.is_reference and s.variant is None) > 1:
        raise LfmUsageError("--lfm-server=reference was given twice", remedy="give it once")
    return LfmConfig(
        servers=servers,
        variants=variants,
        hardware=hardware.strip().lower() if hardware else None,
        api_key=Secret(api_key) if api_key else None,
        timeout=timeout,
        report_dir=Path(report) if report else None,
        faults=faults,
        image_host=image_host,
        sources=sources,
    )
