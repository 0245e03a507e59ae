"""What each fault mode of :mod:`.faults` does, as hooks at the named points of :mod:`.hooks`.

Grouped by surface. Within a point, hooks run in the order they are registered here (the order matters
where two faults touch one value: e.g. ``ignore_seed`` after ``seed_constant``, so that a server with
both ignores the seed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pytest_lfm import lfm2
from pytest_lfm.reference import hooks as H
from pytest_lfm.reference.hooks import fault_hook
from pytest_lfm.reference.model import Generation, SamplingParams
from pytest_lfm.reference.validation import ClientError
from pytest_lfm.reference.vision import ImageFacts, MediaError

if TYPE_CHECKING:
    from pytest_lfm.reference.state import ServerState, Slot

SAMPLER_EXTENSIONS = frozenset({"top_k", "min_p", "repetition_penalty"})


def _internal(message: str) -> ClientError:
    return ClientError(f"Internal server error: {message}", type_="InternalServerError", status=500)


# ------------------------------------------------------------------------------------------ sampling


@fault_hook("extra_body_rejected", H.REQUEST_FIELDS)
def _extra_body_rejected(body: Mapping[str, Any], **_: Any) -> Mapping[str, Any]:
    if SAMPLER_EXTENSIONS & set(body):
        raise ClientError(f"Unrecognized request argument supplied: {sorted(SAMPLER_EXTENSIONS & set(body))}")
    return body


@fault_hook("unknown_field_500", H.REQUEST_FIELDS)
def _unknown_field_500(body: Mapping[str, Any], **_: Any) -> Mapping[str, Any]:
    from pytest_lfm.reference.sampling import KNOWN_FIELDS

    if set(body) - KNOWN_FIELDS:
        raise _internal(f"unexpected field(s) {sorted(set(body) - KNOWN_FIELDS)}")
    return body


@fault_hook("completions_default_max_tokens", H.COMPLETION_DEFAULT_MAX_TOKENS)
def _default_max_tokens(value: int, **_: Any) -> int:
    return 64


@fault_hook("no_validation", H.VALIDATE)
def _no_validation(value: bool, **_: Any) -> bool:
    return False


@fault_hook("sampling_error_generic", H.SAMPLING_ERROR)
def _sampling_error_generic(exc: ClientError, **_: Any) -> ClientError:
    return ClientError("Invalid sampling parameters.")


@fault_hook("seed_constant", H.SEED)
def _seed_constant(value: Any, **_: Any) -> Any:
    return 0


@fault_hook("ignore_seed", H.SEED)
def _ignore_seed(value: Any, **_: Any) -> Any:
    return None


def _params_hook(fault: str, **changes: Any) -> None:
    fault_hook(fault, H.SAMPLING_PARAMS)(lambda p, **_: replace(p, **changes))


_params_hook("ignore_top_p", top_p=1.0)
_params_hook("ignore_top_k", top_k=-1)
_params_hook("ignore_min_p", min_p=0.0)
_params_hook("ignore_repetition_penalty", repetition_penalty=1.0)
_params_hook("ignore_penalties", frequency_penalty=0.0, presence_penalty=0.0)
_params_hook("stop_ignored", stop=[])


@fault_hook("repetition_penalty_inverted", H.SAMPLING_PARAMS)
def _rp_inverted(p: SamplingParams, **_: Any) -> SamplingParams:
    return replace(p, repetition_penalty=1.0 / p.repetition_penalty)


@fault_hook("usage_wrong", H.USAGE)
def _usage_wrong(usage: dict[str, Any], **_: Any) -> dict[str, Any]:
    return {**usage, "total_tokens": usage["total_tokens"] + 1}


@fault_hook("error_500", H.CLIENT_ERROR)
def _error_500(exc: ClientError, **_: Any) -> ClientError:
    return _internal(exc.message)


# ------------------------------------------------------------------------------------------ chat request


@fault_hook("base_chat_500", H.CHAT_REQUEST)
def _base_chat_500(body: Mapping[str, Any], *, st: ServerState, **_: Any) -> Mapping[str, Any]:
    if st.variant.supports("completions_only"):
        raise _internal("chat on a checkpoint without post-training")
    return body


@fault_hook("tool_choice_ignored", H.TOOL_CHOICE)
def _tool_choice_ignored(choice: Any, *, tools: Sequence[Any], **_: Any) -> Any:
    return "auto" if tools else choice


@fault_hook("image_tools_500", H.CHAT_IMAGES_AND_TOOLS)
def _image_tools_500(images: list[ImageFacts], *, tools: Sequence[Any], **_: Any) -> list[ImageFacts]:
    if images and tools:
        raise _internal("image features and tool schemas in one batch")
    return images


@fault_hook("tool_result_dropped", H.CHAT_MESSAGES)
def _tool_result_dropped(messages: list[dict[str, Any]], **_: Any) -> list[dict[str, Any]]:
    return [m for m in messages if m["role"] != "tool"]  # tool results never reach the prompt (§10)


@fault_hook("tool_message_rejected", H.CHAT_MESSAGES)
def _tool_message_rejected(messages: list[dict[str, Any]], **_: Any) -> list[dict[str, Any]]:
    if any(m["role"] == "tool" for m in messages):
        raise ClientError("messages: role 'tool' is not supported", type_="Bad Request")
    return messages


@fault_hook("parallel_tool_calls_ignored", H.PARALLEL_TOOL_CALLS)
def _parallel_ignored(value: bool, **_: Any) -> bool:
    return True


@fault_hook("conv_state_leak", H.DECODE_STATE)
def _conv_state_leak(plan: list[Any], *, st: ServerState, slot: Slot | None, **_: Any) -> list[Any]:
    """LFM2's conv-state slot reuse class: a request decoding while another is in flight starts from the
    other request's state, so its answer continues as the other's after a few tokens. Alone, nothing leaks."""
    others = [s for s in st.slots.others(slot) if s.plan]
    if slot is None or not others:
        return plan
    stale = others[0].plan or []
    keep = min(4, len(plan))
    return plan[:keep] + stale[keep:]


# ------------------------------------------------------------------------------------------ reasoning


@fault_hook("enable_thinking_ignored", H.THINKING)
def _enable_thinking_ignored(value: bool, **_: Any) -> bool:
    return True


@fault_hook("reasoning_parser_always_on", H.REASONING_PARSER)
def _reasoning_parser_always_on(parser: str | None, **_: Any) -> str | None:
    return parser or "qwen3"


@fault_hook("think_in_content", H.REASONING_PARSER)
def _think_in_content_chat(parser: str | None, **_: Any) -> str | None:
    return None


@fault_hook("separate_reasoning_ignored", H.SEPARATE_REASONING_REQUESTED)
def _separate_reasoning_ignored(value: bool, **_: Any) -> bool:
    return True


@fault_hook("thinking_not_forced", H.REASONING_MODE)
def _thinking_not_forced(mode: tuple[str | None, bool], **_: Any) -> tuple[str | None, bool]:
    return ("qwen3", False) if mode[0] else mode


@fault_hook("thinking_not_forced", H.ENDPOINT_REASONING_PARSER)
def _thinking_not_forced_endpoint(parser: str, **_: Any) -> str:
    return "qwen3"


@fault_hook("reasoning_tokens_all", H.REASONING_TOKENS)
def _reasoning_tokens_all(count: int, *, completion_tokens: int, **_: Any) -> int:
    return completion_tokens


@fault_hook("reasoning_tokens_uncounted", H.REASONING_TOKENS)
def _reasoning_tokens_uncounted(count: int, **_: Any) -> int:
    return 0


@fault_hook("think_start_removed_everywhere", H.CHAT_REASONING_SPLIT, H.ENDPOINT_REASONING)
def _think_start_removed(split: lfm2.ReasoningSplit, *, text: str, parser: str, force: bool | None = None,
                         dialect: lfm2.Dialect | None = None, **_: Any) -> lfm2.ReasoningSplit:
    return lfm2.split_reasoning(text, parser, force=force, strip_all_think=True, dialect=dialect)


@fault_hook("reasoning_text_stripped", H.CHAT_REASONING_SPLIT, H.ENDPOINT_REASONING)
def _reasoning_text_stripped(split: lfm2.ReasoningSplit, **_: Any) -> lfm2.ReasoningSplit:
    return lfm2.ReasoningSplit(split.reasoning_text.strip(), split.text.strip())


@fault_hook("think_in_content", H.ENDPOINT_REASONING)
def _think_in_content_endpoint(split: lfm2.ReasoningSplit, *, text: str, **_: Any) -> lfm2.ReasoningSplit:
    return lfm2.ReasoningSplit("", text)


@fault_hook("unterminated_think_as_content", H.CHAT_REASONING_SPLIT)
def _unterminated_think_as_content(split: lfm2.ReasoningSplit, *, text: str, **_: Any) -> lfm2.ReasoningSplit:
    if lfm2.THINK_END in text:
        return split
    return lfm2.ReasoningSplit("", split.reasoning_text + split.text)


@fault_hook("unterminated_think_as_content", H.STREAM_REASONING_DELTA)
def _unterminated_stream_delta(delta: str, *, in_reasoning: bool, scratch: dict[str, Any], **_: Any) -> str:
    """Reasoning is held until ``</think>`` is seen."""
    held: list[str] = scratch.setdefault("unclosed", [])
    held.append(delta)
    if in_reasoning:
        return ""
    out = "".join(held)
    held.clear()
    return out


@fault_hook("unterminated_think_as_content", H.STREAM_REASONING_END)
def _unterminated_stream_end(end: tuple[str, str], *, scratch: dict[str, Any], **_: Any) -> tuple[str, str]:
    held: list[str] = scratch.get("unclosed", [])
    if not held:
        return end
    return "", "".join(held) + end[0] + end[1]


@fault_hook("tool_call_in_reasoning", H.CHAT_REASONING_SPLIT)
def _tool_call_in_reasoning(split: lfm2.ReasoningSplit, **_: Any) -> lfm2.ReasoningSplit:
    if split.text.strip().startswith(lfm2.BOT):
        return lfm2.ReasoningSplit(split.reasoning_text + split.text, "")
    return split


@fault_hook("reasoning_in_content", H.CHAT_REASONING_SPLIT)
def _reasoning_in_content(split: lfm2.ReasoningSplit, **_: Any) -> lfm2.ReasoningSplit:
    return lfm2.ReasoningSplit("", split.reasoning_text + split.text)


@fault_hook("stream_reasoning_ignored", H.STREAM_REASONING)
def _stream_reasoning_ignored(value: bool, **_: Any) -> bool:
    return True


@fault_hook("stream_reasoning_think_leak", H.THINK_LEAK_IN_STREAM)
def _think_leak(value: bool, **_: Any) -> bool:
    return True


@fault_hook("reasoning_after_content", H.STREAM_BODY)
def _reasoning_after_content(chunks: list[dict[str, Any]], **_: Any) -> list[dict[str, Any]]:
    def is_reasoning(ev: Mapping[str, Any]) -> bool:
        return any("reasoning_content" in (c.get("delta") or {}) for c in ev.get("choices") or ())

    return [c for c in chunks if not is_reasoning(c)] + [c for c in chunks if is_reasoning(c)]


# ------------------------------------------------------------------------------------------ tool calls


@fault_hook("tool_call_as_text", H.TOOL_PARSING)
def _tool_call_as_text(value: bool, **_: Any) -> bool:
    return False


_TOOL_BLOCK = re.compile(re.escape(lfm2.BOT) + r"(.*?)" + re.escape(lfm2.EOT), re.DOTALL)


@fault_hook("tool_json_form_ignored", H.TOOL_PARSE_INPUT)
def _tool_json_form_ignored(text: str, **_: Any) -> str:
    """JSON-form blocks are not recognised at all."""
    return _TOOL_BLOCK.sub(lambda m: lfm2.BOT + ("[]" if m.group(1).strip().startswith(("{", "[{"))
                                                  else m.group(1)) + lfm2.EOT, text)


@fault_hook("tool_unknown_forwarded", H.TOOL_PARSE)
def _tool_unknown_forwarded(result: lfm2.ToolParse, *, text: str, tools: Sequence[Mapping[str, Any]],
                            dialect: lfm2.Dialect, **_: Any) -> lfm2.ToolParse:
    return lfm2.parse_tool_calls(text, tools, dialect, forward_unknown=True)  # SGLANG_FORWARD_UNKNOWN_TOOLS=1


@fault_hook("tool_parser_drops_nested", H.TOOL_CALLS)
def _drops_nested(calls: list[lfm2.ParsedCall], **_: Any) -> list[lfm2.ParsedCall]:
    keep = []
    for c in calls:
        args = c.arguments
        if not any(isinstance(v, (dict, list)) for v in (args.values() if isinstance(args, dict) else [])):
            keep.append(c)
    return keep


def _map_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    return value


@fault_hook("tool_args_escape_mangled", H.TOOL_CALLS)
def _escape_mangled(calls: list[lfm2.ParsedCall], **_: Any) -> list[lfm2.ParsedCall]:
    return [lfm2.ParsedCall(c.name, json.dumps(_map_strings(c.arguments, lambda s: s.replace("\\", "")),
                                               ensure_ascii=False), c.tool_index) for c in calls]


@fault_hook("tool_args_stringified", H.TOOL_CALLS)
def _stringified(calls: list[lfm2.ParsedCall], **_: Any) -> list[lfm2.ParsedCall]:
    out = []
    for c in calls:
        args = c.arguments
        if isinstance(args, dict):
            args = {k: v if isinstance(v, str) else json.dumps(v) for k, v in args.items()}
        out.append(lfm2.ParsedCall(c.name, json.dumps(args, ensure_ascii=False), c.tool_index))
    return out


@fault_hook("tool_text_markup_leak", H.TOOL_PARSE_RESULT)
def _markup_leak(result: lfm2.ToolParse, *, text: str, **_: Any) -> lfm2.ToolParse:
    if lfm2.BOT in text and not result.calls:
        return lfm2.ToolParse(normal_text=text, calls=result.calls)
    return result


@fault_hook("tool_args_ascii_escaped", H.TOOL_CALL_ARGUMENTS)
def _ascii_escaped(args: str, **_: Any) -> str:
    try:
        return json.dumps(json.loads(args), ensure_ascii=True, sort_keys=True)
    except ValueError:
        return args


@fault_hook("tool_call_bad_id", H.TOOL_CALL_ID)
def _bad_id(call_id: str, **_: Any) -> str:
    return "fn-" + call_id[-8:]


@fault_hook("tool_call_stream_index_zero", H.STREAM_TOOL_INDEX)
def _index_zero(index: int, **_: Any) -> int:
    return 0


@fault_hook("tool_call_finish_stop", H.FINISH_WITH_TOOL_CALLS)
def _finish_stop(finish: str, **_: Any) -> str:
    return "stop"


# ------------------------------------------------------------------------------------------ streaming


@fault_hook("stream_no_role_chunk", H.STREAM_ROLE_CHUNK)
def _no_role_chunk(value: bool, **_: Any) -> bool:
    return False


_CLOSING_TAG = re.compile("(" + re.escape(lfm2.THINK_END) + "|" + re.escape(lfm2.EOT) + ")")


@fault_hook("stream_chunk_tail_dropped", H.STREAM_CHUNK_TEXT)
def _chunk_tail_dropped(piece: str, **_: Any) -> str:
    """Like a detector that handles one marker per increment and drops the rest of the increment. A chunk
    of one token never holds a tag and more (tags are single tokens), so only multi-token chunks lose text."""
    m = _CLOSING_TAG.search(piece)
    return piece if m is None else piece[: m.end()]


@fault_hook("stream_no_done", H.STREAM_DONE)
def _no_done(value: bool, **_: Any) -> bool:
    return False


# ------------------------------------------------------------------------------------------ issue 20 (i20a):
# stop strings while streaming, sampling defaults


@fault_hook("stream_stop_prefix_leak", H.STREAM_TEXT_LIMIT)
def _stop_prefix_leak(limit: int, *, gen: Generation, **_: Any) -> int:
    """A stream releases the text it held back as a possible stop-string prefix once the stop matched: all of
    the matched stop string but its last character reaches the client (non-streamed text is trimmed)."""
    if gen.finish_reason == "stop" and isinstance(gen.matched_stop, str) and len(gen.matched_stop) > 1:
        return limit + len(gen.matched_stop) - 1
    return limit


@fault_hook("sampling_defaults_ignored", H.SAMPLING_DEFAULTS)
def _sampling_defaults_ignored(defaults: dict[str, Any], **_: Any) -> dict[str, Any]:
    return {}  # omitted fields fall through to the OpenAI defaults


@fault_hook("sampling_defaults_undeclared", H.SAMPLING_DEFAULTS)
def _sampling_defaults_undeclared(defaults: dict[str, Any], *, chat: bool, **_: Any) -> dict[str, Any]:
    return {"repetition_penalty": 1.3, **defaults} if chat else defaults  # applied, never reported

# ------------------------------------------------------------------------------------------ completions


@fault_hook("completions_n_ignored", H.COMPLETION_N)
def _n_ignored(value: Any, **_: Any) -> Any:
    return 1


@fault_hook("completions_no_echo", H.ECHO)
def _no_echo(value: bool, **_: Any) -> bool:
    return False


@fault_hook("completions_logprobs_short", H.COMPLETION_LOGPROBS)
def _logprobs_short(lp: dict[str, Any], **_: Any) -> dict[str, Any]:
    return {k: v[:-1] for k, v in lp.items()}


# ------------------------------------------------------------------------------------------ images


@fault_hook("text_only_accepts_image", H.IMAGE_PART_REJECTED)
def _text_only_accepts_image(value: bool, **_: Any) -> bool:
    return False


@fault_hook("bad_media_wedges", H.MEDIA_ERROR)
def _bad_media_wedges(exc: MediaError, *, st: ServerState, **_: Any) -> MediaError:
    st.media_wedged = True
    return exc


@fault_hook("image_decode_narrow", H.IMAGE_DECODED)
def _image_decode_narrow(img: ImageFacts, **_: Any) -> ImageFacts:
    if img.mode != "RGB" or img.orientation != 1 or not 2 <= max(img.width, img.height) <= 1024:
        raise _internal(f"cannot process a {img.mode} image of {img.width}x{img.height} "
                        f"(orientation {img.orientation})")
    return img


@fault_hook("image_history_dropped", H.IMAGE_KEPT)
def _image_history_dropped(keep: bool, *, turn: int, last_user: int, **_: Any) -> bool:
    return keep and turn == last_user


@fault_hook("image_history_dropped", H.IMAGE_PLACEHOLDER_MISMATCH)
def _image_history_placeholders_kept(err: ClientError, **_: Any) -> ClientError | None:
    return None  # the forgotten images' placeholders stay in the prompt as plain tokens, no error


@fault_hook("image_load_oom", H.IMAGES_COLLECTED)
def _image_load_oom(facts: list[ImageFacts], *, st: ServerState, **_: Any) -> list[ImageFacts]:
    if facts and st.image_requests > 24:
        raise _internal("CUDA out of memory while allocating the image features")
    return facts


@fault_hook("image_dropped", H.IMAGES_COLLECTED)
def _image_dropped(facts: list[ImageFacts], **_: Any) -> list[ImageFacts]:
    return []


@fault_hook("image_dropped", H.PROMPT_IDS_NO_IMAGES)
def _image_ids_dropped(ids: list[int], **_: Any) -> list[int]:
    from pytest_lfm.reference.tokenizer import IMAGE_ID

    return [i for i in ids if i != IMAGE_ID]


@fault_hook("image_stale", H.IMAGES_COLLECTED)
def _image_stale(facts: list[ImageFacts], *, st: ServerState, **_: Any) -> list[ImageFacts]:
    if not facts:
        return facts
    with st.lock:
        if st.first_image is None:
            st.first_image = facts[0]
        first = st.first_image
    return [first for _ in facts]


@fault_hook("image_stale", H.FLUSH_FORGETS_FIRST_IMAGE)
def _image_stale_flush(value: bool, **_: Any) -> bool:
    return False


@fault_hook("image_cache_collision", H.IMAGE_CACHE_KEY)
def _image_cache_collision(key: str, *, img: ImageFacts, **_: Any) -> str:
    return f"{img.width}x{img.height}"  # keyed by shape only: same-size images collide


@fault_hook("image_cache_hit_corrupt", H.IMAGE_CACHE_HIT)
def _image_cache_hit_corrupt(hit: ImageFacts, **_: Any) -> ImageFacts:
    wrong = "black" if hit.colour == "gray" else "gray"
    return replace(hit, colour=wrong, left=wrong, right=wrong, text="")


@fault_hook("image_tokens_uncounted", H.IMAGE_TOKENS)
def _image_tokens_uncounted(n: int, **_: Any) -> int:
    return 1


@fault_hook("bad_media_500", H.MEDIA_ERROR_RESPONSE)
def _bad_media_500(err: ClientError, **_: Any) -> ClientError:
    return _internal(err.message)


@fault_hook("mm_attention_default", H.MM_ATTENTION_BACKEND)
def _mm_attention_default(value: str | None, **_: Any) -> str | None:
    return "triton_attn"


# ------------------------------------------------------------------------------------------ issue 20 (i20b):
# media errors and edge input (class 7), forced/parallel tool calls (class 3), chat logprobs (class 4)


@fault_hook("media_no_timeout", H.IMAGE_URL_TIMEOUT)
def _media_no_timeout(value: float, **_: Any) -> float:
    return 60.0


@fault_hook("stream_media_error_500", H.STREAM_MEDIA_ERROR)
def _stream_media_error_500(err: ClientError, **_: Any) -> ClientError:
    return _internal(err.message)


@fault_hook("literal_image_marker_500", H.IMAGE_PLACEHOLDER_MISMATCH)
def _literal_image_marker_500(err: ClientError, *, markers: int, images: int, **_: Any) -> ClientError:
    return _internal(f"number of image tokens ({markers}) does not match the number of images ({images})")


@fault_hook("image_order_lost", H.IMAGES_COLLECTED)
def _image_order_lost(facts: list[ImageFacts], **_: Any) -> list[ImageFacts]:
    return sorted(facts, key=lambda img: img.digest)


@fault_hook("truncated_call_salvaged", H.STREAM_TOOL_TAIL)
def _truncated_call_salvaged_stream(tail: str, *, text: str, **_: Any) -> str:
    closed: str = _truncated_call_salvaged(text)
    return tail + closed[len(text):]


@fault_hook("truncated_call_salvaged", H.TOOL_PARSE_INPUT)
def _truncated_call_salvaged(text: str, **_: Any) -> str:
    start = text.rfind(lfm2.BOT)
    if start < 0 or lfm2.EOT in text[start:]:
        return text
    for closer in ('")]', ")]", '"")]', "None)]", '"})]', "]"):  # close what is open, as a lenient parser might
        candidate = text + closer + lfm2.EOT
        if lfm2.parse_tool_calls(candidate, None, lfm2.Dialect.for_version(None), forward_unknown=True).calls:
            return candidate
    return text


@fault_hook("forced_stream_calls_as_content", H.FORCED_STREAM_PARSE)
def _forced_stream_calls_as_content(value: bool, **_: Any) -> bool:
    return False


@fault_hook("forced_tool_reasoning_dropped", H.FORCED_TOOL_REASONING)
def _forced_tool_reasoning_dropped(reasoning: str | None, **_: Any) -> str | None:
    return None


@fault_hook("n_parsers_first_choice_only", H.CHOICE_PARSERS)
def _n_parsers_first_choice_only(value: bool, *, index: int, **_: Any) -> bool:
    return value and index == 0


@fault_hook("chat_logprobs_short", H.CHAT_LOGPROBS)
def _chat_logprobs_short(lp: dict[str, Any] | None, *, stream: bool, **_: Any) -> dict[str, Any] | None:
    if lp is None or stream:
        return lp
    return {**lp, "content": lp["content"][:-1]}


@fault_hook("chat_logprobs_stream_null", H.CHAT_LOGPROBS)
def _chat_logprobs_stream_null(lp: dict[str, Any] | None, *, stream: bool, **_: Any) -> dict[str, Any] | None:
    return None if stream else lp


@fault_hook("top_logprobs_unsorted", H.CHAT_LOGPROBS)
def _top_logprobs_unsorted(lp: dict[str, Any] | None, **_: Any) -> dict[str, Any] | None:
    if lp is None:
        return lp
    return {**lp, "content": [{**e, "top_logprobs": sorted(e["top_logprobs"], key=lambda t: t["token"])}
                              for e in lp["content"]]}


@fault_hook("chat_logprobs_unnormalised", H.CHAT_LOGPROBS)
def _chat_logprobs_unnormalised(lp: dict[str, Any] | None, **_: Any) -> dict[str, Any] | None:
    if lp is None:
        return lp

    def shift(e: dict[str, Any]) -> dict[str, Any]:
        return {**e, "logprob": e["logprob"] + 1.5 if e.get("logprob") is not None else None}

    return {**lp, "content": [{**shift(e), "top_logprobs": [shift(t) for t in e["top_logprobs"]]}
                              for e in lp["content"]]}


@fault_hook("deterministic_inference_off", H.DETERMINISTIC_INFERENCE)
def _deterministic_inference_off(value: bool, **_: Any) -> bool:
    return False


@fault_hook("deterministic_inference_off", H.SEED)
def _seed_without_determinism(value: Any, **_: Any) -> Any:
    return None


# ------------------------------------------------------------------------------------------ protocol, info, caches
# (the fault modes that close the protocol and vision gaps of the fault tables)


@fault_hook("models_list_checkpoint_path", H.MODELS_LIST)
def _models_list_checkpoint_path(listing: dict[str, Any], **_: Any) -> dict[str, Any]:
    """The list names the checkpoint as a local directory, not the name the server answers to."""
    def local(card: dict[str, Any]) -> dict[str, Any]:
        path = "/models/" + str(card.get("id")).rsplit("/", 1)[-1]
        return {**card, "id": path, "root": path}

    return {**listing, "data": [local(c) for c in listing.get("data", [])]}


@fault_hook("unknown_model_flat_404", H.MODEL_NOT_FOUND)
def _unknown_model_flat_404(answer: tuple[int, Any], **_: Any) -> tuple[int, Any]:
    return 404, {"detail": "Not Found"}  # what FastAPI answers for a path no route serves


@fault_hook("server_info_no_version", H.INFO)
def _server_info_no_version(info: dict[str, Any], **_: Any) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k != "version"}


@fault_hook("recipe_parsers_missing", H.INFO)
def _recipe_parsers_missing_info(info: dict[str, Any], **_: Any) -> dict[str, Any]:
    return {**info, "tool_call_parser": None, "reasoning_parser": None}


@fault_hook("recipe_parsers_missing", H.TOOL_PARSING)
def _recipe_parsers_missing_tools(value: bool, **_: Any) -> bool:
    return False


@fault_hook("recipe_parsers_missing", H.REASONING_PARSER)
def _recipe_parsers_missing_reasoning(parser: str | None, **_: Any) -> str | None:
    return None


@fault_hook("stream_first_token_dropped", H.STREAM_BODY)
def _stream_first_token_dropped(chunks: list[dict[str, Any]], **_: Any) -> list[dict[str, Any]]:
    def has_text(ev: Mapping[str, Any]) -> bool:
        return any((c.get("delta") or {}).get("content") or (c.get("delta") or {}).get("reasoning_content")
                   for c in ev.get("choices") or ())

    first = next((i for i, ev in enumerate(chunks) if has_text(ev)), None)
    return chunks if first is None else chunks[:first] + chunks[first + 1:]


@fault_hook("created_float", H.CREATED)
def _created_float(created: int, **_: Any) -> Any:
    import time

    return time.time()


_PREFIX_CACHE = "prefix_cache_hit_stale_state"


@fault_hook("prefix_cache_hit_stale_state", H.PREFIX_CACHE)
def _prefix_cache_stale(plan: list[Any], *, st: ServerState, ids: Sequence[int], **_: Any) -> list[Any]:
    """A prompt seen before (a prefix-cache hit) resumes from a stale convolution state: the continuation
    shifts by one planned token after the first few. A miss (first sight, or after /flush_cache) is correct."""
    key = hash(tuple(ids))
    with st.lock:
        seen: set[int] = st.fault_scratch.setdefault(_PREFIX_CACHE, set())
        hit = key in seen
        seen.add(key)
    if not hit or not plan:
        return plan
    keep = min(4, len(plan) - 1)
    return plan[:keep] + plan[keep + 1:]


@fault_hook("prefix_cache_hit_stale_state", H.FLUSH_CACHE)
def _prefix_cache_flush(value: None, *, st: ServerState, **_: Any) -> None:
    with st.lock:
        st.fault_scratch.pop(_PREFIX_CACHE, None)
    return value


@fault_hook("webp_refused", H.IMAGE_BYTES)
def _webp_refused(data: bytes, **_: Any) -> bytes:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        raise MediaError("cannot identify image file <_io.BytesIO object>")
    return data


@fault_hook("skip_special_tokens_ignored", H.SAMPLING_PARAMS)
def _skip_special_tokens_ignored(p: SamplingParams, **_: Any) -> SamplingParams:
    return replace(p, skip_special_tokens=True)  # chat's tool parsing turns it off again after this point


@fault_hook("length_finish_stop", H.COMPLETION_FINISH_REASON)
def _length_finish_stop(finish: str | None, **_: Any) -> str | None:
    return "stop" if finish == "length" else finish


@fault_hook("regex_ignored", H.REGEX_TEXT)
def _regex_ignored(text: str | None, **_: Any) -> str | None:
    return None
