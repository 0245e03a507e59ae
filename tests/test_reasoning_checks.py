"""The reasoning family's control run and fault rows are data (conformance/reasoning/faults.toml, run by
tests/test_faults.py); the corpus-size rule that needs no server is checked here."""

from __future__ import annotations

from pytest_lfm.cases import load_cases
from pytest_lfm.lfm2 import REASONING_PARSERS


def test_corpus_has_thirty_cases_per_parser_on_every_version() -> None:
    """At least 30 corpus cases hold on every SGLang version (not version-gated), for both parser names."""
    corpus = [c for c in load_cases("reasoning") if "text" in c.data]
    for parser in REASONING_PARSERS:
        assert sum(1 for c in corpus if parser in c.data and not c.fact) >= 30
