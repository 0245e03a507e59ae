"""Serving benchmark for LFM2.5 on SGLang: TTFT, TPOT, ITL, end-to-end latency and throughput.

The workload is the one of Liquid's B300 low-latency benchmark (``python3 -m sglang.bench_serving --backend
sglang-oai-chat --num-prompts 256 --max-concurrency 1 --random-input-len 1024 --random-output-len 128
--warmup-requests 128``): random prompts of ``input_len`` tokens, ``output_len`` output tokens forced with
``ignore_eos`` and ``max_tokens``, ``num_prompts`` timed requests after ``warmup`` untimed ones, at a fixed
concurrency (closed loop, one thread per in-flight request); optionally one 720p image per request (VL).

The instrument: each request is one streaming ``POST /v1/chat/completions`` over an httpx client with
TCP_NODELAY; timestamps are ``time.perf_counter_ns`` taken when bytes arrive. TTFT is the time to the first
chunk with non-empty ``content`` or ``reasoning_content``; ITL are the gaps between later token chunks;
TPOT is ``(e2e - ttft) / (output_tokens - 1)`` with ``output_tokens`` from the usage chunk
(``stream_options.include_usage``); e2e ends at the last byte of the stream. These are bench_serving's
definitions (it counts only ``content`` for TTFT; reasoning models would be timed from their first answer
token there). Percentiles use numpy's linear interpolation, as bench_serving does.

Also here: the performance budgets of ``data/performance.toml`` (per hardware, variant and concurrency, with
their source and slack), a Pillow-drawn latency plot, and the ``python -m pytest_lfm bench`` command line.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import random
import socket
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

CHAT_PATH = "/v1/chat/completions"
SEED_COMMAND = ("python3 -m sglang.bench_serving --backend sglang-oai-chat --num-prompts 256 --max-concurrency 1 "
                "--random-input-len 1024 --random-output-len 128 --warmup-requests 128")
SWEEP_CONCURRENCY = (1, 16, 64, 256)
IMAGE_720P = (1280, 720)
# Fallback when the server has no /v1/tokenize: English words from the list below average about 1.3 tokens
# (a leading space plus the word) in BPE vocabularies like LFM2's; the figure is an estimate and is said so.
TOKENS_PER_WORD_ESTIMATE = 1.3
_WORDS = (
    "time year people way day man thing woman life child world school state family student group country problem "
    "hand part place case week company system program question work government number night point home water room "
    "mother area money story fact month lot right study book eye job word business issue side kind head house "
    "service friend father power hour game line end member law car city community name president team minute idea "
    "kid body information back parent face others level office door health person art war history party result "
    "change morning reason research girl guy moment air teacher force education river mountain signal garden orange "
    "market winter summer bridge engine planet rocket forest ocean island valley desert harbor castle machine "
    "picture window letter silver golden purple yellow quiet rapid gentle bright narrow ancient modern simple "
    "careful curious eager famous honest lively proud brave calm clever"
).split()


# ------------------------------------------------------------------------------------------ workload


@dataclass
class Workload:
    """What to send: lengths, counts, concurrency, and whether each request carries a 720p image."""

    input_len: int = 1024
    output_len: int = 128
    num_prompts: int = 256
    warmup: int = 128
    concurrency: int = 1
    image: bool = False
    image_size: tuple[int, int] = IMAGE_720P
    seed: int = 1
    timeout: float = 600.0

    def scaled(self, factor: float) -> Workload:
        """The same workload with ``num_prompts`` and ``warmup`` multiplied by ``factor`` (at least one
        timed request and, when the original had any, one warm-up request per concurrency slot)."""
        from dataclasses import replace

        prompts = max(1, math.ceil(self.num_prompts * factor))
        warm = 0 if self.warmup == 0 else max(min(self.concurrency, self.warmup), math.ceil(self.warmup * factor))
        return replace(self, num_prompts=prompts, warmup=warm)


@dataclass
class PromptSet:
    """Prompts calibrated to the target input length, and how the calibration went."""

    prompts: list[str]
    calibrated: bool
    note: str
    token_counts: list[int] = field(default_factory=list)


def _tokenize_count(client: httpx.Client, model: str, text: str) -> int | None:
    """Token count of ``text`` by the server's ``/v1/tokenize`` (no special tokens), None when unavailable."""
    try:
        r = client.post("/v1/tokenize", json={"model": model, "prompt": text, "add_special_tokens": False})
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    try:
        data = r.json()
    except ValueError:
        return None
    if isinstance(data, dict):
        if isinstance(data.get("count"), int):
            return int(data["count"])
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
    return None


