"""User-facing errors: each says what was tried and what to do next."""

from __future__ import annotations

from collections.abc import Sequence


class LfmError(Exception):
    """Base class of pytest-lfm errors shown to users."""

    def __init__(self, message: str, *, tried: Sequence[str] = (), remedy: str = "") -> None:
        self.message = message
        self.tried = list(tried)
        self.remedy = remedy
        super().__init__(self.render())

    def render(self) -> str:
        """The message, the checks made, and the remedy, one per line."""
        lines = [self.message]
        if self.tried:
            lines.append("Tried: " + "; ".join(self.tried))
        if self.remedy:
            lines.append("To fix: " + self.remedy)
        return "\n".join(lines)


class LfmUsageError(LfmError):
    """Bad configuration or option values (shown as a pytest usage error)."""


class ServerUnavailable(LfmError):
    """A target server could not be reached or is not healthy."""
