"""The pre-commit hooks and CI's lint step run the same commands (a hook that CI skips, or a CI lint that no
hook runs, lets a commit pass locally and fail in CI)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _hook_entries() -> list[str]:
    text = (ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    return [m.strip() for m in re.findall(r"^\s*entry:\s*(.+)$", text, flags=re.MULTILINE)]


def _ci_lint_commands() -> list[str]:
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    step = text.split('step "lint', 1)[1].split("\nstep ", 1)[0]
    lines = [line.split("||", 1)[0].strip() for line in step.splitlines()[1:]]
    return [line for line in lines if line and not line.startswith("#")]


def test_pre_commit_hooks_mirror_ci_lint() -> None:
    hooks, ci = _hook_entries(), _ci_lint_commands()
    assert hooks, ".pre-commit-config.yaml has no hook entries"
    assert hooks == ci, f"pre-commit entries {hooks} differ from .ci/run's lint step {ci}"
