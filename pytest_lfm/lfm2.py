"""The LFM2 output format: render pythonic tool calls, parse them as SGLang's ``lfm2`` detector does,
and split ``<think>`` blocks as SGLang's ``qwen3`` / ``qwen3-thinking`` reasoning parsers do.

Used by the checks (to compute what a correct server must return, and for the raw-vs-parsed
differential) and by the reference server (to answer like SGLang). The parse rules follow
``docs/sglang-behaviour.md`` §1 (tool calls) and §2 (reasoning); behaviour that changed between
SGLang releases is switched by :class:`Dialect`, built from the server's reported version.
"""

from __future__ import annotations

import ast
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_lfm.releases import parse_version as parse_version  # re-exported: one version parser

BOT = "<|tool_call_start|>"
EOT = "<|tool_call_end|>"
THINK_START = "<think>"
THINK_END = "</think>"
IM_END = "<|im_end|>"

REASONING_PARSERS = ("qwen3", "qwen3-thinking")
TOOL_CALL_PARSERS = ("lfm2",)


# --------------------------------------------------------------------------------------------- versions


@dataclass(frozen=True)
class Dialect:
    """Parser behaviour of one SGLang release, switched by the release facts
    (``pytest_lfm/data/release_facts.toml``; :meth:`for_version`). The defaults are the newest release."""

    version: str = "0.5.23"
    json_literals: bool = True  # fact lfm2-json-literals: true/false/null accepted as names
    reject_positional: bool = True  # fact lfm2-robust-detector: a call with positional args is rejected
    extended_literals: bool = True  # lfm2-robust-detector: sets, unary plus, placeholder-free f-strings
    merge_star_kwargs: bool = True  # lfm2-robust-detector: **{...} dict literals merged (older: skipped)
    allow_nan: bool = False  # lfm2-robust-detector: inf/nan drop the call (older: emitted as Infinity)
    recovery: bool = True  # lfm2-robust-detector: the recovery ladder and per-call salvage (PR #34237)
    dotted_names: bool = True  # fact lfm2-dotted-names: ``a.b(...)`` names a call
    unparsed_block_as_text: bool = False  # !lfm2-unparsed-block-not-text: no call parsed → the whole text
    split_verbatim: bool = True  # fact qwen3-split-verbatim (older: every <think> removed, whitespace stripped)
    qwen_tool_call_ends_reasoning: bool = True  # fact qwen3-tool-call-ends-reasoning
    think_leak_in_stream: bool = False  # !stream-reasoning-false-strips-think: the one delta keeps <think>

    @classmethod
    def for_version(cls, version: str | None) -> Dialect:
        """The dialect of a reported SGLang version (unknown or unparsable → newest)."""
        from pytest_lfm.releases import has_fact, newest_release

        if parse_version(version) is None:
            return cls(version=version or newest_release())
        robust = has_fact("lfm2-robust-detector", version)
        return cls(
            version=str(parse_version(version)),
            json_literals=has_fact("lfm2-json-literals", version),
            dotted_names=has_fact("lfm2-dotted-names", version),
            reject_positional=robust,
            extended_literals=robust,
            merge_star_kwargs=robust,
            allow_nan=not robust,
            recovery=robust,
            unparsed_block_as_text=not has_fact("lfm2-unparsed-block-not-text", version),
            split_verbatim=has_fact("qwen3-split-verbatim", version),
            qwen_tool_call_ends_reasoning=has_fact("qwen3-tool-call-ends-reasoning", version),
            think_leak_in_stream=not has_fact("stream-reasoning-false-strips-think", version),
        )


# --------------------------------------------------------------------------------------------- rendering


def render_value(value: Any) -> str:
    """A Python literal for a JSON value (strings use JSON escapes, which Python also reads)."""
    if value is None:
        return "None"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no literal form in a tool call")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {render_value(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {type(value).__name__} as a tool-call argument")


def render_call(name: str, arguments: Mapping[str, Any]) -> str:
    """``name(a=1, b="x")``."""
    return f"{name}(" + ", ".join(f"{k}={render_value(v)}" for k, v in arguments.items()) + ")"


