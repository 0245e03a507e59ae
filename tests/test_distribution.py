"""The suite ships in the distribution (issue 12): build the wheel and sdist, install the wheel into a fresh
virtualenv, and run `pytest --lfm-server=reference` from an empty directory — no checkout, no test path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LFM_", "PYTEST_"))}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = _run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(out)], ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


def test_wheel_and_sdist_carry_the_suite(dist: Path) -> None:
    wheel = next(dist.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "pytest_lfm/conformance/protocol/test_protocol.py" in names
    assert "pytest_lfm/data/variants.toml" in names
    assert "pytest_lfm/conformance/case.schema.json" in names
    assert "pytest_lfm/conformance/tool_calls/cases/basic.toml" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lfm = pytest_lfm.plugin" in zipfile.ZipFile(wheel).read(entry).decode()
    sdist = next(dist.glob("*.tar.gz"))
    members = tarfile.open(sdist).getnames()
    assert any(m.endswith("/conformance/protocol/test_protocol.py") for m in members)
    assert any(m.endswith("/pytest_lfm/plugin.py") for m in members)


def test_installed_wheel_runs_the_suite_from_an_empty_directory(dist: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    wheel = next(dist.glob("*.whl"))
    r = _run([str(py), "-m", "pip", "install", "-q", str(wheel)], tmp_path)
    if r.returncode != 0 and "No matching distribution" in r.stderr + r.stdout and os.environ.get("CI") != "true":
        pytest.skip("the package index is not reachable to install the wheel's dependencies")
    assert r.returncode == 0, r.stderr[-3000:]
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _run([str(py), "-m", "pytest", "--lfm-server=reference", "--lfm-variant=350M", "--lfm-variant=1.2B-Base",
              "--lfm-report=rep", "-p", "no:cacheprovider", "-q"], empty)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    report = json.loads((empty / "rep" / "report.json").read_text())
    counts = {c["variant"]: c["counts"] for c in report["cells"]}
    assert set(counts) == {"350M", "1.2B-Base"}
    assert counts["350M"]["passed"] >= 10, counts
    assert counts["350M"]["failed"] == 0 and counts["350M"]["error"] == 0, counts
    # the same selection in parallel, and with -k
    r = _run([str(py), "-m", "pytest", "--lfm-server=reference", "--lfm-variant=350M", "-n", "2", "-k", "test_protocol",
              "-p", "no:cacheprovider", "-q", "--lfm-report=rep2"], empty)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    report2 = json.loads((empty / "rep2" / "report.json").read_text())
    protocol = [c for cell in report2["cells"] for c in cell["checks"]]
    assert protocol and all("test_protocol.py" in c["nodeid"] for c in protocol)
    assert len(protocol) == sum(1 for c in report["cells"][0]["checks"] if "test_protocol.py" in c["nodeid"])
