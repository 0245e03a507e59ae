"""The run's outcome as files a release manager can act on.

``--lfm-report=DIR`` writes three files:

* ``report.json``: versioned (``report_version``) and validated by ``data/report.schema.json``. It holds
  the environment (SGLang versions, GPU and driver of the host that ran pytest, plugin version, time),
  one *cell* per (hardware, variant, quantization, strategy, nodes) as the SGLang cookbook's verified
  matrix names them, with the cell's resolved server arguments (secrets redacted), and per check its
  outcome, duration, message and the doc section it relies on.
* ``matrix.md``: the cookbook's shape (a row per hardware that ran x variant columns) with each cell's
  status and counts, then the failures per cell and the known (expected) failures, each listed once with
  the cells it applies to.

A cell is "Verified" only when the whole suite ran for it, uninterrupted and unfiltered, against real
weights on confirmed hardware, and every check passed or failed as declared (:func:`cell_status`);
otherwise its status says what it is ("Passed (reference server)", "Partial (98 of 340 checks)", ...).
The top-level ``run`` block records the selection (``-k``, ``-m``, paths, ``--lf``), interruption and
servers that went down (:mod:`pytest_lfm.runinfo`, :mod:`pytest_lfm.health`).
* ``matrix.html``: the same matrix as one self-contained page (inline CSS and JS, no external assets):
  coloured cells, failures listed per cell, filters by check family.

The same module merges reports of several runs (one per GPU) into one matrix (``python -m pytest_lfm
merge``); :mod:`pytest_lfm.report_diff` compares two reports (``python -m pytest_lfm diff``).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import platform
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema

from pytest_lfm.errors import LfmError
from pytest_lfm.hardware import gpu_info as gpu_info  # re-exported
from pytest_lfm.redaction import redact_args, redact_value

if TYPE_CHECKING:
    from pytest_lfm.runinfo import RunInfo

REPORT_VERSION = 1
OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error", "not_run")
FAILING_OUTCOMES = ("failed", "error", "xpassed")
VERIFIED = "Verified"
FAILED = "Failed"
SERVER_DOWN = "Server down"
INTERRUPTED = "Interrupted"
NOT_RUN = "Not run"
PASSED_REFERENCE = "Passed (reference server)"
PASSED_RANDOM = "Passed (random weights)"
PASSED_HARDWARE = "Passed (hardware not confirmed)"
#: Fixed statuses; the other is "Partial (N of M checks)".
STATUSES = (VERIFIED, FAILED, PASSED_REFERENCE, PASSED_RANDOM, PASSED_HARDWARE, INTERRUPTED, SERVER_DOWN)
#: The hardware rows of the cookbook's verified matrix (docs/sglang-behaviour.md §11).
COOKBOOK_HARDWARE = ("h100", "h200", "b200")
#: The row label of cells whose hardware was neither declared nor detected.
UNDECLARED_HARDWARE = "hardware not declared"
DEFAULT_QUANTIZATION = "bf16"
DEFAULT_STRATEGY = "tp1"


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
    quantization: str = DEFAULT_QUANTIZATION
    strategy: str = DEFAULT_STRATEGY
    nodes: int = 1
    server_args: dict[str, Any] = field(default_factory=dict)
    weights: str = "real"
    """``"real"``, ``"random"`` (a fixture checkpoint) or ``"reference"`` (the bundled test double)."""
    hardware_confirmed: bool = False
    """The declared hardware was seen (nvidia-smi on this host, or the server naming its GPU)."""


class ReportError(LfmError):
    """A report file that cannot be read, parsed or validated."""


# ------------------------------------------------------------------------------------------ environment


def plugin_version() -> str:
    """The installed pytest-lfm version."""
    try:
        return metadata.version("pytest-lfm")
    except metadata.PackageNotFoundError:
        return "0+unknown"


redact = redact_args  # the server-args form, under the name callers and tests use


def environment(targets: Sequence[TargetInfo], now: str) -> dict[str, Any]:
    """The ``environment`` block of a report."""
    import pytest

    return {
        "plugin_version": plugin_version(),
        "pytest_version": pytest.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sglang_versions": sorted({str(t.sglang_version or "unknown") for t in targets}),
        "gpu": gpu_info(),
        "time": now,
    }


# ------------------------------------------------------------------------------------------ cells


def _axes(t: TargetInfo) -> tuple[str, str, int]:
    """Quantization, strategy and nodes as the cookbook names them; read from the server args where the
    target info left the defaults (``quantization``/``dtype``, ``tp_size``, ``nnodes``)."""
    args = t.server_args
    quant = t.quantization
    if quant == DEFAULT_QUANTIZATION and args.get("quantization"):
        quant = str(args["quantization"]).lower()
    elif quant == DEFAULT_QUANTIZATION and str(args.get("dtype", "")).lower() in ("float16", "half", "fp16"):
        quant = "fp16"
    strategy = t.strategy
    tp = args.get("tp_size")
    if strategy == DEFAULT_STRATEGY and isinstance(tp, int) and tp > 1:
        strategy = f"tp{tp}"
    nodes = t.nodes
    nn = args.get("nnodes")
    if nodes == 1 and isinstance(nn, int) and nn > 1:
        nodes = nn
    return quant, strategy, nodes


def cell_key(cell: Mapping[str, Any]) -> str:
    """``hardware/variant/quantization/strategy/nodes``: a cell's identity across runs and versions."""
    return "/".join(str(cell[k]) for k in ("hardware", "variant", "quantization", "strategy", "nodes"))


