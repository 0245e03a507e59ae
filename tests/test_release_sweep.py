"""The SGLang release sweep (``scripts/ci_upstream_parsers.sh``, issue 18): its table, its exit code, and the
newer-release report that never fails a build (also offline)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.version import Version

REPO = Path(__file__).resolve().parent.parent
SWEEP = REPO / "scripts" / "ci_upstream_parsers.sh"


def _newer_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("newer_sglang_release", REPO / "scripts" / "newer_sglang_release.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_newer_release_is_found_and_prereleases_ignored() -> None:
    newer = _newer_module()
    known = {Version("0.5.10"), Version("0.5.23")}
    available = [Version(v) for v in ("0.5.24rc1", "0.5.24", "0.5.23", "0.5.22", "0.6.0.dev1", "0.5.24.post1")]
    assert newer.newer_than(known, available) == [Version("0.5.24"), Version("0.5.24.post1")]
    assert newer.newer_than(known, [Version("0.5.23")]) == []


def test_unreachable_index_is_reported_not_failed(tmp_path: Path) -> None:
    """Offline: the script says the index could not be asked and exits 0."""
    env = dict(os.environ, PIP_INDEX_URL="http://127.0.0.1:9/simple", PIP_EXTRA_INDEX_URL="",
               PIP_FIND_LINKS=str(tmp_path), PIP_NO_INDEX="", PIP_CONFIG_FILE=os.devnull)
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "newer_sglang_release.py"), "0.5.23"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not checked, could not ask the package index" in r.stdout, r.stdout


# A stand-in for PYTHON: "installs" any release and "loads" any but 0.5.97, answers "-m pytest" with a canned
# summary per release (0.5.98 green, 0.5.99 one failure and one strict XPASS) and runs the summary script.
FAKE_PYTHON = r"""#!/usr/bin/env bash
if [[ "$1 $2" == "-m pip" ]]; then
    for a in "$@"; do case "$prev" in --target) mkdir -p "$a/sglang";; esac; prev="$a"; done; exit 0
fi
if [[ "$1 $2" == "-m pytest_lfm.reference.upstream" ]]; then
    case "$3" in *0.5.97) echo "error: sglang 0.5.97 loaded, but FunctionCallParser failed" >&2; exit 1;; esac
    exit 0
fi
if [[ "$1" == *newer_sglang_release.py ]]; then echo "newer SGLang releases: (fake)"; exit 0; fi
if [[ "$1" == *sweep_summary.py ]]; then exec "$REAL_PYTHON" "$@"; fi
if [[ "$1 $2" == "-m pytest" ]]; then
    case "$*" in
    *0.5.99*) echo "FAILED conformance/test_tool_parser.py::test_parse_case[8B-A1B-x] - boom"
              echo "XPASS conformance/test_reasoning.py::test_forced_reasoning_case[8B-A1B-y] reason"
              echo "== 3 passed, 1 failed, 2 xfailed, 1 xpassed, 4 skipped in 1.00s =="; exit 1;;
    *) echo "3 passed, 2 xfailed in 1.00s"; exit 0;;
    esac
fi
exit 3
"""


@pytest.mark.parametrize("versions, rc", [(["0.5.98"], 0), (["0.5.98", "0.5.99"], 1), (["0.5.97", "0.5.98"], 1)])
def test_sweep_table_and_exit_code(tmp_path: Path, versions: list[str], rc: int) -> None:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    summary = tmp_path / "SWEEP.md"
    env = dict(os.environ, PYTHON=str(fake), LFM_SGLANG_PARSERS_ROOT=str(tmp_path / "trees"),
               LFM_SWEEP_LOGS=str(tmp_path / "logs"), LFM_SWEEP_SUMMARY=str(summary), REAL_PYTHON=sys.executable)
    r = subprocess.run(["bash", str(SWEEP), *versions], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == rc, r.stdout + r.stderr
    table = summary.read_text()
    assert "| 0.5.98 | green | 3 | 0 | 2 | 0 | 0 | 0 |" in table, table
    if "0.5.99" in versions:
        row = next(line for line in table.splitlines() if line.startswith("| 0.5.99 "))
        assert "| RED (exit 1) | 3 | 1 | 2 | 1 | 4 | 0 |" in row, row
        # every failing check id, without directories (the shared contract)
        assert "- FAILED test_tool_parser.py::test_parse_case[8B-A1B-x]" in table, table
        assert "- XPASS test_reasoning.py::test_forced_reasoning_case[8B-A1B-y]" in table, table
        assert "FAILED test_tool_parser.py::test_parse_case[x] (8B-A1B)" in r.stdout, r.stdout
    if "0.5.97" in versions:
        row = next(line for line in table.splitlines() if line.startswith("| 0.5.97 "))
        assert "NOT LOADED: error: sglang 0.5.97 loaded, but FunctionCallParser failed" in row, row
    if rc:
        assert "the SGLang release sweep is red" in r.stderr
    assert "newer SGLang releases: (fake)" in r.stdout
    assert "SGLang release sweep:" in r.stdout and "s in all" in r.stdout
