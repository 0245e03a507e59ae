"""Launch mode against a fake ``sglang`` (fixtures/fake_sglang): readiness, fail-fast, log tails, teardown.

Every test records the fake's pids (server and helper child) in a directory and asserts at the end that none
of them is alive, so a leaked process fails the test that leaked it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pytest_lfm.hardware import get_hardware
from pytest_lfm.health import EXIT_SERVER_DOWN
from pytest_lfm.server.launch import LaunchedServer, LaunchFailed, launch_many, pid_alive
from pytest_lfm.server.process import marked_pids
from pytest_lfm.variants import get_variant

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "fixtures" / "fake_sglang" / "fake_sglang.py"
FAKE_CMD = [sys.executable, str(FAKE)]
FAKE_OPT = f"--lfm-sglang-command={sys.executable} {FAKE}"
TOKEN = "hf_do_not_print_me_0123456789"
COOKBOOK = tomllib.loads((REPO / "tests" / "data" / "recipes" / "cookbook.toml").read_text())["cells"]


@pytest.fixture
def pid_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the fake records its pids; asserts after the test that every recorded process is gone."""
    d = tmp_path / "pids"
    monkeypatch.setenv("FAKE_SGLANG_PID_DIR", str(d))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    yield d
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_alive(p) for p in _pids(d)):
        time.sleep(0.1)
    alive = [p for p in _pids(d) if pid_alive(p)]
    for p in alive:  # do not leak even when the assertion fails
        os.kill(p, signal.SIGKILL)
    assert not alive, f"processes survived the test: {alive}"
    assert not marked_pids(), "processes marked by this run survived"


def _pids(d: Path) -> list[int]:
    return [int(f.name.split(".")[0]) for f in d.glob("*.*")] if d.is_dir() else []


def _server(tmp_path: Path, variant: str = "350M", grace: float = 2.0) -> LaunchedServer:
    return LaunchedServer(get_variant(variant), get_hardware("h100"), command=FAKE_CMD, log_dir=tmp_path / "logs",
                          grace=grace)


# ------------------------------------------------------------------------------ LaunchedServer directly


def test_ok_starts_serves_and_stops(tmp_path: Path, pid_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "ok")
    server = _server(tmp_path)
    launch_many([server], timeout=30)
    try:
        assert httpx.get(server.base_url + "/health_generate").status_code == 200
        assert server.log_path is not None and server.log_path.name == "sglang-350M.log"
        assert TOKEN not in server.log_path.read_text()
        assert len(_pids(pid_dir)) == 2  # server + helper child, one process group
    finally:
        server.stop()
    assert not server.alive()


def test_slow_start_is_waited_for(tmp_path: Path, pid_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "slow_start")
    monkeypatch.setenv("FAKE_SGLANG_DELAY", "2")
    server = _server(tmp_path)
    launch_many([server], timeout=30)
    server.stop()
    assert server.ready_after is not None and server.ready_after >= 2


