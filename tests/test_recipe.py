"""The launch recipe: every (hardware, variant) cell equals the seeds' commands; secrets never printed."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from pytest_lfm.hardware import get_hardware, hardware_ids
from pytest_lfm.recipe import (
    SECRET,
    build_recipe,
    image_version,
    parse_sglang_version,
    redact,
    secret_values,
    translate_args,
)
from pytest_lfm.variants import get_variant, variant_ids

DATA = Path(__file__).parent / "data" / "recipes"
COOKBOOK: dict[str, dict[str, str]] = tomllib.loads((DATA / "cookbook.toml").read_text())["cells"]
LIQUID: dict[str, dict[str, Any]] = tomllib.loads((DATA / "liquid_sglang_page.toml").read_text())["commands"]
SEEDED_ENV = {"HF_TOKEN": "hf_realtokenvalue123", "PATH": "/usr/bin"}


def _strip(text: str) -> str:
    return text.strip("\n")


def test_every_cell_is_transcribed() -> None:
    """The data covers every hardware × every variant (the matrix's 3 × 7, plus B300, JP and Base)."""
    assert set(COOKBOOK) == {f"{hw}/{v}" for hw in hardware_ids() for v in variant_ids()}


@pytest.mark.parametrize("cell", sorted(COOKBOOK))
@pytest.mark.parametrize("framing", ["python", "docker"])
def test_printed_recipe_equals_seed_command(cell: str, framing: str) -> None:
    hw, variant = cell.split("/")
    recipe = build_recipe(get_variant(variant), get_hardware(hw), framing=framing, environ=SEEDED_ENV)
    assert recipe.render() == _strip(COOKBOOK[cell][framing])


@pytest.mark.parametrize("name", sorted(LIQUID))
def test_liquid_page_commands_are_contained(name: str) -> None:
    """Liquid's minimal commands appear line by line, in order; the rest is exactly the cookbook's additions."""
    spec = LIQUID[name]
    recipe = build_recipe(get_variant(spec["variant"]), get_hardware(spec["hardware"]), framing=spec["framing"],
                          extra_args=spec.get("extra_args", ()), environ=SEEDED_ENV)
    ours = [line.strip().rstrip("\\").strip() for line in recipe.render().splitlines()]
    theirs = [line.strip().rstrip("\\").strip() for line in _strip(spec["text"]).splitlines()]
    if spec.get("env_prefix"):
        assert ours[0] == f"{spec['env_prefix']} {theirs[0]}"
        ours[0] = theirs[0]
    it = iter(ours)
    assert all(line in it for line in theirs), f"{name}: Liquid's lines are not a subsequence of\n{ours}"
    assert sorted(set(ours) - set(theirs)) == sorted(spec["cookbook_adds"])


def test_argv_and_env_of_a_vl_cell() -> None:
    recipe = build_recipe(get_variant("VL-450M"), get_hardware("h200"), port=31234, host="127.0.0.1",
                          environ={})
    assert recipe.argv[:2] == ("sglang", "serve")
    assert recipe.argv[recipe.argv.index("--mem-fraction-static") + 1] == "0.8"
    assert recipe.argv[recipe.argv.index("--port") + 1] == "31234"
    assert recipe.env == {"SGLANG_USE_CUDA_IPC_TRANSPORT": "1", "SGLANG_USE_IPC_POOL_HANDLE_CACHE": "1"}


def test_docker_passes_secrets_by_name_only() -> None:
    """The token never enters argv (visible in ps): docker reads it from the client's environment."""
    recipe = build_recipe(get_variant("1.2B-Instruct"), get_hardware("h100"), framing="docker",
                          environ=SEEDED_ENV, container_name="lfm-x")
    assert "HF_TOKEN" in recipe.argv
    assert not any("hf_realtokenvalue123" in a for a in recipe.argv)
    assert recipe.argv[recipe.argv.index("--name") + 1] == "lfm-x"
    assert "--rm" in recipe.argv


def test_api_key_and_env_secrets_redacted_everywhere() -> None:
    env = {**SEEDED_ENV, "OPENAI_API_KEY": "sk-abcdefgh", "MY_SECRET": "s3cr3tvalue"}
    recipe = build_recipe(get_variant("8B-A1B"), get_hardware("b200"), api_key="sk-serverkey", environ=env,
                          extra_args=["--served-model-name", "hf_realtokenvalue123"])
    assert recipe.argv[recipe.argv.index("--api-key") + 1] == "sk-serverkey"
    for text in (recipe.render(), recipe.shell()):
        for secret in ("sk-serverkey", "hf_realtokenvalue123", "sk-abcdefgh", "s3cr3tvalue"):
            assert secret not in text
        assert f"--api-key {SECRET}" in text.replace('"', "").replace(" \\\n", " ").replace("  ", " ")


def test_secret_values_and_redact() -> None:
    values = secret_values({"HF_TOKEN": "hf_abc123", "HOME": "/root", "X_API_KEY": "k-1234", "SHORT_KEY": "ab"})
    assert set(values) == {"hf_abc123", "k-1234"}
    assert redact("token=hf_abc123 key=k-1234", values) == f"token={SECRET} key={SECRET}"


def test_local_model_path() -> None:
    recipe = build_recipe(get_variant("350M"), get_hardware("h100"), model_path="/models/LFM2.5-350M", environ={})
    assert recipe.argv[recipe.argv.index("--model-path") + 1] == "/models/LFM2.5-350M"
    docker = build_recipe(get_variant("350M"), get_hardware("h100"), framing="docker",
                          model_path="/models/LFM2.5-350M", environ={})
    assert "/models/LFM2.5-350M:/models/LFM2.5-350M:ro" in docker.argv


@pytest.mark.parametrize(("image", "expected_ref", "version"), [
    (None, "lmsysorg/sglang:dev", None),  # 350M: not named by Liquid's page; the cookbook's dev image
    ("v0.5.17", "lmsysorg/sglang:v0.5.17", "0.5.17"),
    ("dev-cu13", "lmsysorg/sglang:dev-cu13", None),
    ("registry.local:5000/sglang:v0.5.23-cu13", "registry.local:5000/sglang:v0.5.23-cu13", "0.5.23"),
])
def test_image_tag_configurable(image: str | None, expected_ref: str, version: str | None) -> None:
    recipe = build_recipe(get_variant("350M"), get_hardware("h100"), framing="docker", image=image, environ={})
    assert expected_ref in recipe.argv
    found = image_version(expected_ref)
    assert (str(found) if found else None) == version


def test_b300_default_image_is_cu13() -> None:
    recipe = build_recipe(get_variant("350M"), get_hardware("b300"), framing="docker", environ={})
    assert "lmsysorg/sglang:dev-cu13" in recipe.argv
    recipe = build_recipe(get_variant("1.2B-Instruct"), get_hardware("b300"), framing="docker", environ={})
    assert "lmsysorg/sglang:v0.5.10-cu13" in recipe.argv  # Liquid's page, verbatim


def test_every_variant_says_why_its_image() -> None:
    from pytest_lfm.variants import load_variants

    for v in load_variants():
        if v.fixture:
            continue
        assert v.recipe.image_tag in ("v0.5.10", "dev"), v.id
        assert "Liquid's SGLang page" in v.recipe.image_reason, v.id
        if v.recipe.image_tag == "dev":
            assert "ships on SGLang main" in v.recipe.image_reason, v.id


def test_print_recipe_docker_names_the_image_reason(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--lfm-print-recipe", "--lfm-variant=350M", "--lfm-hardware=h100",
                                           "--lfm-framing=docker")
    assert result.ret == 0, result.stderr.str()
    out = result.stdout.str()
    assert "; image dev: " in out.splitlines()[0] and "ships on SGLang main" in out and "lmsysorg/sglang:dev" in out


@pytest.mark.parametrize(("version", "flag"), [
    ("0.5.10", "--mamba-scheduler-strategy"),
    ("0.5.8.post1", "--mamba-scheduler-strategy"),
    ("0.5.17", "--mamba-radix-cache-strategy"),
    ("0.5.23", "--mamba-radix-cache-strategy"),
    (None, "--mamba-radix-cache-strategy"),
])
def test_flags_renamed_between_releases(version: str | None, flag: str) -> None:
    for given in ("--mamba-scheduler-strategy", "--mamba-radix-cache-strategy"):
        assert translate_args([given, "no_buffer"], parse_sglang_version(version)) == [flag, "no_buffer"]
        assert translate_args([f"{given}=no_buffer"], parse_sglang_version(version)) == [f"{flag}=no_buffer"]


def test_entry_point_by_version_and_command() -> None:
    v, hw = get_variant("350M"), get_hardware("h100")
    assert build_recipe(v, hw, version="0.5.23", environ={}).argv[:2] == ("sglang", "serve")
    assert build_recipe(v, hw, version="0.5.8", environ={}).argv[:3] == ("python3", "-m", "sglang.launch_server")
    assert build_recipe(v, hw, command=["/opt/py/bin/python3.12"], environ={}).argv[:3] == (
        "/opt/py/bin/python3.12", "-m", "sglang.launch_server")
    assert build_recipe(v, hw, command=["python", "fake.py"], environ={}).argv[:3] == ("python", "fake.py", "serve")
    old_image = build_recipe(v, hw, framing="docker", image="v0.5.8", environ={})
    assert "sglang.launch_server" in old_image.argv


def test_unknown_framing_is_a_usage_error() -> None:
    from pytest_lfm.errors import LfmUsageError

    with pytest.raises(LfmUsageError, match="--lfm-framing"):
        build_recipe(get_variant("350M"), get_hardware("h100"), framing="k8s")
