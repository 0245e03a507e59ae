"""Engine mode (issue 14) with a fake ``sgl.Engine`` (fixtures/fake_engine): lifecycle, skip logic, usage
errors, and that the engine checks can fail.

The fake is loaded through ``LFM_ENGINE_FACTORY=path:make`` and writes one JSON line per create / generate
/ shutdown to ``FAKE_ENGINE_EVENTS``, so each test can assert when engines were created and shut down.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from harness import run_suite

from pytest_lfm import engine as eng
from pytest_lfm.engine import EngineFailed, EngineHandle, EnginePool, EngineResult
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import get_hardware
from pytest_lfm.variants import get_variant

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "fixtures" / "fake_engine" / "fake_engine.py"
HTTP_REASON = "checks the HTTP API; engine mode has none"


@pytest.fixture
def fake(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point engine mode at the fake engine; returns the events file."""
    events = pytester.path / "events.jsonl"
    monkeypatch.setenv("LFM_ENGINE_FACTORY", f"{FAKE}:make")
    monkeypatch.setenv("FAKE_ENGINE_EVENTS", str(events))
    for name in ("tiny-lfm2-moe", "tiny-lfm2-vl", "tiny-lfm2-dense"):
        (pytester.path / "models" / name).mkdir(parents=True, exist_ok=True)
    return events


def _events(path: Path, kind: str | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if kind is None or r["event"] == kind]


def _run(pytester: pytest.Pytester, modules: list[str], *extra: str,
         models: Mapping[str, str] | None = None) -> tuple[int, str, dict[str, dict[str, Any]]]:
    """One engine-mode run in a fresh process; returns (exit code, output, nodeid → report check)."""
    models = {"8B-A1B": "tiny-lfm2-moe"} if models is None else models
    args = [f"--lfm-model-path={v}={pytester.path / 'models' / d}" for v, d in models.items()]
    run = run_suite(pytester.path, modules, server="none", hardware="h100",
                    extra=[*args, "--lfm-engine", *extra], timeout=300)
    out = run.stdout + "".join(f"\ncell {cell['variant']}: mode={cell['mode']} base_url={cell['base_url']}"
                               for cell in run.report.get("cells", []))
    return run.ret, out, {c["nodeid"]: c for c in run.checks}


def _outcomes(checks: Mapping[str, Mapping[str, Any]], match: str) -> dict[str, str]:
    return {k: str(v["outcome"]) for k, v in checks.items() if match in k}


# ------------------------------------------------------------------------------------------ lifecycle


def test_engine_checks_run_and_http_checks_skip(pytester: pytest.Pytester, fake: Path) -> None:
    ret, out, checks = _run(pytester, ["test_engine.py", "test_sampling.py"],
                            models={"8B-A1B": "tiny-lfm2-moe", "VL-1.6B": "tiny-lfm2-vl"})
    assert ret == 0, out[-3000:]
    engine = _outcomes(checks, "test_engine.py")
    assert engine and set(engine.values()) <= {"passed", "skipped"}, engine
    for name in ("greedy_repeatable", "top_k=1", "min_p=1.0", "repetition_penalty", "completion_length"):
        assert {v for k, v in engine.items() if name in k} == {"passed"}, (name, engine)
    assert _outcomes(checks, "forced_tool_calls_parse") == {
        "conformance/engine/test_engine.py::test_engine_forced_tool_calls_parse[8B-A1B]": "passed",
        "conformance/engine/test_engine.py::test_engine_forced_tool_calls_parse[VL-1.6B]": "passed"}
    assert set(_outcomes(checks, "forced_reasoning_split").values()) == {"passed", "skipped"}  # VL: no reasoning
    assert set(_outcomes(checks, "test_engine_image_data[VL-1.6B").values()) == {"passed"}
    http = {k: v for k, v in checks.items() if "test_sampling.py" in k}
    assert http and all(c["outcome"] == "skipped" and HTTP_REASON in c["message"] for c in http.values()), \
        {k: (c["outcome"], c["message"]) for k, c in http.items() if HTTP_REASON not in c["message"]}
    # one engine per variant, created once, the first shut down before the second starts, none left running
    assert [(e["event"], e["variant"]) for e in _events(fake) if e["event"] != "generate"] == [
        ("create", "8B-A1B"), ("shutdown", "8B-A1B"), ("create", "VL-1.6B"), ("shutdown", "VL-1.6B")]
    created = _events(fake, "create")[0]
    assert created["kwargs"]["tool_call_parser"] == "lfm2" and created["kwargs"]["reasoning_parser"] == "qwen3"
    assert created["kwargs"]["attention_backend"] == "torch_native"  # the fixture-checkpoint profile
    assert "cell 8B-A1B: mode=engine base_url=engine://8B-A1B" in out
    started = [k for k, c in checks.items() if "engine_start_s" in (c.get("properties") or {})]
    assert len(started) == 2 and all("test_engine_greedy_repeatable" in k for k in started), started


