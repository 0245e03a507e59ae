"""The ``lfm2`` tool-call parser, model-free, through ``POST /parse_function_call`` (§1, §7, §10).

Two kinds of checks, both independent of the model's weights (they run the server's real parser on a
given string, so they are exact on a random-weight fixture checkpoint too):

* a data-driven corpus (``conformance/tool_calls/cases/*.toml``): one behaviour per case, with a
  statement as its description and the section of the behaviour notes it relies on; behaviour that
  changed between SGLang releases is gated on the server's version, known upstream gaps are strict
  expected failures with a link;
* a property-based differential: generated tools and calls are rendered with the project's own LFM2
  renderer (:func:`pytest_lfm.lfm2.render_tool_calls`) and the server's parse must return exactly those
  calls. Hypothesis profiles: ``ci`` (default: 200 derandomized examples per form) and ``gpu`` (fewer
  examples, no deadline, for remote servers); pick one with ``LFM_HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pytest_lfm.assertions import expect_true, fail
from pytest_lfm.cases import Case, load_cases
from pytest_lfm.client import LfmHttp
from pytest_lfm.hypo import check_settings, examples_for
from pytest_lfm.inputs import tool as tool_fixture
from pytest_lfm.lfm2 import BOT, EOT, render_json_tool_calls, render_tool_calls
from pytest_lfm.server.base import Target

pytestmark = pytest.mark.lfm_requires("tools")

DEFAULT_TOOLS = ("get_weather", "search", "ping")
CASES = load_cases("tool_calls")

FULL_EXAMPLES = 200  # against the reference server; a real server gets REMOTE_EXAMPLES
REMOTE_EXAMPLES = 100
# The parser is model-free: targets that run the same SGLang version and parser backend run the same code.
# The first such target in a session gets the full profile; the others a smoke run of SMOKE_EXAMPLES.
SMOKE_EXAMPLES = 25
_FULL_RUN_DONE: set[tuple[Any, ...]] = set()


def parse(http: LfmHttp, text: str, tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``POST /parse_function_call`` with the ``lfm2`` parser; must answer 200 with normal_text and calls."""
    __tracebackhide__ = True
    data = http.post_json("/parse_function_call", {"text": text, "tools": list(tools), "tool_call_parser": "lfm2"})
    expect_true("/parse_function_call answers {normal_text, calls}",
                isinstance(data.get("normal_text"), str) and isinstance(data.get("calls"), list),
                "normal_text (string) and calls (list)", data, {"text": text})
    return data


def _decoded(parameters: Any) -> Any:
    try:
        return json.loads(parameters)
    except (TypeError, ValueError):
        return {"<invalid JSON>": parameters}


def _compare_calls(expected: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]],
                   what: str, context: dict[str, Any]) -> None:
    __tracebackhide__ = True
    exp_core = [{"name": c["name"], "arguments": json.loads(c["arguments"])} for c in expected]
    act_core = [{"name": c.get("name"), "arguments": _decoded(c.get("parameters"))} for c in actual]
    if exp_core != act_core:
        fail(f"{what}: calls (names, arguments as JSON)", exp_core, act_core, context)
    for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
        if "tool_index" in e and e["tool_index"] != a.get("tool_index"):
            fail(f"{what}: calls[{i}].tool_index", e["tool_index"], a.get("tool_index"), {**context, "calls": actual})
        if "parameters" in e and e["parameters"] != a.get("parameters"):
            fail(f"{what}: calls[{i}].parameters (exact JSON text)", e["parameters"], a.get("parameters"), context)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_parse_case(lfm_http: LfmHttp, case: Case) -> None:
    """One corpus case: the lfm2 parser's normal_text and calls for a fixed model output (§1.2, §1.3)."""
    tools = [tool_fixture(n) for n in case.get("tools", DEFAULT_TOOLS)]
    data = parse(lfm_http, case["text"], tools)
    what = f"case {case.id} ({case.section}): {case.description}"
    context = {"text": case["text"], "tools": [t["function"]["name"] for t in tools], "response": data}
    expect = case["expect"]
    if "normal_text" in expect and data["normal_text"] != expect["normal_text"]:
        fail(f"{what}: normal_text", expect["normal_text"], data["normal_text"], context)
    missing = [s for s in expect.get("normal_text_contains", []) if s not in data["normal_text"]]
    if missing:
        fail(f"{what}: normal_text keeps the text around the calls",
             f"normal_text containing {expect['normal_text_contains']}", data["normal_text"], context)
    if "calls" in expect:
        _compare_calls(expect["calls"], data["calls"], what, context)


# ------------------------------------------------------------------------------------------ property-based

_RESERVED = set(keyword.kwlist) | {"true", "false", "null"}
_IDENT = st.builds(lambda a, b: a + b, st.sampled_from("abcdefghijklmnopqrstuvwxyz_"),
                   st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", max_size=9)).filter(
    lambda s: s not in _RESERVED and "pyreservedkw" not in s and "__lfm_kw" not in s)
_SPECIAL_CHARS = '"\'\\\n\t\r\x00\x7f{}[](),=<|>ud0éß東🌸\u0301\u2028\ufeff'
_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]) | st.sampled_from(_SPECIAL_CHARS),
                max_size=12).filter(lambda s: BOT not in s and EOT not in s)
