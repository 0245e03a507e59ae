"""Summarise an SGLang release sweep's logs (``scripts/ci_upstream_parsers.sh``, issue 18).

    python scripts/sweep_summary.py LOGDIR VERSION ...

Reads, per release, ``LOGDIR/VERSION.rc`` (pytest's exit code, or ``install`` when the release could not be
installed or loaded), ``VERSION.seconds`` and ``VERSION.log`` (pytest ``-q -rfxXE`` output), and writes
``LOGDIR/SWEEP.md``: a table (release → result, passed / failed / xfailed / xpassed / skipped / errors, time)
and, per release that is not green, every failing check id (``FILE.py::test[params]``, no directories). Prints
the table and, per red release, its failing checks with the variants collapsed. Exits 1 when any release
is not green (failed, strict XPASS, error, not loaded, or no check ran), else 0.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

OUTCOMES = ("passed", "failed", "xfailed", "xpassed", "skipped", "errors")
SUMMARY_RE = re.compile(r"(\d+) (passed|failed|xfailed|xpassed|skipped|errors?|deselected|warnings?)\b")
FAILING_RE = re.compile(r"^(FAILED|ERROR|XPASS) (\S+)")
VARIANT_RE = re.compile(r"\[(8B-A1B|1\.2B-Thinking|1\.2B-Instruct|[^\]-]+)-?")


def check_id(nodeid: str) -> str:
    """``conformance/x/test_a.py::t[p]`` → ``test_a.py::t[p]`` (the shared check-id contract)."""
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


def read_release(logdir: Path, version: str) -> dict[str, object]:
    """One release's row: result, counts, seconds and failing ids."""
    rc_file, log = logdir / f"{version}.rc", logdir / f"{version}.log"
    rc = rc_file.read_text().strip() if rc_file.is_file() else "none"
    seconds = (logdir / f"{version}.seconds").read_text().strip() if (logdir / f"{version}.seconds").is_file() else ""
    row: dict[str, object] = {"version": version, "rc": rc, "seconds": seconds, "failing": []}
    if rc in ("install", "none"):
        install_log = logdir / f"{version}.install.log"
        text = install_log.read_text(errors="replace") if install_log.is_file() else ""
        why = next((line for line in text.splitlines() if line.startswith("error:")), f"see {install_log}")
        row.update(result="NOT LOADED", why=why[:300])
        return row
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = [line for line in text.splitlines() if SUMMARY_RE.search(line) and " in " in line]
    counts = {k: 0 for k in OUTCOMES}
    for n, word in SUMMARY_RE.findall(lines[-1] if lines else ""):
        key = "errors" if word.startswith("error") else word
        if key in counts:
            counts[key] = int(n)
    row.update(counts)
    failing = sorted({f"{m.group(1)} {check_id(m.group(2))}" for line in text.splitlines()
                      if (m := FAILING_RE.match(line))})
    row["failing"] = failing
    row["result"] = {"0": "green", "5": "NO CHECKS RAN"}.get(rc, f"RED (exit {rc})")
    return row


def collapsed(failing: list[str]) -> list[str]:
    """Failing ids with the variant collapsed: ``FAILED test_a.py::t[case] (8B-A1B, 1.2B-Thinking)``."""
    groups: dict[str, list[str]] = defaultdict(list)
    for item in failing:
        m = re.match(r"^(\S+ [^\[]+)\[(8B-A1B|1\.2B-Thinking|1\.2B-Instruct)(?:-(.*))?\]$", item)
        if m:
            key = f"{m.group(1)}[{m.group(3)}]" if m.group(3) else m.group(1)
            groups[key].append(m.group(2))
        else:
            groups[item].append("")
    return [f"{k} ({', '.join(v for v in vs if v)})" if any(vs) else k for k, vs in sorted(groups.items())]


def render(rows: list[dict[str, object]]) -> str:
    """SWEEP.md: the table, then each red release's failing check ids."""
    out = ["| release | result | passed | failed | xfailed | xpassed | skipped | errors | time (s) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["result"] == "NOT LOADED":
            out.append(f"| {r['version']} | NOT LOADED: {r['why']} | | | | | | | {r['seconds']} |")
        else:
            out.append(f"| {r['version']} | {r['result']} | " + " | ".join(str(r[k]) for k in OUTCOMES)
                       + f" | {r['seconds']} |")
    for r in rows:
        failing = r["failing"]
        assert isinstance(failing, list)
        if failing:
            out += ["", f"### {r['version']}: {len(failing)} failing (FAILED, ERROR, XPASS)", ""]
            out += [f"- {item}" for item in failing]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    logdir = Path(argv[0])
    rows = [read_release(logdir, v) for v in argv[1:]]
    (logdir / "SWEEP.md").write_text(render(rows), encoding="utf-8")
    table = render(rows).split("\n\n", 1)[0]
    print(table)
    for r in rows:
        failing = r["failing"]
        assert isinstance(failing, list)
        if failing:
            short = collapsed(failing)
            print(f"\n{r['version']}: {len(failing)} failing checks ({len(short)} with variants collapsed):")
            for item in short[:40]:
                print(f"  {item}")
            if len(short) > 40:
                print(f"  ... {len(short) - 40} more in {logdir / 'SWEEP.md'}")
    return 0 if all(r["result"] == "green" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
