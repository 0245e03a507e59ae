"""A small deterministic language model with a real sampler.

The model: at step *t* it puts a high logit on token *t* of a *plan* (the text the planner derives from
the request), a few deterministic "distractor" tokens a *margin* below it, and low logits on every
other printable byte. After the plan it predicts EOS. The sampler applies SGLang's semantics
(``docs/sglang-behaviour.md`` §3-§4): repetition penalty on prompt and output tokens (divide positive
logits, multiply negative ones), frequency and presence penalties on output tokens, temperature
(< 1e-6 means greedy), then top-k, top-p and min-p filtering, then a seeded draw. So ``top_k=1`` at
temperature 1 is greedy for every seed, and a penalty can change a repetitive continuation.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pytest_lfm.reference import tokenizer as tok

PLAN_LOGIT = 10.0
BACKGROUND_LOGIT = 0.0
FLOOR_LOGIT = -20.0
N_DISTRACTORS = 6
PROSE_MARGIN = 2.0  # free text: sampling at temperature 1 often leaves the plan
STRUCTURE_MARGIN = 8.0  # markup (tool calls, think tags, JSON): the model is sure of it
CONSTRAINED_MARGIN = 60.0  # a grammar constraint masks every other token
_PRINTABLE_IDS: tuple[int, ...] = tuple(sorted(tok.printable_ids()))
_FLOOR_IDS: tuple[int, ...] = tuple(sorted(set(range(tok.VOCAB_SIZE)) - set(_PRINTABLE_IDS)))
_BASE: tuple[float, ...] = tuple(BACKGROUND_LOGIT if i in set(_PRINTABLE_IDS) else FLOOR_LOGIT
                                 for i in range(tok.VOCAB_SIZE))  # every token's logit when not planned


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


_N_PRINTABLE = len(_PRINTABLE_IDS)
_DISTRACTOR_STEPS = tuple(0.3 * k for k in range(N_DISTRACTORS))


def step_logits(step: int, prev: int, planned: PlanToken) -> dict[int, float]:
    """The raw logits of one step that differ from the background: the plan token and a few deterministic
    distractors ``margin`` (and 0.3 per rank) below it.

    Every other printable byte has ``BACKGROUND_LOGIT``, every other id ``FLOOR_LOGIT``. A repeated
    distractor keeps its later value, and the plan token wins over all of them."""
    h = (prev * 1_000_003 + step * 7_919 + planned.id * 31 + 17) & 0xFFFFFFFF
    top = PLAN_LOGIT - planned.margin
    out: dict[int, float] = {}
    k = 0
    for j in range(N_DISTRACTORS):
        t = _PRINTABLE_IDS[((h >> (3 * j)) ^ (h >> (5 + j))) % _N_PRINTABLE]
        if t != planned.id:
            out[t] = top - _DISTRACTOR_STEPS[k]
            k += 1
    out[planned.id] = PLAN_LOGIT
    return out


# An entry of the step's ranking: (logit, number of tokens, ids in ascending order, ids to skip or None).
_Entry = tuple[float, int, Sequence[int], Mapping[int, float] | None]


def _id_at(entry: _Entry, j: int) -> int:
    _, _, ids, skip = entry
    if not skip:
        return ids[j]
    for t in ids:
        if t in skip:
            continue
        if j == 0:
            return t
        j -= 1
    raise IndexError(j)


def _ids(entry: _Entry, limit: int) -> list[int]:
    _, _, ids, skip = entry
    out: list[int] = []
    for t in ids:
        if skip and t in skip:
            continue
        out.append(t)
        if len(out) >= limit:
            break
    return out


class _Logits:
    """The logits of one request, kept sparse: the background (every token's logit when it is not planned,
    penalties applied) as levels of equal value, plus the few tokens each step plans.

    The penalties follow SGLang: the repetition penalty divides positive and multiplies non-positive logits
    of every token seen in the prompt or the output; frequency and presence penalties subtract
    ``frequency * count`` and ``presence * (count > 0)`` for output tokens."""

    def __init__(self, prompt_ids: Sequence[int], params: SamplingParams) -> None:
        self.rp = params.repetition_penalty
        self.freq = params.frequency_penalty
        self.pres = params.presence_penalty
        self.use_seen = self.rp != 1.0
        self.use_counts = bool(self.freq or self.pres)
        self.seen: set[int] = {t for t in prompt_ids if 0 <= t < tok.VOCAB_SIZE} if self.use_seen else set()
        self.counts: dict[int, int] = {}
        self.bg: list[float] = list(_BASE)
        moved = {t: v for t in self.seen if (v := self.penalised(_BASE[t], t)) != _BASE[t]}
        if moved:
            for t, v in moved.items():
                self.bg[t] = v
            self.levels: dict[float, list[int]] = {
                BACKGROUND_LOGIT: [t for t in _PRINTABLE_IDS if t not in moved],
                FLOOR_LOGIT: [t for t in _FLOOR_IDS if t not in moved],
            }
            for t in sorted(moved):
                self.levels.setdefault(moved[t], []).append(t)
            self.levels = {v: ids for v, ids in self.levels.items() if ids}
        else:
            self.levels = {BACKGROUND_LOGIT: list(_PRINTABLE_IDS), FLOOR_LOGIT: list(_FLOOR_IDS)}
        self._sorted: list[tuple[float, list[int]]] | None = None

    def penalised(self, raw: float, t: int) -> float:
        """``raw`` after the repetition, frequency and presence penalties of token ``t``."""
        v = raw
        if self.use_seen and t in self.seen:
            v = v / self.rp if v > 0 else v * self.rp
        if self.use_counts:
            c = self.counts.get(t, 0)
            v = v - self.freq * c - self.pres * (1.0 if c > 0 else 0.0)
        return v

    def observe(self, t: int) -> None:
        """Token ``t`` was generated: update the penalties."""
        if not (self.use_seen or self.use_counts):
            return
        if self.use_seen:
            self.seen.add(t)
        if self.use_counts:
            self.counts[t] = self.counts.get(t, 0) + 1
        new, old = self.penalised(_BASE[t], t), self.bg[t]
        if new == old:
            return
        self.bg[t] = new
        ids = self.levels[old]
        ids.remove(t)
        if not ids:
            del self.levels[old]
        bisect.insort(self.levels.setdefault(new, []), t)
        self._sorted = None

    def entries(self, raw: Mapping[int, float]) -> list[_Entry]:
        """The step's ranking: entries of equal logit, highest first (ties in ascending id order).

        ``raw`` holds the step's planned tokens (their raw logits); they leave their background level."""
        values = {t: self.penalised(r, t) for t, r in raw.items()} if self.use_seen or self.use_counts else raw
        if self._sorted is None:
            self._sorted = sorted(self.levels.items(), key=lambda kv: -kv[0])
        distinct = set(values.values())
        if len(distinct) < len(values) or any(v in self.levels for v in distinct):
            return self._entries_with_ties(values)
        excluded: dict[float, int] = {}
        bg = self.bg
        for t in values:
            excluded[bg[t]] = excluded.get(bg[t], 0) + 1
        out: list[_Entry] = [(v, 1, (t,), None) for t, v in values.items()]
        for v, ids in self._sorted:
            n = len(ids) - excluded.get(v, 0)
            if n > 0:
                out.append((v, n, ids, values))
        out.sort(key=_value, reverse=True)
        return out

    def _entries_with_ties(self, values: Mapping[int, float]) -> list[_Entry]:
        special: dict[float, list[int]] = {}
        for t, v in values.items():
            special.setdefault(v, []).append(t)
        out: list[_Entry] = []
        for v, ids in self._sorted or ():
            extra = special.pop(v, None)
            kept = [t for t in ids if t not in values]
            merged = sorted(kept + extra) if extra else kept
            if merged:
                out.append((v, len(merged), merged, None))
        for v, ts in special.items():
            out.append((v, len(ts), sorted(ts), None))
        out.sort(key=_value, reverse=True)
        return out


