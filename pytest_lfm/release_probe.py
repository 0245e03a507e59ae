"""Every model-free corpus case through one SGLang release: its real parser code, or the emulation.

``python -m pytest_lfm.release_probe real DIR`` loads the parsers of the release installed in ``DIR``
(``scripts/install_sglang_parsers.sh``; in a process of its own, see :mod:`pytest_lfm.reference.upstream`)
and prints one JSON object: ``{"version": V, "outputs": {probe id: output}}``.
``python -m pytest_lfm.release_probe emulate VERSION`` prints the same for the project's own parsers
emulating that release (:meth:`pytest_lfm.lfm2.Dialect.for_version`, as ``--lfm-reference-version``).

Probe ids and outputs:

* ``tool_calls/<case>``: ``/parse_function_call`` with ``lfm2`` → ``{normal_text, calls}``;
* ``tool_stream/<case>``: the chat stream's tool parser, fed one character at a time, then finished →
  ``{text, calls}`` (text concatenated);
* ``separate/<case>/<parser>``: ``/separate_reasoning`` → ``{reasoning_text, text}``;
* ``chat/<case>`` and ``chat_stream/<case>``: the chat path's split of a regex-forced case (``qwen3``,
  forced unless ``enable_thinking`` is false) → ``{reasoning, content}`` (stream: plus the number of
  non-empty reasoning deltas).

``tests/test_release_facts.py`` compares the two sides for every release and checks each release's
real outputs against the corpus expectations and the release facts.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial
from typing import Any

from pytest_lfm import lfm2
from pytest_lfm.cases import Case, load_cases
from pytest_lfm.paths import fixtures_dir

DEFAULT_TOOLS = ("get_weather", "search", "ping")  # as conformance/test_tool_parser.py
Output = dict[str, Any]


@cache
def tool_fixture(name: str) -> dict[str, Any]:
    """An OpenAI tool object from ``fixtures/tools/<name>.json``."""
    return dict(json.loads((fixtures_dir() / "tools" / f"{name}.json").read_text(encoding="utf-8")))


def case_tools(case: Case) -> list[dict[str, Any]]:
    """The tools a tool_calls case offers."""
    return [tool_fixture(n) for n in case.get("tools", DEFAULT_TOOLS)]


def chat_force(case: Case) -> bool:
    """Whether ``qwen3`` is forced for a regex-forced reasoning case: the forced corpus switches thinking
    off (``enable_thinking=false``, so ``qwen3`` is not forced, §2) unless its request turns it on."""
    kwargs = (case.get("request") or {}).get("chat_template_kwargs") or {}
    return isinstance(kwargs, Mapping) and kwargs.get("enable_thinking") is True


def _calls(items: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": c.name, "parameters": c.parameters, "tool_index": c.tool_index} for c in items]


class Backend:
    """What a probe needs from a parser implementation."""

    version: str

    def parse(self, text: str, tools: list[dict[str, Any]]) -> Output:  # pragma: no cover - interface
        raise NotImplementedError

    def tool_stream(self, text: str, tools: list[dict[str, Any]]) -> Output:  # pragma: no cover
        raise NotImplementedError

    def separate(self, text: str, parser: str) -> Output:  # pragma: no cover
        raise NotImplementedError

    def chat(self, text: str, force: bool) -> Output:  # pragma: no cover
        raise NotImplementedError

    def chat_stream(self, text: str, force: bool, stream_reasoning: bool) -> Output:  # pragma: no cover
        raise NotImplementedError


def _drive_stream(feed: Callable[[str], tuple[Any, Any]], finish: Callable[[], tuple[Any, Any]],
                  text: str) -> list[tuple[Any, Any]]:
    steps = [feed(ch) for ch in text]
    steps.append(finish())
    return steps


class Emulated(Backend):
    """The reference server's own parsers (``ProjectParsers`` over :mod:`pytest_lfm.lfm2`) emulating one
    release, as ``--lfm-reference-version`` runs them."""

    def __init__(self, version: str) -> None:
        from pytest_lfm.reference.serving import ProjectParsers

        self.version = version
        self.dialect = lfm2.Dialect.for_version(version)
        self.parsers = ProjectParsers(self.dialect)

    def parse(self, text: str, tools: list[dict[str, Any]]) -> Output:
        r = self.parsers.parse_function_call(text, tools, "lfm2", self.dialect)
        return {"normal_text": r.normal_text, "calls": _calls(r.calls)}

    def tool_stream(self, text: str, tools: list[dict[str, Any]]) -> Output:
        p = self.parsers.streaming_tools(tools, self.dialect)
        steps = _drive_stream(p.feed, p.finish, text)
        return {"text": "".join(s[0] for s in steps), "calls": _calls([c for s in steps for c in s[1]])}

    def separate(self, text: str, parser: str) -> Output:
        out = self.parsers.separate_reasoning(text, parser)
        return {"reasoning_text": out["reasoning_text"], "text": out["text"]}

    def chat(self, text: str, force: bool) -> Output:
        s = self.parsers.split_reasoning(text, "qwen3", force=force)
        return {"reasoning": s.reasoning_text, "content": s.text}

    def chat_stream(self, text: str, force: bool, stream_reasoning: bool) -> Output:
        p = self.parsers.streaming_reasoning("qwen3", force=force, stream_reasoning=stream_reasoning,
                                             leak_think_start=self.dialect.think_leak_in_stream)
        steps = _drive_stream(p.feed, p.finish, text)
        return {"reasoning": "".join(s[0] for s in steps), "content": "".join(s[1] for s in steps),
                "reasoning_deltas": sum(1 for s in steps if s[0])}


def _construct(cls: Any, **kwargs: Any) -> Any:
    """``cls(**kwargs)`` without the keyword arguments this release's signature lacks (``tokenizer``
    arrived in 0.5.15, ``request`` in the reasoning parser later)."""
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return cls(**kwargs)


class Real(Backend):
    """One release's own ``FunctionCallParser`` and ``ReasoningParser`` from an installed tree."""

    def __init__(self, root: str) -> None:
        from pytest_lfm.reference.upstream import UpstreamParsers

        self.up = UpstreamParsers(root)
        self.version = self.up.version

    def _fcp(self, tools: list[dict[str, Any]]) -> Any:
        return _construct(self.up.FunctionCallParser, tools=self.up.tools(tools), tool_call_parser="lfm2",
                          tokenizer=None)

    def _rp(self, parser: str, **kwargs: Any) -> Any:
        return _construct(self.up.ReasoningParser, model_type=parser, request=None, tokenizer=None, **kwargs)

    def parse(self, text: str, tools: list[dict[str, Any]]) -> Output:
        normal, calls = self._fcp(tools).parse_non_stream(text)
        return {"normal_text": normal, "calls": _calls(calls)}

    def tool_stream(self, text: str, tools: list[dict[str, Any]]) -> Output:
        fcp = self._fcp(tools)
        end = getattr(fcp, "parse_stream_end", None)
        steps = _drive_stream(fcp.parse_stream_chunk, end if end is not None else lambda: ("", []), text)
        return {"text": "".join(s[0] or "" for s in steps), "calls": _calls([c for s in steps for c in s[1]])}

    def separate(self, text: str, parser: str) -> Output:
        reasoning, normal = self._rp(parser).parse_non_stream(text)
        return {"reasoning_text": reasoning or "", "text": normal or ""}

    def chat(self, text: str, force: bool) -> Output:
        reasoning, normal = self._rp("qwen3", force_reasoning=force).parse_non_stream(text)
        return {"reasoning": reasoning or "", "content": normal or ""}

    def chat_stream(self, text: str, force: bool, stream_reasoning: bool) -> Output:
        rp = self._rp("qwen3", force_reasoning=force, stream_reasoning=stream_reasoning)
        end = getattr(rp, "parse_stream_end", None)
        steps = _drive_stream(rp.parse_stream_chunk, end if end is not None else lambda: ("", ""), text)
        return {"reasoning": "".join(s[0] or "" for s in steps), "content": "".join(s[1] or "" for s in steps),
                "reasoning_deltas": sum(1 for s in steps if s[0])}


