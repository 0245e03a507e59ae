"""Engine mode: the conformance checks through SGLang's offline ``sgl.Engine``, in the pytest process.

Liquid's SGLang page documents the offline API this module wraps::

    llm = sgl.Engine(model_path=...)
    prompt = llm.tokenizer_manager.tokenizer.apply_chat_template(messages, tokenize=False,
                                                                  add_generation_prompt=True)
    out = llm.generate(prompt=prompt, sampling_params={...}, image_data=...)   # {"text", "meta_info"}
    llm.shutdown()

Pieces:

* :func:`engine_kwargs`: the ``sgl.Engine`` keyword arguments of one variant: the verified recipe's
  flags (:func:`pytest_lfm.recipe.recipe_flags`, e.g. ``tool_call_parser``/``reasoning_parser``) as
  ``ServerArgs`` fields, the fixture-checkpoint profile that works on the lent H100 (below), and the
  user's ``--lfm-engine-arg KEY=VALUE`` overrides, in that order.
* :func:`make_engine`: the default factory, ``sglang.Engine(model_path=..., **kwargs)`` (SGLang is
  imported only here). ``LFM_ENGINE_FACTORY=module:function`` (or ``path/to/file.py:function``)
  replaces it; the project's tests use a fake engine that way.
* :class:`EngineHandle`: one engine for one variant: ``generate`` returns an :class:`EngineResult`,
  ``chat`` renders messages with the engine's own chat template first, and the parse helpers apply
  SGLang's own ``FunctionCallParser`` / ``ReasoningParser`` when importable (as a user of the offline
  engine would), else the project's :mod:`pytest_lfm.lfm2`.
* :class:`EnginePool`: the engines of a run. At most one is alive at a time: SGLang sizes its memory
  pools from the GPU memory free at start-up, and ``Engine.shutdown()`` kills *every* child process of
  the calling process, so two engines in one process cannot coexist. Engines start on first use (a
  variant whose checks all skip never starts one) and the pool stops them at session end, on failure,
  on Ctrl-C and at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import sys
import time
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_lfm import lfm2
from pytest_lfm.config import parse_engine_arg as parse_engine_arg  # re-exported; lives in config
from pytest_lfm.errors import LfmError, LfmUsageError
from pytest_lfm.hardware import Hardware
from pytest_lfm.recipe import recipe_flags
from pytest_lfm.variants import Variant, is_fixture_checkpoint

HTTP_SKIP = "checks the HTTP API; engine mode has none"
FACTORY_ENV = "LFM_ENGINE_FACTORY"
DEFAULT_FACTORY = "pytest_lfm.engine:make_engine"
# Flags whose ServerArgs field is not the flag's name.
_FIELD_ALIASES = {"tp": "tp_size"}
# What works for the project's tiny random-weight checkpoints on a Hopper GPU with SGLang 0.5.17
# (/work/shared/reference/gpu-sglang-0.5.17.md "What it took to run"; .gpu/start_sglang.sh): FA3 needs a
# library the lent image lacks, triton attention rejects Lfm2ForCausalLM, CUDA graphs only cost time.
FIXTURE_PROFILE: Mapping[str, Any] = {
    "attention_backend": "torch_native",
    "sampling_backend": "pytorch",
    "disable_cuda_graph": True,
    "mem_fraction_static": 0.3,
    "context_length": 2048,
}
FIXTURE_VL_PROFILE: Mapping[str, Any] = {"mm_attention_backend": "triton_attn"}  # scripts/gpu_gate.sh vl
EOS_MARKERS = (lfm2.IM_END, "<|endoftext|>")
TRACE_LINES = 20


class EngineFailed(LfmError):
    """An engine could not be created, or its factory could not be loaded."""


# ------------------------------------------------------------------------------------------ kwargs


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def recipe_kwargs(variant: Variant, hardware: Hardware | None) -> dict[str, Any]:
    """The verified recipe's server flags for the cell as ``ServerArgs`` fields (``--tp 1`` →
    ``tp_size=1``, ``--trust-remote-code`` → ``trust_remote_code=True``). Unknown hardware: the flags
    that do not depend on it (parsers, ``--mem-fraction-static``)."""
    out: dict[str, Any] = {}
    flags = recipe_flags(variant, hardware) if hardware is not None else _hardware_free_flags(variant)
    for flag in flags:
        name = flag[0].lstrip("-").replace("-", "_")
        name = _FIELD_ALIASES.get(name, name)
        out[name] = True if len(flag) == 1 else _value(flag[1])
    return out


def _hardware_free_flags(variant: Variant) -> list[list[str]]:
    flags: list[list[str]] = [["--trust-remote-code"], ["--tp", "1"]]
    if variant.tool_call_parser:
        flags.append(["--tool-call-parser", variant.tool_call_parser])
    if variant.reasoning_parser:
        flags.append(["--reasoning-parser", variant.reasoning_parser])
    if variant.recipe.mem_fraction_static is not None:
        flags.append(["--mem-fraction-static", str(variant.recipe.mem_fraction_static)])
    return flags


def engine_kwargs(variant: Variant, hardware: Hardware | None, model_path: str,
                  overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``sgl.Engine`` keyword arguments (without ``model_path``): recipe flags, then the fixture-checkpoint
    profile when ``model_path`` is one of the project's tiny random-weight checkpoints, then ``overrides``
    (``--lfm-engine-arg``); a later source wins. An override of ``null`` removes the argument."""
    kwargs = recipe_kwargs(variant, hardware)
    if is_fixture_checkpoint(model_path):
        kwargs.update(FIXTURE_PROFILE)
        if variant.supports("vision"):
            kwargs.update(FIXTURE_VL_PROFILE)
    for key, value in (overrides or {}).items():
        if value is None:
            kwargs.pop(key, None)
        else:
            kwargs[key] = value
    return kwargs


