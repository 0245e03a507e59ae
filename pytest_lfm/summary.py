"""A compact markdown summary of a run for a CI job page (GitHub Actions' ``$GITHUB_STEP_SUMMARY``).

Appended at the end of the session when ``$GITHUB_STEP_SUMMARY`` is set or ``--lfm-step-summary=PATH``
is given, the way SGLang's own CI appends its performance summaries: a heading, the failing checks first
(failed, error, or a known failure that passed), one row per cell with its status in the report's honest
wording ("Verified" only for a whole-suite run on real weights and confirmed hardware; otherwise
"Passed (random weights)", "Partial (N of M checks)", ...), then where the artifacts are. Rendered from
the report dict alone (:func:`render_summary`), so ``report.json`` and the summary never disagree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_lfm.reporting import FAILED, INTERRUPTED, SERVER_DOWN, VERIFIED, redact

if TYPE_CHECKING:
    from pytest_lfm.config import LfmConfig

#: Failing checks listed before "… and N more".
FAILURE_LIMIT = 20
#: Outcomes listed as failing checks, with how the summary names them.
FAILING = {"failed": "failed", "error": "error",
           "xpassed": "known failure passed (remove its known-failure entry)"}


def status_rank(status: str) -> int:
    """Most serious first: Failed, Server down, Interrupted, Partial, Passed (...), Verified."""
    if status == FAILED:
        return 0
    if status == SERVER_DOWN:
        return 1
    if status == INTERRUPTED:
        return 2
    if status.startswith("Partial"):
        return 3
    if status == VERIFIED:
        return 5
    return 4


def _cell(text: Any, limit: int = 160) -> str:
    """One markdown table cell: first line, pipes escaped, secrets redacted, shortened."""
    line = str(redact({"text": str(text)})["text"]).strip().splitlines()[0] if str(text).strip() else ""
    if len(line) > limit:
        line = line[: limit - 1] + "…"
    return line.replace("|", "\\|")


def _counts(counts: Mapping[str, int]) -> str:
    order = ("passed", "failed", "error", "xpassed", "xfailed", "skipped", "not_run")
    return ", ".join(f"{counts[k]} {k.replace('_', ' ')}" for k in order if counts.get(k)) or "no checks"


def run_page_url(environ: Mapping[str, str]) -> str | None:
    """The CI page that lists this run's artifacts (GitHub Actions run page, GitLab job artifacts)."""
    server, repo, run_id = (environ.get(k, "") for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run_id:
        return f"{server}/{repo}/actions/runs/{run_id}#artifacts"
    job = environ.get("CI_JOB_URL", "")
    return f"{job}/artifacts/browse" if job else None


def render_summary(report: Mapping[str, Any], artifacts: Sequence[tuple[str, str]] = (),
                   run_url: str | None = None) -> str:
    """The markdown summary of one report: heading, failing checks, cells, run selection, artifacts.
    ``artifacts``: (label, path) pairs; ``run_url``: the CI page listing them."""
    cells = sorted(report.get("cells", []), key=lambda c: (status_rank(str(c.get("status", ""))),
                                                             str(c.get("key", ""))))
    versions = ", ".join(report.get("environment", {}).get("sglang_versions", [])) or "unknown"
    statuses = [str(c.get("status", "")) for c in cells]
    tally = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses)) or "no cells"
    lines = [f"### pytest-lfm: LFM2.5 conformance on SGLang {versions}", "", f"**{tally}**"]
    run = report.get("run")
    if run:
        from pytest_lfm.reporting import _run_text

        lines += ["", _run_text(run)]
    failing = [(c, r) for c in cells for r in c.get("checks", []) if r.get("outcome") in FAILING]
    if failing:
        lines += ["", f"#### Failing checks ({len(failing)})", "", "| cell | check | outcome | message |",
                  "|---|---|---|---|"]
        for c, r in failing[:FAILURE_LIMIT]:
            lines.append(f"| {_cell(c.get('key', c.get('id', '')))} | `{_cell(r.get('check') or r.get('nodeid'))}` "
                         f"| {FAILING[r['outcome']]} | {_cell(r.get('message', ''))} |")
        if len(failing) > FAILURE_LIMIT:
            lines.append(f"\n… and {len(failing) - FAILURE_LIMIT} more: every failure is in report.json and matrix.md")
    lines += ["", "#### Cells", "", "| hardware | variant | quant | strategy | nodes | status | checks |",
              "|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {_cell(c.get('hardware'))} | {_cell(c.get('variant'))} | {_cell(c.get('quantization'))} "
                     f"| {_cell(c.get('strategy'))} | {_cell(c.get('nodes'))} | **{_cell(c.get('status'))}** "
                     f"| {_counts(c.get('counts', {}))} |")
    if artifacts or run_url:
        lines += ["", "#### Artifacts", ""]
        if run_url:
            lines.append(f"- [this run's artifacts]({run_url})")
        lines += [f"- {label}: `{_cell(path, 300)}`" for label, path in artifacts]
    return "\n".join(lines) + "\n\n"


def artifact_paths(cfg: LfmConfig, junit_xml: str | None = None) -> list[tuple[str, str]]:
    """The files a run wrote: report.json, matrix.md, matrix.html, JUnit XML, server logs."""
    out: list[tuple[str, str]] = []
    if cfg.report_dir is not None:
        out += [(name, str(cfg.report_dir / name)) for name in ("report.json", "matrix.md", "matrix.html")]
    if junit_xml:
        out.append(("JUnit XML", junit_xml))
    if cfg.log_dir is not None and (cfg.launch or cfg.engine):
        out.append(("server logs", f"{cfg.log_dir}/sglang-*.log"))
    return out


def write_step_summary(cfg: LfmConfig, report: dict[str, Any], junit_xml: str | None = None,
                       environ: Mapping[str, str] | None = None) -> str:
    """Append :func:`render_summary` to ``cfg.step_summary``; returns the line to show in the terminal
    (a summary that cannot be written is reported, never a reason to fail the run)."""
    assert cfg.step_summary is not None
    path = Path(cfg.step_summary)
    text = render_summary(report, artifact_paths(cfg, junit_xml),
                          run_page_url(os.environ if environ is None else environ))
    try:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        return (f"lfm: could not append the step summary to {path}: {exc.strerror or exc} "
                f"(check --lfm-step-summary / $GITHUB_STEP_SUMMARY)")
    return f"lfm: step summary appended to {path}"
