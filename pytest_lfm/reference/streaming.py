"""Streaming (SSE) responses of ``/v1/chat/completions`` and ``/v1/completions`` (§5).

A generation's tokens are decoded into chunks of ``--stream-interval`` tokens; each chunk goes through
the streaming reasoning parser, then the streaming tool-call parser, as SGLang's serving layer does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from pytest_lfm import lfm2
from pytest_lfm.reference import hooks as H
from pytest_lfm.reference import tokenizer as tok
from pytest_lfm.reference.chat import (
    ChatContext,
    chat_logprobs,
    choice_context,
    choice_params,
    count_reasoning_tokens,
    finish_with_calls,
    format_calls,
    parse_json_array_calls,
    prepare_chat,
    reasoning_mode,
    run_generation,
    tool_parsing,
)
from pytest_lfm.reference.completions import completion_response
from pytest_lfm.reference.model import Generation
from pytest_lfm.reference.sampling import request_n, usage
from pytest_lfm.reference.state import ServerState

Event = dict[str, Any] | str


def params_skip(body: Mapping[str, Any], ctx: ChatContext) -> bool:
    """skip_special_tokens as SGLang decides it (forced False while tool parsing is active)."""
    return False if ctx.parsing else bool(body.get("skip_special_tokens", True))


# Stream shapes of real SGLang, recorded from 0.5.17 and read from every release's code (0.5.10-0.5.23): chat
# chunks are built by sse_utils.build_sse_content from 0.5.13.post1 on, whose StreamDelta always serialises
# reasoning_content (null in the role and finish chunks); the tool parser's chunks and every completions chunk
# are pydantic model_dump_json() dumps (every delta field and a top-level usage, as null); the final usage
# chunk of /v1/completions is dumped with exclude_none (no prompt_tokens_details while it is None). Releases
# before 0.5.13.post1 dump every chat chunk with pydantic (more nulls); the emulation does not model that.
NULL_REASONING: dict[str, Any] = {"reasoning_content": None}


def text_chunks(gen: Generation, skip_special_tokens: bool, interval: int,
                limit: int | None = None) -> list[tuple[str, int, int]]:
    """(text, first token, end token) of each stream chunk: ``interval`` tokens per chunk, chunks without
    text dropped, the text cut where the generation's (stop-trimmed) text ends (``limit`` characters of the
    decoded tokens instead, when given: the stop-string fault class)."""
    limit = len(gen.text) if limit is None else limit
    decoder = tok.IncrementalDecoder(skip_special_tokens)
    out: list[tuple[str, int, int]] = []
    step = max(1, interval)
    for start in range(0, len(gen.ids), step):
        end = min(start + step, len(gen.ids))
        piece = "".join(decoder.push(t) for t in gen.ids[start:end])
        if piece:
            out.append((piece, start, end))
    tail = decoder.flush()
    if tail:
        out.append((tail, len(gen.ids), len(gen.ids)))
    limited, emitted = [], 0
    for piece, start, end in out:
        if emitted >= limit:
            break
        piece = piece[: limit - emitted]
        emitted += len(piece)
        limited.append((piece, start, end))
    return limited


def chat_stream(body: Mapping[str, Any], st: ServerState) -> Iterator[Event]:
    """Chunks of a streaming chat completion (validation happens before the first chunk). With ``n`` > 1
    the choices' chunks are interleaved, as a server decoding them in one batch sends them."""
    ids, plan, params, ctx = prepare_chat(body, st)
    n = request_n(body)
    gens = [run_generation(ids, plan, choice_params(params, body, i), st) for i in range(n)]
    return iter(list(_chat_events(gens, ids, body, ctx, st)))


