"""The tool-call family (conformance/tool_calls/): its control run and fault rows are data (faults.toml there,
run by tests/test_faults.py); what a row cannot say is checked here."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from harness import Suite

PARSER = "test_tool_parser.py"
REPO = Path(__file__).resolve().parent.parent
VARIANTS = ["1.2B-Instruct", "8B-A1B", "1.2B-Thinking", "VL-450M", "1.2B-JP", "1.2B-Base"]


def test_roundtrip_property_runs_full_once_then_smoke(suite: Suite) -> None:
    """The property check runs its 200 examples once per SGLang version and a smoke run on later variants,
    within 30 s per variant (the rest of the family's control run is data: conformance/tool_calls/faults.toml)."""
    run = suite(PARSER, variants=VARIANTS[:4], extra=["-k", "roundtrip"])
    props = [c for c in run.checks if "test_roundtrip_property" in c["nodeid"] and c["outcome"] == "passed"]
    assert len(props) == 4, [c["nodeid"] for c in props]
    examples = sorted(int(c["properties"]["hypothesis_examples"]) for c in props)
    assert examples[-1] >= 200 and examples[0] >= 25, examples  # one full run per version, smoke runs after
    for c in props:
        assert c["duration"] < 30, c


@pytest.mark.parametrize("version", ["0.5.17", "0.5.23"])
def test_corpus_agrees_with_real_sglang_parser_code(suite: Suite, version: str) -> None:
    """The corpus and the property check pass against a real SGLang release's lfm2 detector (the reference
    server with ``--lfm-reference-parsers``; the version gates follow the release's version)."""
    tree = REPO / ".sglang-parsers" / version
    if not (tree / "sglang" / "srt" / "function_call").is_dir():
        pytest.skip(f"no sglang {version} parser tree at {tree} (scripts/install_sglang_parsers.sh {version} {tree})")
    start = time.monotonic()
    run = suite(PARSER, extra=[f"--lfm-reference-parsers={Path(tree)}"])
    run.assert_passes("test_tool_parser")
    assert run.ret == 0, run.stdout[-3000:]
    print(f"sglang {version} parser corpus: {time.monotonic() - start:.1f} s")  # a figure, not a claim