def render_tool_calls(calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """One LFM2 tool-call block: ``<|tool_call_start|>[f(a=1), g(b="x")]<|tool_call_end|>``."""
    return BOT + "[" + ", ".join(render_call(n, a) for n, a in calls) + "]" + EOT


def render_json_tool_calls(calls: Sequence[tuple[str, Mapping[str, Any]]], key: str = "arguments") -> str:
    """The JSON-array form the detector also accepts (``arguments`` or ``parameters`` key)."""
    body = [{"name": n, key: dict(a)} for n, a in calls]
    return BOT + json.dumps(body, ensure_ascii=False) + EOT


# --------------------------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class ParsedCall:
    """One call as ``/parse_function_call`` reports it: ``parameters`` is a JSON string."""

    name: str
    parameters: str
    tool_index: int

    @property
    def arguments(self) -> Any:
        """The parameters decoded from JSON."""
        return json.loads(self.parameters)


@dataclass(frozen=True)
class ToolParse:
    """``normal_text`` and calls, as the non-streaming detector returns them."""

    normal_text: str
    calls: tuple[ParsedCall, ...] = ()


class _NotLiteral(Exception):
    pass


class _BlockFailure(Exception):
    """Older detectors (before PR #34237): a value with no JSON form (bytes, complex, Ellipsis) raised a
    TypeError in ``json.dumps`` that dropped every call of the block, not just its own."""


def tool_names(tools: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """Function names of an OpenAI ``tools`` list (wrapped or flat shapes)."""
    names = []
    for tool in tools or []:
        fn = tool.get("function", tool) if isinstance(tool, Mapping) else {}
        name = fn.get("name") if isinstance(fn, Mapping) else None
        if isinstance(name, str):
            names.append(name)
    return names


_BLOCK = re.compile(re.escape(BOT) + r"(.*?)" + re.escape(EOT), re.DOTALL)


def parse_tool_calls(
    text: str,
    tools: Sequence[Mapping[str, Any]] | None,
    dialect: Dialect | None = None,
    forward_unknown: bool = False,
) -> ToolParse:
    """Parse a whole model output as SGLang's ``lfm2`` detector does (non-streaming, §1.2-§1.3).

    Only text before the first ``<|tool_call_start|>`` survives (stripped); text between and after
    blocks is dropped (open PR #40295). Unknown functions are dropped. Calls from every complete block
    are concatenated; ``tool_index`` restarts per pythonic block and is the tool's position in
    ``tools`` for the JSON form.
    """
    d = dialect or Dialect()
    if BOT not in text:
        return ToolParse(normal_text=text)
    names = tool_names(tools)
    normal = text[: text.find(BOT)].strip()
    calls: list[ParsedCall] = []
    for block in _BLOCK.findall(text):
        calls.extend(parse_block(block, names, d, forward_unknown))
    if not calls and d.unparsed_block_as_text:  # before fact lfm2-unparsed-block-not-text (0.5.16)
        return ToolParse(normal_text=text)
    return ToolParse(normal_text=normal, calls=tuple(calls))


def parse_block(block: str, names: Sequence[str], dialect: Dialect, forward_unknown: bool = False) -> list[ParsedCall]:
    """Calls of one block's inner text (JSON first when it looks like JSON, then pythonic)."""
    content = block.strip()
    if content.startswith(("[{", "{")):
        json_calls = _parse_json_block(content, names, forward_unknown)
        if json_calls:
            return json_calls
    return _parse_pythonic_block(content, names, dialect, forward_unknown)


def _parse_json_block(content: str, names: Sequence[str], forward_unknown: bool) -> list[ParsedCall]:
    try:
        data = json.loads(content)
    except ValueError:
        return []
    items = data if isinstance(data, list) else [data]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        if name not in names and not forward_unknown:
            continue
        # parse_base_json: ``parameters`` wins unless falsy, then ``arguments``; always re-serialised.
        args = item.get("parameters") or item.get("arguments", {})
        params = json.dumps(args, ensure_ascii=False)
        index = names.index(name) if name in names else -1
        calls.append(ParsedCall(name=name, parameters=params, tool_index=index))
    return calls


def _parse_pythonic_block(
    content: str, names: Sequence[str], dialect: Dialect, forward_unknown: bool
) -> list[ParsedCall]:
    tree = _safe_parse(content)
    if tree is None and dialect.recovery:
        for candidate in _recovery_candidates(content):
            tree = _safe_parse(candidate)
            if tree is not None:
                break
    if tree is None:
        return _salvage(content, names, dialect, forward_unknown) if dialect.recovery else []
    body = tree.body
    if isinstance(body, ast.Call):
        nodes: list[ast.expr] = [body]
    elif isinstance(body, ast.List):  # a bare tuple ``f(), g()`` is not accepted (§1.2)
        nodes = list(body.elts)
        if not all(isinstance(n, ast.Call) for n in nodes):
            return []
    else:
        return []
    calls: list[ParsedCall] = []
    try:
        for position, node in enumerate(nodes):
            assert isinstance(node, ast.Call)
            call = _convert_call(node, position, names, dialect, forward_unknown)
            if call is not None:
                calls.append(call)
    except _BlockFailure:
        return []
    return calls


def _safe_parse(source: str) -> ast.Expression | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source, mode="eval")
        except (SyntaxError, ValueError):
            return None


def _call_name(func: ast.expr, dialect: Dialect) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if dialect.dotted_names and isinstance(func, ast.Attribute):
        parts = []
        node: ast.expr = func
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            parts.append(node.id)
            return ".".join(reversed(parts))
    return None


def _convert_call(
    node: ast.Call, position: int, names: Sequence[str], dialect: Dialect, forward_unknown: bool
) -> ParsedCall | None:
    name = _call_name(node.func, dialect)
    if name is None:
        return None
    if name not in names and not forward_unknown:
        return None
    if node.args and dialect.reject_positional:
        return None
    arguments: dict[str, Any] = {}
    try:
        for kw in node.keywords:
            if kw.arg is None:
                if not dialect.merge_star_kwargs:
                    continue
                value = _literal(kw.value, dialect)
                if not isinstance(value, dict):
                    raise _NotLiteral
                arguments.update(value)
            else:
                arguments[_restore_keyword(kw.arg)] = _literal(kw.value, dialect)
        params = json.dumps(arguments, ensure_ascii=False, allow_nan=dialect.allow_nan)
    except (_NotLiteral, ValueError):
        return None
    return ParsedCall(name=name, parameters=params, tool_index=position)


def _literal(node: ast.expr, dialect: Dialect) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (str, int, float)) or node.value is None:
            return node.value
        if not dialect.recovery:
            raise _BlockFailure
        raise _NotLiteral
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:  # ``{**x}`` inside a dict literal is skipped silently
                continue
            key = _literal(k, dialect)
            out[key if isinstance(key, str) else json.dumps(key)] = _literal(v, dialect)
        return out
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, dialect) for e in node.elts]
    if isinstance(node, ast.Set) and dialect.extended_literals:
        return [_literal(e, dialect) for e in node.elts]
    if isinstance(node, ast.Name):
        python = {"True": True, "False": False, "None": None}
        if node.id in python:
            return python[node.id]
        if dialect.json_literals and node.id in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[node.id]
        raise _NotLiteral
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _literal(node.operand, dialect)
        if isinstance(operand, (int, float)) and not isinstance(operand, bool):
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd) and dialect.extended_literals:
                return operand
        raise _NotLiteral
    if isinstance(node, ast.JoinedStr) and dialect.extended_literals:
        if all(isinstance(v, ast.Constant) for v in node.values):
            return "".join(str(v.value) for v in node.values if isinstance(v, ast.Constant))
        raise _NotLiteral
    raise _NotLiteral


