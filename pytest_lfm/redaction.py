"""Keeping secrets out of logs, reports, reprs and printed commands: the one redaction module.

Two shapes of input: free text (a command line, a log tail) where the known secret *values* are replaced
with ``<secret>``, and server arguments (a mapping) where secret-looking *keys*, ``--api-key X`` flags and
token-shaped values become ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SECRET = "<secret>"
"""What a known secret value becomes in text."""
MASK = "***"
"""What a secret becomes in server arguments."""

SECRET_NAME = re.compile(r"(TOKEN|KEY|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH)", re.IGNORECASE)
"""Environment variable names whose values are secrets (HF_TOKEN, *_API_KEY, ...)."""
_SECRET_WORDS = frozenset({"key", "apikey", "token", "secret", "password", "passwd", "credential",
                           "credentials", "auth", "authorization", "bearer"})
_SECRET_FLAG = re.compile(r"(--(?:api-key|admin-api-key|hf-token|token)[= ]+)(\S+)", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"\b(hf_[A-Za-z0-9]{16,}|sk-[A-Za-z0-9_-]{16,})\b")


def secret_values(environ: Mapping[str, str], extra: Iterable[str | None] = ()) -> tuple[str, ...]:
    """Values to hide: variables whose names look secret (HF_TOKEN, *_API_KEY, ...) plus ``extra``."""
    values = {v for k, v in environ.items() if SECRET_NAME.search(k) and len(v) >= 4}
    values.update(v for v in extra if v)
    return tuple(sorted(values, key=len, reverse=True))


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in ``text`` with ``<secret>``."""
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, SECRET)
    return text


def is_secret_key(key: str) -> bool:
    """True for argument names such as ``api_key`` or ``hf_token`` (not ``tokenizer_path``)."""
    words = [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]
    return any(w in _SECRET_WORDS for w in words)


def redact_value(value: Any) -> Any:
    """A value with ``--api-key X`` flags and ``hf_…``/``sk-…`` tokens masked (recursing into containers)."""
    if isinstance(value, str):
        return _SECRET_VALUE.sub(MASK, _SECRET_FLAG.sub(r"\1" + MASK, value))
    if isinstance(value, Mapping):
        return redact_args(value)
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def redact_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Server args with secrets replaced by ``***``: values of keys such as ``api_key`` or ``hf_token``
    (not ``tokenizer_path``), ``--api-key X`` inside command lines, and ``hf_…``/``sk-…`` tokens."""
    return {str(k): (MASK if is_secret_key(str(k)) and v else redact_value(v)) for k, v in args.items()}
