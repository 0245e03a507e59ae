"""``/v1/chat/completions`` (non-streaming): validation, prompt, plan, generation, reasoning and tool-call
parsing (§1, §2, §5). The streaming path is :mod:`.streaming`; both share :class:`ChatContext`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jsonschema

from pytest_lfm import lfm2
from pytest_lfm.reference import hooks as H
from pytest_lfm.reference import tokenizer as tok
from pytest_lfm.reference.constraint import UnsupportedPattern, first_match
from pytest_lfm.reference.images import collect_images, prompt_ids_for
from pytest_lfm.reference.model import Generation, PlanToken, SamplingParams, generate
from pytest_lfm.reference.planner import ChatPlanInput, plan_chat, to_tokens
from pytest_lfm.reference.sampling import opt_int, request_n, sampling_from_request, usage, with_seed
from pytest_lfm.reference.state import ServerState
from pytest_lfm.reference.template import render_chat
from pytest_lfm.reference.validation import ClientError
from pytest_lfm.reference.vision import ImageFacts
from pytest_lfm.releases import has_fact

ROLES = {"user", "system", "assistant", "tool", "function", "developer", "latest_reminder", "root"}


@dataclass
class ChatContext:
    """What validation decided about a chat request, for the parsers."""

    tools: list[dict[str, Any]]
    choice: Any  # the tool_choice in effect
    parsing: bool  # whether the tool-call parser runs (tools offered and tool_choice not "none")
    parallel: bool  # parallel_tool_calls (false: at most one call comes back)
    images: list[ImageFacts] = field(default_factory=list)

    @property
    def json_path(self) -> bool:
        """``required`` / named tool_choice: the constrained output is a JSON array of calls."""
        return self.parsing and (self.choice == "required" or isinstance(self.choice, Mapping))


@dataclass
class ChatOutcome:
    """One choice after the parsers."""

    generation: Generation
    content: str
    reasoning: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    matched_stop: str | int | None
    reasoning_tokens: int


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """``messages``: a non-empty list of messages with a known role."""
    if not isinstance(messages, list):
        raise ClientError("messages: Input should be a valid list", type_="Bad Request")
    if not messages:
        raise ClientError("Messages cannot be empty.")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise ClientError(f"messages.{i}: each message needs a string 'role'", type_="Bad Request")
        if m["role"].lower() not in ROLES:
            raise ClientError(f"messages.{i}.role: unsupported role {m['role']!r}", type_="Bad Request")
    return messages


def check_tools(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any]:
    """``tools`` and ``tool_choice`` (§5): (tools, tool_choice)."""
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ClientError("tools: Input should be a valid list", type_="Bad Request")
    choice = body.get("tool_choice", "auto" if tools else "none")
    if choice == "required" and not tools:
        raise ClientError("Tools cannot be empty if tool choice is set to required.")
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise ClientError("tool_choice: a named tool choice needs function.name", type_="Bad Request")
        if name not in lfm2.tool_names(tools):
            raise ClientError(f"Tool '{name}' not found in tools list.")
    elif choice not in ("auto", "none", "required"):
        raise ClientError(f"tool_choice: unsupported value {choice!r}", type_="Bad Request")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ClientError(f"tools.{i}.function: a tool needs function.name", type_="Bad Request")
        params = fn.get("parameters")
        if params is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(params)
            except jsonschema.SchemaError as exc:
                raise ClientError(f"Tool {i} function has invalid 'parameters' schema: {exc.message}") from exc
    return tools, choice


# ------------------------------------------------------------------------------------------ reasoning


def thinking_enabled(body: Mapping[str, Any], st: ServerState) -> bool:
    """Whether the model thinks (§2)."""
    parser = st.variant.reasoning_parser
    if parser is None:
        return False
    if parser == "qwen3-thinking":
        return True
    kwargs = body.get("chat_template_kwargs") or {}
    return st.hooks(H.THINKING, not (isinstance(kwargs, Mapping) and kwargs.get("enable_thinking") is False))


def reasoning_mode(body: Mapping[str, Any], st: ServerState) -> tuple[str | None, bool]:
    """The reasoning parser that splits this chat request's output (None: no split) and whether it is
    forced (§2: ``separate_reasoning=false`` skips the parser; ``qwen3`` is forced unless
    ``enable_thinking`` is false, ``qwen3-thinking`` always)."""
    parser = st.hooks(H.REASONING_PARSER, st.variant.reasoning_parser)
    if parser is None:
        return None, False
    if not st.hooks(H.SEPARATE_REASONING_REQUESTED, body.get("separate_reasoning", True) is not False):
        return None, False
    if parser == "qwen3-thinking":
        mode: tuple[str | None, bool] = (parser, True)
    else:
        kwargs = body.get("chat_template_kwargs") or {}
        off = isinstance(kwargs, Mapping) and kwargs.get("enable_thinking") is False
        mode = (parser, st.hooks(H.THINKING, not off))
    return st.hooks(H.REASONING_MODE, mode)


def count_reasoning_tokens(text: str, completion_tokens: int, body: Mapping[str, Any], st: ServerState) -> int:
    """``usage.reasoning_tokens``: counted only while the request thinks (recorded on 0.5.17: 0 with
    ``enable_thinking=false`` even when a think block was parsed, and counted with
    ``separate_reasoning=false``): the tokens up to and including ``</think>``, all of them without it."""
    if not thinking_enabled(body, st):
        return 0
    idx = text.find(lfm2.THINK_END)
    count = min(len(tok.encode(text[: idx + len(lfm2.THINK_END)] if idx >= 0 else text)), completion_tokens)
    return st.hooks(H.REASONING_TOKENS, count, completion_tokens=completion_tokens)


# ------------------------------------------------------------------------------------------ request → plan


def prepare_chat(body: Mapping[str, Any], st: ServerState) -> tuple[list[int], list[PlanToken], SamplingParams,
                                                                     ChatContext]:
    """Validate and render a chat request: (prompt ids, plan, sampling, context)."""
    messages = check_messages(body.get("messages"))
    tools, choice = check_tools(body)
    request_n(body)
    st.hooks(H.CHAT_REQUEST, body, st=st)
    params = sampling_from_request(body, chat=True, st=st)
    effective_choice = st.hooks(H.TOOL_CHOICE, choice, tools=tools)
    parsing = bool(tools) and effective_choice != "none"
    if parsing:
        params.skip_special_tokens = False
    images = collect_images(messages, st)
    st.hooks(H.CHAT_IMAGES_AND_TOOLS, images, tools=tools)
    rendered_tools = tools if parsing else None
    if isinstance(choice, Mapping) and rendered_tools:
        rendered_tools = [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
    messages = st.hooks(H.CHAT_MESSAGES, [dict(m, role=m["role"].lower()) for m in messages])
    text = render_chat(messages, rendered_tools, continue_final_message=bool(body.get("continue_final_message")))
    ids = prompt_ids_for(text, images, st)
    if len(ids) >= st.context:
        raise ClientError(
            f"The input ({len(ids)} tokens) is longer than the model's context length ({st.context} tokens)."
        )
    rf = body.get("response_format") or {}
    if isinstance(rf, Mapping) and rf.get("type") == "json_schema" and not rf.get("json_schema"):
        raise ClientError("schema_ is required for json_schema response format request.", type_="BadRequestError")
    parallel = st.hooks(H.PARALLEL_TOOL_CALLS, body.get("parallel_tool_calls", True) is not False)
    plan = to_tokens(plan_chat(ChatPlanInput(
        messages=messages, tools=tools, tool_choice=effective_choice, parallel_tool_calls=parallel,
        thinking=thinking_enabled(body, st), images=images,
        json_mode=isinstance(rf, Mapping) and rf.get("type") in ("json_object", "json_schema"),
        regex_text=st.hooks(H.REGEX_TEXT, forced_text(body)),
    )))
    return ids, plan, params, ChatContext(tools, effective_choice, parsing, parallel, images)


def forced_text(body: Mapping[str, Any]) -> str | None:
    """The text a ``regex`` constraint forces (None without one; 400 for an invalid pattern)."""
    pattern = body.get("regex")
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise ClientError("regex: Input should be a valid string", type_="Bad Request")
    try:
        return first_match(pattern)
    except UnsupportedPattern as exc:
        raise ClientError(f"Invalid regex constraint: {exc}") from exc


def decode_plan(plan: list[PlanToken], st: ServerState) -> list[PlanToken]:
    """The plan as the request's decode-state slot sees it (the conv-state fault class)."""
    slot = st.slots.current()
    if slot is not None:
        slot.plan = plan
    return st.hooks(H.DECODE_STATE, plan, st=st, slot=slot)