def _value(entry: _Entry) -> float:
    return entry[0]


def _log_normaliser(entries: Sequence[_Entry]) -> float:
    m = entries[0][0]
    return m + math.log(math.fsum(n * math.exp(v - m) for v, n, _, _ in entries))


def _filtered(entries: Sequence[_Entry], p: SamplingParams) -> list[tuple[_Entry, int, float]]:
    """Temperature, then top-k, top-p and min-p: (entry, tokens kept from it, probability of each)."""
    inv_t = 1.0 / p.temperature
    m = entries[0][0]
    exp = math.exp
    weights = [exp((e[0] - m) * inv_t) for e in entries]
    z = 0.0
    for e, w in zip(entries, weights, strict=True):
        z += e[1] * w
    inv_z = 1.0 / z
    k = tok.VOCAB_SIZE if p.top_k < 1 else min(p.top_k, tok.VOCAB_SIZE)
    target = p.top_p - 1e-12  # top_p keeps the smallest prefix whose mass reaches top_p
    kept: list[tuple[_Entry, int, float]] = []
    taken, cum = 0, 0.0
    for e, w in zip(entries, weights, strict=True):
        prob = w * inv_z
        n = min(e[1], k - taken)
        if prob > 0 and cum + n * prob >= target:
            kept.append((e, min(n, max(1, math.ceil((target - cum) / prob))), prob))
            break
        kept.append((e, n, prob))
        taken += n
        if taken >= k:
            break
        cum += n * prob
    if p.min_p > 0:
        floor = p.min_p * kept[0][2]
        kept = [x for x in kept if x[2] >= floor]
    return kept


