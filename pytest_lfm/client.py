"""The checks' clients: a thin protocol-level client (raw JSON in, raw JSON or parsed SSE out), and the
OpenAI SDK client with the variant's sampling preset.

Checks that assert SGLang's exact wire shape (``matched_stop``, ``reasoning_content``, flat error bodies,
chunk order) use :class:`LfmHttp` rather than the OpenAI SDK, which hides or normalises some of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import httpx

from pytest_lfm.assertions import fail
from pytest_lfm.server.base import Target
from pytest_lfm.server.http import make_http_client
from pytest_lfm.variants import Sampling

if TYPE_CHECKING:
    import openai

OPENAI_SAMPLING_FIELDS = ("temperature", "top_p")
"""Sampler fields the OpenAI SDK takes as keyword arguments; SGLang's others travel in ``extra_body``."""


@dataclass
class StreamResult:
    """A parsed SSE stream of chat completion chunks."""

    status: int
    chunks: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    raw: str = ""
    errors: list[Any] = field(default_factory=list)

    def choice_chunks(self, index: int = 0) -> list[dict[str, Any]]:
        """Chunks with a choice of this index."""
        return [c for c in self.chunks if any(ch.get("index") == index for ch in c.get("choices", []))]

    def deltas(self, index: int = 0) -> list[dict[str, Any]]:
        """The ``delta`` objects of one choice, in order."""
        out = []
        for c in self.chunks:
            for ch in c.get("choices", []):
                if ch.get("index") == index:
                    out.append(ch.get("delta") or {})
        return out

    @property
    def content(self) -> str:
        """Concatenated content deltas."""
        return "".join(d.get("content") or "" for d in self.deltas())

    @property
    def reasoning(self) -> str:
        """Concatenated reasoning deltas."""
        return "".join(d.get("reasoning_content") or "" for d in self.deltas())

    @property
    def text(self) -> str:
        """Concatenated ``text`` of completion chunks."""
        return "".join(ch.get("text") or "" for c in self.chunks for ch in c.get("choices", []))

    @property
    def finish_reason(self) -> str | None:
        """The last non-null finish_reason."""
        reasons = [ch.get("finish_reason") for c in self.chunks for ch in c.get("choices", []) if ch.get("finish_reason")]
        return reasons[-1] if reasons else None

    @property
    def matched_stop(self) -> Any:
        """``matched_stop`` of the finishing chunk."""
        for c in reversed(self.chunks):
            for ch in c.get("choices", []):
                if ch.get("finish_reason"):
                    return ch.get("matched_stop")
        return None

    @property
    def usage(self) -> dict[str, Any] | None:
        """The usage chunk's usage, if any."""
        for c in self.chunks:
            if c.get("usage") and not c.get("choices"):
                return dict(c["usage"])
        return None

    def tool_calls(self) -> list[dict[str, Any]]:
        """Tool-call deltas reassembled by ``index`` (arguments concatenated), in index order."""
        calls: dict[int, dict[str, Any]] = {}
        for d in self.deltas():
            for tc in d.get("tool_calls") or []:
                idx = tc.get("index", 0)
                slot = calls.setdefault(idx, {"id": None, "name": "", "arguments": ""})
                if tc.get("id"):
                    slot["id"] = slot["id"] or tc["id"]
                fn = tc.get("function") or {}
                slot["name"] += fn.get("name") or ""
                slot["arguments"] += fn.get("arguments") or ""
        return [calls[i] for i in sorted(calls)]


