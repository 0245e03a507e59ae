"""Every ``§`` citation in the suite resolves to a section of the shipped behaviour notes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import Suite

from pytest_lfm import citations

ROOT = Path(__file__).resolve().parent.parent
CITING = [*ROOT.glob("conformance/**/*.py"), *ROOT.glob("conformance/**/*.toml"),
          *ROOT.glob("pytest_lfm/**/*.py"), *ROOT.glob("pytest_lfm/**/*.toml"), *ROOT.glob("fixtures/**/*.py")]


def test_the_notes_define_stable_anchors() -> None:
    anchors = citations.known_anchors()
    assert {"s1.2", "s1.3", "s1.4", "s2", "s4", "s10", "s11.3", "f2"} <= anchors
    text = citations.doc_path().read_text(encoding="utf-8")
    assert len(re.findall(r'<a id="', text)) == len(anchors), "an anchor id is defined twice"


@pytest.mark.parametrize("path", CITING, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_citation_resolves(path: Path) -> None:
    missing = citations.unknown(path.read_text(encoding="utf-8"))
    assert not missing, (
        f"{path.relative_to(ROOT)} cites {missing}, which {citations.doc_path().name} does not define; "
        "add the section (with an <a id> anchor) or fix the citation"
    )


def test_the_suite_cites_something() -> None:
    cited = {s for p in CITING for s in citations.sections(p.read_text(encoding="utf-8"))}
    assert len(cited) >= 20


@pytest.mark.parametrize(("section", "anchor"), [("§1.3", "s1.3"), ("§ 4", "s4"), ("§F.2", "f2"), ("§F", "f")])
def test_anchor(section: str, anchor: str) -> None:
    assert citations.anchor(section) == anchor


def test_see_also_names_a_path_a_user_can_open() -> None:
    line = citations.see_also("the split (§2.1, §1.3; §99)")
    assert line.startswith("see §2.1 ")
    path, _, frag = line.split(" ")[2].rstrip(",").partition("#")
    assert Path(path).is_file() and frag == "s2.1"
    assert "§99" not in line


def test_a_failing_check_prints_the_notes_it_cites(suite: Suite) -> None:
    """A check that fails carries, in its report, the sections it cites as paths into the shipped notes."""
    run = suite("test_completions.py", variants=["1.2B-Base"], faults=["stop_ignored"],
                extra=["-k", "test_stop_honoured_with_matched_stop", "-rf"])
    run.assert_fails("test_stop_honoured_with_matched_stop", "text before the stop string")
    assert citations.REPORT_SECTION in run.stdout, run.stdout[-3000:]
    assert f"{citations.doc_path()}#s3.3" in run.stdout, run.stdout[-3000:]


def test_facts_the_notes_name_exist() -> None:
    """Every release fact the notes name (``fact `name```) is in pytest_lfm/data/release_facts.toml."""
    from pytest_lfm import releases

    text = citations.doc_path().read_text(encoding="utf-8")
    named = set(re.findall(r"fact\s+`([a-z0-9-]+)`", text))
    assert len(named) >= 5, named
    for name in named:
        releases.fact(name)  # raises for an unknown fact
