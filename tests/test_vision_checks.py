"""Vision checks that a fault row cannot show (the control run and most fault rows are data:
conformance/vision/faults.toml, run by tests/test_faults.py).

The GPU-marked checks (rows with a ``proof`` naming the tests below) and the 0.5.10 gate need a server that
reports a GPU or an older SGLang version: ``--lfm-hardware`` and ``--lfm-reference-version`` start the
reference server so (the ``suite`` fixture).
"""

from __future__ import annotations

import json

import pytest
from harness import Suite

MODULE = "test_vision.py"
VL = "VL-450M"

# ------------------------------------------------------------------------------------------ GPU-reporting and old-release servers


GPU_K = "mm_attention or concurrent_image_load"


def test_gpu_checks_pass_on_recipe_launch(suite: Suite) -> None:
    run = suite(MODULE, variants=[VL], hardware="b200", k=GPU_K)
    assert run.only("test_mm_attention_backend_for_gpu")["outcome"] == "passed", run.stdout[-3000:]
    load = run.only("test_vl450m_survives_concurrent_image_load")
    assert load["outcome"] == "passed", load
    assert "64/64 image requests 200" in json.dumps(load), load


@pytest.mark.parametrize("hardware", ["b300", "h200"])
def test_mm_attention_check_fails_without_recipe_backend(suite: Suite, hardware: str) -> None:
    run = suite(MODULE, variants=[VL], hardware=hardware, faults=["mm_attention_default"], k="mm_attention")
    check = run.only("test_mm_attention_backend_for_gpu")
    assert check["outcome"] == "failed", run.stdout[-3000:]
    for word in ("Expected", "Actual", "triton_attn", "fa4" if hardware == "b300" else "fa3"):
        assert word in check["message"], check["message"]


def test_load_check_fails_when_server_runs_out_of_memory(suite: Suite) -> None:
    run = suite(MODULE, variants=[VL], hardware="h100", faults=["image_load_oom"], k="concurrent_image_load")
    check = run.only("test_vl450m_survives_concurrent_image_load")
    assert check["outcome"] == "failed", run.stdout[-3000:]
    for word in ("Expected", "Actual", "image requests answered 200 under concurrent load", "500"):
        assert word in check["message"], check["message"]


def test_bad_media_is_strict_xfail_on_0_5_10(suite: Suite) -> None:
    """0.5.10 answers 500 for media errors: the four cases are expected failures there, not failures."""
    run = suite(MODULE, variants=[VL], version="0.5.10", k="bad_image_input or delivery")
    bad = run.outcomes("test_bad_image_input[")
    assert sorted(bad.values()) == ["xfailed"] * 4, (bad, run.stdout[-3000:])
    assert set(run.outcomes("test_image_delivery[").values()) == {"passed"}
    assert run.ret == 0, run.stdout[-3000:]
