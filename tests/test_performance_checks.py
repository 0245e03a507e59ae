"""The performance checks and their harness (issue 10): budget data validates, GPU gates skip cleanly without
a GPU, the gate path runs end to end against the reference server when asked, and the benchmark library
parses streams, calibrates prompts, summarises, plots and writes as documented.

Nothing here asserts a timing (the instrument's accuracy is tests/test_bench_accuracy.py's job); the
stream parser is exercised through httpx.MockTransport with fixed chunks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Suite
from PIL import Image

from pytest_lfm import bench
from pytest_lfm.__main__ import main as cli_main
from pytest_lfm.hardware import hardware_ids
from pytest_lfm.paths import suite_module
from pytest_lfm.reference.server import ReferenceServer
from pytest_lfm.variants import variant_ids

# ------------------------------------------------------------------------------------------ budget data


def test_budget_file_validates_and_holds_the_anchors() -> None:
    budgets = bench.load_budgets()
    assert budgets.defaults.slack_ttft > 1 and budgets.defaults.slack_tpot > 1 and budgets.defaults.slack_throughput > 1
    ids = [b.id for b in budgets.rows]
    assert len(ids) == len(set(ids))
    assert {b.hardware for b in budgets.rows} <= set(hardware_ids())
    assert {b.variant for b in budgets.rows} <= set(variant_ids())
    # B300: only the seed's 1.2B-Instruct c=1 figures exist
    b300 = [b for b in budgets.rows if b.hardware == "b300"]
    assert [(b.variant, b.concurrency) for b in b300] == [("1.2B-Instruct", 1)]
    seed = b300[0]
    assert (seed.ttft_ms, seed.tpot_ms, seed.output_throughput) == (8.79, 0.86, 1100.92)
    assert (seed.input_len, seed.output_len, seed.num_prompts, seed.warmup) == (1024, 128, 256, 128)
    # the cookbook: h100/h200/b200 x 7 variants x c=1 and c=100, random 1024/1024
    cookbook = [b for b in budgets.rows if b.hardware != "b300"]
    assert len(cookbook) == 3 * 7 * 2
    assert {(b.input_len, b.output_len) for b in cookbook} == {(1024, 1024)}
    h100 = budgets.find("h100", "1.2B-Instruct", 1)[0]
    assert (h100.ttft_ms, h100.tpot_ms, h100.output_throughput) == (18.9, 2.08, 472)
    b200 = budgets.find("b200", "VL-450M", 100)[0]
    assert (b200.ttft_ms, b200.tpot_ms, b200.output_throughput) == (939, 2.25, 23881)
    assert all("cookbook" in b.source for b in cookbook) and "B300" in seed.source


GOOD_ROW = """
[[budget]]
hardware = "h100"
variant = "1.2B-Instruct"
concurrency = 1
input_len = 1024
output_len = 128
num_prompts = 10
warmup = 1
ttft_ms = 10.0
tpot_ms = 1.0
output_throughput = 100.0
source = "a published benchmark page"
"""
DEFAULTS = "[defaults]\nslack_ttft = 1.5\nslack_tpot = 1.2\nslack_throughput = 1.2\n"


@pytest.mark.parametrize(("text", "message"), [
    (DEFAULTS + GOOD_ROW.replace('"h100"', '"a100"'), "unknown hardware 'a100'"),
    (DEFAULTS + GOOD_ROW.replace('"1.2B-Instruct"', '"7B"'), "unknown variant '7B'"),
    (DEFAULTS + GOOD_ROW + GOOD_ROW, "duplicate row h100-1.2B-Instruct-c1"),
    (DEFAULTS + GOOD_ROW.replace("ttft_ms = 10.0", "ttft_ms = -1"), "ttft_ms"),
    (DEFAULTS + GOOD_ROW + "slack_tpot = 0.9\n", "slack_tpot"),
    (DEFAULTS + GOOD_ROW + "colour = 1\n", "colour"),
    (DEFAULTS.replace("1.5", "1.0") + GOOD_ROW, "[defaults]"),
    ("[budgets]\n", "unknown top-level keys"),
], ids=["hardware", "variant", "duplicate", "negative", "slack", "unknown-key", "default-slack", "top-level"])
def test_budget_loader_rejects_bad_data(text: str, message: str) -> None:
    with pytest.raises(bench.BudgetError, match=None) as exc:
        bench.parse_budgets(text)
    assert message in str(exc.value)


def _result(ttft_ms: list[float], tpot_ms: float, tokens: int = 128, duration_s: float = 1.0,
            failed: int = 0) -> bench.BenchResult:
    reqs = [bench.RequestTiming(ok=True, ttft_ns=int(t * 1e6), e2e_ns=int((t + tpot_ms * (tokens - 1)) * 1e6),
                                itl_ns=[int(tpot_ms * 1e6)] * (tokens - 1), output_tokens=tokens,
                                prompt_tokens=1030, token_chunks=tokens) for t in ttft_ms]
    reqs += [bench.RequestTiming(ok=False, error="HTTP 500: boom") for _ in range(failed)]
    wl = bench.Workload(input_len=1024, output_len=tokens, num_prompts=len(reqs), warmup=0)
    return bench.BenchResult(base_url="http://x", model="m", workload=wl, requests=reqs, duration_s=duration_s)


def test_budget_check_applies_slack_per_metric() -> None:
    budgets = bench.parse_budgets(DEFAULTS + GOOD_ROW)
    row = budgets.rows[0]
    # 4 requests x 128 tokens in 1 s = 512 tok/s >= 100 / 1.2; TTFT mean 14 <= 10 x 1.5; TPOT 1.1 <= 1.0 x 1.2
    ok = budgets.check(row, _result([13, 14, 14, 15], 1.1))
    assert [v.passed for v in ok] == [True, True, True], [v.describe() for v in ok]
    bad = budgets.check(row, _result([15, 16, 16, 17], 1.3, duration_s=10.0))
    assert [v.passed for v in bad] == [False, False, False]
    assert "OVER BUDGET" in bad[0].describe() and "10 x 1.5" in bad[0].describe()
    assert bad[2].limit == pytest.approx(100 / 1.2) and bad[2].higher_is_better


def test_summary_percentiles_and_tpot_definition() -> None:
    r = _result([10.0, 20.0, 30.0, 40.0, 50.0], 2.0, failed=1)
    s = r.summary()
    assert s["completed"] == 5 and s["failed"] == 1
    assert s["ttft_ms"]["p50"] == pytest.approx(30.0)
    assert s["ttft_ms"]["p90"] == pytest.approx(46.0)  # numpy linear interpolation, as bench_serving
    assert s["tpot_ms"]["mean"] == pytest.approx(2.0, abs=1e-3)  # (e2e - ttft) / (tokens - 1)
    assert s["total_output_tokens"] == 5 * 128 and s["output_throughput"] == pytest.approx(640.0)
    assert math.isnan(bench.describe([])["p99"])


def test_workload_scaling_keeps_one_warmup_per_slot() -> None:
    wl = bench.Workload(num_prompts=256, warmup=128, concurrency=16).scaled(0.01)
    assert (wl.num_prompts, wl.warmup) == (3, 16)
    assert bench.Workload(warmup=0).scaled(0.5).warmup == 0


# ------------------------------------------------------------------------------------------ the stream timer


def _sse(*events: Any) -> list[bytes]:
    return [(f"data: {e}\n\n" if isinstance(e, str) else "data: " + json.dumps(e) + "\n\n").encode()
            for e in events]


def _chunk(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _client(parts: list[bytes], status: int = 200) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["ignore_eos"] is True and body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        return httpx.Response(status, content=iter(parts))

    return httpx.Client(base_url="http://mock", transport=httpx.MockTransport(handler))


def test_time_request_counts_reasoning_as_first_token_and_reads_usage() -> None:
    parts = _sse(_chunk(role="assistant", content=""), _chunk(reasoning_content="hm"), _chunk(content="a"),
                 _chunk(content="b"), {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
                 {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}, "[DONE]")
    # split one event across two reads, and put two events in one read
    parts = [parts[0] + parts[1][:7], parts[1][7:], parts[2] + parts[3], *parts[4:]]
    with _client(parts) as c:
        t = bench.time_request(c, bench.chat_payload("m", "hi", 3))
    assert t.ok, t.error
    assert (t.token_chunks, t.output_tokens, t.prompt_tokens, len(t.itl_ns)) == (3, 3, 12, 2)
    assert 0 < t.ttft_ns <= t.e2e_ns and t.tpot_ns is not None


@pytest.mark.parametrize(("parts", "status", "error"), [
    (_sse({"error": {"message": "bad"}}), 200, "error event"),
    ([b'{"object":"error","message":"nope"}'], 400, "HTTP 400"),
    (_sse(_chunk(role="assistant", content=""), "[DONE]"), 200, "no content or reasoning token"),
], ids=["error-event", "http-error", "no-token"])
def test_time_request_reports_failures(parts: list[bytes], status: int, error: str) -> None:
    with _client(parts, status) as c:
        t = bench.time_request(c, bench.chat_payload("m", "hi", 3))
    assert not t.ok and error in t.error and t.tpot_ns is None


def test_prompts_calibrate_with_tokenize_and_say_when_estimated() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json={"count": len(body["prompt"].encode())})  # a byte-level tokenizer

    with httpx.Client(base_url="http://mock", transport=httpx.MockTransport(handler)) as c:
        ps = bench.make_prompts(c, "m", 5, 300)
    assert ps.calibrated and len(set(ps.prompts)) == 5
    assert all(abs(n - 300) <= 3 for n in ps.token_counts), ps.token_counts
    assert "calibrated" in ps.note
    with httpx.Client(base_url="http://mock", transport=httpx.MockTransport(lambda r: httpx.Response(404))) as c:
        fallback = bench.make_prompts(c, "m", 2, 300)
    assert not fallback.calibrated and "ESTIMATED" in fallback.note


def test_image_payload_is_a_distinct_720p_jpeg() -> None:
    import base64
    import io

    a, b = bench.make_image_data_url(1), bench.make_image_data_url(2)
    assert a != b and a.startswith("data:image/jpeg;base64,")
    img = Image.open(io.BytesIO(base64.b64decode(a.split(",", 1)[1])))
    assert img.size == (1280, 720)
    body = json.loads(bench.chat_payload("m", "describe", 8, a))
    assert [p["type"] for p in body["messages"][0]["content"]] == ["image_url", "text"]


def test_result_writes_json_and_png(tmp_path: Path) -> None:
    paths = _result([10.0, 12.0, 11.0], 1.0).write(tmp_path, "run")
    assert [p.name for p in paths] == ["run.json", "run.png"]
    data = json.loads(paths[0].read_text())
    assert data["summary"]["completed"] == 3 and len(data["requests"]) == 3
    with Image.open(paths[1]) as png:
        assert png.format == "PNG" and png.size[0] > 400


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def reference_url() -> Iterator[str]:
    with ReferenceServer("1.2B-Instruct") as server:
        yield server.base_url


def test_bench_cli_runs_against_reference(reference_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli_main(["bench", "--server", reference_url.removeprefix("http://"), "--input-len", "32",
                       "--output-len", "8", "--num-prompts", "3", "--warmup", "1", "--concurrency", "1", "2",
                       "--out", str(tmp_path), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "TTFT (ms):" in out and "Output token throughput" in out and "calibrated" in out
    for c in (1, 2):
        data = json.loads((tmp_path / f"bench-c{c}.json").read_text())
        assert data["summary"]["completed"] == 3 and data["summary"]["requests_with_other_output_len"] == 0
        assert (tmp_path / f"bench-c{c}.png").is_file()
    assert cli_main(["bench", "--server", reference_url, "--hardware", "b300"]) == 2  # needs --variant


def test_gpu_gates_skip_cleanly_without_gpu(suite: Suite) -> None:
    run = suite("test_performance.py", variants=("1.2B-Instruct", "VL-450M"))
    outcomes = run.outcomes("test_performance")
    assert outcomes and set(outcomes.values()) == {"skipped"}, outcomes
    assert run.ret == 0, run.stdout[-2000:]
    for check in run.checks:
        assert "GPU check for" in check["message"] or "needs vision" in check["message"], check


def test_gate_runs_end_to_end_on_reference_when_asked(suite: Suite, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a hardware id, LFM_PERF_REFERENCE=1 and a small LFM_PERF_SCALE, the B300 gate measures the
    reference server against the PUBLISHED budget (the reference server is not a random-weight checkpoint),
    records its figures and writes JSON + PNG into the report directory. The check here is the plumbing, not
    the figure: whether a CPU toy model on a loaded 2-core box meets a B300 budget is a matter of load, so
    the verdict may go either way, but a failure must be the budget's, naming the published figures."""
    monkeypatch.setenv("LFM_PERF_REFERENCE", "1")
    monkeypatch.setenv("LFM_PERF_SCALE", "0.02")
    run = suite("test_performance.py", extra=["--lfm-hardware=b300", "-k", "budget"])
    assert run.outcome("h100-c1]") == "skipped"
    check = next(c for c in run.checks if "b300-c1]" in c["nodeid"])
    if run.outcome("b300-c1]") != "passed":
        assert "outside the published budget" in check["message"], run.stdout[-3000:]
    assert check["properties"]["lfm_statistic"].startswith("published budget b300-1.2B-Instruct-c1")
    assert "TTFT mean" in check["properties"]["lfm_statistic"]
    assert check["properties"]["perf_figures"]["completed"] == 6
    assert run.report_dir is not None
    files = sorted(p.name for p in (run.report_dir / "performance").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".png"), files


