"""Replay every probe recorded from REAL SGLang 0.5.17 (``tests/data/sglang-0.5.17-response-shapes.json``,
derived from the H200 recordings: see its ``about``) against the reference server emulating 0.5.17, and
require the same weight-independent shape (:mod:`response_shapes`): status, body kind, the key set of every
JSON object, the number of choices, and the order of stream event kinds.

Probes the reference deliberately answers differently are listed in :data:`DIFFERENT` with the reason and
run as strict expected failures, so an accidental fix or a new difference shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from response_shapes import shape, shape_diff

from pytest_lfm.reference.server import ReferenceServer
from pytest_lfm.server.http import make_http_client

DATA = json.loads((Path(__file__).parent / "data" / "sglang-0.5.17-response-shapes.json").read_text("utf-8"))
RECORDED_MODEL = "/models/tiny-lfm2"
VARIANT = {"lfm2+qwen3": "8B-A1B", "lfm2": "1.2B-Instruct"}  # the recorded servers' parser flags
_BY_DESIGN_4XX = ("SGLang 0.5.17 answers a bare 500 (an unhandled exception) to this client error; the reference "
                  "answers a 4xx with SGLang's flat error body by design")
DIFFERENT: dict[str, str] = {
    "get_model_info": "0.5.17's /model_info has an `embedding` capability block the reference does not emulate, "
                      "and the reference adds the parser names (the plugin reads only model_path)",
    "get_get_model_info": "as get_model_info",
    "parse_fc_unknown_parser": _BY_DESIGN_4XX,
    "parse_fc_parser_omitted": _BY_DESIGN_4XX,
    "sep_reason_unknown_parser_lfm2": _BY_DESIGN_4XX,
    "v_json_array_body": _BY_DESIGN_4XX,
    "sep_reason_deepseek_r1": "the reference implements only the reasoning parsers LFM2.5 uses (qwen3, qwen3-thinking)",
    "generate_basic": "the reference serves the OpenAI API and the parser endpoints, not SGLang's native /generate",
    "generate_stream": "as generate_basic",
    "generate_v_top_p_2": "as generate_basic",
}


def _expand(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$repeat", "$times"}:
            return value["$repeat"] * value["$times"]
        if set(value) == {"$tools"}:
            return DATA["tools"][value["$tools"]]
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    return value


@pytest.fixture(scope="module")
def clients() -> Iterator[dict[str, httpx.Client]]:
    servers = {name: ReferenceServer(variant, version="0.5.17", context_length=2048).start()
               for name, variant in VARIANT.items()}
    http = {name: make_http_client(s.base_url, None, 60.0) for name, s in servers.items()}
    for name, s in servers.items():
        http[name].headers["x-test-model"] = s.state.model_name  # /v1/models/{id} asks for the served name
    try:
        yield http
    finally:
        for h in http.values():
            h.close()
        for s in servers.values():
            s.stop()


def _send(http: httpx.Client, probe: dict[str, Any]) -> httpx.Response:
    request = _expand(probe["request"])
    path = probe["path"].replace(RECORDED_MODEL, http.headers.get("x-test-model", RECORDED_MODEL))
    if probe["method"] == "GET":
        return http.get(path)
    if probe.get("raw"):
        headers = probe.get("headers") or {"Content-Type": "application/json"}
        return http.post(probe["path"], content=request.encode(), headers=headers)
    return http.post(probe["path"], json=request)


def _body(resp: httpx.Response) -> Any:
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        return resp.text
    try:
        return resp.json()
    except ValueError:
        return resp.text


@pytest.mark.parametrize("probe", DATA["probes"], ids=[f"{p['server']}:{p['name']}" for p in DATA["probes"]])
def test_shape_matches_sglang_0_5_17(clients: dict[str, httpx.Client], probe: dict[str, Any]) -> None:
    key = f"{probe['server']}:{probe['name']}"
    resp = _send(clients[probe["server"]], probe)
    diff = shape_diff(DATA["shapes"][probe["shape"]], shape(resp.status_code, _body(resp)))
    known = DIFFERENT.get(key) or DIFFERENT.get(probe["name"])
    if known:  # a strict expected failure: a listed difference that went away must be unlisted
        assert diff, f"{key} now matches SGLang 0.5.17: remove it from DIFFERENT ({known})"
        pytest.xfail(known)
    assert not diff, f"{key}: response shape differs from real SGLang 0.5.17 (expected / actual):\n" + "\n".join(diff)

