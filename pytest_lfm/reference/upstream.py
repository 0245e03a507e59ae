"""A real SGLang release's parser code, loaded on a CPU-only machine (issue 11).

``UpstreamParsers(dir)`` imports SGLang's own ``lfm2`` tool-call detector (through
``FunctionCallParser``, as the ``/parse_function_call`` endpoint does) and its reasoning parsers
(``ReasoningParser``, as ``/separate_reasoning`` does) from an sglang tree installed with
``scripts/install_sglang_parsers.sh VERSION DIR`` (``pip install --no-deps --target DIR sglang==VERSION``
plus a few light packages). The reference server uses it with ``--parsers sglang --sglang-dir DIR``, so
the model-free conformance checks run against the released code instead of the project's
re-implementation in :mod:`pytest_lfm.lfm2`.

How the code is loaded without a GPU stack:

* ``sglang/__init__.py`` is never executed (it imports torch and FlashInfer): a stub package module
  named ``sglang`` with ``__path__`` set to ``DIR/sglang`` is put into ``sys.modules``; every
  subpackage the parsers need (``sglang.srt``, ``sglang.srt.function_call``, ``sglang.srt.parser``,
  ``sglang.srt.entrypoints.openai``) has no ``__init__.py`` in 0.5.17 and 0.5.23, so Python resolves
  them from the real directories as namespace packages and imports the real module files.
* ``DIR`` is *appended* to ``sys.path`` so the light packages installed there (msgspec, orjson,
  partial_json_parser, pybase64, regex, requests, tqdm) are found, while the environment's own
  copies of shared packages (pydantic, numpy, openai) win.
* Three heavy packages that parser modules import at top level but never use for parsing are
  stubbed (any attribute is a placeholder class that pydantic accepts as "any"):

  - ``xgrammar``: ``StructuralTag`` and friends, used only to *build* constrained-decoding grammars
    (inkling, kimi-k3, glm47, beam detectors and ``base_format_detector.get_structural_tag``); the
    lfm2 detector has no structural tag (``supports_structural_tag()`` is False) and text parsing
    never calls xgrammar. The real package needs tvm-ffi and torch.
  - ``transformers``: ``PreTrainedTokenizerBase`` is imported by ``parser/reasoning_parser.py``
    (0.5.23) for type annotations only; the Qwen3 detector takes no tokenizer.
  - ``IPython``: ``sglang/utils.py`` imports ``IPython.display`` for notebook helpers.

  Stubs are installed only for names not already imported. Because they are process-wide, load
  upstream parsers in a process of their own (the reference server child process), not in a pytest
  process that might import the real packages.

Releases differ in their constructors (0.5.10-0.5.14 take no ``tokenizer``; 0.5.18 adds
``tool_call_parser_active``, 0.5.21 ``tool_choice``, both defaulted) and methods (``parse_non_stream_blocks``
from 0.5.13, ``ReasoningParser.parse_stream_end`` from 0.5.16, ``FunctionCallParser.parse_stream_end`` from
0.5.18): constructors get only the arguments a release accepts (:func:`accepted_kwargs`) and missing methods
behave as the release's endpoint does. Every parser is built once at load time, so a release this adapter
cannot drive fails once, at start-up, with an error naming the release and what failed.

If a release moved a module, :class:`UpstreamParsersError` names each module path tried and the
version found. Run ``python -m pytest_lfm.reference.upstream DIR`` to check an installed tree.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import json
import re
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_lfm import lfm2
from pytest_lfm.errors import LfmError
from pytest_lfm.reference.validation import ClientError

INSTALL_HINT = "scripts/install_sglang_parsers.sh VERSION DIR"
STUBBED = ("xgrammar", "transformers", "IPython")

# Where each piece lives, newest layout first (older releases had sglang/srt/reasoning_parser.py).
TOOL_PARSER_MODULES = ("sglang.srt.function_call.function_call_parser",)
LFM2_DETECTOR_MODULES = ("sglang.srt.function_call.lfm2_detector",)
REASONING_MODULES = ("sglang.srt.parser.reasoning_parser", "sglang.srt.reasoning_parser")
PROTOCOL_MODULES = ("sglang.srt.entrypoints.openai.protocol", "sglang.srt.openai_api.protocol")


class UpstreamParsersError(LfmError):
    """The sglang tree is missing, or a parser module cannot be imported from it."""


# ------------------------------------------------------------------------------------------ loading


class _StubModule(types.ModuleType):
    """A package whose every public attribute is a placeholder class (see the module docstring)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        from pydantic_core import core_schema

        def _any_schema(cls: type, source: Any, handler: Any) -> Any:
            return core_schema.any_schema()

        def _init(self: Any, *args: Any, **kwargs: Any) -> None:
            return None

        placeholder = type(name, (), {
            "__module__": self.__name__,
            "__doc__": f"Placeholder for {self.__name__}.{name} (stubbed by pytest_lfm.reference.upstream).",
            "__init__": _init,
            "__get_pydantic_core_schema__": classmethod(_any_schema),
        })
        setattr(self, name, placeholder)
        return placeholder


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves :data:`STUBBED` packages (and any submodule of them) as :class:`_StubModule`."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in STUBBED:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def read_version(root: Path) -> str | None:
    """The sglang version installed in ``root`` (dist-info ``METADATA``, else ``sglang/_version.py``)."""
    for meta in sorted(root.glob("sglang-*.dist-info/METADATA")):
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
    version_py = root / "sglang" / "_version.py"
    if version_py.is_file():
        m = re.search(r"__version__\s*=\s*(?:version\s*=\s*)?['\"]([^'\"]+)['\"]", version_py.read_text())
        if m:
            return m.group(1)
    return None