def test_a_failing_check_still_shuts_the_engine_down(pytester: pytest.Pytester, fake: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ENGINE_FAULT", "ignore_top_k")
    ret, out, checks = _run(pytester, ["test_engine.py"])
    assert ret == 1, out[-3000:]
    failed = {k: c for k, c in checks.items() if c["outcome"] == "failed"}
    assert list(failed) == ["conformance/engine/test_engine.py::test_engine_restriction_makes_temperature_1_greedy"
                            "[8B-A1B-top_k=1]"], out[-3000:]
    msg = next(iter(failed.values()))["message"]
    assert "Expected" in msg and "Actual" in msg and "top_k=1 at temperature 1 did not decode greedily" in msg
    assert [e["event"] for e in _events(fake) if e["event"] != "generate"] == ["create", "shutdown"]


@pytest.mark.parametrize("fault", ["prefix_cache_hit_stale_state", "ignore_repetition_penalty", "image_dropped",
                                   "skip_special_tokens_ignored", "length_finish_stop", "regex_ignored"])
def test_engine_checks_fail_on_their_engine_faults(pytester: pytest.Pytester, fake: Path,
                                                   monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    """The proof of the engine family's fault rows (conformance/engine/faults.toml): with the fake engine's
    fault of that name, exactly the check written for it fails, its message naming Expected, Actual and what
    went wrong; the same checks pass without it (test_engine_checks_run_and_http_checks_skip)."""
    check, variant, words = {
        "prefix_cache_hit_stale_state": ("test_engine_greedy_repeatable", "8B-A1B",
                                         "sequential greedy requests give the same text"),
        "ignore_repetition_penalty": ("test_engine_repetition_penalty_changes_repetitive_greedy", "8B-A1B",
                                      "repetition_penalty=2.0 changes a repetitive greedy continuation"),
        "image_dropped": ("test_engine_image_data", "VL-1.6B", "the image adds prompt tokens"),
        "skip_special_tokens_ignored": ("test_engine_forced_tool_calls_parse", "8B-A1B",
                                        "tool calls: the regex-forced output"),
        "length_finish_stop": ("test_engine_completion_length_accounting", "8B-A1B", "finish_reason with ignore_eos"),
        "regex_ignored": ("test_engine_forced_reasoning_split", "8B-A1B", "reasoning: the regex-forced output"),
    }[fault]
    monkeypatch.setenv("FAKE_ENGINE_FAULT", fault)
    models = {"8B-A1B": "tiny-lfm2-moe", "VL-1.6B": "tiny-lfm2-vl"}
    ret, out, checks = _run(pytester, ["test_engine.py"], "-k", check, models={variant: models[variant]})
    assert ret == 1, out[-3000:]
    ran = {k: c for k, c in checks.items() if f"::{check}[" in k}
    assert ran and {c["outcome"] for c in ran.values()} == {"failed"}, (_outcomes(checks, "::"), out[-3000:])
    for c in ran.values():
        assert "Expected" in c["message"] and "Actual" in c["message"] and words in c["message"], c["message"]
    assert [e["event"] for e in _events(fake) if e["event"] != "generate"] == ["create", "shutdown"]


def test_ctrl_c_mid_request_shuts_the_engine_down(pytester: pytest.Pytester, fake: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ENGINE_FAULT", "interrupt_on_generate")
    ret, out, _ = _run(pytester, ["test_engine.py"])
    assert ret == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert [e["event"] for e in _events(fake)] == ["create", "generate", "shutdown"]


def test_sigterm_is_ctrl_c_even_after_the_engine_took_the_handler(pytester: pytest.Pytester, fake: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SGLang's tokenizer manager installs its own SIGTERM handler; the adapter takes SIGTERM back, so a CI
    timeout's SIGTERM still interrupts the run and shuts the engine down."""
    monkeypatch.setenv("FAKE_ENGINE_FAULT", "steal_sigterm,sigterm_on_generate")
    ret, out, _ = _run(pytester, ["test_engine.py"])
    assert ret == pytest.ExitCode.INTERRUPTED, out[-3000:]
    assert [e["event"] for e in _events(fake)] == ["create", "generate", "shutdown"]


def test_engine_that_fails_to_start_is_one_clear_error(pytester: pytest.Pytester, fake: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_ENGINE_FAULT", "fail_create")
    ret, out, checks = _run(pytester, ["test_engine.py"])
    assert ret == 1, out[-3000:]
    failed = [c for c in checks.values() if c["outcome"] in ("failed", "error")]
    assert len(failed) == 1, [(c["nodeid"], c["outcome"]) for c in checks.values()]
    msg = failed[0]["message"]
    assert "sgl.Engine for 8B-A1B did not start" in msg and "out of memory" in msg
    assert "Tried:" in msg and "attention_backend='torch_native'" in msg and "To fix:" in msg
    assert "lfm: the engine for 8B-A1B did not start" in out  # the session stopped after the first check
    assert _events(fake) == []


def test_engine_checks_skip_on_server_targets(pytester: pytest.Pytester) -> None:
    run = run_suite(pytester.path, ["test_engine.py"], variants=["350M"], hardware="h100", extra=["-rs"],
                    timeout=300)
    out = run.stdout
    assert run.ret == 0, out[-3000:]
    assert "needs --lfm-engine" in out and " passed" not in out


def test_no_sglang_is_a_usage_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    if importlib.util.find_spec("sglang") is not None:
        pytest.skip("SGLang is importable here")
    (tmp_path / "tiny-lfm2-moe").mkdir()
    result = pytester.runpytest_subprocess("--lfm-engine", f"--lfm-model-path=8B-A1B={tmp_path / 'tiny-lfm2-moe'}",
                                           "-p", "no:cacheprovider", timeout=120)
    err = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "SGLang is not importable" in err and "To fix:" in err and "PYTHONPATH" in err


# ------------------------------------------------------------------------------------------ usage errors


@pytest.mark.parametrize(("args", "expected"), [
    (["--lfm-engine"], "needs a checkpoint for each variant"),
    (["--lfm-engine", "--lfm-variant=VL-1.6B", "--lfm-model-path=8B-A1B=models/tiny-lfm2-moe"],
     "missing: VL-1.6B"),
    (["--lfm-engine", "--lfm-model-path=8B-A1B=models/tiny-lfm2-moe", "--lfm-server=reference"],
     "--lfm-engine runs SGLang in-process"),
    (["--lfm-engine", "--lfm-model-path=8B-A1B=models/tiny-lfm2-moe", "--lfm-launch"],
     "--lfm-engine runs SGLang in-process"),
    (["--lfm-engine", "--lfm-model-path=8B-A1B=models/tiny-lfm2-moe", "-n", "2"],
     "xdist (-n / --dist)"),
    (["--lfm-engine", "--lfm-model-path=8B-A1B=models/no-such-dir"], "no such checkpoint directory"),
    (["--lfm-engine-arg=mem_fraction_static=0.5"], "--lfm-engine-arg only applies to engine mode"),
    (["--lfm-engine", "--lfm-model-path=8B-A1B=models/tiny-lfm2-moe", "--lfm-engine-arg=0bad"],
     "expected KEY=VALUE"),
])
def test_usage_errors(pytester: pytest.Pytester, fake: Path, args: list[str], expected: str) -> None:
    result = pytester.runpytest_subprocess(*args, "-p", "no:cacheprovider", timeout=120)
    err = result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:] + err
    assert expected in err and "To fix" in err, err
    assert _events(fake) == []


def test_xdist_zero_workers_is_allowed(pytester: pytest.Pytester, fake: Path) -> None:
    ret, out, checks = _run(pytester, ["test_engine.py"], "-n", "0")
    assert ret == 0, out[-3000:]
    assert "passed" in set(_outcomes(checks, "test_engine.py").values())


# ------------------------------------------------------------------------------------------ units


def test_engine_kwargs_recipe_fixture_profile_and_overrides() -> None:
    moe, vl = get_variant("8B-A1B"), get_variant("VL-1.6B")
    h100 = get_hardware("h100")
    real = eng.engine_kwargs(moe, h100, "/models/LFM2.5-8B-A1B")
    assert real == {"trust_remote_code": True, "tp_size": 1, "tool_call_parser": "lfm2", "reasoning_parser": "qwen3"}
    b200 = eng.engine_kwargs(moe, get_hardware("b200"), "/models/LFM2.5-8B-A1B")
    assert b200["attention_backend"] == "flashinfer"  # the recipe's Blackwell backend
    assert eng.engine_kwargs(vl, h100, "/models/LFM2.5-VL-1.6B")["mm_attention_backend"] == "fa3"
    tiny = eng.engine_kwargs(vl, h100, "/x/tiny-lfm2-vl", {"mem_fraction_static": 0.5, "context_length": None})
    assert tiny["attention_backend"] == "torch_native" and tiny["disable_cuda_graph"] is True
    assert tiny["mm_attention_backend"] == "triton_attn" and tiny["mem_fraction_static"] == 0.5
    assert "context_length" not in tiny
    assert eng.engine_kwargs(moe, None, "/m")["tool_call_parser"] == "lfm2"  # unknown hardware
    assert eng.engine_env(vl, "/models/LFM2.5-VL-1.6B") and not eng.engine_env(vl, "/x/tiny-lfm2-vl")


@pytest.mark.parametrize(("text", "expected"), [
    ("mem_fraction_static=0.3", ("mem_fraction_static", 0.3)),
    ("--disable-cuda-graph=true", ("disable_cuda_graph", True)),
    ("attention_backend=torch_native", ("attention_backend", "torch_native")),
    ("context_length=null", ("context_length", None)),
])
def test_parse_engine_arg(text: str, expected: tuple[str, Any]) -> None:
    assert eng.parse_engine_arg(text) == expected


def test_engine_result_from_sglang_output() -> None:
    r = EngineResult.from_output({"text": "hi<|im_end|>", "meta_info": {
        "finish_reason": {"type": "stop", "matched": 7}, "prompt_tokens": 5, "completion_tokens": 2}})
    assert (r.finish_reason, r.matched_stop, r.prompt_tokens, r.completion_tokens) == ("stop", 7, 5, 2)
    assert eng.strip_eos(r.text) == "hi"
    assert EngineResult.from_output({"text": "x", "meta_info": {"finish_reason": None}}).finish_reason is None


def test_load_factory_errors() -> None:
    with pytest.raises(LfmUsageError, match="expected module:function"):
        eng.load_factory("no_colon")
    with pytest.raises(LfmUsageError, match="cannot load the engine factory"):
        eng.load_factory("no_such_module_xyz:make")
    factory, spec = eng.load_factory(f"{FAKE}:make")
    assert eng.factory_version(factory, spec) == "0.5.17"


class _Counting:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __call__(self, variant: Any, path: str, kwargs: Mapping[str, Any]) -> Any:
        self.calls.append(variant.id)
        if self.fail:
            raise RuntimeError("boom")
        owner = self

        class _E:
            def shutdown(self) -> None:
                owner.calls.append(f"shutdown {variant.id}")

        return _E()


def test_pool_keeps_one_engine_alive_and_remembers_start_failures() -> None:
    factory = _Counting()
    pool = EnginePool([EngineHandle(get_variant(v), "/m", {}, factory) for v in ("350M", "1.2B-Base")])
    assert pool.acquire("350M") is pool.acquire("350M")
    pool.acquire("1.2B-Base")
    assert factory.calls == ["350M", "shutdown 350M", "1.2B-Base"]
    pool.stop()
    pool.stop()
    assert factory.calls[-1] == "shutdown 1.2B-Base" and factory.calls.count("shutdown 1.2B-Base") == 1
    broken = _Counting(fail=True)
    pool2 = EnginePool([EngineHandle(get_variant("350M"), "/m", {"a": 1}, broken)])
    for _ in range(2):
        with pytest.raises(EngineFailed, match="did not start: RuntimeError: boom"):
            pool2.acquire("350M")
    assert broken.calls == ["350M"]  # no second start-up


def test_pools_are_stopped_at_exit() -> None:
    factory = _Counting()
    pool = EnginePool([EngineHandle(get_variant("350M"), "/m", {}, factory)])
    pool.acquire("350M")
    eng._stop_pools_at_exit()
    assert factory.calls == ["350M", "shutdown 350M"]
