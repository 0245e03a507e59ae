"""The serving layer of the reference server: SGLang 0.5.23's chat and completion semantics.

Request → validation (§4) → prompt (chat template, image tokens) → plan → sampler → reasoning parser
(§2) → tool-call parser (§1, §5) → response or SSE events. Fault modes change single steps.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jsonschema

from pytest_lfm import lfm2
from pytest_lfm.reference import tokenizer as tok
from pytest_lfm.reference.constraint import UnsupportedPattern, first_match
from pytest_lfm.reference.faults import Faults
from pytest_lfm.reference.model import (
    Generation,
    SamplingParams,
    generate,
    prompt_logprob,
    prompt_top_logprobs,
)
from pytest_lfm.reference.planner import ChatPlanInput, plan_chat, plan_completion, to_tokens
from pytest_lfm.reference.template import render_chat
from pytest_lfm.reference.validation import ClientError, verify_sampling
from pytest_lfm.reference.vision import ImageFacts, MediaError, facts_from_bytes, load_image_bytes
from pytest_lfm.releases import has_fact
from pytest_lfm.variants import Variant

ROLES = {"user", "system", "assistant", "tool", "function", "developer", "latest_reminder", "root"}


@dataclass
class ServerState:
    """Configuration and mutable state of one reference server."""

    variant: Variant
    version: str = "0.5.23"
    faults: Faults = field(default_factory=Faults)
    api_key: str | None = None
    context_length: int | None = None
    first_image: ImageFacts | None = None
    started: float = field(default_factory=time.time)
    # vision (§6): the GPU the emulated launch runs on (None: not known), the image cache (by content
    # digest, as SGLang's multimodal cache keys images), image requests served, and the wedge flag of
    # the ``bad_media_wedges`` fault.
    hardware: str | None = None
    image_cache: dict[str, ImageFacts] = field(default_factory=dict)
    image_requests: int = 0
    media_wedged: bool = False
    # the tool-call and reasoning parsers: the project's (pytest_lfm.lfm2, default) or a real SGLang
    # release's (pytest_lfm.reference.upstream.UpstreamParsers, ``--parsers sglang``)
    parsers: Any = None  # None: ProjectParsers emulating ``version`` (set in __post_init__)
    # injected latency (``--ttft-delay-ms`` / ``--tpot-delay-ms``), applied by the SSE writer in app.py: the
    # first token chunk waits ttft, each later one tpot more (absolute schedule), for the bench's accuracy tests
    ttft_delay_ms: float = 0.0
    tpot_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.parsers is None:
            self.parsers = ProjectParsers(lfm2.Dialect.for_version(self.version))

    @property
    def model_name(self) -> str:
        """The served model name (``--model-path`` by default)."""
        return self.variant.hf_path

    @property
    def context(self) -> int:
        """The context length the server enforces."""
        return self.context_length or self.variant.context_length

    @property
    def dialect(self) -> lfm2.Dialect:
        """Parser behaviour of the emulated version."""
        return lfm2.Dialect.for_version(self.version)


# ------------------------------------------------------------------------------------------ sampling


def sampling_from_request(body: Mapping[str, Any], *, chat: bool, st: ServerState) -> SamplingParams:
    """SGLang's ``to_sampling_params``: user value > OpenAI defaults (no generation_config here)."""
    f = st.faults
    if "extra_body_rejected" in f and {"top_k", "min_p", "repetition_penalty"} & set(body):
        raise ClientError(f"Unrecognized request argument supplied: {sorted({'top_k', 'min_p', 'repetition_penalty'} & set(body))}")
    if "unknown_field_500" in f and set(body) - KNOWN_FIELDS:
        raise ClientError(f"Internal server error: unexpected field(s) {sorted(set(body) - KNOWN_FIELDS)}",
                          type_="InternalServerError", status=500)
    if chat:
        max_new = _opt_int(body.get("max_completion_tokens"), "max_completion_tokens") or \
            _opt_int(body.get("max_tokens"), "max_tokens")
    else:
        max_new = _opt_int(body.get("max_tokens", 16 if "completions_default_max_tokens" not in f else 64),
                           "max_tokens")
    raw: dict[str, Any] = {
        "temperature": _num(body.get("temperature"), 1.0),
        "top_p": _num(body.get("top_p"), 1.0),
        "top_k": _int(body.get("top_k"), -1),
        "min_p": _num(body.get("min_p"), 0.0),
        "repetition_penalty": _num(body.get("repetition_penalty"), 1.0),
        "frequency_penalty": _num(body.get("frequency_penalty"), 0.0),
        "presence_penalty": _num(body.get("presence_penalty"), 0.0),
        "max_new_tokens": max_new,
        "min_new_tokens": _int(body.get("min_tokens"), 0),
    }
    if "no_validation" not in f:
        try:
            verify_sampling(raw, st.version)
        except ClientError as exc:
            if "sampling_error_generic" in f:
                raise ClientError("Invalid sampling parameters.") from exc
            raise
    # completions check prompt + max_tokens against the context later (completion_response)
    if chat and isinstance(max_new, int) and max_new > st.context and "no_validation" not in f:
        raise ClientError(
            f"max_completion_tokens is too large: {max_new}.This model supports at most {st.context} completion tokens."
        )
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in (stop or []) if isinstance(s, str)]
    temperature = max(0.0, raw["temperature"]) if raw["temperature"] == raw["temperature"] else 1.0
    params = SamplingParams(
        temperature=temperature,
        top_p=raw["top_p"] if "ignore_top_p" not in f and 0 < raw["top_p"] <= 1 else 1.0,
        top_k=raw["top_k"] if "ignore_top_k" not in f and raw["top_k"] >= 1 else -1,
        min_p=raw["min_p"] if "ignore_min_p" not in f and 0 <= raw["min_p"] <= 1 else 0.0,
        repetition_penalty=_rp(raw["repetition_penalty"], f),
        frequency_penalty=0.0 if "ignore_penalties" in f else raw["frequency_penalty"],
        presence_penalty=0.0 if "ignore_penalties" in f else raw["presence_penalty"],
        max_new_tokens=max(0, max_new) if isinstance(max_new, int) else None,
        min_new_tokens=max(0, raw["min_new_tokens"]),
        stop=[] if "stop_ignored" in f else stops,
        stop_token_ids=[int(i) for i in body.get("stop_token_ids") or [] if isinstance(i, int)],
        ignore_eos=bool(body.get("ignore_eos", False)),
        no_stop_trim=bool(body.get("no_stop_trim", False)),
        skip_special_tokens=bool(body.get("skip_special_tokens", True)),
        seed=None if "ignore_seed" in f else 0 if "seed_constant" in f else _seed(body.get("seed")),
    )
    return params


