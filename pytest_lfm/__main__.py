"""``python -m pytest_lfm``: tools over ``report.json`` files written by ``pytest --lfm-report=DIR``.

* ``diff OLD.json NEW.json``: new failures, fixes, newly skipped checks and changed behaviour between two
  runs (e.g. two SGLang versions); exit status 1 on a regression, so it can gate an upstream upgrade.
* ``merge A.json B.json ...``: combine runs (e.g. one per GPU) into one report and matrix.
* ``bench --server URL [--variant ID --hardware HW] ...``: the serving benchmark of :mod:`pytest_lfm.bench`
  (TTFT, TPOT, ITL, throughput; JSON and a latency plot with ``--out DIR``), outside pytest.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_lfm.reporting import (
    ReportError,
    diff_reports,
    load_report,
    merge_reports,
    render_diff,
    write_report_files,
)

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2

_DIFF_HELP = """Compare two reports check by check (matched on hardware/variant/quantization/strategy/nodes and
the check's node id relative to the suite) and list, per category: regressions (passed before, failed or
error now), newly failing cells, other new failures, fixes (failing before, passing now, including
unexpected passes of known failures), newly skipped checks, changed behaviour (same outcome but a
different failure message or statistic), new checks and checks no longer run.

Exit status: 0 no regression; 1 a regression (a check went from passed to failed/error, or a cell became
Failing through failed checks); 2 an input file could not be read or is not a pytest-lfm report."""

_MERGE_HELP = """Combine the reports of several runs (e.g. one per GPU, or one per SGLang server) into one
report.json, matrix.md and matrix.html. Cells with the same hardware/variant/quantization/strategy/nodes
are combined; when two reports hold the same check of the same cell, the later file on the command line
wins and a warning names it.

Exit status: 0 merged; 2 an input file could not be read or is not a pytest-lfm report."""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m pytest_lfm``."""
    parser = argparse.ArgumentParser(
        prog="python -m pytest_lfm",
        description="Tools over pytest-lfm reports (report.json written by `pytest --lfm-report=DIR`).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{diff,merge,bench}")
    d = sub.add_parser("diff", help="compare two reports; exit 1 on a regression",
                       description=_DIFF_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("old", metavar="OLD.json", help="the baseline report (or a directory holding report.json)")
    d.add_argument("new", metavar="NEW.json", help="the report to check (or a directory holding report.json)")
    d.add_argument("--json", action="store_true", help="print the categories as JSON instead of text")
    m = sub.add_parser("merge", help="combine several reports into one matrix",
                       description=_MERGE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("reports", metavar="REPORT.json", nargs="+",
                   help="reports to combine (or directories holding report.json)")
    m.add_argument("-o", "--output", metavar="DIR", type=Path, default=Path("lfm-report-merged"),
                   help="directory to write report.json, matrix.md and matrix.html into "
                        "(default: lfm-report-merged)")
    from pytest_lfm.bench import SEED_COMMAND, add_arguments

    b = sub.add_parser("bench", help="serving benchmark: TTFT, TPOT, ITL, throughput (exit 1 over budget)",
                       description=f"Benchmark a server outside pytest (pytest_lfm.bench); the default workload "
                                   f"is the seed's: {SEED_COMMAND}")
    add_arguments(b)
    return parser


def _diff(args: argparse.Namespace) -> int:
    old = load_report(args.old)
    new = load_report(args.new)
    result = diff_reports(old, new)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_diff(result, old, new, args.old, args.new))
    return EXIT_REGRESSION if result.has_regression else EXIT_OK


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run a subcommand; return the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        from pytest_lfm.bench import run_cli

        return run_cli(args)
    try:
        return _diff(args) if args.command == "diff" else _merge(args)
    except ReportError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