def test_crash_at_start_fails_fast_with_exit_code_and_log(tmp_path: Path, pid_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "crash_at_start")
    server = _server(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(LaunchFailed) as info:
        launch_many([server], timeout=120)
    assert time.monotonic() - t0 < 60, "waited for the start-up timeout instead of noticing the exit"
    msg = str(info.value)
    assert "exited with code 3 during start-up" in msg
    assert "Last 50 log lines" in msg and "no kernel image is available" in msg
    assert str(server.log_path) in msg and "To fix:" in msg
    assert TOKEN not in msg and "<secret>" in msg


def test_never_healthy_times_out_and_is_stopped(tmp_path: Path, pid_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "never_healthy")
    server = _server(tmp_path)
    with pytest.raises(LaunchFailed) as info:
        launch_many([server], timeout=2)
    msg = str(info.value)
    assert "was not ready after 2 s" in msg and "/health_generate" in msg and "--lfm-startup-timeout" in msg
    assert not server.alive()


def test_ignores_sigterm_gets_sigkill_after_grace(tmp_path: Path, pid_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "ignore_sigterm")
    server = _server(tmp_path, grace=1.0)
    launch_many([server], timeout=30)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 >= 1.0  # the grace period was given (a floor: load only adds time)
    assert server.returncode == -signal.SIGKILL


def test_dies_mid_run_leaves_no_straggler(tmp_path: Path, pid_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "die_mid_run")
    server = _server(tmp_path)
    launch_many([server], timeout=30)
    with pytest.raises(httpx.HTTPError):
        httpx.post(server.base_url + "/v1/chat/completions", json={}, timeout=10)
    server.proc.wait(timeout=10)  # type: ignore[union-attr]
    assert any(pid_alive(p) for p in _pids(pid_dir)), "the helper child should outlive the crashed leader"
    server.stop()  # kills the group's stragglers too
    assert server.returncode == 9


def test_one_crash_stops_all_servers(tmp_path: Path, pid_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "slow_start")
    monkeypatch.setenv("FAKE_SGLANG_DELAY", "30")
    slow = _server(tmp_path, "350M")
    bad = LaunchedServer(get_variant("1.2B-Instruct"), get_hardware("h100"), command=[sys.executable, "-c",
                         "import sys; print('boom'); sys.exit(5)"], log_dir=tmp_path / "logs", grace=2.0)
    with pytest.raises(LaunchFailed, match="exited with code 5"):
        launch_many([slow, bad], timeout=60)
    assert not slow.alive() and not bad.alive()


# ------------------------------------------------------------------------------ through pytest (pytester)


@pytest.mark.parametrize("framing", ["python", "docker"])
@pytest.mark.parametrize("cell", ["h100/VL-450M", "b200/8B-A1B", "b300/1.2B-Instruct", "h200/1.2B-JP"])
def test_print_recipe_prints_seed_command(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                          cell: str, framing: str) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hw, variant = cell.split("/")
    result = pytester.runpytest_subprocess("--lfm-print-recipe", f"--lfm-hardware={hw}",
                                           f"--lfm-variant={variant}", f"--lfm-framing={framing}")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    assert out.split("\n", 1)[1].strip() == COOKBOOK[cell][framing].strip()
    assert TOKEN not in out


def test_print_recipe_redacts_api_key_and_uses_model_path(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--lfm-print-recipe", "--lfm-hardware=h100", "--lfm-variant=350M",
                                           "--lfm-api-key=sk-verysecret", "--lfm-model-path=350M=/models/x")
    out = result.stdout.str()
    assert result.ret == 0 and "sk-verysecret" not in out
    assert '--api-key "<secret>"' in out and "--model-path /models/x" in out


def test_print_recipe_without_hardware_says_what_to_do(pytester: pytest.Pytester) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("a GPU is present: its hardware is detected")
    result = pytester.runpytest_subprocess("--lfm-print-recipe", "--lfm-variant=350M")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--lfm-print-recipe needs the GPU model" in err and "--lfm-hardware" in err
    assert "launch mode" not in err


def test_launch_with_server_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--lfm-launch", "--lfm-server=localhost:30000")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--lfm-launch starts its own SGLang servers" in result.stderr.str()


def test_launch_options_in_ini(pytester: pytest.Pytester, pid_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "ok")
    pytester.makeini(f"""
        [pytest]
        lfm_launch = true
        lfm_hardware = h100
        lfm_variant = 350M
        lfm_sglang_command = {sys.executable} {FAKE}
        lfm_log_dir = {pytester.path / "logs"}
    """)
    pytester.makepyfile(test_x="def test_up(lfm_target):\n    assert lfm_target.kind == 'launch'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_x.py")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "logs" / "sglang-350M.log").is_file()


def test_suite_runs_against_launched_servers_shared_by_xdist_workers(
        pytester: pytest.Pytester, pid_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "ok")
    result = pytester.runpytest_subprocess(
        "--lfm-launch", "--lfm-hardware=h100", "--lfm-variant=350M", "--lfm-variant=1.2B-Instruct", FAKE_OPT,
        "-n", "2", "-p", "no:cacheprovider", str(REPO / "conformance" / "protocol" / "test_protocol.py"), timeout=300)
    out = result.stdout.str()
    assert result.ret == 0, out[-3000:]
    assert "mode=launch" in out
    mains = [f for f in pid_dir.iterdir() if f.suffix == ".main"]
    assert len(mains) == 2, "one server per variant, shared by both workers"