# Request fields SGLang's ChatCompletionRequest / CompletionRequest know (§3.1, §3.2); others are ignored.
KNOWN_FIELDS = frozenset("""
model messages prompt frequency_penalty presence_penalty logit_bias logprobs top_logprobs max_tokens
max_completion_tokens n response_format seed stop stream stream_options temperature top_p user tools tool_choice
parallel_tool_calls reasoning_effort reasoning top_k min_p repetition_penalty min_tokens regex ebnf
stop_token_ids stop_regex no_stop_trim ignore_eos continue_final_message skip_special_tokens lora_path
session_id session_params separate_reasoning stream_reasoning chat_template_kwargs max_dynamic_patch
min_dynamic_patch images_config video_config mm_processor_kwargs custom_logit_processor custom_params
input_ids rid extra_key cache_salt priority return_hidden_states return_cached_tokens_details
return_prompt_token_ids return_token_ids return_meta_info watermark echo suffix best_of json_schema
spaces_between_special_tokens
""".split())


def _opt_int(v: Any, name: str) -> int | None:
    """An optional integer field (pydantic's lax int: integral floats pass, bools and strings do not)."""
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ClientError(f"{name}: Input should be a valid integer, got {v!r}", type_="Bad Request")
    return v


def request_n(body: Mapping[str, Any]) -> int:
    """The ``n`` field: SGLang 0.5.17 answers ``n=0`` with 400 "range() arg 3 must not be zero"."""
    n = _opt_int(body.get("n"), "n")
    if n is None:
        return 1
    if n == 0:
        raise ClientError("range() arg 3 must not be zero", type_="BadRequest")
    if n < 0:
        raise ClientError(f"n must be at least 1, got {n}", type_="BadRequest")
    return n


def _rp(value: float, f: Faults) -> float:
    if "ignore_repetition_penalty" in f or not 0 < value <= 2:
        return 1.0
    if "repetition_penalty_inverted" in f:
        return 1.0 / value
    return value


def _num(v: Any, default: float) -> float:
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ClientError(f"expected a number, got {v!r}", type_="Bad Request")
    return float(v)


def _int(v: Any, default: int) -> int:
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ClientError(f"expected an integer, got {v!r}", type_="Bad Request")
    return v


def _seed(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not -(2**63) <= v < 2**63:
        raise ClientError(f"seed must be a 64-bit integer, got {v!r}")
    return v % (2**63)


# ------------------------------------------------------------------------------------------ chat


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


def _check_messages(messages: Any) -> list[dict[str, Any]]:
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


def _check_tools(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any]:
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


def collect_images(messages: Sequence[Mapping[str, Any]], st: ServerState) -> list[ImageFacts]:
    """Decode every image part (raises MediaError / ClientError as SGLang does)."""
    f = st.faults
    if st.media_wedged:
        raise ClientError("Internal server error: the scheduler died after a media error",
                          type_="InternalServerError", status=500)
    facts: list[ImageFacts] = []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    for n, m in enumerate(messages):
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "image_url":
                continue
            if not st.variant.supports("vision"):
                if "text_only_accepts_image" in f:
                    continue
                raise ClientError(
                    "Model only supports text input; received unsupported content type 'image_url'."
                )
            url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), Mapping) else None
            if not isinstance(url, str) or not url:
                raise ClientError("image_url.url is required", type_="Bad Request")
            try:
                img = facts_from_bytes(load_image_bytes(url))
            except MediaError:
                if "bad_media_wedges" in f:
                    st.media_wedged = True
                raise
            if "image_decode_narrow" in f and (img.mode != "RGB" or img.orientation != 1
                                               or not 2 <= max(img.width, img.height) <= 1024):
                raise ClientError(f"Internal server error: cannot process a {img.mode} image of "
                                  f"{img.width}x{img.height} (orientation {img.orientation})",
                                  type_="InternalServerError", status=500)
            if "image_history_dropped" in f and n != last_user:
                continue
            facts.append(_cached(img, st))
    if facts:
        st.image_requests += 1
        if "image_load_oom" in f and st.image_requests > 24:
            raise ClientError("Internal server error: CUDA out of memory while allocating the image features",
                              type_="InternalServerError", status=500)
    if "image_dropped" in f:
        return []
    if "image_stale" in st.faults and facts:
        if st.first_image is None:
            st.first_image = facts[0]
        facts = [st.first_image for _ in facts]
    return facts


def _cached(img: ImageFacts, st: ServerState) -> ImageFacts:
    """The image through the multimodal cache (faults: a key that collides, a corrupted hit)."""
    key = img.digest
    if "image_cache_collision" in st.faults:
        key = f"{img.width}x{img.height}"  # keyed by shape only: same-size images collide
    hit = st.image_cache.get(key)
    if hit is None:
        st.image_cache[key] = img
        return img
    if "image_cache_hit_corrupt" in st.faults:
        wrong = "black" if hit.colour == "gray" else "gray"
        return replace(hit, colour=wrong, left=wrong, right=wrong, text="")
    return hit


