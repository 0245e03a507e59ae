"""``python -m pytest_lfm releases compare OLD NEW``: every corpus case through two SGLang releases' real
parser code, and every case whose output changed, side by side.

What runs (per release, in a child process of its own, because a process can import one sglang tree
only: :mod:`pytest_lfm.reference.upstream`):

* the tool-call corpus (``tool_calls`` case files): the ``lfm2`` parser through the
  ``/parse_function_call`` path (``FunctionCallParser.parse_non_stream``) and the streaming chat path
  (``parse_stream_chunk`` per token-like piece, then ``parse_stream_end`` where the release has it);
* the reasoning corpus (``reasoning`` case files): ``/separate_reasoning`` cases with both parser
  names (``qwen3``, ``qwen3-thinking``), and the regex-forced chat cases through the non-streaming split
  and the streaming detector (parser ``qwen3``, not forced, ``stream_reasoning`` from the case's request)
  in the modes each case lists.

The output of every case is compared whether or not an expectation covers it: this is what changed in
the parsers between the two releases, not whether the suite passes. The parser source files
(``sglang/srt/function_call/``, ``sglang/srt/parser/``, ``sglang/srt/reasoning_parser.py``) are hashed
and the ones that differ are listed.

Releases are installed once with ``scripts/install_sglang_parsers.sh VERSION DIR`` into
``$LFM_SGLANG_PARSERS_ROOT/VERSION`` (default ``.sglang-parsers/VERSION``) and reused.

Exit status: 0 the comparison ran (changes are information, not failures); 2 unusable input (an
unknown release, an install or import failure), with what was tried and what to do.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from pytest_lfm.errors import LfmError
from pytest_lfm.paths import PACKAGE_DIR, fixtures_dir, suite_dir

EXIT_OK = 0
EXIT_BAD_INPUT = 2
ROOT_ENV = "LFM_SGLANG_PARSERS_ROOT"
DEFAULT_ROOT = ".sglang-parsers"
DEFAULT_TOOLS = ("get_weather", "search", "ping")
PARSER_SOURCES = ("sglang/srt/function_call", "sglang/srt/parser", "sglang/srt/reasoning_parser.py",
                  "sglang/srt/environ.py")
#: The files the lfm2 detector and the Qwen3 reasoning detector run (the rest are other models' parsers).
LFM_PATH_SOURCES = (
    "sglang/srt/function_call/lfm2_detector.py", "sglang/srt/function_call/base_format_detector.py",
    "sglang/srt/function_call/core_types.py", "sglang/srt/function_call/utils.py",
    "sglang/srt/function_call/function_call_parser.py", "sglang/srt/parser/reasoning_parser.py",
    "sglang/srt/reasoning_parser.py", "sglang/srt/environ.py",
)
_TAGS = ("<|tool_call_start|>", "<|tool_call_end|>", "<think>", "</think>", "<|im_end|>")
_PIECE = re.compile("|".join(re.escape(t) for t in _TAGS) + r"|\s+|\w+|[^\w\s]")


class CompareError(LfmError):
    """A release cannot be compared (not installed and not installable, or its parsers do not load)."""


class Parsers(Protocol):
    """The parser interface of :class:`pytest_lfm.reference.upstream.UpstreamParsers` that compare uses."""

    def parse_function_call(self, text: str, tools: Sequence[Mapping[str, Any]], parser: str | None) -> Any: ...

    def separate_reasoning(self, text: str, parser: str) -> dict[str, Any]: ...

    def split_reasoning(self, text: str, parser: str, force: bool | None = None) -> Any: ...

    def streaming_tools(self, tools: Sequence[Mapping[str, Any]]) -> Any: ...

    def streaming_reasoning(self, parser: str, force: bool = False, stream_reasoning: bool = True) -> Any: ...


# ------------------------------------------------------------------------------------------ corpus


def case_files(family: str) -> list[Path]:
    """The TOML case files of a corpus family (``tool_calls``, ``reasoning``) wherever the suite keeps them:
    ``conformance/cases/<family>/*.toml`` or ``conformance/<family>/cases/**/*.toml``."""
    found = set()
    for path in suite_dir().rglob("*.toml"):
        parts = path.relative_to(suite_dir()).parts
        if "cases" in parts and family in parts:
            found.add(path)
    return sorted(found)


@dataclass(frozen=True)
class Probe:
    """One input through one parser path: ``key`` names it as ``family/case-id [path]``."""

    key: str
    kind: str  # tool | tool-stream | separate | forced | forced-stream
    text: str
    tools: tuple[str, ...] = ()
    parser: str = ""
    stream_reasoning: bool = True


def probes() -> list[Probe]:
    """Every corpus case on every parser path the corpora define (see the module docstring)."""
    out: list[Probe] = []
    for path in case_files("tool_calls"):
        for case in tomllib.loads(path.read_text(encoding="utf-8")).get("case", []):
            tools = tuple(case.get("tools", DEFAULT_TOOLS))
            base = f"tool_calls/{case['id']}"
            out.append(Probe(f"{base} [parse_function_call]", "tool", case["text"], tools, "lfm2"))
            out.append(Probe(f"{base} [chat stream]", "tool-stream", case["text"], tools, "lfm2"))
    for path in case_files("reasoning"):
        for case in tomllib.loads(path.read_text(encoding="utf-8")).get("case", []):
            base = f"reasoning/{case['id']}"
            if "text" in case:
                for parser in ("qwen3", "qwen3-thinking"):
                    out.append(Probe(f"{base} [separate_reasoning {parser}]", "separate", case["text"],
                                     parser=parser))
                continue
            request = case.get("request", {})
            if request.get("separate_reasoning") is False or "raw" not in case:
                continue  # no parser runs: the output is the raw text on every release
            stream_reasoning = request.get("stream_reasoning", True) is not False
            modes = case.get("modes", ["non-stream"])
            if "non-stream" in modes:
                out.append(Probe(f"{base} [chat non-stream qwen3]", "forced", case["raw"], parser="qwen3"))
            if "stream" in modes:
                out.append(Probe(f"{base} [chat stream qwen3]", "forced-stream", case["raw"], parser="qwen3",
                                 stream_reasoning=stream_reasoning))
    return out


def pieces(text: str) -> list[str]:
    """Token-like increments for the streaming paths: special tags whole, words, runs of spaces, symbols."""
    return _PIECE.findall(text)


@cache
def _tool(name: str) -> dict[str, Any]:
    return json.loads((fixtures_dir() / "tools" / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _calls(calls: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": c.name, "parameters": c.parameters, "tool_index": c.tool_index} for c in calls]


def run_probe(parsers: Parsers, probe: Probe) -> Any:
    """The output of one probe as plain data; an exception becomes ``{"error": "Type: message"}``."""
    tools = [_tool(t) for t in probe.tools]
    try:
        if probe.kind == "tool":
            parsed = parsers.parse_function_call(probe.text, tools, probe.parser)
            return {"normal_text": parsed.normal_text, "calls": _calls(parsed.calls)}
        if probe.kind == "tool-stream":
            sp = parsers.streaming_tools(tools)
            text, calls = [], []
            for piece in pieces(probe.text):
                t, c = sp.feed(piece)
                text.append(t)
                calls += _calls(c)
            t, c = sp.finish()
            return {"text": "".join(text) + t, "calls": calls + _calls(c)}
        if probe.kind == "separate":
            got = parsers.separate_reasoning(probe.text, probe.parser)
            return {"reasoning_text": got.get("reasoning_text"), "text": got.get("text")}
        if probe.kind == "forced":
            split = parsers.split_reasoning(probe.text, probe.parser, force=False)
            return {"reasoning": split.reasoning_text, "content": split.text}
        rp = parsers.streaming_reasoning(probe.parser, force=False, stream_reasoning=probe.stream_reasoning)
        deltas = [rp.feed(p) for p in pieces(probe.text)] + [rp.finish()]
        return {"reasoning": "".join(r for r, _ in deltas), "content": "".join(c for _, c in deltas),
                "reasoning_deltas": [r for r, _ in deltas if r]}
    except Exception as exc:  # the release's own code raised: that is its output
        return {"error": f"{type(exc).__name__}: {exc}"}


def run_corpus(parsers: Parsers, selected: Sequence[Probe] | None = None) -> dict[str, Any]:
    """``{probe key: output}`` for every probe."""
    return {p.key: run_probe(parsers, p) for p in (probes() if selected is None else selected)}


def adapter_failure(outputs: Mapping[str, Any], selected: Sequence[Probe] | None = None) -> str | None:
    """When every probe of one parser path raised the same error, the adapter cannot drive the release (a
    changed constructor or method), which is not a behaviour of the release: that error, else ``None``."""
    by_kind: dict[str, set[str]] = {}
    for p in probes() if selected is None else selected:
        out = outputs.get(p.key)
        error = out.get("error") if isinstance(out, dict) and set(out) == {"error"} else None
        by_kind.setdefault(p.kind, set()).add(str(error) if error is not None else "\0ok")
    for kind, results in sorted(by_kind.items()):
        if len(results) == 1 and "\0ok" not in results:
            return f"every {kind} probe raised {next(iter(results))}"
    return None


# ------------------------------------------------------------------------------------------ releases


def parsers_root() -> Path:
    """Where installed releases live: ``$LFM_SGLANG_PARSERS_ROOT`` or ``.sglang-parsers``."""
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT).expanduser()


def _installed(tree: Path) -> bool:
    """A complete install: the package and its metadata or the install script's marker (a tree another
    process is still installing has the package directory before either)."""
    return (tree / "sglang").is_dir() and (any(tree.glob(".installed-*")) or any(tree.glob("sglang-*.dist-info")))


def release_dir(version: str, root: Path | None = None) -> Path | None:
    """The installed tree of ``version`` under ``root`` (``0.5.12`` also finds ``0.5.12.post1``)."""
    root = root or parsers_root()
    exact = root / version
    if _installed(exact):
        return exact
    posts = sorted(p for p in root.glob(f"{version}.post*") if _installed(p))
    return posts[-1] if posts else None


def install_script() -> Path:
    """``scripts/install_sglang_parsers.sh`` of this checkout."""
    return PACKAGE_DIR.parent / "scripts" / "install_sglang_parsers.sh"


def ensure_release(version: str, root: Path | None = None) -> Path:
    """The installed tree of ``version``, installed with the project's script when missing."""
    if not re.fullmatch(r"\d+\.\d+\.\d+(\.post\d+|rc\d+)?", version):
        raise CompareError(f"{version!r} is not an SGLang release version",
                           tried=[f"parse {version!r} as MAJOR.MINOR.PATCH[.postN]"],
                           remedy="pass release versions such as 0.5.22 0.5.23")
    root = root or parsers_root()
    found = release_dir(version, root)
    if found is not None:
        return found
    script = install_script()
    target = root / version
    if not script.is_file():
        raise CompareError(f"SGLang {version} is not installed in {root} and the install script is missing",
                           tried=[str(target), str(script)],
                           remedy=f"install it with scripts/install_sglang_parsers.sh {version} {target} from a "
                                  f"pytest-lfm checkout, or set {ROOT_ENV} to a directory holding it")
    print(f"installing SGLang {version}'s parser code into {target} (once; reused afterwards) ...", file=sys.stderr)
    proc = subprocess.run(["bash", str(script), version, str(target)], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, check=False)
    if proc.returncode != 0 or not (target / "sglang").is_dir():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise CompareError(f"installing SGLang {version} failed (exit {proc.returncode}): {' | '.join(tail)}",
                           tried=[f"bash {script} {version} {target}"],
                           remedy=f"check that sglang=={version} exists on the package index and that pip can "
                                  f"reach it; delete {target} and retry, or point {ROOT_ENV} at a directory "
                                  f"with the release installed")
    return target


