"""The :class:`Target`: one server serving one variant, as every check sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from pytest_lfm.config import Secret
from pytest_lfm.lfm2 import Dialect, parse_version
from pytest_lfm.variants import Variant


@dataclass(frozen=True)
class Target:
    """A server under test: where it is, what it serves, and what it reported about itself."""

    id: str
    variant: Variant
    base_url: str
    kind: str  # "attach" | "reference" | "launch" | "engine" (an in-process sgl.Engine; base_url engine://ID)
    version: str | None = None
    hardware: str = "unknown"
    model: str | None = None
    server_args: Mapping[str, Any] = field(default_factory=dict)
    model_info: Mapping[str, Any] = field(default_factory=dict)
    api_key: Secret | None = None
    random_weights: bool = False  # a fixture checkpoint (fixtures/models) stands in for the variant
    log_path: str | None = None
    """Launch mode: the server's log file (its tail is attached to failing reports)."""
    pid: int | None = None
    """Launch mode: the server's process-group leader (to tell whether it died mid-run)."""

    @property
    def is_launched(self) -> bool:
        """True for a server this run started from the recipe."""
        return self.kind == "launch"

    @property
    def is_engine(self) -> bool:
        """True for an in-process ``sgl.Engine`` (engine mode): there is no HTTP API to call."""
        return self.kind == "engine"

    @property
    def served_model(self) -> str:
        """The model name to send in requests."""
        return self.model or self.variant.hf_path

    @property
    def dialect(self) -> Dialect:
        """Parser behaviour expected of the server's SGLang version."""
        return Dialect.for_version(self.version)

    @property
    def is_reference(self) -> bool:
        """True for the bundled reference server."""
        return self.kind == "reference"

    @property
    def real_weights(self) -> bool:
        """False for the reference server and for fixture checkpoints with random weights."""
        return not self.is_reference and not self.variant.fixture and not self.random_weights

    def version_matches(self, spec: str) -> bool:
        """Whether the server's version satisfies a PEP 440 specifier (unknown version → True)."""
        v = parse_version(self.version)
        if v is None:
            return True
        try:
            return v in SpecifierSet(spec, prereleases=True)
        except InvalidSpecifier:
            raise ValueError(f"invalid SGLang version specifier {spec!r}") from None

    def header(self) -> str:
        """One report-header line."""
        return (f"lfm: {self.id}: {self.base_url} variant={self.variant.id} "
                f"sglang={self.version or 'unknown'} hardware={self.hardware} mode={self.kind}")

    def __repr__(self) -> str:
        return f"Target({self.id!r}, {self.base_url!r}, variant={self.variant.id!r}, version={self.version!r})"