def prompt_ids_for(text: str, images: Sequence[ImageFacts], st: ServerState) -> list[int]:
    """Token ids of a rendered prompt, each ``<image>`` expanded to the picture's image tokens."""
    ids = tok.encode(text)
    if not images:
        return [i for i in ids if i != tok.IMAGE_ID] if "image_dropped" in st.faults else ids
    out: list[int] = []
    queue = list(images)
    for i in ids:
        if i == tok.IMAGE_ID and queue:
            img = queue.pop(0)
            n = 1 if "image_tokens_uncounted" in st.faults else img.tokens
            out.extend([tok.IMAGE_ID] * n)
        else:
            out.append(i)
    return out


def thinking_enabled(body: Mapping[str, Any], st: ServerState) -> bool:
    """Whether the model thinks, and whether the reasoning parser is forced (§2)."""
    parser = st.variant.reasoning_parser
    if parser is None:
        return False
    if parser == "qwen3-thinking" or "enable_thinking_ignored" in st.faults:
        return True
    kwargs = body.get("chat_template_kwargs") or {}
    return not (isinstance(kwargs, Mapping) and kwargs.get("enable_thinking") is False)


def reasoning_mode(body: Mapping[str, Any], st: ServerState) -> tuple[str | None, bool]:
    """The reasoning parser that splits this chat request's output (None: no split) and whether it is
    forced (§2: ``separate_reasoning=false`` skips the parser; ``qwen3`` is forced unless
    ``enable_thinking`` is false, ``qwen3-thinking`` always)."""
    f = st.faults
    parser = st.variant.reasoning_parser or ("qwen3" if "reasoning_parser_always_on" in f else None)
    if parser is None or "think_in_content" in f:
        return None, False
    if body.get("separate_reasoning", True) is False and "separate_reasoning_ignored" not in f:
        return None, False
    if "thinking_not_forced" in f:
        return "qwen3", False
    if parser == "qwen3-thinking":
        return parser, True
    kwargs = body.get("chat_template_kwargs") or {}
    off = isinstance(kwargs, Mapping) and kwargs.get("enable_thinking") is False
    return parser, not off or "enable_thinking_ignored" in f


def count_reasoning_tokens(text: str, completion_tokens: int, body: Mapping[str, Any], st: ServerState) -> int:
    """``usage.reasoning_tokens``: counted only while the request thinks (recorded on 0.5.17: 0 with
    ``enable_thinking=false`` even when a think block was parsed, and counted with
    ``separate_reasoning=false``): the tokens up to and including ``</think>``, all of them without it."""
    f = st.faults
    if "reasoning_tokens_uncounted" in f or not thinking_enabled(body, st):
        return 0
    if "reasoning_tokens_all" in f:
        return completion_tokens
    idx = text.find(lfm2.THINK_END)
    return min(len(tok.encode(text[: idx + len(lfm2.THINK_END)] if idx >= 0 else text)), completion_tokens)