DIES_MID_RUN = """
import httpx

def test_1_health(lfm_target):
    assert httpx.get(lfm_target.base_url + "/health").status_code == 200

def test_2_request_kills_server(lfm_target):
    httpx.post(lfm_target.base_url + "/v1/chat/completions", json={}, timeout=10)

def test_3_server_is_gone(lfm_target):
    assert httpx.get(lfm_target.base_url + "/health", timeout=5).status_code == 200
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_server_dying_mid_run_is_reported_and_does_not_hang(
        pytester: pytest.Pytester, pid_dir: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "die_mid_run")
    pytester.makepyfile(test_dies=DIES_MID_RUN)
    # loadfile keeps the three ordered checks on one worker; the other worker still attaches to the server
    xdist = ["-n", str(workers), "--dist=loadfile"] if workers else ["-p", "no:xdist"]
    result = pytester.runpytest_subprocess("--lfm-launch", "--lfm-hardware=h100", "--lfm-variant=350M", FAKE_OPT,
                                           "-p", "no:cacheprovider", "-rA", *xdist, "test_dies.py",
                                           timeout=300)  # a hang fails here
    out = result.stdout.str()
    assert result.ret == EXIT_SERVER_DOWN, out
    assert result.parseoutcomes() == {"passed": 1, "errors": 1, "not_run": 1}, out
    down = [line for line in out.splitlines() if line.startswith("lfm: server down: 350M")]
    assert len(down) == 1 and "last check that succeeded" in out, out  # one error block; summary lines not counted
    assert "last 50 lines" in out
    assert "is no longer running" in out and "simulated crash" in out
    assert TOKEN not in out


def test_crash_at_start_is_a_usage_error_with_log_tail(pytester: pytest.Pytester, pid_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_SGLANG_MODE", "crash_at_start")
    result = pytester.runpytest_subprocess("--lfm-launch", "--lfm-hardware=h100", "--lfm-variant=350M", FAKE_OPT,
                                           "--lfm-api-key=sk-launchkey", "-p", "no:cacheprovider", timeout=120)
    err = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "exited with code 3" in err and "no kernel image" in err
    assert TOKEN not in err + result.stdout.str() and "sk-launchkey" not in err + result.stdout.str()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_tears_servers_down(pytester: pytest.Pytester, pid_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                      sig: signal.Signals) -> None:
    """Ctrl-C (SIGINT) or a CI timeout (SIGTERM) of the pytest process leaves no server behind."""
    monkeypatch.setenv("FAKE_SGLANG_MODE", "ok")
    started = pytester.path / "started"
    pytester.makepyfile(test_slow=f"""
        import pathlib, time
        def test_wait(lfm_target):
            pathlib.Path({str(started)!r}).write_text("x")
            time.sleep(60)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--lfm-launch", "--lfm-hardware=h100", "--lfm-variant=350M", FAKE_OPT,
         "-p", "no:cacheprovider", "-p", "no:xdist", "test_slow.py"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert started.exists(), proc.communicate(timeout=10)[0] if proc.poll() is not None else "no start"
        assert any(pid_alive(p) for p in _pids(pid_dir))
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in out or "Interrupted" in out, out[-2000:]
    assert not [p for p in _pids(pid_dir) if pid_alive(p)]


# ------------------------------------------------------------------------------ real SGLang on a GPU


def _sglang_python() -> str | None:
    cmd = os.environ.get("PYTEST_LFM_GPU_SGLANG_COMMAND") or sys.executable
    ok = subprocess.run([*cmd.split(), "-c", "import sglang"], capture_output=True, check=False).returncode == 0
    return cmd if ok else None


@pytest.mark.lfm_hardware("h100", "h200", "b200", "b300")
@pytest.mark.skipif(not shutil.which("nvidia-smi"), reason="needs an NVIDIA GPU (nvidia-smi not found)")
def test_launch_real_sglang_on_this_gpu(pytester: pytest.Pytester) -> None:
    """Launch real SGLang with the recipe for the GPU found and run the protocol checks against it.

    Variant and checkpoint: ``PYTEST_LFM_GPU_MODEL_PATH`` (``VARIANT=PATH``, e.g. a tiny fixture
    checkpoint on an offline host; default 350M from Hugging Face); extra flags ``PYTEST_LFM_GPU_SGLANG_ARGS``;
    the Python with SGLang ``PYTEST_LFM_GPU_SGLANG_COMMAND`` (default this interpreter).
    """
    python = _sglang_python()
    if python is None:
        pytest.skip("SGLang is not installed for this interpreter (set PYTEST_LFM_GPU_SGLANG_COMMAND)")
    model = os.environ.get("PYTEST_LFM_GPU_MODEL_PATH", "")
    variant = model.split("=", 1)[0] if model else "350M"
    args = ["--lfm-launch", f"--lfm-variant={variant}", f"--lfm-sglang-command={python}",
            f"--lfm-log-dir={pytester.path / 'logs'}", "-p", "no:cacheprovider", "-p", "no:xdist",
            str(REPO / "conformance" / "protocol" / "test_protocol.py")]
    if model:
        args.append(f"--lfm-model-path={model}")
    if os.environ.get("PYTEST_LFM_GPU_SGLANG_ARGS"):
        args.append(f"--lfm-sglang-args={os.environ['PYTEST_LFM_GPU_SGLANG_ARGS']}")
    result = pytester.runpytest_subprocess(*args, timeout=900)
    out = result.stdout.str()
    log = next((pytester.path / "logs").glob("sglang-*.log"), None)
    assert result.ret in (0, 1), f"{out[-3000:]}\n{result.stderr.str()[-3000:]}"
    assert "mode=launch" in out and log is not None
    assert not marked_pids()