def count_outcomes(checks: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Checks per outcome (every outcome present, zero where none)."""
    checks = list(checks)
    return {o: sum(1 for c in checks if c["outcome"] == o) for o in OUTCOMES}


def partial(ran: int, planned: int) -> str:
    """``Partial (N of M checks)``."""
    return f"Partial ({ran} of {planned} checks)"


def cell_status(counts: Mapping[str, int], *, complete: bool = True, weights: str = "real",
                hardware_confirmed: bool = True, interrupted: bool = False, server_down: bool = False,
                planned: int | None = None) -> str:
    """A cell's status, most serious first: "Server down" (its server went away mid-run), "Failed" (a
    check failed or errored, or a known failure passed), "Interrupted", "Partial (N of M checks)" (a
    selection, -x, or nothing that passed), then for a complete run without failures "Passed (reference
    server)", "Passed (random weights)", "Passed (hardware not confirmed)" or "Verified"."""
    if server_down:
        return SERVER_DOWN
    if counts.get("failed") or counts.get("error") or counts.get("xpassed"):
        return FAILED
    ran = sum(int(v) for k, v in counts.items() if k != "not_run")
    if not complete and interrupted:
        return INTERRUPTED
    if not complete:
        return partial(ran, max(planned or 0, ran))
    if not counts.get("passed"):  # everything skipped: nothing was verified
        return partial(0, max(planned or 0, ran))
    if weights == "reference":
        return PASSED_REFERENCE
    if weights == "random":
        return PASSED_RANDOM
    if not hardware_confirmed:
        return PASSED_HARDWARE
    return VERIFIED


def status_of(cell: Mapping[str, Any], counts: Mapping[str, int]) -> str:
    """:func:`cell_status` from a report cell's fields (older reports without them read as complete)."""
    return cell_status(counts, complete=bool(cell.get("complete", True)), weights=str(cell.get("weights", "real")),
                       hardware_confirmed=bool(cell.get("hardware_confirmed", True)),
                       interrupted=bool(cell.get("interrupted", False)),
                       server_down=bool(cell.get("server_down", False)), planned=cell.get("planned"))


def is_failed(status: str) -> bool:
    """A status that means something is wrong with the server (a failure, or it went down)."""
    return status in (FAILED, SERVER_DOWN)


_SUITE_PREFIX = re.compile(r"^(?:.*/)?conformance/(?:[^/]+/)*")


def normalize_nodeid(nodeid: str) -> str:
    """The node id as the check id names it: the module's file name without its folders, so runs from a
    checkout and from an installed package compare equal and a module moved into a family folder keeps
    its id (``conformance/x/test_x.py::t[a]`` → ``test_x.py::t[a]``)."""
    path, sep, rest = nodeid.partition("::")
    return _SUITE_PREFIX.sub("", path) + sep + rest


def check_name(nodeid: str, target: str) -> str:
    """The node id relative to the suite without the ``[target]`` parameter
    (``conformance/test_x.py::t[case-1.2B-Instruct]`` → ``test_x.py::t[case]``)."""
    base = normalize_nodeid(nodeid)
    m = re.match(r"^(?P<head>.*?)\[(?P<params>.*)\]$", base)
    if not m:
        return base
    params = re.sub(r"(?:^|-)" + re.escape(target) + r"(?=-|$)", "", m.group("params"), count=1).strip("-")
    return m.group("head") + (f"[{params}]" if params else "")


def _check_doc(r: CheckResult) -> dict[str, Any]:
    d = asdict(r)
    d["check"] = check_name(r.nodeid, r.target)
    d["duration"] = max(0.0, float(r.duration))
    return d