def make_prompts(client: httpx.Client | None, model: str, count: int, input_len: int, seed: int = 1) -> PromptSet:
    """``count`` distinct random-word prompts of about ``input_len`` tokens each.

    With a client, lengths are calibrated through the server's ``/v1/tokenize`` (a few calls per prompt:
    the word count is corrected by the observed tokens per word until the prompt is within 1% of the
    target, never above it by more than that). Without one, or when the server has no tokenize endpoint,
    the word count is estimated at :data:`TOKENS_PER_WORD_ESTIMATE` tokens per word and the note says so.
    Every prompt starts with a different word sequence, so a prefix cache cannot reuse one for another.
    """
    rng = random.Random(seed)
    tolerance = max(2, input_len // 100)
    prompts: list[str] = []
    counts: list[int] = []
    ratio = TOKENS_PER_WORD_ESTIMATE
    calibrated = client is not None
    for _ in range(count):
        pool = [rng.choice(_WORDS) for _ in range(int(input_len * 1.5) + 16)]
        words = max(1, min(len(pool), round(input_len / ratio)))
        best: tuple[int, int] | None = None  # (words, tokens) with tokens <= input_len + tolerance, closest
        if calibrated and client is not None:
            for _attempt in range(6):
                n = _tokenize_count(client, model, " ".join(pool[:words]))
                if n is None:
                    calibrated = False
                    break
                if n <= input_len + tolerance and (best is None or abs(n - input_len) < abs(best[1] - input_len)):
                    best = (words, n)
                if abs(n - input_len) <= tolerance:
                    break
                ratio = max(0.2, n / words)
                step = round((input_len - n) / ratio) or (1 if n < input_len else -1)
                words = max(1, min(len(pool), words + step))
        if best is not None:
            words = best[0]
            counts.append(best[1])
        prompts.append(" ".join(pool[:words]))
    if calibrated:
        note = (f"input lengths calibrated with the server's /v1/tokenize: mean {sum(counts) / max(1, len(counts)):.1f} "
                f"tokens (target {input_len}, tolerance {tolerance}; the chat template adds a few more)")
    else:
        note = (f"input lengths ESTIMATED at {TOKENS_PER_WORD_ESTIMATE} tokens per word (the server has no "
                f"/v1/tokenize); the prompt_tokens the server reports are in the results")
        counts = []
    return PromptSet(prompts=prompts, calibrated=calibrated, note=note, token_counts=counts)


def make_image_data_url(seed: int, size: tuple[int, int] = IMAGE_720P) -> str:
    """A distinct synthetic image (gradient, rectangles and ellipses) as a JPEG ``data:`` URL.

    Distinct per seed, so that SGLang's multimodal cache (keyed by content) cannot serve one image's
    features for another.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    w, h = size
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(24):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(20, w // 3), y0 + rng.randrange(20, h // 3)
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chat_payload(model: str, prompt: str, output_len: int, image_url: str | None = None) -> bytes:
    """The request body bench_serving's ``sglang-oai-chat`` backend sends, plus ``ignore_eos`` (forced
    output length) and ``stream_options.include_usage`` (the server's token count for TPOT)."""
    content: Any = prompt
    if image_url is not None:
        content = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": prompt}]
    body = {"model": model, "messages": [{"role": "user", "content": content}], "temperature": 0.0,
            "max_tokens": output_len, "ignore_eos": True, "stream": True,
            "stream_options": {"include_usage": True}}
    return json.dumps(body, ensure_ascii=False).encode()


# ------------------------------------------------------------------------------------------ the timer


@dataclass
class RequestTiming:
    """One request's timings in nanoseconds (``perf_counter_ns``), relative to its own send time."""

    ok: bool
    start_ns: int = 0
    ttft_ns: int = 0
    e2e_ns: int = 0
    itl_ns: list[int] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0
    token_chunks: int = 0
    error: str = ""

    @property
    def tpot_ns(self) -> float | None:
        """``(e2e - ttft) / (output_tokens - 1)``; None for a failed request or fewer than two tokens."""
        if not self.ok or self.output_tokens < 2:
            return None
        return (self.e2e_ns - self.ttft_ns) / (self.output_tokens - 1)


def _has_token(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    for ch in event.get("choices") or ():
        delta = ch.get("delta")
        if delta:
            if delta.get("content") or delta.get("reasoning_content"):
                return True
        elif ch.get("text"):  # /v1/completions chunks
            return True
    return False


def time_request(client: httpx.Client, payload: bytes, path: str = CHAT_PATH) -> RequestTiming:
    """Send one streaming request and time it (see the module docstring for the definitions)."""
    start = time.perf_counter_ns()
    timing = RequestTiming(ok=False, start_ns=start)
    first = last_token = 0
    last = start
    usage: dict[str, Any] | None = None
    try:
        with client.stream("POST", path, content=payload, headers={"content-type": "application/json"}) as r:
            if r.status_code != 200:
                r.read()
                timing.error = f"HTTP {r.status_code}: {r.text[:300]}"
                return timing
            buf = b""
            for data in r.iter_raw():
                now = time.perf_counter_ns()
                last = now
                buf += data
                if b"\n" not in data:
                    continue
                lines = buf.split(b"\n")
                buf = lines.pop()
                for raw_line in lines:
                    line = raw_line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    body = line[5:].strip()
                    if body == b"[DONE]":
                        continue
                    event = json.loads(body)
                    if isinstance(event, dict) and "error" in event:
                        timing.error = f"error event: {str(event['error'])[:300]}"
                        return timing
                    if _has_token(event):
                        timing.token_chunks += 1
                        if first == 0:
                            first = now
                        else:
                            timing.itl_ns.append(now - last_token)
                        last_token = now
                    if isinstance(event, dict) and event.get("usage"):
                        usage = event["usage"]
    except (httpx.HTTPError, ValueError) as exc:
        timing.error = f"{type(exc).__name__}: {exc}"
        return timing
    if first == 0:
        timing.error = "the stream carried no content or reasoning token"
        return timing
    timing.ok = True
    timing.ttft_ns = first - start
    timing.e2e_ns = last - start
    timing.output_tokens = int((usage or {}).get("completion_tokens") or timing.token_chunks)
    timing.prompt_tokens = int((usage or {}).get("prompt_tokens") or 0)
    return timing


def make_client(base_url: str, api_key: str | None = None, timeout: float = 600.0,
                concurrency: int = 1) -> httpx.Client:
    """An httpx client with TCP_NODELAY (as :func:`pytest_lfm.server.http.make_http_client`) and a pool
    large enough for ``concurrency`` streams."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)], limits=limits)
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)


# ------------------------------------------------------------------------------------------ running


class Progress:
    """A progress bar on stderr: tqdm when it is installed, else a plain one-line bar."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self.total, self.label, self.enabled = total, label, enabled and total > 0
        self.done = 0
        self._t0 = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()
        self._tqdm: Any = None
        if self.enabled:
            try:
                import importlib

                tqdm = importlib.import_module("tqdm").tqdm
                self._tqdm = tqdm(total=total, desc=label, file=sys.stderr, leave=True)
            except ImportError:
                self._draw(force=True)

    def update(self) -> None:
        """One request finished."""
        if not self.enabled:
            return
        with self._lock:
            self.done += 1
            if self._tqdm is not None:
                self._tqdm.update(1)
            else:
                self._draw(force=self.done == self.total)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(1e-9, now - self._t0)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                         f"{rate:.1f} req/s")
        sys.stderr.flush()

    def close(self) -> None:
        """End the bar's line."""
        if not self.enabled:
            return
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


def run_requests(client: httpx.Client, payloads: Callable[[int], bytes], count: int, concurrency: int,
                 progress: Progress | None = None, path: str = CHAT_PATH) -> tuple[list[RequestTiming], float]:
    """Send ``count`` requests, ``concurrency`` in flight at a time (closed loop); return the timings in
    request order and the wall time in seconds from the first send to the last completion.

    ``payloads(i)`` builds request ``i``'s body before its timer starts. Concurrency 1 runs in the calling
    thread (no hand-off between threads in the timed path).
    """
    results: list[RequestTiming | None] = [None] * count
    lock = threading.Lock()
    next_index = [0]

    def worker() -> None:
        while True:
            with lock:
                i = next_index[0]
                if i >= count:
                    return
                next_index[0] += 1
            body = payloads(i)
            results[i] = time_request(client, body, path)
            if progress is not None:
                progress.update()

    t0 = time.perf_counter_ns()
    if concurrency <= 1:
        worker()
    else:
        with ThreadPoolExecutor(max_workers=min(concurrency, max(1, count)), thread_name_prefix="lfm-bench") as pool:
            for fut in [pool.submit(worker) for _ in range(min(concurrency, max(1, count)))]:
                fut.result()
    duration = (time.perf_counter_ns() - t0) / 1e9
    return [r if r is not None else RequestTiming(ok=False, error="not sent") for r in results], duration


# ------------------------------------------------------------------------------------------ results


def percentile(values: Sequence[float] | np.ndarray[Any, Any], q: float) -> float:
    """The ``q``-th percentile with numpy's (and bench_serving's) linear interpolation; NaN when empty."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def describe(values_ms: Sequence[float]) -> dict[str, float]:
    """mean, std, min, p50, p90, p99 and max of a series in milliseconds (NaN when empty)."""
    if not values_ms:
        nan = float("nan")
        return {"mean": nan, "std": nan, "min": nan, "p50": nan, "p90": nan, "p99": nan, "max": nan}
    arr = np.asarray(values_ms, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "min": float(arr.min()),
            "p50": percentile(arr, 50), "p90": percentile(arr, 90), "p99": percentile(arr, 99),
            "max": float(arr.max())}


@dataclass
class BenchResult:
    """A benchmark run: its workload, per-request timings, wall time and notes."""

    base_url: str
    model: str
    workload: Workload
    requests: list[RequestTiming]
    duration_s: float
    notes: list[str] = field(default_factory=list)
    variant: str | None = None
    hardware: str | None = None

    @property
    def ok(self) -> list[RequestTiming]:
        """The requests that completed."""
        return [r for r in self.requests if r.ok]

    @property
    def failed(self) -> list[RequestTiming]:
        """The requests that failed."""
        return [r for r in self.requests if not r.ok]

    def ttft_ms(self) -> list[float]:
        """TTFT of each completed request, ms."""
        return [r.ttft_ns / 1e6 for r in self.ok]

    def tpot_ms(self) -> list[float]:
        """TPOT of each completed request with at least two output tokens, ms."""
        return [t / 1e6 for r in self.ok if (t := r.tpot_ns) is not None]

    def itl_ms(self) -> list[float]:
        """Every inter-token gap of every completed request, ms."""
        return [g / 1e6 for r in self.ok for g in r.itl_ns]

    def e2e_ms(self) -> list[float]:
        """End-to-end latency of each completed request, ms."""
        return [r.e2e_ns / 1e6 for r in self.ok]

    def summary(self) -> dict[str, Any]:
        """The figures bench_serving prints, plus p50/p90/p99 of each latency."""
        ok = self.ok
        out_tokens = sum(r.output_tokens for r in ok)
        in_tokens = sum(r.prompt_tokens for r in ok)
        dur = max(self.duration_s, 1e-9)
        forced = [r.output_tokens for r in ok if r.output_tokens != self.workload.output_len]
        return {
            "completed": len(ok), "failed": len(self.failed), "duration_s": self.duration_s,
            "total_input_tokens": in_tokens, "total_output_tokens": out_tokens,
            "mean_input_tokens": in_tokens / len(ok) if ok else float("nan"),
            "requests_with_other_output_len": len(forced),
            "request_throughput": len(ok) / dur, "input_throughput": in_tokens / dur,
            "output_throughput": out_tokens / dur,
            "ttft_ms": describe(self.ttft_ms()), "tpot_ms": describe(self.tpot_ms()),
            "itl_ms": describe(self.itl_ms()), "e2e_ms": describe(self.e2e_ms()),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: workload, summary, notes, and each request's timings in ms."""
        return {
            "tool": "pytest_lfm.bench", "base_url": self.base_url, "model": self.model, "variant": self.variant,
            "hardware": self.hardware, "workload": asdict(self.workload), "notes": self.notes,
            "summary": self.summary(),
            "requests": [{"ok": r.ok, "ttft_ms": r.ttft_ns / 1e6, "e2e_ms": r.e2e_ns / 1e6,
                          "tpot_ms": (r.tpot_ns / 1e6) if r.tpot_ns is not None else None,
                          "output_tokens": r.output_tokens, "prompt_tokens": r.prompt_tokens,
                          "token_chunks": r.token_chunks, "error": r.error} for r in self.requests],
        }

    def write(self, out_dir: Path | str, stem: str = "bench") -> list[Path]:
        """Write ``STEM.json`` and ``STEM.png`` (the latency plot) into ``out_dir``; return the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{stem}.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, default=_nan_safe) + "\n", encoding="utf-8")
        png = out / f"{stem}.png"
        plot_latency(self, png)
        return [path, png]


def _nan_safe(value: Any) -> Any:
    return str(value)


def format_summary(result: BenchResult) -> str:
    """A bench_serving-style table of one run."""
    s = result.summary()
    w = result.workload
    lines = [f"{' pytest_lfm.bench ':=^56}",
             f"{'Server:':<34}{result.base_url}",
             f"{'Model:':<34}{result.model}",
             f"{'Workload:':<34}in {w.input_len} / out {w.output_len} tokens"
             f"{' + one ' + 'x'.join(map(str, w.image_size)) + ' image' if w.image else ''}",
             f"{'Max concurrency:':<34}{w.concurrency}",
             f"{'Successful / failed requests:':<34}{s['completed']} / {s['failed']}",
             f"{'Warm-up requests:':<34}{w.warmup}",
             f"{'Benchmark duration (s):':<34}{s['duration_s']:.2f}",
             f"{'Mean input tokens (server):':<34}{s['mean_input_tokens']:.1f}",
             f"{'Total output tokens:':<34}{s['total_output_tokens']}",
             f"{'Request throughput (req/s):':<34}{s['request_throughput']:.2f}",
             f"{'Output token throughput (tok/s):':<34}{s['output_throughput']:.2f}"]
    for key, title in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2e_ms", "E2E latency")):
        d = s[key]
        lines.append(f"{title + ' (ms):':<34}mean {d['mean']:.2f}  p50 {d['p50']:.2f}  p90 {d['p90']:.2f}  "
                     f"p99 {d['p99']:.2f}")
    if s["requests_with_other_output_len"]:
        lines.append(f"WARNING: {s['requests_with_other_output_len']} request(s) did not produce {w.output_len} "
                     "tokens (ignore_eos not honoured?)")
    lines += [f"note: {n}" for n in result.notes]
    for r in result.failed[:3]:
        lines.append(f"failed: {r.error}")
    lines.append("=" * 56)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the plot


def plot_latency(result: BenchResult, path: Path | str) -> Path:
    """Draw the latency plot with Pillow: one CDF panel each for TTFT, TPOT, ITL and end-to-end latency,
    with p50/p90/p99 marked. (matplotlib is not a dependency.)"""
    from PIL import Image, ImageDraw, ImageFont

    panels = [("TTFT", result.ttft_ms()), ("TPOT", result.tpot_ms()), ("ITL", result.itl_ms()),
              ("E2E latency", result.e2e_ms())]
    pw, ph, margin = 420, 300, 50
    img = Image.new("RGB", (pw * 2, ph * 2 + 40), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    w = result.workload
    draw.text((10, 8), f"{result.model} @ {result.base_url}  in {w.input_len} / out {w.output_len}  "
                       f"concurrency {w.concurrency}  n={len(result.ok)}", fill="black", font=font)
    for k, (title, values) in enumerate(panels):
        ox, oy = (k % 2) * pw, 40 + (k // 2) * ph
        x0, y0, x1, y1 = ox + margin, oy + 20, ox + pw - 15, oy + ph - 35
        draw.rectangle((x0, y0, x1, y1), outline="black")
        draw.text((ox + margin, oy + 4), f"{title} CDF (ms)", fill="black", font=font)
        if not values:
            draw.text((x0 + 10, (y0 + y1) // 2), "no data", fill="gray", font=font)
            continue
        data = sorted(values)
        lo, hi = data[0], data[-1]
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        span = hi - lo

        def sx(v: float, lo: float = lo, span: float = span, x0: int = x0, x1: int = x1) -> float:
            return x0 + (v - lo) / span * (x1 - x0)

        def sy(p: float, y0: int = y0, y1: int = y1) -> float:
            return y1 - p * (y1 - y0)

        for frac in (0.25, 0.5, 0.75):
            draw.line((x0, sy(frac), x1, sy(frac)), fill=(225, 225, 225))
            draw.text((ox + 12, sy(frac) - 6), f"{frac:.2f}", fill="gray", font=font)
        n = len(data)
        pts = []
        for i, v in enumerate(data):
            pts += [(sx(v), sy(i / n)), (sx(v), sy((i + 1) / n))]
        if len(pts) > 1:
            draw.line(pts, fill=(31, 119, 180), width=2)
        for row, (q, colour) in enumerate(((50, (44, 160, 44)), (90, (255, 127, 14)), (99, (214, 39, 40)))):
            v = percentile(data, q)
            draw.line((sx(v), y0, sx(v), y1), fill=colour)
            draw.text((min(sx(v) + 2, x1 - 70), y0 + 2 + row * 12), f"p{q} {v:.2f}", fill=colour, font=font)
        draw.text((x0, y1 + 4), f"{lo:.2f}", fill="black", font=font)
        draw.text((x1 - 40, y1 + 4), f"{hi:.2f}", fill="black", font=font)
    out = Path(path)
    img.save(out, format="PNG")
    return out


# ------------------------------------------------------------------------------------------ the benchmark


def served_model(client: httpx.Client) -> str:
    """The first model id of ``/v1/models``."""
    r = client.get("/v1/models")
    r.raise_for_status()
    data = r.json().get("data") or []
    if not data:
        raise RuntimeError("the server lists no model on /v1/models")
    return str(data[0]["id"])


def run_benchmark(base_url: str, workload: Workload, *, model: str | None = None, api_key: str | None = None,
                  progress: bool = False, variant: str | None = None, hardware: str | None = None,
                  client: httpx.Client | None = None) -> BenchResult:
    """Run one workload against one server: calibrate prompts, warm up, then time ``num_prompts`` requests."""
    own = client is None
    http = client or make_client(base_url, api_key, workload.timeout, workload.concurrency)
    try:
        model = model or served_model(http)
        total = workload.warmup + workload.num_prompts
        prompt_set = make_prompts(http, model, total, workload.input_len, workload.seed)
        notes = [prompt_set.note]
        if workload.image:
            notes.append(f"one {workload.image_size[0]}x{workload.image_size[1]} JPEG per request, distinct per request")

        def payload(offset: int) -> Callable[[int], bytes]:
            def build(i: int) -> bytes:
                k = offset + i
                image = make_image_data_url(workload.seed * 100003 + k, workload.image_size) if workload.image else None
                return chat_payload(model, prompt_set.prompts[k], workload.output_len, image)
            return build

        if workload.warmup:
            bar = Progress(workload.warmup, "warm-up", progress)
            run_requests(http, payload(0), workload.warmup, workload.concurrency, bar)
            bar.close()
        bar = Progress(workload.num_prompts, f"c={workload.concurrency}", progress)
        timings, duration = run_requests(http, payload(workload.warmup), workload.num_prompts,
                                         workload.concurrency, bar)
        bar.close()
        return BenchResult(base_url=base_url, model=model, workload=workload, requests=timings,
                           duration_s=duration, notes=notes, variant=variant, hardware=hardware)
    finally:
        if own:
            http.close()


# ------------------------------------------------------------------------------------------ budgets

Metric = Literal["ttft_ms", "tpot_ms", "output_throughput"]


class BudgetDefaults(BaseModel):
    """Default slack factors of the budget file."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    slack_ttft: float = Field(gt=1.0)
    slack_tpot: float = Field(gt=1.0)
    slack_throughput: float = Field(gt=1.0)


class Budget(BaseModel):
    """A published figure set for one (hardware, variant, concurrency), the workload it was taken with,
    its source, and the slack the gate allows."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    hardware: str
    variant: str
    concurrency: int = Field(ge=1)
    input_len: int = Field(ge=1)
    output_len: int = Field(ge=2)
    num_prompts: int = Field(ge=1)
    warmup: int = Field(ge=0)
    statistic: Literal["mean", "p50"] = "mean"
    ttft_ms: float = Field(gt=0)
    tpot_ms: float = Field(gt=0)
    output_throughput: float = Field(gt=0)
    source: str = Field(min_length=10)
    slack_ttft: float | None = Field(default=None, gt=1.0)
    slack_tpot: float | None = Field(default=None, gt=1.0)
    slack_throughput: float | None = Field(default=None, gt=1.0)
    server_flags: str = ""

    @model_validator(mode="after")
    def _known_ids(self) -> Budget:
        from pytest_lfm.hardware import hardware_ids
        from pytest_lfm.variants import variant_ids

        if self.hardware not in hardware_ids():
            raise ValueError(f"unknown hardware {self.hardware!r}; known: {', '.join(hardware_ids())}")
        if self.variant not in variant_ids():
            raise ValueError(f"unknown variant {self.variant!r}; known: {', '.join(variant_ids())}")
        return self

    @property
    def id(self) -> str:
        """``hardware-variant-cN``."""
        return f"{self.hardware}-{self.variant}-c{self.concurrency}"

    def workload(self) -> Workload:
        """The workload the figures were taken with."""
        return Workload(input_len=self.input_len, output_len=self.output_len, num_prompts=self.num_prompts,
                        warmup=self.warmup, concurrency=self.concurrency)


@dataclass(frozen=True)
class Verdict:
    """One metric's comparison with its budget."""

    metric: str
    measured: float
    budget: float
    slack: float
    limit: float
    passed: bool
    higher_is_better: bool

    def describe(self) -> str:
        """E.g. ``ttft_ms mean 9.10 <= 13.19 (8.79 x 1.5): ok``."""
        op = ">=" if self.higher_is_better else "<="
        how = "/" if self.higher_is_better else "x"
        return (f"{self.metric} {self.measured:.2f} {op} {self.limit:.2f} ({self.budget:g} {how} {self.slack:g}): "
                f"{'ok' if self.passed else 'OVER BUDGET'}")


@dataclass(frozen=True)
class Budgets:
    """The budget file: defaults and rows."""

    defaults: BudgetDefaults
    rows: tuple[Budget, ...]

    def find(self, hardware: str, variant: str, concurrency: int | None = None) -> list[Budget]:
        """Rows for a hardware and variant (and concurrency)."""
        return [b for b in self.rows if b.hardware == hardware and b.variant == variant
                and (concurrency is None or b.concurrency == concurrency)]

    def slack(self, row: Budget, metric: Metric) -> float:
        """The row's slack for a metric, else the default."""
        name = {"ttft_ms": "slack_ttft", "tpot_ms": "slack_tpot", "output_throughput": "slack_throughput"}[metric]
        value = getattr(row, name)
        return float(value if value is not None else getattr(self.defaults, name))

    def check(self, row: Budget, result: BenchResult) -> list[Verdict]:
        """Compare a run with a row: latencies at most budget x slack, throughput at least budget / slack."""
        s = result.summary()
        out = []
        for metric in ("ttft_ms", "tpot_ms"):
            slack = self.slack(row, metric)
            measured = float(s[metric][row.statistic])
            budget = float(getattr(row, metric))
            limit = budget * slack
            out.append(Verdict(f"{metric} {row.statistic}", measured, budget, slack, limit,
                               not math.isnan(measured) and measured <= limit, False))
        slack = self.slack(row, "output_throughput")
        measured = float(s["output_throughput"])
        limit = row.output_throughput / slack
        out.append(Verdict("output_throughput tok/s", measured, row.output_throughput, slack, limit,
                           measured >= limit, True))
        return out


class BudgetError(ValueError):
    """The budget file is malformed."""


def parse_budgets(text: str) -> Budgets:
    """Parse and validate a budget file's text (raises :class:`BudgetError` naming the bad row)."""
    data = tomllib.loads(text)
    unknown = set(data) - {"defaults", "budget"}
    if unknown:
        raise BudgetError(f"unknown top-level keys {sorted(unknown)}")
    try:
        defaults = BudgetDefaults.model_validate(data.get("defaults", {}))
    except ValueError as exc:
        raise BudgetError(f"[defaults]: {exc}") from None
    rows: list[Budget] = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("budget", [])):
        try:
            row = Budget.model_validate(raw)
        except ValueError as exc:
            raise BudgetError(f"[[budget]] #{i + 1} ({raw.get('hardware')}/{raw.get('variant')}): {exc}") from None
        if row.id in seen:
            raise BudgetError(f"[[budget]] #{i + 1}: duplicate row {row.id}")
        seen.add(row.id)
        rows.append(row)
    return Budgets(defaults=defaults, rows=tuple(rows))


