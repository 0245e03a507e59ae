"""The :class:`Target`: one server serving one variant, as every check sees it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from pytest_lfm.config import Secret
from pytest_lfm.lfm2 import Dialect, parse_version
from pytest_lfm.variants import Variant

TargetKind = Literal["attach", "reference", "launch", "engine"]


@dataclass(frozen=True)
class Target:
    """A server under test: where it is, what it serves, and what it reported about itself."""

    id: str
    variant: Variant
    base_url: str
    kind: TargetKind
    """How the run reaches it (for display; checks ask the capability properties below instead):
    attach, reference, launch, or engine (an in-process ``sgl.Engine``; base_url ``engine://ID``)."""
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

    # ---- capabilities: what a check may rely on, whatever the kind of target

    @property
    def has_http(self) -> bool:
        """True when the target answers the HTTP API (every kind but engine mode)."""
        return self.kind != "engine"

    @property
    def has_engine(self) -> bool:
        """True for an in-process ``sgl.Engine`` (engine mode): checks get it through ``lfm_engine``."""
        return self.kind == "engine"

    @property
    def is_test_double(self) -> bool:
        """True for the bundled reference server: it answers from the request and has fault modes."""
        return self.kind == "reference"

    @property
    def coherent_output(self) -> bool:
        """True when generated text follows the prompt: real weights, or the test double (which answers
        from the request); False for a fixture checkpoint with random weights."""
        return self.real_weights or self.is_test_double

    # ---- the same facts under the names earlier versions used

    @property
    def is_launched(self) -> bool:
        """True for a server this run started from the recipe (it has a server log)."""
        return self.kind == "launch"

    @property
    def is_engine(self) -> bool:
        """Same as :attr:`has_engine`."""
        return self.has_engine

    @property
    def is_reference(self) -> bool:
        """Same as :attr:`is_test_double`."""
        return self.is_test_double

    @property
    def served_model(self) -> str:
        """The model name to send in requests."""
        return self.model or self.variant.hf_path

    @property
    def dialect(self) -> Dialect:
        """Parser behaviour expected of the server's SGLang version."""
        return Dialect.for_version(self.version)

    @property
    def real_weights(self) -> bool:
        """False for the reference server and for fixture checkpoints with random weights."""
        return not self.is_test_double and not self.variant.fixture and not self.random_weights

    def version_matches(self, spec: str) -> bool:
        """Whether the server's version satisfies a PEP 440 specifier (unknown version → True)."""
        v = parse_version(self.version)
        if v is None:
            return True
        try:
            return v in SpecifierSet(spec, prereleases=True)
        except InvalidSpecifier:
            raise ValueError(f"invalid SGLang version specifier {spec!r}") from None

    def __repr__(self) -> str:
        return f"Target({self.id!r}, {self.base_url!r}, variant={self.variant.id!r}, version={self.version!r})"