def _make_cell(info: Mapping[str, Any], checks: list[dict[str, Any]]) -> dict[str, Any]:
    counts = count_outcomes(checks)
    cell = {**info, "counts": counts, "checks": checks}
    cell.setdefault("complete", True)
    cell.setdefault("weights", "real")
    cell["status"] = status_of(cell, counts)
    cell["key"] = cell_key(cell)
    return cell


def _completeness(t: TargetInfo, checks: Sequence[Mapping[str, Any]], run: RunInfo | None) -> dict[str, Any]:
    """``complete``, ``planned`` (checks collected for the target before any selection), ``interrupted``
    and ``server_down`` of one cell."""
    ran = sum(1 for c in checks if c["outcome"] != "not_run")
    if run is None:
        return {"complete": True, "planned": ran, "interrupted": False, "server_down": False}
    down = t.id in run.server_down
    planned = max(run.collected.get(t.id, 0), run.selected.get(t.id, 0), ran)
    selected = max(run.selected.get(t.id, 0), ran)
    complete = (not run.filtered and not run.interrupted and not run.stopped_early and not down
                and ran >= selected and selected >= planned)
    return {"complete": complete, "planned": planned, "interrupted": run.interrupted, "server_down": down}


def build_report(targets: Sequence[TargetInfo], results: Iterable[CheckResult],
                 run: RunInfo | None = None) -> dict[str, Any]:
    """The report document (see ``data/report.schema.json``). ``run``: the selection, interruption and
    per-target check counts (without it every cell reads as a complete run)."""
    results = list(results)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cells = []
    for t in targets:
        info = asdict(t)
        info["quantization"], info["strategy"], info["nodes"] = _axes(t)
        info["server_args"] = redact_args(t.server_args)
        info["base_url"] = redact_value(t.base_url)
        checks = [_check_doc(r) for r in results if r.target == t.id]
        info.update(_completeness(t, checks, run))
        cells.append(_make_cell(info, checks))
    known = {t.id for t in targets}
    doc: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "generated_at": now,
        "environment": environment(targets, now),
        "cells": cells,
        "other_checks": [_check_doc(r) for r in results if r.target not in known],
    }
    if run is not None:
        doc["run"] = run.as_dict()
    return doc


# ------------------------------------------------------------------------------------------ validation


def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``report.json``."""
    text = resources.files("pytest_lfm").joinpath("data/report.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def validate_report(report: Mapping[str, Any], source: str = "report") -> None:
    """Raise :class:`ReportError` naming ``source`` when ``report`` does not match the schema."""
    version = report.get("report_version") if isinstance(report, Mapping) else None
    if isinstance(report, Mapping) and version != REPORT_VERSION:
        raise ReportError(f"{source}: report_version {version!r} is not supported by pytest-lfm "
                          f"{plugin_version()} (it reads version {REPORT_VERSION})",
                          remedy="regenerate the report with this pytest-lfm, or use the pytest-lfm "
                                 "version that wrote it")
    try:
        jsonschema.validate(report, report_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ReportError(f"{source}: not a valid pytest-lfm report: at {where}: {exc.message}",
                          remedy="pass a report.json written by `pytest --lfm-report=DIR`") from None


def load_report(path: Path | str) -> dict[str, Any]:
    """Read and validate a ``report.json`` (or a directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the report ({exc.strerror or exc})",
                          remedy="pass the path of a report.json written by `pytest --lfm-report=DIR`") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                          remedy="pass a report.json written by `pytest --lfm-report=DIR`") from None
    if not isinstance(doc, dict):
        raise ReportError(f"{path}: not a pytest-lfm report (the top level is not an object)",
                          remedy="pass a report.json written by `pytest --lfm-report=DIR`")
    validate_report(doc, str(path))
    return doc


# ------------------------------------------------------------------------------------------ matrix.md


def _label(cell: Mapping[str, Any]) -> str:
    return f"{cell['quantization']} {cell['strategy']} {cell['nodes']}n"


def _is_default_axes(cell: Mapping[str, Any]) -> bool:
    return (cell["quantization"], cell["strategy"], cell["nodes"]) == (DEFAULT_QUANTIZATION, DEFAULT_STRATEGY, 1)


def grid(report: Mapping[str, Any], full: bool = True) -> tuple[list[str], list[str]]:
    """(hardware rows, variant columns). ``full``: the cookbook's rows and columns (§11) plus any seen."""
    cells = report["cells"]
    seen_hw = list(dict.fromkeys(str(c["hardware"]) for c in cells))
    seen_v = list(dict.fromkeys(str(c["variant"]) for c in cells))
    if not full:
        return seen_hw, seen_v
    try:
        from pytest_lfm.variants import load_variants

        matrix_variants = [v.id for v in load_variants() if v.in_verified_matrix]
    except Exception:  # the registry is optional for reading old reports
        matrix_variants = []
    variants = list(dict.fromkeys([*matrix_variants, *seen_v]))
    # Only hardware that ran (a declared B300 is a row because its cells are there), cookbook order first.
    hardware = [h for h in COOKBOOK_HARDWARE if h in seen_hw] + [h for h in seen_hw if h not in COOKBOOK_HARDWARE]
    return hardware, variants