def _draw(kept: Sequence[tuple[_Entry, int, float]], rng: random.Random) -> int:
    u = rng.random() * math.fsum(n * prob for _, n, prob in kept)
    for e, n, prob in kept:
        mass = n * prob
        if u < mass:
            return _id_at(e, min(n - 1, int(u / prob)))
        u -= mass
    e, n, _ = kept[-1]
    return _id_at(e, n - 1)


def _step_raw(step: int, prev: int, planned: PlanToken, mask_eos: bool) -> dict[int, float]:
    raw = step_logits(step, prev, planned)
    if mask_eos:
        raw[tok.EOS_ID] = FLOOR_LOGIT * 2
    return raw


def next_token_distribution(prompt_ids: Sequence[int], plan: Sequence[PlanToken], params: SamplingParams,
                            output_ids: Sequence[int] = ()) -> dict[int, float]:
    """The probability of each token the sampler can draw after ``output_ids`` (for tests and debugging).

    Greedy (temperature < 1e-6) gives probability 1 to the argmax."""
    logits = _Logits(prompt_ids, params)
    prev = prompt_ids[-1] if prompt_ids else tok.BOS_ID
    for t in output_ids:
        logits.observe(t)
        prev = t
    step = len(output_ids)
    planned = plan[step] if step < len(plan) else PlanToken(tok.EOS_ID, STRUCTURE_MARGIN)
    entries = logits.entries(_step_raw(step, prev, planned, params.ignore_eos or step < params.min_new_tokens))
    if params.temperature < 1e-6:
        return {_id_at(entries[0], 0): 1.0}
    kept = _filtered(entries, params)
    total = math.fsum(n * prob for _, n, prob in kept)
    return {t: prob / total for e, n, prob in kept for t in _ids(e, n)}


def generate(
    prompt_ids: Sequence[int], plan: Sequence[PlanToken], params: SamplingParams, context_budget: int
) -> Generation:
    """Sample a continuation of ``prompt_ids`` under ``params`` (the plan is the model's belief)."""
    rng = random.Random(params.seed)
    greedy = params.temperature < 1e-6
    limit = params.max_new_tokens if params.max_new_tokens is not None else context_budget
    limit = max(0, min(limit, context_budget))
    logits = _Logits(prompt_ids, params)
    eos = PlanToken(tok.EOS_ID, STRUCTURE_MARGIN)
    ids: list[int] = []
    result = Generation(ids=ids, text="", finish_reason="length", matched_stop=None)
    prev = prompt_ids[-1] if prompt_ids else tok.BOS_ID
    stop_ids = set(params.stop_token_ids)
    text_bytes = bytearray()
    for step in range(limit):
        planned = plan[step] if step < len(plan) else eos
        raw = _step_raw(step, prev, planned, params.ignore_eos or step < params.min_new_tokens)
        entries = logits.entries(raw)
        token = _id_at(entries[0], 0) if greedy else _draw(_filtered(entries, params), rng)
        ids.append(token)
        if params.logprobs:
            lse = _log_normaliser(entries)
            value = logits.penalised(raw[token], token) if token in raw else logits.bg[token]
            result.logprobs.append(value - lse)
            if params.top_logprobs:
                top: list[tuple[int, float]] = []
                for e in entries:
                    top.extend((t, e[0] - lse) for t in _ids(e, params.top_logprobs - len(top)))
                    if len(top) >= params.top_logprobs:
                        break
                result.top_logprobs.append(top)
        logits.observe(token)
        prev = token
        if token == tok.EOS_ID and not params.ignore_eos:
            result.finish_reason, result.matched_stop = "stop", tok.EOS_ID
            break
        if token in stop_ids:
            result.finish_reason, result.matched_stop = "stop", token
            break
        if params.stop:
            if not (params.skip_special_tokens and tok.is_special(token)):
                text_bytes += tok.token_bytes(token)
            text = text_bytes.decode("utf-8", errors="replace")
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


_BACKGROUND_LSE = math.log(math.fsum(math.exp(v) for v in _BASE))


def prompt_logprob(token_id: int) -> float:
    """The log-probability of a prompt token (echo logprobs): the toy model does not predict prompts, so
    every prompt position has the background distribution."""
    return (_BASE[token_id] if 0 <= token_id < tok.VOCAB_SIZE else FLOOR_LOGIT) - _BACKGROUND_LSE


def prompt_top_logprobs(n: int) -> list[tuple[int, float]]:
    """The ``n`` most likely tokens of the background distribution (ties in ascending id order)."""
    ranked = sorted(range(tok.VOCAB_SIZE), key=lambda t: (-_BASE[t], t))[:n]
    return [(t, _BASE[t] - _BACKGROUND_LSE) for t in ranked]


def _first_stop(text: str, stops: Sequence[str]) -> tuple[int, str] | None:
    best: tuple[int, str] | None = None
    for s in stops:
        if not s:
            continue
        i = text.find(s)
        if i != -1 and (best is None or i < best[0]):
            best = (i, s)
    return best
