"""A small deterministic language model with a real sampler.

The model: at step *t* it puts a high logit on token *t* of a *plan* (the text the planner derives from
the request), a few deterministic "distractor" tokens a *margin* below it, and low logits on every
other printable byte. After the plan it predicts EOS. The sampler applies SGLang's semantics
(``sglang-lfm2-behaviour.md`` §3-§4): repetition penalty on prompt and output tokens (divide positive
logits, multiply negative ones), frequency and presence penalties on output tokens, temperature
(< 1e-6 means greedy), then top-k, top-p and min-p filtering, then a seeded draw. So ``top_k=1`` at
temperature 1 is greedy for every seed, and a penalty can change a repetitive continuation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pytest_lfm.reference import tokenizer as tok

PLAN_LOGIT = 10.0
BACKGROUND_LOGIT = 0.0
FLOOR_LOGIT = -20.0
N_DISTRACTORS = 6
PROSE_MARGIN = 2.0  # free text: sampling at temperature 1 often leaves the plan
STRUCTURE_MARGIN = 8.0  # markup (tool calls, think tags, JSON): the model is sure of it
CONSTRAINED_MARGIN = 60.0  # a grammar constraint masks every other token
_PRINTABLE = np.array(tok.printable_ids(), dtype=np.int64)


@dataclass(frozen=True)
class PlanToken:
    """One planned token and how sure the model is of it."""

    id: int
    margin: float


@dataclass
class SamplingParams:
    """SGLang's sampling parameters, already validated."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    max_new_tokens: int | None = None
    min_new_tokens: int = 0
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False
    no_stop_trim: bool = False
    skip_special_tokens: bool = True
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0


@dataclass
class Generation:
    """The result of one generation."""

    ids: list[int]
    text: str
    finish_reason: str  # "stop" | "length"
    matched_stop: str | int | None
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    text_token_count: int = 0  # tokens whose text is part of `text` (after stop trimming)


def plan_tokens(text: str, margin: float) -> list[PlanToken]:
    """Plan tokens for a piece of text."""
    return [PlanToken(i, margin) for i in tok.encode(text)]


def _distractors(step: int, prev: int, planned: int) -> np.ndarray:
    h = (prev * 1_000_003 + step * 7_919 + planned * 31 + 17) & 0xFFFFFFFF
    idx = [(h >> (3 * k) ^ (h >> (5 + k))) % len(_PRINTABLE) for k in range(N_DISTRACTORS)]
    out = _PRINTABLE[idx]
    return out[out != planned]


def _logits(step: int, prev: int, planned: PlanToken) -> np.ndarray:
    logits = np.full(tok.VOCAB_SIZE, FLOOR_LOGIT)
    logits[_PRINTABLE] = BACKGROUND_LOGIT
    d = _distractors(step, prev, planned.id)
    logits[d] = PLAN_LOGIT - planned.margin - 0.3 * np.arange(len(d))
    logits[planned.id] = PLAN_LOGIT
    return logits


def _filter(probs: np.ndarray, p: SamplingParams) -> np.ndarray:
    order = np.argsort(-probs, kind="stable")
    keep = np.zeros_like(probs, dtype=bool)
    k = len(order) if p.top_k < 1 else min(p.top_k, len(order))
    ranked = probs[order[:k]]
    cumulative = np.cumsum(ranked)
    # top_p keeps the smallest prefix whose mass reaches top_p (the first token always stays)
    cut = int(np.searchsorted(cumulative, p.top_p - 1e-12)) + 1
    cut = max(1, min(cut, k))
    chosen = order[:cut]
    if p.min_p > 0:
        chosen = chosen[probs[chosen] >= p.min_p * probs[order[0]]]
    keep[chosen] = True
    out = np.where(keep, probs, 0.0)
    return out / out.sum()


def generate(
    prompt_ids: Sequence[int], plan: Sequence[PlanToken], params: SamplingParams, context_budget: int
) -> Generation:
    """Sample a continuation of ``prompt_ids`` under ``params`` (the plan is the model's belief)."""
    rng = np.random.default_rng(params.seed)
    greedy = params.temperature < 1e-6
    limit = params.max_new_tokens if params.max_new_tokens is not None else context_budget
    limit = max(0, min(limit, context_budget))
    prompt_counts = np.bincount(np.asarray(prompt_ids, dtype=np.int64), minlength=tok.VOCAB_SIZE)[: tok.VOCAB_SIZE]
    out_counts = np.zeros(tok.VOCAB_SIZE)
    eos = PlanToken(tok.EOS_ID, STRUCTURE_MARGIN)
    ids: list[int] = []
    result = Generation(ids=ids, text="", finish_reason="length", matched_stop=None)
    prev = prompt_ids[-1] if prompt_ids else tok.BOS_ID
    stop_ids = set(params.stop_token_ids)
    for step in range(limit):
        planned = plan[step] if step < len(plan) else eos
        logits = _logits(step, prev, planned)
        if params.ignore_eos or step < params.min_new_tokens:
            logits[tok.EOS_ID] = FLOOR_LOGIT * 2
        if params.repetition_penalty != 1.0:
            seen = (prompt_counts + out_counts) > 0
            logits = np.where(
                seen, np.where(logits > 0, logits / params.repetition_penalty, logits * params.repetition_penalty),
                logits,
            )
        if params.frequency_penalty or params.presence_penalty:
            logits = logits - params.frequency_penalty * out_counts - params.presence_penalty * (out_counts > 0)
        shifted = logits - logits.max()
        logprobs = shifted - math.log(float(np.exp(shifted).sum()))
        if greedy:
            token = int(np.argmax(logits))
        else:
            scaled = logits / params.temperature
            probs = np.exp(scaled - scaled.max())
            probs /= probs.sum()
            probs = _filter(probs, params)
            token = int(rng.choice(tok.VOCAB_SIZE, p=probs))
        ids.append(token)
        if params.logprobs:
            result.logprobs.append(float(logprobs[token]))
            if params.top_logprobs:
                top = np.argsort(-logprobs, kind="stable")[: params.top_logprobs]
                result.top_logprobs.append([(int(i), float(logprobs[i])) for i in top])
        out_counts[token] += 1
        prev = token
        if token == tok.EOS_ID and not params.ignore_eos:
            result.finish_reason, result.matched_stop = "stop", tok.EOS_ID
            break
        if token in stop_ids:
            result.finish_reason, result.matched_stop = "stop", token
            break
        if params.stop:
            text = tok.decode(ids, params.skip_special_tokens)
            hit = _first_stop(text, params.stop)
            if hit is not None:
                result.finish_reason, result.matched_stop = "stop", hit[1]
                result.text = text if params.no_stop_trim else text[: hit[0]]
                result.text_token_count = len(ids)
                return result
    text_ids = ids[:-1] if result.finish_reason == "stop" and isinstance(result.matched_stop, int) else ids
    result.text = tok.decode(text_ids, params.skip_special_tokens)
    result.text_token_count = len(text_ids)
    return result


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for s in stops:
        if not s:
            continue
        i = text.find(s)
        if i != -1 and (best is None or i < best[0]):
            best = (i, s)
    return best