def hardware_label(hw: str) -> str:
    """A row label: the hardware id, or "hardware not declared" for cells run without one."""
    return UNDECLARED_HARDWARE if hw in ("unknown", "") else hw


def _counts_text(n: Mapping[str, int]) -> str:
    parts = [f"{n['passed']} passed"]
    if n.get("not_run"):
        parts.append(f"{n['not_run']} not run")
    if n["failed"] + n["error"]:
        parts.append(f"{n['failed'] + n['error']} failed")
    if n["xpassed"]:
        parts.append(f"{n['xpassed']} unexpectedly passed")
    if n["xfailed"]:
        parts.append(f"{n['xfailed']} known failures")
    if n["skipped"]:
        parts.append(f"{n['skipped']} skipped")
    return ", ".join(parts)


def _first_line(text: str, limit: int = 200, lines: int = 3) -> str:
    """The first ``lines`` non-blank lines of a message joined with `` · ``, cut to ``limit`` characters
    (a check's message starts with what was checked, then Expected and Actual)."""
    kept = [re.sub(r"\s+", " ", ln.strip()) for ln in (text or "").strip().splitlines() if ln.strip()][:lines]
    joined = " · ".join(kept)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_matrix(report: Mapping[str, Any]) -> str:
    """``matrix.md``: hardware rows, variant columns, status with counts; failures listed per cell."""
    cells = report["cells"]
    hardware, variants = grid(report)
    env = report["environment"]
    versions = env.get("sglang_versions") or sorted({str(c["sglang_version"]) for c in cells})
    lines = ["# LFM2.5 on SGLang: conformance matrix", ""]
    lines.append(f"SGLang {', '.join(versions) or 'unknown'} · pytest-lfm {env['plugin_version']} · "
                 f"GPU {env.get('gpu', {}).get('name', 'unknown')} · {report['generated_at']}")
    if cells and all(_is_default_axes(c) for c in cells):
        lines += ["", "All cells: BF16, TP=1, single node (the cookbook's recipe)."]
    run = report.get("run")
    if run:
        lines += ["", _run_text(run)]
    lines += ["", "| hardware | " + " | ".join(variants) + " |", "|---|" + "---|" * len(variants)]
    for hw in hardware:
        row = [hardware_label(hw)]
        for v in variants:
            mine = [c for c in cells if c["hardware"] == hw and c["variant"] == v]
            if not mine:
                row.append("Not run")
                continue
            texts = []
            for c in mine:
                prefix = "" if _is_default_axes(c) else f"{_label(c)}: "
                texts.append(f"{prefix}**{c['status']}** ({_counts_text(c['counts'])})")
            row.append("<br>".join(texts))
        lines.append("| " + " | ".join(row) + " |")
    failures = [(c, r) for c in cells for r in c["checks"] if r["outcome"] in FAILING_OUTCOMES]
    if failures:
        lines += ["", "## Failures", ""]
        for c, r in failures:
            first = _first_line(r["message"])
            how = "unexpectedly passed: remove its known-failure entry" if r["outcome"] == "xpassed" else r["outcome"]
            lines.append(f"- **{c['hardware']} / {c['variant']}** `{r['nodeid']}` ({how})"
                         + (f": {_md(first)}" if first else "")
                         + (f" [{r['section']}]" if r.get("section") else ""))
    known: dict[tuple[str, str], list[str]] = {}
    for c in cells:
        for r in c["checks"]:
            if r["outcome"] == "xfailed":
                where = f"{hardware_label(str(c['hardware']))} / {c['variant']}"
                known.setdefault((str(r.get("check") or r["nodeid"]), _first_line(r["message"], 300)), []).append(where)
    if known:
        lines += ["", "## Known failures (strict expected failures)", ""]
        for (check, message), places in known.items():
            cells_text = ", ".join(dict.fromkeys(places))
            lines.append(f"- `{check}` ({cells_text}): {_md(message)}")
    return "\n".join(lines) + "\n"