def test_self_calibrated_budget_for_random_weights_passes_its_own_figures_and_flags_impossible_ones() -> None:
    """On fixture checkpoints the budget check calibrates its budget on the run (issue 21): the calibrated
    row carries the calibration pass's figures and says where they come from; a run like the calibration
    passes; the negative control (figures 1000x better than measured) fails on all three metrics."""
    import importlib.util

    path = suite_module("test_performance.py")
    spec = importlib.util.spec_from_file_location("perf_checks_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    published = bench.load_budgets().find("h200", "1.2B-Instruct", 1)[0]
    calibration = _result([10.0, 12.0, 11.0], 1.0)
    row, budgets = module.calibrated_budget(published, calibration)
    s = calibration.summary()
    assert (row.ttft_ms, row.tpot_ms, row.output_throughput) == (
        pytest.approx(s["ttft_ms"]["mean"]), pytest.approx(s["tpot_ms"]["mean"]), pytest.approx(s["output_throughput"]))
    assert row.source.startswith("self-calibrated on this run") and "do not apply to random weights" in row.source
    assert all(v.passed for v in budgets.check(row, _result([10.5, 11.0, 12.5], 1.0)))
    impossible, control = module.calibrated_budget(row, calibration, slack=1.01, factor=module.NEGATIVE_CONTROL_FACTOR)
    assert not any(v.passed for v in control.check(impossible, calibration))
