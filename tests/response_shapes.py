"""Weight-independent shape of an HTTP response, for comparing the reference server with recordings of
real SGLang: status, body kind, the key set of every JSON object by path (list elements merged), the
number of choices, and for streams the order of event kinds (runs collapsed) and each kind's key sets.

Values are not compared: the recordings come from random weights, so text, token counts and even which
delta fields a chunk fills (reasoning or content) depend on the weights, not on the protocol."""

from __future__ import annotations

import json
from typing import Any

# delta key sets of token chunks depend on what the weights wrote (reasoning_content vs content vs tool_calls)
WEIGHT_DEPENDENT_PATHS = frozenset({"token:$.choices[].delta"})
# objects keyed by token text (completions top_logprobs)
WEIGHT_DEPENDENT_SUFFIXES = ("top_logprobs[]",)


def keysets(obj: Any, path: str = "$", out: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """path → the union of keys of the objects at that path."""
    out = {} if out is None else out
    if isinstance(obj, dict):
        out.setdefault(path, set()).update(obj)
        for k, v in obj.items():
            keysets(v, f"{path}.{k}", out)
    elif isinstance(obj, list):
        for v in obj:
            keysets(v, f"{path}[]", out)
    return out


def sse_events(raw: str) -> list[Any]:
    """The ``data:`` payloads of an SSE body (``[DONE]`` as the string)."""
    return [e[6:] if e[6:] == "[DONE]" else json.loads(e[6:])
            for e in raw.split("\n\n") if e.startswith("data: ")]


def event_kind(ev: Any) -> str:
    """role | token | finish | usage | done | error."""
    if ev == "[DONE]":
        return "done"
    if not isinstance(ev, dict) or "error" in ev or ev.get("object") == "error":
        return "error"
    if not ev.get("choices"):
        return "usage" if ev.get("usage") else "empty"
    choice = ev["choices"][0]
    if choice.get("finish_reason"):
        return "finish"
    delta = choice.get("delta")
    if isinstance(delta, dict) and delta.get("role"):
        return "role"
    return "token"


def stream_shape(events: list[Any]) -> dict[str, Any]:
    """Order of event kinds (per choice index, runs collapsed) and key sets by kind."""
    order: dict[int, list[str]] = {}
    keys: dict[str, set[str]] = {}
    for ev in events:
        kind = event_kind(ev)
        index = ev["choices"][0].get("index", 0) if isinstance(ev, dict) and ev.get("choices") else -1
        seq = order.setdefault(index, [])
        if not seq or seq[-1] != kind:
            seq.append(kind)
        if isinstance(ev, dict):
            for path, ks in keysets(ev).items():
                if f"{kind}:{path}" not in WEIGHT_DEPENDENT_PATHS and not path.endswith(WEIGHT_DEPENDENT_SUFFIXES):
                    keys.setdefault(f"{kind}:{path}", set()).update(ks)
    return {"kind": "sse", "order": {str(i): s for i, s in sorted(order.items())},
            "keys": {k: sorted(v) for k, v in sorted(keys.items())}}


def shape(status: int, body: Any) -> dict[str, Any]:
    """The shape of one response; ``body`` is parsed JSON, an SSE text, or other text."""
    if isinstance(body, str) and body.startswith("data: "):
        return {"status": status, **stream_shape(sse_events(body))}
    if isinstance(body, dict) and "sse_events" in body:  # how the recordings store a stream
        return {"status": status, **stream_shape(body["sse_events"])}
    if body == "" or body is None:
        return {"status": status, "kind": "empty"}
    if not isinstance(body, (dict, list)):
        return {"status": status, "kind": "text"}
    out: dict[str, Any] = {"status": status, "kind": "json",
                           "keys": {k: sorted(v) for k, v in sorted(keysets(body).items())
                                    if not k.endswith(WEIGHT_DEPENDENT_SUFFIXES)}}
    if isinstance(body, dict) and isinstance(body.get("choices"), list):
        out["n_choices"] = len(body["choices"])
    return out


def shape_diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """One line per weight-independent difference (expected / actual).

    Key sets are compared at the paths both sides have: where one side has an object and the other null
    (a tool call the random weights did not make), the parent's key set already shows a missing key.
    Stream order is compared without token chunks (how many there are, and whether any, is the weights')."""
    lines = []
    for field in sorted(set(expected) | set(actual)):
        want, got = expected.get(field), actual.get(field)
        if field == "keys" and isinstance(want, dict) and isinstance(got, dict):
            for path in sorted(set(want) & set(got)):
                if want[path] != got[path]:
                    lines.append(f"keys at {path}: {want[path]} / {got[path]}")
        elif field == "order" and isinstance(want, dict) and isinstance(got, dict):
            def skeleton(order: dict[str, list[str]]) -> dict[str, list[str]]:
                return {i: [k for k in seq if k != "token"] for i, seq in order.items()}
            if skeleton(want) != skeleton(got):
                lines.append(f"stream event order: {want} / {got}")
        elif want != got:
            lines.append(f"{field}: {want} / {got}")
    return lines
