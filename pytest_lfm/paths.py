"""Where the conformance suite and its fixtures are: inside the installed package, or in a checkout."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"the {name}/ directory of pytest-lfm is missing (looked in {PACKAGE_DIR} and {PACKAGE_DIR.parent}); "
        "reinstall the package from its wheel or sdist"
    )


def suite_dir() -> Path:
    """The conformance suite (``conformance/``)."""
    return _find("conformance")


def suite_module(name: str) -> Path:
    """A conformance module by its file name (``test_vision.py``) or its path under the suite
    (``vision/test_vision.py``); check ids name modules by file name, so file names are unique."""
    direct = suite_dir() / name
    if direct.exists():
        return direct
    found = sorted(suite_dir().glob(f"*/{name}"))
    if len(found) != 1:
        raise FileNotFoundError(f"no single conformance module named {name!r} under {suite_dir()} (found {found})")
    return found[0]


def fixtures_dir() -> Path:
    """Static assets (``fixtures/``): images, tool schemas."""
    return _find("fixtures")