def _guard(fn: Callable[[], Output]) -> Output:
    try:
        return fn()
    except Exception as exc:  # a release whose parser raises is an output too
        return {"error": f"{type(exc).__name__}: {exc}"}


def probe_ids_and_calls(backend: Backend) -> dict[str, Callable[[], Output]]:
    """Every probe of the corpora, not yet run."""
    out: dict[str, Callable[[], Output]] = {}
    for case in load_cases("tool_calls"):
        tools = case_tools(case)
        out[f"tool_calls/{case.id}"] = partial(backend.parse, case["text"], tools)
        if tools:  # the chat stream parses tool calls only when the request offers tools
            out[f"tool_stream/{case.id}"] = partial(backend.tool_stream, case["text"], tools)
    for case in load_cases("reasoning"):
        if "text" in case.data:
            for parser in lfm2.REASONING_PARSERS:
                out[f"separate/{case.id}/{parser}"] = partial(backend.separate, case["text"], parser)
        elif (case.get("request") or {}).get("separate_reasoning", True) is not False:
            force = chat_force(case)
            stream_reasoning = (case.get("request") or {}).get("stream_reasoning", True) is not False
            modes = case.get("modes", [])
            if "non-stream" in modes:
                out[f"chat/{case.id}"] = partial(backend.chat, case["raw"], force)
            if "stream" in modes:
                out[f"chat_stream/{case.id}"] = partial(backend.chat_stream, case["raw"], force, stream_reasoning)
    return out


