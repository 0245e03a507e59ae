"""One frozen configuration object, resolved once: command line > environment > ini > default."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_lfm import options as o
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import UNKNOWN, get_hardware
from pytest_lfm.variants import get_variant, select_variants


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
    launch: bool = False
    print_recipe: bool = False
    model_paths: Mapping[str, str] = field(default_factory=dict)
    framing: str = "python"
    sglang_image: str | None = None
    startup_timeout: float = 600.0
    log_dir: Path | None = None
    sglang_command: str | None = None
    sglang_args: tuple[str, ...] = ()
    reference_parsers: Path | None = None
    reference_version: str = "0.5.23"
    engine: bool = False
    engine_variants: tuple[str, ...] = ()
    """Engine mode: the variant ids to create an engine for (each has a ``model_paths`` entry)."""
    engine_args: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)
    any_model_name: bool = False
    """Accept a declared variant that the server's model name contradicts (custom served model names)."""
    step_summary: Path | None = None
    """``--lfm-step-summary`` (else ``$GITHUB_STEP_SUMMARY``): where the markdown run summary is appended."""

    @property
    def has_target(self) -> bool:
        """True when the run names something to check (attached, reference, launched, or in-process engines)."""
        return bool(self.servers) or self.launch or self.engine

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
            if spec.boolean:
                return o.parse_bool(spec.env, raw)
            return o.split_env_list(raw) if spec.multiple else raw.strip()
        ini_value = ini(spec.ini)
        if spec.boolean:
            if ini_value not in (None, "", False):
                sources[spec.dest] = "ini"
                return o.parse_bool(spec.ini, ini_value)
            sources[spec.dest] = "default"
            return False
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
    launch = bool(pick(o.LAUNCH))
    print_recipe = bool(pick(o.PRINT_RECIPE))
    if launch and servers:
        given = ", ".join(s.url or "reference" for s in servers)
        raise LfmUsageError(
            f"--lfm-launch starts its own SGLang servers, but --lfm-server also names targets ({given})",
            remedy="drop --lfm-server to launch SGLang from the recipe, or drop --lfm-launch to check the "
            "given servers",
        )
    engine = bool(pick(o.ENGINE))
    model_paths: dict[str, str] = {}
    for item in pick(o.MODEL_PATH):
        variant_id, path = o.parse_model_path(item)
        model_paths[get_variant(variant_id).id] = path
    if model_paths and not (launch or print_recipe or engine):
        raise LfmUsageError("--lfm-model-path only applies when SGLang is launched or run in-process",
                            remedy="add --lfm-launch (or --lfm-print-recipe, or --lfm-engine), or drop "
                            "--lfm-model-path")
    engine_variants, engine_args = _engine_settings(engine, launch, servers, variants, model_paths,
                                                    pick(o.ENGINE_ARG))
    framing = str(pick(o.FRAMING) or "python").strip().lower()
    if framing not in ("python", "docker"):
        raise LfmUsageError(f"--lfm-framing {framing!r} is not 'python' or 'docker'",
                            remedy="pass --lfm-framing=python (sglang serve) or --lfm-framing=docker")
    log_dir = pick(o.LOG_DIR)
    sglang_args = pick(o.SGLANG_ARGS)
    try:
        extra_args = tuple(shlex.split(sglang_args)) if sglang_args else ()
    except ValueError as exc:
        raise LfmUsageError(f"--lfm-sglang-args {sglang_args!r}: {exc}",
                            remedy="quote it as a shell would, e.g. --lfm-sglang-args='--context-length 2048'"
                            ) from None
    reference_parsers = _reference_parsers(pick(o.REFERENCE_PARSERS), servers)
    step_summary = pick(o.STEP_SUMMARY) or environ.get("GITHUB_STEP_SUMMARY", "").strip()
    reference_version = _reference_version(str(pick(o.REFERENCE_VERSION) or "0.5.23"), servers, sources)
    return LfmConfig(
        servers=servers,
        variants=variants,
        hardware=hardware.strip().lower() if hardware else None,
        api_key=Secret(api_key) if api_key else None,
        timeout=timeout,
        report_dir=Path(report) if report else None,
        faults=faults,
        image_host=image_host,
        launch=launch,
        print_recipe=print_recipe,
        model_paths=model_paths,
        framing=framing,
        sglang_image=pick(o.SGLANG_IMAGE) or None,
        startup_timeout=o.parse_startup_timeout(str(pick(o.STARTUP_TIMEOUT))),
        log_dir=Path(log_dir) if log_dir else None,
        sglang_command=pick(o.SGLANG_COMMAND) or None,
        sglang_args=extra_args,
        reference_parsers=reference_parsers,
        reference_version=reference_version,
        engine=engine,
        engine_variants=engine_variants,
        engine_args=engine_args,
        sources=sources,
        any_model_name=bool(pick(o.ANY_MODEL_NAME)),
        step_summary=Path(step_summary) if step_summary else None,
    )


