"""``pytest_lfm.bench`` uses sglang.bench_serving's (0.5.17) definitions (issue 21): prompts, warm-up, arrival
and concurrency limit, connections, TTFT, and the options that deliberately differ. No timing is asserted:
the figures' agreement on a GPU is measured by scripts/gpu/side_by_side.py (a run is in docs/runs/).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from pytest_lfm import bench
from pytest_lfm.reference.server import ReferenceServer


class FakeTokenizer:
    """A tokenizer with what random-ids needs: ``t<ID>`` per id, one special token (BOS) added."""

    vocab_size = 1000

    def num_special_tokens_to_add(self) -> int:
        return 1

    def decode(self, token_ids: list[int]) -> str:
        return " ".join(f"t{i}" for i in token_ids)


def bench_serving_random_ids(tokenizer: FakeTokenizer, num: int, input_len: int, output_len: int,
                             seed: int) -> list[str]:
    """sglang 0.5.17's ``sample_random_requests(random_sample=False, return_text=True, range_ratio=1)`` after
    ``np.random.seed(seed)``, transcribed step by step (global numpy generator, as bench_serving)."""
    np.random.seed(seed)
    input_lens = np.random.randint(max(int(input_len * 1.0), 1), input_len + 1, size=num).tolist()
    np.random.randint(max(int(output_len * 1.0), 1), output_len + 1, size=num)
    special = int(tokenizer.num_special_tokens_to_add())
    input_lens = [max(1, n - special) for n in input_lens]
    offsets = np.random.randint(0, tokenizer.vocab_size, size=num)
    return [tokenizer.decode([int((offsets[i] + i + j) % tokenizer.vocab_size) for j in range(input_lens[i])])
            for i in range(num)]


@pytest.mark.parametrize("seed", [42, 7])
def test_random_ids_prompts_are_bench_serving_prompts(seed: int) -> None:
    tok = FakeTokenizer()
    ps = bench.random_id_prompts(tok, 20, 64, seed)
    assert ps.prompts == bench_serving_random_ids(tok, 20, 64, 128, seed)
    ids = [[int(w[1:]) for w in p.split()] for p in ps.prompts]
    assert {len(x) for x in ids} == {63}  # input_len minus the special token the server adds
    assert all((b - a) % tok.vocab_size == 1 for x in ids for a, b in itertools.pairwise(x))
    assert len({x[0] for x in ids}) == len(ids), "two prompts share a first token (a shared prefix)"
    assert "random-ids" in ps.note and "63 token ids" in ps.note


class Recorder:
    """An httpx mock server: records every chat body and the most requests it had in flight at once."""

    def __init__(self, hold_s: float = 0.002) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_s = hold_s
        self.lock = threading.Lock()

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "m"}]})
        if request.url.path == "/model_info":
            return httpx.Response(404)
        body = json.loads(request.content)
        with self.lock:
            self.bodies.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.hold_s)  # keeps requests overlapping; nothing below depends on how long
        with self.lock:
            self.in_flight -= 1
        n = body["max_completion_tokens"]
        events: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}] * n
        events.append({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": n}})
        data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, content=iter([data.encode()]))


def _run(rec: Recorder, **workload: Any) -> bench.BenchResult:
    wl = bench.Workload(**{"input_len": 16, "output_len": 40, "num_prompts": 12, "warmup": 5, "concurrency": 3,
                           **workload})
    client = httpx.Client(base_url="http://mock", transport=httpx.MockTransport(rec.handler))
    with client:
        return bench.run_benchmark("http://mock", wl, client=client, tokenizer=FakeTokenizer())


def test_warmup_and_arrival_as_bench_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    pauses: list[float] = []
    monkeypatch.setattr("pytest_lfm.bench.time.sleep", lambda s: pauses.append(s))
    rec = Recorder(hold_s=0)
    result = _run(rec)
    prompts = bench.random_id_prompts(FakeTokenizer(), 12, 16, 42).prompts
    warm, timed = rec.bodies[:5], rec.bodies[5:]
    # warm-up: copies of the FIRST timed prompt, min(output_len, 32) tokens, then a 1 s pause
    assert [b["messages"][0]["content"] for b in warm] == [prompts[0]] * 5
    assert {b["max_completion_tokens"] for b in warm} == {32}
    assert [p for p in pauses if p] == [bench.WARMUP_PAUSE_S]  # (the mock server sleeps 0)
    # timed: every prompt once with the full output length (order within a concurrency window may vary)
    assert sorted(b["messages"][0]["content"] for b in timed) == sorted(prompts)
    assert {b["max_completion_tokens"] for b in timed} == {40}
    assert all(b["temperature"] == 0.0 and b["ignore_eos"] is True and b["stream"] is True for b in timed)
    assert "max_tokens" not in timed[0]  # bench_serving sends max_completion_tokens
    assert result.summary()["completed"] == 12 and any("warm-up as bench_serving" in n for n in result.notes)


def test_distinct_warmup_option_uses_other_prompts() -> None:
    rec = Recorder(hold_s=0)
    _run(rec, warmup_mode="distinct")
    timed = {b["messages"][0]["content"] for b in rec.bodies if b["max_completion_tokens"] == 40}
    assert len(rec.bodies) == 17 and len(timed) == 17  # 12 timed + 5 warm-ups, all distinct, full length


@pytest.mark.parametrize("concurrency", [1, 4])
def test_at_most_concurrency_requests_in_flight(concurrency: int) -> None:
    rec = Recorder()
    result = _run(rec, warmup=0, concurrency=concurrency, num_prompts=16)
    assert result.summary()["completed"] == 16
    assert 1 <= rec.max_in_flight <= concurrency, rec.max_in_flight


def _sse(*events: Any) -> list[bytes]:
    return [(f"data: {e}\n\n" if isinstance(e, str) else "data: " + json.dumps(e) + "\n\n").encode()
            for e in events]


def _delta(**d: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": None}]}


def _stream(parts: list[bytes]) -> httpx.Client:
    return httpx.Client(base_url="http://mock",
                        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=iter(parts))))


def test_first_token_any_counts_reasoning_content_only_counts_answer() -> None:
    parts = _sse(_delta(role="assistant", content=""), _delta(reasoning_content="think"), _delta(content="a"),
                 _delta(content="b"), {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 3}},
                 "[DONE]")
    with _stream(parts) as c:
        anyt = bench.time_request(c, bench.chat_payload("m", "hi", 3))
    with _stream(parts) as c:
        content = bench.time_request(c, bench.chat_payload("m", "hi", 3), first_token="content")
    assert (anyt.token_chunks, len(anyt.itl_ns)) == (3, 2)  # the reasoning chunk is the first token
    assert (content.token_chunks, len(content.itl_ns)) == (2, 1)  # the first answer chunk is
    with _stream(_sse(_delta(reasoning_content="only"), "[DONE]")) as c:
        none = bench.time_request(c, bench.chat_payload("m", "hi", 3), first_token="content")
    assert not none.ok and "no content token" in none.error


def test_e2e_ends_at_the_done_line_and_tpot_uses_server_token_count() -> None:
    reads = iter([*_sse(_delta(content="a"), _delta(content="b")),
                  *_sse({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}), b"data: [DONE]\n\n"])
    stamps: list[int] = []

    def stream() -> Iterator[bytes]:
        for part in reads:
            stamps.append(0)
            yield part

    with httpx.Client(base_url="http://mock",
                      transport=httpx.MockTransport(lambda r: httpx.Response(200, content=stream()))) as c:
        t = bench.time_request(c, bench.chat_payload("m", "hi", 5))
    assert t.ok and t.output_tokens == 5 and len(stamps) == 4
    assert t.e2e_ns >= t.ttft_ns + sum(t.itl_ns)  # the stream's end, after the last token chunk
    assert t.tpot_ns == pytest.approx((t.e2e_ns - t.ttft_ns) / 4)


def test_per_request_connections_by_default() -> None:
    assert bench.Workload().connection == "per-request"
    with ReferenceServer("1.2B-Instruct") as server:
        seen: list[int] = []
        for keepalive in (False, True):
            with bench.make_client(server.base_url, keepalive=keepalive) as c:
                for _ in range(3):
                    assert bench.time_request(c, bench.chat_payload(bench.served_model(c), "hi", 2)).ok
                pool = c._transport._pool  # type: ignore[attr-defined]
                seen.append(len(pool.connections))
        assert seen == [0, 1], "per-request: no connection kept for reuse; pooled: one kept alive"


def test_random_ids_without_a_tokenizer_falls_back_to_words_and_says_so() -> None:
    with ReferenceServer("1.2B-Instruct") as server:
        wl = bench.Workload(input_len=24, output_len=4, num_prompts=2, warmup=1, concurrency=1,
                            tokenizer="/nonexistent/tokenizer")
        result = bench.run_benchmark(server.base_url, wl)
    assert result.summary()["completed"] == 2
    assert "NOT bench_serving's random-ids prompts" in result.notes[0], result.notes


def test_real_servers_are_timed_with_bench_servings_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a real HTTP server the requests go out with aiohttp on one event loop (bench_serving's client):
    a session per request by default, one shared session with keepalive; results in request order."""
    calls: list[tuple[int, str]] = []
    real = bench.time_request_aiohttp

    async def spy(session: Any, url: str, payload: bytes, headers: Any, first_token: Any = "any") -> bench.RequestTiming:
        calls.append((id(session), url))
        return await real(session, url, payload, headers, first_token)

    monkeypatch.setattr(bench, "time_request_aiohttp", spy)
    with ReferenceServer("1.2B-Instruct") as server:
        for keepalive in (False, True):
            with bench.make_client(server.base_url) as c:
                payloads = [bench.chat_payload(bench.served_model(c), f"hi {i}", 2 + i) for i in range(4)]
                timings, duration = bench.run_requests(c, payloads.__getitem__, 4, 2, keepalive=keepalive)
            assert all(t.ok for t in timings) and duration > 0, [t.error for t in timings]
            assert [t.output_tokens for t in timings] == [2, 3, 4, 5]  # request order
    assert len(calls) == 8 and all(url.endswith("/v1/chat/completions") for _, url in calls)
    assert len({s for s, _ in calls[:4]}) >= 2 and len({s for s, _ in calls[4:]}) == 1
