"""``python -m pytest_lfm``: tools over ``report.json`` files written by ``pytest --lfm-report=DIR``.

* ``diff OLD.json NEW.json``: regressions, checks absent from NEW, fixes, changed expectations and checks
  newly not run between two runs (e.g. two SGLang versions; :mod:`pytest_lfm.report_diff`); exit status
  1 on a regression, so it can gate an upstream upgrade.
* ``releases compare OLD NEW``: every corpus case through two SGLang releases' real parser code, and every
  case whose output changed (:mod:`pytest_lfm.compare`).
* ``merge A.json B.json ...``: combine runs (e.g. one per GPU) into one report and matrix.
* ``cookbook-cell REPORT.json``: each cell that earned "Verified", in the shape of the SGLang cookbook's
  LFM2.5 matrix with the evidence a reviewer needs; the reason for every cell that did not
  (:mod:`pytest_lfm.cookbook`); exit 1 when a cell is refused.
* ``bench --server URL [--variant ID --hardware HW] ...``: the serving benchmark of :mod:`pytest_lfm.bench`
  (TTFT, TPOT, ITL, throughput; JSON and a latency plot with ``--out DIR``), outside pytest.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_lfm.errors import LfmError
from pytest_lfm.report_diff import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REGRESSION,
    LIST_LIMIT,
    diff_reports,
    render_diff,
)
from pytest_lfm.reporting import load_report, merge_reports, write_report_files

_DIFF_HELP = """Compare two reports check by check (matched on the cell: hardware/variant/quantization/
strategy/nodes, and the check id FILE.py::test[params]). Messages are compared with version strings,
ports, pids, ids, temporary paths and durations masked, and a check that changed the same way in several
cells is one line naming them. Sections:

  Regressions             failing now where it passed, was skipped or was absent before; or a known
                          failure now applies where the check passed before
  Absent from NEW         in OLD, not in NEW (an interrupted or filtered run leaves checks out)
  Fixes                   failing before, passing now (or a strict unexpected pass of a known failure)
  Changed expectations    a known failure or a version gate moved (xfailed <-> failed/passed, or a
                          check a version gate skips now runs, or the reverse)
  Newly not run           ran before; skipped (not by a version gate) or not run now
  then: still failing with a different message, newly run, new checks, changed statistic.

A report whose run was interrupted or filtered (-k, -m, paths, --lf; read from its "run" block) is
flagged at the top; its absent checks count as a regression unless --allow-partial.

Exit status: 0 no regression; 1 a regression (absent checks included unless --allow-partial);
2 an input file could not be read or is not a pytest-lfm report."""

_RELEASES_HELP = """Compare two SGLang releases' parser code directly, without a server: install both (once,
with scripts/install_sglang_parsers.sh into $LFM_SGLANG_PARSERS_ROOT/VERSION, default
.sglang-parsers/VERSION), run every tool-call and reasoning corpus case through each release's real
parsers (non-streaming and streaming paths), and print the parser source files that differ (sha256) and
every case whose output changed, both outputs side by side, whether or not an expectation covers it.

Exit status: 0 the comparison ran (changed outputs are information); 2 unusable input (an unknown
release, a failed install, parsers that do not load), naming what was tried and what to do."""

_MERGE_HELP = """Combine the reports of several runs (e.g. one per GPU, or one per SGLang server) into one
report.json, matrix.md and matrix.html. Cells with the same hardware/variant/quantization/strategy/nodes
are combined; when two reports hold the same check of the same cell, the later file on the command line
wins and a warning names it.