def _chat_events(gens: Sequence[Generation], ids: list[int], body: Mapping[str, Any], ctx: ChatContext,
                 st: ServerState) -> Iterator[Event]:
    rid, created, model = uuid.uuid4().hex, st.hooks(H.CREATED, int(time.time())), body.get("model") or "default"

    def chunker(index: int) -> Chunker:
        def chunk(delta: dict[str, Any], finish: str | None = None, matched: Any = None,
                  logprobs: Any = None) -> dict[str, Any]:
            return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish,
                                 "matched_stop": matched}]}
        return chunk

    heads: list[dict[str, Any]] = []
    bodies: list[list[dict[str, Any]]] = []
    tails: list[dict[str, Any]] = []
    for i, gen in enumerate(gens):
        chunk = chunker(i)
        if st.hooks(H.STREAM_ROLE_CHUNK, True):
            heads.append(chunk({"role": "assistant", "content": "", **NULL_REASONING}))
        body_chunks, any_calls, leftover = _choice_body(gen, *choice_context(body, ctx, st, i), st, chunk)
        bodies.append(st.hooks(H.STREAM_BODY, body_chunks))
        finish, matched = finish_with_calls(gen.finish_reason, gen.matched_stop, any_calls, st)
        tails.append(chunk(dict(NULL_REASONING), finish, matched,
                           st.hooks(H.CHAT_LOGPROBS, leftover, stream=True)))
    yield from heads
    for k in range(max((len(b) for b in bodies), default=0)):
        for b in bodies:
            if k < len(b):
                yield b[k]
    yield from tails
    so = body.get("stream_options") or {}
    if isinstance(so, Mapping) and so.get("include_usage"):
        reasoning = sum(count_reasoning_tokens(g.text, len(g.ids), body, st) for g in gens)
        yield {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [],
               "usage": usage(len(ids), sum(len(g.ids) for g in gens), reasoning, st)}
    if st.hooks(H.STREAM_DONE, True):
        yield "[DONE]"


class Chunker(Protocol):
    """Builds one chunk of a choice."""

    def __call__(self, delta: dict[str, Any], finish: str | None = None, matched: Any = None,
                 logprobs: Any = None) -> dict[str, Any]:
        """The chunk."""


def _choice_body(gen: Generation, body: Mapping[str, Any], ctx: ChatContext, st: ServerState,
                 chunk: Chunker) -> tuple[list[dict[str, Any]], bool, dict[str, Any] | None]:
    """The token chunks of one choice (between the role chunk and the finish chunk), whether any tool call
    was streamed, and the logprobs of tokens no chunk carried (for the finish chunk; None when not
    requested or none are left).

    With ``logprobs`` requested each chunk carries the entries of the tokens it was decoded from (tokens
    whose text a parser held back ride on the next chunk), so the stream's entries are the non-streamed
    response's, in order."""
    out: list[dict[str, Any]] = []
    want_logprobs = bool(body.get("logprobs"))
    rname, rforce = reasoning_mode(body, st)
    rparser = None
    if rname:
        rparser = st.parsers.streaming_reasoning(
            rname, force=rforce,
            stream_reasoning=st.hooks(H.STREAM_REASONING, body.get("stream_reasoning", True) is not False),
            leak_think_start=st.hooks(H.THINK_LEAK_IN_STREAM, lfm2.think_leak_in_stream(st.version)))
    scratch: dict[str, Any] = {}  # per-stream state of fault hooks
    json_path = ctx.json_path
    tparser = None
    if tool_parsing(ctx, st) and not json_path:
        tparser = st.parsers.streaming_tools(ctx.tools, st.dialect)
    content_buffer = ""
    calls_sent = 0
    logprobs_from, decoded_to = 0, 0

    def emit(delta: dict[str, Any], parser_chunk: bool = False) -> None:
        nonlocal logprobs_from
        lp = None
        if want_logprobs and decoded_to > logprobs_from:
            lp = st.hooks(H.CHAT_LOGPROBS, chat_logprobs(gen, logprobs_from, decoded_to), stream=True)
            logprobs_from = decoded_to
        ev = chunk(delta, logprobs=lp)
        if parser_chunk:
            # SGLang dumps the tool parser's chunks whole: every delta field and a top-level usage, as null
            ev["choices"][0]["delta"] = {"role": None, "content": None, "reasoning_content": None, "tool_calls": None,
                                         **delta}
            ev["usage"] = None
        out.append(ev)

    def send_calls(calls: list[dict[str, Any]]) -> None:
        nonlocal calls_sent
        if not ctx.parallel:  # parallel_tool_calls=false: the first call only
            calls = calls[: max(0, 1 - calls_sent)]
        if calls:
            calls_sent += len(calls)
            emit({"tool_calls": calls}, parser_chunk=tparser is not None)

    def content_events(text: str, calls: Sequence[lfm2.ParsedCall]) -> None:
        if text:
            emit({"content": text}, parser_chunk=True)
        if calls:
            send_calls(format_calls(st.hooks(H.TOOL_CALLS, list(calls)), st, stream=True))

    def content(c_delta: str) -> None:
        nonlocal content_buffer
        if json_path:
            content_buffer += c_delta
        elif tparser:
            content_events(*tparser.feed(c_delta))
        else:
            emit({"content": c_delta})

    for piece, _start, end in text_chunks(gen, params_skip(body, ctx), st.stream_interval,
                                            st.hooks(H.STREAM_TEXT_LIMIT, len(gen.text), gen=gen)):
        decoded_to = end
        piece = st.hooks(H.STREAM_CHUNK_TEXT, piece)
        r_delta, c_delta = (rparser.feed(piece) if rparser else ("", piece))
        if r_delta and rparser:
            r_delta = st.hooks(H.STREAM_REASONING_DELTA, r_delta, in_reasoning=rparser.in_reasoning, scratch=scratch)
        if r_delta:
            emit({"reasoning_content": r_delta})
        if c_delta:
            content(c_delta)
    decoded_to = len(gen.ids)
    if rparser:
        r_delta, c_delta = st.hooks(H.STREAM_REASONING_END, rparser.finish(), scratch=scratch)
        if r_delta:
            emit({"reasoning_content": r_delta})
        if c_delta:
            content(c_delta)
    if tparser:
        tail = st.hooks(H.STREAM_TOOL_TAIL, "", text=gen.text)
        if tail:
            content_events(*tparser.feed(tail))
        content_events(*tparser.finish())
    if json_path:
        parsed = parse_json_array_calls(content_buffer, ctx.tools)
        if parsed is not None and st.hooks(H.FORCED_STREAM_PARSE, True):
            for n, call in enumerate(format_calls(parsed, st, stream=True)):
                call["index"] = st.hooks(H.STREAM_TOOL_INDEX, n)
                send_calls([call])
        elif content_buffer:
            emit({"content": content_buffer})
    leftover = chat_logprobs(gen, logprobs_from, len(gen.ids)) if want_logprobs and logprobs_from < len(gen.ids) \
        else None
    return out, calls_sent > 0, leftover


