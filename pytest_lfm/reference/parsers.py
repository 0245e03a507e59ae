"""The two tool-call/reasoning parser back-ends of the reference server, behind one Protocol.

:class:`ProjectParsers` runs the project's own parsers (:mod:`pytest_lfm.lfm2`, switched by the emulated
release's dialect; the default); ``pytest_lfm.reference.upstream.UpstreamParsers`` (``--parsers sglang``)
runs a real SGLang release's parser classes. Both satisfy :class:`ParserBackend`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from pytest_lfm import lfm2
from pytest_lfm.reference.validation import ClientError


class StreamingTools(Protocol):
    """An incremental tool-call parser (the shape of :class:`lfm2.StreamingToolParser`)."""

    def feed(self, new_text: str) -> tuple[str, list[lfm2.ParsedCall]]:
        """(text delta, complete calls) for one increment."""

    def finish(self) -> tuple[str, list[lfm2.ParsedCall]]:
        """Whatever is still buffered at the end of the stream."""


class StreamingReasoning(Protocol):
    """An incremental reasoning parser (the shape of :class:`lfm2.StreamingReasoningParser`)."""

    @property
    def in_reasoning(self) -> bool:
        """Whether the parser is inside a think block."""

    def feed(self, new_text: str) -> tuple[str, str]:
        """(reasoning delta, content delta) for one increment."""

    def finish(self) -> tuple[str, str]:
        """(reasoning, content) still held at the end of the stream."""


@runtime_checkable
class ParserBackend(Protocol):
    """What the serving layer needs from a parser back-end (``/server_info`` reports its ``name``)."""

    name: str

    def check_tool_call_parser(self, parser: Any) -> None:
        """Raise a ClientError for a tool-call parser name the back-end rejects up front."""

    def check_reasoning_parser(self, parser: Any) -> None:
        """Raise a ClientError for a reasoning parser name the back-end rejects up front."""

    def parse_function_call(self, text: str, tools: Sequence[Mapping[str, Any]], parser: str | None,
                            dialect: lfm2.Dialect) -> lfm2.ToolParse:
        """``/parse_function_call``."""

    def separate_reasoning(self, text: str, parser: str, return_blocks: bool = False) -> dict[str, Any]:
        """``/separate_reasoning`` (the response body)."""

    def parse_tool_calls(self, text: str, tools: Sequence[Mapping[str, Any]] | None,
                         dialect: lfm2.Dialect) -> lfm2.ToolParse:
        """Non-streaming chat tool parsing."""

    def split_reasoning(self, text: str, parser: str, force: bool | None = None,
                        strip_all_think: bool = False) -> lfm2.ReasoningSplit:
        """Non-streaming chat reasoning split."""

    def streaming_tools(self, tools: Sequence[Mapping[str, Any]], dialect: lfm2.Dialect) -> StreamingTools:
        """A streaming chat tool parser."""

    def streaming_reasoning(self, parser: str, force: bool = False, stream_reasoning: bool = True,
                            leak_think_start: bool = True) -> StreamingReasoning:
        """A streaming chat reasoning parser."""


def pythonic_parse(text: str, tools: Sequence[Mapping[str, Any]], dialect: lfm2.Dialect) -> lfm2.ToolParse:
    """SGLang's generic ``pythonic`` detector, as far as the reference needs it: an output that is one
    bracketed list of calls (no markers) parses like an LFM2 block; anything else is plain text."""
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        return lfm2.ToolParse(normal_text=text)
    calls = lfm2.parse_block(body, lfm2.tool_names(tools), dialect)
    return lfm2.ToolParse(normal_text="" if calls else text, calls=tuple(calls))


class ProjectParsers:
    """The project's own parsers (:mod:`pytest_lfm.lfm2`), switched by the emulated version's dialect."""

    name = "project"

    def __init__(self, dialect: lfm2.Dialect | None = None) -> None:
        self.dialect: lfm2.Dialect | None = dialect
        """The emulated release's reasoning rules (None: the newest release's)."""

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
            return pythonic_parse(text, tools, dialect)
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
                                             leak_think_start=leak_think_start, dialect=self.dialect or lfm2.Dialect())
