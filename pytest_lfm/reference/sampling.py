"""Sampling parameters and request-field validation (SGLang's ``to_sampling_params``, §3-§4)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pytest_lfm.reference import hooks as H
from pytest_lfm.reference.model import SamplingParams
from pytest_lfm.reference.state import ServerState
from pytest_lfm.reference.validation import ClientError, verify_sampling

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


# the fields a server's generation-config defaults cover (§3.1: user value > generation_config > OpenAI)
DEFAULTABLE = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")


def validating(st: ServerState) -> bool:
    """Whether range and context checks run."""
    return st.hooks(H.VALIDATE, True)


def sampling_from_request(body: Mapping[str, Any], *, chat: bool, st: ServerState) -> SamplingParams:
    """SGLang's ``to_sampling_params``: user value > the server's declared defaults (``--sampling-defaults``,
    as a checkpoint's generation_config; chat only, §3.2) > OpenAI defaults."""
    st.hooks(H.REQUEST_FIELDS, body)
    declared = st.hooks(H.SAMPLING_DEFAULTS, dict(st.sampling_defaults or {}) if chat else {}, chat=chat)
    body = {**{k: v for k, v in declared.items() if k in DEFAULTABLE}, **{k: v for k, v in body.items() if v is not None}}
    if chat:
        max_new = opt_int(body.get("max_completion_tokens"), "max_completion_tokens") or \
            opt_int(body.get("max_tokens"), "max_tokens")
    else:
        max_new = opt_int(body.get("max_tokens", st.hooks(H.COMPLETION_DEFAULT_MAX_TOKENS, 16)), "max_tokens")
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
    if validating(st):
        try:
            verify_sampling(raw, st.version)
        except ClientError as exc:
            raise st.hooks(H.SAMPLING_ERROR, exc) from exc
        # completions check prompt + max_tokens against the context later (completion_response)
        if chat and isinstance(max_new, int) and max_new > st.context:
            raise ClientError(
                f"max_completion_tokens is too large: {max_new}.This model supports at most {st.context} "
                "completion tokens.")
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in (stop or []) if isinstance(s, str)]
    temperature = max(0.0, raw["temperature"]) if raw["temperature"] == raw["temperature"] else 1.0
    params = SamplingParams(
        temperature=temperature,
        top_p=raw["top_p"] if 0 < raw["top_p"] <= 1 else 1.0,
        top_k=raw["top_k"] if raw["top_k"] >= 1 else -1,
        min_p=raw["min_p"] if 0 <= raw["min_p"] <= 1 else 0.0,
        repetition_penalty=raw["repetition_penalty"] if 0 < raw["repetition_penalty"] <= 2 else 1.0,
        frequency_penalty=raw["frequency_penalty"],
        presence_penalty=raw["presence_penalty"],
        max_new_tokens=max(0, max_new) if isinstance(max_new, int) else None,
        min_new_tokens=max(0, raw["min_new_tokens"]),
        stop=stops,
        stop_token_ids=[int(i) for i in body.get("stop_token_ids") or [] if isinstance(i, int)],
        ignore_eos=bool(body.get("ignore_eos", False)),
        no_stop_trim=bool(body.get("no_stop_trim", False)),
        skip_special_tokens=bool(body.get("skip_special_tokens", True)),
        seed=_seed(st.hooks(H.SEED, body.get("seed"))),
    )
    return st.hooks(H.SAMPLING_PARAMS, params)


def opt_int(v: Any, name: str) -> int | None:
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
    n = opt_int(body.get("n"), "n")
    if n is None:
        return 1
    if n == 0:
        raise ClientError("range() arg 3 must not be zero", type_="BadRequest")
    if n < 0:
        raise ClientError(f"n must be at least 1, got {n}", type_="BadRequest")
    return n


def with_seed(params: SamplingParams, i: int) -> SamplingParams:
    """Choice ``i`` of ``n``: the request's seed plus ``i``."""
    return replace(params, seed=None if params.seed is None else params.seed + i)


def usage(prompt: int, completion: int, reasoning: int, st: ServerState) -> dict[str, Any]:
    """The ``usage`` object of a response."""
    out = {"prompt_tokens": prompt, "total_tokens": prompt + completion, "completion_tokens": completion,
           "prompt_tokens_details": None, "reasoning_tokens": reasoning}
    return st.hooks(H.USAGE, out)


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
