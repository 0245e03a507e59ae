"""What the toy model "wants to say": a plan derived from the request, never from a known prompt.

The planner reads the request like a (very small) model would: it continues repeating patterns
(induction), calls the tool whose name, description and parameters overlap most with the user's words
and fills arguments from the message, answers a tool result by quoting it, describes images from their
pixels, and wraps its answer in ``<think>…</think>`` on reasoning variants. Nothing here looks for the
conformance suite's own prompts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_lfm.lfm2 import BOT, EOT, THINK_END, THINK_START, render_call
from pytest_lfm.reference.model import (
    CONSTRAINED_MARGIN,
    PROSE_MARGIN,
    STRUCTURE_MARGIN,
    PlanToken,
    plan_tokens,
)
from pytest_lfm.reference.vision import ImageFacts

_WORDS = (
    "the a model answer question short clear result value data system request server token text "
    "simple small first next last good new same other useful general direct brief plain careful "
    "note point part case step idea fact reason detail example summary context input output check "
    "light river stone cloud garden window paper music story market bridge forest ocean valley"
).split()
_STOP = set(
    "a an the is are was were be to of in on at for and or with what whats what's how who whom which "
    "please can could would you your me my i it its this that there here do does did get give tell "
    "about from by as now today current currently some any".split()
)


@dataclass(frozen=True)
class Segment:
    """A piece of planned text and how sure the model is of it."""

    text: str
    margin: float


def to_tokens(segments: Sequence[Segment]) -> list[PlanToken]:
    """Plan tokens of the segments."""
    out: list[PlanToken] = []
    for s in segments:
        out.extend(plan_tokens(s.text, s.margin))
    return out


def plan_text(segments: Sequence[Segment]) -> str:
    """The plan as plain text (for tests and debugging)."""
    return "".join(s.text for s in segments)


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=8).digest(), "big")


def prose(seed_text: str, n_words: int) -> str:
    """Deterministic filler prose seeded by the text it answers."""
    h = _digest(seed_text)
    words = []
    for i in range(n_words):
        h = (h * 6364136223846793005 + 1442695040888963407 + i) & 0xFFFFFFFFFFFFFFFF
        words.append(_WORDS[(h >> 33) % len(_WORDS)])
    sentence = " ".join(words)
    return sentence[:1].upper() + sentence[1:] + "."


def continue_pattern(text: str, n_chars: int) -> str | None:
    """If ``text`` ends in a repeating unit (at least three times), continue it (induction)."""
    tail = text.rstrip()
    for period in range(1, min(40, len(tail) // 3) + 1):
        unit = tail[-period:]
        if tail.endswith(unit * 3):
            sep = text[len(tail):] or ""
            seq = (sep + unit * (n_chars // period + 2)) if sep else unit * (n_chars // period + 2)
            # continue from the end of the text: the next char after `tail` is unit[0] again
            return seq[:n_chars]
    return None


def words_of(text: str) -> list[str]:
    """Lower-case word tokens (identifiers split on underscores)."""
    return [w for w in re.split(r"[^0-9A-Za-z]+", text.lower()) if w]


def _tool_fn(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    fn = tool.get("function", tool)
    return fn if isinstance(fn, Mapping) else {}


def score_tool(tool: Mapping[str, Any], message: str) -> int:
    """Overlap between the message's content words and the tool's name, description and parameters."""
    fn = _tool_fn(tool)
    params = fn.get("parameters") or {}
    props = params.get("properties", {}) if isinstance(params, Mapping) else {}
    vocab = set(words_of(str(fn.get("name", ""))) + words_of(str(fn.get("description") or "")))
    vocab |= {w for p in props for w in words_of(str(p))}
    msg = {w for w in words_of(message) if w not in _STOP and len(w) > 2}
    stems = {w[:5] for w in vocab if len(w) > 2}
    return sum(1 for w in msg if w in vocab or w[:5] in stems)


def _entities(message: str) -> list[str]:
    quoted = re.findall(r"\"([^\"]+)\"|'([^']+)'", message)
    found = [a or b for a, b in quoted]
    if found:
        return found
    # Capitalised word runs that do not start the sentence ("weather in San Francisco and Paris").
    tokens = re.findall(r"[A-Za-zÀ-ÿ][\w'-]*|[.!?]", message)
    runs: list[str] = []
    current: list[str] = []
    sentence_start = True
    for t in tokens:
        if t in ".!?":
            sentence_start = True
            if current:
                runs.append(" ".join(current))
                current = []
            continue
        if t[0].isupper() and not sentence_start and t.lower() not in _STOP:
            current.append(t)
        elif current:
            runs.append(" ".join(current))
            current = []
        sentence_start = False
    if current:
        runs.append(" ".join(current))
    return runs


def _value_for(schema: Mapping[str, Any], name: str, message: str, entity: str | None) -> Any:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if schema.get("enum"):
        for option in schema["enum"]:
            if str(option).lower() in message.lower():
                return option
        return schema["enum"][0]
    numbers = re.findall(r"-?\d+(?:\.\d+)?", message)
    if kind == "integer":
        return int(float(numbers[0])) if numbers else 1
    if kind == "number":
        return float(numbers[0]) if numbers else 1.0
    if kind == "boolean":
        return True
    if kind == "array":
        items = schema.get("items")
        item: Mapping[str, Any] = items if isinstance(items, Mapping) else {"type": "string"}
        return [_value_for(item, name, message, entity)]
    if kind == "object":
        return {}
    if entity:
        return entity
    content = [w for w in re.findall(r"[\w'-]+", message) if w.lower() not in _STOP]
    return content[-1] if content else name


def plan_tool_arguments(tool: Mapping[str, Any], message: str, entity: str | None) -> dict[str, Any]:
    """Arguments for ``tool`` read from the message: required parameters, and others it mentions."""
    params = _tool_fn(tool).get("parameters") or {}
    props: Mapping[str, Any] = params.get("properties", {}) if isinstance(params, Mapping) else {}
    required = list(params.get("required", [])) if isinstance(params, Mapping) else []
    args: dict[str, Any] = {}
    for name, schema in props.items():
        if name in required or (isinstance(schema, Mapping) and "enum" in schema
                                and any(str(o).lower() in message.lower() for o in schema["enum"])):
            args[name] = _value_for(schema if isinstance(schema, Mapping) else {}, name, message, entity)
    return args


@dataclass(frozen=True)
class ChatPlanInput:
    """What the planner sees of a chat request."""

    messages: Sequence[Mapping[str, Any]]
    tools: Sequence[Mapping[str, Any]]
    tool_choice: Any
    parallel_tool_calls: bool
    thinking: bool
    images: Sequence[ImageFacts]
    json_mode: bool = False
    regex_text: str | None = None  # what a `regex` constraint forces (see constraint.py)


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content
                                if isinstance(p, Mapping) and p.get("type") == "text")
    return ""


def describe_images(images: Sequence[ImageFacts]) -> str:
    """What the model says about the images: colours and sizes read from the pixels."""
    if len(images) == 1:
        return images[0].describe() + "."
    return " ".join(f"Image {i}: {img.describe()}." for i, img in enumerate(images, 1))


def plan_chat(req: ChatPlanInput) -> list[Segment]:
    """The planned raw output for a chat request (before the parsers)."""
    user = _last_user_text(req.messages)
    last = req.messages[-1] if req.messages else {}
    segments: list[Segment] = []
    if req.thinking:
        segments.append(Segment(THINK_START, STRUCTURE_MARGIN))
        segments.append(Segment(prose("reason:" + user, 10), PROSE_MARGIN))
        segments.append(Segment(THINK_END + "\n\n", STRUCTURE_MARGIN))
    if req.regex_text is not None:
        # Constrained decoding masks every other token: the constrained part is certain.
        return segments + [Segment(req.regex_text, CONSTRAINED_MARGIN)]
    choice = req.tool_choice
    tools = list(req.tools) if choice != "none" else []
    named = choice.get("function", {}).get("name") if isinstance(choice, Mapping) else None
    if named:
        tools = [t for t in tools if _tool_fn(t).get("name") == named]
    if tools and last.get("role") != "tool":
        if choice == "required" or named:
            return segments + [Segment(_json_calls(tools, user, req.parallel_tool_calls), STRUCTURE_MARGIN)]
        ranked = sorted(tools, key=lambda t: -score_tool(t, user))
        if score_tool(ranked[0], user) > 0:
            calls = _calls_for(ranked[0], user, req.parallel_tool_calls)
            text = BOT + "[" + ", ".join(render_call(n, a) for n, a in calls) + "]" + EOT
            return segments + [Segment(text, STRUCTURE_MARGIN)]
    if last.get("role") == "tool":
        result = last.get("content")
        result_text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        return segments + [Segment("The tool returned: ", PROSE_MARGIN),
                           Segment(str(result_text)[:200], STRUCTURE_MARGIN), Segment(".", PROSE_MARGIN)]
    if req.json_mode:
        return segments + [Segment(json.dumps({"answer": prose(user, 4)}), STRUCTURE_MARGIN)]
    if req.images:
        return segments + [Segment(describe_images(req.images), STRUCTURE_MARGIN)]
    repeated = continue_pattern(user, 48)
    if repeated is not None:
        return segments + [Segment(repeated.strip() or repeated, PROSE_MARGIN)]
    return segments + [Segment(prose(user, 12), PROSE_MARGIN)]


def _calls_for(tool: Mapping[str, Any], message: str, parallel: bool) -> list[tuple[str, dict[str, Any]]]:
    name = str(_tool_fn(tool).get("name"))
    entities = _entities(message)
    if parallel and len(entities) > 1:
        return [(name, plan_tool_arguments(tool, message, e)) for e in entities]
    return [(name, plan_tool_arguments(tool, message, entities[0] if entities else None))]


def _json_calls(tools: Sequence[Mapping[str, Any]], message: str, parallel: bool) -> str:
    ranked = sorted(tools, key=lambda t: -score_tool(t, message))
    calls = _calls_for(ranked[0], message, parallel)
    if not parallel:
        calls = calls[:1]
    return json.dumps([{"name": n, "parameters": a} for n, a in calls], ensure_ascii=False)


def plan_completion(prompt: str, regex_text: str | None = None) -> list[Segment]:
    """The planned continuation of a raw prompt: the constrained text, a continued pattern, or prose."""
    if regex_text is not None:
        return [Segment(regex_text, CONSTRAINED_MARGIN)]
    repeated = continue_pattern(prompt, 48)
    if repeated is not None:
        return [Segment(repeated, PROSE_MARGIN)]
    return [Segment(" " + prose(prompt, 12), PROSE_MARGIN)]
