"""The protocol checks pass on a correct reference server and fail on the faults they exist to catch."""

from __future__ import annotations

import pytest
from harness import Suite

MODULE = "test_protocol.py"


def test_protocol_checks_pass_on_correct_server(suite: Suite) -> None:
    run = suite(MODULE, variants=["1.2B-Instruct", "1.2B-Base"])
    run.assert_passes("test_protocol")
    assert run.ret == 0, run.stdout[-2000:]


@pytest.mark.parametrize(("fault", "check", "words"), [
    ("stream_no_role_chunk", "test_stream_order", ["first delta role", "assistant"]),
    ("stream_no_done", "test_stream_order", ["[DONE]"]),
    ("usage_wrong", "test_chat_completion_shape", ["total_tokens"]),
])
def test_protocol_check_fails_on_fault(suite: Suite, fault: str, check: str, words: list[str]) -> None:
    run = suite(MODULE, faults=[fault])
    run.assert_fails(f"{check}[", *words)
