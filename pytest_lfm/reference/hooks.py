"""Fault hooks: each fault mode of :mod:`.faults` is a set of functions registered at named points.

The serving code calls ``st.hooks(POINT, value, **context)`` at a fixed set of points (the constants
below); each active fault registered there transforms ``value`` in turn (in registration order) and may
raise a :class:`~pytest_lfm.reference.validation.ClientError`. With no fault active every point is the
identity, so the correct server's code path never mentions a fault by name. The hooks themselves live in
:mod:`.fault_hooks`, grouped by surface.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pytest_lfm.reference.faults import FAULTS, Faults

T = TypeVar("T")
Hook = Callable[..., Any]

# ---- hook points: name → what the value is (what a hook may return instead)
# requests and sampling
REQUEST_FIELDS = "request.fields"  # the request body (hooks may raise)
VALIDATE = "request.validate"  # bool: whether range/context validation runs
SAMPLING_ERROR = "sampling.error"  # the ClientError a sampling range check raised
SEED = "sampling.seed"  # the raw ``seed`` field before parsing
COMPLETION_DEFAULT_MAX_TOKENS = "completions.default_max_tokens"  # int (16)
SAMPLING_DEFAULTS = "sampling.defaults"  # the declared defaults a request's omitted fields take (context: chat)
SAMPLING_PARAMS = "sampling.params"  # the SamplingParams built from the request
USAGE = "response.usage"  # the usage dict
CLIENT_ERROR = "response.client_error"  # a ClientError about to be answered
# chat request → prompt
CHAT_REQUEST = "chat.request"  # the body, after message/tool validation (hooks may raise)
TOOL_CHOICE = "chat.tool_choice"  # the tool_choice in effect (context: tools)
CHAT_MESSAGES = "chat.messages"  # the normalised message list before rendering
CHAT_IMAGES_AND_TOOLS = "chat.images_and_tools"  # the decoded images (context: tools; hooks may raise)
PARALLEL_TOOL_CALLS = "chat.parallel_tool_calls"  # bool
THINKING = "chat.thinking"  # bool: whether the model thinks / qwen3 is forced (a parser is configured)
# reasoning
REASONING_PARSER = "reasoning.parser"  # the chat path's reasoning parser name or None
SEPARATE_REASONING_REQUESTED = "reasoning.separate_requested"  # bool: separate_reasoning of the request
REASONING_MODE = "reasoning.mode"  # (parser, forced) for a chat request with a parser
REASONING_TOKENS = "reasoning.tokens"  # int (context: completion_tokens)
CHAT_REASONING_SPLIT = "reasoning.chat_split"  # ReasoningSplit of a chat answer (context: text, parser, force)
ENDPOINT_REASONING_PARSER = "reasoning.endpoint_parser"  # /separate_reasoning's parser name
ENDPOINT_REASONING = "reasoning.endpoint_split"  # /separate_reasoning's ReasoningSplit (context: text, parser)
STREAM_REASONING = "reasoning.stream_reasoning"  # bool: stream_reasoning of the request
THINK_LEAK_IN_STREAM = "reasoning.think_leak_in_stream"  # bool: the one stream_reasoning=false delta keeps <think>
STREAM_REASONING_DELTA = "reasoning.stream_delta"  # a reasoning delta (context: in_reasoning, scratch)
STREAM_REASONING_END = "reasoning.stream_end"  # (reasoning, content) at the end (context: scratch)
# tool calls
TOOL_PARSING = "tools.parsing"  # bool: whether the tool-call parser runs at all
TOOL_PARSE_INPUT = "tools.parse_input"  # the text handed to the lfm2 parser
TOOL_PARSE = "tools.parse"  # the ToolParse result (context: text, tools, dialect)
TOOL_CALLS = "tools.calls"  # the list of ParsedCall
TOOL_PARSE_RESULT = "tools.parse_result"  # the ToolParse after call faults (context: text)
TOOL_CALL_ARGUMENTS = "tools.arguments"  # the JSON arguments string of one call
TOOL_CALL_ID = "tools.id"  # a tool call id
STREAM_TOOL_INDEX = "tools.stream_index"  # the index of a streamed call
FINISH_WITH_TOOL_CALLS = "tools.finish_reason"  # "tool_calls" (the finish_reason when calls came back)
# streaming
STREAM_ROLE_CHUNK = "stream.role_chunk"  # bool: whether the first chunk carries the role
STREAM_CHUNK_TEXT = "stream.chunk_text"  # the decoded text of one stream chunk (before the parsers)
STREAM_BODY = "stream.body"  # list of token chunks before the finish chunk
STREAM_TEXT_LIMIT = "stream.text_limit"  # int: characters of a generation a stream may send (context: gen)
STREAM_DONE = "stream.done"  # bool: whether ``data: [DONE]`` ends the stream
# completions
COMPLETION_N = "completions.n"  # the raw ``n`` field
ECHO = "completions.echo"  # bool: echo of the request
COMPLETION_LOGPROBS = "completions.logprobs"  # the logprobs dict of one choice
# images
IMAGE_PART_REJECTED = "images.part_rejected"  # bool: an image part to a text-only variant is a 400
MEDIA_ERROR = "images.media_error"  # the MediaError of a URL that did not load (context: st)
IMAGE_DECODED = "images.decoded"  # ImageFacts of one decoded image (hooks may raise)
IMAGE_KEPT = "images.kept"  # bool: whether an image of turn ``turn`` is kept (context: turn, last_user)
IMAGES_COLLECTED = "images.collected"  # the list of ImageFacts of a request (context: st)
IMAGE_CACHE_KEY = "images.cache_key"  # the cache key of an image (context: img)
IMAGE_CACHE_HIT = "images.cache_hit"  # the cached ImageFacts served on a hit
PROMPT_IDS_NO_IMAGES = "images.prompt_ids_no_images"  # prompt ids of a request without decoded images
IMAGE_TOKENS = "images.tokens"  # int: prompt tokens of one image
MEDIA_ERROR_RESPONSE = "images.error_response"  # the ClientError answering a MediaError
FLUSH_FORGETS_FIRST_IMAGE = "images.flush_forgets_first"  # bool: /flush_cache forgets the first image
MM_ATTENTION_BACKEND = "info.mm_attention_backend"  # the reported --mm-attention-backend
IMAGE_URL_TIMEOUT = "images.url_timeout"  # float: seconds an http image download may take
IMAGE_PLACEHOLDER_MISMATCH = "images.placeholder_mismatch"  # the ClientError for more <image> markers than images
STREAM_MEDIA_ERROR = "images.stream_error_response"  # the ClientError answering a MediaError of a streaming request
CHOICE_PARSERS = "chat.choice_parsers"  # bool: whether choice ``index`` goes through the reasoning/tool parsers
FORCED_STREAM_PARSE = "tools.forced_stream_parse"  # bool: a streamed required/named JSON array becomes tool_calls
FORCED_TOOL_REASONING = "tools.forced_reasoning"  # reasoning_content of a required/named answer
CHAT_LOGPROBS = "chat.logprobs"  # the logprobs object of a chat choice or chunk (context: stream)
STREAM_TOOL_TAIL = "tools.stream_tail"  # text fed to the streaming tool parser after the last chunk (context: text)
DETERMINISTIC_INFERENCE = "info.deterministic_inference"  # bool: the reported --enable-deterministic-inference
# concurrency
DECODE_STATE = "model.decode_state"  # the per-request decode state slot (context: st, request)
# protocol, info and caches
INFO = "info.dict"  # the dict /server_info or /model_info answers (context: endpoint)
MODELS_LIST = "info.models"  # the dict /v1/models answers
MODEL_NOT_FOUND = "info.model_not_found"  # (status, body) of GET /v1/models/{a model not served}
CREATED = "response.created"  # the ``created`` of a chat completion (or its chunks): int seconds
PREFIX_CACHE = "model.prefix_cache"  # the plan of a chat generation (context: st, ids: the prompt ids)
FLUSH_CACHE = "admin.flush_cache"  # None, at /flush_cache (context: st)
REGEX_TEXT = "sampling.regex_text"  # the text a request's regex constraint forces, or None
COMPLETION_FINISH_REASON = "completions.finish_reason"  # a /v1/completions choice's finish_reason
IMAGE_BYTES = "images.bytes"  # the loaded bytes of one image_url (context: url; hooks may raise MediaError)

POINTS = frozenset(v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, str) and "." in v)

_REGISTRY: dict[str, list[tuple[str, Hook]]] = {}


def fault_hook(fault: str, *points: str) -> Callable[[Hook], Hook]:
    """Register the decorated function as ``fault``'s hook at ``points``.

    The function is called as ``fn(value, **context)`` and returns the (possibly) changed value.
    """
    if fault not in FAULTS:
        raise ValueError(f"fault hook for unknown fault mode {fault!r}: add it to faults.FAULTS first")
    unknown = [p for p in points if p not in POINTS]
    if unknown or not points:
        raise ValueError(f"fault {fault!r}: unknown hook point(s) {unknown or '(none given)'}")

    def register(fn: Hook) -> Hook:
        for point in points:
            _REGISTRY.setdefault(point, []).append((fault, fn))
        return fn

    return register


def registered() -> dict[str, list[str]]:
    """fault → the points it is registered at (for tests and ``--list-faults``)."""
    out: dict[str, list[str]] = {}
    for point, hooks in _REGISTRY.items():
        for fault, _ in hooks:
            out.setdefault(fault, []).append(point)
    return out


class FaultHooks:
    """The hooks of the active fault modes, by point."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._active: dict[str, list[Hook]] = {
            point: [fn for fault, fn in hooks if fault in faults.names] for point, hooks in _REGISTRY.items()}

    def __call__(self, point: str, value: T, **context: Any) -> T:
        """``value`` passed through every active hook at ``point``."""
        for fn in self._active.get(point, ()):
            value = fn(value, **context)
        return value

    def active_at(self, point: str) -> bool:
        """Whether any active fault hooks ``point``."""
        return bool(self._active.get(point))
