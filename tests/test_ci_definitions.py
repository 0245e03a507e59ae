"""The ready CI definitions in docs/ci/ are valid for their CI system and use only what the project has.

Each file is validated against its CI system's published JSON Schema: schemastore's ``github-workflows.json``
and ``gitlab-ci.json`` as vendored by ``check-jsonschema`` (a dev dependency), read with importlib.resources,
so nothing is downloaded at test time. Then every command in it is checked: each ``--lfm-*`` option is one
of pytest_lfm/options.py, each ``python -m pytest_lfm SUB`` a subcommand of pytest_lfm/__main__.py's parser,
each ``LFM_*`` variable an option's environment twin, each script path a file of the repository, the
matrix's variants and hardware those of the cookbook's verified matrix; the suite runs with ``-n``, the
artifacts are published even when checks fail, and HF_TOKEN comes from the secret store and is never echoed.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pytest_lfm import options as o
from pytest_lfm.__main__ import build_parser
from pytest_lfm.hardware import hardware_ids
from pytest_lfm.variants import load_variants

ROOT = Path(__file__).resolve().parent.parent
CI_DIR = ROOT / "docs" / "ci"
DEFINITIONS = {"github-actions.yml": "github-workflows.json", "gitlab-ci.yml": "gitlab-ci.json"}
SCRIPT_PATH = re.compile(r"^(?:\./)?(?:scripts|\.ci|fixtures|benchmarks|conformance)/\S+$")


def vendored_schema(name: str) -> dict[str, Any]:
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath(name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


class Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (true/false only), as GitHub and GitLab read their files: PyYAML's YAML 1.1 would
    turn the workflow's ``on:`` key into True."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load((CI_DIR / name).read_text(encoding="utf-8"), Loader=Yaml12Loader)
    return doc


def schema_errors(doc: Any, schema_name: str) -> list[str]:
    schema = vendored_schema(schema_name)
    validator = jsonschema.validators.validator_for(schema)(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def shell_scripts(name: str) -> list[str]:
    """Every shell script of the definition: GitHub steps' ``run``, GitLab jobs' script sections."""
    doc = load(name)
    if name == "github-actions.yml":
        return [step["run"] for job in doc["jobs"].values() for step in job.get("steps", []) if "run" in step]
    scripts = []
    for value in doc.values():
        if isinstance(value, list):  # a YAML anchor of script lines (.install-pytest-lfm)
            scripts += list(_strings(value))
        elif isinstance(value, dict):
            for key in ("before_script", "script", "after_script"):
                scripts += list(_strings(value.get(key, [])))
    return scripts


def commands(name: str) -> list[list[str]]:
    """Each command line as shell words (continuation lines joined)."""
    out = []
    for script in shell_scripts(name):
        for line in script.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(words)
    return out


def env_names(value: Any) -> Iterator[str]:
    """Keys of every ``env``/``variables`` mapping, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("env", "variables") and isinstance(item, dict):
                yield from (str(k) for k in item)
            yield from env_names(item)
    elif isinstance(value, list):
        for item in value:
            yield from env_names(item)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_definition_validates_against_its_ci_schema(name: str) -> None:
    assert schema_errors(load(name), DEFINITIONS[name]) == []


def test_the_schemas_catch_a_broken_definition() -> None:
    gh = load("github-actions.yml")
    del gh["jobs"]["conformance"]["runs-on"]
    assert [e for e in schema_errors(gh, "github-workflows.json") if e.startswith("jobs/conformance: ")]
    gl = load("gitlab-ci.yml")
    gl["conformance"]["parallel"] = {"matrix": "h100"}
    assert [e for e in schema_errors(gl, "gitlab-ci.json") if e.startswith("conformance/parallel: ")]