def _run_text(run: Mapping[str, Any]) -> str:
    """One line on what the run covered (selection, interruption, servers that went down)."""
    sel = run.get("selection", {})
    parts = []
    if sel.get("keyword"):
        parts.append(f"-k {sel['keyword']!r}")
    if sel.get("markexpr"):
        parts.append(f"-m {sel['markexpr']!r}")
    if sel.get("last_failed"):
        parts.append("--lf")
    if run.get("filtered") and sel.get("args"):
        parts.append("paths " + " ".join(str(a) for a in sel["args"]))
    if sel.get("deselected"):
        parts.append(f"{sel['deselected']} deselected")
    text = ("Selection: " + ", ".join(parts) + " (cells are Partial)") if run.get("filtered") else \
        "Selection: the whole suite"
    if run.get("interrupted"):
        text += " · the run was interrupted"
    if run.get("server_down"):
        text += " · server down during the run: " + ", ".join(run["server_down"])
    return text


# ------------------------------------------------------------------------------------------ matrix.html

_CSS = """
:root { --ok:#1f7a3a; --ok-bg:#e3f4e8; --bad:#b42318; --bad-bg:#fde7e5; --none:#667085; --none-bg:#f2f4f7;
        --line:#d0d5dd; --ink:#101828; --muted:#475467; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--ink);
       margin: 24px 32px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: var(--muted); margin: 0 0 16px; }
.meta span { margin-right: 14px; white-space: nowrap; }
fieldset.filters { border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; margin: 0 0 16px; }
fieldset.filters legend { color: var(--muted); padding: 0 4px; }
fieldset.filters label { margin-right: 14px; white-space: nowrap; cursor: pointer; }
fieldset.filters button { margin-left: 4px; font: inherit; padding: 1px 8px; }
table.matrix { border-collapse: separate; border-spacing: 4px; }
table.matrix th { text-align: left; font-weight: 600; padding: 6px 8px; color: var(--muted); }
table.matrix th.hw { text-transform: uppercase; color: var(--ink); }
td.cell { min-width: 118px; padding: 8px 10px; border-radius: 8px; vertical-align: top; border: 1px solid; }
td.cell .status { font-weight: 700; display: block; }
td.cell .counts { font-size: 12px; display: block; }
td.cell .axes { font-size: 11px; color: var(--muted); display: block; }
td.cell a { color: inherit; }
.status-verified { background: var(--ok-bg); border-color: #9fd9b1; color: var(--ok); }
.status-failed, .status-server-down { background: var(--bad-bg); border-color: #f5b3ab; color: var(--bad); }
.status-passed { background: #f3faf5; border-color: #c6e7d0; color: #3b7a50; }
.status-partial, .status-interrupted { background: #fffaeb; border-color: #fedf89; color: #93370d; }
.status-not-run { background: #fafbfc; border-color: #e4e7ec; border-style: dashed; color: #98a2b3; }
.summary { margin: 0 0 12px; }
.legend span { display: inline-block; padding: 1px 8px; border-radius: 6px; margin-right: 8px; border: 1px solid; }
section.cell-detail { border: 1px solid var(--line); border-radius: 8px; padding: 4px 14px 10px; margin: 10px 0; }
section.cell-detail h3 .badge { font-size: 12px; padding: 1px 8px; border-radius: 6px; border: 1px solid;
                                margin-left: 6px; }
ul.failures, ul.known { padding-left: 18px; margin: 6px 0; }
ul.failures li, ul.known li { margin: 4px 0; }
code { font: 12.5px ui-monospace, "DejaVu Sans Mono", monospace; background: #f2f4f7; padding: 0 3px;
       border-radius: 4px; }
.outcome { font-weight: 600; }
.outcome-failed, .outcome-error, .outcome-xpassed { color: var(--bad); }
.outcome-xfailed { color: var(--none); }
.msg { display: block; color: var(--muted); white-space: pre-wrap; font-size: 12.5px; margin-top: 2px; }
.section-ref { color: var(--muted); font-size: 12px; }
.none { color: var(--muted); }
details { margin: 6px 0; }
table.args { border-collapse: collapse; font-size: 12.5px; }
table.args td { border-top: 1px solid #eaecf0; padding: 2px 10px 2px 0; vertical-align: top; }
.hidden { display: none !important; }
"""

