"""The declared variant is checked against what the server reports (one usage error naming both, unless
--lfm-any-model-name), and an attached reference server is recognised (pytest_lfm.label)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fake_server import fake_server, sglang_like

CHECK = """
def test_target(lfm_target):
    print("TARGET", lfm_target.variant.id, lfm_target.kind)
"""


@pytest.mark.parametrize("how", ["option", "pair"])
def test_declared_variant_that_disagrees_is_one_usage_error(pytester: pytest.Pytester, how: str) -> None:
    pytester.makepyfile(test_a=CHECK)
    with fake_server(sglang_like("LiquidAI/LFM2.5-1.2B-Instruct")) as url:
        args = [f"--lfm-server={url}", "--lfm-variant=VL-1.6B"] if how == "option" else [f"--lfm-server=VL-1.6B={url}"]
        result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", "test_a.py")
        assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
        err = result.stderr.str()
        assert err.count("ERROR:") == 1, err
        assert "declared as VL-1.6B" in err and "serves 1.2B-Instruct" in err
        assert "LiquidAI/LFM2.5-1.2B-Instruct" in err and "--lfm-any-model-name" in err
        assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()

        override = pytester.runpytest_subprocess(*args, "--lfm-any-model-name", "-p", "no:cacheprovider", "-s",
                                                 "test_a.py")
        override.assert_outcomes(passed=1)
        override.stdout.fnmatch_lines(["*TARGET VL-1.6B attach*"])


def test_custom_served_name_is_not_a_contradiction(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=CHECK)
    with fake_server(sglang_like("/models/our-finetune")) as url:
        result = pytester.runpytest_subprocess(f"--lfm-server=1.2B-Instruct={url}", "-p", "no:cacheprovider", "-s",
                                               "test_a.py")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*TARGET 1.2B-Instruct attach*"])


@pytest.fixture
def reference_url() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "pytest_lfm.reference", "--variant", "1.2B-Instruct", "--port",
                             "0", "--announce", "--watch-parent"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("LFM_REFERENCE_READY port="), line
    yield f"localhost:{int(line.strip().split('=')[1])}"
    proc.kill()
    proc.wait(timeout=10)


def test_attached_reference_server_skips_real_weight_checks(pytester: pytest.Pytester, reference_url: str,
                                                            suite: Any) -> None:
    """The README's flow: start the reference server by hand, attach with --lfm-server=HOST:PORT."""
    run = suite("test_completions.py", server=reference_url, extra=["-k", "capital_of_france"])
    assert run.outcome("test_capital_of_france") == "skipped", run.stdout[-3000:]
    assert "needs real weights" in run.message("test_capital_of_france")
    assert "reference server" in run.message("test_capital_of_france")
