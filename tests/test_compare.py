"""``python -m pytest_lfm releases compare OLD NEW`` (:mod:`pytest_lfm.compare`).

Unit tests use fake parser back-ends: the project's own parsers emulating a release
(:class:`pytest_lfm.reference.serving.ProjectParsers` with that release's dialect) stand in for the real
code, and fake install trees stand in for installed releases, so nothing is installed. One test runs two
real installed releases (``$LFM_SGLANG_PARSERS_ROOT``, default ``.sglang-parsers``) and is skipped when
they are not there.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_lfm import compare as cmp
from pytest_lfm import lfm2
from pytest_lfm.__main__ import main
from pytest_lfm.cases import load_cases
from pytest_lfm.paths import suite_dir
from pytest_lfm.reference.serving import ProjectParsers

#: Read before the autouse fixture of tests/conftest.py clears LFM_* variables (as test_upstream_parsers does).
REAL_ROOT = cmp.parsers_root().resolve()


class EmulatedParsers:
    """The project's parsers emulating one release: a parser back-end with the upstream adapter's interface."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.dialect = lfm2.Dialect.for_version(version)
        self.project = ProjectParsers()

    def parse_function_call(self, text: str, tools: Sequence[Mapping[str, Any]], parser: str | None) -> Any:
        return self.project.parse_function_call(text, tools, parser, self.dialect)

    def separate_reasoning(self, text: str, parser: str) -> dict[str, Any]:
        return self.project.separate_reasoning(text, parser)

    def split_reasoning(self, text: str, parser: str, force: bool | None = None) -> Any:
        return self.project.split_reasoning(text, parser, force=force)

    def streaming_tools(self, tools: Sequence[Mapping[str, Any]]) -> Any:
        return self.project.streaming_tools(tools, self.dialect)

    def streaming_reasoning(self, parser: str, force: bool = False, stream_reasoning: bool = True) -> Any:
        return self.project.streaming_reasoning(parser, force=force, stream_reasoning=stream_reasoning,
                                                leak_think_start=lfm2.think_leak_in_stream(self.version))


class Broken(EmulatedParsers):
    """A release whose /separate_reasoning raises (the same error for every parser name)."""

    def separate_reasoning(self, text: str, parser: str) -> dict[str, Any]:
        raise KeyError("model_type")


# ------------------------------------------------------------------------------------------ corpus


def test_every_corpus_case_is_probed_on_each_path_it_defines() -> None:
    keys = [p.key for p in cmp.probes()]
    assert len(keys) == len(set(keys))
    tool_cases = load_cases("tool_calls")
    reasoning = load_cases("reasoning")
    for case in tool_cases:
        assert f"tool_calls/{case.id} [parse_function_call]" in keys
        assert f"tool_calls/{case.id} [chat stream]" in keys
    for case in reasoning:
        if "text" in case.data:
            assert {f"reasoning/{case.id} [separate_reasoning {p}]" for p in lfm2.REASONING_PARSERS} <= set(keys)
        elif case.get("request", {}).get("separate_reasoning") is not False:
            modes = case["modes"]
            assert (f"reasoning/{case.id} [chat non-stream qwen3]" in keys) == ("non-stream" in modes)
            assert (f"reasoning/{case.id} [chat stream qwen3]" in keys) == ("stream" in modes)
    assert len(keys) >= 2 * len(tool_cases) + len(reasoning)


