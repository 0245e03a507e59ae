"""LFM2.5's chat format (§F.1): messages and tools to prompt text."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_lfm.lfm2 import BOT, EOT, render_call


def content_text(content: Any, image_marker: str = "<image>") -> str:
    """The text of a message's content; image parts become one ``<image>`` marker each."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append(str(part.get("text", "")))
        elif kind == "image_url":
            parts.append(image_marker)
    return "".join(parts)


def _assistant_text(message: Mapping[str, Any]) -> str:
    text = content_text(message.get("content"))
    calls = message.get("tool_calls") or []
    rendered = []
    for call in calls:
        fn = call.get("function", {}) if isinstance(call, Mapping) else {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            args = {}
        if isinstance(args, dict):
            rendered.append(render_call(str(fn.get("name", "")), args))
    if rendered:
        text = BOT + "[" + ", ".join(rendered) + "]" + EOT + text
    return text


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = True,
    continue_final_message: bool = False,
) -> str:
    """The prompt text LFM2.5's template renders (BOS, ChatML turns, tools in the system turn)."""
    msgs = list(messages)
    system = ""
    if msgs and msgs[0].get("role") == "system":
        system = content_text(msgs[0].get("content"))
        msgs = msgs[1:]
    if tools:
        listing = "List of tools: [" + ", ".join(json.dumps(t, ensure_ascii=False) for t in tools) + "]"
        system = system + "\n" + listing if system else listing
    out = ["<|startoftext|>"]
    if system:
        out.append(f"<|im_start|>system\n{system}<|im_end|>\n")
    last = len(msgs) - 1
    for i, m in enumerate(msgs):
        role = str(m.get("role", "user"))
        text = _assistant_text(m) if role == "assistant" else content_text(m.get("content"))
        if continue_final_message and i == last and role == "assistant":
            out.append(f"<|im_start|>assistant\n{text}")
            return "".join(out)
        out.append(f"<|im_start|>{role}\n{text}<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)
