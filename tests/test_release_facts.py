"""Release facts (pytest_lfm/data/release_facts.toml) against the real releases, and the emulation against
both.

Always (no SGLang needed):

* the facts file is valid, gates and known failures name facts only (no version strings anywhere);
* every known release, emulated by the reference server's own parsers, meets the corpus: each case passes
  where its gate holds, unless a known failure applies there, and then it fails (strict).

With the releases' parser code installed (``LFM_SGLANG_PARSERS_ROOT``, one
``scripts/install_sglang_parsers.sh VERSION $LFM_SGLANG_PARSERS_ROOT/VERSION`` tree per release; skipped
with the reason otherwise), for every installed release:

* its real code meets the corpus the same way (gates and known failures are true of the real release);
* each parser fact's cases flip exactly between the release before ``since`` and ``since``, and every
  output change between two consecutive releases is explained by a fact of the later one;
* the emulation gives exactly what the real code gives for every probe, except the listed exceptions
  (``pytest_lfm/data/emulation_exceptions.toml``), and every exception is still needed.

CI sweep: ``LFM_SGLANG_PARSERS_ROOT=DIR python -m pytest tests/test_release_facts.py`` (≈2 min for 14
releases on two cores: one probe process per release).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from pytest_lfm import releases
from pytest_lfm.cases import Case, load_cases
from pytest_lfm.errors import LfmUsageError
from pytest_lfm.expectations import load_known_failures
from pytest_lfm.paths import suite_dir
from pytest_lfm.release_probe import Emulated, check_id, run, verdict

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("LFM_SGLANG_PARSERS_ROOT") or REPO / ".sglang-parsers")
EXCEPTIONS = REPO / "pytest_lfm" / "data" / "emulation_exceptions.toml"
KNOWN = releases.known_releases()
PARSER_FACTS = [f for f in releases.all_facts() if f.area == "parser"]


# ------------------------------------------------------------------------------------------ the data


def test_facts_file_is_valid_and_ordered() -> None:
    facts = releases.load()
    assert list(facts.releases) == sorted(facts.releases, key=Version)
    assert {f.since for f in facts.facts.values()} <= set(facts.releases)
    assert releases.fact("lfm2-robust-detector").since == "0.5.19"


def test_has_fact_semantics() -> None:
    assert not releases.has_fact("lfm2-robust-detector", "0.5.18")
    assert releases.has_fact("lfm2-robust-detector", "0.5.19")
    assert releases.has_fact("lfm2-robust-detector", "0.6.0")  # newer than every known release
    assert releases.has_fact("lfm2-robust-detector", None)  # unknown counts as the newest
    assert releases.has_fact("lfm2-robust-detector", "garbage")
    assert releases.gate_holds("!lfm2-robust-detector", "0.5.18")
    assert releases.gate_holds(["lfm2-dotted-names", "!lfm2-robust-detector"], "0.5.17")
    assert not releases.gate_holds(["lfm2-dotted-names", "!lfm2-robust-detector"], "0.5.19")
    with pytest.raises(LfmUsageError, match="unknown SGLang release fact 'nope'"):
        releases.has_fact("nope", "0.5.17")


def test_gates_name_facts_never_versions() -> None:
    """One gate form: ``fact = "name"`` / ``"!name"`` in case files and known failures, ``lfm_fact`` and
    ``has_fact`` in test modules; no version string or PEP 440 specifier anywhere."""
    offenders = []
    for path in sorted((suite_dir() / "cases").rglob("*.toml")) + sorted((suite_dir() / "expectations").glob("*.toml")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(r"\s*(sglang|xfail)\s*=", line) or re.match(r"\s*\[case\.xfail\]", line):
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    for path in sorted(suite_dir().rglob("test_*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "version_matches(" in line or "lfm_sglang(" in line:
                offenders.append(f"{path.name}:{n}: {line.strip()}")
    assert not offenders, "gates must name release facts:\n" + "\n".join(offenders)
    for family in ("tool_calls", "reasoning", "validation", "vision"):
        load_cases(family)  # validates every `fact` gate against the facts file
    load_known_failures()


# ------------------------------------------------------------------------------------------ helpers


def _cases() -> dict[str, Case]:
    out = {}
    for family in ("tool_calls", "reasoning"):
        for case in load_cases(family):
            out[case.id] = case
    return out


def expected_outcome(probe_id: str, version: str) -> str | None:
    """"pass", "fail" (a known failure applies) or None (not run there, or no check) for one probe."""
    check = check_id(probe_id)
    if check is None:
        return None
    case = _cases()[probe_id.split("/")[1]]
    if case.fact is not None and not releases.gate_holds(case.fact, version):
        return None
    bare = check.split("[", 1)[0]
    known = [e for e in load_known_failures() if e.matches(check, bare) and e.applies_to_version(version)]
    return "fail" if known else "pass"


def corpus_mismatches(outputs: dict[str, Any], version: str) -> list[str]:
    """Probes whose verdict on ``version`` is not what the gates and known failures say."""
    wrong = []
    for probe_id, out in sorted(outputs.items()):
        want = expected_outcome(probe_id, version)
        if want is None:
            continue
        problem = verdict(probe_id, out)
        if want == "pass" and problem is not None:
            wrong.append(f"{probe_id}: expected to pass on {version}, but {problem}")
        elif want == "fail" and problem is None:
            wrong.append(f"{probe_id}: a known failure applies on {version}, but it passes (narrow the entry)")
    return wrong


@pytest.fixture(scope="session")
def emulated() -> dict[str, dict[str, Any]]:
    return {v: run(Emulated(v))["outputs"] for v in KNOWN}


@pytest.mark.parametrize("version", KNOWN)
def test_emulated_release_meets_corpus(emulated: dict[str, dict[str, Any]], version: str) -> None:
    """The reference server's emulation of each release passes every case its gates run there and fails
    exactly the known failures there."""
    wrong = corpus_mismatches(emulated[version], version)
    assert not wrong, "\n".join(wrong)


# ------------------------------------------------------------------------------------------ real releases


def _installed() -> dict[str, Path]:
    return {v: ROOT / v for v in KNOWN if (ROOT / v / "sglang").is_dir()}


def _probe(tree: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "pytest_lfm.release_probe", "real", str(tree)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, f"probing {tree} failed:\n{proc.stderr[-3000:]}"
    return dict(json.loads(proc.stdout)["outputs"])


@pytest.fixture(scope="session")
def real() -> dict[str, dict[str, Any]]:
    trees = _installed()
    if not trees:
        pytest.skip(f"no SGLang release parser trees under {ROOT} (set LFM_SGLANG_PARSERS_ROOT; install each with "
                    f"scripts/install_sglang_parsers.sh VERSION $LFM_SGLANG_PARSERS_ROOT/VERSION)")
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(trees, pool.map(_probe, trees.values()), strict=True))
    return results


def _need(real: dict[str, dict[str, Any]], *versions: str | None) -> None:
    missing = [v for v in versions if v is not None and v not in real]
    if missing:
        pytest.skip(f"SGLang {', '.join(missing)} not installed under {ROOT}")


@pytest.mark.parametrize("version", KNOWN)
def test_real_release_meets_corpus(real: dict[str, dict[str, Any]], version: str) -> None:
    """Each release's own code passes every case its gates run there and fails exactly the known failures
    there: the gates and known failures are true of the real releases."""
    _need(real, version)
    wrong = corpus_mismatches(real[version], version)
    assert not wrong, "\n".join(wrong)


def _gated_probes(name: str) -> Iterator[tuple[str, str]]:
    """(probe id, how it relates to the fact): "gate", "!gate", "known" (a known failure gated !name)."""
    probes = run(Emulated(KNOWN[-1]))["outputs"]  # ids only
    entries = [e for e in load_known_failures() if e.fact is not None and f"!{name}" in releases.gate_refs(e.fact)]
    for probe_id in probes:
        check = check_id(probe_id)
        if check is None:
            continue
        case = _cases()[probe_id.split("/")[1]]
        refs = releases.gate_refs(case.fact) if case.fact is not None else ()
        if name in refs:
            yield probe_id, "gate"
        elif f"!{name}" in refs:
            yield probe_id, "!gate"
        if any(e.matches(check, check.split("[", 1)[0]) for e in entries):
            yield probe_id, "known"


@pytest.mark.parametrize("name", [f.name for f in PARSER_FACTS])
def test_fact_cases_flip_at_since(real: dict[str, dict[str, Any]], name: str) -> None:
    """A parser fact's cases flip exactly between the release before ``since`` and ``since``: gated cases
    pass on their side only, known failures gated ``!name`` fail before and pass from ``since``."""
    f = releases.fact(name)
    before = releases.load().previous(f.since)
    _need(real, f.since, before)
    assert before is not None
    related = list(_gated_probes(name))
    assert related, f"fact {name}: no corpus case is gated on it and no known failure names it"
    wrong = []
    for probe_id, how in related:
        old, new = verdict(probe_id, real[before][probe_id]), verdict(probe_id, real[f.since][probe_id])
        passes = {"gate": (False, True), "!gate": (True, False), "known": (False, True)}[how]
        if (old is None, new is None) != passes:
            wrong.append(f"{probe_id} ({how}): on {before}: {old or 'passes'}; on {f.since}: {new or 'passes'}")
    assert not wrong, f"fact {name} (since {f.since}) does not flip its cases there:\n" + "\n".join(wrong)


def test_every_output_change_is_a_fact(real: dict[str, dict[str, Any]]) -> None:
    """Between two consecutive installed releases, outputs change only where a parser fact starts."""
    installed = [v for v in KNOWN if v in real]
    starts = {f.since for f in PARSER_FACTS}
    unexplained = []
    for a, b in pairwise(installed):
        changed = sorted(p for p in real[b] if real[a].get(p) != real[b][p])
        covered = any(Version(a) < Version(s) <= Version(b) for s in starts)
        if changed and not covered:
            unexplained.append(f"{a} -> {b}: {len(changed)} probes changed, e.g. {changed[:5]}")
    assert not unexplained, "add a release fact for:\n" + "\n".join(unexplained)


def _exceptions() -> list[dict[str, Any]]:
    return list(tomllib.loads(EXCEPTIONS.read_text(encoding="utf-8")).get("exception", []))


def test_emulation_matches_real_releases(real: dict[str, dict[str, Any]]) -> None:
    """For every installed release and every probe, ``--lfm-reference-version=V`` answers what release V's
    own code answers, except the listed exceptions; every exception is still needed."""
    listed = _exceptions()
    used: set[int] = set()
    diffs = []
    for version, outputs in real.items():
        emu = run(Emulated(version))["outputs"]
        for probe_id in sorted(outputs):
            if emu.get(probe_id) == outputs[probe_id]:
                continue
            hit = [i for i, x in enumerate(listed) if fnmatch.fnmatchcase(probe_id, x["probe"])
                   and ("fact" not in x or releases.gate_holds(x["fact"], version))]
            if hit:
                used.update(hit)
                continue
            diffs.append(f"{version} {probe_id}:\n    real:     {json.dumps(outputs[probe_id], ensure_ascii=False)}"
                         f"\n    emulated: {json.dumps(emu.get(probe_id), ensure_ascii=False)}")
    stale = [x["probe"] for i, x in enumerate(listed) if i not in used]
    assert not diffs, f"{len(diffs)} emulation differences (fix pytest_lfm/lfm2.py or list them in {EXCEPTIONS.name}):\n" \
        + "\n".join(diffs[:40])
    assert not stale, f"exceptions no longer needed: {stale}"
