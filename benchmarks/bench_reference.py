"""Benchmark of the reference server: request latency over HTTP and the whole conformance suite.

Usage::

    python benchmarks/bench_reference.py                 # latency + suite (all nine variants)
    python benchmarks/bench_reference.py --no-suite      # latency only
    python benchmarks/bench_reference.py --requests 500 --variant 1.2B-Thinking

The latency part starts ``python -m pytest_lfm.reference --variant V --port 0 --announce`` in a
subprocess, warms it up, then sends sequential non-streaming chat requests of exactly ``--tokens``
output tokens (``ignore_eos``) over one keep-alive connection with TCP_NODELAY (the suite's client) and prints median and p90 per sampling
setup: the variant's recommended preset (what ``lfm_chat`` sends), greedy, and temperature 1 with a
seed. The budget (issue 3) is a median under 5 ms for 64 tokens on a 2-core machine; the exit status
is 1 when a median exceeds ``--budget-ms``. The suite part times
``pytest conformance --lfm-server=reference`` for every variant (``-p no:cacheprovider``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from pytest_lfm.server.reference import ReferenceProcess

ROOT = Path(__file__).resolve().parent.parent
PROMPT = [{"role": "user", "content": "Write a long paragraph about rivers, stones and gardens."}]


@contextmanager
def reference_server(variant: str) -> Iterator[str]:
    """A reference server in a subprocess; yields its base URL and stops it afterwards."""
    with ReferenceProcess(variant) as proc:
        yield proc.base_url


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(client: httpx.Client, body: dict[str, Any], n: int, tokens: int) -> list[float]:
    """Latencies in ms of ``n`` sequential requests; each must return exactly ``tokens`` tokens."""
    out: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.post("/v1/chat/completions", json=body)
        out.append((time.perf_counter() - t0) * 1e3)
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:300]}")
        got = r.json()["usage"]["completion_tokens"]
        if got != tokens:
            raise RuntimeError(f"expected {tokens} completion tokens, got {got}")
    return out


def latency(variant: str, n: int, tokens: int) -> dict[str, tuple[float, float]]:
    """Median and p90 (ms) per sampling setup."""
    from pytest_lfm.variants import get_variant

    setups: dict[str, dict[str, Any]] = {
        "preset": dict(get_variant(variant).sampling.params()),
        "greedy": {"temperature": 0},
        "T=1 seed": {"temperature": 1.0, "seed": 7},
    }
    results: dict[str, tuple[float, float]] = {}
    from pytest_lfm.server.http import make_http_client

    with reference_server(variant) as url, make_http_client(url, timeout=30) as client:
        for name, sampling in setups.items():
            body = {"model": get_variant(variant).hf_path, "messages": PROMPT, "max_tokens": tokens,
                    "ignore_eos": True, **sampling}
            measure(client, body, 20, tokens)  # warm-up
            ms = measure(client, body, n, tokens)
            results[name] = (statistics.median(ms), percentile(ms, 0.9))
    return results


def suite_time(extra: list[str]) -> tuple[float, int, str]:
    """Wall time (s), exit status and summary line of the conformance suite on all nine variants."""
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "conformance"), "--lfm-server=reference", "-q",
           "-p", "no:cacheprovider", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    summary = next((ln for ln in reversed(lines) if " in " in ln and ("passed" in ln or "failed" in ln)), "")
    return elapsed, proc.returncode, summary


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="1.2B-Instruct")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--budget-ms", type=float, default=5.0)
    ap.add_argument("--no-suite", action="store_true", help="skip timing the conformance suite")
    ap.add_argument("--suite-arg", action="append", default=[], help="extra argument for the suite run")
    args = ap.parse_args(argv)
    ok = True
    print(f"reference server latency: {args.variant}, non-streaming chat, {args.tokens} output tokens, "
          f"{args.requests} sequential requests")
    for name, (med, p90) in latency(args.variant, args.requests, args.tokens).items():
        flag = "ok" if med < args.budget_ms else f"OVER {args.budget_ms} ms"
        ok = ok and med < args.budget_ms
        print(f"  {name:10s} median {med:6.2f} ms   p90 {p90:6.2f} ms   {flag}")
    if not args.no_suite:
        elapsed, rc, summary = suite_time(args.suite_arg)
        print(f"conformance suite, all nine variants: {elapsed:.1f} s (exit {rc}) {summary}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