_JS = """
(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-family-filter]'));
  function chosen() {
    var on = {};
    boxes.forEach(function (b) { if (b.checked) { on[b.value] = true; } });
    return on;
  }
  function statusOf(n, td, all) {
    if (all) { return td.getAttribute('data-status-full'); }
    if (n.failed || n.error || n.xpassed) { return 'Failed'; }
    if (n.passed) { return 'Partial (filtered view)'; }
    return 'Not run';
  }
  function classOf(st) {
    if (st === 'Verified') { return 'status-verified'; }
    if (st === 'Failed') { return 'status-failed'; }
    if (st === 'Server down') { return 'status-server-down'; }
    if (st === 'Interrupted') { return 'status-interrupted'; }
    if (st === 'Not run') { return 'status-not-run'; }
    if (st.indexOf('Passed') === 0) { return 'status-passed'; }
    return 'status-partial';
  }
  function countsText(n) {
    var parts = [n.passed + ' passed'];
    if (n.failed + n.error) { parts.push((n.failed + n.error) + ' failed'); }
    if (n.xpassed) { parts.push(n.xpassed + ' unexpectedly passed'); }
    if (n.xfailed) { parts.push(n.xfailed + ' known'); }
    if (n.skipped) { parts.push(n.skipped + ' skipped'); }
    if (n.not_run) { parts.push(n.not_run + ' not run'); }
    return parts.join(' \\u00b7 ');
  }
  function apply() {
    var on = chosen();
    var all = boxes.every(function (b) { return b.checked; });
    document.querySelectorAll('td.cell[data-families]').forEach(function (td) {
      var fams = JSON.parse(td.getAttribute('data-families'));
      var n = {passed: 0, failed: 0, skipped: 0, xfailed: 0, xpassed: 0, error: 0, not_run: 0};
      Object.keys(fams).forEach(function (f) {
        if (!on[f]) { return; }
        Object.keys(n).forEach(function (k) { n[k] += fams[f][k] || 0; });
      });
      var st = statusOf(n, td, all);
      td.classList.remove('status-verified', 'status-failed', 'status-server-down', 'status-interrupted',
                          'status-not-run', 'status-passed', 'status-partial');
      td.classList.add(classOf(st));
      td.setAttribute('data-status', st);
      td.querySelector('.status').textContent = st;
      td.querySelector('.counts').textContent = countsText(n);
    });
    document.querySelectorAll('li[data-family]').forEach(function (li) {
      li.classList.toggle('hidden', !on[li.getAttribute('data-family')]);
    });
    document.querySelectorAll('section.cell-detail').forEach(function (sec) {
      var shown = sec.querySelectorAll('ul.failures li:not(.hidden)').length;
      var empty = sec.querySelector('.no-failures');
      if (empty) { empty.classList.toggle('hidden', shown > 0); }
    });
    document.body.setAttribute('data-filtered', Object.keys(on).sort().join(','));
  }
  boxes.forEach(function (b) { b.addEventListener('change', apply); });
  var all = document.getElementById('families-all');
  var none = document.getElementById('families-none');
  if (all) { all.addEventListener('click', function () { boxes.forEach(function (b) { b.checked = true; }); apply(); }); }
  if (none) { none.addEventListener('click', function () { boxes.forEach(function (b) { b.checked = false; }); apply(); }); }
  apply();
  document.body.setAttribute('data-ready', 'true');
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def _status_class(status: str) -> str:
    if status.startswith("Passed"):
        return "status-passed"
    if status.startswith("Partial"):
        return "status-partial"
    return "status-" + status.lower().replace(" ", "-")


def _family_label(family: str) -> str:
    return family.removeprefix("test_") or "(none)"


def render_html(report: Mapping[str, Any]) -> str:
    """``matrix.html``: one self-contained page (inline CSS and JS) with the matrix, failures per cell,
    and check-family filters that recompute the cells' status in the browser."""
    cells = report["cells"]
    env = report["environment"]
    hardware, variants = grid(report)
    families = sorted({str(r["family"]) for c in cells for r in c["checks"]})
    gpu = env.get("gpu", {})
    versions = env.get("sglang_versions") or sorted({str(c["sglang_version"]) for c in cells})
    out: list[str] = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>LFM2.5 on SGLang: conformance matrix</title>", f"<style>{_CSS}</style></head>",
        f'<body data-report-version="{_e(report["report_version"])}">',
        "<h1>LFM2.5 on SGLang: conformance matrix</h1>",
        '<p class="meta">'
        f"<span>SGLang <b>{_e(', '.join(versions) or 'unknown')}</b></span>"
        f"<span>pytest-lfm {_e(env.get('plugin_version', '?'))}</span>"
        f"<span>GPU {_e(gpu.get('name', 'unknown'))} (driver {_e(gpu.get('driver', 'unknown'))})</span>"
        f"<span>generated {_e(report['generated_at'])}</span></p>",
    ]
    if families:
        out.append('<fieldset class="filters" id="filters"><legend>Check families</legend>')
        for f in families:
            out.append(f'<label><input type="checkbox" checked data-family-filter value="{_e(f)}"> '
                       f"{_e(_family_label(f))}</label>")
        out.append('<button type="button" id="families-all">all</button>'
                   '<button type="button" id="families-none">none</button></fieldset>')
    run = [c["status"] for c in cells]
    passed_other = sum(1 for st in run if st.startswith(("Passed", "Partial")) or st == INTERRUPTED)
    out.append(f'<p class="summary" id="summary">{len(cells)} cell(s) run: '
               f'<b>{run.count(VERIFIED)}</b> Verified, <b>{run.count(FAILED)}</b> Failed, '
               f'<b>{run.count(SERVER_DOWN)}</b> Server down, <b>{passed_other}</b> passed without verifying '
               'the cell (reference server, random weights, unconfirmed hardware, partial or interrupted).</p>')
    if report.get("run"):
        out.append(f'<p class="meta" id="run">{_e(_run_text(report["run"]))}</p>')
    out.append('<p class="legend"><span class="status-verified">Verified: the whole suite ran, unfiltered and '
               'uninterrupted, on real weights and confirmed hardware, every check passing or failing as '
               'declared</span>'
               '<span class="status-passed">Passed (reference server / random weights / hardware not confirmed)'
               '</span><span class="status-partial">Partial (N of M checks) or Interrupted</span>'
               '<span class="status-failed">Failed: a check failed or a known failure passed</span>'
               '<span class="status-server-down">Server down</span>'
               '<span class="status-not-run">Not run</span></p>')
    out.append('<table class="matrix" id="matrix"><thead><tr><th></th>')
    out += [f'<th scope="col">{_e(v)}</th>' for v in variants]
    out.append("</tr></thead><tbody>")
    for hw in hardware:
        out.append(f'<tr><th scope="row" class="hw">{_e(hardware_label(hw))}</th>')
        for v in variants:
            mine = [c for c in cells if c["hardware"] == hw and c["variant"] == v]
            if not mine:
                out.append(f'<td class="cell status-not-run" data-hardware="{_e(hw)}" data-variant="{_e(v)}" '
                           'data-status="Not run"><span class="status">Not run</span>'
                           '<span class="counts">no results</span></td>')
                continue
            for c in mine:
                fams: dict[str, dict[str, int]] = {}
                for r in c["checks"]:
                    fams.setdefault(str(r["family"]), dict.fromkeys(OUTCOMES, 0))[r["outcome"]] += 1
                axes = "" if _is_default_axes(c) else f'<span class="axes">{_e(_label(c))}</span>'
                out.append(
                    f'<td class="cell {_status_class(c["status"])}" id="cell-{_e(_slug(c["key"]))}" '
                    f'data-key="{_e(c["key"])}" data-hardware="{_e(hw)}" data-variant="{_e(v)}" '
                    f'data-status="{_e(c["status"])}" data-status-full="{_e(c["status"])}" data-families="{_e(json.dumps(fams, sort_keys=True))}">'
                    f'<a href="#detail-{_e(_slug(c["key"]))}"><span class="status">{_e(c["status"])}</span></a>'
                    f'<span class="counts">{_e(_counts_text(c["counts"]))}</span>{axes}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append("<h2>Cells</h2>")
    if not cells:
        out.append('<p class="none">No cells: the run had no targets.</p>')
    for c in cells:
        slug = _slug(c["key"])
        out.append(f'<section class="cell-detail" id="detail-{_e(slug)}" data-key="{_e(c["key"])}">'
                   f'<h3>{_e(hardware_label(str(c["hardware"])))} / {_e(c["variant"])} '
                   f'<span class="badge {_status_class(c["status"])}">{_e(c["status"])}</span></h3>'
                   f'<div class="section-ref">{_e(c["quantization"])} · {_e(c["strategy"])} · '
                   f'{_e(c["nodes"])} node(s) · SGLang {_e(c["sglang_version"] or "unknown")} · '
                   f'{_e(c["mode"])} {_e(c["base_url"])}</div>')
        failing = [r for r in c["checks"] if r["outcome"] in FAILING_OUTCOMES]
        out.append('<ul class="failures">')
        for r in failing:
            what = "unexpectedly passed (remove its known-failure entry)" if r["outcome"] == "xpassed" else r["outcome"]
            sec = f' <span class="section-ref">{_e(r["section"])}</span>' if r.get("section") else ""
            out.append(f'<li data-family="{_e(r["family"])}" data-outcome="{_e(r["outcome"])}">'
                       f'<code>{_e(r.get("check") or r["nodeid"])}</code> '
                       f'<span class="outcome outcome-{_e(r["outcome"])}">{_e(what)}</span>{sec}'
                       f'<span class="msg">{_e(_first_line(r["message"], 400))}</span></li>')
        out.append("</ul>")
        out.append(f'<p class="none no-failures{" hidden" if failing else ""}">No failures.</p>')
        known = [r for r in c["checks"] if r["outcome"] == "xfailed"]
        if known:
            out.append('<details><summary>Known failures (strict expected failures): '
                       f'{len(known)}</summary><ul class="known">')
            out += [f'<li data-family="{_e(r["family"])}"><code>{_e(r.get("check") or r["nodeid"])}</code>'
                    f'<span class="msg">{_e(_first_line(r["message"], 400))}</span></li>' for r in known]
            out.append("</ul></details>")
        if c["server_args"]:
            out.append("<details><summary>Resolved server args</summary><table class=\"args\">")
            out += [f"<tr><td><code>{_e(k)}</code></td><td>{_e(json.dumps(v, ensure_ascii=False, default=str))}</td></tr>"
                    for k, v in sorted(c["server_args"].items())]
            out.append("</table></details>")
        out.append("</section>")
    out.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------ files


def write_report_files(directory: Path, report: Mapping[str, Any]) -> Path:
    """Validate ``report`` and write ``report.json``, ``matrix.md`` and ``matrix.html`` into ``directory``."""
    validate_report(report, "the report being written")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n",
                                           encoding="utf-8")
    (directory / "matrix.md").write_text(render_matrix(report), encoding="utf-8")
    (directory / "matrix.html").write_text(render_html(report), encoding="utf-8")
    return directory / "report.json"


