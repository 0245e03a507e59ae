"""The run's outcome as files a release manager can act on: ``report.json`` (validated by
``data/report.schema.json``) and ``matrix.md`` (the cookbook's hardware x variant shape)."""

from __future__ import annotations

import datetime as dt
import json
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jsonschema

REPORT_VERSION = 1
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")


@dataclass
class CheckResult:
    """One check on one target."""

    nodeid: str
    target: str
    family: str
    outcome: str
    duration: float
    message: str = ""
    section: str = ""
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class TargetInfo:
    """A cell's environment."""

    id: str
    variant: str
    hardware: str
    sglang_version: str | None
    base_url: str
    mode: str
    quantization: str = "bf16"
    strategy: str = "tp1"
    nodes: int = 1
    server_args: dict[str, Any] = field(default_factory=dict)


def plugin_version() -> str:
    """The installed pytest-lfm version."""
    try:
        return metadata.version("pytest-lfm")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _redact(args: Mapping[str, Any]) -> dict[str, Any]:
    secret_words = ("key", "token", "secret", "password")
    return {k: ("***" if any(w in k.lower() for w in secret_words) and v else v) for k, v in args.items()}


def build_report(targets: Sequence[TargetInfo], results: Iterable[CheckResult]) -> dict[str, Any]:
    """The report document."""
    results = list(results)
    cells = []
    for t in targets:
        mine = [r for r in results if r.target == t.id]
        counts = {o: sum(1 for r in mine if r.outcome == o) for o in OUTCOMES}
        info = asdict(t)
        info["server_args"] = _redact(t.server_args)
        cells.append({**info, "counts": counts, "status": cell_status(counts),
                      "checks": [asdict(r) for r in mine]})
    unassigned = [asdict(r) for r in results if r.target not in {t.id for t in targets}]
    return {
        "report_version": REPORT_VERSION,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "environment": {"plugin_version": plugin_version(), "python": platform.python_version(),
                        "platform": platform.platform()},
        "cells": cells,
        "other_checks": unassigned,
    }


def cell_status(counts: Mapping[str, int]) -> str:
    """Verified (all ran checks passed), Failing (any failure, error or unexpected pass), or Not run."""
    if counts.get("failed") or counts.get("error") or counts.get("xpassed"):
        return "Failing"
    if counts.get("passed"):
        return "Verified"
    return "Not run"


def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``report.json``."""
    text = resources.files("pytest_lfm").joinpath("data/report.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def render_matrix(report: Mapping[str, Any]) -> str:
    """``matrix.md``: hardware rows, variant columns, status with counts; failures listed per cell."""
    cells = report["cells"]
    variants = list(dict.fromkeys(c["variant"] for c in cells))
    hardware = list(dict.fromkeys(c["hardware"] for c in cells))
    lines = ["# LFM2.5 on SGLang: conformance matrix", ""]
    versions = sorted({str(c["sglang_version"]) for c in cells})
    lines.append(f"SGLang {', '.join(versions)} · pytest-lfm {report['environment']['plugin_version']} · "
                 f"{report['generated_at']}")
    lines += ["", "| hardware | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for hw in hardware:
        row = [hw]
        for v in variants:
            cell = next((c for c in cells if c["hardware"] == hw and c["variant"] == v), None)
            if cell is None:
                row.append("Not run")
                continue
            n = cell["counts"]
            row.append(f"{cell['status']} ({n['passed']} passed, {n['failed'] + n['error']} failed, "
                       f"{n['skipped']} skipped, {n['xfailed']} xfailed)")
        lines.append("| " + " | ".join(row) + " |")
    failures = [(c, r) for c in cells for r in c["checks"] if r["outcome"] in ("failed", "error", "xpassed")]
    if failures:
        lines += ["", "## Failures", ""]
        for c, r in failures:
            first = (r["message"] or "").strip().splitlines()[:1]
            lines.append(f"- **{c['hardware']} / {c['variant']}** `{r['nodeid']}` ({r['outcome']})"
                         + (f": {first[0][:200]}" if first else ""))
    return "\n".join(lines) + "\n"


def write_report(directory: Path, targets: Sequence[TargetInfo], results: Iterable[CheckResult]) -> Path:
    """Write ``report.json`` (schema-checked) and ``matrix.md`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    report = build_report(targets, results)
    jsonschema.validate(report, report_schema())
    (directory / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n",
                                           encoding="utf-8")
    (directory / "matrix.md").write_text(render_matrix(report), encoding="utf-8")
    return directory / "report.json"