def run(backend: Backend) -> dict[str, Any]:
    """``{"version", "outputs"}`` for every probe."""
    import logging

    logging.disable(logging.CRITICAL)  # releases log a warning per unparsable call
    try:
        outputs = {pid: _guard(call) for pid, call in probe_ids_and_calls(backend).items()}
    finally:
        logging.disable(logging.NOTSET)
    return {"version": backend.version, "outputs": outputs}


def main(argv: list[str] | None = None) -> int:
    """``python -m pytest_lfm.release_probe real DIR | emulate VERSION``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("real", "emulate"):
        print("usage: python -m pytest_lfm.release_probe real DIR | emulate VERSION", file=sys.stderr)
        return 2
    backend: Backend = Real(args[1]) if args[0] == "real" else Emulated(args[1])
    json.dump(run(backend), sys.stdout, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


# ------------------------------------------------------------------------------------------ verdicts


def _decoded(parameters: Any) -> Any:
    try:
        return json.loads(parameters)
    except (TypeError, ValueError):
        return {"<invalid JSON>": parameters}


def _tool_verdict(expect: Mapping[str, Any], out: Output, text_key: str) -> str | None:
    normal = out.get(text_key)
    if "normal_text" in expect and normal != expect["normal_text"]:
        return f"normal_text: expected {expect['normal_text']!r}, got {normal!r}"
    missing = [s for s in expect.get("normal_text_contains", []) if s not in (normal or "")]
    if missing:
        return f"normal_text lacks {missing!r}: {normal!r}"
    if "calls" in expect:
        want = [{"name": c["name"], "arguments": json.loads(c["arguments"])} for c in expect["calls"]]
        got = [{"name": c.get("name"), "arguments": _decoded(c.get("parameters"))} for c in out.get("calls", [])]
        if want != got:
            return f"calls: expected {want!r}, got {got!r}"
        for i, (e, a) in enumerate(zip(expect["calls"], out.get("calls", []), strict=True)):
            if "tool_index" in e and e["tool_index"] != a.get("tool_index"):
                return f"calls[{i}].tool_index: expected {e['tool_index']}, got {a.get('tool_index')}"
            if "parameters" in e and e["parameters"] != a.get("parameters"):
                return f"calls[{i}].parameters: expected {e['parameters']!r}, got {a.get('parameters')!r}"
    return None


def verdict(probe_id: str, out: Output) -> str | None:
    """Whether a probe's output meets its corpus case's expectation as the conformance check states it:
    None when it does, else what differs. ``tool_stream`` probes have no corpus expectation (None)."""
    kind, case_id, *rest = probe_id.split("/")
    if "error" in out:
        return f"the parser raised {out['error']}"
    if kind == "tool_calls":
        case = {c.id: c for c in load_cases("tool_calls")}[case_id]
        return _tool_verdict(case["expect"], out, "normal_text")
    if kind == "separate":
        case = {c.id: c for c in load_cases("reasoning")}[case_id]
        want = case[rest[0]]
        got = {"reasoning_text": out.get("reasoning_text"), "text": out.get("text")}
        return None if want == got else f"split: expected {want!r}, got {got!r}"
    if kind in ("chat", "chat_stream"):
        case = {c.id: c for c in load_cases("reasoning")}[case_id]
        exp = case["expect"]
        got_pair = (out.get("reasoning") or "", out.get("content") or "")
        want_pair = (exp.get("reasoning") or "", exp["content"])
        if got_pair != want_pair:
            return f"(reasoning, content): expected {want_pair!r}, got {got_pair!r}"
        if kind == "chat_stream" and "reasoning_deltas" in exp and exp["reasoning_deltas"] != out.get("reasoning_deltas"):
            return f"reasoning deltas: expected {exp['reasoning_deltas']}, got {out.get('reasoning_deltas')}"
        return None
    return None


def check_id(probe_id: str) -> str | None:
    """The conformance check a probe stands for (``FILE.py::TEST[PARAMS]``, no target), None for none."""
    kind, case_id, *rest = probe_id.split("/")
    if kind == "tool_calls":
        return f"test_tool_parser.py::test_parse_case[{case_id}]"
    if kind == "separate":
        return f"test_reasoning_parser.py::test_separate_reasoning_corpus[{case_id}-{rest[0]}]"
    if kind == "chat":
        return f"test_reasoning.py::test_forced_reasoning_case[{case_id}-non-stream]"
    if kind == "chat_stream":
        return f"test_reasoning.py::test_forced_reasoning_case[{case_id}-stream]"
    return None