def command_problems(lines: list[list[str]], env: list[str]) -> tuple[list[str], list[str]]:
    """What in the commands the project does not have, and the ``python -m pytest_lfm`` subcommands used."""
    flags = {spec.flag for spec in o.ALL_OPTIONS}
    subs = subcommands(build_parser())
    problems, used = [], []
    for words in lines:
        for i, word in enumerate(words):
            if word.startswith("--lfm-") and word.split("=", 1)[0] not in flags:
                problems.append(f"{word} is not an option of pytest_lfm/options.py")
            if word == "-m" and words[i + 1: i + 2] == ["pytest_lfm"]:
                sub = words[i + 2] if len(words) > i + 2 else ""
                if sub not in subs:
                    problems.append(f"`python -m pytest_lfm {sub}` is not a subcommand ({', '.join(subs)})")
                    continue
                used.append(sub)
                nested = subcommands(subs[sub])
                if nested and (words[i + 3: i + 4] or [""])[0] not in nested:
                    problems.append(f"`python -m pytest_lfm {sub} {' '.join(words[i + 3: i + 4])}` does not exist")
            if SCRIPT_PATH.match(word) and not (ROOT / word).exists():
                problems.append(f"{word} is not a file of the repository")
    envs = {spec.env for spec in o.ALL_OPTIONS}
    problems += [f"{var} is not an option's environment twin" for var in env if var.startswith("LFM_")
                 and var not in envs]
    return problems, used


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_every_command_is_one_the_project_has(name: str) -> None:
    problems, used = command_problems(commands(name), list(env_names(load(name))))
    assert problems == [], name
    assert {"merge", "diff"} <= set(used), f"{name}: the gate must merge and diff"


def test_the_command_check_catches_what_does_not_exist() -> None:
    lines = [shlex.split(line) for line in (
        "pytest --lfm-lanch --lfm-report=x", "python -m pytest_lfm compare a b", "python -m pytest_lfm releases diff",
        "bash scripts/no_such_script.sh")]
    problems, _ = command_problems(lines, ["LFM_NO_SUCH_OPTION", "LFM_REPORT"])
    assert problems == [
        "--lfm-lanch is not an option of pytest_lfm/options.py",
        "`python -m pytest_lfm compare` is not a subcommand (diff, merge, releases, cookbook-cell, bench)",
        "`python -m pytest_lfm releases diff` does not exist",
        "scripts/no_such_script.sh is not a file of the repository",
        "LFM_NO_SUCH_OPTION is not an option's environment twin"]


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_the_suite_runs_per_cell_from_the_recipe_and_publishes_its_artifacts(name: str) -> None:
    runs = [w for w in commands(name) if w[:3] == [".venv/bin/python", "-m", "pytest"]]
    assert len(runs) == 1, runs
    run = runs[0]
    assert "-n" in run and "--lfm-launch" in run
    for flag in ("--lfm-variant", "--lfm-hardware", "--lfm-model-path", "--lfm-log-dir", "--lfm-report",
                 "--junitxml"):
        assert flag in run, f"{name}: the suite runs without {flag}"
    installs = [w for w in commands(name) if "install" in w and "pip" in w]
    assert installs and all("--no-index" in w and "--find-links" in w for w in installs), installs
    doc = load(name)
    if name == "github-actions.yml":
        matrix = doc["jobs"]["conformance"]["strategy"]["matrix"]
        variants, hardware = matrix["variant"], matrix["hardware"]
        uploads = [s for s in doc["jobs"]["conformance"]["steps"] if str(s.get("uses", "")).startswith(
            "actions/upload-artifact")]
        assert uploads and uploads[0]["if"] == "always()" and uploads[0]["with"]["path"] == "${{ env.OUT }}"
    else:
        [matrix] = doc["conformance"]["parallel"]["matrix"]
        variants, hardware = matrix["VARIANT"], matrix["HARDWARE"]
        artifacts = doc["conformance"]["artifacts"]
        assert artifacts["when"] == "always" and artifacts["reports"]["junit"].endswith("junit.xml")
    verified = [v.id for v in load_variants() if v.in_verified_matrix]
    assert variants == verified
    assert set(hardware) <= set(hardware_ids())


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_hf_token_comes_from_the_secret_store_and_is_never_echoed(name: str) -> None:
    text = (CI_DIR / name).read_text(encoding="utf-8")
    for words in commands(name):
        assert not any("HF_TOKEN" in w for w in words), f"{name}: a command names HF_TOKEN: {words}"
        assert words[:2] != ["set", "-x"], f"{name}: set -x would print the environment's expansions"
    if name == "github-actions.yml":
        assert load(name)["jobs"]["conformance"]["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    else:
        # a masked CI/CD variable of the project, not a value in the file
        assert "HF_TOKEN" not in set(env_names(load(name))) and "masked" in text
