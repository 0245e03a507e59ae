"""matrix.html in a real headless browser (Debian's chromium).

A run of two variants with the ``usage_wrong`` fault writes matrix.html; chromium opens it from a
``file://`` URL, runs its inline script, and dumps the DOM: the cells carry the right status classes, the
failure list names the failing checks, and the family filter works. A screenshot is kept under the
test's tmp dir and copied to ``$LFM_ARTIFACTS_DIR`` when that is set.

Without chromium the test skips, or fails when ``CI=true`` (CI installs it: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import clean_env, run_pytest, suite_args

from pytest_lfm import reporting

VARIANTS = ("1.2B-Instruct", "VL-1.6B")
INSTALL = "apt-get install -y chromium"
# Read at import: tests/conftest.py clears LFM_* variables before each test.
ARTIFACTS_DIR = os.environ.get("LFM_ARTIFACTS_DIR")


def chromium() -> str:
    """The chromium executable; skip (or fail on CI) when it is missing."""
    for name in ("/usr/bin/chromium", "chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    msg = f"chromium is not installed (looked for /usr/bin/chromium, chromium, chromium-browser); install it with `{INSTALL}`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {msg}", pytrace=False)
    pytest.skip(msg)


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless chromium on a file:// page with ``args`` (``--dump-dom`` or ``--screenshot=...``)."""
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=2000", *args, page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def with_family_filter(page: Path, family: str, checked: bool) -> Path:
    """A copy of the page whose script first sets one family checkbox (chromium has no click API on the
    command line; the page's own filter code then runs as it would on a click)."""
    text = page.read_text(encoding="utf-8")
    hook = ("<script>document.querySelectorAll('input[data-family-filter]').forEach(function (b) {"
            f"if (b.value === {family!r}) {{ b.checked = {str(checked).lower()}; }} }});</script>")
    copy = page.with_name(f"matrix-filtered-{family}.html")
    copy.write_text(text.replace("<script>", hook + "<script>", 1), encoding="utf-8")
    return copy


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """matrix.html of a run of two variants with one fault (usage_wrong)."""
    chromium()
    base = tmp_path_factory.mktemp("html")
    args = suite_args(["test_protocol.py"], report_dir=base / "report", variants=VARIANTS, faults=["usage_wrong"])
    proc = run_pytest(args, cwd=base, env=clean_env())
    html_path = base / "report" / "matrix.html"
    assert html_path.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return html_path


def _cell(dom: str, hardware: str, variant: str) -> str:
    m = re.search(r'<td class="cell[^"]*"[^>]*data-hardware="' + re.escape(hardware) + r'" data-variant="'
                  + re.escape(variant) + r'"[^>]*>', dom)
    assert m, f"no cell for {hardware}/{variant} in the DOM"
    return m.group(0)


def test_matrix_html_in_chromium(page: Path, tmp_path: Path) -> None:
    dom = browse(page, tmp_path / "profile", "--dump-dom").stdout
    assert 'data-ready="true"' in dom, "the page's script did not run"
    for v in VARIANTS:
        cell = _cell(dom, "unknown", v)
        assert "status-failed" in cell and 'data-status="Failed"' in cell, cell
    assert 'data-hardware="h100"' not in dom  # only hardware that ran has a row
    assert len(re.findall(r'<td class="cell status-not-run', dom)) == 5  # the other variants of our row
    details = re.findall(r'<section class="cell-detail".*?</section>', dom, re.S)
    assert len(details) == 2
    for v, sec in zip(VARIANTS, details, strict=True):
        assert f"{reporting.UNDECLARED_HARDWARE} / {v}" in sec
        failures = re.findall(r'<li data-family="test_protocol" data-outcome="failed">(.*?)</li>', sec, re.S)
        names = {re.search(r"<code>(.*?)</code>", f).group(1) for f in failures}  # type: ignore[union-attr]
        assert names == {"test_protocol.py::test_chat_completion_shape", "test_protocol.py::test_stream_order"}
        assert all("Expected:" in f and "Actual:" in f for f in failures)

    shot = tmp_path / "matrix.png"
    browse(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if ARTIFACTS_DIR:
        Path(ARTIFACTS_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copy2(shot, Path(ARTIFACTS_DIR) / "matrix.png")
        shutil.copy2(page, Path(ARTIFACTS_DIR) / "matrix.html")


def test_family_filter_recomputes_cells(page: Path, tmp_path: Path) -> None:
    """Unchecking the only family turns the failing cells into Not run and hides their failures."""
    dom = browse(with_family_filter(page, "test_protocol", False), tmp_path / "profile", "--dump-dom").stdout
    assert 'data-filtered=""' in dom
    for v in VARIANTS:
        cell = _cell(dom, "unknown", v)
        assert "status-not-run" in cell and "status-failed" not in cell, cell
    hidden = re.findall(r'<li data-family="test_protocol" data-outcome="failed" class="hidden">', dom)
    assert len(hidden) == 4
    dom = browse(with_family_filter(page, "test_protocol", True), tmp_path / "profile2", "--dump-dom").stdout
    assert 'data-filtered="test_protocol"' in dom
    assert "status-failed" in _cell(dom, "unknown", "VL-1.6B")


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_chromium_fails_on_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match=re.escape(INSTALL)):
        chromium()
