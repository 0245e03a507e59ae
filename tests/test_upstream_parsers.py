"""The reference server with a real SGLang release's parser code (issue 11, ``--lfm-reference-parsers``).

* With 0.5.17's parsers, the reference server reproduces what a real SGLang 0.5.17 answered on an H200
  for every ``/parse_function_call`` and ``/separate_reasoning`` probe (``tests/data/upstream_probes_0517.jsonl``,
  copied from ``/work/shared/recorded/sglang-0.5.17-h200/responses.jsonl``).
* A deliberately broken copy of the upstream ``lfm2`` detector makes named model-free checks fail, while
  an unrelated check keeps passing: the checks really run the installed release's code.
* A release that moved a parser module, or a missing tree, fails with an error that names what was tried.

The sglang trees come from ``scripts/install_sglang_parsers.sh VERSION .sglang-parsers/VERSION`` (or
``$LFM_SGLANG_PARSERS_ROOT/VERSION``). Without them these tests skip, except under ``CI=true``, where a
missing tree is a failure (CI must prove the wiring on real upstream code).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import Suite

from pytest_lfm.server.reference import ReferenceProcess

REPO = Path(__file__).resolve().parent.parent
# read at import time: the autouse fixture of conftest.py clears LFM_* variables before each test
PARSERS_ROOT = Path(os.environ.get("LFM_SGLANG_PARSERS_ROOT") or REPO / ".sglang-parsers")
PROBES = Path(__file__).parent / "data" / "upstream_probes_0517.jsonl"
DETECTOR = Path("sglang/srt/function_call/lfm2_detector.py")

# Probes whose body is not produced by parser code: FastAPI's request-validation message (which echoes
# the request and pydantic internals) is outside what --parsers sglang replaces.
NOT_PARSER_OUTPUT = {"parse_fc_missing_text": "400 body is SGLang's request-validation message, not parser output"}


def sglang_tree(version: str) -> Path:
    """The installed sglang tree of ``version``; skip (fail under CI=true) when it is not installed."""
    root = PARSERS_ROOT / version
    if (root / "sglang").is_dir():
        return root
    msg = (f"sglang {version} parser code is not installed in {root}: run "
           f"scripts/install_sglang_parsers.sh {version} {root}")
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(msg + " (CI=true: the upstream parser checks must run)")
    pytest.skip(msg)


def _started(tree: Path) -> ReferenceProcess:
    return ReferenceProcess("8B-A1B", sglang_dir=str(tree)).start(timeout=60)


# ------------------------------------------------------------------------------------------ recorded 0.5.17


def test_reference_with_0517_parsers_reproduces_recorded_bodies() -> None:
    """Every recorded parse_fc_* / sep_reason_* probe: same status, content type and body as real 0.5.17."""
    tree = sglang_tree("0.5.17")
    probes = [json.loads(line) for line in PROBES.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(probes) >= 40, f"expected the 46 recorded parser probes in {PROBES}, found {len(probes)}"
    proc = _started(tree)
    try:
        with httpx.Client(base_url=proc.base_url, timeout=30) as client:
            info = client.get("/server_info").json()
            assert (info.get("version"), info.get("reference_parsers")) == ("0.5.17", "sglang"), info
            diffs: list[str] = []
            compared = 0
            for p in probes:
                if p["name"] in NOT_PARSER_OUTPUT:
                    continue
                # a fresh connection each: after a 500 the server closes the kept-alive one
                r = client.request(p["method"], p["path"], json=p["request"], headers={"connection": "close"})
                try:
                    body: Any = r.json()
                except ValueError:
                    body = r.text
                compared += 1
                ctype = (r.headers.get("content-type") or "").split(";")[0]
                want_ctype = (p.get("content_type") or "").split(";")[0]
                if (r.status_code, body, ctype) != (p["status"], p["body"], want_ctype):
                    diffs.append(f"{p['name']}: request {json.dumps(p['request'])[:200]}\n"
                                 f"  Expected: {p['status']} {want_ctype} {json.dumps(p['body'], ensure_ascii=False)}\n"
                                 f"  Actual:   {r.status_code} {ctype} {json.dumps(body, ensure_ascii=False)}")
    finally:
        proc.stop()
    assert compared >= 40
    assert not diffs, f"{len(diffs)} of {compared} recorded 0.5.17 probes differ:\n" + "\n".join(diffs)


# ------------------------------------------------------------------------------------------ broken copy


_SABOTAGE = '''

# --- deliberately broken by tests/test_upstream_parsers.py: drop the last call of every parse ---
_lfm_original_detect_and_parse = Lfm2Detector.detect_and_parse


def _lfm_broken_detect_and_parse(self, text, tools):
    result = _lfm_original_detect_and_parse(self, text, tools)
    if len(result.calls) > 1:
        result.calls = result.calls[:-1]
    return result


Lfm2Detector.detect_and_parse = _lfm_broken_detect_and_parse
'''


def broken_copy(tree: Path, dst: Path) -> Path:
    """A tree that is ``tree`` (symlinks) except for a modified copy of the lfm2 detector.

    The copy serialises arguments with ``ensure_ascii=True`` and drops the last call whenever a text
    holds more than one. Only the directories on the way to the detector are real; ``__pycache__``
    directories are not linked, so nothing compiled from the broken file lands in the real tree.
    """
    dst.mkdir(parents=True)
    src_dir, dst_dir = tree, dst
    for part in DETECTOR.parts[:-1]:
        for entry in src_dir.iterdir():
            if entry.name not in (part, "__pycache__"):
                (dst_dir / entry.name).symlink_to(entry)
        src_dir, dst_dir = src_dir / part, dst_dir / part
        dst_dir.mkdir()
    for entry in src_dir.iterdir():
        if entry.name not in (DETECTOR.name, "__pycache__"):
            (dst_dir / entry.name).symlink_to(entry)
    source = (tree / DETECTOR).read_text(encoding="utf-8")
    assert source.count("ensure_ascii=False") == 1, "the detector's json.dumps call changed; update the sabotage"
    broken = source.replace("ensure_ascii=False", "ensure_ascii=True") + _SABOTAGE
    (dst / DETECTOR).write_text(broken, encoding="utf-8")
    return dst


@pytest.mark.parametrize("version", ["0.5.23", "0.5.17"])
def test_broken_upstream_detector_fails_named_checks(suite: Suite, tmp_path: Path, version: str) -> None:
    """Checks that cover non-ASCII arguments and parallel calls fail on the broken copy; a single
    ASCII call still passes (so the failures come from the sabotage, not from the wiring)."""
    tree = broken_copy(sglang_tree(version), tmp_path / f"broken-{version}")
    run = suite("test_tool_parser.py", variants=("8B-A1B",), extra=[
        f"--lfm-reference-parsers={tree}",
        "-k", "single_call or parallel_two_calls or parallel_three_different_tools or non_ascii_not_escaped",
    ])
    assert run.outcome("[8B-A1B-single_call]") == "passed", run.stdout[-3000:]
    run.assert_fails("[8B-A1B-non_ascii_not_escaped]", "Zürich", "\\u00fc")
    run.assert_fails("[8B-A1B-parallel_two_calls]", "calls")
    run.assert_fails("[8B-A1B-parallel_three_different_tools]", "calls")
    assert run.ret == 1, run.stdout[-3000:]


# ------------------------------------------------------------------------------------------ errors


def test_moved_module_error_names_module_and_version(tmp_path: Path) -> None:
    """A tree without the parser modules where they are looked for: the error names each path tried and
    the version, and says what to do."""
    (tmp_path / "sglang" / "srt").mkdir(parents=True)
    (tmp_path / "sglang-9.9.9.dist-info").mkdir()
    (tmp_path / "sglang-9.9.9.dist-info" / "METADATA").write_text("Name: sglang\nVersion: 9.9.9\n")
    r = subprocess.run([sys.executable, "-m", "pytest_lfm.reference.upstream", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    for text in ("sglang 9.9.9", "moved the module", "sglang.srt.function_call.function_call_parser",
                 str(tmp_path / "sglang/srt/function_call/function_call_parser.py"), "To fix:"):
        assert text in r.stderr, f"{text!r} not in:\n{r.stderr}"


def test_reference_parsers_without_tree_is_usage_error(suite: Suite, tmp_path: Path) -> None:
    """--lfm-reference-parsers pointing at no sglang tree stops the run before any check, naming the
    install script."""
    run = suite("test_protocol.py", extra=[f"--lfm-reference-parsers={tmp_path / 'nowhere'}", "-k", "health"])
    assert run.ret != 0
    assert "no sglang package in" in run.stdout and "install_sglang_parsers.sh" in run.stdout, run.stdout[-3000:]


def test_reference_parsers_needs_reference_server(pytester: pytest.Pytester) -> None:
    """The option applies only to the bundled reference server."""
    result = pytester.runpytest_subprocess("--lfm-server=localhost:1", "--lfm-reference-parsers=/x",
                                           "-p", "no:cacheprovider")
    assert result.ret != 0
    assert "only applies to the bundled reference server" in (result.stdout.str() + result.stderr.str())


def test_install_script_is_executable() -> None:
    """The documented entry points exist and are executable."""
    for name in ("install_sglang_parsers.sh", "ci_upstream_parsers.sh"):
        path = REPO / "scripts" / name
        assert path.is_file() and os.access(path, os.X_OK), path
    assert shutil.which("bash")


def fake_tree(root: Path, version: str, fcp_init: str) -> Path:
    """A minimal sglang tree whose ``FunctionCallParser.__init__`` has the signature ``fcp_init``."""
    srt = root / "sglang" / "srt"
    (srt / "function_call").mkdir(parents=True)
    (srt / "parser").mkdir()
    (srt / "entrypoints" / "openai").mkdir(parents=True)
    (root / f"sglang-{version}.dist-info").mkdir()
    (root / f"sglang-{version}.dist-info" / "METADATA").write_text(f"Name: sglang\nVersion: {version}\n")
    (srt / "function_call" / "lfm2_detector.py").write_text("class Lfm2Detector:\n    pass\n")
    (srt / "function_call" / "function_call_parser.py").write_text(
        "class FunctionCallParser:\n"
        "    ToolCallParserEnum = {'lfm2': object}\n"
        f"    def __init__(self, {fcp_init}):\n"
        "        pass\n"
        "    def parse_non_stream(self, text):\n"
        "        return text, []\n")
    (srt / "parser" / "reasoning_parser.py").write_text(
        "class ReasoningParser:\n"
        "    def __init__(self, model_type, stream_reasoning=True, force_reasoning=False, request=None):\n"
        "        pass\n"
        "    def parse_non_stream(self, text):\n"
        "        return None, text\n"
        "    def parse_stream_chunk(self, text):\n"
        "        return '', text\n")
    (srt / "entrypoints" / "openai" / "protocol.py").write_text(
        "from pydantic import BaseModel\n\nclass Tool(BaseModel):\n    type: str = 'function'\n    function: dict\n")
    return root


def test_release_without_tokenizer_argument_loads(tmp_path: Path) -> None:
    """0.5.10-0.5.14 construct ``FunctionCallParser(tools, tool_call_parser)`` and ``ReasoningParser`` without
    a tokenizer: the adapter leaves out the context arguments a release does not take."""
    tree = fake_tree(tmp_path / "old", "0.5.10", "tools, tool_call_parser")
    r = subprocess.run([sys.executable, "-m", "pytest_lfm.reference.upstream", str(tree)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["version"] == "0.5.10"


def test_unloadable_release_is_one_error_naming_it(suite: Any, tmp_path: Path) -> None:
    """A release whose parser constructor the adapter cannot drive stops the run once, at start-up, with an
    error naming the release and what failed — not a 500 per request (and no hang)."""
    tree = fake_tree(tmp_path / "new", "9.9.9", "tools, tool_call_parser, grammar")
    run = suite("test_tool_parser.py", variants=("8B-A1B",), extra=[f"--lfm-reference-parsers={tree}"])
    assert run.ret != 0
    for text in ("sglang 9.9.9", "FunctionCallParser", "grammar"):
        assert text in run.stdout, f"{text!r} not in:\n{run.stdout[-3000:]}"
    assert run.stdout.count("sglang 9.9.9 (") <= 2, run.stdout[-3000:]
    assert " 500" not in run.stdout, run.stdout[-3000:]


@pytest.mark.parametrize("version", ["0.5.10", "0.5.14", "0.5.15.post1", "0.5.23"])
def test_real_release_loads(version: str) -> None:
    """Each installed release's parsers load and parse (old and new constructor signatures)."""
    tree = sglang_tree(version)
    r = subprocess.run([sys.executable, "-m", "pytest_lfm.reference.upstream", str(tree)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    info = json.loads(r.stdout)
    assert info["version"] == version
    assert info["smoke"]["calls"][0]["name"] == "get_weather"
