"""The reference model's sampler implements SGLang's semantics (behaviour notes §3-§4), tested directly on
``model.generate`` and against a brute-force full-vocabulary oracle of the same semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_lfm.reference import model
from pytest_lfm.reference import tokenizer as tok
from pytest_lfm.reference.model import (
    PlanToken,
    SamplingParams,
    generate,
    next_token_distribution,
    plan_tokens,
)

PROMPT = tok.encode("<|im_start|>user\nTell me about rivers.<|im_end|>\n<|im_start|>assistant\n")
PLAN = plan_tokens("Rivers carry water from hills to the sea, shaping valleys.", model.PROSE_MARGIN)
REPEAT_PROMPT = [tok.BOS_ID] + tok.encode("ab ab ab ab ab ab ab ab")
REPEAT_PLAN = plan_tokens(" ab ab ab ab ab ab ab ab ab ab ab", model.PROSE_MARGIN)
SEEDS = range(8)


def text(params: SamplingParams, prompt: list[int] = PROMPT, plan: list[PlanToken] = PLAN) -> str:
    """The generated text."""
    return generate(prompt, plan, params, 1000).text


def sp(**kw: object) -> SamplingParams:
    """Sampling params with ``max_new_tokens=24`` unless given."""
    return SamplingParams(**{"max_new_tokens": 24, **kw})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ oracle


def oracle(prompt: list[int], plan: list[PlanToken], p: SamplingParams, out: list[int]) -> dict[int, float]:
    """The next-token distribution by brute force over the whole vocabulary (numpy), SGLang's order:
    penalties, temperature, top-k, top-p, min-p."""
    step, prev = len(out), (out[-1] if out else prompt[-1])
    planned = plan[step] if step < len(plan) else PlanToken(tok.EOS_ID, model.STRUCTURE_MARGIN)
    logits = np.full(tok.VOCAB_SIZE, model.FLOOR_LOGIT)
    logits[list(model._PRINTABLE_IDS)] = model.BACKGROUND_LOGIT
    for t, v in model.step_logits(step, prev, planned).items():
        logits[t] = v
    if p.ignore_eos or step < p.min_new_tokens:
        logits[tok.EOS_ID] = model.FLOOR_LOGIT * 2
    counts = np.bincount(np.asarray(out, dtype=np.int64), minlength=tok.VOCAB_SIZE).astype(float)
    if p.repetition_penalty != 1.0:
        seen = (np.bincount(np.asarray(prompt), minlength=tok.VOCAB_SIZE) + counts) > 0
        logits = np.where(seen, np.where(logits > 0, logits / p.repetition_penalty, logits * p.repetition_penalty),
                          logits)
    logits = logits - p.frequency_penalty * counts - p.presence_penalty * (counts > 0)
    if p.temperature < 1e-6:
        return {int(np.argmax(logits)): 1.0}
    probs = np.exp(logits / p.temperature - (logits / p.temperature).max())
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    k = tok.VOCAB_SIZE if p.top_k < 1 else p.top_k
    cut = max(1, min(int(np.searchsorted(np.cumsum(probs[order[:k]]), p.top_p - 1e-12)) + 1, k))
    chosen = order[:cut]
    if p.min_p > 0:
        chosen = chosen[probs[chosen] >= p.min_p * probs[order[0]]]
    total = probs[chosen].sum()
    return {int(t): float(probs[t] / total) for t in chosen}


@pytest.mark.parametrize("params", [
    sp(temperature=0.0), sp(temperature=1.0), sp(temperature=0.1, top_k=50, repetition_penalty=1.05),
    sp(temperature=0.7, top_p=0.9, min_p=0.05), sp(temperature=1.3, top_k=3),
    sp(temperature=1.0, frequency_penalty=1.5, presence_penalty=-0.5), sp(temperature=0.5, repetition_penalty=2.0),
    sp(temperature=1.0, top_p=0.2), sp(temperature=1.0, min_p=0.3, ignore_eos=True),
])
@pytest.mark.parametrize("prefix", [0, 3, 9])
def test_distribution_matches_full_vocabulary_oracle(params: SamplingParams, prefix: int) -> None:
    """The sparse sampler's next-token distribution equals the brute-force one (same support, same
    probabilities to 1e-9) after output prefixes with repeats."""
    out = [PLAN[i].id for i in range(prefix)] + ([PLAN[0].id] * 2 if prefix else [])
    fast = next_token_distribution(PROMPT, PLAN, params, out)
    slow = oracle(PROMPT, PLAN, params, out)
    assert set(fast) == set(slow), (sorted(fast), sorted(slow))
    for t in slow:
        assert math.isclose(fast[t], slow[t], rel_tol=1e-7, abs_tol=1e-12), (t, fast[t], slow[t])


def test_logprobs_are_log_softmax_of_the_penalised_logits() -> None:
    """Reported logprobs are log-softmax over the whole vocabulary (before temperature), top list sorted."""
    g = generate(PROMPT, PLAN, sp(temperature=0.0, logprobs=True, top_logprobs=tok.VOCAB_SIZE), 1000)
    for step in range(5):
        top = g.top_logprobs[step]
        assert math.isclose(sum(math.exp(lp) for _, lp in top), 1.0, rel_tol=1e-9)
        assert top[0][0] == g.ids[step] and math.isclose(top[0][1], g.logprobs[step])
        assert [lp for _, lp in top] == sorted((lp for _, lp in top), reverse=True)


# ------------------------------------------------------------------------------------------ semantics


def test_greedy_follows_the_plan() -> None:
    """Temperature 0 (and anything below 1e-6) is greedy: the plan's text, deterministic."""
    assert text(sp(temperature=0.0)) == text(sp(temperature=1e-7)) == tok.decode([t.id for t in PLAN[:24]])


