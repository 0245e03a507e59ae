"""``python -m pytest_lfm diff OLD NEW``: what changed between two runs, in the terms of a ship decision.

Checks are matched on their cell (hardware/variant/quantization/strategy/nodes) and their check id
(``FILE.py::test_name[params]`` without the target parameter). Each pair of outcomes falls into one
section (see :data:`SECTIONS`):

* **Regressions**: failing or erroring now, and it passed, was skipped or was not there before; or a
  check that passed before is now a known (expected) failure: the new release behaves worse.
* **Absent from the newer report**: in the old report, not in the new one. A run that was interrupted
  or filtered (``-k``, ``-m``, paths, ``--lf``) leaves checks out; they count as a regression unless
  ``--allow-partial`` says a partial run is what you meant to compare.
* **Fixes**: failing before, passing now (an unexpected pass of a known failure included).
* **Changed expectations**: a known failure or a version gate moved: xfailed before and failed/passed
  now, or failed before and xfailed now, or an unexpected pass appeared or went away; or a check a
  version gate skipped now passes, or a check that ran is now skipped by a version gate.
* **Newly not run**: ran before, skipped (other than by a version gate) or not run now.
* **Failing with a different message**, **newly run**, **new checks**, **changed statistic**: information.

Messages are compared after :func:`normalise_message` masks what differs between two runs of the
same code (version strings, ports, pids, ids, temporary paths, durations), so two releases with the
same behaviour produce a diff of a few lines. A check that changed the same way in several cells is
one line naming the cells.

Exit status: :data:`EXIT_OK` (0) no regression, :data:`EXIT_REGRESSION` (1) a regression (absent
checks included unless allowed), :data:`EXIT_BAD_INPUT` (2) an input file is not a usable report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_lfm.reporting import cell_key, check_name, normalize_nodeid

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2

FAILED = ("failed", "error")
NOT_RUN = ("skipped", "not_run")

#: (attribute, title, counts towards the exit status) in the order they are printed.
SECTIONS: tuple[tuple[str, str, bool], ...] = (
    ("regressions", "Regressions (worse now: failing, or a known failure, where it passed or did not run before)",
     True),
    ("absent", "Absent from the newer report (in OLD, not in NEW)", True),
    ("fixes", "Fixes (failing before, passing now)", False),
    ("expectations", "Changed expectations (a known failure or its version gate moved)", False),
    ("newly_not_run", "Newly not run (ran before; skipped, not by a version gate, or not run now)", False),
    ("failing_differently", "Still failing, with a different message", False),
    ("newly_run", "Newly run (skipped or not run before; not failing now)", False),
    ("added", "New checks (not in OLD; not failing)", False),
    ("statistics", "Changed statistic (same outcome and message)", False),
)

_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    # temporary paths: /tmp/..., /var/folders/..., pytest's tmp_path directories
    (re.compile(r"(?:/private)?/(?:tmp|var/folders|var/tmp)/[^\s'\"),\]}]*"), "<tmp>"),
    (re.compile(r"[^\s'\"(]*pytest-of-[^\s'\"),\]}]*"), "<tmp>"),
    # UUIDs and the ids servers give to objects (chatcmpl-…, call_…, req ids), long hex strings
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b(?:chatcmpl|cmpl|call|req|resp|run|tool|id)[-_][0-9A-Za-z]{6,}\b"), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{12,}\b"), "<id>"),
    # version strings: 0.5.23, v0.5.12.post1, 1.2.3rc1, 0.5.24.dev3+g1234abc
    # (a version after a comparison operator is a gate's bound, part of the expectation: kept)
    (re.compile(r"(?<![<>=~!\d.])\bv?\d+\.\d+\.\d+(?:[.-]?(?:post|dev|rc|a|b)\d*)*(?:\+[0-9A-Za-z.]+)?\b"),
     "<version>"),
    # host:port and "port N"
    (re.compile(r"(?<=[\w\]]):\d{2,5}\b"), ":<port>"),
    (re.compile(r"\bport[ =]\d{2,5}\b", re.I), "port <port>"),
    (re.compile(r"\bpid[ =:]?\d+\b", re.I), "pid <pid>"),
    # durations: "12.3 s", "0.42s", "150 ms"
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:ms|s|seconds)\b"), "<duration>"),
    # object addresses in reprs
    (re.compile(r"\bat 0x[0-9a-fA-F]+\b"), "at <addr>"),
)


def normalise_message(message: str, limit: int = 300, lines: int = 3) -> str:
    """The first ``lines`` non-blank lines of a check's message (what was checked, then Expected and
    Actual) joined with `` · `` and cut to ``limit`` characters, with version strings, ports, pids, ids,
    temporary paths and durations masked: two runs of the same code give the same text."""
    kept = [re.sub(r"\s+", " ", ln.strip()) for ln in (message or "").splitlines() if ln.strip()][:lines]
    text = " · ".join(kept)
    for pattern, repl in _MASKS:
        text = pattern.sub(repl, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _headline(message: str) -> str:
    return message.split(" · ", 1)[0]


@dataclass
class Change:
    """One check in one cell whose result differs between the two reports."""

    cell: str
    check: str
    old: str
    new: str
    message: str = ""
    detail: str = ""
    nodeid: str = ""


@dataclass
class RunInfo:
    """Whether a report covers a whole run (from its ``run`` block; absent in older reports)."""

    interrupted: bool = False
    filtered: bool = False
    selection: str = ""
    not_run: int = 0
    server_down: list[str] = field(default_factory=list)
    incomplete_cells: int = 0

    @property
    def partial(self) -> bool:
        """The run did not execute everything it would have without a filter or an interruption."""
        return (self.interrupted or self.filtered or self.not_run > 0 or bool(self.server_down)
                or self.incomplete_cells > 0)

    def describe(self) -> str:
        """Why the run is partial, in words."""
        parts = []
        if self.interrupted:
            parts.append("the run was interrupted")
        if self.filtered:
            parts.append(f"the run was filtered ({self.selection or 'selection options'})")
        if self.server_down:
            parts.append(f"server down for {', '.join(self.server_down)}")
        if self.not_run:
            parts.append(f"{self.not_run} check(s) not run")
        if self.incomplete_cells and not (self.interrupted or self.filtered):
            parts.append(f"{self.incomplete_cells} cell(s) did not run the whole suite (e.g. -x stopped the run)")
        return "; ".join(parts)


@dataclass
class ReportDiff:
    """Differences between an old and a new report, by section (see :data:`SECTIONS`)."""

    regressions: list[Change] = field(default_factory=list)
    absent: list[Change] = field(default_factory=list)
    fixes: list[Change] = field(default_factory=list)
    expectations: list[Change] = field(default_factory=list)
    newly_not_run: list[Change] = field(default_factory=list)
    failing_differently: list[Change] = field(default_factory=list)
    newly_run: list[Change] = field(default_factory=list)
    added: list[Change] = field(default_factory=list)
    statistics: list[Change] = field(default_factory=list)
    compared: int = 0
    cells: list[str] = field(default_factory=list)
    old_run: RunInfo = field(default_factory=RunInfo)
    new_run: RunInfo = field(default_factory=RunInfo)
    allow_partial: bool = False

    @property
    def has_regression(self) -> bool:
        """A regression, or checks absent from the new report when partial runs are not allowed."""
        return bool(self.regressions or (self.absent and not self.allow_partial))

    @property
    def identical(self) -> bool:
        """No check differs (after message normalisation) and nothing is absent or added."""
        return not any(getattr(self, attr) for attr, _, _ in SECTIONS)

    def as_dict(self) -> dict[str, Any]:
        """The sections as plain data (for ``--json``)."""
        d: dict[str, Any] = asdict(self)
        d["regression"] = self.has_regression
        d["identical"] = self.identical
        d["old_run"]["partial"] = self.old_run.partial
        d["new_run"]["partial"] = self.new_run.partial
        return d


def run_info(report: Mapping[str, Any]) -> RunInfo:
    """The report's ``run`` block and its cells' ``complete`` flags (see the report contract), tolerating
    reports written before they existed."""
    run = report.get("run") or {}
    sel = run.get("selection") or {}
    bits = []
    if sel.get("keyword"):
        bits.append(f"-k {sel['keyword']!r}")
    if sel.get("markexpr"):
        bits.append(f"-m {sel['markexpr']!r}")
    if sel.get("last_failed"):
        bits.append("--lf")
    if sel.get("args"):
        bits.append("paths " + " ".join(map(str, sel["args"])))
    if sel.get("deselected"):
        bits.append(f"{sel['deselected']} deselected")
    not_run = sum(1 for _, _, r in _checks(report) if r.get("outcome") == "not_run")
    incomplete = sum(1 for c in report.get("cells", []) if c.get("complete") is False)
    return RunInfo(interrupted=bool(run.get("interrupted")), filtered=bool(run.get("filtered")),
                   selection=", ".join(bits), not_run=not_run,
                   server_down=[str(s) for s in run.get("server_down") or []], incomplete_cells=incomplete)


def _checks(report: Mapping[str, Any]) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    """(cell key, check id, check) for every check; ``other_checks`` under the cell key ``(no cell)``."""
    for cell in report.get("cells", []):
        key = cell.get("key") or cell_key(cell)
        for r in cell.get("checks", []):
            yield key, _check_id(r), r
    for r in report.get("other_checks", []):
        yield "(no cell)", _check_id(r), r


def _check_id(r: Mapping[str, Any]) -> str:
    """``FILE.py::test[params]`` without directories, so a module moved into a folder keeps its id."""
    check = str(r.get("check") or check_name(r["nodeid"], str(r.get("target", ""))))
    path, sep, rest = check.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def _stat(r: Mapping[str, Any]) -> Any:
    return (r.get("properties") or {}).get("lfm_statistic")


#: Skip messages of version gates (case ``sglang`` gates, ``lfm_sglang`` markers, release facts).
VERSION_GATE = re.compile(r"applies to SGLang|needs SGLang|SGLang release(?:s)? (?:with|without)|release fact", re.I)


def _gated(outcome: str | None, message: str) -> bool:
    return outcome == "skipped" and bool(VERSION_GATE.search(message or ""))


def _section(was: str | None, now: str | None) -> str | None:
    """The section a pair of outcomes belongs in (``None``: same result or nothing worth listing)."""
    if now is None:
        return "absent"
    if was is None:
        return "regressions" if now in FAILED else "expectations" if now == "xpassed" else "added"
    if now in FAILED:
        if was in FAILED:
            return "failing_differently"
        return "expectations" if was == "xfailed" else "regressions"
    if now == "xfailed":
        if was in ("passed", "xpassed"):
            return "regressions"
        return "expectations" if was in FAILED else "newly_run" if was in NOT_RUN else None
    if now == "passed":
        if was in FAILED:
            return "fixes"
        if was in ("xfailed", "xpassed"):
            return "expectations"
        return "newly_run" if was in NOT_RUN else None
    if now == "xpassed":
        return "fixes" if was in ("xfailed", *FAILED) else None if was == "xpassed" else "expectations"
    if now in NOT_RUN:
        return None if was in NOT_RUN else "newly_not_run"
    return None


_NOTES = {
    ("passed", "xfailed"): "a known failure applies to the new release",
    ("xpassed", "xfailed"): "a known failure applies to the new release",
    ("xfailed", "failed"): "the known failure no longer covers this release, and the check still fails",
    ("xfailed", "error"): "the known failure no longer covers this release, and the check errors",
    ("xfailed", "passed"): "the known failure no longer covers this release, and the check passes",
    ("failed", "xfailed"): "a known failure now covers this failure",
    ("xfailed", "xpassed"): "strict unexpected pass: the known failure is fixed; end its gate before this release",
    ("failed", "xpassed"): "strict unexpected pass: fixed, but a known failure still covers this release",
    ("xpassed", "passed"): "the known-failure entry was removed or its gate ended",
}


def diff_reports(old: Mapping[str, Any], new: Mapping[str, Any], allow_partial: bool = False) -> ReportDiff:
    """Compare two reports check by check (see the module docstring)."""
    out = ReportDiff(old_run=run_info(old), new_run=run_info(new), allow_partial=allow_partial)
    old_checks = {(k, c): r for k, c, r in _checks(old)}
    new_checks = {(k, c): r for k, c, r in _checks(new)}
    out.cells = sorted({k for k, _ in old_checks} | {k for k, _ in new_checks})
    for key in sorted(old_checks.keys() | new_checks.keys()):
        before, after = old_checks.get(key), new_checks.get(key)
        was = before["outcome"] if before is not None else None
        now = after["outcome"] if after is not None else None
        if before is not None and after is not None:
            out.compared += 1
        section = _section(was, now)
        msg = normalise_message((after or {}).get("message", ""))
        old_msg = normalise_message((before or {}).get("message", ""))
        detail = _NOTES.get((str(was), str(now)), "")
        if section == "newly_run" and _gated(was, old_msg):
            section, msg, detail = "expectations", f"was {old_msg}", "a version gate now includes this release"
        elif section == "newly_not_run" and _gated(now, msg):
            section, detail = "expectations", "a version gate now excludes this release"
        if section == "failing_differently":
            if msg == old_msg:
                section = "statistics" if _stat(before or {}) != _stat(after or {}) else None
            else:
                detail = f"message was: {old_msg or '(none)'}"
        elif section is None and was == now and _stat(before or {}) != _stat(after or {}):
            section = "statistics"
        if section == "statistics":
            detail = f"statistic {_stat(before or {})!r} → {_stat(after or {})!r}"
        if section == "absent":
            msg = old_msg if was in FAILED else ""
        if section is None:
            continue
        nodeid = normalize_nodeid(str((after or before or {}).get("nodeid", "")))
        getattr(out, section).append(Change(key[0], key[1], was or "absent", now or "absent", msg, detail, nodeid))
    return out


# ------------------------------------------------------------------------------------------ rendering


def _versions(report: Mapping[str, Any]) -> str:
    env = report.get("environment") or {}
    vs = env.get("sglang_versions") or sorted({str(c.get("sglang_version")) for c in report.get("cells", [])})
    return ", ".join(vs) or "unknown"


def _cell_labels(cells: Iterable[str]) -> dict[str, str]:
    """Short names for cells: the variant alone when every cell shares the other axes."""
    cells = list(cells)
    split = {c: c.split("/") for c in cells if c.count("/") == 4}
    others = {tuple(p[:1] + p[2:]) for p in split.values()}
    if len(split) == len(cells) and len(others) <= 1:
        return {c: p[1] for c, p in split.items()}
    return {c: c for c in cells}


def _grouped(items: list[Change]) -> list[tuple[Change, list[str], bool]]:
    """Changes that are the same apart from their cell (and the details of their message after its first
    line), as (first change, cells, whether the details differ between the cells)."""
    groups: dict[tuple[str, str, str, str, str], tuple[Change, list[str], set[str]]] = {}
    for c in items:
        detail = c.detail if c.detail.startswith("statistic") else _headline(c.detail)
        k = (c.check, c.old, c.new, _headline(c.message), detail)
        if k in groups:
            groups[k][1].append(c.cell)
            groups[k][2].add(c.message + c.detail)
        else:
            groups[k] = (c, [c.cell], {c.message + c.detail})
    return [(c, cells, len(variants) > 1) for c, cells, variants in groups.values()]


#: Sections listed at most :data:`LIST_LIMIT` lines deep unless the full listing is asked for (an interrupted
#: run leaves thousands of checks absent; the count and the first few say what happened).
SHORTENED = ("absent", "newly_not_run", "newly_run", "added", "statistics")
LIST_LIMIT = 20


def render_diff(diff: ReportDiff, old: Mapping[str, Any], new: Mapping[str, Any],
                old_name: str = "OLD", new_name: str = "NEW", full: bool = False) -> str:
    """A few lines when nothing changed; else one block per section, one line per check (cells collapsed).
    The sections of :data:`SHORTENED` stop after :data:`LIST_LIMIT` checks unless ``full``."""
    labels = _cell_labels(diff.cells)
    n_cells = len([c for c in diff.cells if c != "(no cell)"])
    runs_it: dict[str, set[str]] = {}  # check id → the cells that have it in either report
    for doc in (old, new):
        for cell, check, _ in _checks(doc):
            runs_it.setdefault(check, set()).add(cell)
    lines = [f"pytest-lfm diff: {old_name} (SGLang {_versions(old)}, {old.get('generated_at', '?')}) → "
             f"{new_name} (SGLang {_versions(new)}, {new.get('generated_at', '?')})"]
    for name, run in (("OLD", diff.old_run), ("NEW", diff.new_run)):
        if run.partial:
            lines.append(f"warning: {name} is a PARTIAL run: {run.describe()}")
    lines.append(f"{diff.compared} check results compared in {n_cells} cell(s); messages compared with "
                 f"versions, ports, pids, ids, temporary paths and durations masked")
    if diff.identical:
        lines.append("identical results: no check differs between the two reports")
    for attr, title, _ in SECTIONS:
        items: list[Change] = getattr(diff, attr)
        if not items:
            continue
        groups = _grouped(items)
        lines += ["", f"{title}: {len(items)}" + (f" ({len(groups)} distinct)" if len(groups) != len(items) else "")]
        shown = groups if full or attr not in SHORTENED else groups[:LIST_LIMIT]
        for c, cells, varies in shown:
            if len(cells) > 1 and set(cells) == runs_it.get(c.check):
                where = f"every cell that has it: {len(cells)}" if len(cells) < n_cells else f"all {n_cells} cells"
            else:
                where = ", ".join(labels.get(x, x) for x in cells)
            lines.append(f"  - {c.check}: {c.old} → {c.new}  [{where}]")
            if c.message:
                lines.append(f"      {c.message}")
            if c.detail:
                lines.append(f"      ({c.detail})")
            if varies:
                lines.append(f"      (details differ between the cells; shown for {labels.get(c.cell, c.cell)})")
        if len(shown) < len(groups):
            lines.append(f"  … and {len(groups) - len(shown)} more (--full or --json lists them all)")
    if diff.absent:
        if diff.allow_partial:
            lines += ["", f"note: {len(diff.absent)} check(s) absent from NEW are not counted (--allow-partial)"]
        else:
            lines += ["", f"note: {len(diff.absent)} check(s) absent from NEW count as a regression"
                          + (f" ({diff.new_run.describe()})" if diff.new_run.partial else "")
                          + "; pass --allow-partial if comparing a partial run is intended"]
    counts = [(title.split(" (")[0].lower(), len(getattr(diff, attr))) for attr, title, _ in SECTIONS]
    summary = ", ".join(f"{n} {t}" for t, n in counts if n) or "no differences"
    verdict = "REGRESSION" if diff.has_regression else "no regression"
    lines += ["", f"{verdict}: {summary}"]
    return "\n".join(lines) + "\n"