def run_generation(ids: list[int], plan: list[PlanToken], params: SamplingParams, st: ServerState) -> Generation:
    """One generation in this request's decode slot."""
    plan = st.hooks(H.PREFIX_CACHE, decode_plan(plan, st), st=st, ids=ids)
    return generate(ids, plan, params, st.context - len(ids))


# ------------------------------------------------------------------------------------------ tool calls


def tool_call_id() -> str:
    """SGLang's tool call id: ``call_`` and 24 hex digits."""
    return "call_" + uuid.uuid4().hex[:24]


def renumbers_tool_index(st: ServerState) -> bool:
    """Non-streaming 0.5.23 re-numbers calls by ordinal (§5); 0.5.17 passed the detector's index through."""
    return has_fact("chat-tool-call-index-is-ordinal", st.version)


def format_calls(calls: Sequence[lfm2.ParsedCall], st: ServerState, stream: bool = False) -> list[dict[str, Any]]:
    """OpenAI ``tool_calls`` entries of parsed calls."""
    out = []
    for n, c in enumerate(calls):
        args = st.hooks(H.TOOL_CALL_ARGUMENTS, c.parameters)
        # Streaming passes the detector's tool_index through (§1.4); non-streaming 0.5.23 re-numbers by
        # ordinal (§5), while 0.5.17 was recorded passing the detector's index through there too.
        index = c.tool_index if stream or not renumbers_tool_index(st) else n
        if stream:
            index = st.hooks(H.STREAM_TOOL_INDEX, index)
        out.append({"id": st.hooks(H.TOOL_CALL_ID, tool_call_id()), "index": index, "type": "function",
                    "function": {"name": c.name, "arguments": args}})
    return out