_INTS = st.integers(min_value=-(2**63), max_value=2**64) | st.sampled_from(
    [0, -1, 1, 2**31 - 1, -(2**31), 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 10**30])
_FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 0.1, -1.5, 1e16, 1e-7, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1e308])
_JSON = st.recursive(
    st.none() | st.booleans() | _INTS | _FLOATS | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _schema_of(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    return {"type": "object"}


@dataclass(frozen=True)
class Scenario:
    """Generated tools, the calls a model made of them, and text before the block."""

    tools: tuple[dict[str, Any], ...]
    calls: tuple[tuple[str, dict[str, Any]], ...]
    prefix: str

    @property
    def names(self) -> list[str]:
        """Tool names in request order."""
        return [t["function"]["name"] for t in self.tools]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Tools with JSON-schema parameters, 1-3 calls of them with JSON-valued arguments, optional text."""
    names = draw(st.lists(_IDENT, min_size=1, max_size=4, unique=True))
    calls = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        args = draw(st.dictionaries(_IDENT, _JSON, max_size=4))
        calls.append((name, args))
    tools = []
    for name in names:
        props: dict[str, Any] = {}
        for n, a in calls:
            if n == name:
                props.update({k: _schema_of(v) for k, v in a.items()})
        tools.append({"type": "function", "function": {
            "name": name, "description": f"generated tool {name}",
            "parameters": {"type": "object", "properties": props}}})
    prefix = draw(st.sampled_from(["", "Sure. ", "  Let me look that up.\n"]) | _TEXT)
    return Scenario(tools=tuple(tools), calls=tuple(calls), prefix=prefix)


# Always checked besides the generated examples, so that the classic escaping bugs are caught on every run
# whatever the generator draws: backslashes, both quote styles, control characters, non-ASCII, nesting,
# numbers at the edges, and a second call.
EDGE_SCENARIO = Scenario(
    tools=({"type": "function", "function": {"name": "run_cmd", "description": "generated tool run_cmd",
                                              "parameters": {"type": "object", "properties": {
                                                  "path": {"type": "string"}, "opts": {"type": "object"},
                                                  "n": {"type": "integer"}}}}},),
    calls=(("run_cmd", {"path": 'C:\\tmp\\new "x" \'y\'\n\tZürich 東京 🌸',
                        "opts": {"re": "\\d+\\.\\w*", "list": [None, True, -0.5, 2**63 - 1]}, "n": -(2**63)}),
           ("run_cmd", {"path": "\\"})),
    prefix="Sure. ",
)


def _check_roundtrip(http: LfmHttp, sc: Scenario, form: str) -> None:
    __tracebackhide__ = True
    block = render_tool_calls(sc.calls) if form == "pythonic" else render_json_tool_calls(sc.calls)
    text = sc.prefix + block
    data = parse(http, text, sc.tools)
    expected = [{"name": n, "arguments": a,
                 "tool_index": i if form == "pythonic" else sc.names.index(n)} for i, (n, a) in enumerate(sc.calls)]
    actual = [{"name": c.get("name"), "arguments": _decoded(c.get("parameters")), "tool_index": c.get("tool_index")}
              for c in data["calls"]]
    context = {"rendered text (shrunk counterexample)": text, "tools": sc.names}
    if actual != expected:
        fail(f"{form} round trip: the server's parse of the rendered calls", expected, actual, context)
    if data["normal_text"] != sc.prefix.strip():
        fail(f"{form} round trip: normal_text is the stripped text before the block", sc.prefix.strip(),
             data["normal_text"], context)


def test_roundtrip_property(lfm_http: LfmHttp, lfm_target: Target, record_property: Any) -> None:
    """Generated tools and calls, rendered by the project's LFM2 renderer, parse back to exactly those calls:
    names, arguments equal as JSON (unicode, quotes, backslashes, control characters, nesting, numbers at
    the edges), normal_text = the stripped text before the block. Each example is checked in both forms:
    pythonic (tool_index = position in the block) and the JSON array with ``arguments`` (tool_index = the
    tool's position in the request's tools list) (§1.2, §1.3). Full profile once per SGLang version and
    parser backend in a session, a smoke run on further targets running the same parser code."""
    seen = [0]
    args = lfm_target.server_args
    key = (lfm_target.version, args.get("tool_call_parser"), args.get("reference_parsers"))
    run = "full" if key not in _FULL_RUN_DONE else "smoke"
    full = examples_for(lfm_target, reference=FULL_EXAMPLES, remote=REMOTE_EXAMPLES)
    n = full if run == "full" else min(SMOKE_EXAMPLES, full)
    profile = check_settings(lfm_target, reference=n, remote=n, deadline_ms=10_000 if lfm_target.is_test_double else None)  # a hang, not load

    @profile
    @given(sc=scenarios())
    @example(sc=EDGE_SCENARIO)
    def roundtrip(sc: Scenario) -> None:
        seen[0] += 1
        _check_roundtrip(lfm_http, sc, "pythonic")
        _check_roundtrip(lfm_http, sc, "json")

    roundtrip()
    _FULL_RUN_DONE.add(key)
    record_property("hypothesis_examples", seen[0])
    record_property("lfm_statistic", f"{seen[0]} of {seen[0]} generated scenarios round-tripped in both forms "
                                     f"({run} run of {n} examples, derandomized)")
