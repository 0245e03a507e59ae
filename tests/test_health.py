"""A server that dies mid-run is one error, its remaining checks are "not run: server down", other targets
go on, and the run exits with its own status (pytest_lfm.health)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pytest_lfm.health import EXIT_SERVER_DOWN

CHECKS = """
import os, signal
import httpx
import pytest

def test_1_up(lfm_target):
    assert httpx.get(lfm_target.base_url + "/health").status_code == 200

def test_2_kill(lfm_target):
    pid = os.environ.get("KILL_PID_" + lfm_target.id.replace(".", "_").replace("-", "_"))
    if pid:
        os.kill(int(pid), signal.SIGKILL)
    httpx.get(lfm_target.base_url + "/v1/models", timeout=5)

@pytest.mark.parametrize("n", range(6))
def test_3_later(lfm_target, n):
    assert httpx.get(lfm_target.base_url + "/v1/models", timeout=5).status_code == 200

@pytest.mark.xfail(strict=True, reason="a declared known failure")
def test_4_known(lfm_target):
    r = httpx.get(lfm_target.base_url + "/v1/models", timeout=5)
    assert r.status_code == 418
"""


def _start(variant: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "pytest_lfm.reference", "--variant", variant, "--port", "0",
                             "--announce", "--watch-parent"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("LFM_REFERENCE_READY port="), line
    return proc, f"http://127.0.0.1:{int(line.strip().split('=')[1])}"


@pytest.fixture
def two_servers() -> Iterator[dict[str, tuple[subprocess.Popen[str], str]]]:
    servers = {v: _start(v) for v in ("1.2B-Instruct", "350M")}
    yield servers
    for proc, _ in servers.values():
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("workers", [0, 2])
def test_killed_server_is_one_error_and_not_run_checks(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        two_servers: dict[str, tuple[subprocess.Popen[str], str]], workers: int) -> None:
    pytester.makepyfile(test_dies=CHECKS)
    monkeypatch.setenv("KILL_PID_1_2B_Instruct", str(two_servers["1.2B-Instruct"][0].pid))
    xdist = ["-n", str(workers)] if workers else ["-p", "no:xdist"]
    args = [f"--lfm-server={v}={url}" for v, (_, url) in two_servers.items()]
    result = pytester.runpytest_subprocess(*args, "--lfm-report=rep", "-p", "no:cacheprovider", "-p", "no:randomly",
                                           *xdist, "test_dies.py", timeout=180)
    out = result.stdout.str()
    assert result.ret == EXIT_SERVER_DOWN, out[-4000:]
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", outcomes.get("error")) == 1, out[-4000:]
    assert "failed" not in outcomes and outcomes.get("xfailed") == 1, outcomes  # 350M's; not the dead server's
    # reported once: one error block (the short summary repeats it on wide terminals; not counted)
    down = [line for line in out.splitlines() if line.startswith("lfm: server down: 1.2B-Instruct")]
    assert len(down) == 1, out[-4000:]
    assert "test_dies.py::test_2_kill[1.2B-Instruct]" in out or workers, out[-4000:]
    assert "last check that succeeded against 1.2B-Instruct" in out
    report = json.loads((pytester.path / "rep" / "report.json").read_text())
    assert report["run"]["server_down"] == ["1.2B-Instruct"]
    cells = {c["id"]: c for c in report["cells"]}
    dead, alive = cells["1.2B-Instruct"], cells["350M"]
    assert dead["status"] == "Server down" and dead["counts"]["error"] == 1 and dead["counts"]["failed"] == 0
    assert dead["counts"]["xfailed"] == 0
    not_run = [c for c in dead["checks"] if c["outcome"] == "not_run"]
    assert len(not_run) == outcomes["not_run"] >= 6 - workers, out[-3000:]
    assert all(c["message"].startswith("not run: server down") for c in not_run)
    # the other target goes on: every check ran and the known failure failed as declared
    assert alive["counts"]["passed"] == 8 and alive["counts"]["xfailed"] == 1, alive["counts"]
    assert alive["counts"]["not_run"] == 0 and alive["status"] != "Server down"
    md = (pytester.path / "rep" / "matrix.md").read_text()
    assert "Server down" in md and "server down during the run: 1.2B-Instruct" in md


def test_healthy_run_has_no_health_noise(pytester: pytest.Pytester,
                                         two_servers: dict[str, tuple[subprocess.Popen[str], str]]) -> None:
    """A failing check against a healthy server stays an ordinary failure (the probe finds it up)."""
    pytester.makepyfile(test_ok="""
import httpx
def test_fails(lfm_target):
    assert httpx.get(lfm_target.base_url + "/health").status_code == 500
""")
    url = two_servers["350M"][1]
    result = pytester.runpytest_subprocess(f"--lfm-server=350M={url}", "-p", "no:cacheprovider", "-p", "no:xdist",
                                           "test_ok.py", timeout=120)
    assert result.ret == 1
    result.assert_outcomes(failed=1)
    assert "server down" not in result.stdout.str()


def test_exit_status_is_documented(pytester: pytest.Pytester) -> None:
    from pathlib import Path

    text = pytester.runpytest("--help").stdout.str()
    assert f"exit status {EXIT_SERVER_DOWN} when a server" in " ".join(text.split())
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert f"status **{EXIT_SERVER_DOWN}**" in readme