def tool_parsing(ctx: ChatContext, st: ServerState) -> bool:
    """Whether this request's output goes through the tool-call parser."""
    return ctx.parsing and bool(st.variant.tool_call_parser) and st.hooks(H.TOOL_PARSING, True)


def lfm2_parse(text: str, tools: Sequence[Mapping[str, Any]], st: ServerState) -> lfm2.ToolParse:
    """The configured parser's non-streaming parse, with the parser fault modes applied."""
    text = st.hooks(H.TOOL_PARSE_INPUT, text)
    result = st.parsers.parse_tool_calls(text, tools, st.dialect)
    result = st.hooks(H.TOOL_PARSE, result, text=text, tools=tools, dialect=st.dialect)
    result = lfm2.ToolParse(normal_text=result.normal_text, calls=tuple(st.hooks(H.TOOL_CALLS, list(result.calls))))
    return st.hooks(H.TOOL_PARSE_RESULT, result, text=text)


def parse_json_array_calls(text: str, tools: Sequence[Mapping[str, Any]]) -> list[lfm2.ParsedCall] | None:
    """The required/named path: the constrained output is a JSON array of {name, parameters}."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    names = lfm2.tool_names(tools)
    calls = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        params = item.get("parameters", {})
        calls.append(lfm2.ParsedCall(name=item["name"], parameters=json.dumps(params, ensure_ascii=False),
                                     tool_index=names.index(item["name"]) if item["name"] in names else -1))
    return calls


def finish_with_calls(finish: str, matched: str | int | None, any_calls: bool,
                      st: ServerState) -> tuple[str, str | int | None]:
    """finish_reason ``tool_calls`` (matched_stop null) when calls came back from a stopped generation."""
    if any_calls and finish == "stop":
        new = st.hooks(H.FINISH_WITH_TOOL_CALLS, "tool_calls")
        if new != finish:
            return new, None
    return finish, matched


# ------------------------------------------------------------------------------------------ response


def split_reasoning(text: str, body: Mapping[str, Any], st: ServerState) -> tuple[str | None, str]:
    """(reasoning_content, the rest) of one answer, as the chat path splits it."""
    rparser, force = reasoning_mode(body, st)
    if not rparser:
        return None, text
    split = st.parsers.split_reasoning(text, rparser, force=force)
    split = st.hooks(H.CHAT_REASONING_SPLIT, split, text=text, parser=rparser, force=force, dialect=st.dialect)
    return split.reasoning_text or None, split.text


def finish_chat(gen: Generation, body: Mapping[str, Any], ctx: ChatContext, st: ServerState) -> ChatOutcome:
    """Apply the reasoning and tool-call parsers to one generation (non-streaming)."""
    reasoning_tokens = count_reasoning_tokens(gen.text, len(gen.ids), body, st)
    reasoning, text = split_reasoning(gen.text, body, st)
    calls: list[dict[str, Any]] = []
    if tool_parsing(ctx, st):
        if ctx.json_path:
            parsed = parse_json_array_calls(text, ctx.tools)
            if parsed is not None:
                calls = format_calls(parsed if ctx.parallel else parsed[:1], st)
                text = ""
            reasoning = st.hooks(H.FORCED_TOOL_REASONING, reasoning)
        else:
            result = lfm2_parse(text, ctx.tools, st)
            found = list(result.calls)
            if lfm2.BOT in text:
                text = result.normal_text
            calls = format_calls(found if ctx.parallel else found[:1], st)  # parallel_tool_calls=false: one
    finish, matched = finish_with_calls(gen.finish_reason, gen.matched_stop, bool(calls), st)
    return ChatOutcome(gen, text, reasoning, calls, finish, matched, reasoning_tokens)


def choice_context(body: Mapping[str, Any], ctx: ChatContext, st: ServerState,
                   i: int) -> tuple[Mapping[str, Any], ChatContext]:
    """The body and context choice ``i`` is parsed with (every choice goes through the same parsers)."""
    if st.hooks(H.CHOICE_PARSERS, True, index=i):
        return body, ctx
    return {**body, "separate_reasoning": False}, replace(ctx, parsing=False)


def chat_logprobs(gen: Generation, start: int = 0, end: int | None = None) -> dict[str, Any]:
    """The ``logprobs`` object of generated tokens ``start:end`` (all by default)."""
    content = []
    for j in range(start, len(gen.ids) if end is None else min(end, len(gen.ids))):
        top = gen.top_logprobs[j] if j < len(gen.top_logprobs) else []
        text = tok.token_text(gen.ids[j])
        content.append({"token": text, "bytes": list(text.encode()),
                        "logprob": gen.logprobs[j] if j < len(gen.logprobs) else None,
                        "top_logprobs": [{"token": tok.token_text(t), "bytes": list(tok.token_text(t).encode()),
                                          "logprob": lp} for t, lp in top]})
    return {"content": content}


def choice_params(params: SamplingParams, body: Mapping[str, Any], i: int) -> SamplingParams:
    """Sampling of choice ``i``, with the request's logprobs settings."""
    p = with_seed(params, i)
    p.logprobs = bool(body.get("logprobs"))
    p.top_logprobs = opt_int(body.get("top_logprobs"), "top_logprobs") or 0
    return p


