"""The serving layer of the reference server: SGLang's chat and completion semantics, by surface.

Request → validation (§4) → prompt (chat template, image tokens) → plan → sampler → reasoning parser
(§2) → tool-call parser (§1, §5) → response or SSE events. The code lives in one module per surface;
this module re-exports the entry points the app and older callers use:

==========================  ==========================================================
:mod:`.state`               ``ServerState`` (configuration, caches, decode slots)
:mod:`.parsers`             the ``ParserBackend`` Protocol and the project's parsers
:mod:`.sampling`            sampling parameters and request-field validation
:mod:`.images`              image parts, the multimodal cache, media errors
:mod:`.chat`                ``/v1/chat/completions`` (non-streaming) and shared chat logic
:mod:`.streaming`           SSE events of chat and completions
:mod:`.completions`         ``/v1/completions``
:mod:`.endpoints`           ``/parse_function_call``, ``/separate_reasoning``, ``/v1/tokenize``
:mod:`.info`                ``/server_info``, ``/model_info``, ``/v1/models``
:mod:`.hooks`               the fault hook points; :mod:`.fault_hooks` what each fault does there
==========================  ==========================================================
"""

from __future__ import annotations

from pytest_lfm.reference.chat import ChatOutcome, chat_response, finish_chat, prepare_chat
from pytest_lfm.reference.completions import completion_response
from pytest_lfm.reference.endpoints import parse_function_call, separate_reasoning, tokenize
from pytest_lfm.reference.images import flush_cache, media_error
from pytest_lfm.reference.info import model_info, models_list, server_info
from pytest_lfm.reference.parsers import ParserBackend, ProjectParsers
from pytest_lfm.reference.sampling import KNOWN_FIELDS, request_n, sampling_from_request
from pytest_lfm.reference.state import ServerState
from pytest_lfm.reference.streaming import chat_stream, completion_stream

__all__ = [
    "KNOWN_FIELDS", "ChatOutcome", "ParserBackend", "ProjectParsers", "ServerState", "chat_response",
    "chat_stream", "completion_response", "completion_stream", "finish_chat", "flush_cache", "media_error",
    "model_info", "models_list", "parse_function_call", "prepare_chat", "request_n", "sampling_from_request",
    "separate_reasoning", "server_info", "tokenize",
]
