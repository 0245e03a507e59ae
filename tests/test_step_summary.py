"""The markdown step summary: appended when ``$GITHUB_STEP_SUMMARY`` is set or ``--lfm-step-summary`` (env
``LFM_STEP_SUMMARY``, ini ``lfm_step_summary``) is given; failing checks first, every cell's status in the
report's honest wording, the artifact paths and the CI page that lists them; never written otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from fake_server import fake_server, sglang_like

from pytest_lfm.reporting import CheckResult, TargetInfo, build_report
from pytest_lfm.summary import FAILURE_LIMIT, render_summary, run_page_url

CHECKS = """
def test_ok(lfm_target):
    assert lfm_target.variant.id == "350M"

def test_broken(lfm_target):
    assert 1 == 2, "expected 1, got 2 | with a pipe"
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_s=CHECKS)
    with fake_server(sglang_like("LiquidAI/LFM2.5-350M")) as url:
        return pytester.runpytest_subprocess("test_s.py", f"--lfm-server={url}", "-p", "no:cacheprovider",
                                             "-p", "no:xdist", *args, timeout=120)


def test_github_step_summary_is_appended(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = pytester.path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    for key, value in (("GITHUB_SERVER_URL", "https://github.com"), ("GITHUB_REPOSITORY", "org/repo"),
                       ("GITHUB_RUN_ID", "42")):
        monkeypatch.setenv(key, value)
    result = run(pytester, "--lfm-report=rep", "--junitxml=junit.xml")
    assert result.ret == 1
    assert f"lfm: step summary appended to {summary}" in result.stdout.str()
    text = summary.read_text()
    assert text.startswith("earlier step\n### pytest-lfm: LFM2.5 conformance on SGLang 0.5.17")
    # failing checks come before the cells table, with the message's pipe escaped
    failing = text.index("#### Failing checks (1)")
    assert failing < text.index("#### Cells")
    assert "| `test_s.py::test_broken` | failed | AssertionError: expected 1, got 2 \\| with a pipe" in text
    # the honest status: a test file instead of the suite on a host without the GPU is not Verified
    assert "| 350M | bf16 | tp1 | 1 | **Failed** | 1 passed, 1 failed |" in text
    assert "Verified" not in text
    assert "- [this run's artifacts](https://github.com/org/repo/actions/runs/42#artifacts)" in text
    for name in ("rep/report.json", "rep/matrix.md", "rep/matrix.html", "junit.xml"):
        assert name in text


@pytest.mark.parametrize("source", ["cli", "env", "ini"])
def test_option_and_its_twins(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    args: list[str] = []
    if source == "cli":
        args.append("--lfm-step-summary=out.md")
    elif source == "env":
        monkeypatch.setenv("LFM_STEP_SUMMARY", "out.md")
    else:
        pytester.makeini("[pytest]\nlfm_step_summary = out.md\n")
    run(pytester, *args)
    text = (pytester.path / "out.md").read_text()
    assert text.startswith("### pytest-lfm") and "**Failed**" in text
    assert "#### Artifacts" not in text  # no report, junit or logs were asked for


def test_no_summary_unless_asked(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = run(pytester)
    assert "step summary" not in result.stdout.str()
    assert not list(pytester.path.glob("*.md"))


def test_unwritable_summary_is_reported_not_fatal(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--lfm-step-summary=no-such-dir/out.md")
    assert result.ret == 1  # the failing check's exit status, not an internal error
    assert "lfm: could not append the step summary to no-such-dir/out.md" in result.stdout.str()


def _report(statuses: dict[str, list[str]]) -> dict[str, Any]:
    infos, results = [], []
    for variant, outcomes in statuses.items():
        infos.append(TargetInfo(id=variant, variant=variant, hardware="h200", sglang_version="0.5.23",
                                base_url="http://x", mode="launch", hardware_confirmed=True))
        results += [CheckResult(nodeid=f"conformance/test_f.py::test_{i}[{variant}]", target=variant, family="f",
                                outcome=o, duration=0.1, message=f"boom hf_{'a' * 20}\nsecond line")
                    for i, o in enumerate(outcomes)]
    return build_report(infos, results)


def test_render_orders_cells_by_severity_and_redacts() -> None:
    text = render_summary(_report({"350M": ["passed"], "8B-A1B": ["passed", "failed"],
                                   "VL-1.6B": ["passed", "xpassed"]}))
    rows = [line for line in text.splitlines() if line.startswith("| h200 |")]
    assert [r.split(" | ")[1] for r in rows] == ["8B-A1B", "VL-1.6B", "350M"]
    assert "**Verified**" in rows[-1] and "**Failed**" in rows[0]
    assert "known failure passed (remove its known-failure entry)" in text
    assert "hf_aaaa" not in text and "second line" not in text


def test_long_failure_lists_are_cut() -> None:
    text = render_summary(_report({"350M": ["failed"] * (FAILURE_LIMIT + 5)}))
    assert text.count("| failed |") == FAILURE_LIMIT
    assert "… and 5 more: every failure is in report.json and matrix.md" in text


def test_run_page_url() -> None:
    assert run_page_url({}) is None
    assert run_page_url({"CI_JOB_URL": "https://gitlab.example/g/p/-/jobs/7"}) == \
        "https://gitlab.example/g/p/-/jobs/7/artifacts/browse"


def test_summary_under_xdist_is_written_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=CHECKS)
    with fake_server(sglang_like("LiquidAI/LFM2.5-350M")) as url:
        pytester.runpytest_subprocess("test_s.py", f"--lfm-server={url}", "-p", "no:cacheprovider", "-n", "2",
                                      "--lfm-step-summary=out.md", timeout=120)
    text = (pytester.path / "out.md").read_text()
    assert text.count("### pytest-lfm") == 1 and "| 1 passed, 1 failed |" in text
