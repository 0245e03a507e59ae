"""Engine mode: the checks that mean something without HTTP, through SGLang's offline ``sgl.Engine``.

Run with ``--lfm-engine --lfm-model-path VARIANT=PATH`` (README "Engine mode"). Every check uses the
``lfm_engine`` fixture and skips with "needs --lfm-engine" on server targets; in engine mode the HTTP
checks of the other modules skip with "checks the HTTP API; engine mode has none".

As a user of the offline engine would, the checks render chats with the engine's own chat template
(``tokenizer_manager.tokenizer.apply_chat_template``), send SGLang's ``sampling_params`` keys
(``max_new_tokens``, ``temperature``, ``top_k``, ``min_p``, ``repetition_penalty``, ``regex``,
``ignore_eos``, ``skip_special_tokens``, ``sampling_seed``), pass images as ``image_data``, read
``meta_info`` (``finish_reason``, ``prompt_tokens``, ``completion_tokens``), and apply SGLang's own
``FunctionCallParser`` / ``ReasoningParser`` to the text: the engine returns raw text, the parsers run
only in the HTTP layer. Every proof holds on a random-weight fixture checkpoint (forced outputs,
sampler semantics), except the content check that needs real weights. GPU-marked: runs only when the
hardware is known (``--lfm-hardware`` or nvidia-smi). Sections cite ``docs/sglang-behaviour.md``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

import pytest

from pytest_lfm import lfm2
from pytest_lfm.assertions import (
    expect_equal,
    expect_penalty_changes_repetition,
    expect_restriction_is_greedy,
    expect_true,
)
from pytest_lfm.cases import Case, load_cases
from pytest_lfm.engine import EngineHandle, EngineResult, project_tool_calls, strip_eos
from pytest_lfm.hardware import hardware_ids
from pytest_lfm.imageserver import images_dir
from pytest_lfm.inputs import PROSE, REPEAT_PROMPTS, SEED_PROMPT, WEATHER_Q
from pytest_lfm.server.base import Target

pytestmark = pytest.mark.lfm_hardware(*hardware_ids())

SEEDS = (11, 23, 37, 41)
MAX_NEW = 16
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather for a location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"},
                                                        "unit": {"type": "string"}}, "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "search", "description": "Search the web",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                       "required": ["query"]}}},
]
THINKING_OFF: dict[str, Any] = {"enable_thinking": False}
# LFM2-VL takes 64-256 tokens per image tile; half of one tile is a safe lower bound (as test_vision.py).
MIN_IMAGE_TOKENS = 32
IMAGE = "red.png"
RESTRICTIONS = load_cases("engine")  # cases/restrictions.toml
_BASELINES: dict[str, tuple[str, dict[int, str]]] = {}


def forced_params(text: str) -> dict[str, Any]:
    """``sampling_params`` that force the raw output to be exactly ``text``: SGLang's ``regex`` constraint
    (§1.5), greedy, special tokens kept in the text (``<|tool_call_start|>``, ``<think>``). Through the
    engine the constraint applies from the first token even with a reasoning parser configured, because
    ``generate`` defaults to ``require_reasoning=False`` (the HTTP layer instead waits for ``</think>``
    unless thinking is off, gpu-sglang-0.5.17.md)."""
    return {"regex": re.escape(text), "temperature": 0, "max_new_tokens": len(text.encode()) + 64,
            "skip_special_tokens": False, "spaces_between_special_tokens": False}


def expect_forced(what: str, forced: str, result: EngineResult) -> str:
    """The generated text is the forced text (end-of-turn markers after it allowed); returns the text."""
    __tracebackhide__ = True
    text = strip_eos(result.text)
    expect_equal(f"{what}: the regex-forced output", forced, text,
                 {"raw text": result.text, "finish_reason": result.finish_reason})
    return text


# ------------------------------------------------------------------------------------------ sampling


def test_engine_greedy_repeatable(lfm_engine: EngineHandle, record_property: Callable[[str, object], None]) -> None:
    """Greedy decoding (temperature 0 → top_k 1) through ``Engine.generate`` gives the same text for 3
    sequential identical requests (3 of 3), and generates ``max_new_tokens`` tokens or stops (§12: greedy
    repeatability for sequential requests; §3.1)."""
    texts = [lfm_engine.generate(PROSE, {"temperature": 0, "max_new_tokens": MAX_NEW}) for _ in range(3)]
    record_property("lfm_statistic", f"{len({r.text for r in texts})} distinct texts from 3 greedy requests")
    expect_true("sequential greedy requests give the same text", len({r.text for r in texts}) == 1,
                "3 identical texts", [r.text for r in texts])
    first = texts[0]
    expect_true("a greedy request generates tokens", 0 < first.completion_tokens <= MAX_NEW,
                f"1..{MAX_NEW} completion tokens", first.completion_tokens, {"meta_info": dict(first.meta_info)})


@pytest.mark.parametrize("case", RESTRICTIONS, ids=str)
def test_engine_restriction_makes_temperature_1_greedy(lfm_engine: EngineHandle, lfm_target: Target,
                                                       case: Case,
                                                       record_property: Callable[[str, object], None]) -> None:
    """``top_k=1`` / ``min_p=1.0`` in ``sampling_params`` reach the sampler: at temperature 1, for each of 4
    requests (``sampling_seed`` 11, 23, 37, 41; the seed fixes the draw only with
    ``enable_deterministic_inference``, otherwise they are 4 independent draws) the text equals the
    temperature-0 text (4 of 4); without the filter the same requests leave greedy at least once (at least
    1 of 4), so the filter, not the temperature, did it (§3.1 sampler fields; §4: temperature < 1e-6 is
    greedy)."""
    if lfm_target.id not in _BASELINES:
        greedy = lfm_engine.generate(PROSE, {"temperature": 0, "max_new_tokens": MAX_NEW}).text
        free = {s: lfm_engine.generate(PROSE, {"temperature": 1.0, "sampling_seed": s,
                                               "max_new_tokens": MAX_NEW}).text for s in SEEDS}
        _BASELINES[lfm_target.id] = (greedy, free)
    greedy, free = _BASELINES[lfm_target.id]
    extra: dict[str, Any] = case["fields"]
    restricted = {s: lfm_engine.generate(PROSE, {"temperature": 1.0, "sampling_seed": s, "max_new_tokens": MAX_NEW,
                                                 **extra}).text for s in SEEDS}
    expect_restriction_is_greedy(case.id, greedy, free, restricted, record_property,
                                 "applied from sampling_params", {"sampling_params": extra})


def test_engine_repetition_penalty_changes_repetitive_greedy(lfm_engine: EngineHandle, lfm_target: Target,
                                                             record_property: Callable[[str, object], None]) -> None:
    """On prompts that make the model repeat, greedy output with ``repetition_penalty=2.0`` differs from
    ``1.0`` and repeats itself less (§3.1; §4 range (0, 2]). k of n: 2 of 2 prompts with real weights; >= 1
    of 2 on a random-weight fixture checkpoint, whose greedy token can lead by so much that halving its
    logit leaves it first (docs/runs/2026-11-22-h100-sglang-0.5.17)."""
    def run(rp: float) -> list[str]:
        return [lfm_engine.generate(p, {"temperature": 0, "repetition_penalty": rp, "max_new_tokens": 32}).text
                for p in REPEAT_PROMPTS]

    plain, penal = run(1.0), run(2.0)
    need = len(plain) if lfm_target.real_weights else 1
    expect_penalty_changes_repetition(plain, penal, need, record_property, {})


# ------------------------------------------------------------------------------------------ forced outputs


@pytest.mark.lfm_requires("tools")
def test_engine_forced_tool_calls_parse(lfm_engine: EngineHandle, lfm_target: Target,
                                        record_property: Callable[[str, object], None]) -> None:
    """A chat rendered with the engine's template and tools, forced with ``regex`` to text plus two pythonic
    calls (one argument with backslashes and quotes), comes back exactly as forced; the project's ``lfm2``
    parse of it gives the two calls and the text before them; and SGLang's own ``FunctionCallParser`` with
    the engine's ``tool_call_parser`` (what an offline user applies) gives the same calls and
    ``normal_text`` (§1.2 format, §1.3 text before a call, §1.5 constraints, §5)."""
    expected: list[dict[str, Any]] = [
                {"name": "get_weather", "arguments": {"location": "São Paulo", "unit": "celsius"}},
                {"name": "search", "arguments": {"query": 'a \\d+ "quoted" path C:\\tmp', "limit": 3}}]
    forced = "Looking it up. " + lfm2.render_tool_calls([(c["name"], c["arguments"]) for c in expected])
    result = lfm_engine.chat(WEATHER_Q, tools=TOOLS, sampling_params=forced_params(forced), **THINKING_OFF)
    text = expect_forced("tool calls", forced, result)
    own = project_tool_calls(text, TOOLS, lfm_target.version)
    context = {"text": text, "dialect": lfm2.Dialect.for_version(lfm_target.version).version}
    expect_equal("the project's lfm2 parse: calls", expected, own.calls, context)
    expect_equal("the project's lfm2 parse: normal_text", "Looking it up.", own.normal_text.strip(), context)
    engine_parse = lfm_engine.parse_tool_calls(text, TOOLS)
    record_property("parser", engine_parse.source)
    context["engine parser"] = engine_parse.source
    expect_equal("the engine's parser: calls == the project's parse", own.calls, engine_parse.calls, context)
    expect_equal("the engine's parser: normal_text == the project's parse", own.normal_text.strip(),
                 engine_parse.normal_text.strip(), context)


@pytest.mark.lfm_requires("reasoning")
def test_engine_forced_reasoning_split(lfm_engine: EngineHandle, lfm_target: Target,
                                       record_property: Callable[[str, object], None]) -> None:
    """A chat forced with ``regex`` to ``<think>abc</think>answer`` comes back exactly so (``<think>`` kept
    with ``skip_special_tokens`` false), and SGLang's ``ReasoningParser`` with the engine's reasoning parser
    splits it into reasoning ``abc`` and content ``answer``, as the project's split does (§2: ``qwen3``
    and ``qwen3-thinking`` give ("abc", "answer") for this input; gpu-sglang-0.5.17.md)."""
    forced = "<think>abc</think>answer"
    result = lfm_engine.chat([{"role": "user", "content": "What is the capital of France?"}],
                             sampling_params=forced_params(forced), **THINKING_OFF)
    text = expect_forced("reasoning", forced, result)
    parser = lfm_engine.reasoning_parser or lfm_target.variant.reasoning_parser or "qwen3"
    split = lfm_engine.separate_reasoning(text, parser)
    record_property("parser", split.source)
    context = {"text": text, "parser": split.source}
    expect_equal("reasoning_text", "abc", split.reasoning_text, context)
    expect_equal("text after </think>", "answer", split.text.strip(), context)
    own = lfm2.split_reasoning(text, parser)
    expect_equal("the engine's parser == the project's split", (own.reasoning_text, own.text.strip()),
                 (split.reasoning_text, split.text.strip()), context)


# ------------------------------------------------------------------------------------------ completions


@pytest.mark.lfm_requires("completions")
def test_engine_completion_length_accounting(lfm_engine: EngineHandle) -> None:
    """A raw prompt (the completion path, the only one for Base, §11.3) with ``max_new_tokens=12``
    and ``ignore_eos`` stops on length: ``meta_info.finish_reason.type == "length"``,
    ``completion_tokens == 12``, ``prompt_tokens > 0`` (§3.2; §12 usage arithmetic)."""
    result = lfm_engine.generate(SEED_PROMPT, {"temperature": 0, "max_new_tokens": 12, "ignore_eos": True})
    context = {"meta_info": dict(result.meta_info), "text": result.text}
    expect_equal("finish_reason with ignore_eos", "length", result.finish_reason, context)
    expect_equal("completion_tokens == max_new_tokens", 12, result.completion_tokens, context)
    expect_true("prompt_tokens counts the prompt", result.prompt_tokens > 0, "> 0", result.prompt_tokens, context)


@pytest.mark.lfm_requires("completions", "real_weights")
def test_engine_capital_of_france(lfm_engine: EngineHandle, record_property: Callable[[str, object], None]) -> None:
    """With real weights, the seed's prompt "The capital of France is" is continued with Paris: greedy, 32
    tokens (1 of 1, greedy is deterministic) (§11.3; §3.2)."""
    text = lfm_engine.generate(SEED_PROMPT, {"temperature": 0, "max_new_tokens": 32}).text
    record_property("lfm_statistic", "greedy, 1 of 1 completions must mention Paris")
    expect_true("the completion names the capital", "paris" in text.lower(), "a text mentioning Paris", text)


# ------------------------------------------------------------------------------------------ vision


def _image(delivery: str) -> str:
    path = images_dir() / IMAGE
    if delivery == "path":
        return str(path)
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.mark.lfm_requires("vision")
@pytest.mark.parametrize("delivery", ["data_uri", "path"])
def test_engine_image_data(lfm_engine: EngineHandle, delivery: str,
                           record_property: Callable[[str, object], None]) -> None:
    """An image passed as ``image_data`` (a data URI, or a local path the engine reads, §6 loading) with a
    chat prompt holding the image placeholder generates tokens, and ``prompt_tokens`` exceeds the same
    question without the image by at least half a tile of image tokens (§6: placeholder ``<image>``
    expanded to 64-256 tokens per tile)."""
    question = "Describe this image in one short sentence."
    with_image = [{"role": "user", "content": [{"type": "image", "image": "placeholder"},
                                               {"type": "text", "text": question}]}]
    sampling = {"temperature": 0, "max_new_tokens": 16}
    seen = lfm_engine.chat(with_image, sampling_params=sampling, image_data=_image(delivery))
    plain = lfm_engine.chat([{"role": "user", "content": question}], sampling_params=sampling)
    record_property("lfm_statistic", f"prompt_tokens {plain.prompt_tokens} -> {seen.prompt_tokens} with the image")
    context = {"with image": dict(seen.meta_info), "without": dict(plain.meta_info), "text": seen.text}
    expect_true("the image turn generates tokens", seen.completion_tokens > 0, "> 0 completion tokens",
                seen.completion_tokens, context)
    expect_true("the image adds prompt tokens", seen.prompt_tokens >= plain.prompt_tokens + MIN_IMAGE_TOKENS,
                f">= {plain.prompt_tokens} + {MIN_IMAGE_TOKENS}", seen.prompt_tokens, context)
