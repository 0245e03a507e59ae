"""Markers: registration text, argument validation, and the skip decision for one target."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import UNKNOWN, hardware_ids
from pytest_lfm.releases import check_gate, describe_gate, gate_holds
from pytest_lfm.server.base import Target
from pytest_lfm.variants import CAPABILITIES, variant_ids

MARKERS: dict[str, str] = {
    "lfm_requires": "lfm_requires(*capabilities): run only on variants with every capability "
                    f"({', '.join(CAPABILITIES)}, or 'real_weights'); skipped with the need and what was found.",
    "lfm_hardware": "lfm_hardware(*targets): GPU-marked check; runs only when the server's hardware is one of "
                    f"{', '.join(hardware_ids())}.",
    "lfm_variants": "lfm_variants(*ids): run only on these variant ids.",
    "lfm_fact": "lfm_fact(*facts): run only on SGLang releases where every release fact holds ('name': the "
                "release has the new behaviour, '!name': it does not; pytest_lfm/data/release_facts.toml).",
    "lfm_reference_only": "lfm_reference_only(reason): needs the reference server (e.g. its fault modes).",
}
EXTRA_CAPABILITIES = ("real_weights",)


class MarkerError(ValueError):
    """A marker used with bad arguments."""


def _strings(name: str, args: Iterable[Any], allowed: Iterable[str] | None = None) -> list[str]:
    values = list(args)
    if not values:
        raise MarkerError(f"@pytest.mark.{name} needs at least one argument")
    allowed_set = set(allowed) if allowed is not None else None
    for v in values:
        if not isinstance(v, str):
            raise MarkerError(f"@pytest.mark.{name}: {v!r} is not a string")
        if allowed_set is not None and v not in allowed_set:
            raise MarkerError(f"@pytest.mark.{name}: unknown value {v!r}; known: {', '.join(sorted(allowed_set))}")
    return values


def validate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Check one marker's arguments (raises :class:`MarkerError`)."""
    if kwargs:
        raise MarkerError(f"@pytest.mark.{name} takes no keyword arguments, got {sorted(kwargs)}")
    if name == "lfm_requires":
        _strings(name, args, (*CAPABILITIES, *EXTRA_CAPABILITIES))
    elif name == "lfm_hardware":
        _strings(name, args, hardware_ids())
    elif name == "lfm_variants":
        _strings(name, args, variant_ids())
    elif name == "lfm_fact":
        try:
            check_gate(_strings(name, args))
        except LfmUsageError as exc:
            raise MarkerError(f"@pytest.mark.lfm_fact: {exc.render()}") from None
    elif name == "lfm_reference_only":
        _strings(name, args)


def skip_reason(name: str, args: tuple[Any, ...], target: Target) -> str | None:
    """Why a marker skips a check on a target, or None when the check runs."""
    if name == "lfm_requires":
        needs = [a for a in args if a != "real_weights"]
        missing = target.variant.missing(*needs)
        if missing:
            return (f"needs {', '.join(missing)}; variant {target.variant.id} has "
                    f"{', '.join(sorted(target.variant.capabilities))}")
        if "real_weights" in args and not target.real_weights:
            what = "the reference server" if target.is_test_double else "a fixture checkpoint"
            return f"needs real weights; {target.id} is served by {what} (random weights)"
    elif name == "lfm_hardware":
        if target.hardware not in args:
            found = target.hardware if target.hardware != UNKNOWN else "unknown hardware"
            return f"GPU check for {', '.join(args)}; server runs on {found}"
    elif name == "lfm_variants":
        if target.variant.id not in args:
            return f"only for {', '.join(args)}; server serves {target.variant.id}"
    elif name == "lfm_fact":
        if not gate_holds(list(args), target.version):
            return f"needs SGLang with {describe_gate(list(args))}; server reports {target.version or 'an unknown version'}"
    elif name == "lfm_reference_only":
        if not target.is_test_double:
            return f"reference server only: {args[0]}"
    return None