@lru_cache(maxsize=1)
def load_budgets() -> Budgets:
    """The shipped budgets (``pytest_lfm/data/performance.toml``)."""
    return parse_budgets(resources.files("pytest_lfm").joinpath("data/performance.toml").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------ command line


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of ``python -m pytest_lfm bench``."""
    ap.add_argument("--server", required=True, metavar="URL", help="the server, e.g. http://localhost:30000 "
                    "or localhost:30000")
    ap.add_argument("--variant", default=None, metavar="ID", help="the variant served (labels the results and, "
                    "with --hardware, selects the published budget to compare with)")
    ap.add_argument("--hardware", default=None, metavar="ID", help="the GPU (h100, h200, b200, b300): compare "
                    "with data/performance.toml's budget for this hardware/variant/concurrency")
    ap.add_argument("--model", default=None, help="model name to send (default: the first of /v1/models)")
    ap.add_argument("--api-key", default=None, help="Bearer token (or env LFM_API_KEY)")
    ap.add_argument("--input-len", type=int, default=1024)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--num-prompts", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=128, help="untimed warm-up requests (default 128)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1], metavar="N",
                    help="max concurrency; several values run a sweep, e.g. --concurrency 1 16 64 256")
    ap.add_argument("--image", action="store_true", help="attach one 1280x720 image to every request (VL variants)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600.0, help="per-request timeout in seconds")
    ap.add_argument("--out", default=None, metavar="DIR", help="write bench-cN.json and bench-cN.png here")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def _usage_error(args: argparse.Namespace) -> str | None:
    """An unknown --variant or --hardware, named with the known ids."""
    from pytest_lfm.hardware import hardware_ids
    from pytest_lfm.variants import variant_ids

    if args.variant and args.variant not in variant_ids():
        return f"--variant {args.variant!r} is not an LFM2.5 variant; known: {', '.join(variant_ids())}"
    if args.hardware and args.hardware not in hardware_ids():
        return f"--hardware {args.hardware!r} is not known; known: {', '.join(hardware_ids())}"
    return None


def _error_text(url: str, exc: Exception, api_key: str | None) -> str:
    """What went wrong talking to the server, and what to do: a 401 says whether a key was sent."""
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 401:
        path = exc.request.url.path
        if api_key:
            return (f"{url} refused the API key (401 on {path}); pass the key the server was started with "
                    "(--api-key or LFM_API_KEY)")
        return f"{url} needs an API key (401 on {path}); pass it with --api-key or LFM_API_KEY"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"{url}: {exc.request.method} {exc.request.url.path} answered HTTP {exc.response.status_code}"
    return f"{url}: {type(exc).__name__}: {exc}"


def run_cli(args: argparse.Namespace) -> int:
    """Run ``bench`` from parsed arguments; exit status 0, 1 when a budget is exceeded or requests failed,
    2 on a usage error."""
    import os

    url = args.server if "://" in args.server else f"http://{args.server}"
    url = url.rstrip("/")
    api_key = args.api_key or os.environ.get("LFM_API_KEY") or None
    budgets = load_budgets() if args.hardware else None
    usage = _usage_error(args)
    if usage:
        print(f"error: {usage}", file=sys.stderr)
        return 2
    if args.hardware and not args.variant:
        print("error: --hardware needs --variant to pick a budget", file=sys.stderr)
        return 2
    status = 0
    for c in args.concurrency:
        wl = Workload(input_len=args.input_len, output_len=args.output_len, num_prompts=args.num_prompts,
                      warmup=args.warmup, concurrency=c, image=args.image, seed=args.seed, timeout=args.timeout)
        try:
            result = run_benchmark(url, wl, model=args.model, api_key=api_key, progress=not args.no_progress,
                                   variant=args.variant, hardware=args.hardware)
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"error: {_error_text(url, exc, api_key)}", file=sys.stderr)
            return 2
        print(format_summary(result))
        if result.failed:
            status = 1
        if budgets is not None:
            rows = budgets.find(args.hardware, args.variant, c)
            if not rows:
                print(f"no published budget for {args.hardware}/{args.variant} at concurrency {c}")
            for row in rows:
                same = (row.input_len, row.output_len) == (wl.input_len, wl.output_len)
                print(f"budget {row.id} ({row.source.split(';')[0]}):"
                      + ("" if same else f" NOTE taken at in {row.input_len} / out {row.output_len}, not this workload"))
                for v in budgets.check(row, result):
                    print(f"  {v.describe()}")
                    status = status or (0 if v.passed else 1)
        if args.out:
            paths = result.write(args.out, f"bench-c{c}")
            print("wrote " + " and ".join(str(p) for p in paths))
    return status


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m pytest_lfm.bench`` (the same as ``python -m pytest_lfm bench``)."""
    ap = argparse.ArgumentParser(prog="python -m pytest_lfm bench",
                                 description="Serving benchmark (TTFT, TPOT, ITL, throughput) of an SGLang "
                                             f"server; the default workload is the seed's: {SEED_COMMAND}")
    add_arguments(ap)
    return run_cli(ap.parse_args(list(argv) if argv is not None else None))


if __name__ == "__main__":
    sys.exit(main())
