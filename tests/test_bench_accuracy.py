"""The benchmark instrument sees delays injected into the reference server, with claims load cannot break.

Two reference servers run in subprocesses, one with ``--ttft-delay-ms 50 --tpot-delay-ms 5`` and one without
(the baseline); the same requests go to both, interleaved, so load on the machine hits both alike. Load only
ever adds time, so the test asserts

* floors: every delayed request's TTFT is at least 50 ms and its end-to-end time at least
  50 + 31 x 5 ms (the server holds the chunks at least that long; an instrument that measures less is wrong);
* ceilings as generous multiples of the baseline measured in the same run: the median TTFT is at most
  50 ms + 3 x the baseline median + 25 ms, the median TPOT at most 5 ms + 3 x the baseline median + 2 ms
  (an instrument that adds its own time, or misses the stream's end, breaks these by far).

The 1 ms accuracy figures are a benchmark: ``python benchmarks/bench_instrument_accuracy.py`` prints them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import pytest

from pytest_lfm import bench
from pytest_lfm.server.reference import ReferenceProcess

TTFT_DELAY_MS = 50.0
TPOT_DELAY_MS = 5.0
REQUESTS = 15
INPUT_LEN = 16
OUTPUT_LEN = 32


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    """(baseline URL, delayed URL)."""
    with ReferenceProcess("1.2B-Instruct") as base, \
            ReferenceProcess("1.2B-Instruct", ttft_delay_ms=TTFT_DELAY_MS, tpot_delay_ms=TPOT_DELAY_MS) as delayed:
        yield base.base_url, delayed.base_url


def test_measured_times_respect_injected_delays(servers: tuple[str, str]) -> None:
    base_url, delayed_url = servers
    with bench.make_client(base_url) as base, bench.make_client(delayed_url) as delayed:
        model = bench.served_model(base)
        prompts = bench.make_prompts(base, model, REQUESTS + 2, INPUT_LEN, seed=1).prompts
        b: list[bench.RequestTiming] = []
        d: list[bench.RequestTiming] = []
        for i, prompt in enumerate(prompts):
            payload = bench.chat_payload(model, prompt, OUTPUT_LEN)
            tb, td = bench.time_request(base, payload), bench.time_request(delayed, payload)
            assert tb.ok and td.ok, (tb.error, td.error)
            assert tb.output_tokens == td.output_tokens == OUTPUT_LEN
            if i >= 2:
                b.append(tb)
                d.append(td)
    ttft_d = [t.ttft_ns / 1e6 for t in d]
    e2e_d = [t.e2e_ns / 1e6 for t in d]
    floor_e2e = TTFT_DELAY_MS + (OUTPUT_LEN - 1) * TPOT_DELAY_MS
    base_ttft = statistics.median(t.ttft_ns / 1e6 for t in b)
    base_tpot = statistics.median(t.tpot_ns / 1e6 for t in b if t.tpot_ns is not None)
    tpot_d = statistics.median(t.tpot_ns / 1e6 for t in d if t.tpot_ns is not None)
    figures = (f"delayed TTFT min {min(ttft_d):.2f} median {statistics.median(ttft_d):.2f} ms, e2e min "
               f"{min(e2e_d):.1f} ms, TPOT median {tpot_d:.3f} ms; baseline TTFT median {base_ttft:.2f} ms, "
               f"TPOT median {base_tpot:.3f} ms")
    print(figures)
    assert min(ttft_d) >= TTFT_DELAY_MS, figures
    assert min(e2e_d) >= floor_e2e, figures
    assert statistics.median(ttft_d) <= TTFT_DELAY_MS + 3 * base_ttft + 25, figures
    assert TPOT_DELAY_MS * 0.8 <= tpot_d <= TPOT_DELAY_MS + 3 * base_tpot + 2, figures


def test_run_benchmark_reports_the_injected_delays(servers: tuple[str, str]) -> None:
    """The full harness path (calibration, warm-up, runner, summary) keeps the floors and stays near them."""
    _, delayed_url = servers
    wl = bench.Workload(input_len=INPUT_LEN, output_len=OUTPUT_LEN, num_prompts=10, warmup=1, concurrency=1)
    s = bench.run_benchmark(delayed_url, wl, progress=False).summary()
    print(f"run_benchmark: TPOT p50 {s['tpot_ms']['p50']:.3f} ms, TTFT min {s['ttft_ms']['min']:.2f} ms")
    assert s["completed"] == 10 and s["failed"] == 0
    assert s["ttft_ms"]["min"] >= TTFT_DELAY_MS, s["ttft_ms"]
    assert TPOT_DELAY_MS * 0.8 <= s["tpot_ms"]["p50"] <= TPOT_DELAY_MS * 4, s["tpot_ms"]
