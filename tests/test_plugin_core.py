"""The plugin's options, errors, variant detection, markers and header (issue 2)."""

from __future__ import annotations

import socket
import time

import pytest
from fake_server import fake_server, sglang_like
from harness import Suite

from pytest_lfm import options as o
from pytest_lfm.config import Secret, resolve
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.server.http import PROBE_BUDGET_S

PASSING_CHECK = """
def test_target(lfm_target, lfm_config):
    print("TARGET", lfm_target.variant.id, lfm_target.version, lfm_config.timeout)
"""


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for spec in o.ALL_OPTIONS:
        assert spec.flag in text, f"{spec.flag} missing from --help"
        assert spec.env in text, f"{spec.env} not mentioned in --help for {spec.flag}"
    assert "lfm_requires" not in text or True  # markers are listed by --markers, checked below


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--markers").stdout.str()
    for name in ("lfm_requires(*capabilities)", "lfm_hardware(*targets)", "lfm_variants(*ids)", "lfm_fact(*facts)"):
        assert name in text


@pytest.mark.parametrize(("value", "url"), [
    ("localhost:30000", "http://localhost:30000"),
    ("http://gpu-1:30000/v1", "http://gpu-1:30000"),
    ("https://example.test/sglang/", "https://example.test/sglang"),
    ("1.2B-Instruct=http://h:1", "http://h:1"),
    ("[::1]:8000", "http://[::1]:8000"),
])
def test_parse_server_accepts(value: str, url: str) -> None:
    assert o.parse_server(value).url == url


def test_parse_server_reference() -> None:
    spec = o.parse_server("reference")
    assert spec.is_reference and spec.variant is None
    assert o.parse_server("VL-1.6B=reference").variant == "VL-1.6B"


@pytest.mark.parametrize("value", ["localhost:notaport", "http://", "ftp://h:1", "h:0", "h:70000", "=http://h:1", "a b"])
def test_parse_server_rejects(value: str) -> None:
    with pytest.raises(LfmUsageError) as info:
        o.parse_server(value)
    assert value.strip() in str(info.value) and "To fix" in str(info.value)


def _resolve(cli: dict[str, object], env: dict[str, str], ini: dict[str, object]):  # type: ignore[no-untyped-def]
    return resolve(lambda d: cli.get(d), lambda k: ini.get(k), env)


def test_precedence_cli_env_ini_default() -> None:
    assert _resolve({}, {}, {}).timeout == 120.0
    assert _resolve({}, {}, {"lfm_timeout": "30"}).timeout == 30.0
    assert _resolve({}, {"LFM_TIMEOUT": "20"}, {"lfm_timeout": "30"}).timeout == 20.0
    assert _resolve({"lfm_timeout": "10"}, {"LFM_TIMEOUT": "20"}, {"lfm_timeout": "30"}).timeout == 10.0
    cfg = _resolve({}, {"LFM_SERVER": "a:1, b=http://c:2"}, {"lfm_server": ["x:3"]})
    assert [s.url for s in cfg.servers] == ["http://a:1", "http://c:2"]
    assert cfg.sources["lfm_server"] == "env"


def test_api_key_never_shows() -> None:
    cfg = _resolve({"lfm_api_key": "sk-very-secret"}, {}, {})
    assert isinstance(cfg.api_key, Secret)
    assert "sk-very-secret" not in repr(cfg) and "sk-very-secret" not in str(cfg.api_key)
    assert cfg.api_key.get() == "sk-very-secret"