def _engine_settings(engine: bool, launch: bool, servers: tuple[o.ServerSpec, ...], variants: tuple[str, ...],
                     model_paths: Mapping[str, str], raw_args: list[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """``--lfm-engine``: which variants get an engine, and the ``--lfm-engine-arg`` overrides."""
    args = dict(parse_engine_arg(a) for a in raw_args)
    if not engine:
        if args:
            raise LfmUsageError("--lfm-engine-arg only applies to engine mode",
                                remedy="add --lfm-engine, or drop --lfm-engine-arg")
        return (), {}
    if servers or launch:
        given = ", ".join([*(s.url or "reference" for s in servers), *(["--lfm-launch"] if launch else [])])
        raise LfmUsageError(
            f"--lfm-engine runs SGLang in-process, but other targets were also given ({given})",
            remedy="drop --lfm-server/--lfm-launch to check the offline engine, or drop --lfm-engine to check "
            "a server",
        )
    chosen = [v.id for v in select_variants(variants)] if variants else list(model_paths)
    if not chosen:
        raise LfmUsageError(
            "--lfm-engine needs a checkpoint for each variant it checks, and none was given",
            remedy="pass --lfm-model-path VARIANT=PATH (e.g. --lfm-model-path 8B-A1B=/models/LFM2.5-8B-A1B), "
            "and optionally --lfm-variant VARIANT",
        )
    missing = [v for v in chosen if v not in model_paths]
    if missing:
        raise LfmUsageError(
            f"--lfm-engine needs --lfm-model-path for every selected variant; missing: {', '.join(missing)}",
            tried=[f"--lfm-variant: {', '.join(variants) or '(none)'}",
                   f"--lfm-model-path: {', '.join(f'{k}={v}' for k, v in model_paths.items()) or '(none)'}"],
            remedy="add --lfm-model-path VARIANT=PATH for each, or narrow --lfm-variant to the variants you have "
            "checkpoints for",
        )
    return tuple(chosen), args


def _reference_version(value: str, servers: tuple[o.ServerSpec, ...], sources: Mapping[str, str]) -> str:
    """``--lfm-reference-version``: a parsable SGLang version, only with the reference server."""
    from pytest_lfm.lfm2 import parse_version

    if sources.get(o.REFERENCE_VERSION.dest, "default") != "default" and not any(s.is_reference for s in servers):
        raise LfmUsageError("--lfm-reference-version only applies to the bundled reference server",
                            remedy="add --lfm-server=reference, or drop --lfm-reference-version")
    if parse_version(value) is None:
        raise LfmUsageError(f"--lfm-reference-version {value!r} is not a version",
                            remedy="pass a release number such as 0.5.17")
    return value.strip().lstrip("v")


def _reference_parsers(value: str | None, servers: tuple[o.ServerSpec, ...]) -> Path | None:
    """``--lfm-reference-parsers DIR``: an installed sglang tree, only with the reference server."""
    if not value:
        return None
    if not any(s.is_reference for s in servers):
        raise LfmUsageError(
            "--lfm-reference-parsers only applies to the bundled reference server",
            remedy="add --lfm-server=reference, or drop --lfm-reference-parsers",
        )
    root = Path(value).expanduser().resolve()
    if not (root / "sglang").is_dir():
        raise LfmUsageError(
            f"--lfm-reference-parsers {value!r}: no sglang package in {root}",
            tried=[str(root / "sglang")],
            remedy="install a release's parser code first: scripts/install_sglang_parsers.sh 0.5.23 "
            f"{value}",
        )
    return root


def parse_engine_arg(value: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → (ServerArgs field, value); VALUE is read as JSON when it is JSON (``true``,
    ``0.3``, ``2048``, ``null``, ``"text"``), else kept as a string. Dashes in KEY become underscores."""
    key, sep, raw = value.partition("=")
    key = key.strip().lstrip("-").replace("-", "_")
    if not sep or not key.isidentifier():
        raise LfmUsageError(f"--lfm-engine-arg {value!r}: expected KEY=VALUE with KEY an sgl.Engine argument",
                            remedy="pass e.g. --lfm-engine-arg mem_fraction_static=0.5 or "
                                   "--lfm-engine-arg attention_backend=fa3")
    raw = raw.strip()
    try:
        parsed: Any = json.loads(raw)
    except ValueError:
        parsed = raw
    return key, parsed