def _activate(root: Path) -> None:
    """Make ``import sglang.srt...`` resolve from ``root`` without running ``sglang/__init__.py``."""
    package_dir = root / "sglang"
    loaded = sys.modules.get("sglang")
    if loaded is not None:
        paths = [str(Path(p).resolve()) for p in getattr(loaded, "__path__", [])]
        if paths != [str(package_dir.resolve())]:
            raise UpstreamParsersError(
                f"another sglang package is already imported in this process ({paths or loaded!r})",
                tried=[f"loading the parsers of {package_dir}"],
                remedy="load one sglang tree per process (the reference server runs in its own process)",
            )
        return
    stub = types.ModuleType("sglang", "Stub of sglang/__init__.py (pytest_lfm.reference.upstream).")
    stub.__path__ = [str(package_dir)]
    stub.__file__ = None
    sys.modules["sglang"] = stub
    if str(root) not in sys.path:
        sys.path.append(str(root))
    if not any(isinstance(f, _StubFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _StubFinder())


def _import_first(candidates: Sequence[str], what: str, root: Path, version: str | None) -> types.ModuleType:
    """Import the first module of ``candidates`` that exists, with an error naming every path tried."""
    tried: list[str] = []
    for name in candidates:
        rel = Path(*name.split(".")).with_suffix(".py")
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing == name or (missing.startswith("sglang") and name.startswith(missing + ".")):
                tried.append(f"{name} ({root / rel}: not in sglang {version or '?'})")
                continue
            raise UpstreamParsersError(
                f"sglang {version or '?'}'s {what} ({name}) imports {missing!r}, which is not installed",
                tried=[f"import {name} from {root}"],
                remedy=f"install it with --no-deps into {root} (and add it to DEPS in "
                       f"scripts/install_sglang_parsers.sh), or stub it in pytest_lfm/reference/upstream.py "
                       f"if it is a heavy package used only for types",
            ) from exc
        except Exception as exc:  # a module that exists but fails at import time
            raise UpstreamParsersError(
                f"sglang {version or '?'}'s {what} ({name}) failed to import: {type(exc).__name__}: {exc}",
                tried=[f"import {name} from {root / rel}"],
                remedy="check the release's imports; a new heavy top-level import may need a stub in "
                       "pytest_lfm/reference/upstream.py",
            ) from exc
    raise UpstreamParsersError(
        f"sglang {version or '?'} has no {what} where pytest-lfm looks for it (the release moved the module)",
        tried=tried,
        remedy="find the module's new path in that release and add it to the candidates in "
               "pytest_lfm/reference/upstream.py",
    )


# ------------------------------------------------------------------------------------------ constructors


# Keyword arguments the reference server passes as ``None`` for context a release may not take: 0.5.10-0.5.14's
# ``FunctionCallParser(tools, tool_call_parser)`` and ``ReasoningParser(model_type, stream_reasoning,
# force_reasoning, request)`` take no ``tokenizer`` (both gained it in 0.5.15). An unset context argument a release does not accept is
# left out; any other argument a release does not accept is an error (dropping it would change the parse).
OPTIONAL_CONTEXT = ("tokenizer", "request")


def accepted_kwargs(cls: type, kwargs: Mapping[str, Any], version: str) -> dict[str, Any]:
    """``kwargs`` reduced to what ``cls.__init__`` of this release accepts (see :data:`OPTIONAL_CONTEXT`)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no introspectable signature: pass everything
        return dict(kwargs)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    out: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in params:
            out[name] = value
        elif not (name in OPTIONAL_CONTEXT and value is None):
            raise UpstreamParsersError(
                f"sglang {version}'s {cls.__name__}{inspect.signature(cls)} takes no {name!r} argument",
                tried=[f"{cls.__module__}.{cls.__name__}({', '.join(f'{k}=...' for k in kwargs)})"],
                remedy="teach pytest_lfm/reference/upstream.py this release's constructor",
            )
    return out


# ------------------------------------------------------------------------------------------ parsers


class UpstreamParsers:
    """SGLang's own parser classes from an installed tree, behind the reference server's parser interface.

    The interface (shared with ``serving.ProjectParsers``): ``check_tool_call_parser``,
    ``check_reasoning_parser``, ``parse_function_call``, ``separate_reasoning``, ``parse_tool_calls``,
    ``split_reasoning``, ``streaming_tools``, ``streaming_reasoning``. The ``dialect`` arguments are
    ignored: the installed code *is* the version.
    """

    name = "sglang"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if not (self.root / "sglang").is_dir():
            raise UpstreamParsersError(
                f"no sglang package in {self.root}",
                tried=[str(self.root / "sglang")],
                remedy=f"install one with {INSTALL_HINT} (e.g. scripts/install_sglang_parsers.sh 0.5.23 "
                       f".sglang-parsers/0.5.23) and pass that DIR",
            )
        self.version = read_version(self.root) or "unknown"
        _activate(self.root)
        fcp = _import_first(TOOL_PARSER_MODULES, "function-call parser", self.root, self.version)
        self.lfm2_detector_module = _import_first(LFM2_DETECTOR_MODULES, "lfm2 tool-call detector", self.root,
                                                  self.version)
        rp = _import_first(REASONING_MODULES, "reasoning parser", self.root, self.version)
        protocol = _import_first(PROTOCOL_MODULES, "OpenAI protocol models", self.root, self.version)
        try:
            self.FunctionCallParser = fcp.FunctionCallParser
            self.ReasoningParser = rp.ReasoningParser
            self.Tool = protocol.Tool
        except AttributeError as exc:
            raise UpstreamParsersError(
                f"sglang {self.version}: {exc}", tried=[fcp.__name__, rp.__name__, protocol.__name__],
                remedy="the release renamed a parser class; update pytest_lfm/reference/upstream.py",
            ) from exc
        if "lfm2" not in getattr(self.FunctionCallParser, "ToolCallParserEnum", {}):
            raise UpstreamParsersError(f"sglang {self.version} registers no 'lfm2' tool-call parser",
                                       tried=[fcp.__name__ + ".FunctionCallParser.ToolCallParserEnum"],
                                       remedy="use a release with LFM2 support (0.5.10 or newer)")
        self._probe()

    def _probe(self) -> None:
        """Build each parser once, so a release this adapter cannot drive fails here, once, at start-up —
        not as a 500 on every request."""
        tool = {"type": "function", "function": {"name": "probe", "parameters": {"type": "object"}}}
        steps: list[tuple[str, Any]] = [
            ("FunctionCallParser(tools, 'lfm2').parse_non_stream",
             lambda: self.function_call_parser([tool], "lfm2").parse_non_stream("probe")),
            ("ReasoningParser('qwen3').parse_non_stream",
             lambda: self.reasoning_parser("qwen3").parse_non_stream("<think>a</think>b")),
            ("ReasoningParser('qwen3', stream_reasoning=True, force_reasoning=True).parse_stream_chunk",
             lambda: self.reasoning_parser("qwen3", stream_reasoning=True, force=True).parse_stream_chunk("a")),
        ]
        for what, step in steps:
            try:
                step()
            except UpstreamParsersError:
                raise
            except Exception as exc:
                raise UpstreamParsersError(
                    f"sglang {self.version} ({self.root}) loaded, but {what} failed: {type(exc).__name__}: {exc}",
                    tried=[what],
                    remedy="teach pytest_lfm/reference/upstream.py this release's parser API "
                           "(constructor arguments, method names)",
                ) from exc

    def function_call_parser(self, tools: Sequence[Mapping[str, Any]] | None, parser: str | None) -> Any:
        """``FunctionCallParser(tools, parser)`` with the arguments this release takes."""
        kwargs = {"tools": self.tools(tools), "tool_call_parser": parser, "tokenizer": None}
        return self.FunctionCallParser(**accepted_kwargs(self.FunctionCallParser, kwargs, self.version))

    def reasoning_parser(self, parser: str, *, force: bool | None = None, stream_reasoning: bool | None = None) -> Any:
        """``ReasoningParser(parser, ...)`` with the arguments this release takes (unset ones use its defaults)."""
        kwargs: dict[str, Any] = {"model_type": parser, "request": None, "tokenizer": None}
        if force is not None:
            kwargs["force_reasoning"] = force
        if stream_reasoning is not None:
            kwargs["stream_reasoning"] = stream_reasoning
        return self.ReasoningParser(**accepted_kwargs(self.ReasoningParser, kwargs, self.version))

    def describe(self) -> dict[str, Any]:
        """What was loaded, for ``/server_info`` and the command-line check."""
        return {"version": self.version, "root": str(self.root),
                "lfm2_detector": getattr(self.lfm2_detector_module, "__file__", None),
                "stubbed": [s for s in STUBBED if s in sys.modules and isinstance(sys.modules[s], _StubModule)]}

    # -- helpers

    def tools(self, tools: Sequence[Mapping[str, Any]] | None) -> list[Any]:
        """The request's tools as sglang ``Tool`` models (a 400 for a malformed tool, as the endpoint)."""
        out = []
        for i, t in enumerate(tools or []):
            try:
                out.append(self.Tool.model_validate(t))
            except Exception as exc:  # pydantic.ValidationError
                raise ClientError(f"tools.{i}: {exc}", type_="Bad Request") from exc
        return out

    @staticmethod
    def _calls(items: Sequence[Any]) -> tuple[lfm2.ParsedCall, ...]:
        return tuple(lfm2.ParsedCall(name=i.name or "", parameters=i.parameters, tool_index=i.tool_index)
                     for i in items)

    # -- endpoints

    def check_tool_call_parser(self, parser: Any) -> None:
        """Nothing: an unknown name fails inside ``FunctionCallParser`` (500 there, as on real SGLang)."""

    def check_reasoning_parser(self, parser: Any) -> None:
        """Nothing: an unknown name fails inside ``ReasoningParser`` (500 there, as on real SGLang)."""

    def parse_function_call(self, text: str, tools: Sequence[Mapping[str, Any]], parser: str | None,
                            dialect: lfm2.Dialect | None = None) -> lfm2.ToolParse:
        """``/parse_function_call``: ``FunctionCallParser(tools, parser).parse_non_stream(text)``."""
        normal_text, calls = self.function_call_parser(tools, parser).parse_non_stream(text)
        return lfm2.ToolParse(normal_text=normal_text, calls=self._calls(calls))

    def separate_reasoning(self, text: str, parser: str, return_blocks: bool = False) -> dict[str, Any]:
        """``/separate_reasoning``, as the release's endpoint builds its response (releases without
        ``parse_non_stream_blocks`` ignore ``return_blocks``, as their endpoint does)."""
        rp = self.reasoning_parser(parser)
        return_blocks = return_blocks and hasattr(rp, "parse_non_stream_blocks")
        if return_blocks:
            blocks = rp.parse_non_stream_blocks(text)
            reasoning_text = "".join(b["text"] for b in blocks if b["type"] == "reasoning")
            normal_text = "".join(b["text"] for b in blocks if b["type"] == "text")
        else:
            reasoning_text, normal_text = rp.parse_non_stream(text)
        out: dict[str, Any] = {"reasoning_text": reasoning_text, "text": normal_text}
        if return_blocks:
            out["reasoning_blocks"] = [b["text"] for b in blocks if b["type"] == "reasoning"]
            out["text_blocks"] = [b["text"] for b in blocks if b["type"] == "text"]
            out["blocks"] = blocks
        return out

    # -- chat path

    def parse_tool_calls(self, text: str, tools: Sequence[Mapping[str, Any]] | None,
                         dialect: lfm2.Dialect | None = None) -> lfm2.ToolParse:
        """Non-streaming chat: the ``lfm2`` parser over the content after reasoning."""
        return self.parse_function_call(text, tools or [], "lfm2")

    def split_reasoning(self, text: str, parser: str, force: bool | None = None,
                        strip_all_think: bool = False) -> lfm2.ReasoningSplit:
        """Non-streaming chat: ``ReasoningParser(parser, force_reasoning=force).parse_non_stream``."""
        if strip_all_think:  # a fault mode of the reference server, not SGLang behaviour
            return lfm2.split_reasoning(text, parser, force=force, strip_all_think=True)
        reasoning, normal = self.reasoning_parser(parser, force=bool(force)).parse_non_stream(text)
        return lfm2.ReasoningSplit(reasoning_text=reasoning or "", text=normal or "")

    def streaming_tools(self, tools: Sequence[Mapping[str, Any]], dialect: lfm2.Dialect | None = None) -> Any:
        """Streaming chat: ``FunctionCallParser.parse_stream_chunk`` per increment."""
        return _StreamingTools(self, self.function_call_parser(tools, "lfm2"))

    def streaming_reasoning(self, parser: str, force: bool = False, stream_reasoning: bool = True,
                            leak_think_start: bool = True) -> Any:
        """Streaming chat: ``ReasoningParser.parse_stream_chunk`` per increment (``leak_think_start`` is
        whatever the release does)."""
        return _StreamingReasoning(self.reasoning_parser(parser, force=bool(force),
                                                         stream_reasoning=stream_reasoning))


class _StreamingTools:
    """``feed``/``finish`` over an upstream ``FunctionCallParser`` (the shape of ``lfm2.StreamingToolParser``)."""

    def __init__(self, owner: UpstreamParsers, parser: Any) -> None:
        self._owner = owner
        self._parser = parser

    def feed(self, new_text: str) -> tuple[str, list[lfm2.ParsedCall]]:
        """(text delta, calls) for one increment."""
        text, calls = self._parser.parse_stream_chunk(new_text)
        return text or "", list(self._owner._calls(calls))

    def finish(self) -> tuple[str, list[lfm2.ParsedCall]]:
        """``parse_stream_end`` where the release has it (0.5.18 and later), else nothing."""
        end = getattr(self._parser, "parse_stream_end", None)
        if end is None:
            return "", []
        text, calls = end()
        return text or "", list(self._owner._calls(calls))


class _StreamingReasoning:
    """``feed``/``finish`` over an upstream ``ReasoningParser`` (the shape of ``lfm2.StreamingReasoningParser``)."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser

    @property
    def in_reasoning(self) -> bool:
        """Whether the detector is inside a think block."""
        return bool(getattr(self._parser.detector, "_in_reasoning", False))

    def feed(self, new_text: str) -> tuple[str, str]:
        """(reasoning delta, content delta) for one increment."""
        reasoning, normal = self._parser.parse_stream_chunk(new_text)
        return reasoning or "", normal or ""

    def finish(self) -> tuple[str, str]:
        """``parse_stream_end`` (flushes a held-back tail)."""
        end = getattr(self._parser, "parse_stream_end", None)
        if end is None:
            return "", ""
        reasoning, normal = end()
        return reasoning or "", normal or ""


def main(argv: list[str] | None = None) -> int:
    """``python -m pytest_lfm.reference.upstream DIR``: import the parsers from DIR and print what loaded."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pytest_lfm.reference.upstream DIR", file=sys.stderr)
        return 2
    try:
        parsers = UpstreamParsers(args[0])
        probe = parsers.parse_function_call(
            lfm2.BOT + '[get_weather(city="Oslo")]' + lfm2.EOT,
            [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}], "lfm2")
        split = parsers.split_reasoning("<think>a</think>b", "qwen3-thinking", force=True)
    except UpstreamParsersError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    info = parsers.describe()
    info["smoke"] = {"calls": [c.__dict__ for c in probe.calls], "reasoning": split.__dict__}
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