def prepare_chat(body: Mapping[str, Any], st: ServerState) -> tuple[list[int], list[Any], SamplingParams, dict[str, Any]]:
    """Validate and render a chat request: (prompt ids, plan, sampling, context)."""
    messages = _check_messages(body.get("messages"))
    tools, choice = _check_tools(body)
    request_n(body)
    if "base_chat_500" in st.faults and st.variant.supports("completions_only"):
        raise ClientError("Internal server error: chat on a checkpoint without post-training",
                          type_="InternalServerError", status=500)
    params = sampling_from_request(body, chat=True, st=st)
    parsing = bool(tools) and (choice != "none" or "tool_choice_ignored" in st.faults)
    if parsing:
        params.skip_special_tokens = False
    images = collect_images(messages, st)
    if images and tools and "image_tools_500" in st.faults:
        raise ClientError("Internal server error: image features and tool schemas in one batch",
                          type_="InternalServerError", status=500)
    rendered_tools = tools if parsing else None
    if isinstance(choice, Mapping) and rendered_tools:
        rendered_tools = [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
    messages = [dict(m, role=m["role"].lower()) for m in messages]
    if "tool_result_dropped" in st.faults:  # tool results never reach the prompt (template-fix class, §10)
        messages = [m for m in messages if m["role"] != "tool"]
    if "tool_message_rejected" in st.faults and any(m["role"] == "tool" for m in messages):
        raise ClientError("messages: role 'tool' is not supported", type_="Bad Request")
    text = render_chat(messages, rendered_tools, continue_final_message=bool(body.get("continue_final_message")))
    ids = prompt_ids_for(text, images, st)
    if len(ids) >= st.context:
        raise ClientError(
            f"The input ({len(ids)} tokens) is longer than the model's context length ({st.context} tokens)."
        )
    effective_choice = "auto" if "tool_choice_ignored" in st.faults and tools else choice
    rf = body.get("response_format") or {}
    regex_text = forced_text(body)
    plan = to_tokens(plan_chat(ChatPlanInput(
        messages=messages, tools=tools, tool_choice=effective_choice,
        parallel_tool_calls=body.get("parallel_tool_calls", True) is not False
        or "parallel_tool_calls_ignored" in st.faults,
        thinking=thinking_enabled(body, st), images=images,
        json_mode=isinstance(rf, Mapping) and rf.get("type") in ("json_object", "json_schema"),
        regex_text=regex_text,
    )))
    ctx = {"tools": tools, "choice": effective_choice, "parsing": parsing, "images": images}
    return ids, plan, params, ctx


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


def _tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def _format_calls(calls: Sequence[lfm2.ParsedCall], st: ServerState, stream: bool = False) -> list[dict[str, Any]]:
    out = []
    for n, c in enumerate(calls):
        args = c.parameters
        if "tool_args_ascii_escaped" in st.faults:
            try:
                args = json.dumps(json.loads(args), ensure_ascii=True, sort_keys=True)
            except ValueError:
                pass
        # Streaming passes the detector's tool_index through (§1.4); non-streaming 0.5.23 re-numbers by
        # ordinal (§5), while 0.5.17 was recorded passing the detector's index through there too.
        index = c.tool_index if stream or not _renumbers_tool_index(st) else n
        if "tool_call_stream_index_zero" in st.faults and stream:
            index = 0
        call_id = ("fn-" + uuid.uuid4().hex[:8]) if "tool_call_bad_id" in st.faults else _tool_call_id()
        out.append({"id": call_id, "index": index, "type": "function",
                    "function": {"name": c.name, "arguments": args}})
    return out


def _renumbers_tool_index(st: ServerState) -> bool:
    return has_fact("chat-tool-call-index-is-ordinal", st.version)


def _map_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    return value


def _call_faults(calls: Sequence[lfm2.ParsedCall], st: ServerState) -> list[lfm2.ParsedCall]:
    """Fault modes that corrupt parsed calls (the parser-bug classes of §10)."""
    f = st.faults
    out = list(calls)
    if "tool_parser_drops_nested" in f:
        out = _drop_nested(out)
    if "tool_args_escape_mangled" in f or "tool_args_stringified" in f:
        fixed = []
        for c in out:
            args = c.arguments
            if "tool_args_escape_mangled" in f:
                args = _map_strings(args, lambda s: s.replace("\\", ""))
            if "tool_args_stringified" in f and isinstance(args, dict):
                args = {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}
            fixed.append(lfm2.ParsedCall(c.name, json.dumps(args, ensure_ascii=False), c.tool_index))
        out = fixed
    return out


_TOOL_BLOCK = re.compile(re.escape(lfm2.BOT) + r"(.*?)" + re.escape(lfm2.EOT), re.DOTALL)


def _lfm2_parse(text: str, tools: Sequence[Mapping[str, Any]], st: ServerState) -> lfm2.ToolParse:
    """The configured parser's non-streaming parse, with the parser fault modes applied."""
    f = st.faults
    if "tool_json_form_ignored" in f:  # JSON-form blocks are not recognised at all
        text = _TOOL_BLOCK.sub(lambda m: lfm2.BOT + ("[]" if m.group(1).strip().startswith(("{", "[{"))
                                                      else m.group(1)) + lfm2.EOT, text)
    if "tool_unknown_forwarded" in f:  # as with SGLANG_FORWARD_UNKNOWN_TOOLS=1
        result = lfm2.parse_tool_calls(text, tools, st.dialect, forward_unknown=True)
    else:
        result = st.parsers.parse_tool_calls(text, tools, st.dialect)
    calls = _call_faults(result.calls, st)
    normal = result.normal_text
    if "tool_text_markup_leak" in f and lfm2.BOT in text and not calls:
        normal = text
    return lfm2.ToolParse(normal_text=normal, calls=tuple(calls))


def _drop_nested(calls: Sequence[lfm2.ParsedCall]) -> list[lfm2.ParsedCall]:
    keep = []
    for c in calls:
        args = c.arguments
        if not any(isinstance(v, (dict, list)) for v in (args.values() if isinstance(args, dict) else [])):
            keep.append(c)
    return keep


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


def finish_chat(gen: Generation, body: Mapping[str, Any], ctx: Mapping[str, Any], st: ServerState) -> ChatOutcome:
    """Apply the reasoning and tool-call parsers to one generation (non-streaming)."""
    text = gen.text
    reasoning: str | None = None
    f = st.faults
    reasoning_tokens = count_reasoning_tokens(text, len(gen.ids), body, st)
    rparser, force = reasoning_mode(body, st)
    if rparser:
        split = st.parsers.split_reasoning(text, rparser, force=force,
                                           strip_all_think="think_start_removed_everywhere" in f)
        if "reasoning_text_stripped" in f:
            split = lfm2.ReasoningSplit(split.reasoning_text.strip(), split.text.strip())
        if "unterminated_think_as_content" in f and lfm2.THINK_END not in text:
            split = lfm2.ReasoningSplit("", split.reasoning_text + split.text)
        if "tool_call_in_reasoning" in f and split.text.strip().startswith(lfm2.BOT):
            split = lfm2.ReasoningSplit(split.reasoning_text + split.text, "")
        reasoning = split.reasoning_text or None
        text = split.text
        if "reasoning_in_content" in f and reasoning:
            text, reasoning = reasoning + text, None
    finish, matched = gen.finish_reason, gen.matched_stop
    calls: list[dict[str, Any]] = []
    if ctx["parsing"] and st.variant.tool_call_parser and "tool_call_as_text" not in f:
        choice = ctx["choice"]
        if choice == "required" or isinstance(choice, Mapping):
            parsed = parse_json_array_calls(text, ctx["tools"])
            if parsed is not None:
                calls = _format_calls(parsed, st)
                text = ""
        else:
            result = _lfm2_parse(text, ctx["tools"], st)
            found = list(result.calls)
            if lfm2.BOT in text:
                text = result.normal_text
            calls = _format_calls(found, st)
        if calls and finish == "stop" and "tool_call_finish_stop" not in f:
            finish, matched = "tool_calls", None
    content = text
    return ChatOutcome(gen, content, reasoning if reasoning else None, calls, finish, matched, reasoning_tokens)


def chat_response(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """A complete non-streaming chat completion."""
    ids, plan, params, ctx = prepare_chat(body, st)
    n = request_n(body)
    choices, completion_tokens, reasoning_tokens = [], 0, 0
    for i in range(n):
        p = _with_seed(params, i)
        p.logprobs = bool(body.get("logprobs"))
        p.top_logprobs = _opt_int(body.get("top_logprobs"), "top_logprobs") or 0
        gen = generate(ids, plan, p, st.context - len(ids))
        out = finish_chat(gen, body, ctx, st)
        message: dict[str, Any] = {"role": "assistant", "content": out.content,
                                   "reasoning_content": out.reasoning}
        if out.tool_calls:
            message["tool_calls"] = out.tool_calls
        choices.append({"index": i, "message": message, "logprobs": _chat_logprobs(gen) if p.logprobs else None,
                        "finish_reason": out.finish_reason, "matched_stop": out.matched_stop})
        completion_tokens += len(gen.ids)
        reasoning_tokens += out.reasoning_tokens
    return {
        "id": uuid.uuid4().hex, "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model") or "default", "choices": choices,
        "usage": _usage(len(ids), completion_tokens, reasoning_tokens, st),
        "metadata": {"weight_version": "default"},
    }


def _with_seed(params: SamplingParams, i: int) -> SamplingParams:
    from dataclasses import replace

    return replace(params, seed=None if params.seed is None else params.seed + i)


def _usage(prompt: int, completion: int, reasoning: int, st: ServerState) -> dict[str, Any]:
    total = prompt + completion + (1 if "usage_wrong" in st.faults else 0)
    return {"prompt_tokens": prompt, "total_tokens": total, "completion_tokens": completion,
            "prompt_tokens_details": None, "reasoning_tokens": reasoning}


def _chat_logprobs(gen: Generation) -> dict[str, Any]:
    content = []
    for j, token_id in enumerate(gen.ids):
        top = gen.top_logprobs[j] if j < len(gen.top_logprobs) else []
        text = tok.token_text(token_id)
        content.append({"token": text, "bytes": list(text.encode()), "logprob": gen.logprobs[j],
                        "top_logprobs": [{"token": tok.token_text(t), "bytes": list(tok.token_text(t).encode()),
                                          "logprob": lp} for t, lp in top]})
    return {"content": content}


def chat_stream(body: Mapping[str, Any], st: ServerState) -> Iterator[dict[str, Any] | str]:
    """Chunks of a streaming chat completion (validation happens before the first chunk)."""
    ids, plan, params, ctx = prepare_chat(body, st)
    gen = generate(ids, plan, params, st.context - len(ids))
    return _stream_events(gen, ids, body, ctx, st)


def _stream_events(gen: Generation, ids: list[int], body: Mapping[str, Any], ctx: Mapping[str, Any],
                   st: ServerState) -> Iterator[dict[str, Any] | str]:
    f = st.faults
    rid, created, model = uuid.uuid4().hex, int(time.time()), body.get("model") or "default"

    def chunk(delta: dict[str, Any], finish: str | None = None, matched: Any = None) -> dict[str, Any]:
        return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish,
                             "matched_stop": matched}]}

    if "stream_no_role_chunk" not in f:
        yield chunk({"role": "assistant", "content": ""})
    rname, rforce = reasoning_mode(body, st)
    rparser = None
    if rname:
        rparser = st.parsers.streaming_reasoning(
            rname, force=rforce,
            stream_reasoning=body.get("stream_reasoning", True) is not False or "stream_reasoning_ignored" in f,
            leak_think_start=lfm2.think_leak_in_stream(st.version) or "stream_reasoning_think_leak" in f)
    unclosed: list[str] = []  # fault unterminated_think_as_content: reasoning held until </think> is seen
    choice = ctx["choice"]
    json_path = ctx["parsing"] and (choice == "required" or isinstance(choice, Mapping))
    tparser = None
    if ctx["parsing"] and st.variant.tool_call_parser and not json_path and "tool_call_as_text" not in f:
        tparser = st.parsers.streaming_tools(ctx["tools"], st.dialect)
    decoder = tok.IncrementalDecoder(params_skip(body, ctx))
    held_reasoning: list[dict[str, Any]] = []
    content_buffer = ""
    any_calls = False
    emitted_chars = 0
    limit = len(gen.text)
    reasoning_count = 0

    def content_events(text: str, calls: Sequence[lfm2.ParsedCall]) -> Iterator[dict[str, Any]]:
        nonlocal any_calls
        if text:
            yield chunk({"content": text})
        if calls:
            any_calls = True
            yield chunk({"tool_calls": _format_calls(_call_faults(calls, st), st, stream=True)})

    pieces: list[str] = []
    for token_id in gen.ids:
        piece = decoder.push(token_id)
        if piece:
            pieces.append(piece)
    tail = decoder.flush()
    if tail:
        pieces.append(tail)
    for piece in pieces:
        if emitted_chars >= limit:
            break
        piece = piece[: limit - emitted_chars]
        emitted_chars += len(piece)
        r_delta, c_delta = (rparser.feed(piece) if rparser else ("", piece))
        if r_delta and rparser and "unterminated_think_as_content" in f:
            unclosed.append(r_delta)
            r_delta = "" if rparser.in_reasoning else "".join(unclosed)
            if not rparser.in_reasoning:
                unclosed.clear()
        if r_delta:
            ev = chunk({"reasoning_content": r_delta})
            reasoning_count += len(tok.encode(r_delta))
            if "reasoning_after_content" in f:
                held_reasoning.append(ev)
            else:
                yield ev
        if not c_delta:
            continue
        if json_path:
            content_buffer += c_delta
            continue
        if tparser:
            text, calls = tparser.feed(c_delta)
            yield from content_events(text, calls)
        else:
            yield chunk({"content": c_delta})
    if rparser:
        r_delta, c_delta = rparser.finish()
        if unclosed:
            r_delta, c_delta = "", "".join(unclosed) + r_delta + c_delta
        if r_delta:
            ev = chunk({"reasoning_content": r_delta})
            if "reasoning_after_content" in f:
                held_reasoning.append(ev)
            else:
                yield ev
        if c_delta:
            if tparser:
                yield from content_events(*tparser.feed(c_delta))
            elif json_path:
                content_buffer += c_delta
            else:
                yield chunk({"content": c_delta})
    if tparser:
        yield from content_events(*tparser.finish())
    if json_path:
        parsed = parse_json_array_calls(content_buffer, ctx["tools"])
        if parsed is not None:
            any_calls = True
            for n, call in enumerate(_format_calls(parsed, st, stream=True)):
                call["index"] = 0 if "tool_call_stream_index_zero" in f else n
                yield chunk({"tool_calls": [call]})
        elif content_buffer:
            yield chunk({"content": content_buffer})
    yield from held_reasoning
    finish, matched = gen.finish_reason, gen.matched_stop
    if any_calls and finish == "stop" and "tool_call_finish_stop" not in f:
        finish = "tool_calls"
    yield chunk({}, finish, matched)
    so = body.get("stream_options") or {}
    if isinstance(so, Mapping) and so.get("include_usage"):
        full = finish_chat(gen, body, ctx, st)
        yield {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
               "usage": _usage(len(ids), len(gen.ids), full.reasoning_tokens, st)}
    if "stream_no_done" not in f:
        yield "[DONE]"


