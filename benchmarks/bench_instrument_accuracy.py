"""Accuracy of the benchmark instrument (issue 10), as figures: measured TTFT and TPOT against delays
injected into the reference server. A benchmark, not a test: its 1 ms goal is a timing claim that load on
the machine can break (tests/test_bench_accuracy.py keeps the load-proof part: the delay is a floor, and
the instrument adds nothing beyond generous multiples of a baseline measured in the same run).

Usage: ``python benchmarks/bench_instrument_accuracy.py [--rounds 3]``; exit status 0 when a round is within
1 ms of both injected delays, 1 otherwise. Run it on an otherwise idle machine.

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
  misses is repeated, up to ``--rounds`` rounds. Every round's figures are printed.

Workload: 16 input tokens, 32 output tokens (``ignore_eos``), 50 requests per server per round after 3 warm-ups,
concurrency 1. Small prompts keep the baseline's CPU work, and so its noise, small.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx
import numpy as np

from pytest_lfm import bench

TTFT_DELAY_MS = 50.0
TPOT_DELAY_MS = 5.0
TOLERANCE_MS = 1.0
REQUESTS = 50
WARMUP = 3
ROUNDS = 3
INPUT_LEN = 16
OUTPUT_LEN = 32
IDLE_S = 0.2  # the pause before each delayed request (see the module docstring)


def _start(*extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "pytest_lfm.reference", "--variant", "1.2B-Instruct",
                             "--port", "0", "--announce", "--watch-parent", *extra],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LFM_REFERENCE_READY port="):
        proc.kill()
        raise RuntimeError(f"reference server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.strip().split('=')[1])}"


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
        if not (tb.ok and td.ok) or not tb.output_tokens == td.output_tokens == OUTPUT_LEN:
            raise RuntimeError(f"a request failed or was short: {tb.error or td.error}")
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


def main() -> int:
    """Print each round's figures and the full harness path's TPOT; 0 when a round is within tolerance."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    args = ap.parse_args()
    base_proc, base_url = _start()
    delayed_proc, delayed_url = _start("--ttft-delay-ms", str(TTFT_DELAY_MS), "--tpot-delay-ms", str(TPOT_DELAY_MS))
    try:
        rounds: list[Round] = []
        with bench.make_client(base_url) as base, bench.make_client(delayed_url) as delayed:
            model = bench.served_model(base)
            for k in range(args.rounds):
                r = _round(base, delayed, model, seed=k + 1)
                rounds.append(r)
                print(f"round {k + 1}: {r} -> {'within' if r.ok() else 'OUTSIDE'} tolerance")
                if r.ok():
                    break
        wl = bench.Workload(input_len=INPUT_LEN, output_len=OUTPUT_LEN, num_prompts=20, warmup=2, concurrency=1)
        s = bench.run_benchmark(delayed_url, wl, progress=False).summary()
        print(f"run_benchmark: TPOT p50 {s['tpot_ms']['p50']:.3f} ms, ITL p50 {s['itl_ms']['p50']:.3f} ms, "
              f"TTFT min {s['ttft_ms']['min']:.2f} ms (expected {TPOT_DELAY_MS:g}+-{TOLERANCE_MS:g}, "
              f"{TPOT_DELAY_MS:g}+-{TOLERANCE_MS:g}, >= {TTFT_DELAY_MS:g})")
    finally:
        for proc in (base_proc, delayed_proc):
            proc.terminate()
            proc.wait(timeout=10)
    return 0 if rounds and rounds[-1].ok() else 1


if __name__ == "__main__":
    sys.exit(main())
