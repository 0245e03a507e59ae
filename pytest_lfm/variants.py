"""The LFM2.5 variant registry: data in ``data/variants.toml``, validated with pydantic.

Checks never match model names; they ask ``variant.supports("tools")``.
"""

from __future__ import annotations

import fnmatch
import tomllib
from functools import lru_cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pytest_lfm.errors import LfmUsageError

Capability = Literal[
    "chat", "completions", "tools", "reasoning", "always_thinking", "vision", "completions_only"
]
CAPABILITIES: tuple[str, ...] = Capability.__args__  # type: ignore[attr-defined]


class Sampling(BaseModel):
    """A recommended sampling preset (§11.2): temperature and SGLang's sampler fields, stored flat.

    How a preset travels is the client's business: the OpenAI SDK needs the non-OpenAI fields in
    ``extra_body`` (:func:`pytest_lfm.client.openai_sampling`); ``/v1/completions`` bodies and the offline
    engine's ``sampling_params`` take :meth:`params` as they are.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    temperature: float
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None

    def params(self) -> dict[str, float | int]:
        """The preset as flat sampler fields (the fields it sets, temperature first)."""
        return self.model_dump(exclude_none=True)


class RecipeFacts(BaseModel):
    """Per-variant launch-recipe facts of the cookbook's verified matrix."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    blackwell_attention_backend: str | None = None
    vision_tower: bool = False
    mem_fraction_static: float | None = None
    env: dict[str, str] = Field(default_factory=dict)
    image_tag: str = "dev"
    """The ``lmsysorg/sglang`` tag that serves this checkpoint (B300 appends the hardware's suffix)."""
    image_reason: str = ""
    """Why that tag (the source that says it serves this checkpoint)."""


class Variant(BaseModel):
    """One LFM2.5 checkpoint and what a server serving it must do."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    hf_path: str
    parameters: str
    architecture: Literal["dense", "moe", "vl"]
    context_length: int = Field(gt=0)
    role: str
    capabilities: frozenset[Capability]
    languages: tuple[str, ...]
    reasoning_parser: Literal["qwen3", "qwen3-thinking"] | None = None
    tool_call_parser: Literal["lfm2"] | None = None
    in_verified_matrix: bool
    sampling: Sampling
    recipe: RecipeFacts = Field(default_factory=RecipeFacts)
    fixture: bool = False

    @field_validator("capabilities", mode="after")
    @classmethod
    def _consistent(cls, caps: frozenset[str]) -> frozenset[str]:
        if "completions_only" in caps and "chat" in caps:
            raise ValueError("a completions-only variant cannot have the 'chat' capability")
        return caps

    def supports(self, *capabilities: str) -> bool:
        """True when the variant has every named capability."""
        return all(c in self.capabilities for c in capabilities)

    def missing(self, *capabilities: str) -> list[str]:
        """The named capabilities this variant lacks."""
        return [c for c in capabilities if c not in self.capabilities]

    @property
    def model_name(self) -> str:
        """The model name SGLang serves it under by default (``--model-path``)."""
        return self.hf_path


@lru_cache(maxsize=1)
def load_variants() -> tuple[Variant, ...]:
    """Load and validate every variant of the registry, in the registry's order."""
    text = resources.files("pytest_lfm").joinpath("data/variants.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    variants = tuple(Variant.model_validate(v) for v in data["variant"])
    ids = [v.id for v in variants]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate variant ids in variants.toml: {ids}")
    return variants


def variant_ids() -> list[str]:
    """Every registered variant id."""
    return [v.id for v in load_variants()]


def get_variant(variant_id: str) -> Variant:
    """The variant with this id (case-insensitive; the ``LFM2.5-`` prefix and HF path are accepted)."""
    wanted = _normalise(variant_id)
    for v in load_variants():
        if wanted in (_normalise(v.id), _normalise(v.hf_path), _normalise(v.hf_path.split("/")[-1])):
            return v
    raise LfmUsageError(
        f"unknown LFM2.5 variant {variant_id!r}",
        tried=[f"the registry's ids: {', '.join(variant_ids())}"],
        remedy="pass one of those ids (globs such as '1.2B-*' work with --lfm-variant)",
    )


def select_variants(patterns: list[str] | tuple[str, ...]) -> list[Variant]:
    """Variants matching any of the glob patterns (all of them when no pattern is given)."""
    variants = list(load_variants())
    if not patterns:
        return variants
    chosen: list[Variant] = []
    for pattern in patterns:
        matched = [v for v in variants if fnmatch.fnmatchcase(v.id.lower(), pattern.lower())]
        if not matched:
            matched = [get_variant(pattern)]
        chosen.extend(v for v in matched if v not in chosen)
    return chosen


# Tiny random-weight checkpoints built by fixtures/models/build_fixture_models.py: a server serving one
# stands in for a variant (declared with VARIANT=URL) and checks that need real weights skip.
FIXTURE_CHECKPOINT_PREFIX = "tiny-lfm2"


def is_fixture_checkpoint(model_path: str | None) -> bool:
    """True when the served model is one of the project's random-weight fixture checkpoints."""
    if not model_path:
        return False
    return model_path.rstrip("/").split("/")[-1].startswith(FIXTURE_CHECKPOINT_PREFIX)


def detect_variant(model_path: str | None) -> Variant | None:
    """The variant whose HF path matches a served model path (suffix match, so local paths work)."""
    if not model_path:
        return None
    name = model_path.rstrip("/").split("/")[-1].lower()
    for v in sorted(load_variants(), key=lambda v: -len(v.hf_path)):
        if name == v.hf_path.split("/")[-1].lower():
            return v
    return None


def _normalise(name: str) -> str:
    n = name.strip().lower()
    for prefix in ("liquidai/", "lfm2.5-"):
        if n.startswith(prefix):
            n = n[len(prefix):]
    return n
