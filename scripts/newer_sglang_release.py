"""Report SGLang releases on the package index that are newer than every release the sweep knows (issue 18).

    python scripts/newer_sglang_release.py KNOWN_VERSION ...

Known releases are the arguments (the sweep's list) plus every version named in
``pytest_lfm/data/release_facts.toml`` when that file exists. Asks the index the way pip is configured
(``pip index versions sglang``, so a mirror or ``PIP_INDEX_URL`` applies). Always exits 0: a newer release is
news for a maintainer, not a failure, and an unreachable index (offline CI) is said so and skipped.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from packaging.version import InvalidVersion, Version

FACTS = Path(__file__).resolve().parent.parent / "pytest_lfm" / "data" / "release_facts.toml"
VERSION_RE = re.compile(r"\b0\.\d+\.\d+(?:\.post\d+)?\b")


def known_versions(args: list[str]) -> set[Version]:
    """The sweep's releases and every version string in the release facts file."""
    names = list(args)
    if FACTS.is_file():
        names += VERSION_RE.findall(FACTS.read_text(encoding="utf-8"))
    out: set[Version] = set()
    for name in names:
        try:
            out.add(Version(name))
        except InvalidVersion:
            continue
    return out


def index_versions(timeout: float = 60.0) -> tuple[list[Version] | None, str]:
    """(versions of sglang on the index, or None; what was tried or why it failed)."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", "sglang", "--disable-pip-version-check",
           "--retries", "0", "--timeout", "15"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{' '.join(cmd[2:])}: {type(exc).__name__}: {exc}"
    m = re.search(r"^Available versions:\s*(.+)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        why = (r.stderr.strip().splitlines() or r.stdout.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
        return None, f"{' '.join(cmd[2:])}: {why}"
    versions = []
    for name in m.group(1).split(","):
        try:
            versions.append(Version(name.strip()))
        except InvalidVersion:
            continue
    return versions, " ".join(cmd[2:])


def newer_than(known: set[Version], available: list[Version]) -> list[Version]:
    """Final releases on the index newer than the newest known one (pre-releases and dev builds ignored)."""
    if not known:
        return []
    newest = max(known)
    return sorted(v for v in available if v > newest and not v.is_prerelease and not v.is_devrelease)


def main(argv: list[str]) -> int:
    known = known_versions(argv)
    available, tried = index_versions()
    if available is None:
        print(f"newer SGLang releases: not checked, could not ask the package index ({tried}); "
              f"the sweep covered releases up to {max(known) if known else '?'}")
        return 0
    newer = newer_than(known, available)
    newest = max(known) if known else None
    if not newer:
        print(f"newer SGLang releases: none on the index beyond {newest} (asked: {tried})")
        return 0
    names = ", ".join(str(v) for v in newer)
    print(f"NEW SGLang release(s) on the index that the sweep and the release facts do not know yet: {names} "
          f"(newest known: {newest}). Not a failure. To validate: scripts/ci_upstream_parsers.sh {newer[-1]}; "
          f"python -m pytest_lfm releases compare {newest} {newer[-1]}; then add it to RELEASES in "
          f"scripts/ci_upstream_parsers.sh and any changed behaviour to pytest_lfm/data/release_facts.toml.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