@pytest.mark.parametrize("source", ["cli", "ini", "env"])
def test_option_sources_end_to_end(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    pytester.makepyfile(test_a=PASSING_CHECK)
    args = ["-s", "-p", "no:cacheprovider"]
    if source == "cli":
        args += ["--lfm-server=reference", "--lfm-variant=350M", "--lfm-timeout=7"]
    elif source == "ini":
        pytester.makeini("[pytest]\nlfm_server = reference\nlfm_variant = 350M\nlfm_timeout = 7\n")
    else:
        monkeypatch.setenv("LFM_SERVER", "reference")
        monkeypatch.setenv("LFM_VARIANT", "350M")
        monkeypatch.setenv("LFM_TIMEOUT", "7")
    result = pytester.runpytest_subprocess("test_a.py", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*TARGET 350M 0.5.23 7.0*"])


@pytest.mark.parametrize("value", ["localhost:notaport", "http://", "unreachable"])
def test_bad_server_is_one_clear_error_fast(pytester: pytest.Pytester, value: str) -> None:
    if value == "unreachable":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            value = f"127.0.0.1:{s.getsockname()[1]}"
    pytester.makepyfile(test_a=PASSING_CHECK)
    start = time.monotonic()
    baseline = pytester.runpytest_subprocess("--version")  # the same process start-up, measured under today's load
    startup = time.monotonic() - start
    start = time.monotonic()
    result = pytester.runpytest_subprocess(f"--lfm-server={value}", "-p", "no:cacheprovider")
    elapsed = time.monotonic() - start
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    err = result.stderr.str()
    assert err.count("ERROR:") == 1, err
    assert "To fix" in err and value.split("//")[-1].split(":")[0] in err
    assert "passed" not in result.stdout.str() and "failed" not in result.stdout.str()
    assert baseline.ret == 0
    # fast: the probe's budget on top of a start-up, with generous room for load (not one timeout per check)
    assert elapsed < 3 * startup + PROBE_BUDGET_S + 10, f"took {elapsed:.1f} s; start-up alone {startup:.1f} s"


def test_unhealthy_server_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=PASSING_CHECK)
    with fake_server(sglang_like("LiquidAI/LFM2.5-350M", healthy=False)) as url:
        result = pytester.runpytest_subprocess(f"--lfm-server={url}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "not healthy" in result.stderr.str() and url in result.stderr.str()


def test_variant_detected_from_model_info(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=PASSING_CHECK)
    with fake_server(sglang_like("/models/LFM2.5-1.2B-Thinking", version="0.5.17")) as url:
        result = pytester.runpytest_subprocess("test_a.py", f"--lfm-server={url}", "-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"lfm: 1.2B-Thinking: {url} variant=1.2B-Thinking sglang=0.5.17 *mode=attach",
                                 "*TARGET 1.2B-Thinking 0.5.17*"])


def test_undetectable_variant_asks_for_lfm_variant(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=PASSING_CHECK)
    with fake_server(sglang_like("/models/tiny-lfm2")) as url:
        result = pytester.runpytest_subprocess(f"--lfm-server={url}", "-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert "--lfm-variant" in result.stderr.str() and "tiny-lfm2" in result.stderr.str()
        declared = pytester.runpytest_subprocess("test_a.py", f"--lfm-server={url}", "--lfm-variant=350M", "-s",
                                                 "-p", "no:cacheprovider")
    declared.assert_outcomes(passed=1)
    declared.stdout.fnmatch_lines(["*TARGET 350M 0.5.17*"])


def test_several_variants_by_url(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=PASSING_CHECK)
    with fake_server(sglang_like("/m/a")) as a, fake_server(sglang_like("/m/b", version="0.5.23")) as b:
        result = pytester.runpytest_subprocess("test_a.py", f"--lfm-server=350M={a}", f"--lfm-server=VL-450M={b}", "-v",
                                               "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_target?350M? PASSED*", "*test_target?VL-450M? PASSED*"])


def test_no_target_is_a_usage_error_naming_the_options(pytester: pytest.Pytester) -> None:
    from pytest_lfm.paths import suite_dir

    result = pytester.runpytest_subprocess(str(suite_dir()), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--lfm-server=HOST:PORT" in err and "--lfm-server=reference" in err


def test_plain_tests_run_without_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="def test_x():\n    pass\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


MARKED = """
import pytest

@pytest.mark.lfm_requires("vision")
def test_vision(lfm_target):
    pass

@pytest.mark.lfm_requires("tools")
def test_tools(lfm_target):
    pass

@pytest.mark.lfm_variants("VL-450M")
def test_only_vl(lfm_target):
    pass

@pytest.mark.lfm_fact("!lfm2-robust-detector")
def test_future(lfm_target):
    pass

@pytest.mark.lfm_hardware("b200")
def test_gpu(lfm_target):
    pass

@pytest.mark.lfm_requires("real_weights")
def test_weights(lfm_target):
    pass
"""


def test_markers_skip_with_reasons(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=MARKED)
    result = pytester.runpytest_subprocess("test_m.py", "--lfm-server=reference", "--lfm-variant=1.2B-Instruct", "-rs",
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=5)
    result.stdout.fnmatch_lines_random([
        "*needs vision; variant 1.2B-Instruct has*",
        "*only for VL-450M; server serves 1.2B-Instruct*",
        "*needs SGLang with !lfm2-robust-detector (SGLang < 0.5.19); server reports 0.5.23*",
        "*GPU check for b200; server runs on unknown hardware*",
        "*needs real weights; 1.2B-Instruct is served by the reference server (random weights)*",
    ])


@pytest.mark.parametrize("mark", ['lfm_requires("telepathy")', 'lfm_hardware("tpu")', 'lfm_fact("no-such-fact")',
                                  'lfm_variants("9B")', "lfm_requires()"])
def test_bad_marker_arguments_are_usage_errors(pytester: pytest.Pytester, mark: str) -> None:
    pytester.makepyfile(test_m=f"import pytest\n\n@pytest.mark.{mark}\ndef test_x(lfm_target):\n    pass\n")
    result = pytester.runpytest_subprocess("test_m.py", "--lfm-server=reference", "--lfm-variant=350M", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "test_x" in result.stderr.str()


def test_unknown_marker_is_rejected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m="import pytest\n\n@pytest.mark.lfm_requirez('x')\ndef test_x():\n    pass\n")
    pytester.makeini("[pytest]\naddopts = --strict-markers\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0


def test_api_key_reaches_server_and_stays_secret(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a="""
def test_models(lfm_http):
    assert lfm_http.get("/v1/models").status_code == 200

def test_without_key(lfm_target):
    import httpx
    assert httpx.get(lfm_target.base_url + "/v1/models").status_code == 401
""")
    result = pytester.runpytest_subprocess("test_a.py", "--lfm-server=reference", "--lfm-variant=350M",
                                           "--lfm-api-key=sk-do-not-print-me", "-v", "-p", "no:cacheprovider",
                                           "--lfm-report=rep")
    result.assert_outcomes(passed=2)
    everything = result.stdout.str() + result.stderr.str() + (pytester.path / "rep" / "report.json").read_text()
    assert "sk-do-not-print-me" not in everything


def test_bad_option_values(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=PASSING_CHECK)
    for args, words in ((["--lfm-server=reference", "--lfm-timeout=soon"], "--lfm-timeout"),
                        (["--lfm-server=reference", "--lfm-hardware=tpu9"], "unknown hardware"),
                        (["--lfm-server=reference", "--lfm-variant=9B-Z"], "unknown LFM2.5 variant"),
                        (["--lfm-server=localhost:1", "--lfm-reference-fault=usage_wrong"], "reference server")):
        result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider")
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        assert words in result.stderr.str(), (args, result.stderr.str())


def test_target_without_paths_runs_the_shipped_suite(pytester: pytest.Pytester) -> None:
    """`pytest --lfm-server=...` with no test path collects the installed conformance suite."""
    pytester.makepyfile(test_a="def test_local():\n    raise AssertionError('collected the cwd')\n")
    result = pytester.runpytest_subprocess("--lfm-server=reference", "--lfm-variant=350M", "-k", "health",
                                           "-p", "no:cacheprovider", "-v")
    result.stdout.fnmatch_lines(["*test_protocol.py::test_health?350M? PASSED*"])
    assert result.ret == 0


def test_fixture_checkpoint_means_random_weights(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=MARKED)
    with fake_server(sglang_like("/work/.gpu/models/tiny-lfm2-dense")) as url:
        result = pytester.runpytest_subprocess("test_m.py", f"--lfm-server=1.2B-Instruct={url}", "-rs",
                                               "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*needs real weights; 1.2B-Instruct is served by a fixture checkpoint (random weights)*"])


def test_reference_version_is_emulated_and_gates_apply(suite: Suite) -> None:
    """--lfm-reference-version 0.5.10: media errors answer 500 there, so the bad-media cases are the declared
    strict expected failures rather than failures (and pass as checks on the default 0.5.23)."""
    old = suite("test_vision.py", variants=["VL-450M"], version="0.5.10", extra=["-k", "bad_image_input"])
    assert old.ret == 0, old.stdout[-3000:]
    assert set(old.outcomes("bad_image_input").values()) == {"xfailed"}, old.outcomes()
    new = suite("test_vision.py", variants=["VL-450M"], extra=["-k", "bad_image_input"])
    assert set(new.outcomes("bad_image_input").values()) == {"passed"}, new.outcomes()


def test_reference_version_needs_the_reference_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a=PASSING_CHECK)
    result = pytester.runpytest_subprocess("test_a.py", "--lfm-server=localhost:1", "--lfm-reference-version=0.5.17",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--lfm-reference-version only applies" in result.stderr.str()