def engine_env(variant: Variant, model_path: str) -> dict[str, str]:
    """Environment variables of the recipe (VL: CUDA-IPC transport), set before the engine starts. Left out
    for fixture checkpoints, which the GPU gate served without them."""
    return {} if is_fixture_checkpoint(model_path) else dict(variant.recipe.env)


# ------------------------------------------------------------------------------------------ factory

Factory = Callable[[Variant, str, Mapping[str, Any]], Any]


def make_engine(variant: Variant, model_path: str, kwargs: Mapping[str, Any]) -> Any:
    """The default factory: ``sglang.Engine(model_path=model_path, **kwargs)`` (imports SGLang here)."""
    import sglang

    return sglang.Engine(model_path=model_path, **kwargs)


def load_factory(spec: str | None = None) -> tuple[Factory, str]:
    """The engine factory named by ``spec`` (default: ``$LFM_ENGINE_FACTORY``, else :func:`make_engine`) and
    the spec used. ``module:function`` imports a module; ``path/to/file.py:function`` loads a file."""
    spec = (spec if spec is not None else os.environ.get(FACTORY_ENV, "")).strip() or DEFAULT_FACTORY
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name:
        raise LfmUsageError(f"{FACTORY_ENV}={spec!r}: expected module:function or path/to/file.py:function",
                            remedy=f"unset {FACTORY_ENV} to use sglang.Engine, or fix its value")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser().resolve()
            loader_spec = importlib.util.spec_from_file_location(f"_lfm_engine_factory_{path.stem}", path)
            if loader_spec is None or loader_spec.loader is None or not path.is_file():
                raise ImportError(f"no Python file at {path}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[loader_spec.name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        factory = getattr(module, func_name)
    except (ImportError, AttributeError) as exc:
        raise LfmUsageError(f"cannot load the engine factory {spec!r}: {exc}",
                            tried=[f"{FACTORY_ENV}={spec}" if spec != DEFAULT_FACTORY else DEFAULT_FACTORY],
                            remedy=f"point {FACTORY_ENV} at an importable module:function, or unset it") from None
    if not callable(factory):
        raise LfmUsageError(f"{FACTORY_ENV}={spec!r} names {type(factory).__name__}, not a function",
                            remedy="name a function (variant, model_path, kwargs) -> engine")
    return factory, spec


def factory_version(factory: Factory, spec: str) -> str | None:
    """The SGLang version the engines will report: the installed ``sglang`` distribution for the default
    factory, else the factory's ``sglang_version`` attribute or its module's ``SGLANG_VERSION``."""
    if spec == DEFAULT_FACTORY:
        return sglang_version()
    version = getattr(factory, "sglang_version", None)
    if version is None:
        version = getattr(sys.modules.get(getattr(factory, "__module__", "") or ""), "SGLANG_VERSION", None)
    return str(version) if version else None


def sglang_version() -> str:
    """``sglang.__version__`` of the SGLang this Python imports (read from its distribution metadata first,
    which avoids importing SGLang's dependencies); a usage error when SGLang is not importable."""
    if importlib.util.find_spec("sglang") is None:
        raise LfmUsageError(
            f"--lfm-engine runs sgl.Engine in this Python ({sys.executable}), and SGLang is not importable here",
            tried=["import sglang", f"sys.path: {os.pathsep.join(p for p in sys.path if p)[:300]}"],
            remedy="install SGLang in this environment (pip install 'sglang>=0.5.10'), or put an unpacked SGLang "
                   "on PYTHONPATH (scripts/gpu_engine_run.sh does), or check a server with --lfm-launch / "
                   "--lfm-server instead",
        )
    try:
        return importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        import sglang

        return str(getattr(sglang, "__version__", "unknown"))


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class EngineResult:
    """One ``Engine.generate`` answer: the text and the ``meta_info`` fields the checks read."""

    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    matched_stop: Any = None
    meta_info: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_output(cls, out: Mapping[str, Any]) -> EngineResult:
        """From ``{"text", "meta_info": {"finish_reason": {"type", ...}, "prompt_tokens", ...}}``."""
        meta = dict(out.get("meta_info") or {})
        reason = meta.get("finish_reason")
        kind = reason.get("type") if isinstance(reason, Mapping) else reason
        matched = reason.get("matched") if isinstance(reason, Mapping) else None
        return cls(text=str(out.get("text") or ""), finish_reason=None if kind is None else str(kind),
                   prompt_tokens=int(meta.get("prompt_tokens") or 0),
                   completion_tokens=int(meta.get("completion_tokens") or 0), matched_stop=matched, meta_info=meta)


def strip_eos(text: str) -> str:
    """The text without end-of-turn markers at its end (kept when ``skip_special_tokens`` is false)."""
    changed = True
    while changed:
        changed = False
        for marker in EOS_MARKERS:
            if text.endswith(marker):
                text, changed = text[: -len(marker)], True
    return text


@dataclass(frozen=True)
class ToolCallParse:
    """``normal_text`` and calls (``{"name", "arguments"}``) of one parse, and which parser made it."""

    normal_text: str
    calls: list[dict[str, Any]]
    source: str


@dataclass(frozen=True)
class ReasoningParse:
    """``reasoning_text`` and ``text`` of one split, and which parser made it."""

    reasoning_text: str
    text: str
    source: str


# ------------------------------------------------------------------------------------------ handle


class EngineHandle:
    """One engine serving one variant (created by its factory on :meth:`start`)."""

    def __init__(self, variant: Variant, model_path: str, kwargs: Mapping[str, Any], factory: Factory,
                 version: str | None = None, env: Mapping[str, str] | None = None) -> None:
        self.variant = variant
        self.model_path = model_path
        self.kwargs = dict(kwargs)
        self.factory = factory
        self.version = version
        self.env = dict(env or {})
        self.engine: Any = None
        self.started_after: float | None = None
        """Seconds the last start took (the factory call: loading weights, starting SGLang's processes)."""
        self.start_reported = False
        self.creations = 0

    # -- lifecycle

    @property
    def alive(self) -> bool:
        """True between a successful :meth:`start` and :meth:`shutdown`."""
        return self.engine is not None

    def start(self) -> None:
        """Create the engine (no-op when alive); raises :class:`EngineFailed` with what was tried."""
        if self.engine is not None:
            return
        for key, value in self.env.items():
            os.environ.setdefault(key, value)
        t0 = time.monotonic()
        try:
            engine = self.factory(self.variant, self.model_path, dict(self.kwargs))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            frames = "".join(traceback.format_exception(exc)).rstrip().splitlines()[-TRACE_LINES:]
            raise EngineFailed(
                f"sgl.Engine for {self.variant.id} did not start: {type(exc).__name__}: {exc}\n"
                f"Last {len(frames)} traceback lines:\n" + "\n".join(frames),
                tried=[f"model_path={self.model_path}",
                       "kwargs: " + ", ".join(f"{k}={v!r}" for k, v in sorted(self.kwargs.items()))],
                remedy="read the error above (SGLang logs at log_level=error by default; pass --lfm-engine-arg "
                       "log_level=info for more); adjust arguments with --lfm-engine-arg KEY=VALUE, e.g. "
                       "mem_fraction_static=0.3 or attention_backend=torch_native",
            ) from exc
        self.engine = engine
        self.creations += 1
        self.started_after = time.monotonic() - t0
        self.start_reported = False
        _reclaim_sigterm()

    def shutdown(self) -> None:
        """``engine.shutdown()`` (idempotent; never raises)."""
        engine, self.engine = self.engine, None
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.shutdown()

    def _engine(self) -> Any:
        if self.engine is None:
            raise EngineFailed(f"the engine for {self.variant.id} is not running",
                               remedy="use the lfm_engine fixture, which starts it")
        return self.engine

    # -- generation

    def generate(self, prompt: str, sampling_params: Mapping[str, Any] | None = None,
                 image_data: Any = None, **extra: Any) -> EngineResult:
        """``engine.generate(prompt=..., sampling_params=..., image_data=...)`` for one prompt."""
        kwargs: dict[str, Any] = {"prompt": prompt, "sampling_params": dict(sampling_params or {}), **extra}
        if image_data is not None:
            kwargs["image_data"] = image_data
        try:
            out = self._engine().generate(**kwargs)
        finally:
            _reclaim_sigterm()
        if isinstance(out, list):  # a batch of one
            out = out[0]
        return EngineResult.from_output(out)

    @property
    def tokenizer(self) -> Any:
        """``engine.tokenizer_manager.tokenizer`` (the seed's way to reach the chat template)."""
        return self._engine().tokenizer_manager.tokenizer

    def chat_prompt(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None,
                    **template_kwargs: Any) -> str:
        """The prompt text of a conversation, rendered with the engine's chat template and the generation
        prompt. With image parts, the processor's template (``tokenizer_manager.processor``), as the seed's
        vision example does, when the engine has one."""
        manager = self._engine().tokenizer_manager
        processor = getattr(manager, "processor", None)
        kwargs: dict[str, Any] = {"tokenize": False, "add_generation_prompt": True, **template_kwargs}
        if tools:
            kwargs["tools"] = list(tools)
        if _has_images(messages) and processor is not None and hasattr(processor, "apply_chat_template"):
            try:
                return str(processor.apply_chat_template(list(messages), **kwargs))
            except ValueError:  # a processor without its own chat template: the tokenizer's renders images too
                pass
        return str(manager.tokenizer.apply_chat_template(list(messages), **kwargs))

    def chat(self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None,
             sampling_params: Mapping[str, Any] | None = None, image_data: Any = None,
             **template_kwargs: Any) -> EngineResult:
        """Render the conversation with the engine's chat template, then :meth:`generate`; without
        ``sampling_params``, with the variant's recommended sampling preset (as ``lfm_chat`` sends it)."""
        params = self.variant.sampling.params() if sampling_params is None else sampling_params
        return self.generate(self.chat_prompt(messages, tools, **template_kwargs), params, image_data=image_data)

    # -- parsers, the way an offline user applies them

    @property
    def tool_call_parser(self) -> str:
        """The engine's ``tool_call_parser`` (recipe or override), ``lfm2`` when none is set."""
        return str(self.kwargs.get("tool_call_parser") or self.variant.tool_call_parser or "lfm2")

    @property
    def reasoning_parser(self) -> str | None:
        """The engine's ``reasoning_parser`` (recipe or override)."""
        value = self.kwargs.get("reasoning_parser", self.variant.reasoning_parser)
        return str(value) if value else None

    def parse_tool_calls(self, text: str, tools: Sequence[Mapping[str, Any]]) -> ToolCallParse:
        """SGLang's ``FunctionCallParser(tools, tool_call_parser).parse_non_stream(text)`` when SGLang's parser
        code is importable here, else :func:`pytest_lfm.lfm2.parse_tool_calls`."""
        try:
            from sglang.srt.entrypoints.openai.protocol import Tool
            from sglang.srt.function_call.function_call_parser import FunctionCallParser
        except Exception as exc:  # ImportError, or an SGLang dependency failing at import
            return project_tool_calls(text, tools, self.version,
                                      source=f"pytest_lfm.lfm2 (SGLang's parser not importable: {exc})")
        parser = FunctionCallParser(tools=[Tool.model_validate(t) for t in tools],
                                    tool_call_parser=self.tool_call_parser)
        normal, items = parser.parse_non_stream(text)
        calls = [{"name": i.name, "arguments": _json_or_raw(i.parameters)} for i in items]
        return ToolCallParse(normal_text=normal or "", calls=calls,
                             source=f"sglang FunctionCallParser({self.tool_call_parser!r})")

    def separate_reasoning(self, text: str, parser: str | None = None) -> ReasoningParse:
        """SGLang's ``ReasoningParser(parser).parse_non_stream(text)`` when importable, else
        :func:`pytest_lfm.lfm2.split_reasoning` (``qwen3-thinking`` forced, as SGLang's parser does)."""
        name = parser or self.reasoning_parser
        if not name:
            raise EngineFailed(f"{self.variant.id} has no reasoning parser", remedy="pass the parser name")
        try:
            from sglang.srt.parser.reasoning_parser import ReasoningParser
        except Exception as exc:
            split = lfm2.split_reasoning(text, name)
            return ReasoningParse(split.reasoning_text, split.text,
                                  f"pytest_lfm.lfm2 (SGLang's parser not importable: {exc})")
        reasoning, normal = ReasoningParser(model_type=name).parse_non_stream(text)
        return ReasoningParse(reasoning or "", normal or "", f"sglang ReasoningParser({name!r})")

    def describe(self) -> dict[str, Any]:
        """What this engine is, for ``Target.server_args`` and the report."""
        return {"model_path": self.model_path, **self.kwargs}


def project_tool_calls(text: str, tools: Sequence[Mapping[str, Any]], version: str | None,
                       source: str = "pytest_lfm.lfm2") -> ToolCallParse:
    """The project's own ``lfm2`` parse (SGLang's detector rules for ``version``)."""
    parsed = lfm2.parse_tool_calls(text, tools, lfm2.Dialect.for_version(version))
    return ToolCallParse(normal_text=parsed.normal_text,
                         calls=[{"name": c.name, "arguments": c.arguments} for c in parsed.calls], source=source)


def _json_or_raw(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {"<invalid JSON>": text}


def _has_images(messages: Sequence[Mapping[str, Any]]) -> bool:
    for m in messages:
        content = m.get("content")
        if isinstance(content, list) and any(isinstance(p, Mapping) and p.get("type") in ("image", "image_url")
                                             for p in content):
            return True
    return False


# ------------------------------------------------------------------------------------------ pool


_POOLS: weakref.WeakSet[EnginePool] = weakref.WeakSet()


class EnginePool:
    """The engines of a run, one per variant, at most one alive at a time; :meth:`stop` shuts down all."""

    def __init__(self, handles: Sequence[EngineHandle]) -> None:
        self.handles = {h.variant.id: h for h in handles}
        self.failures: dict[str, EngineFailed] = {}
        _POOLS.add(self)

    def acquire(self, variant_id: str) -> EngineHandle:
        """The live engine of a variant: shuts down another variant's engine first, starts this one if needed.
        A start that failed once fails again at once with the same error (no second start-up)."""
        handle = self.handles[variant_id]
        if variant_id in self.failures:
            raise self.failures[variant_id]
        if not handle.alive:
            for other in self.handles.values():
                if other is not handle:
                    other.shutdown()
            try:
                handle.start()
            except EngineFailed as exc:
                self.failures[variant_id] = exc
                raise
        return handle

    def stop(self) -> None:
        """Shut down every engine (idempotent)."""
        for handle in self.handles.values():
            handle.shutdown()


@atexit.register
def _stop_pools_at_exit() -> None:
    for pool in list(_POOLS):
        with contextlib.suppress(Exception):
            pool.stop()


def _reclaim_sigterm() -> None:
    """SGLang's tokenizer manager installs an asyncio SIGTERM handler on its event loop (it only sets a
    drain flag); give SIGTERM back to the run's handler so a CI timeout still tears everything down."""
    from pytest_lfm.server.process import reclaim_sigterm_handler

    reclaim_sigterm_handler()