Exit status: 0 merged; 2 an input file could not be read or is not a pytest-lfm report."""


_COOKBOOK_HELP = """Print, for each cell of the report that truly earned "Verified" (status Verified, the whole
suite run uninterrupted and unfiltered, real weights, the declared hardware confirmed, nothing failed,
served by --lfm-launch or an attached server, a variant and hardware of the cookbook's matrix), the cell
as the SGLang cookbook's LFM2.5 config (lfm2.5.jsx) keeps it: match {hw, variant, quant, strategy, nodes},
verified, env and flags (the recipe's, with the values the server reported it ran with; secrets
redacted), under comment lines with the SGLang version, date, check counts, declared known failures, run
selection and report path. Every other cell is refused on stderr with each reason.

Exit status: 0 every selected cell was printed; 1 at least one cell was refused (earned cells are still
printed); 2 the report could not be read or no cell matched --cell."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m pytest_lfm``."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_lfm",
        description="Tools over pytest-lfm reports (report.json written by `pytest --lfm-report=DIR`).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{diff,merge,releases,cookbook-cell,bench}")
    d = sub.add_parser("diff", help="compare two reports; exit 1 on a regression",
                       description=_DIFF_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("old", metavar="OLD.json", help="the baseline report (or a directory holding report.json)")
    d.add_argument("new", metavar="NEW.json", help="the report to check (or a directory holding report.json)")
    d.add_argument("--json", action="store_true", help="print the sections as JSON instead of text")
    d.add_argument("--full", action="store_true",
                   help=f"list every check of the long informational sections (absent, newly not run, newly run, "
                        f"new checks, changed statistic), not only the first {LIST_LIMIT}")
    d.add_argument("--allow-partial", action="store_true",
                   help="do not count checks absent from NEW as a regression (comparing a filtered or "
                        "interrupted run on purpose)")
    m = sub.add_parser("merge", help="combine several reports into one matrix",
                       description=_MERGE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("reports", metavar="REPORT.json", nargs="+",
                   help="reports to combine (or directories holding report.json)")
    m.add_argument("-o", "--output", metavar="DIR", type=Path, default=Path("lfm-report-merged"),
                   help="directory to write report.json, matrix.md and matrix.html into "
                        "(default: lfm-report-merged)")
    r = sub.add_parser("releases", help="compare two SGLang releases' parser code on the corpora",
                       description=_RELEASES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    rsub = r.add_subparsers(dest="releases_command", required=True, metavar="{compare}")
    rc = rsub.add_parser("compare", help="every corpus case through two releases; the outputs that changed",
                         description=_RELEASES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    rc.add_argument("old", metavar="OLD", help="the baseline release, e.g. 0.5.22")
    rc.add_argument("new", metavar="NEW", help="the release to check, e.g. 0.5.23")
    rc.add_argument("--json", action="store_true", help="print outputs and source differences as JSON")
    cc = sub.add_parser("cookbook-cell", help="print each cell that earned Verified for the cookbook; exit 1 "
                                              "when a cell is refused",
                        description=_COOKBOOK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    cc.add_argument("report", metavar="REPORT.json", help="a report (or a directory holding report.json)")
    cc.add_argument("--cell", action="append", default=[], metavar="KEY",
                    help="only this cell: its key (hardware/variant/quantization/strategy/nodes) or a prefix such "
                         "as h100/8B-A1B (repeatable)")
    cc.add_argument("--json", action="store_true", help="print cells, evidence and refusals as JSON")
    from pytest_lfm.bench import SEED_COMMAND, add_arguments

    b = sub.add_parser("bench", help="serving benchmark: TTFT, TPOT, ITL, throughput (exit 1 over budget)",
                       description=f"Benchmark a server outside pytest (pytest_lfm.bench); the default workload "
                                   f"is the seed's: {SEED_COMMAND}")
    add_arguments(b)
    return parser


def _diff(args: argparse.Namespace) -> int:
    old = load_report(args.old)
    new = load_report(args.new)
    result = diff_reports(old, new, allow_partial=args.allow_partial)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_diff(result, old, new, args.old, args.new, full=args.full))
    return EXIT_REGRESSION if result.has_regression else EXIT_OK


def _releases(args: argparse.Namespace) -> int:
    from pytest_lfm.compare import compare, render

    result = compare(args.old, args.new)
    if args.json:
        print(json.dumps({"old": result.old, "new": result.new, "changed": result.changed,
                          "changed_sources": result.changed_sources, "old_outputs": result.old_outputs,
                          "new_outputs": result.new_outputs}, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render(result))
    return EXIT_OK


def _merge(args: argparse.Namespace) -> int:
    loaded = [(str(p), load_report(p)) for p in args.reports]
    merged, warnings = merge_reports(loaded)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    path = write_report_files(args.output, merged)
    statuses = [c["status"] for c in merged["cells"]]
    counted = ", ".join(f"{statuses.count(st)} {st}" for st in dict.fromkeys(statuses))
    print(f"merged {len(loaded)} report(s) into {len(statuses)} cell(s): {counted or 'none'}")
    print(f"wrote {path}, {path.with_name('matrix.md')} and {path.with_name('matrix.html')}")
    return EXIT_OK


def _cookbook_cell(args: argparse.Namespace) -> int:
    from pytest_lfm import cookbook

    report = load_report(args.report)
    judged = cookbook.select(cookbook.judge(report, str(args.report)), args.cell)
    if not judged:
        keys = ", ".join(str(c.get("key")) for c in report.get("cells", [])) or "none"
        print(f"error: no cell of {args.report} matches --cell {' '.join(args.cell)} (its cells: {keys})",
              file=sys.stderr)
        return cookbook.EXIT_BAD_INPUT
    if args.json:
        print(json.dumps([{"key": j.key, "earned": j.earned, "cell": j.cell or None, "evidence": j.evidence or None,
                           "refusals": j.refusals} for j in judged], indent=2, ensure_ascii=False))
    else:
        for j in judged:
            if j.earned:
                sys.stdout.write(cookbook.render_cell(j))
            else:
                print(f"refused {j.key}: " + "; ".join(j.refusals), file=sys.stderr)
    return cookbook.EXIT_OK if all(j.earned for j in judged) else cookbook.EXIT_REFUSED


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        from pytest_lfm.bench import run_cli

        return run_cli(args)
    commands = {"diff": _diff, "merge": _merge, "releases": _releases, "cookbook-cell": _cookbook_cell}
    try:
        return commands[args.command](args)
    except LfmError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