def write_report(directory: Path, targets: Sequence[TargetInfo], results: Iterable[CheckResult],
                 run: RunInfo | None = None) -> Path:
    """Write ``report.json`` (schema-checked), ``matrix.md`` and ``matrix.html`` into ``directory``."""
    return write_report_files(directory, build_report(targets, results, run))


# ------------------------------------------------------------------------------------------ merge


def merge_reports(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], list[str]]:
    """Combine reports (``(source name, report)``) of several runs, e.g. one per GPU, into one report.

    Cells with the same key are combined; a check present in several of them keeps the last source's
    result. Returns the merged report and warnings naming each overridden check."""
    if not reports:
        raise ReportError("nothing to merge", remedy="pass two or more report.json files")
    warnings: list[str] = []
    merged: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, dict[str, Any]]] = {}
    origin: dict[tuple[str, str], str] = {}
    other: list[dict[str, Any]] = []
    for source, rep in reports:
        for cell in rep["cells"]:
            key = cell_key(cell)
            base = {k: v for k, v in cell.items() if k not in ("counts", "status", "checks", "key")}
            if key in merged and merged[key].get("sglang_version") != base.get("sglang_version"):
                warnings.append(f"cell {key}: SGLang {merged[key].get('sglang_version')} in "
                                f"{origin.get((key, ''), '?')} and {base.get('sglang_version')} in {source}; "
                                "keeping the later")
            merged[key] = base
            origin[(key, "")] = source
            mine = checks.setdefault(key, {})
            overridden: dict[str, list[str]] = {}
            for r in cell["checks"]:
                nid = normalize_nodeid(r["nodeid"])
                if nid in mine:
                    overridden.setdefault(origin[(key, nid)], []).append(nid)
                mine[nid] = dict(r)
                origin[(key, nid)] = source
            for earlier, nids in overridden.items():
                shown = ", ".join(nids[:3]) + (f" and {len(nids) - 3} more" if len(nids) > 3 else "")
                warnings.append(f"cell {key}: {len(nids)} check(s) are in both {earlier} and {source}; "
                                f"keeping {source}'s results ({shown})")
        other += [dict(r) for r in rep.get("other_checks", [])]
    cells = [_make_cell(info, list(checks[key].values())) for key, info in merged.items()]
    envs = [rep["environment"] for _, rep in reports]
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    gpus = list(dict.fromkeys(str(e.get("gpu", {}).get("name", "unknown")) for e in envs))
    drivers = list(dict.fromkeys(str(e.get("gpu", {}).get("driver", "unknown")) for e in envs))
    env = {
        **envs[-1],
        "plugin_version": plugin_version(),
        "sglang_versions": sorted({str(c["sglang_version"] or "unknown") for c in cells}),
        "gpu": {"name": ", ".join(gpus), "driver": ", ".join(drivers),
                "count": sum(int(e.get("gpu", {}).get("count", 0)) for e in envs)},
        "time": now,
        "merged_from": [{"source": s, "generated_at": r["generated_at"], "environment": r["environment"]}
                        for s, r in reports],
    }
    return {"report_version": REPORT_VERSION, "generated_at": now, "environment": env, "cells": cells,
            "other_checks": other}, warnings