# Recovery ladder (0.5.23, PR #34237), value-preserving steps only.
_KEYWORD_PARAM = re.compile(r"(?<![\w.])(" + "|".join(("from", "in", "is", "class", "def", "for", "if",
                                                        "import", "return", "with", "as", "global",
                                                        "lambda", "not", "or", "and", "del", "pass",
                                                        "raise", "try", "while", "yield", "async",
                                                        "await", "else", "elif", "except", "finally",
                                                        "continue", "break", "assert", "nonlocal")) + r")\s*=")
_KW_SUFFIX = "__lfm_kw"


def _restore_keyword(name: str) -> str:
    return name[: -len(_KW_SUFFIX)] if name.endswith(_KW_SUFFIX) else name


def _escape_raw_controls(source: str) -> str:
    """Escape raw newlines, tabs and NULs that sit inside string literals."""
    out: list[str] = []
    quote: str | None = None
    escaped = False
    for ch in source:
        if quote is None:
            if ch in "\"'":
                quote = ch
            out.append(ch)
            continue
        if escaped:
            escaped = False
            out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            out.append(ch)
        elif ch == quote:
            quote = None
            out.append(ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\x00")
        elif ch == "\r":
            out.append("\\r")
        else:
            out.append(ch)
    return "".join(out)


_ZERO_PADDED = re.compile(r"(?<=[=\[,(:\s])0+(\d+)(?=\s*[,)\]}])")




_QUOTE_FOLLOWERS = frozenset(",)]}:")


def _unescaped(text: str, start: int, quote: str) -> list[int]:
    """Positions of ``quote`` from ``start`` on that no backslash escapes."""
    found, i = [], start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            found.append(i)
        i += 1
    return found


def _closes(text: str, pos: int) -> bool:
    """Whether a quote at ``pos`` can end a string: the next non-space character is one of ``,)]}:``."""
    k = pos + 1
    while k < len(text) and text[k].isspace():
        k += 1
    return k < len(text) and text[k] in _QUOTE_FOLLOWERS


def _call_count(tree: ast.Expression) -> int:
    body = tree.body
    if isinstance(body, ast.List):
        return sum(isinstance(e, ast.Call) for e in body.elts)
    return 1 if isinstance(body, ast.Call) else 0


def _requote(text: str) -> str | None:
    """Nested same-style quotes in a string argument (``command='sed -n '1,2p' f'``), re-escaped when exactly
    one closing quote makes the block parse without losing a sibling call (0.5.19's nested-quote step)."""
    expected = len(_split_top_level(text, respect_strings=False))
    i = 0
    while i < len(text):
        quote = text[i]
        if quote not in "\"'":
            i += 1
            continue
        closers = _unescaped(text, i + 1, quote)
        if not closers:
            return None
        if _closes(text, closers[0]):
            i = closers[0] + 1
            continue
        winners = []
        for close in (c for c in closers if _closes(text, c)):
            interior = "".join("\\" + ch if ch == quote and not _odd_backslashes(text, j) else ch
                               for j, ch in enumerate(text[i + 1: close], start=i + 1))
            candidate = text[:i] + quote + interior + quote + text[close + 1:]
            tree = _safe_parse(_escape_raw_controls(candidate))
            if tree is None or (expected > 1 and _call_count(tree) < expected):
                continue
            winners.append(candidate)
        return winners[0] if len(winners) == 1 else None
    return None


def _odd_backslashes(text: str, index: int) -> bool:
    n, j = 0, index - 1
    while j >= 0 and text[j] == "\\":
        n, j = n + 1, j - 1
    return n % 2 == 1


def _recovery_candidates(source: str) -> list[str]:
    """0.5.19's recovery ladder, in order: control characters escaped and zero padding removed; nested
    quotes re-escaped; Python-keyword parameter names renamed (then nested quotes again)."""
    base = _escape_raw_controls(_ZERO_PADDED.sub(r"\1", source))
    out = [base]
    requoted = _requote(base)
    if requoted is not None:
        out.append(_escape_raw_controls(requoted))
    for text in list(out):
        renamed = _KEYWORD_PARAM.sub(lambda m: m.group(1) + _KW_SUFFIX + "=", text)
        if renamed != text:
            out.append(renamed)
            again = _requote(renamed)
            if again is not None:
                out.append(_escape_raw_controls(again))
    return out


def _split_top_level(source: str, respect_strings: bool = True) -> list[str]:
    if not respect_strings:
        source = source.strip()
        if source.startswith("[") and source.endswith("]"):
            source = source[1:-1]
    parts, depth, quote, escaped, start = [], 0, None, False, 0
    for i, ch in enumerate(source):
        if quote:  # only when respect_strings
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if respect_strings and ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(source[start:i])
            start = i + 1
    parts.append(source[start:])
    return [p.strip() for p in parts if p.strip()]


def _salvage(content: str, names: Sequence[str], dialect: Dialect, forward_unknown: bool) -> list[ParsedCall]:
    inner = content.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    calls = []
    for position, piece in enumerate(_split_top_level(inner)):
        tree = None
        for candidate in (piece, *_recovery_candidates(piece)):
            tree = _safe_parse(candidate)
            if tree is not None:
                break
        if tree is not None and isinstance(tree.body, ast.Call):
            call = _convert_call(tree.body, position, names, dialect, forward_unknown)
            if call is not None:
                calls.append(call)
    return calls


# --------------------------------------------------------------------------------------------- reasoning


@dataclass(frozen=True)
class ReasoningSplit:
    """``reasoning_text`` and ``text`` as ``/separate_reasoning`` returns them."""

    reasoning_text: str
    text: str


QWEN_TOOL_START = "<tool_call>"  # Qwen3Detector's tool_start_token: ends an unclosed think block (0.5.23)


def _strip_leading_think(text: str) -> str:
    while text.startswith(THINK_START):
        text = text[len(THINK_START):]
    return text


def split_reasoning(text: str, parser: str, force: bool | None = None,
                    strip_all_think: bool = False, dialect: Dialect | None = None) -> ReasoningSplit:
    """Split a whole output as SGLang's Qwen3 detector does (non-streaming, §2).

    ``qwen3-thinking`` is always forced; ``qwen3`` is forced only when ``force`` is true (the serving
    layer forces it unless ``enable_thinking`` is false; ``/separate_reasoning`` does not). In reasoning
    mode only *leading* ``<think>`` tags are stripped (repeated ones too); reasoning is the text before
    the first ``</think>``, content everything after it, verbatim (leading newlines kept). Without
    ``</think>`` everything is reasoning ("truncated"), unless Qwen's ``<tool_call>`` ends it early.
    ``strip_all_think`` emulates a detector that removes every ``<think>`` (a fault mode of the
    reference server, not SGLang). ``dialect`` switches the release facts ``qwen3-split-verbatim`` (before
    it every ``<think>`` is removed and whitespace stripped) and ``qwen3-tool-call-ends-reasoning``.
    """
    if parser not in REASONING_PARSERS:
        raise ValueError(f"unsupported reasoning parser {parser!r}")
    d = dialect or Dialect()
    forced = parser == "qwen3-thinking" or bool(force)
    if not forced and THINK_START not in text:
        return ReasoningSplit(reasoning_text="", text=text)
    if not d.split_verbatim:
        processed = text.replace(THINK_START, "").strip()
    else:
        processed = text.replace(THINK_START, "") if strip_all_think else _strip_leading_think(text)
    if THINK_END not in processed:
        if d.qwen_tool_call_ends_reasoning and QWEN_TOOL_START in processed:
            idx = processed.find(QWEN_TOOL_START)
            reasoning = processed[:idx] if d.split_verbatim else processed[:idx].strip()
            return ReasoningSplit(reasoning_text=reasoning, text=processed[idx:])
        return ReasoningSplit(reasoning_text=processed, text="")
    reasoning, _, rest = processed.partition(THINK_END)
    return ReasoningSplit(reasoning_text=reasoning, text=rest if d.split_verbatim else rest.strip())


# --------------------------------------------------------------------------------------------- streaming


def _partial_suffix(buffer: str, *tokens: str) -> int:
    """Length of the longest suffix of ``buffer`` that is a proper prefix of one of ``tokens``."""
    best = 0
    for token in tokens:
        for n in range(min(len(token) - 1, len(buffer)), 0, -1):
            if buffer.endswith(token[:n]):
                best = max(best, n)
                break
    return best


def think_leak_in_stream(version: str | None) -> bool:
    """Whether a release's streaming detector leaks ``<think>`` with ``stream_reasoning=false`` (§2):
    before release fact ``stream-reasoning-false-strips-think`` (0.5.18) the opening tag is stripped from a
    local copy of the buffer only, so the one reasoning delta starts with the raw tag (recorded on 0.5.17:
    ``"<think>abc"``). Unknown versions count as the newest."""
    return Dialect.for_version(version).think_leak_in_stream


@dataclass
class StreamingReasoningParser:
    """Incremental ``<think>`` splitting as SGLang 0.5.23's detector streams it (§2, streaming).

    While the whole buffer is a proper prefix of ``<think>``, ``</think>`` or ``<tool_call>`` it is
    held; the first ``<think>`` is stripped once; at ``</think>`` the reasoning part and the rest (as
    content) come out in the same step; while streaming reasoning a trailing partial tag is held back;
    with ``stream_reasoning=False`` reasoning is held and emitted in one delta. ``leak_think_start``
    emulates 0.5.17, whose one delta keeps the raw opening tag (:func:`think_leak_in_stream`).
    ``finish()`` flushes what is held (reasoning while in a think block, else content).
    """

    parser: str
    force: bool = False
    stream_reasoning: bool = True
    leak_think_start: bool = False
    dialect: Dialect = field(default_factory=lambda: Dialect())
    _buffer: str = ""
    _in_reasoning: bool = False
    _stripped_start: bool = False

    def __post_init__(self) -> None:
        self._in_reasoning = self.parser == "qwen3-thinking" or self.force

    @property
    def in_reasoning(self) -> bool:
        """Whether the parser is inside a think block."""
        return self._in_reasoning

    def feed(self, new_text: str) -> tuple[str, str]:
        """Returns (reasoning delta, content delta) for one increment."""
        self._buffer += new_text
        current = self._buffer
        tool_start = (QWEN_TOOL_START,) if self.dialect.qwen_tool_call_ends_reasoning else ()
        if any(tag.startswith(current) and tag != current for tag in (THINK_START, THINK_END, *tool_start)):
            return "", ""
        if not self._stripped_start and THINK_START in current:
            current = current.replace(THINK_START, "", 1)
            if not self.leak_think_start:
                self._buffer = current
            self._stripped_start = True
            self._in_reasoning = True
        if self._in_reasoning and THINK_END in current:
            reasoning, _, rest = current.partition(THINK_END)
            self._buffer = ""
            self._in_reasoning = False
            return reasoning, rest
        if self._in_reasoning:
            if tool_start and QWEN_TOOL_START in current:
                idx = current.find(QWEN_TOOL_START)
                self._buffer = ""
                self._in_reasoning = False
                return current[:idx], current[idx:]
            if self.stream_reasoning:
                tags = (THINK_END, *tool_start) if self._stripped_start else (THINK_END, *tool_start, THINK_START)
                hold = _partial_suffix(current, *tags)
                self._buffer = current[len(current) - hold:]
                return current[: len(current) - hold], ""
            return "", ""
        self._buffer = ""
        return "", current

    def finish(self) -> tuple[str, str]:
        """Flush what is held back at the end of the stream (as reasoning while in a think block)."""
        rest, self._buffer = self._buffer, ""
        if self._in_reasoning:
            return _strip_leading_think(rest), ""
        return "", rest


@dataclass
class StreamingToolParser:
    """Incremental LFM2 tool-call parsing as SGLang 0.5.23 streams it (§1.4).

    Text before a block streams at once; a call is emitted only when its whole block has arrived,
    as one delta with the complete arguments; one block per increment; an unterminated block is
    dropped at the end of the stream (the base ``finish()`` returns nothing).
    """

    tools: Sequence[Mapping[str, Any]]
    dialect: Dialect = field(default_factory=Dialect)
    _buffer: str = ""

    def feed(self, new_text: str) -> tuple[str, list[ParsedCall]]:
        """Returns (text delta, complete calls) for one increment."""
        self._buffer += new_text
        buf = self._buffer
        start = buf.find(BOT)
        if start == -1:
            hold = _partial_suffix(buf, BOT)
            text, self._buffer = buf[: len(buf) - hold], buf[len(buf) - hold:]
            return text.replace(EOT, ""), []
        if start > 0:
            self._buffer = buf[start:]
            return buf[:start], []
        end = buf.find(EOT)
        if end == -1:
            return "", []
        block = buf[len(BOT): end]
        self._buffer = buf[end + len(EOT):]
        calls = parse_block(block, tool_names(self.tools), self.dialect)
        return "", calls

    def finish(self) -> tuple[str, list[ParsedCall]]:
        """Drain complete blocks still buffered; a held-back partial marker is content; an unterminated
        block is dropped."""
        text_out, calls_out = "", []
        for _ in range(1000):
            if not self._buffer:
                break
            before = self._buffer
            text, calls = self.feed("")
            text_out += text
            calls_out.extend(calls)
            if self._buffer == before:
                break
        if self._buffer and BOT not in self._buffer:
            # text held back only because it could have begun a marker (a trailing "<"): it is content
            text_out += self._buffer.replace(EOT, "")
        self._buffer = ""
        return text_out, calls_out