# ------------------------------------------------------------------------------------------ completions


def completion_stream(body: Mapping[str, Any], st: ServerState) -> Iterator[Event]:
    """Chunks of a streaming completion: ``--stream-interval`` tokens per chunk, with the chunk's logprobs
    when requested (an echoed prompt comes first, as its own chunk)."""
    gens: list[Generation] = []
    resp = completion_response({**body, "stream": False}, st, generations=gens)
    return iter(list(_completion_events(resp, gens, body, st)))


def _completion_events(resp: dict[str, Any], gens: Sequence[Generation], body: Mapping[str, Any],
                       st: ServerState) -> Iterator[Event]:
    head: dict[str, Any] = {"id": resp["id"], "object": "text_completion", "created": resp["created"],
                            "model": resp["model"]}
    tail = {"usage": None}

    def event(index: int, text: str, logprobs: Any, finish: Any = None, matched: Any = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish,
                                     "matched_stop": matched}], **tail}

    for choice, gen in zip(resp["choices"], gens, strict=True):
        lp = choice["logprobs"]
        n_echo = len(lp["tokens"]) - gen.text_token_count if lp else 0
        text = choice["text"]
        echo_text = text[: len(text) - len(gen.text)]
        if echo_text:
            yield event(choice["index"], echo_text, _lp_slice(lp, 0, n_echo))
        for piece, start, end in text_chunks(gen, bool(body.get("skip_special_tokens", True)), st.stream_interval,
                                                st.hooks(H.STREAM_TEXT_LIMIT, len(gen.text), gen=gen)):
            end = min(end, gen.text_token_count)
            yield event(choice["index"], piece, _lp_slice(lp, n_echo + min(start, end), n_echo + end))
        yield event(choice["index"], "", None, choice["finish_reason"], choice["matched_stop"])
    so = body.get("stream_options") or {}
    if isinstance(so, Mapping) and so.get("include_usage"):
        use = dict(resp["usage"])
        use.pop("prompt_tokens_details", None)
        yield {**head, "choices": [], "usage": use}
    if st.hooks(H.STREAM_DONE, True):
        yield "[DONE]"


def _lp_slice(lp: dict[str, Any] | None, start: int, end: int) -> dict[str, Any] | None:
    """Entries ``start:end`` of a completions logprobs object (None when not requested)."""
    if lp is None:
        return None
    return {k: v[start:end] for k, v in lp.items()}
