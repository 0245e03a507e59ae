"""``/v1/completions`` (non-streaming; the streaming form is in :mod:`.streaming`), §3.2."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_lfm.reference import hooks as H
from pytest_lfm.reference import tokenizer as tok
from pytest_lfm.reference.chat import forced_text, run_generation
from pytest_lfm.reference.model import Generation, prompt_logprob, prompt_top_logprobs
from pytest_lfm.reference.planner import ChatPlanInput, Segment, plan_chat, plan_completion, to_tokens
from pytest_lfm.reference.sampling import (
    opt_int,
    request_n,
    sampling_from_request,
    usage,
    validating,
    with_seed,
)
from pytest_lfm.reference.state import ServerState
from pytest_lfm.reference.validation import ClientError


def prompts_of(body: Mapping[str, Any]) -> list[list[int] | str]:
    """The ``prompt`` field as a list of prompts (strings or token id lists)."""
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


def completion_response(body: Mapping[str, Any], st: ServerState,
                        generations: list[Generation] | None = None) -> dict[str, Any]:
    """A non-streaming ``/v1/completions`` response (``generations`` collects each choice's generation)."""
    prompts = prompts_of(body)
    mt = opt_int(body.get("max_tokens", 16), "max_tokens")
    if mt is not None and mt <= 0 and validating(st):
        raise ClientError("max_tokens must be positive", type_="Bad Request")
    n = request_n({"n": st.hooks(H.COMPLETION_N, body.get("n"))})
    lp = opt_int(body.get("logprobs"), "logprobs")
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
        if params.max_new_tokens and len(ids) + params.max_new_tokens > st.context and validating(st):
            raise ClientError(
                f"Requested token count exceeds the model's maximum context length of {st.context} tokens. You "
                f"requested a total of {len(ids) + params.max_new_tokens} tokens: {len(ids)} tokens from the input "
                f"messages and {params.max_new_tokens} tokens for the completion. Please reduce the number of "
                "tokens in the input messages or the completion to fit within the limit."
            )
        plan = to_tokens(completion_plan(text, body, st))
        prompt_total += len(ids)
        for i in range(n):
            p = with_seed(params, i)
            p.logprobs = lp is not None
            p.top_logprobs = max(0, lp or 0)
            gen = run_generation(ids, plan, p, st)
            completion_total += len(gen.ids)
            if generations is not None:
                generations.append(gen)
            out_text = gen.text
            echo = st.hooks(H.ECHO, bool(body.get("echo")))
            if echo:
                out_text = text + out_text
            logprobs = None
            if p.logprobs:
                logprobs = st.hooks(H.COMPLETION_LOGPROBS, completion_logprobs(gen, ids if echo else [],
                                                                               p.top_logprobs))
            choices.append({"index": len(choices), "text": out_text, "logprobs": logprobs,
                            "finish_reason": st.hooks(H.COMPLETION_FINISH_REASON, gen.finish_reason),
                            "matched_stop": gen.matched_stop})
    return {"id": uuid.uuid4().hex, "object": "text_completion", "created": int(time.time()),
            "model": body.get("model") or "default", "choices": choices,
            "usage": usage(prompt_total, completion_total, 0, st), "metadata": {"weight_version": "default"}}


def completion_logprobs(gen: Generation, echo_ids: Sequence[int], top: int) -> dict[str, Any]:
    """The completions ``logprobs`` object (echoed prompt tokens first)."""
    tokens = [tok.token_text(i) for i in echo_ids] + [tok.token_text(i) for i in gen.ids[: gen.text_token_count]]
    n_gen = gen.text_token_count
    # echo: prompt tokens get logprobs too, except the first (recorded 0.5.17, comp_echo_logprobs)
    token_logprobs: list[float | None] = [None if j == 0 else prompt_logprob(t) for j, t in enumerate(echo_ids)]
    token_logprobs += gen.logprobs[:n_gen]
    tops: list[dict[str, float] | None] = [
        None if j == 0 or not top else {tok.token_text(t): lp for t, lp in prompt_top_logprobs(top)}
        for j in range(len(echo_ids))]
    for j in range(n_gen):
        entries = gen.top_logprobs[j] if j < len(gen.top_logprobs) else []
        tops.append({tok.token_text(t): lp for t, lp in entries} if top else None)
    return {"text_offset": [-1] * len(tokens), "token_logprobs": token_logprobs, "tokens": tokens,
            "top_logprobs": tops}


_TURN = re.compile(r"<\|im_start\|>(system|user|assistant|tool)\n(.*?)<\|im_end\|>\n", re.DOTALL)
_GENERATION_PROMPT = "<|im_start|>assistant\n"


def chatml_messages(text: str) -> list[dict[str, Any]] | None:
    """The messages of a raw prompt that is a rendered LFM2.5 conversation ending in the generation prompt
    (text turns only), or None."""
    body = text.removeprefix("<|startoftext|>")
    if not body.endswith(_GENERATION_PROMPT):
        return None
    body = body[: -len(_GENERATION_PROMPT)]
    messages, pos = [], 0
    for m in _TURN.finditer(body):
        if m.start() != pos:
            return None
        messages.append({"role": m.group(1), "content": m.group(2)})
        pos = m.end()
    return messages if messages and pos == len(body) else None


def completion_plan(text: str, body: Mapping[str, Any], st: ServerState) -> list[Segment]:
    """The planned continuation of a raw prompt. A prompt that is a rendered conversation is answered as the
    chat endpoint answers it (the same model sees the same tokens); anything else continues the text."""
    messages = chatml_messages(text)
    regex_text = st.hooks(H.REGEX_TEXT, forced_text(body))
    if messages is None:
        return plan_completion(text, regex_text)
    return plan_chat(ChatPlanInput(messages=messages, tools=[], tool_choice="none", parallel_tool_calls=True,
                                   thinking=st.variant.reasoning_parser == "qwen3-thinking", images=[],
                                   regex_text=regex_text))