class LfmHttp:
    """Requests against one target; every helper returns parsed JSON and the status."""

    def __init__(self, target: Target, timeout: float = 120.0) -> None:
        self.target = target
        self.client: httpx.Client = make_http_client(target.base_url, target.api_key, timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def get(self, path: str) -> httpx.Response:
        """GET a path."""
        return self.client.get(path)

    def post(self, path: str, body: Any) -> httpx.Response:
        """POST JSON to a path."""
        return self.client.post(path, json=body)

    def post_json(self, path: str, body: Any, expect: int = 200) -> dict[str, Any]:
        """POST and require ``expect``; the failure names the request and the answer."""
        __tracebackhide__ = True
        r = self.post(path, body)
        data = _json(r)
        if r.status_code != expect:
            fail(f"POST {path} answered HTTP {r.status_code}", f"HTTP {expect}", data,
                 {"request": _brief(body), "server": self.target.base_url})
        if not isinstance(data, dict):
            fail(f"POST {path} did not answer a JSON object", "a JSON object", data, {"request": _brief(body)})
        return dict(data)

    def chat_body(self, messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        """A chat request body for this target's model."""
        return {"model": self.target.served_model, "messages": messages, **fields}

    def chat(self, messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        """A non-streaming chat completion that must answer 200."""
        __tracebackhide__ = True
        return self.post_json("/v1/chat/completions", self.chat_body(messages, **fields))

    def stream(self, path: str, body: Mapping[str, Any]) -> StreamResult:
        """POST with ``stream: true`` and parse the SSE stream."""
        result = StreamResult(status=0)
        with self.client.stream("POST", path, json={**body, "stream": True}) as r:
            result.status = r.status_code
            if r.status_code != 200:
                r.read()
                result.raw = r.text
                return result
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                if not line.startswith("data:"):
                    continue
                payload = line[len("data:"):].strip()
                if payload == "[DONE]":
                    result.done = True
                    continue
                try:
                    event = json.loads(payload)
                except ValueError:
                    result.errors.append(payload)
                    continue
                if isinstance(event, dict) and "error" in event:
                    result.errors.append(event["error"])
                elif isinstance(event, dict):
                    result.chunks.append(event)
            result.raw = "\n".join(lines)
        return result

    def chat_stream(self, messages: list[dict[str, Any]], **fields: Any) -> StreamResult:
        """A streaming chat completion."""
        return self.stream("/v1/chat/completions", self.chat_body(messages, **fields))


def _json(r: httpx.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text


def _brief(body: Any) -> Any:
    text = json.dumps(body, ensure_ascii=False, default=str)
    return body if len(text) < 400 else text[:400] + "…"


def message_of(response: Mapping[str, Any], index: int = 0) -> dict[str, Any]:
    """``choices[index].message`` of a chat completion."""
    return dict(response["choices"][index]["message"])


def generated_text(response: Mapping[str, Any], index: int = 0) -> str:
    """Everything choice ``index`` generated, as visible text: a completion's ``text``, or a chat message's
    ``reasoning_content`` followed by its ``content``."""
    choice = response["choices"][index]
    msg = choice.get("message")
    if msg is None:
        return str(choice.get("text") or "")
    return str(msg.get("reasoning_content") or "") + str(msg.get("content") or "")


# ------------------------------------------------------------------------------------------ OpenAI SDK


def openai_sampling(preset: Sampling) -> dict[str, Any]:
    """A sampling preset as keyword arguments of ``client.chat.completions.create``: the OpenAI fields as
    they are, SGLang's other sampler fields (``top_k``, ``min_p``, ``repetition_penalty``) in ``extra_body``
    (as the cookbook's §3.1 helper sends them). The one place a preset becomes ``extra_body``."""
    params = preset.params()
    kwargs: dict[str, Any] = {k: params.pop(k) for k in OPENAI_SAMPLING_FIELDS if k in params}
    kwargs["extra_body"] = params
    return kwargs


def openai_client(target: Target, timeout: float) -> openai.OpenAI:
    """``openai.OpenAI`` pointed at the target (``max_retries=0``; the API key from the target, else EMPTY)."""
    import openai

    # The SDK's own HTTP client: openai 3 moved to httpx2, so an httpx client of ours would be the wrong type.
    return openai.OpenAI(base_url=target.base_url + "/v1",
                         api_key=target.api_key.get() if target.api_key else "EMPTY",
                         max_retries=0, timeout=timeout)


def preset_chat(client: openai.OpenAI, target: Target) -> Callable[..., Any]:
    """``chat(messages, **overrides)``: a chat completion with the variant's recommended sampling; overrides
    win, and ``extra_body`` overrides are merged into the preset's."""

    def chat(messages: list[dict[str, Any]], **overrides: Any) -> Any:
        preset = openai_sampling(target.variant.sampling)
        extra = {**preset.pop("extra_body"), **overrides.pop("extra_body", {})}
        kwargs = {**preset, **overrides, "extra_body": extra}
        return client.chat.completions.create(model=target.served_model, messages=cast(Any, messages), **kwargs)

    return chat
