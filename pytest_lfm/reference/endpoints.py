"""SGLang's parser endpoints (``/parse_function_call``, ``/separate_reasoning``) and ``/v1/tokenize``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_lfm import lfm2
from pytest_lfm.reference import hooks as H
from pytest_lfm.reference import tokenizer as tok
from pytest_lfm.reference.chat import check_messages, check_tools, lfm2_parse
from pytest_lfm.reference.state import ServerState
from pytest_lfm.reference.template import render_chat
from pytest_lfm.reference.validation import ClientError


def parse_function_call(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """``POST /parse_function_call``."""
    text = body.get("text")
    if not isinstance(text, str):
        raise ClientError("text: Field required", type_="Bad Request")
    parser = body.get("tool_call_parser")
    st.parsers.check_tool_call_parser(parser)
    tools = body.get("tools") or []
    if not st.hooks(H.TOOL_PARSING, True):
        return {"normal_text": text, "calls": []}
    if tools and parser == "lfm2":
        result = lfm2_parse(text, tools, st)
    else:
        result = st.parsers.parse_function_call(text, tools, parser, st.dialect)
    out = [{"tool_index": c.tool_index, "name": c.name, "parameters": st.hooks(H.TOOL_CALL_ARGUMENTS, c.parameters)}
           for c in result.calls]
    return {"normal_text": result.normal_text, "calls": out}


def separate_reasoning(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """``POST /separate_reasoning`` (no serving-layer forcing for ``qwen3``)."""
    text = body.get("text")
    if not isinstance(text, str):
        raise ClientError("text: Field required", type_="Bad Request")
    st.parsers.check_reasoning_parser(body.get("reasoning_parser"))
    parser = st.hooks(H.ENDPOINT_REASONING_PARSER, str(body.get("reasoning_parser")))
    if st.hooks.active_at(H.ENDPOINT_REASONING):  # a faulty split (the project's parser, no blocks)
        split = st.hooks(H.ENDPOINT_REASONING, lfm2.split_reasoning(text, parser, dialect=st.dialect), text=text,
                         parser=parser, dialect=st.dialect)
        return {"reasoning_text": split.reasoning_text, "text": split.text}
    return dict(st.parsers.separate_reasoning(text, parser, bool(body.get("return_blocks"))))


def tokenize(body: Mapping[str, Any], st: ServerState) -> dict[str, Any]:
    """``POST /v1/tokenize``: a prompt or chat messages (with tools) to token ids."""
    if "messages" in body:
        messages = check_messages(body.get("messages"))
        tools, choice = check_tools(body)
        rendered = tools if tools and choice != "none" else None
        text = render_chat(messages, rendered, add_generation_prompt=body.get("add_generation_prompt", True) is not False)
        ids = tok.encode(text)
    else:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise ClientError("prompt or messages is required", type_="Bad Request")
        ids = ([tok.BOS_ID] + tok.encode(prompt)) if body.get("add_special_tokens", True) else tok.encode(prompt)
    return {"tokens": ids, "count": len(ids), "max_model_len": st.context}
