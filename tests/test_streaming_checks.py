"""Chunk invariance (issue 20 class 2): the streaming family's checks at several tokens per stream chunk.

The fault tables run the reference server at one token per chunk; these tests start it with
``--stream-interval`` 3 and 4 (tags then land anywhere inside a chunk, and text follows a closing tag in the
same chunk) and run the family against it: every check passes on a correct server and reports the interval
it tested (report property ``stream_interval``); with ``stream_chunk_tail_dropped`` the parity check of a
reasoning answer fails, naming the content it lost."""

from __future__ import annotations

import pytest
from harness import Suite, SuiteRun

from pytest_lfm.server.reference import ReferenceProcess

MODULE = "test_streaming.py"


def _run(suite: Suite, variant: str, interval: int, faults: tuple[str, ...] = (),
         extra: tuple[str, ...] = ()) -> SuiteRun:
    with ReferenceProcess(variant, faults, stream_interval=interval) as proc:
        return suite(MODULE, server=f"{variant}={proc.base_url}", extra=list(extra))


@pytest.mark.parametrize("interval", [3, 4])
def test_streaming_family_passes_at_several_tokens_per_chunk(suite: Suite, interval: int) -> None:
    run = _run(suite, "1.2B-Thinking", interval)
    assert run.ret == 0, run.stdout[-3000:]
    passed = [c for c in run.checks if c["outcome"] == "passed"]
    assert len(passed) >= 8, run.stdout[-3000:]
    reported = {c.get("properties", {}).get("stream_interval") for c in passed}
    assert reported == {interval}, reported


def test_chunk_invariance_at_several_tokens_per_chunk(suite: Suite) -> None:
    """stream_chunk_tail_dropped: text after </think> in the same chunk is lost, so the streamed content
    differs from the non-streamed one at 4 tokens per chunk (at 1 the fault is invisible)."""
    run = _run(suite, "1.2B-Thinking", 4, ("stream_chunk_tail_dropped",), ("-k", "reasoning_no_tools"))
    run.assert_fails("test_stream_matches_non_stream[1.2B-Thinking-reasoning_no_tools]", "content",
                     "stream_interval=4")
