"""The harness's own overhead per request: ``pytest_lfm.bench`` next to a plain httpx loop.

Both clients send the same streaming chat requests (the seed's workload shape: 1024 input tokens, 128 output
tokens forced with ``ignore_eos``) to one reference server started in a subprocess, alternating request by
request so that load on the machine affects both alike. The plain loop is what one would write by hand (and
what ``sglang.bench_serving`` does): ``httpx`` streaming, ``iter_lines``, ``json.loads`` per ``data:`` line and
``time.perf_counter`` at the first content chunk and at the end. The harness path is
:func:`pytest_lfm.bench.run_requests` (request builder, timer, progress hook; concurrency 1), which since the
bench took bench_serving's client runs an asyncio event loop with an aiohttp session per request: called
once per request here, its wall and CPU figures include creating the loop and the session (outside the
timed window; about +1.6 ms CPU per request on a 2-core box, 2026-12-02), its TTFT does not.

Printed: for each, the median wall time, client CPU time (``time.thread_time``) and measured TTFT per
request; then the harness's overhead, as medians of paired differences (harness minus plain). Goal: under
1 ms added. The client CPU figure is the stable one on a loaded machine: wall-time differences there carry
the server's and the scheduler's noise (about +-1 ms on a busy 2-core box).

Usage: ``python benchmarks/bench_harness_overhead.py [--requests 200] [--input-len 1024] [--output-len 128]``
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time

import httpx

from pytest_lfm import bench
from pytest_lfm.server.reference import ReferenceProcess


def start_reference(variant: str = "1.2B-Instruct") -> ReferenceProcess:
    """A reference server in a subprocess (its own interpreter, so it does not share our GIL)."""
    return ReferenceProcess(variant).start()


def plain_request(client: httpx.Client, payload: bytes) -> tuple[float, float]:
    """(wall seconds, ttft seconds) of one request timed by a plain httpx loop."""
    start = time.perf_counter()
    ttft = 0.0
    with client.stream("POST", bench.CHAT_PATH, content=payload, headers={"content-type": "application/json"}) as r:
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                continue
            event = json.loads(data)
            choices = event.get("choices") or [{}]
            delta = choices[0].get("delta") or {}
            if (delta.get("content") or delta.get("reasoning_content")) and not ttft:
                ttft = time.perf_counter() - start
    return time.perf_counter() - start, ttft


def main() -> int:
    """Run the comparison and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--input-len", type=int, default=1024)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--server", default=None, help="use this server instead of starting a reference server")
    args = ap.parse_args()
    proc = None if args.server else start_reference()
    url = proc.base_url if proc is not None else str(args.server)
    try:
        transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
        plain_client = httpx.Client(base_url=url, timeout=120.0, transport=transport)
        harness_client = bench.make_client(url)
        model = bench.served_model(harness_client)
        prompts = bench.make_prompts(harness_client, model, args.requests, args.input_len).prompts
        payloads = [bench.chat_payload(model, p, args.output_len) for p in prompts]
        warm = min(10, len(payloads))
        for p in payloads[:warm]:
            plain_request(plain_client, p)
            bench.time_request(harness_client, p)
        wall: dict[str, list[float]] = {"plain": [], "harness": []}
        cpu: dict[str, list[float]] = {"plain": [], "harness": []}
        ttft: dict[str, list[float]] = {"plain": [], "harness": []}
        for i, p in enumerate(payloads):
            def run_harness(p: bytes = p) -> float:
                timings, _ = bench.run_requests(harness_client, lambda _i: p, 1, 1)
                return timings[0].ttft_ns / 1e9

            def run_plain(p: bytes = p) -> float:
                return plain_request(plain_client, p)[1]

            order = [("plain", run_plain), ("harness", run_harness)]
            if i % 4 in (1, 2):  # ABBA: neither client always goes first
                order.reverse()
            for name, fn in order:
                w0, c0 = time.perf_counter(), time.thread_time()
                t = fn()
                cpu[name].append(time.thread_time() - c0)
                wall[name].append(time.perf_counter() - w0)
                ttft[name].append(t)
        ms = 1000.0

        def med(xs: list[float]) -> float:
            return statistics.median(xs) * ms

        def paired(d: dict[str, list[float]]) -> float:
            return statistics.median(h - q for h, q in zip(d["harness"], d["plain"], strict=True)) * ms

        print(f"server {url}, {args.requests} requests each, in {args.input_len} / out {args.output_len} tokens, "
              "interleaved ABBA, concurrency 1")
        for name, label in (("plain", "plain httpx loop"), ("harness", "pytest_lfm.bench")):
            print(f"{label:18s}: wall {med(wall[name]):8.3f} ms/request, client CPU {med(cpu[name]):7.3f} ms/request, "
                  f"TTFT {med(ttft[name]):7.3f} ms (medians)")
        print(f"harness overhead per request: wall {paired(wall):+.3f} ms, client CPU {paired(cpu):+.3f} ms, "
              f"measured TTFT {paired(ttft):+.3f} ms (medians of paired differences; goal < 1 ms)")
        plain_client.close()
        harness_client.close()
    finally:
        if proc is not None:
            proc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
