"""The vision checks pass on a correct reference server and fail on the faults they exist to catch.

Every run uses the ``suite`` fixture (reference servers started by the plugin). The GPU-marked checks and
the 0.5.10 gate need a server that reports a GPU or an older SGLang version: ``--lfm-hardware`` and
``--lfm-reference-version`` start the reference server so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest
from harness import Suite

MODULE = "test_vision.py"
VL = "VL-450M"


def test_vision_checks_pass_on_correct_server(suite: Suite) -> None:
    run = suite(MODULE, variants=["VL-1.6B", VL, "1.2B-Instruct"])
    run.assert_passes("test_vision")
    assert run.ret == 0, run.stdout[-3000:]
    for check in ("test_colour_named[VL-450M-red]", "test_digits_read[VL-450M]", "test_bad_image_input[VL-450M-",
                  "test_text_only_variant_rejects_image[1.2B-Instruct]", "test_image_decodes[VL-1.6B-large-4096]"):
        assert any(v == "passed" for k, v in run.outcomes(check).items()), (check, run.outcomes(check))


def _decodes(*ids: str) -> list[tuple[str, list[str]]]:
    return [(f"test_image_decodes[{VL}-{i}]", ["HTTP 500"]) for i in ids]


def _bad(*ids: str, words: Iterable[str] = ()) -> list[tuple[str, list[str]]]:
    return [(f"test_bad_image_input[{VL}-{i}]", list(words)) for i in ids]


BAD_CASES = ("corrupt-base64", "non-image-bytes", "unreachable-url", "unsupported-scheme")

# fault → (-k selection, [(check, words its failure message must contain)])
FAULT_CASES: dict[str, tuple[str, list[tuple[str, list[str]]]]] = {
    "image_dropped": ("tokens or several or across or colour or digits or confused", [
        ("test_image_tokens_counted[", ["prompt_tokens(with image)"]),
        ("test_several_images_one_turn[", ["prompt_tokens(two images)"]),
        ("test_images_across_turns[", ["prompt_tokens(images in both turns)"]),
        (f"test_colour_named[{VL}-red]", ["red.png named", "0 of 3"]),
        ("test_digits_read[", ["4729"]),
        ("test_two_images_not_confused[", ["'red' then 'blue'"]),
    ]),
    "image_tokens_uncounted": ("tokens or several or across", [
        ("test_image_tokens_counted[", ["prompt_tokens(with image)", ">= 32"]),
        ("test_several_images_one_turn[", ["prompt_tokens(two images)"]),
        ("test_images_across_turns[", ["prompt_tokens(images in both turns)", ">= 32"]),
    ]),
    "image_history_dropped": ("across", [("test_images_across_turns[", ["image in the last turn only"])]),
    "image_stale": ("delivery or same_image or confused", [
        ("test_same_image_twice_same_greedy_answer[", ["different image of the same size"]),
        ("test_two_images_not_confused[", ["'red' then 'blue'"]),
    ]),
    "image_cache_collision": ("same_image or confused", [
        ("test_same_image_twice_same_greedy_answer[", ["different image of the same size"]),
        ("test_two_images_not_confused[", ["'red' then 'blue'"]),
    ]),
    "image_cache_hit_corrupt": ("same_image", [
        ("test_same_image_twice_same_greedy_answer[", ["same image, second time (cache hit)"]),
    ]),
    "bad_media_500": ("bad_image_input", _bad(*BAD_CASES, words=["a 4xx client error", "HTTP 500"])),
    "bad_media_wedges": ("bad_image_input", _bad("corrupt-base64", words=["a valid image request after", "HTTP 500"])),
    "image_decode_narrow": ("decodes", _decodes("rgba", "grayscale", "palette", "cmyk-jpeg", "exif-rotated",
                                                "one-pixel", "scene-1280x720", "large-4096")),
    "image_tools_500": ("tools", [
        ("test_image_and_tools_same_turn[", ["HTTP 500"]),
        ("test_tools_in_text_turn_after_image[", ["HTTP 500"]),
    ]),
}


@pytest.mark.parametrize("fault", list(FAULT_CASES))
def test_vision_check_fails_on_fault(suite: Suite, fault: str) -> None:
    selection, expectations = FAULT_CASES[fault]
    run = suite(MODULE, variants=[VL], faults=[fault], extra=["-k", selection])
    for check, words in expectations:
        run.assert_fails(check, *words)


def test_text_only_rejection_fails_when_image_accepted(suite: Suite) -> None:
    run = suite(MODULE, variants=["1.2B-Instruct"], faults=["text_only_accepts_image"], extra=["-k", "text_only"])
    run.assert_fails("test_text_only_variant_rejects_image[1.2B-Instruct]", "HTTP 400", "HTTP 200")


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
