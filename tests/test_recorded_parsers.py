"""Replay every ``/parse_function_call`` and ``/separate_reasoning`` probe recorded from REAL SGLang 0.5.17
(``/work/shared/recorded/sglang-0.5.17-h200/responses.jsonl``, copied to
``tests/data/sglang-0.5.17-parser-probes.jsonl``) against the reference server emulating 0.5.17, and require
the same status and body.

Deliberate differences, asserted as such:

* an unknown or omitted parser name: SGLang 0.5.17 answers 500 ``Internal Server Error`` (an unhandled
  ``ValueError``); the reference answers a 4xx with SGLang's flat error body by design (a client error);
* a missing ``text``: both answer 400 with the flat error body (``type`` "Bad Request"); the message is
  pydantic's text, which embeds the whole request, so only "Field required" and "text" are compared;
* the ``deepseek-r1`` reasoning parser: the reference implements only the parsers LFM2.5 uses (qwen3,
  qwen3-thinking), so that probe is a strict expected failure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_lfm.reference.server import ReferenceServer
from pytest_lfm.server.http import make_http_client

DATA = Path(__file__).parent / "data" / "sglang-0.5.17-parser-probes.jsonl"
PROBES = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
NOT_IMPLEMENTED = {"sep_reason_deepseek_r1": "the reference implements only qwen3 and qwen3-thinking"}
FLAT_ERROR_KEYS = {"object", "message", "type", "param", "code"}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One in-process reference server emulating SGLang 0.5.17 (the recording used 8B-A1B's parsers:
    ``--tool-call-parser lfm2 --reasoning-parser qwen3``)."""
    with ReferenceServer("8B-A1B", version="0.5.17") as server:
        http = make_http_client(server.base_url, None, 30.0)
        yield http
        http.close()


def _body(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


def test_probe_file_covers_the_recording() -> None:
    """The copied probes are every parser probe of the recording (46), both endpoints."""
    assert len(PROBES) == 46
    assert {p["path"] for p in PROBES} == {"/parse_function_call", "/separate_reasoning"}


@pytest.mark.parametrize("probe", PROBES, ids=[p["name"] for p in PROBES])
def test_replay_matches_recording(client: httpx.Client, probe: dict[str, Any], request: pytest.FixtureRequest) -> None:
    """The reference answers a recorded probe with the recorded status and body."""
    if probe["name"] in NOT_IMPLEMENTED:
        request.applymarker(pytest.mark.xfail(strict=True, reason=NOT_IMPLEMENTED[probe["name"]]))
    r = client.request(probe["method"], probe["path"], json=probe["request"])
    body = _body(r)
    detail = f"probe {probe['name']}: request {json.dumps(probe['request'])[:300]}"
    if probe["status"] == 500:
        # Unknown/omitted parser name: SGLang 0.5.17 crashes (500); the reference answers 4xx by design.
        assert 400 <= r.status_code < 500, f"{detail}\nExpected: a 4xx\nActual: {r.status_code} {body}"
        assert isinstance(body, dict) and set(body) == FLAT_ERROR_KEYS, f"{detail}\nActual body: {body}"
        return
    assert r.status_code == probe["status"], f"{detail}\nExpected: {probe['status']}\nActual: {r.status_code} {body}"
    if probe["status"] == 400:
        assert isinstance(body, dict) and set(body) == set(probe["body"]) == FLAT_ERROR_KEYS, body
        for key in ("object", "type", "param", "code"):
            assert body[key] == probe["body"][key], f"{detail}: {key}\nExpected: {probe['body'][key]}\nActual: {body[key]}"
        for word in ("Field required", "text"):
            assert word in body["message"] and word in probe["body"]["message"], body["message"]
        return
    assert body == probe["body"], f"{detail}\nExpected: {probe['body']}\nActual:   {body}"
