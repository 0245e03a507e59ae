"""A byte-level tokenizer with LFM2's special-token ids (§F.2).

Like LFM2.5's tokenizer, every control token (``<|im_start|>``, ``<|tool_call_start|>`` …) and the
reasoning tags ``<think>`` / ``</think>`` are ONE token each, so streamed chunk boundaries fall where a
real server's do: never inside a tag. The reasoning tags are added tokens, not special ones: they stay
in the text with ``skip_special_tokens`` (as Qwen-style ``<think>`` does on a real tokenizer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

SPECIAL_TOKENS: dict[str, int] = {
    "<|pad|>": 0,
    "<|startoftext|>": 1,
    "<|endoftext|>": 2,
    "<|fim_pre|>": 3,
    "<|fim_mid|>": 4,
    "<|fim_suf|>": 5,
    "<|im_start|>": 6,
    "<|im_end|>": 7,
    "<|tool_list_start|>": 8,
    "<|tool_list_end|>": 9,
    "<|tool_call_start|>": 10,
    "<|tool_call_end|>": 11,
    "<|tool_response_start|>": 12,
    "<|tool_response_end|>": 13,
    "<|image_start|>": 14,
    "<|image_end|>": 15,
    "<image>": 396,
}
# added (non-special) tokens: one id each, kept by skip_special_tokens
ADDED_TOKENS: dict[str, int] = {
    "<think>": 16,
    "</think>": 17,
}
BOS_ID = 1
EOS_ID = 7
IMAGE_ID = 396
BYTE_OFFSET = 64  # byte b has id 64 + b (64..319)
VOCAB_SIZE = 400
_ID_TO_SPECIAL = {v: k for k, v in SPECIAL_TOKENS.items()}
_ID_TO_ADDED = {v: k for k, v in ADDED_TOKENS.items()}
_SINGLE_TOKENS = {**SPECIAL_TOKENS, **ADDED_TOKENS}
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in sorted(_SINGLE_TOKENS, key=len, reverse=True)) + ")")


def encode(text: str) -> list[int]:
    """Token ids of ``text``: special and added tokens as single ids, everything else as UTF-8 bytes."""
    ids: list[int] = []
    for piece in _SPECIAL_RE.split(text):
        if not piece:
            continue
        special = _SINGLE_TOKENS.get(piece)
        if special is not None:
            ids.append(special)
        else:
            ids.extend(BYTE_OFFSET + b for b in piece.encode("utf-8"))
    return ids


def is_special(token_id: int) -> bool:
    """True for control tokens (removed by ``skip_special_tokens``)."""
    return token_id in _ID_TO_SPECIAL


def token_bytes(token_id: int) -> bytes:
    """The bytes one token stands for."""
    if token_id in _ID_TO_SPECIAL:
        return _ID_TO_SPECIAL[token_id].encode()
    if token_id in _ID_TO_ADDED:
        return _ID_TO_ADDED[token_id].encode()
    if BYTE_OFFSET <= token_id < BYTE_OFFSET + 256:
        return bytes([token_id - BYTE_OFFSET])
    return b""


def decode(ids: Iterable[int], skip_special_tokens: bool = True) -> str:
    """Text of ``ids`` (invalid UTF-8 replaced)."""
    data = b"".join(
        b"" if skip_special_tokens and is_special(i) else token_bytes(i) for i in ids
    )
    return data.decode("utf-8", errors="replace")


def token_text(token_id: int) -> str:
    """A display string for one token (for logprobs)."""
    return token_bytes(token_id).decode("utf-8", errors="replace")


class IncrementalDecoder:
    """Decodes a growing id list into text deltas without splitting UTF-8 sequences."""

    def __init__(self, skip_special_tokens: bool = True) -> None:
        self.skip = skip_special_tokens
        self._pending = b""

    def push(self, token_id: int) -> str:
        """The text that became complete with this token."""
        if self.skip and is_special(token_id):
            return ""
        self._pending += token_bytes(token_id)
        for cut in range(len(self._pending), max(len(self._pending) - 4, -1), -1):
            try:
                text = self._pending[:cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
            self._pending = self._pending[cut:]
            return text
        return ""

    def flush(self) -> str:
        """Whatever is left, invalid bytes replaced."""
        text, self._pending = self._pending.decode("utf-8", errors="replace"), b""
        return text


def printable_ids() -> Sequence[int]:
    """Ids of printable ASCII bytes (the alternatives the toy model spreads probability over)."""
    return [BYTE_OFFSET + b for b in range(32, 127)]
