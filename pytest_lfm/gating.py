"""Collection-time decisions for one check on one target: skips (markers, engine mode), case version gates,
known failures, and the properties that tag the check for the report.

Called from ``pytest_collection_modifyitems``; every decision is a marker added to the item, so pytest's
own reporting (``-rs``, ``-rx``, junitxml) shows the reason.
"""

from __future__ import annotations

import pytest

from pytest_lfm import citations
from pytest_lfm.cases import Case
from pytest_lfm.engine import HTTP_SKIP
from pytest_lfm.expectations import case_gate_skip, known_failure_mark
from pytest_lfm.markers import MARKERS, MarkerError, skip_reason, validate
from pytest_lfm.server.base import Target

NO_TARGET = """the conformance checks need a server to check, and none was given.
  --lfm-server=HOST:PORT        attach to a running SGLang server (e.g. localhost:30000); repeat as
                                VARIANT=URL to check several variants in one run
  --lfm-server=reference        start the bundled reference server (no GPU needed), one per variant
                                selected with --lfm-variant (default: all nine)
  --lfm-launch                  start SGLang per selected variant from the verified recipe for this GPU
                                (--lfm-hardware, --lfm-framing=python|docker, --lfm-model-path VARIANT=PATH);
                                --lfm-print-recipe prints those commands and exits
  --lfm-engine                  run SGLang's offline sgl.Engine in this process, one per variant given with
                                --lfm-model-path VARIANT=PATH (checks that need HTTP skip)
Example: pytest --lfm-server=reference --lfm-report=lfm-report"""
HTTP_FIXTURES = ("lfm_http", "lfm_client", "lfm_chat")
ENGINE_SKIP = "needs --lfm-engine"


def item_target(item: pytest.Item) -> Target | None:
    """The target an item checks (its ``lfm_target`` parameter), or None."""
    callspec = getattr(item, "callspec", None)
    target = callspec.params.get("lfm_target") if callspec else None
    return target if isinstance(target, Target) else None


def item_case(item: pytest.Item) -> Case | None:
    """The data case an item is parametrised with (its ``case`` parameter), or None."""
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("case") if callspec else None
    return case if isinstance(case, Case) else None


def gate(item: pytest.Item, target: Target) -> None:
    """Add the skip / strict-xfail markers that apply to ``item`` on ``target``; a marker used with bad
    arguments is a :class:`pytest.UsageError` naming the check."""
    for why in transport_skips(item, target):
        item.add_marker(pytest.mark.skip(reason=why))
    for mark in item.iter_markers():
        if mark.name not in MARKERS:
            continue
        try:
            validate(mark.name, mark.args, dict(mark.kwargs))
        except MarkerError as exc:
            raise pytest.UsageError(f"{item.nodeid}: {exc}") from None
        reason = skip_reason(mark.name, mark.args, target)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    case = item_case(item)
    if case is not None:
        gated = case_gate_skip(case, target)  # the case's release-fact gate (pytest_lfm/releases.py)
        if gated:
            item.add_marker(pytest.mark.skip(reason=gated))
    known = known_failure_mark(item, target)  # conformance/expectations/known_failures.toml
    if known is not None:
        item.add_marker(known)


def transport_skips(item: pytest.Item, target: Target) -> list[str]:
    """Skip reasons from what the target can be reached by: checks using an HTTP fixture need an HTTP API,
    checks using ``lfm_engine`` need an in-process engine."""
    names = getattr(item, "fixturenames", ())
    reasons: list[str] = []
    if not target.has_http:
        used = [f for f in HTTP_FIXTURES if f in names]
        if used:
            reasons.append(f"{HTTP_SKIP} (uses {', '.join(used)})")
    if not target.has_engine and "lfm_engine" in names:
        reasons.append(f"{ENGINE_SKIP}; {target.id} is served over HTTP ({target.kind} mode)")
    return reasons


def section_of(item: pytest.Item) -> str:
    """The source-document sections a check cites: its case's, else the ``§N.M`` in its docstring."""
    case = item_case(item)
    if case is not None and case.section:
        return case.section
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    return ", ".join(s.replace(" ", "") for s in citations.sections(doc))


def family_of(item: pytest.Item) -> str:
    """The check family: the test module's name (without package or folder)."""
    module = getattr(item, "module", None)
    return module.__name__.rsplit(".", 1)[-1] if module is not None else ""


def tag(item: pytest.Item, target: Target) -> None:
    """The report's per-check properties (read back from each report by :mod:`pytest_lfm.collect`)."""
    item.user_properties += [("lfm_target", target.id), ("lfm_variant", target.variant.id),
                             ("lfm_sglang_version", target.version or "unknown"),
                             ("lfm_hardware", target.hardware),
                             ("lfm_family", family_of(item)),
                             ("lfm_section", section_of(item))]


def gate_items(items: list[pytest.Item], have_targets: bool) -> None:
    """Gate and tag every item that checks a target; checks collected without any target are a usage error."""
    uses_target = [i for i in items if "lfm_target" in getattr(i, "fixturenames", ())]
    if uses_target and not have_targets:
        raise pytest.UsageError(NO_TARGET)
    for item in uses_target:
        target = item_target(item)
        if target is None:
            continue
        gate(item, target)
        tag(item, target)
