"""SGLang's request validation (``docs/sglang-behaviour.md`` §4): status, flat error body, messages."""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse

from pytest_lfm.releases import has_fact


class ClientError(Exception):
    """A request SGLang rejects with a 4xx; ``type_`` mirrors the code path's type string."""

    def __init__(self, message: str, type_: str = "BadRequestError", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.type_ = type_
        self.status = status


def error_response(message: str, type_: str = "BadRequestError", status: int = 400) -> JSONResponse:
    """SGLang's flat error body for OpenAI routes: ``{object, message, type, param, code}``."""
    return JSONResponse(
        {"object": "error", "message": message, "type": type_, "param": None, "code": status},
        status_code=status,
    )


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def verify_sampling(p: dict[str, Any], version: str | None = None) -> None:
    """``SamplingParams.verify``: raise :class:`ClientError` with SGLang's message (0.5.23 by default).

    Version differences are release facts (pytest_lfm/data/release_facts.toml):
    ``repetition-penalty-zero-rejected`` and ``temperature-finite-wording``. ``top_k`` is checked on every
    release, after greedy sampling (temperature below 1e-6) has set it to 1, so ``top_k=0`` with
    temperature 0 is accepted (recorded on 0.5.17) and with temperature 1 answers 400."""
    t = p["temperature"]
    if not _finite(t) or t < 0:
        if not has_fact("temperature-finite-wording", version):
            if _finite(t):
                raise ClientError(f"temperature must be non-negative, got {t}.")
        else:
            raise ClientError(f"temperature must be a non-negative finite number, got {t}.")
    top_p = p["top_p"]
    if not (_finite(top_p) and 0 < top_p <= 1):
        raise ClientError(f"top_p must be in (0, 1], got {float(top_p)}.")
    min_p = p["min_p"]
    if not (_finite(min_p) and 0 <= min_p <= 1):
        raise ClientError(f"min_p must be in [0, 1], got {min_p}.")
    top_k = p["top_k"]
    if _finite(t) and 0 <= t < 1e-6:
        top_k = 1  # SamplingParams.__init__: greedy sampling means top_k = 1, before verify()
    if not (top_k == -1 or top_k >= 1):
        raise ClientError(f"top_k must be -1 (disable) or at least 1, got {top_k}.")
    for name in ("frequency_penalty", "presence_penalty"):
        v = p[name]
        if not (_finite(v) and -2 <= v <= 2):
            raise ClientError(f"{name} must be in [-2, 2], got {v}.")
    rp = p["repetition_penalty"]
    if not has_fact("repetition-penalty-zero-rejected", version):
        if not (_finite(rp) and 0 <= rp <= 2):
            raise ClientError(f"repetition_penalty must be in [0, 2], got {rp}.")
    elif not (_finite(rp) and 0 < rp <= 2):
        raise ClientError(f"repetition_penalty must be in (0, 2] (1.0 = no penalty), got {rp}.")
    mx = p.get("max_new_tokens")
    if mx is not None and mx < 0:
        raise ClientError(f"max_new_tokens must be at least 0, got {mx}.")
    mn = p.get("min_new_tokens", 0) or 0
    if mn < 0 or (mx is not None and mn > mx):
        raise ClientError(f"min_new_tokens must be in [0, max_new_tokens], got {mn}.")
