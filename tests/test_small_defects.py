"""Small user-facing defects of issue 19, each pinned by a test."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fake_server import fake_server, sglang_like

from pytest_lfm.__main__ import main as cli_main

CHECK = """
def test_target(lfm_target):
    pass
"""


def _unauthorized() -> dict[str, tuple[int, object]]:
    routes = sglang_like("LiquidAI/LFM2.5-350M")
    return {path: (401, {"detail": "Unauthorized"}) for path in routes}


def test_wrong_api_key_and_missing_api_key_get_different_messages(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=CHECK)
    with fake_server(_unauthorized()) as url:
        wrong = pytester.runpytest_subprocess(f"--lfm-server={url}", "--lfm-api-key=not-the-key", "-p",
                                              "no:cacheprovider")
        missing = pytester.runpytest_subprocess(f"--lfm-server={url}", "-p", "no:cacheprovider")
    assert wrong.ret == missing.ret == pytest.ExitCode.USAGE_ERROR
    assert "refused the API key that was given" in wrong.stderr.str() and "the key is wrong" in wrong.stderr.str()
    assert "not-the-key" not in wrong.stderr.str() + wrong.stdout.str()
    assert "needs an API key and none was given" in missing.stderr.str()


def test_non_sglang_server_is_not_told_it_may_be_loading(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=CHECK)
    with fake_server({"/": (200, {"hello": "world"})}) as url:
        result = pytester.runpytest_subprocess(f"--lfm-server={url}", "-p", "no:cacheprovider")
    err = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "does not look like an SGLang server" in err and "may still be loading" not in err


def test_bench_rejects_unknown_variant(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "--server", "localhost:1", "--variant", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--variant 'nope' is not an LFM2.5 variant" in err and "1.2B-Instruct" in err


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_bench_401_is_a_plain_message(capsys: pytest.CaptureFixture[str], key: str | None) -> None:
    with fake_server(_unauthorized()) as url:
        args = ["bench", "--server", url, "--num-prompts", "1", "--warmup", "0", "--no-progress"]
        assert cli_main(args + (["--api-key", key] if key else [])) == 2
    err = capsys.readouterr().err
    assert "HTTPStatusError" not in err and "developer.mozilla.org" not in err, err
    assert ("refused the API key" if key else "needs an API key") in err
    assert "--api-key" in err and (key is None or key not in err)


def test_list_faults_into_a_closed_pipe_is_quiet() -> None:
    proc = subprocess.run(["bash", "-c", f"{sys.executable} -m pytest_lfm.reference --list-faults | head -n 0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert "BrokenPipeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_junitxml_run_has_no_record_property_warning(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="""
def test_target(lfm_target, record_property):
    record_property("lfm_statistic", "1 of 1")
""")
    with fake_server(sglang_like("LiquidAI/LFM2.5-350M")) as url:
        result = pytester.runpytest_subprocess(f"--lfm-server={url}", "--junitxml=junit.xml", "-p",
                                               "no:cacheprovider", "test_a.py")
    result.assert_outcomes(passed=1)
    assert "record_property is incompatible" not in result.stdout.str() + result.stderr.str()


def test_engine_skip_reason_reads_well(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="""
def test_engine_only(lfm_engine):
    pass
""")
    with fake_server(sglang_like("LiquidAI/LFM2.5-350M")) as url:
        result = pytester.runpytest_subprocess(f"--lfm-server={url}", "-rs", "-p", "no:cacheprovider", "test_a.py")
    out = result.stdout.str()
    result.assert_outcomes(skipped=1)
    assert "350M is served over HTTP (attach mode)" in out and "is a attach" not in out