@pytest.mark.parametrize("restriction", [{"top_k": 1}, {"min_p": 1.0}, {"top_p": 1e-6}])
def test_single_candidate_filters_are_greedy_at_temperature_1(restriction: dict[str, float]) -> None:
    """top_k=1, min_p=1 and a tiny top_p keep only the argmax: greedy for every seed; without them
    temperature 1 leaves greedy for some seed."""
    greedy = text(sp(temperature=0.0))
    assert all(text(sp(temperature=1.0, seed=s, **restriction)) == greedy for s in SEEDS)
    assert any(text(sp(temperature=1.0, seed=s)) != greedy for s in SEEDS)


def test_top_k_limits_the_support() -> None:
    """top_k=3 draws only among the 3 most likely tokens of each step."""
    dist = next_token_distribution(PROMPT, PLAN, sp(temperature=5.0, top_k=3))
    assert len(dist) == 3


def test_repetition_penalty_breaks_a_loop() -> None:
    """A high repetition penalty changes a repetitive greedy continuation and lowers its repetition."""
    plain = text(sp(temperature=0.0, max_new_tokens=32), REPEAT_PROMPT, REPEAT_PLAN)
    penal = text(sp(temperature=0.0, max_new_tokens=32, repetition_penalty=2.0), REPEAT_PROMPT, REPEAT_PLAN)
    assert plain != penal
    assert len(set(penal)) > len(set(plain))


def test_repetition_penalty_covers_the_prompt() -> None:
    """The repetition penalty applies to prompt tokens before any output (SGLang: prompt + output)."""
    dist = next_token_distribution(REPEAT_PROMPT, REPEAT_PLAN, sp(temperature=0.0, repetition_penalty=2.0))
    assert REPEAT_PLAN[0].id not in dist  # ' ' is in the prompt: 10/2 = 5 < an unseen distractor at 8


@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
def test_output_penalties_change_a_loop(penalty: str) -> None:
    """Frequency and presence penalties (output tokens only) change a repetitive greedy continuation."""
    plain = text(sp(temperature=0.0, max_new_tokens=32), REPEAT_PROMPT, REPEAT_PLAN)
    penal = text(sp(temperature=0.0, max_new_tokens=32, **{penalty: 2.0}), REPEAT_PROMPT, REPEAT_PLAN)
    assert plain != penal


def test_output_penalties_ignore_the_prompt() -> None:
    """Before any output, frequency/presence penalties change nothing (they count output tokens only)."""
    base = next_token_distribution(REPEAT_PROMPT, REPEAT_PLAN, sp(temperature=1.0))
    pen = next_token_distribution(REPEAT_PROMPT, REPEAT_PLAN, sp(temperature=1.0, frequency_penalty=2.0,
                                                                  presence_penalty=2.0))
    assert base == pen


def test_seed_reproducible_and_distinct() -> None:
    """The same seed gives the same text at temperature 1; different seeds differ."""
    a = [text(sp(temperature=1.0, seed=s)) for s in SEEDS]
    assert a == [text(sp(temperature=1.0, seed=s)) for s in SEEDS]
    assert len(set(a)) >= len(SEEDS) // 2


def test_max_tokens_stop_and_eos() -> None:
    """max_new_tokens caps the output; a stop string trims it; EOS ends a finished plan."""
    g = generate(PROMPT, PLAN, sp(temperature=0.0, max_new_tokens=5), 1000)
    assert len(g.ids) == 5 and g.finish_reason == "length"
    g = generate(PROMPT, PLAN, sp(temperature=0.0, stop=["water"]), 1000)
    assert g.finish_reason == "stop" and g.matched_stop == "water" and g.text == "Rivers carry "
    g = generate(PROMPT, PLAN, SamplingParams(temperature=0.0), 1000)
    assert g.finish_reason == "stop" and g.matched_stop == tok.EOS_ID and g.text == tok.decode([t.id for t in PLAN])
