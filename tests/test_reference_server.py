"""Unit tests of the reference server's own behaviour (issue: a test double that shares a bug cannot prove
that a check catches it): image cache keys, streamed content with tools, parallel_tool_calls=false, stream
logprobs, single-token tags, n > 1 streams, --stream-interval, and concurrent serving."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from PIL import Image

from pytest_lfm import lfm2
from pytest_lfm.reference import tokenizer as tok
from pytest_lfm.reference.server import ReferenceServer
from pytest_lfm.server.http import make_http_client

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def instruct() -> Iterator[httpx.Client]:
    with ReferenceServer("1.2B-Instruct") as server:
        http = make_http_client(server.base_url, None, 30.0)
        try:
            yield http
        finally:
            http.close()


def chat(http: httpx.Client, **body: Any) -> dict[str, Any]:
    resp = http.post("/v1/chat/completions", json={"model": "m", "max_tokens": 200, **body})
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def stream(http: httpx.Client, **body: Any) -> list[dict[str, Any]]:
    resp = http.post("/v1/chat/completions", json={"model": "m", "max_tokens": 200, "stream": True, **body})
    assert resp.status_code == 200, resp.text
    return [json.loads(line[6:]) for line in resp.text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


def streamed(events: list[dict[str, Any]], key: str, index: int = 0) -> str:
    return "".join(c["delta"].get(key) or "" for e in events for c in e["choices"] if c["index"] == index)


def streamed_calls(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [tc for e in events for c in e["choices"] for tc in c["delta"].get("tool_calls") or []]


def png(colour: tuple[int, int, int], size: tuple[int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_image_cache_tells_same_pixels_of_different_sizes_apart() -> None:
    """A red 8x8 after a red 16x4 (the same 64 red pixels) is answered as an 8x8 picture."""
    with ReferenceServer("VL-1.6B") as server, make_http_client(server.base_url, None, 30.0) as http:
        answers = []
        for size in ((16, 4), (8, 8)):
            body = chat(http, temperature=0, messages=[{"role": "user", "content": [
                {"type": "text", "text": "Describe the picture."},
                {"type": "image_url", "image_url": {"url": png((255, 0, 0), size)}}]}])
            answers.append(body["choices"][0]["message"]["content"])
    assert "16x4" in answers[0], answers[0]
    assert "8x8" in answers[1] and "16x4" not in answers[1], f"expected an 8x8 picture, got {answers[1]!r}"


def test_streamed_content_keeps_a_trailing_angle_bracket_with_tools(instruct: httpx.Client) -> None:
    """Text held back because it could begin <|tool_call_start|> is content at the end of the stream."""
    body = {"temperature": 0, "tools": [WEATHER], "regex": "ok <",
            "messages": [{"role": "user", "content": "Say ok."}]}
    full = chat(instruct, **body)["choices"][0]["message"]["content"]
    assert full == "ok <"
    assert streamed(stream(instruct, **body), "content") == "ok <"


def test_parallel_tool_calls_false_returns_one_call_for_forced_auto_output(instruct: httpx.Client) -> None:
    two = lfm2.BOT + '[get_weather(city="Paris"), get_weather(city="Oslo")]' + lfm2.EOT
    body = {"temperature": 0, "tools": [WEATHER], "tool_choice": "auto", "regex": re.escape(two),
            "messages": [{"role": "user", "content": "Weather in Paris and Oslo?"}]}
    both = chat(instruct, **body)["choices"][0]["message"]["tool_calls"]
    assert [json.loads(c["function"]["arguments"])["city"] for c in both] == ["Paris", "Oslo"]
    one = chat(instruct, parallel_tool_calls=False, **body)["choices"][0]
    assert [json.loads(c["function"]["arguments"])["city"] for c in one["message"]["tool_calls"]] == ["Paris"]
    assert one["finish_reason"] == "tool_calls"
    calls = streamed_calls(stream(instruct, parallel_tool_calls=False, **body))
    assert [json.loads(c["function"]["arguments"])["city"] for c in calls] == ["Paris"]


def test_stream_logprobs_match_the_non_streamed_ones(instruct: httpx.Client) -> None:
    body = {"temperature": 0, "logprobs": True, "top_logprobs": 3, "max_tokens": 24,
            "messages": [{"role": "user", "content": "Tell me about the sea."}]}
    full = chat(instruct, **body)["choices"][0]
    events = stream(instruct, **body)
    entries = [x for e in events for c in e["choices"] for x in (c["logprobs"] or {}).get("content") or []]
    assert entries == full["logprobs"]["content"]
    assert "".join(x["token"] for x in entries) == full["message"]["content"]
    token_chunks = [c for e in events for c in e["choices"] if c["delta"].get("content")]
    assert all(c["logprobs"] and c["logprobs"]["content"] for c in token_chunks)
    assert all(c["logprobs"] is None for c in stream(instruct, **{**body, "logprobs": False})[0]["choices"])


def test_lfm25_tags_are_single_tokens() -> None:
    for tag in (lfm2.THINK_START, lfm2.THINK_END, lfm2.BOT, lfm2.EOT, "<|im_start|>", "<|im_end|>"):
        assert len(tok.encode(tag)) == 1, tag
    ids = tok.encode("<think>a</think>b")
    assert tok.decode(ids) == "<think>a</think>b"  # the reasoning tags are not skipped as special
    assert tok.decode(tok.encode(lfm2.BOT + "x" + lfm2.EOT)) == "x"  # the tool-call markers are


def test_thinking_stream_never_splits_a_tag() -> None:
    with ReferenceServer("1.2B-Thinking") as server, make_http_client(server.base_url, None, 30.0) as http:
        events = stream(http, temperature=0, separate_reasoning=False,
                        messages=[{"role": "user", "content": "Why is the sky blue?"}])
    pieces = [c["delta"]["content"] for e in events for c in e["choices"] if c["delta"].get("content")]
    assert lfm2.THINK_START in pieces and lfm2.THINK_END in pieces, pieces[:12]


def test_n2_stream_interleaves_both_choices(instruct: httpx.Client) -> None:
    events = stream(instruct, n=2, temperature=0.8, seed=3, max_tokens=6,
                    messages=[{"role": "user", "content": "Hello there"}])
    order = [c["index"] for e in events for c in e["choices"]]
    assert set(order) == {0, 1}
    assert order[:2] == [0, 1], order  # both role chunks first
    finishes = [c["index"] for e in events for c in e["choices"] if c["finish_reason"]]
    assert sorted(finishes) == [0, 1]
    full = chat(instruct, n=2, temperature=0.8, seed=3, max_tokens=6,
                messages=[{"role": "user", "content": "Hello there"}])
    assert [streamed(events, "content", i) for i in (0, 1)] == \
        [c["message"]["content"] for c in full["choices"]]


def test_non_tool_messages_carry_tool_calls_null(instruct: httpx.Client) -> None:
    message = chat(instruct, temperature=0, messages=[{"role": "user", "content": "Hi"}])["choices"][0]["message"]
    assert "tool_calls" in message and message["tool_calls"] is None


def test_stream_interval_groups_tokens_and_is_reported() -> None:
    body = {"temperature": 0, "max_tokens": 30, "messages": [{"role": "user", "content": "Tell me about rivers."}]}
    with ReferenceServer("1.2B-Instruct", stream_interval=4) as server, \
            make_http_client(server.base_url, None, 30.0) as http:
        assert http.get("/server_info").json()["stream_interval"] == 4
        full = chat(http, **body)
        events = stream(http, **body)
    content = [c["delta"]["content"] for e in events for c in e["choices"] if c["delta"].get("content")]
    assert "".join(content) == full["choices"][0]["message"]["content"]
    n_tokens = full["usage"]["completion_tokens"]
    assert len(content) <= -(-n_tokens // 4) and any(len(tok.encode(p)) > 1 for p in content)


def test_chunk_fault_differs_only_with_multi_token_chunks() -> None:
    """stream_chunk_tail_dropped: streamed == non-streamed at one token per chunk, not at four."""
    body = {"temperature": 0, "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
    results = {}
    for interval in (1, 4):
        with ReferenceServer("1.2B-Thinking", faults=["stream_chunk_tail_dropped"],
                             stream_interval=interval) as server, \
                make_http_client(server.base_url, None, 30.0) as http:
            full = chat(http, **body)["choices"][0]["message"]
            events = stream(http, **body)
            results[interval] = ((full["reasoning_content"], full["content"]),
                                 (streamed(events, "reasoning_content"), streamed(events, "content")))
    assert results[1][0] == results[1][1]
    assert results[4][1] != results[4][0]


def _hold_a_stream(server: ReferenceServer, started: threading.Event, done: threading.Event,
                   out: dict[str, Any]) -> None:
    with make_http_client(server.base_url, None, 60.0) as http, http.stream(
            "POST", "/v1/chat/completions", json={"model": "m", "stream": True, "temperature": 0, "max_tokens": 40,
                                                  "messages": [{"role": "user", "content": "Tell me about oak trees."}]}
    ) as resp:
        text = []
        for line in resp.iter_lines():
            started.set()
            text.append(line)
        out["stream"] = text
    done.set()


@contextmanager
def _while_a_stream_is_written(server: ReferenceServer) -> Iterator[threading.Event]:
    """Runs the body while another client's (slow) stream is being written; yields the event set when that
    stream has ended, and waits for it after the body."""
    started, done = threading.Event(), threading.Event()
    t = threading.Thread(target=_hold_a_stream, args=(server, started, done, {}))
    t.start()
    assert started.wait(30)
    try:
        yield done
    finally:
        t.join(60)


def test_requests_are_served_concurrently() -> None:
    """A request sent while a slow stream is being written is answered before that stream ends."""
    with ReferenceServer("1.2B-Instruct", tpot_delay_ms=100) as server:
        with _while_a_stream_is_written(server) as done, make_http_client(server.base_url, None, 30.0) as http:
            chat(http, temperature=0, messages=[{"role": "user", "content": "Hi"}])
            answered_while_streaming = not done.is_set()
        assert answered_while_streaming, "the second request waited for the first stream to finish"
        assert server.state.slots.peak >= 2
        assert server.state.slots.in_flight == 0


def test_conv_state_leak_gives_wrong_answers_only_under_concurrency() -> None:
    body = {"temperature": 0, "max_tokens": 60, "messages": [{"role": "user", "content": "Describe a quiet lake."}]}
    with ReferenceServer("1.2B-Instruct") as good, make_http_client(good.base_url, None, 30.0) as http:
        expected = chat(http, **body)["choices"][0]["message"]["content"]
    with ReferenceServer("1.2B-Instruct", faults=["conv_state_leak"], tpot_delay_ms=100) as bad:
        with make_http_client(bad.base_url, None, 30.0) as http:
            assert chat(http, **body)["choices"][0]["message"]["content"] == expected  # alone: correct
        with _while_a_stream_is_written(bad), make_http_client(bad.base_url, None, 30.0) as http:
            concurrent = chat(http, **body)["choices"][0]["message"]["content"]
    assert concurrent != expected


def test_sampling_defaults_apply_to_omitted_chat_fields_and_are_reported() -> None:
    """--sampling-defaults: a chat request omitting a field gets the declared value (a request stating it
    answers the same), /model_info reports the values, completions keep OpenAI's (§3.2)."""
    body = {"seed": 3, "max_tokens": 24, "messages": [{"role": "user", "content": "Tell me about rivers."}]}
    declared = {"temperature": 0.0, "top_k": 1}
    with ReferenceServer("1.2B-Instruct", sampling_defaults=declared) as server, \
            make_http_client(server.base_url, None, 30.0) as http:
        assert http.get("/model_info").json()["preferred_sampling_params"] == declared
        omitted = chat(http, **body)["choices"][0]["message"]["content"]
        stated = chat(http, **body, **declared)["choices"][0]["message"]["content"]
        openai = chat(http, **body, temperature=1.0, top_k=-1)["choices"][0]["message"]["content"]
        comp = {"model": "m", "prompt": "The river", "max_tokens": 24, "seed": 3}
        plain = http.post("/v1/completions", json=comp).json()["choices"][0]["text"]
        as_openai = http.post("/v1/completions", json={**comp, "temperature": 1.0}).json()["choices"][0]["text"]
    assert omitted == stated != openai
    assert plain == as_openai


def test_stop_prefix_leak_fault_leaks_only_while_streaming() -> None:
    body = {"temperature": 0, "max_tokens": 40, "messages": [{"role": "user", "content": "Tell me about rivers."}]}
    with ReferenceServer("1.2B-Instruct", faults=["stream_stop_prefix_leak"]) as server, \
            make_http_client(server.base_url, None, 30.0) as http:
        text = chat(http, **body)["choices"][0]["message"]["content"]
        stop = text[12:17]
        full = chat(http, **body, stop=[stop])["choices"][0]
        streamed_text = streamed(stream(http, **body, stop=[stop]), "content")
    assert full["message"]["content"] == text[:12] and full["matched_stop"] == stop
    assert streamed_text == text[:12] + stop[:-1]


def test_sampling_defaults_option_is_validated() -> None:
    from pytest_lfm.reference.__main__ import main

    with pytest.raises(SystemExit):
        main(["--variant", "1.2B-Instruct", "--sampling-defaults", '{"temperture": 0.1}'])
    with pytest.raises(SystemExit):
        main(["--variant", "1.2B-Instruct", "--sampling-defaults", "not json"])