def test_case_files_are_found_in_either_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Moving the corpora to conformance/<family>/cases/ does not lose them."""
    for rel in ("cases/tool_calls/a.toml", "tool_calls/cases/b.toml", "tool_calls/cases/more/c.toml",
                "reasoning/cases/d.toml", "expectations/tool_calls.toml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    monkeypatch.setattr(cmp, "suite_dir", lambda: tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in cmp.case_files("tool_calls")] == [
        "cases/tool_calls/a.toml", "tool_calls/cases/b.toml", "tool_calls/cases/more/c.toml"]
    assert [p.name for p in cmp.case_files("reasoning")] == ["d.toml"]


def test_case_files_of_this_checkout_hold_the_corpora() -> None:
    files = cmp.case_files("tool_calls")
    assert files and all(f.is_relative_to(suite_dir()) for f in files)
    n = sum(len(tomllib.loads(f.read_text()).get("case", [])) for f in files)
    assert n == len(load_cases("tool_calls"))


def test_pieces_keep_tags_whole_and_lose_nothing() -> None:
    text = "<think>a b</think>\n<|tool_call_start|>[f(x=1)]<|tool_call_end|>"
    got = cmp.pieces(text)
    assert "".join(got) == text
    assert {"<think>", "</think>", "<|tool_call_start|>", "<|tool_call_end|>"} <= set(got)


def test_outputs_of_a_fake_release() -> None:
    out = cmp.run_corpus(EmulatedParsers("0.5.23"))
    assert out["tool_calls/single_call [parse_function_call]"] == {
        "normal_text": "", "calls": [{"name": "get_weather", "parameters": '{"location": "Paris"}', "tool_index": 0}]}
    assert out["tool_calls/single_call [chat stream]"]["calls"][0]["name"] == "get_weather"
    assert out["reasoning/complete-block [separate_reasoning qwen3]"] == {"reasoning_text": "abc", "text": "answer"}
    assert out["reasoning/closed-block [chat stream qwen3]"]["content"] == "answer"
    broken = cmp.run_corpus(Broken("0.5.23"))
    assert broken["reasoning/complete-block [separate_reasoning qwen3]"] == {"error": "KeyError: 'model_type'"}


# ------------------------------------------------------------------------------------------ comparison


def _tree(root: Path, version: str, detector: str = "class Lfm2Detector: ...\n", other_changes: bool = False) -> Path:
    tree = root / version
    fc = tree / "sglang" / "srt" / "function_call"
    fc.mkdir(parents=True)
    (fc / "lfm2_detector.py").write_text(detector)
    (fc / "function_call_parser.py").write_text("class FunctionCallParser: ...\n")
    (tree / "sglang" / "srt" / "parser").mkdir()
    (tree / "sglang" / "srt" / "parser" / "reasoning_parser.py").write_text("class ReasoningParser: ...\n")
    (fc / "kimik2_detector.py").write_text(f"# {version}\n" if other_changes else "")
    (tree / f".installed-{version}").touch()
    return tree


def _fake_outputs(tree: Path) -> dict[str, Any]:
    return cmp.run_corpus(EmulatedParsers(tree.name))


def test_compare_lists_changed_outputs_side_by_side_and_changed_files(tmp_path: Path) -> None:
    _tree(tmp_path, "0.5.17")
    _tree(tmp_path, "0.5.23", detector="class Lfm2Detector:  # robust\n    ...\n", other_changes=True)
    result = cmp.compare("0.5.17", "0.5.23", root=tmp_path, outputs=_fake_outputs)
    assert result.changed_sources == [("sglang/srt/function_call/kimik2_detector.py", "changed"),
                                      ("sglang/srt/function_call/lfm2_detector.py", "changed")]
    assert "reasoning/stream-reasoning-false-one-delta [chat stream qwen3]" in result.changed
    text = cmp.render(result)
    assert ("source files on the LFM parser paths that differ (sha256): 1 of 3\n"
            "  changed  sglang/srt/function_call/lfm2_detector.py") in text
    block = text.split("  reasoning/stream-reasoning-false-one-delta [chat stream qwen3]\n")[1].splitlines()[:2]
    assert block[0].startswith("    0.5.17: ") and "<think>abc" in block[0]
    assert block[1].startswith("    0.5.23: ") and "<think>" not in block[1]
    assert "other parser files (other models' parsers) that differ: 1 of 1: kimik2_detector.py" in text
    assert f"outputs that changed: {len(result.changed)} of " in text


def test_identical_releases_say_so_in_a_few_lines(tmp_path: Path) -> None:
    _tree(tmp_path, "0.5.20")
    _tree(tmp_path, "0.5.21")
    result = cmp.compare("0.5.20", "0.5.21", root=tmp_path, outputs=lambda t: _fake_outputs(t.parent / "0.5.21"))
    text = cmp.render(result)
    assert not result.changed and len(text.splitlines()) == 3, text
    assert "source files on the LFM parser paths: all 3 identical (sha256)" in text
    assert "outputs: identical on all" in text


def test_post_releases_are_found_by_their_base_version(tmp_path: Path) -> None:
    _tree(tmp_path, "0.5.12.post1")
    assert cmp.release_dir("0.5.12", tmp_path) == tmp_path / "0.5.12.post1"
    assert cmp.release_dir("0.5.12.post1", tmp_path) == tmp_path / "0.5.12.post1"
    half = tmp_path / "0.5.13"
    (half / "sglang").mkdir(parents=True)  # another process is still installing it
    assert cmp.release_dir("0.5.13", tmp_path) is None


# ------------------------------------------------------------------------------------------ unusable input


def test_unknown_version_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(cmp.ROOT_ENV, str(tmp_path))
    assert main(["releases", "compare", "latest", "0.5.23"]) == 2
    err = capsys.readouterr().err
    assert "'latest' is not an SGLang release version" in err and "To fix:" in err


def test_failed_install_exits_2_naming_what_was_tried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "install.sh"
    script.write_text("echo 'ERROR: No matching distribution found for sglang==9.9.9' >&2\nexit 1\n")
    monkeypatch.setattr(cmp, "install_script", lambda: script)
    monkeypatch.setenv(cmp.ROOT_ENV, str(tmp_path / "root"))
    assert main(["releases", "compare", "9.9.9", "0.5.23"]) == 2
    err = capsys.readouterr().err
    assert "installing SGLang 9.9.9 failed (exit 1): ERROR: No matching distribution found" in err
    assert f"Tried: bash {script} 9.9.9 {tmp_path / 'root' / '9.9.9'}" in err and "To fix:" in err


def test_tree_whose_parsers_do_not_load_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _tree(tmp_path, "0.5.20")  # placeholder modules: no FunctionCallParser registry, the worker refuses it
    _tree(tmp_path, "0.5.21")
    monkeypatch.setenv(cmp.ROOT_ENV, str(tmp_path))
    assert main(["releases", "compare", "0.5.20", "0.5.21"]) == 2
    err = capsys.readouterr().err
    assert f"the parsers in {tmp_path / '0.5.20'} did not run" in err and "pytest_lfm.reference.upstream" in err


# ------------------------------------------------------------------------------------------ real releases


def test_real_releases_0_5_17_and_0_5_23(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The two releases CI installs (scripts/ci_upstream_parsers.sh): 0.5.18 fixed the streaming detector's
    ``<think>`` leak with ``stream_reasoning=false``, and 0.5.19 shipped the robust lfm2 detector."""
    trees = [cmp.release_dir(v, REAL_ROOT) for v in ("0.5.17", "0.5.23")]
    if None in trees:
        pytest.skip(f"needs SGLang 0.5.17 and 0.5.23 installed under {REAL_ROOT} "
                    f"(scripts/install_sglang_parsers.sh VERSION DIR, or set {cmp.ROOT_ENV})")
    monkeypatch.setenv(cmp.ROOT_ENV, str(REAL_ROOT))
    assert main(["releases", "compare", "--json", "0.5.17", "0.5.23"]) == 0
    data = json.loads(capsys.readouterr().out)
    key = "reasoning/stream-reasoning-false-one-delta [chat stream qwen3]"
    assert key in data["changed"]
    assert data["old_outputs"][key]["reasoning_deltas"] == ["<think>abc"]
    assert data["new_outputs"][key]["reasoning_deltas"] == ["abc"]
    assert ["sglang/srt/parser/reasoning_parser.py", "changed"] in data["changed_sources"]
    assert ["sglang/srt/function_call/lfm2_detector.py", "changed"] in data["changed_sources"]
    assert "tool_calls/positional_argument_rejected [parse_function_call]" in data["changed"]


def test_a_path_where_every_probe_raises_the_same_error_is_an_adapter_failure() -> None:
    assert cmp.adapter_failure(cmp.run_corpus(EmulatedParsers("0.5.23"))) is None
    failure = cmp.adapter_failure(cmp.run_corpus(Broken("0.5.23")))
    assert failure is not None and failure.startswith("every separate probe raised KeyError")
