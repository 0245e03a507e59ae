"""Accuracy of the benchmark instrument (issue 10): measured TTFT and TPOT against delays injected into the
reference server.

Two reference servers run in subprocesses: one with ``--ttft-delay-ms 50 --tpot-delay-ms 5``, one without
delays (the baseline). The same requests go to both, interleaved (baseline, delayed, baseline, ...), so that
load on the machine hits both alike. The instrument must see

* TTFT(delayed) - TTFT(baseline) within 1 ms of 50 ms, and
* TPOT(delayed) within 1 ms of 5 ms (the server spaces token chunks on an absolute schedule, so its own
  per-token work, about 0.2 ms here, is absorbed in the 5 ms and not added to it).

Estimators and why (tolerances are the issue's 1 ms):
* TPOT: the median over requests of each request's ``(e2e - ttft) / (tokens - 1)``. Each value already
  averages 31 gaps, and the timer's wake-up lateness only enters through the last token (divided by 31).
* TTFT: the difference of the 10th percentiles of the two TTFT samples. TTFT includes the server's CPU work
  before the first token (prompt rendering and the toy model's generation; 5-30 ms on a busy box), and that
  noise is one-sided: CPU contention only ever adds time. On this project's 2-core machines under a parallel
  test load (load average ~8) the difference of medians drifted to +2 ms while the low percentiles stayed
  within +-0.5 ms of 50 ms; the 10th percentile is the robust estimator of the uncontended path.
* Both servers idle about as long before each of their requests (a 0.2 s pause before each delayed request,
  about as long as a delayed request lasts): a process that has idled longer runs its first milliseconds
  slower (cold caches, CPU idle states), which without the pause showed as ~1 ms less TTFT difference.
* A systematic error of the instrument would show in every round, random contention does not: a round that
  misses is repeated, up to three rounds, and the test passes when one round is within tolerance. Every
  round's figures are printed (``-s``) and given in the failure message.

Workload: 16 input tokens, 32 output tokens (``ignore_eos``), 50 requests per server per round after 3 warm-ups,
concurrency 1. Small prompts keep the baseline's CPU work, and so its noise, small.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pytest

from pytest_lfm import bench
from pytest_lfm.server.reference import ReferenceProcess

TTFT_DELAY_MS = 50.0
TPOT_DELAY_MS = 5.0
TOLERANCE_MS = 1.0
REQUESTS = 50
WARMUP = 3
ROUNDS = 3
INPUT_LEN = 16
OUTPUT_LEN = 32
IDLE_S = 0.2  # the pause before each delayed request (see the module docstring)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    """(baseline URL, delayed URL)."""
    with ReferenceProcess("1.2B-Instruct") as base, \
            ReferenceProcess("1.2B-Instruct", ttft_delay_ms=TTFT_DELAY_MS, tpot_delay_ms=TPOT_DELAY_MS) as delayed:
        yield base.base_url, delayed.base_url


@dataclass
class Round:
    """One round's figures (ms)."""

    ttft_added_p10: float
    ttft_added_p50: float
    tpot_p50: float
    baseline_ttft_p50: float
    baseline_tpot_p50: float

    def ok(self) -> bool:
        """Both within tolerance."""
        return (abs(self.ttft_added_p10 - TTFT_DELAY_MS) <= TOLERANCE_MS
                and abs(self.tpot_p50 - TPOT_DELAY_MS) <= TOLERANCE_MS)

    def __str__(self) -> str:
        return (f"TTFT added: p10 {self.ttft_added_p10:.3f} ms (median {self.ttft_added_p50:.3f}), expected "
                f"{TTFT_DELAY_MS:g}+-{TOLERANCE_MS:g}; TPOT median {self.tpot_p50:.3f} ms, expected "
                f"{TPOT_DELAY_MS:g}+-{TOLERANCE_MS:g}; baseline TTFT median {self.baseline_ttft_p50:.2f} ms, "
                f"TPOT median {self.baseline_tpot_p50:.3f} ms")


def _round(base: httpx.Client, delayed: httpx.Client, model: str, seed: int) -> Round:
    prompts = bench.make_prompts(base, model, REQUESTS + WARMUP, INPUT_LEN, seed=seed).prompts
    b: list[bench.RequestTiming] = []
    d: list[bench.RequestTiming] = []
    for i, prompt in enumerate(prompts):
        payload = bench.chat_payload(model, prompt, OUTPUT_LEN)
        tb = bench.time_request(base, payload)
        time.sleep(IDLE_S)
        td = bench.time_request(delayed, payload)
        assert tb.ok and td.ok, (tb.error, td.error)
        assert tb.output_tokens == td.output_tokens == OUTPUT_LEN
        if i >= WARMUP:
            b.append(tb)
            d.append(td)
    tb_ms = np.array([t.ttft_ns / 1e6 for t in b])
    td_ms = np.array([t.ttft_ns / 1e6 for t in d])
    return Round(
        ttft_added_p10=float(np.percentile(td_ms, 10) - np.percentile(tb_ms, 10)),
        ttft_added_p50=float(np.median(td_ms) - np.median(tb_ms)),
        tpot_p50=float(np.median([t.tpot_ns / 1e6 for t in d if t.tpot_ns is not None])),
        baseline_ttft_p50=float(np.median(tb_ms)),
        baseline_tpot_p50=float(np.median([t.tpot_ns / 1e6 for t in b if t.tpot_ns is not None])),
    )


def test_measured_ttft_and_tpot_match_injected_delays(servers: tuple[str, str]) -> None:
    """TTFT within 1 ms of the injected 50 ms (beyond the baseline), TPOT within 1 ms of the injected 5 ms."""
    base_url, delayed_url = servers
    rounds: list[Round] = []
    with bench.make_client(base_url) as base, bench.make_client(delayed_url) as delayed:
        model = bench.served_model(base)
        for k in range(ROUNDS):
            r = _round(base, delayed, model, seed=k + 1)
            rounds.append(r)
            print(f"round {k + 1}: {r}")
            if r.ok():
                break
    assert rounds[-1].ok(), "the instrument missed the injected delays in every round:\n" + "\n".join(
        f"  round {i + 1}: {r}" for i, r in enumerate(rounds))


def test_bench_tpot_matches_injected_delay_through_run_benchmark(servers: tuple[str, str]) -> None:
    """The full harness path (prompt calibration, warm-up, runner, summary) reports the injected TPOT: its
    median TPOT is within 1 ms of 5 ms and every ITL median within 1 ms of it too."""
    _, delayed_url = servers
    wl = bench.Workload(input_len=INPUT_LEN, output_len=OUTPUT_LEN, num_prompts=20, warmup=2, concurrency=1)
    result = bench.run_benchmark(delayed_url, wl)
    s = result.summary()
    print(f"run_benchmark: TPOT p50 {s['tpot_ms']['p50']:.3f} ms, ITL p50 {s['itl_ms']['p50']:.3f} ms, "
          f"TTFT p50 {s['ttft_ms']['p50']:.2f} ms")
    assert s["completed"] == 20 and s["failed"] == 0
    assert abs(s["tpot_ms"]["p50"] - TPOT_DELAY_MS) <= TOLERANCE_MS, s["tpot_ms"]
    assert abs(s["itl_ms"]["p50"] - TPOT_DELAY_MS) <= TOLERANCE_MS, s["itl_ms"]
    assert s["ttft_ms"]["min"] >= TTFT_DELAY_MS, s["ttft_ms"]  # the delay is a floor: never measured short