def source_hashes(tree: Path) -> dict[str, str]:
    """sha256 of every parser source file of an installed tree (paths relative to the tree)."""
    out: dict[str, str] = {}
    for rel in PARSER_SOURCES:
        path = tree / rel
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
        for f in files:
            out[f.relative_to(tree).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _worker_outputs(tree: Path) -> dict[str, Any]:
    """Run the corpus through the tree's parsers in a child process (one sglang tree per process)."""
    proc = subprocess.run([sys.executable, "-m", "pytest_lfm.compare", "--worker", str(tree)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-4:]
        raise CompareError(f"the parsers in {tree} did not run: {' | '.join(tail)}",
                           tried=[f"{sys.executable} -m pytest_lfm.compare --worker {tree}"],
                           remedy=f"check the tree with python -m pytest_lfm.reference.upstream {tree}; delete it "
                                  f"and run the comparison again to reinstall")
    return dict(json.loads(proc.stdout))


# ------------------------------------------------------------------------------------------ comparison


@dataclass
class Comparison:
    """Two releases' outputs on the corpus and their parser sources."""

    old: str
    new: str
    old_outputs: dict[str, Any]
    new_outputs: dict[str, Any]
    old_sources: dict[str, str] = field(default_factory=dict)
    new_sources: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> list[str]:
        """Probe keys whose output differs (or exists on one side only)."""
        keys = self.old_outputs.keys() | self.new_outputs.keys()
        return sorted(k for k in keys if self.old_outputs.get(k) != self.new_outputs.get(k))

    @property
    def changed_sources(self) -> list[tuple[str, str]]:
        """(file, how) for parser source files that differ: ``changed``, ``added`` or ``removed``."""
        out = []
        for f in sorted(self.old_sources.keys() | self.new_sources.keys()):
            a, b = self.old_sources.get(f), self.new_sources.get(f)
            if a != b:
                out.append((f, "added" if a is None else "removed" if b is None else "changed"))
        return out


def compare(old: str, new: str, root: Path | None = None,
            outputs: Callable[[Path], dict[str, Any]] = _worker_outputs) -> Comparison:
    """Install (if needed) both releases and run the corpus through each."""
    trees = [ensure_release(v, root) for v in (old, new)]
    return Comparison(old, new, outputs(trees[0]), outputs(trees[1]), source_hashes(trees[0]),
                      source_hashes(trees[1]))


def _show(value: Any) -> str:
    return "(not run)" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def render(c: Comparison) -> str:
    """The files that differ, then every changed case with both outputs."""
    total = len(c.old_outputs.keys() | c.new_outputs.keys())
    lines = [f"SGLang {c.old} → {c.new}: {total} corpus probes (tool-call and reasoning cases, each parser path)"]
    files = c.changed_sources
    all_files = c.old_sources.keys() | c.new_sources.keys()
    lfm_files = [f for f in LFM_PATH_SOURCES if f in all_files]
    lfm_changed = [(f, how) for f, how in files if f in LFM_PATH_SOURCES]
    others = [f for f, _ in files if f not in LFM_PATH_SOURCES]
    if lfm_changed:
        lines.append(f"source files on the LFM parser paths that differ (sha256): {len(lfm_changed)} of "
                     f"{len(lfm_files)}")
        lines += [f"  {how:8} {f}" for f, how in lfm_changed]
    else:
        lines.append(f"source files on the LFM parser paths: all {len(lfm_files)} identical (sha256)")
    if others:
        names = [Path(f).name for f in others]
        shown = ", ".join(names[:8]) + (f", … ({len(names) - 8} more; --json lists them)" if len(names) > 8 else "")
        lines.append(f"other parser files (other models' parsers) that differ: {len(others)} of "
                     f"{len(all_files) - len(lfm_files)}: {shown}")
    changed = c.changed
    if not changed:
        lines.append(f"outputs: identical on all {total} probes")
        return "\n".join(lines) + "\n"
    lines += ["", f"outputs that changed: {len(changed)} of {total}"]
    width = max(len(c.old), len(c.new))
    for key in changed:
        lines.append(f"  {key}")
        lines.append(f"    {c.old:>{width}}: {_show(c.old_outputs.get(key))}")
        lines.append(f"    {c.new:>{width}}: {_show(c.new_outputs.get(key))}")
    return "\n".join(lines) + "\n"


def worker_main(tree: str) -> int:
    """``python -m pytest_lfm.compare --worker DIR``: the corpus outputs of one tree as JSON on stdout."""
    from pytest_lfm.reference.upstream import UpstreamParsers, UpstreamParsersError

    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the release's code prints must not corrupt the JSON on stdout
    try:
        parsers = UpstreamParsers(tree)
        outputs = run_corpus(parsers)
    except UpstreamParsersError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = out
    failure = adapter_failure(outputs)
    if failure:
        print(f"error: sglang {parsers.version} ({tree}): {failure}\nTo fix: teach "
              f"pytest_lfm/reference/upstream.py this release's parser API", file=sys.stderr)
        return 1
    sys.stdout.write(json.dumps(outputs, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(worker_main(sys.argv[2]))
    print("usage: python -m pytest_lfm releases compare OLD NEW", file=sys.stderr)
    sys.exit(2)
