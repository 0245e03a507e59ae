"""Vision checks that a fault row cannot show (the control run and most fault rows are data:
conformance/vision/faults.toml, run by tests/test_faults.py).

The GPU-marked checks (rows with a ``proof`` naming the tests below) and the 0.5.10 gate need a server that
reports a GPU or an older SGLang version: for those the test starts a reference server in this process, sets its state, and the inner run attaches to it
(``--lfm-server=VARIANT=URL``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_lfm.paths import suite_module
from pytest_lfm.reference.server import ReferenceServer

MODULE = "test_vision.py"
VL = "VL-450M"


# ------------------------------------------------------------------------------------------ attached runs


@dataclass
class AttachedRun:
    """Outcome of an inner run against a reference server started by this test."""

    ret: int
    stdout: str
    checks: list[dict[str, Any]] = field(default_factory=list)

    def outcomes(self, match: str) -> dict[str, str]:
        """nodeid → outcome of the checks whose nodeid contains ``match``."""
        return {c["nodeid"]: c["outcome"] for c in self.checks if match in c["nodeid"]}

    def only(self, match: str) -> dict[str, Any]:
        """The single check whose nodeid contains ``match``."""
        found = [c for c in self.checks if match in c["nodeid"]]
        assert len(found) == 1, f"expected one check matching {match!r}: {[c['nodeid'] for c in found]}\n" \
                                f"{self.stdout[-3000:]}"
        return found[0]


@pytest.fixture
def attached(pytester: pytest.Pytester) -> Iterator[Any]:
    """``attached(variant, hardware=..., version=..., faults=..., k=...)`` → :class:`AttachedRun`."""
    servers: list[ReferenceServer] = []

    def run(variant: str, *, hardware: str | None = None, version: str = "0.5.23", faults: Iterable[str] = (),
            k: str = "") -> AttachedRun:
        server = ReferenceServer(variant, faults=faults, version=version)
        server.state.hardware = hardware
        server.start()
        servers.append(server)
        report = pytester.path / f"lfm-report-{len(servers)}"
        args = [str(suite_module(MODULE)), f"--lfm-server={variant}={server.base_url}", f"--lfm-report={report}",
                "-p", "no:cacheprovider", "-q"]
        if hardware:
            args.append(f"--lfm-hardware={hardware}")
        if k:
            args += ["-k", k]
        result = pytester.runpytest_subprocess(*args, timeout=600)
        stdout = result.stdout.str() + "\n" + result.stderr.str()
        path = report / "report.json"
        checks: list[dict[str, Any]] = []
        if path.is_file():
            data = json.loads(path.read_text())
            checks = [c for cell in data["cells"] for c in cell["checks"]] + data["other_checks"]
        return AttachedRun(ret=int(result.ret), stdout=stdout, checks=checks)

    yield run
    for s in servers:
        s.stop()


GPU_K = "mm_attention or concurrent_image_load"


def test_gpu_checks_pass_on_recipe_launch(attached: Any) -> None:
    run = attached(VL, hardware="b200", k=GPU_K)
    assert run.only("test_mm_attention_backend_for_gpu")["outcome"] == "passed", run.stdout[-3000:]
    load = run.only("test_vl450m_survives_concurrent_image_load")
    assert load["outcome"] == "passed", load
    assert "64/64 image requests 200" in json.dumps(load), load


@pytest.mark.parametrize("hardware", ["b300", "h200"])
def test_mm_attention_check_fails_without_recipe_backend(attached: Any, hardware: str) -> None:
    run = attached(VL, hardware=hardware, faults=["mm_attention_default"], k="mm_attention")
    check = run.only("test_mm_attention_backend_for_gpu")
    assert check["outcome"] == "failed", run.stdout[-3000:]
    for word in ("Expected", "Actual", "triton_attn", "fa4" if hardware == "b300" else "fa3"):
        assert word in check["message"], check["message"]


def test_load_check_fails_when_server_runs_out_of_memory(attached: Any) -> None:
    run = attached(VL, hardware="h100", faults=["image_load_oom"], k="concurrent_image_load")
    check = run.only("test_vl450m_survives_concurrent_image_load")
    assert check["outcome"] == "failed", run.stdout[-3000:]
    for word in ("Expected", "Actual", "image requests answered 200 under concurrent load", "500"):
        assert word in check["message"], check["message"]


def test_bad_media_is_strict_xfail_on_0_5_10(attached: Any) -> None:
    """0.5.10 answers 500 for media errors: the eight cases are expected failures there, not failures."""
    run = attached(VL, version="0.5.10", k="bad_image_input or delivery")
    bad = run.outcomes("test_bad_image_input[")
    assert sorted(bad.values()) == ["xfailed"] * 8, (bad, run.stdout[-3000:])
    assert set(run.outcomes("test_image_delivery[").values()) == {"passed"}
    assert run.ret == 0, run.stdout[-3000:]
