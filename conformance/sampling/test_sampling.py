"""Sampling forwarding: every sampler field reaches SGLang's sampler with SGLang's semantics.

Each behavioural proof is built so that it holds on a random-weight checkpoint too (outputs are noise
there, but the sampler's semantics are not): a restriction that leaves one candidate (``top_k=1``,
``min_p=1``, a tiny ``top_p``) turns temperature 1 into greedy for every seed, while the same requests
without the restriction differ from greedy; penalties change a greedy continuation that repeats itself.
The proofs run on ``/v1/chat/completions`` (chat variants; the text is reasoning plus content) and on
``/v1/completions`` (every variant), because the two endpoints convert requests separately (§3.1, §3.2).
Every check cites ``docs/sglang-behaviour.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_lfm.assertions import (
    expect_penalty_changes_repetition,
    expect_restriction_is_greedy,
    expect_status,
    expect_true,
    not_run,
)
from pytest_lfm.cases import Case, load_cases
from pytest_lfm.client import LfmHttp, generated_text, openai_sampling
from pytest_lfm.inputs import PROSE, REPEAT_PROMPTS
from pytest_lfm.server.base import Target

ENDPOINTS = ["chat", "completions"]
SEEDS = (11, 23, 37, 41)
MAX_TOKENS = 16
# REPEAT_PROMPTS make a model repeat itself: a base model continues the pattern; a random-weight model
# repeats one token under greedy decoding anyway.

Generate = Callable[..., str]


def _generator(http: LfmHttp, target: Target, endpoint: str) -> Generate:
    """``gen(prompt, **sampling) -> text`` on one endpoint (skips chat on completions-only variants)."""
    if endpoint == "chat" and not target.variant.supports("chat"):
        pytest.skip(f"needs chat; variant {target.variant.id} is completions-only (§11.3)")

    def gen(prompt: str, **sampling: Any) -> str:
        __tracebackhide__ = True
        fields = {"max_tokens": MAX_TOKENS, **sampling}
        if endpoint == "chat":
            resp = http.chat([{"role": "user", "content": prompt}], **fields)
        else:
            resp = http.post_json("/v1/completions", {"model": target.served_model, "prompt": prompt, **fields})
        return generated_text(resp)

    return gen


# ------------------------------------------------------------------------------------------ the preset


@pytest.mark.lfm_requires("chat")
def test_recommended_preset_accepted(lfm_chat: Callable[..., Any], lfm_variant: Any,
                                     record_property: Callable[[str, object], None]) -> None:
    """The variant's recommended sampling preset (temperature plus ``top_k``/``min_p``/
    ``repetition_penalty`` in ``extra_body``, §11.2) is accepted on chat: HTTP 200 with an
    assistant choice (§3.1, §11)."""
    preset = openai_sampling(lfm_variant.sampling)
    record_property("lfm_preset", preset)
    resp = lfm_chat([{"role": "user", "content": PROSE}], max_tokens=MAX_TOKENS)
    choice = resp.choices[0]
    expect_true("the preset request returns an assistant message", choice.message.role == "assistant",
                "role assistant", choice.message.role, {"preset": preset})
    expect_true("finish_reason", choice.finish_reason in ("stop", "length"), "stop or length",
                choice.finish_reason, {"preset": preset})


def test_recommended_preset_accepted_on_completions(lfm_http: LfmHttp, lfm_target: Target) -> None:
    """The variant's preset is accepted on ``/v1/completions`` as the cookbook's Base example sends it
    (temperature plus sampler fields at the top level) (§3.2, §11.2, §11.3)."""
    body = {"model": lfm_target.served_model, "prompt": "The capital of France is", "max_tokens": MAX_TOKENS,
            **lfm_target.variant.sampling.params()}
    r = lfm_http.post("/v1/completions", body)
    expect_status("completion with the recommended preset", 200, r.status_code, r.text, {"request": body})


# ------------------------------------------------------------------------------------------ restrictions

_BASELINES: dict[tuple[str, str], tuple[str, dict[int, str]]] = {}
RESTRICTIONS = load_cases("sampling")  # cases/restrictions.toml


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", RESTRICTIONS, ids=str)
def test_restriction_makes_temperature_1_greedy(lfm_http: LfmHttp, lfm_target: Target, endpoint: str,
                                                case: Case,
                                                record_property: Callable[[str, object], None]) -> None:
    """A filter that keeps only the most likely token (``top_k=1``, ``min_p=1.0`` or ``top_p=1e-6``) makes
    temperature 1 greedy: for each of 4 seeds the text equals the temperature-0 text (4 of 4); the same
    seeds without the filter leave greedy at least once (at least 1 of 4), so the filter, not the
    temperature, did it (§3.1 sampler fields; §4: temperature < 1e-6 is greedy)."""
    gen = _generator(lfm_http, lfm_target, endpoint)
    extra: dict[str, Any] = case["fields"]
    key = (lfm_target.base_url, endpoint)
    if key not in _BASELINES:  # greedy text and unrestricted T=1 texts, shared by the three filters
        _BASELINES[key] = (gen(PROSE, temperature=0), {s: gen(PROSE, temperature=1.0, seed=s) for s in SEEDS})
    greedy, free = _BASELINES[key]
    restricted = {s: gen(PROSE, temperature=1.0, seed=s, **extra) for s in SEEDS}
    expect_restriction_is_greedy(case.id, greedy, free, restricted, record_property,
                                 "forwarded to the sampler", {"endpoint": endpoint, "filter": extra})


# ------------------------------------------------------------------------------------------ seed


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_seed_reproducible(lfm_http: LfmHttp, lfm_target: Target, endpoint: str,
                           record_property: Callable[[str, object], None]) -> None:
    """At temperature 1 the same ``seed`` gives the same text (3 of 3 repeats per seed, 2 seeds). SGLang
    applies ``sampling_seed`` only with ``--enable-deterministic-inference``; on a server without it this
    check is not run (skip reason "not run: needs …", counted as not run in the report) (§3.1 seed →
    sampling_seed, §8)."""
    if not lfm_target.server_args.get("enable_deterministic_inference"):
        not_run("--enable-deterministic-inference (SGLang honours `seed` only with it)",
                "/server_info reports enable_deterministic_inference="
                f"{lfm_target.server_args.get('enable_deterministic_inference')}")
    gen = _generator(lfm_http, lfm_target, endpoint)
    runs = {s: [gen(PROSE, temperature=1.0, seed=s) for _ in range(3)] for s in SEEDS[:2]}
    stable = sum(len(set(texts)) == 1 for texts in runs.values())
    record_property("lfm_statistic", f"{stable}/{len(runs)} seeds gave 3 identical texts at T=1")
    for s, texts in runs.items():
        expect_true(f"seed {s} at temperature 1 gives the same text every time", len(set(texts)) == 1,
                    "3 identical texts", texts, {"endpoint": endpoint})


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_different_seeds_differ(lfm_http: LfmHttp, lfm_target: Target, endpoint: str,
                                record_property: Callable[[str, object], None]) -> None:
    """At temperature 1, 4 different seeds give at least 2 distinct texts (k of n: >= 2 distinct of 4)
    (§3.1 seed)."""
    gen = _generator(lfm_http, lfm_target, endpoint)
    texts = [gen(PROSE, temperature=1.0, seed=s) for s in SEEDS]
    distinct = len(set(texts))
    record_property("lfm_statistic", f"{distinct} distinct texts from {len(SEEDS)} seeds at T=1")
    expect_true("different seeds at temperature 1 give different texts", distinct >= 2,
                f">= 2 distinct texts of {len(SEEDS)}", texts, {"endpoint": endpoint})


# ------------------------------------------------------------------------------------------ penalties


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_repetition_penalty_changes_repetitive_greedy(lfm_http: LfmHttp, lfm_target: Target, endpoint: str,
                                                      record_property: Callable[[str, object], None]) -> None:
    """On prompts that make the model repeat, greedy output with ``repetition_penalty=2.0`` differs from
    ``1.0`` and repeats itself less (fewer repeated 4-grams, summed over the prompts) (§3.1; §4 range
    (0, 2]). k of n: 2 of 2 prompts with real weights (and the reference model); >= 1 of 2 on a random-weight
    fixture checkpoint, whose greedy token can lead by so much that halving its logit leaves it first (seen
    with the dense fixture on SGLang 0.5.17, docs/runs/2026-11-22-h100-sglang-0.5.17)."""
    gen = _generator(lfm_http, lfm_target, endpoint)
    plain = [gen(p, temperature=0, repetition_penalty=1.0, max_tokens=32) for p in REPEAT_PROMPTS]
    penal = [gen(p, temperature=0, repetition_penalty=2.0, max_tokens=32) for p in REPEAT_PROMPTS]
    need = len(plain) if lfm_target.coherent_output else 1
    expect_penalty_changes_repetition(plain, penal, need, record_property, {"endpoint": endpoint})


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("penalty", ["frequency_penalty", "presence_penalty"])
def test_penalty_changes_repetitive_greedy(lfm_http: LfmHttp, lfm_target: Target, endpoint: str, penalty: str,
                                           record_property: Callable[[str, object], None]) -> None:
    """``frequency_penalty=2`` / ``presence_penalty=2`` change a repetitive greedy continuation on at least
    1 of 2 prompts (k of n: >= 1 of 2) (§3.1: penalties on output tokens; §4 range [-2, 2])."""
    gen = _generator(lfm_http, lfm_target, endpoint)
    plain = [gen(p, temperature=0, max_tokens=32) for p in REPEAT_PROMPTS]
    penal = [gen(p, temperature=0, max_tokens=32, **{penalty: 2.0}) for p in REPEAT_PROMPTS]
    differ = sum(a != b for a, b in zip(plain, penal, strict=True))
    record_property("lfm_statistic", f"{penalty}=2 changes greedy output on {differ}/{len(REPEAT_PROMPTS)} prompts")
    expect_true(f"{penalty}=2 changes a repetitive greedy continuation", differ >= 1,
                f">= 1 of {len(plain)} prompts differ", f"{differ}/{len(plain)}",
                {"without": plain, f"{penalty}=2": penal, "endpoint": endpoint})


# ------------------------------------------------------------------------------------------ typos


@pytest.mark.lfm_requires("chat")
def test_misspelled_field_is_a_finding(lfm_http: LfmHttp, record_property: Callable[[str, object], None]) -> None:
    """A misspelled sampler field (``topk`` for ``top_k``) is not rejected: SGLang's request models have no
    ``extra="forbid"``, so the typo is silently ignored (§3.1). Recorded as a finding (``lfm_finding``);
    the check fails only on a 5xx."""
    body = {"temperature": 1.0, "seed": 5, "topk": 1, "max_tokens": MAX_TOKENS}
    r = lfm_http.post("/v1/chat/completions", lfm_http.chat_body([{"role": "user", "content": PROSE}], **body))
    expect_status("a request with a misspelled field", (200, 400), r.status_code, r.text, {"request": body})
    if r.status_code == 200:
        record_property("lfm_finding", "misspelled field 'topk' accepted with 200 and ignored: typos in "
                                       "extra_body are silent (§3.1); clients must spell top_k/min_p exactly")
    else:
        record_property("lfm_finding", "misspelled field 'topk' rejected with 400 (stricter than SGLang §3.1)")


# ------------------------------------------------------------------------------------------ defaults

OPENAI_DEFAULTS = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0, "repetition_penalty": 1.0}
DEFAULTED = tuple(OPENAI_DEFAULTS)


def declared_sampling_defaults(target: Target) -> tuple[dict[str, Any] | None, str]:
    """The defaults a chat request that omits a sampler field gets, and where they were read: ``/model_info``
    ``preferred_sampling_params``; OpenAI's under ``--sampling-defaults openai``; under ``model`` (SGLang's
    default) the checkpoint's ``generation_config.json`` at a local ``model_path`` (OpenAI's for the fields
    it does not set) (§3.1: user value > generation_config > OpenAI defaults). None when the server applies
    a generation_config this run cannot read."""
    import json
    from pathlib import Path

    preferred = target.model_info.get("preferred_sampling_params")
    if isinstance(preferred, str):
        try:
            preferred = json.loads(preferred)
        except ValueError:
            preferred = None
    if isinstance(preferred, dict) and preferred:
        return {**OPENAI_DEFAULTS, **{k: v for k, v in preferred.items() if k in DEFAULTED}}, \
            "/model_info preferred_sampling_params"
    mode = target.server_args.get("sampling_defaults") or "model"
    if mode == "openai":
        return dict(OPENAI_DEFAULTS), "OpenAI defaults (/server_info sampling_defaults=openai)"
    config = Path(str(target.server_args.get("model_path") or "")) / "generation_config.json"
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, f"generation_config.json at model_path {config.parent} (not readable from this run)"
    data = data if isinstance(data, dict) else {}
    return {**OPENAI_DEFAULTS, **{k: data[k] for k in DEFAULTED if k in data}}, \
        f"{config} (OpenAI defaults for the fields it does not set)"


def _known_defaults(target: Target, record_property: Callable[[str, object], None]) -> tuple[dict[str, Any], str]:
    defaults, source = declared_sampling_defaults(target)
    if defaults is None:
        pytest.skip(f"not run: the server applies its checkpoint's sampling defaults (sampling_defaults=model) "
                    f"and this run cannot read them: {source}; run where model_path is readable, or launch with "
                    f"--sampling-defaults openai")
    record_property("sampling_defaults", {"values": defaults, "source": source})
    return defaults, source


@pytest.mark.lfm_requires("chat")
def test_omitted_repetition_penalty_gets_declared_default(lfm_http: LfmHttp, lfm_target: Target,
                                                          record_property: Callable[[str, object], None]) -> None:
    """Greedy, so it needs no seed: on prompts that make the model repeat, a chat request that omits
    ``repetition_penalty`` gives the text of the same request stating the declared default (OpenAI's 1.0
    when the server declares none), 2 of 2 prompts. Catches a server that ignores its declared default and
    one that applies a default it does not declare (§3.1)."""
    defaults, source = _known_defaults(lfm_target, record_property)
    rp = defaults["repetition_penalty"]
    gen = _generator(lfm_http, lfm_target, "chat")
    omitted = [gen(p, temperature=0, max_tokens=32) for p in REPEAT_PROMPTS]
    stated = [gen(p, temperature=0, max_tokens=32, repetition_penalty=rp) for p in REPEAT_PROMPTS]
    same = sum(a == b for a, b in zip(omitted, stated, strict=True))
    record_property("lfm_statistic", f"{same}/{len(REPEAT_PROMPTS)} prompts: omitted repetition_penalty == {rp} stated")
    expect_true(f"a greedy request omitting repetition_penalty gets the declared default {rp}",
                same == len(REPEAT_PROMPTS), f"{len(REPEAT_PROMPTS)} of {len(REPEAT_PROMPTS)} prompts equal "
                f"the request stating repetition_penalty={rp}",
                {"equal": f"{same} of {len(REPEAT_PROMPTS)}", "omitted": omitted, "stated": stated},
                {"declared defaults": defaults, "source": source})


@pytest.mark.lfm_requires("chat")
def test_omitted_fields_get_declared_defaults(lfm_http: LfmHttp, lfm_target: Target,
                                              record_property: Callable[[str, object], None]) -> None:
    """A chat request that omits temperature/top_p/top_k/min_p/repetition_penalty is sampled with the
    defaults the server declares (generation_config under ``--sampling-defaults model``, reported in
    ``/model_info``; OpenAI's when none): with the same seed, 4 of 4 texts equal those of a request stating
    the declared defaults; when they differ from OpenAI's, at least 1 of 4 differs from a request stating
    OpenAI's (so the defaults were applied, not ignored). Needs seed reproducibility: without
    ``enable_deterministic_inference`` it does not run (§3.1)."""
    if not lfm_target.server_args.get("enable_deterministic_inference"):
        pytest.skip("not run: comparing sampled texts needs `seed` honoured (--enable-deterministic-inference); "
                    "/server_info reports enable_deterministic_inference="
                    f"{lfm_target.server_args.get('enable_deterministic_inference')}")
    defaults, source = _known_defaults(lfm_target, record_property)
    gen = _generator(lfm_http, lfm_target, "chat")
    omitted = {s: gen(PROSE, seed=s) for s in SEEDS}
    stated = {s: gen(PROSE, seed=s, **defaults) for s in SEEDS}
    same = sum(omitted[s] == stated[s] for s in SEEDS)
    context = {"declared defaults": defaults, "source": source}
    record_property("lfm_statistic", f"{same}/{len(SEEDS)} seeds: omitted fields == declared defaults stated")
    expect_true("a request omitting the sampler fields gets the declared defaults", same == len(SEEDS),
                f"{len(SEEDS)} of {len(SEEDS)} seeds equal the request stating {defaults}",
                {"equal": f"{same} of {len(SEEDS)}", "omitted": omitted, "stated": stated}, context)
    if defaults != OPENAI_DEFAULTS:
        plain = {s: gen(PROSE, seed=s, **OPENAI_DEFAULTS) for s in SEEDS}
        differ = sum(omitted[s] != plain[s] for s in SEEDS)
        expect_true("the declared defaults change sampling from OpenAI's", differ >= 1,
                    f">= 1 of {len(SEEDS)} seeds differ from the request stating {OPENAI_DEFAULTS}",
                    f"{differ} of {len(SEEDS)}", context)