def chat_response(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """A complete non-streaming chat completion."""
    ids, plan, params, ctx = prepare_chat(body, st)
    n = request_n(body)
    choices, completion_tokens, reasoning_tokens = [], 0, 0
    for i in range(n):
        p = choice_params(params, body, i)
        gen = run_generation(ids, plan, p, st)
        out = finish_chat(gen, *choice_context(body, ctx, st, i), st)
        # every key of SGLang's ChatMessage, null ones included (recorded on 0.5.17: "tool_calls": null)
        message: dict[str, Any] = {"role": "assistant", "content": out.content, "reasoning_content": out.reasoning,
                                   "tool_calls": out.tool_calls or None}
        choices.append({"index": i, "message": message, "logprobs": st.hooks(H.CHAT_LOGPROBS, chat_logprobs(gen) if p.logprobs else None, stream=False),
                        "finish_reason": out.finish_reason, "matched_stop": out.matched_stop})
        completion_tokens += len(gen.ids)
        reasoning_tokens += out.reasoning_tokens
    return {
        "id": uuid.uuid4().hex, "object": "chat.completion", "created": st.hooks(H.CREATED, int(time.time())),
        "model": body.get("model") or "default", "choices": choices,
        "usage": usage(len(ids), completion_tokens, reasoning_tokens, st),
        "metadata": {"weight_version": "default"},
    }