def params_skip(body: Mapping[str, Any], ctx: Mapping[str, Any]) -> bool:
    """skip_special_tokens as SGLang decides it (forced False while tool parsing is active)."""
    return False if ctx["parsing"] else bool(body.get("skip_special_tokens", True))


# ------------------------------------------------------------------------------------------ completions


def _prompts(body: Mapping[str, Any]) -> list[list[int] | str]:
    prompt = body.get("prompt")
    if prompt is None:
        raise ClientError("prompt: Field required", type_="Bad Request")
    if isinstance(prompt, str):
        items: list[Any] = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        items = [list(prompt)]
    elif isinstance(prompt, list):
        items = list(prompt)
    else:
        raise ClientError("prompt: Input should be a string or a list", type_="Bad Request")
    if not items or any(p == "" or p == [] for p in items):
        raise ClientError("Prompt cannot be empty")
    for p in items:
        if not isinstance(p, str) and not (isinstance(p, list) and all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < tok.VOCAB_SIZE for i in p)):
            raise ClientError("prompt: Input should be a string, a list of strings or token ids",
                              type_="Bad Request")
    return items


def completion_response(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """A non-streaming ``/v1/completions`` response."""
    prompts = _prompts(body)
    mt = _opt_int(body.get("max_tokens", 16), "max_tokens")
    if mt is not None and mt <= 0 and "no_validation" not in st.faults:
        raise ClientError("max_tokens must be positive", type_="Bad Request")
    n = 1 if "completions_n_ignored" in st.faults else request_n(body)
    lp = _opt_int(body.get("logprobs"), "logprobs")
    params = sampling_from_request(body, chat=False, st=st)
    choices: list[dict[str, Any]] = []
    prompt_total, completion_total = 0, 0
    for prompt in prompts:
        text = prompt if isinstance(prompt, str) else tok.decode(prompt, skip_special_tokens=False)
        ids = ([tok.BOS_ID] + tok.encode(text)) if isinstance(prompt, str) else list(prompt)
        if len(ids) >= st.context:
            raise ClientError(
                f"The input ({len(ids)} tokens) is longer than the model's context length ({st.context} tokens)."
            )
        if params.max_new_tokens and len(ids) + params.max_new_tokens > st.context and "no_validation" not in st.faults:
            raise ClientError(
                f"Requested token count exceeds the model's maximum context length of {st.context} tokens. You "
                f"requested a total of {len(ids) + params.max_new_tokens} tokens: {len(ids)} tokens from the input "
                f"messages and {params.max_new_tokens} tokens for the completion. Please reduce the number of "
                "tokens in the input messages or the completion to fit within the limit."
            )
        plan = to_tokens(plan_completion(text, forced_text(body)))
        prompt_total += len(ids)
        for i in range(n):
            p = _with_seed(params, i)
            p.logprobs = lp is not None
            p.top_logprobs = max(0, lp or 0)
            gen = generate(ids, plan, p, st.context - len(ids))
            completion_total += len(gen.ids)
            out_text = gen.text
            echo = bool(body.get("echo")) and "completions_no_echo" not in st.faults
            if echo:
                out_text = text + out_text
            choices.append({
                "index": len(choices), "text": out_text,
                "logprobs": _completion_logprobs(gen, ids if echo else [], p.top_logprobs,
                                                 "completions_logprobs_short" in st.faults) if p.logprobs else None,
                "finish_reason": gen.finish_reason, "matched_stop": gen.matched_stop,
            })
    return {"id": uuid.uuid4().hex, "object": "text_completion", "created": int(time.time()),
            "model": body.get("model") or "default", "choices": choices,
            "usage": _usage(prompt_total, completion_total, 0, st), "metadata": {"weight_version": "default"}}


def _completion_logprobs(gen: Generation, echo_ids: Sequence[int], top: int,
                         completions_logprobs_short: bool = False) -> dict[str, Any]:
    tokens = [tok.token_text(i) for i in echo_ids] + [tok.token_text(i) for i in gen.ids[: gen.text_token_count]]
    n_gen = gen.text_token_count
    # echo: prompt tokens get logprobs too, except the first (recorded 0.5.17, comp_echo_logprobs)
    token_logprobs: list[float | None] = [None if j == 0 else prompt_logprob(t) for j, t in enumerate(echo_ids)]
    token_logprobs += gen.logprobs[:n_gen]
    if completions_logprobs_short:
        n_gen = max(0, n_gen - 1)
        tokens, token_logprobs = tokens[:-1], token_logprobs[:-1]
    tops: list[dict[str, float] | None] = [
        None if j == 0 or not top else {tok.token_text(t): lp for t, lp in prompt_top_logprobs(top)}
        for j in range(len(echo_ids))]
    for j in range(n_gen):
        entries = gen.top_logprobs[j] if j < len(gen.top_logprobs) else []
        tops.append({tok.token_text(t): lp for t, lp in entries} if top else None)
    return {"text_offset": [-1] * len(tokens), "token_logprobs": token_logprobs, "tokens": tokens,
            "top_logprobs": tops}


def completion_stream(body: Mapping[str, Any], st: ServerState) -> Iterator[dict[str, Any] | str]:
    """Chunks of a streaming completion (one choice, one prompt)."""
    resp = completion_response({**body, "stream": False}, st)
    return _completion_events(resp, body, st)


def _completion_events(resp: dict[str, Any], body: Mapping[str, Any], st: ServerState) -> Iterator[dict[str, Any] | str]:
    for choice in resp["choices"]:
        text = choice["text"]
        for k in range(0, len(text), 4):
            yield {"id": resp["id"], "object": "text_completion", "created": resp["created"], "model": resp["model"],
                   "choices": [{"index": choice["index"], "text": text[k:k + 4], "logprobs": None,
                                "finish_reason": None, "matched_stop": None}]}
        yield {"id": resp["id"], "object": "text_completion", "created": resp["created"], "model": resp["model"],
               "choices": [{"index": choice["index"], "text": "", "logprobs": None,
                            "finish_reason": choice["finish_reason"], "matched_stop": choice["matched_stop"]}]}
    so = body.get("stream_options") or {}
    if isinstance(so, Mapping) and so.get("include_usage"):
        yield {"id": resp["id"], "object": "text_completion", "created": resp["created"], "model": resp["model"],
               "choices": [], "usage": resp["usage"]}
    if "stream_no_done" not in st.faults:
        yield "[DONE]"


# ------------------------------------------------------------------------------------------ parsers & misc


def parse_function_call(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """``POST /parse_function_call``."""
    text = body.get("text")
    if not isinstance(text, str):
        raise ClientError("text: Field required", type_="Bad Request")
    parser = body.get("tool_call_parser")
    st.parsers.check_tool_call_parser(parser)
    tools = body.get("tools") or []
    if "tool_call_as_text" in st.faults:
        return {"normal_text": text, "calls": []}
    if tools and parser == "lfm2":
        result = _lfm2_parse(text, tools, st)
    else:
        result = st.parsers.parse_function_call(text, tools, parser, st.dialect)
    calls = list(result.calls)
    out = []
    for c in calls:
        params = c.parameters
        if "tool_args_ascii_escaped" in st.faults:
            params = json.dumps(json.loads(params), ensure_ascii=True, sort_keys=True)
        out.append({"tool_index": c.tool_index, "name": c.name, "parameters": params})
    return {"normal_text": result.normal_text, "calls": out}


def _pythonic_parse(text: str, tools: Sequence[Mapping[str, Any]], dialect: lfm2.Dialect) -> lfm2.ToolParse:
    """SGLang's generic ``pythonic`` detector, as far as the reference needs it: an output that is one
    bracketed list of calls (no markers) parses like an LFM2 block; anything else is plain text."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        return lfm2.ToolParse(normal_text=text)
    calls = lfm2.parse_block(body, lfm2.tool_names(tools), dialect)
    return lfm2.ToolParse(normal_text="" if calls else text, calls=tuple(calls))


def separate_reasoning(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """``POST /separate_reasoning`` (no serving-layer forcing for ``qwen3``)."""
    text = body.get("text")
    if not isinstance(text, str):
        raise ClientError("text: Field required", type_="Bad Request")
    parser = str(body.get("reasoning_parser"))
    st.parsers.check_reasoning_parser(body.get("reasoning_parser"))
    if "think_in_content" in st.faults:
        return {"reasoning_text": "", "text": text}
    if "thinking_not_forced" in st.faults:
        parser = "qwen3"
    if "think_start_removed_everywhere" in st.faults or "reasoning_text_stripped" in st.faults:
        split = lfm2.split_reasoning(text, parser, strip_all_think="think_start_removed_everywhere" in st.faults,
                                     dialect=st.dialect)
        if "reasoning_text_stripped" in st.faults:
            split = lfm2.ReasoningSplit(split.reasoning_text.strip(), split.text.strip())
        return {"reasoning_text": split.reasoning_text, "text": split.text}
    return dict(st.parsers.separate_reasoning(text, parser, bool(body.get("return_blocks"))))


class ProjectParsers:
    """The project's own parsers (:mod:`pytest_lfm.lfm2`), switched by the emulated version's dialect.

    The default of :attr:`ServerState.parsers`; ``pytest_lfm.reference.upstream.UpstreamParsers`` has
    the same methods and runs a real SGLang release's parser classes instead.
    """

    name = "project"

    def __init__(self, dialect: lfm2.Dialect | None = None) -> None:
        self.dialect = dialect or lfm2.Dialect()

    def check_tool_call_parser(self, parser: Any) -> None:
        """400 for a tool-call parser other than ``lfm2`` (and SGLang's generic ``pythonic``)."""
        if parser not in (*lfm2.TOOL_CALL_PARSERS, "pythonic"):
            raise ClientError(f"Unsupported tool_call_parser: {parser}")

    def check_reasoning_parser(self, parser: Any) -> None:
        """400 for a reasoning parser other than ``qwen3`` / ``qwen3-thinking``."""
        if parser not in lfm2.REASONING_PARSERS:
            raise ClientError(f"Unsupported reasoning parser: {parser}")

    def parse_function_call(self, text: str, tools: Sequence[Mapping[str, Any]], parser: str | None,
                            dialect: lfm2.Dialect) -> lfm2.ToolParse:
        """``/parse_function_call``: no tools → the text unchanged, else :func:`lfm2.parse_tool_calls`."""
        if not tools:
            return lfm2.ToolParse(normal_text=text)
        if parser == "pythonic":
            return _pythonic_parse(text, tools, dialect)
        return lfm2.parse_tool_calls(text, tools, dialect)

    def separate_reasoning(self, text: str, parser: str, return_blocks: bool = False) -> dict[str, Any]:
        """``/separate_reasoning`` (no serving-layer forcing for ``qwen3``)."""
        split = lfm2.split_reasoning(text, parser, dialect=self.dialect)
        out: dict[str, Any] = {"reasoning_text": split.reasoning_text, "text": split.text}
        if return_blocks:
            out["reasoning_blocks"] = [split.reasoning_text] if split.reasoning_text else []
            out["text_blocks"] = [split.text] if split.text else []
            out["blocks"] = ([{"type": "reasoning", "text": split.reasoning_text}] if split.reasoning_text
                             else []) + ([{"type": "text", "text": split.text}] if split.text else [])
        return out

    def parse_tool_calls(self, text: str, tools: Sequence[Mapping[str, Any]] | None,
                         dialect: lfm2.Dialect) -> lfm2.ToolParse:
        """Non-streaming chat tool parsing."""
        return lfm2.parse_tool_calls(text, tools, dialect)

    def split_reasoning(self, text: str, parser: str, force: bool | None = None,
                        strip_all_think: bool = False) -> lfm2.ReasoningSplit:
        """Non-streaming chat reasoning split."""
        return lfm2.split_reasoning(text, parser, force=force, strip_all_think=strip_all_think, dialect=self.dialect)

    def streaming_tools(self, tools: Sequence[Mapping[str, Any]], dialect: lfm2.Dialect) -> lfm2.StreamingToolParser:
        """Streaming chat tool parser."""
        return lfm2.StreamingToolParser(tools, dialect)

    def streaming_reasoning(self, parser: str, force: bool = False, stream_reasoning: bool = True,
                            leak_think_start: bool = True) -> lfm2.StreamingReasoningParser:
        """Streaming chat reasoning parser."""
        return lfm2.StreamingReasoningParser(parser, force=force, stream_reasoning=stream_reasoning,
                                             leak_think_start=leak_think_start, dialect=self.dialect)


def tokenize(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """``POST /v1/tokenize``: a prompt or chat messages (with tools) to token ids."""
    if "messages" in body:
        messages = _check_messages(body.get("messages"))
        tools, choice = _check_tools(body)
        rendered = tools if tools and choice != "none" else None
        text = render_chat(messages, rendered, add_generation_prompt=body.get("add_generation_prompt", True) is not False)
        ids = tok.encode(text)
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise ClientError("prompt or messages is required", type_="Bad Request")
        ids = ([tok.BOS_ID] if body.get("add_special_tokens", True) else []) + tok.encode(prompt)
    return {"tokens": ids, "count": len(ids), "max_model_len": st.context}


def server_info(st: ServerState) -> dict[str, Any]:
    """``GET /server_info``: resolved server args as SGLang names them, plus ``version``."""
    v = st.variant
    return {
        "model_path": v.hf_path, "tokenizer_path": v.hf_path, "served_model_name": v.hf_path,
        "context_length": st.context, "dtype": "auto", "tp_size": 1, "trust_remote_code": True,
        "tool_call_parser": v.tool_call_parser, "reasoning_parser": v.reasoning_parser,
        "attention_backend": "reference", "mm_attention_backend": _mm_attention_backend(st),
        "mem_fraction_static": v.recipe.mem_fraction_static, "chunked_prefill_size": 8192,
        "disable_radix_cache": False, "enable_torch_compile": False, "random_seed": 0,
        "enable_deterministic_inference": True,  # the reference honours `seed` (SGLang: only with this flag)
        "api_key": None if st.api_key is None else "***", "launch_command": "python -m pytest_lfm.reference",
        "version": st.version, "frontend": "python", "reference_server": True,
        "reference_faults": sorted(st.faults.names),
        "reference_parsers": st.parsers.name,
    }


def model_info(st: ServerState) -> dict[str, Any]:
    """``GET /model_info``."""
    v = st.variant
    arch = {"dense": "Lfm2ForCausalLM", "moe": "Lfm2MoeForCausalLM", "vl": "Lfm2VlForConditionalGeneration"}
    return {
        "model_path": v.hf_path, "tokenizer_path": v.hf_path, "served_model_name": v.hf_path,
        "is_generation": True, "preferred_sampling_params": None, "weight_version": "default",
        "reasoning_parser": v.reasoning_parser, "tool_call_parser": v.tool_call_parser,
        "has_image_understanding": v.supports("vision"), "has_audio_understanding": False,
        "model_type": {"dense": "lfm2", "moe": "lfm2_moe", "vl": "lfm2_vl"}[v.architecture],
        "architectures": [arch[v.architecture]],
    }


def models_list(st: ServerState) -> dict[str, Any]:
    """``GET /v1/models``."""
    return {"object": "list", "data": [{"id": st.model_name, "object": "model", "created": int(st.started),
                                        "owned_by": "sglang", "root": st.model_name, "parent": None,
                                        "max_model_len": st.context}]}


def _mm_attention_backend(st: ServerState) -> str | None:
    """``--mm-attention-backend`` as the cookbook recipe sets it for the emulated GPU (§6, §11)."""
    if not st.variant.supports("vision"):
        return None
    if st.hardware is None:
        return "reference"
    if "mm_attention_default" in st.faults:
        return "triton_attn"
    from pytest_lfm.hardware import get_hardware

    return get_hardware(st.hardware).mm_attention_backend


def media_error(exc: MediaError, st: ServerState) -> ClientError:
    """Client media errors are 400 (0.5.23 by its code, 0.5.17 as run on an H100); 0.5.10 answered 500
    (``RuntimeError``)."""
    message = f"An exception occurred while loading multimodal data: {exc}"
    if "bad_media_500" in st.faults or not has_fact("media-errors-400", st.version):
        return ClientError("Internal server error: " + message, type_="InternalServerError", status=500)
    return ClientError(message)
