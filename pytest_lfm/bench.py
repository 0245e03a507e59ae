"""Serving benchmark for LFM2.5 on SGLang: TTFT, TPOT, ITL, end-to-end latency and throughput.

The workload and every figure follow ``python -m sglang.bench_serving --backend sglang-oai-chat
--dataset-name random-ids --random-range-ratio 1`` of SGLang 0.5.17 (``sglang/benchmark/serving.py`` and
``datasets/random.py``), so that the two agree on one server; each deliberate difference is an option whose
default is bench_serving's:

* Prompts (``dataset="random-ids"``): with the served model's tokenizer (``transformers``, from
  ``--tokenizer`` or the server's ``/model_info``), seeded like bench_serving (``--seed``, default 42):
  per prompt ``input_len - num_special_tokens_to_add()`` consecutive token ids from a random offset, modulo
  ``vocab_size``, decoded to text. Prompts share no prefix. Without a local tokenizer the ``words`` dataset
  (random English words, lengths calibrated with ``/v1/tokenize``) is used and the notes say so.
* Request: one streaming ``POST /v1/chat/completions`` with one user message, ``temperature 0``,
  ``max_completion_tokens`` and ``ignore_eos``; a new TCP connection per request (bench_serving opens an
  aiohttp session per request; ``connection="pooled"`` reuses connections). Added:
  ``stream_options.include_usage`` (the server's token count, to check that every request produced the
  forced length; bench_serving falls back to the requested length when no usage arrives).
* Warm-up (``warmup_mode="bench_serving"``): ``warmup`` copies of the FIRST timed prompt with
  ``min(output_len, 32)`` output tokens, all sent at once, then a 1 s pause. ``"distinct"`` sends
  ``warmup`` other prompts at the timed concurrency instead.
* Arrival: every request is ready at once (request rate infinite) and at most ``concurrency`` are in flight
  (bench_serving's semaphore: a closed loop with ``concurrency`` slots, requests in order).
* Client: bench_serving's — one asyncio event loop reads every stream, with aiohttp (a session per request,
  a 10 MB read buffer). A thread per stream with httpx, and httpx's asyncio client, measured other figures
  than bench_serving under concurrency on one known server (threads: ITL and TPOT +34 % at 64 streams, TTFT
  −12 % at 16; httpx asyncio: TTFT +21 % at 64), see ``docs/runs/2026-12-02-cpu-reference-side-by-side``.
* Timer: ``time.perf_counter_ns`` when bytes arrive. TTFT is the time to the first chunk with non-empty
  ``content`` or ``reasoning_content`` (0.5.17 counts reasoning too; ``first_token="content"`` counts only
  answer text); ITL are the gaps between later token chunks; end-to-end latency ends at the last line of the
  stream (``[DONE]``); TPOT is ``(e2e - ttft) / (output_tokens - 1)`` per request.
* Throughput: output tokens over the window from the first send to the last completion.
* Statistics: mean, median and percentiles with numpy's linear interpolation, as bench_serving.

Also here: the performance budgets of ``data/performance.toml`` (per hardware, variant and concurrency, with
their source and slack), the latency plot (matplotlib, the ``[plot]`` extra), and the
``python -m pytest_lfm bench`` command line.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

import aiohttp
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
    seed: int = 42
    timeout: float = 600.0
    dataset: Literal["random-ids", "words"] = "random-ids"
    warmup_mode: Literal["bench_serving", "distinct"] = "bench_serving"
    first_token: Literal["any", "content"] = "any"
    connection: Literal["per-request", "pooled"] = "per-request"
    tokenizer: str | None = None

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


class PromptTokenizer(Protocol):
    """What the ``random-ids`` dataset needs of a tokenizer (a ``transformers`` tokenizer has it)."""

    @property
    def vocab_size(self) -> int: ...

    def num_special_tokens_to_add(self) -> int: ...

    def decode(self, token_ids: list[int]) -> str: ...


def random_id_prompts(tokenizer: PromptTokenizer, count: int, input_len: int, seed: int = 42) -> PromptSet:
    """bench_serving's ``random-ids`` prompts (``sample_random_requests`` with ``random_sample=False``,
    ``return_text=True``, ``--random-range-ratio 1``), with the same seed giving the same prompts.

    bench_serving seeds numpy's global generator with ``--seed`` and then draws, in this order, the input
    lengths, the output lengths (both ``randint(full_len, full_len + 1)`` at range ratio 1) and one offset
    per prompt in ``[0, vocab_size)``; prompt ``i`` is the ids ``(offset_i + i + j) % vocab_size`` for
    ``j < input_len - num_special_tokens_to_add()``, decoded. A private ``RandomState`` replays that stream.
    """
    rs = np.random.RandomState(seed)
    rs.randint(input_len, input_len + 1, size=count)  # input lengths (all input_len at range ratio 1)
    rs.randint(1, 2, size=count)  # output lengths: only their draw matters here
    length = max(1, input_len - int(tokenizer.num_special_tokens_to_add()))
    vocab = int(tokenizer.vocab_size)
    offsets = rs.randint(0, vocab, size=count)
    prompts = [tokenizer.decode([int((int(offsets[i]) + i + j) % vocab) for j in range(length)])
               for i in range(count)]
    note = (f"random-ids prompts as sglang.bench_serving (seed {seed}): {length} token ids each "
            f"(input_len {input_len} minus the tokenizer's {input_len - length} special token(s)), consecutive "
            f"ids from a random offset modulo vocab_size {vocab}, decoded; the chat template adds more")
    return PromptSet(prompts=prompts, calibrated=True, note=note, token_counts=[length] * count)


def load_tokenizer(name: str) -> PromptTokenizer:
    """A ``transformers`` tokenizer (local directory or Hub id); raises RuntimeError saying what to do."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise RuntimeError("the random-ids dataset needs `transformers` to load the tokenizer; install it "
                           "or pass --dataset words") from None
    try:
        tok: PromptTokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=True)
    except Exception as exc:
        raise RuntimeError(f"could not load the tokenizer {name!r} ({type(exc).__name__}: {exc}); pass "
                           "--tokenizer PATH or --dataset words") from None
    return tok


def server_tokenizer_path(client: httpx.Client) -> str | None:
    """``tokenizer_path`` (else ``model_path``) of the server's ``/model_info``, as bench_serving asks."""
    try:
        r = client.get("/model_info", timeout=5)
        info = r.json() if r.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    path = info.get("tokenizer_path") or info.get("model_path")
    return str(path) if path else None


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
    """The request body bench_serving's ``sglang-oai-chat`` backend sends (``max_completion_tokens``,
    ``temperature 0``, ``ignore_eos``, streaming), plus ``stream_options.include_usage`` (the server's
    token count, to check the forced output length)."""
    content: Any = prompt
    if image_url is not None:
        content = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": prompt}]
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_completion_tokens": output_len,
            "temperature": 0.0, "ignore_eos": True, "stream": True,
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


def _has_token(event: Any, content_only: bool = False) -> bool:
    if not isinstance(event, dict):
        return False
    for ch in event.get("choices") or ():
        delta = ch.get("delta")
        if delta:
            if delta.get("content") or (not content_only and delta.get("reasoning_content")):
                return True
        elif ch.get("text"):  # /v1/completions chunks
            return True
    return False


class _StreamTimer:
    """The timer of one streaming request, fed the raw bytes as they arrive (see the module docstring)."""

    def __init__(self, start: int, first_token: Literal["any", "content"]) -> None:
        self.timing = RequestTiming(ok=False, start_ns=start)
        self.content_only = first_token == "content"
        self.first = self.last_token = 0
        self.last = start
        self.usage: dict[str, Any] | None = None
        self._buf = b""

    def feed(self, data: bytes, now: int) -> bool:
        """Take one read's bytes, arrived at ``now``; True when an error event ends the request."""
        self.last = now
        self._buf += data
        if b"\n" not in data:
            return False
        lines = self._buf.split(b"\n")
        self._buf = lines.pop()
        for raw_line in lines:
            line = raw_line.strip()
            if not line.startswith(b"data:"):
                continue
            body = line[5:].strip()
            if body == b"[DONE]":
                continue
            event = json.loads(body)
            if isinstance(event, dict) and "error" in event:
                self.timing.error = f"error event: {str(event['error'])[:300]}"
                return True
            if _has_token(event, self.content_only):
                self.timing.token_chunks += 1
                if self.first == 0:
                    self.first = now
                else:
                    self.timing.itl_ns.append(now - self.last_token)
                self.last_token = now
            if isinstance(event, dict) and event.get("usage"):
                self.usage = event["usage"]
        return False

    def fail(self, error: str) -> RequestTiming:
        """The request failed (HTTP status or transport error)."""
        self.timing.error = error
        return self.timing

    def result(self) -> RequestTiming:
        """The finished request's timing (an error when no token arrived)."""
        timing = self.timing
        if timing.error:
            return timing
        if self.first == 0:
            timing.error = ("the stream carried no content token" if self.content_only
                            else "the stream carried no content or reasoning token")
            return timing
        timing.ok = True
        timing.ttft_ns = self.first - timing.start_ns
        timing.e2e_ns = self.last - timing.start_ns
        timing.output_tokens = int((self.usage or {}).get("completion_tokens") or timing.token_chunks)
        timing.prompt_tokens = int((self.usage or {}).get("prompt_tokens") or 0)
        return timing


_JSON_HEADERS = {"content-type": "application/json"}


def time_request(client: httpx.Client, payload: bytes, path: str = CHAT_PATH,
                 first_token: Literal["any", "content"] = "any") -> RequestTiming:
    """Send one streaming request and time it (see the module docstring for the definitions).
    ``first_token="content"`` counts only answer text as a token (not ``reasoning_content``)."""
    timer = _StreamTimer(time.perf_counter_ns(), first_token)
    try:
        with client.stream("POST", path, content=payload, headers=_JSON_HEADERS) as r:
            if r.status_code != 200:
                r.read()
                return timer.fail(f"HTTP {r.status_code}: {r.text[:300]}")
            for data in r.iter_raw():
                if timer.feed(data, time.perf_counter_ns()):
                    break
    except (httpx.HTTPError, ValueError) as exc:
        return timer.fail(f"{type(exc).__name__}: {exc}")
    return timer.result()


def make_client(base_url: str, api_key: str | None = None, timeout: float = 600.0,
                concurrency: int = 1, keepalive: bool = True) -> httpx.Client:
    """An httpx client with TCP_NODELAY (as :func:`pytest_lfm.server.http.make_http_client`) and a pool
    large enough for ``concurrency`` streams. ``keepalive=False`` opens a new connection for every request
    (as bench_serving's aiohttp session per request); the connect time then counts in TTFT, as there."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    keep = concurrency + 4 if keepalive else 0
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=keep)
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)], limits=limits)
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)


# ------------------------------------------------------------------------------------------ running


class Progress:
    """A thread-safe progress bar on stderr (tqdm), or nothing when disabled."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        from tqdm import tqdm

        self.total, self.label = total, label
        self.enabled = enabled and total > 0
        self.done = 0
        self._lock = threading.Lock()
        self._bar = tqdm(total=total, desc=label, unit="req", file=sys.stderr, leave=True,
                         disable=not self.enabled, dynamic_ncols=True)

    def update(self) -> None:
        """One request finished."""
        with self._lock:
            self.done += 1
            self._bar.update(1)

    def close(self) -> None:
        """End the bar."""
        self._bar.close()


_READ_BUFSIZE = 10 * 1024**2  # bench_serving's aiohttp read buffer (10 MB): a busy loop never stalls a stream


async def time_request_aiohttp(session: aiohttp.ClientSession, url: str, payload: bytes, headers: Mapping[str, str],
                               first_token: Literal["any", "content"] = "any") -> RequestTiming:
    """:func:`time_request` with bench_serving's own HTTP client (aiohttp), on an event loop."""
    timer = _StreamTimer(time.perf_counter_ns(), first_token)
    try:
        async with session.post(url, data=payload, headers={**_JSON_HEADERS, **headers}) as r:
            if r.status != 200:
                return timer.fail(f"HTTP {r.status}: {(await r.text())[:300]}")
            async for data in r.content.iter_any():
                if timer.feed(data, time.perf_counter_ns()):
                    break
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return timer.fail(f"{type(exc).__name__}: {exc}")
    return timer.result()


def run_requests(client: httpx.Client, payloads: Callable[[int], bytes], count: int, concurrency: int,
                 progress: Progress | None = None, path: str = CHAT_PATH,
                 first_token: Literal["any", "content"] = "any", keepalive: bool = True) -> tuple[list[RequestTiming], float]:
    """Send ``count`` requests, ``concurrency`` in flight at a time (closed loop); return the timings in
    request order and the wall time in seconds from the first send to the last completion.

    As bench_serving: one asyncio event loop in this thread, every request a task created in order and
    waiting on a semaphore of ``concurrency`` slots, sent with aiohttp (a session, so a new connection, per
    request unless ``keepalive``; ``client`` gives the base URL, the Authorization header and the timeout).
    A client on a mock transport (tests) is timed by :func:`time_request` in worker threads instead.
    ``payloads(i)`` builds request ``i``'s body before its timer starts. (A thread per stream measured
    higher ITL and TPOT than bench_serving at concurrency 64 — GIL hand-offs between 64 readers — and lower
    TTFT at 16: docs/runs/2026-12-02-cpu-reference-side-by-side.)
    """
    return asyncio.run(_run_requests(client, payloads, count, concurrency, progress, path, first_token, keepalive))


async def _run_requests(client: httpx.Client, payloads: Callable[[int], bytes], count: int, concurrency: int,
                        progress: Progress | None, path: str, first_token: Literal["any", "content"],
                        keepalive: bool) -> tuple[list[RequestTiming], float]:
    results: list[RequestTiming | None] = [None] * count
    slots = asyncio.Semaphore(max(1, concurrency))
    async with _sender(client, path, first_token, keepalive) as send:

        async def one(i: int) -> None:
            async with slots:
                results[i] = await send(payloads(i))
                if progress is not None:
                    progress.update()

        t0 = time.perf_counter_ns()
        await asyncio.gather(*(one(i) for i in range(count)))
        duration = (time.perf_counter_ns() - t0) / 1e9
    return [r if r is not None else RequestTiming(ok=False, error="not sent") for r in results], duration


Send = Callable[[bytes], Awaitable[RequestTiming]]


@asynccontextmanager
async def _sender(client: httpx.Client, path: str, first_token: Literal["any", "content"],
                  keepalive: bool) -> AsyncIterator[Send]:
    """How :func:`run_requests` sends one body: aiohttp for a real server (see there), the synchronous timer in
    a worker thread for a client on a mock transport."""
    if not isinstance(getattr(client, "_transport", None), httpx.HTTPTransport):
        async def threaded(body: bytes) -> RequestTiming:
            return await asyncio.to_thread(time_request, client, body, path, first_token)
        yield threaded
        return
    url = str(client.base_url.join(path))
    headers = {k: v for k, v in client.headers.items() if k.lower() == "authorization"}
    timeout = aiohttp.ClientTimeout(total=client.timeout.read or None)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=timeout, read_bufsize=_READ_BUFSIZE)

    if keepalive:
        async with session() as shared:
            yield lambda body: time_request_aiohttp(shared, url, body, headers, first_token)
        return

    async def fresh(body: bytes) -> RequestTiming:
        async with session() as own:
            return await time_request_aiohttp(own, url, body, headers, first_token)
    yield fresh


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
                          "token_chunks": r.token_chunks, "itl_ms": [g / 1e6 for g in r.itl_ns],
                          "error": r.error} for r in self.requests],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """The result :meth:`to_dict` wrote (e.g. to draw its plot on another machine)."""
        wl = dict(data["workload"])
        if isinstance(wl.get("image_size"), list):
            wl["image_size"] = tuple(wl["image_size"])
        reqs = []
        for r in data["requests"]:
            ttft, e2e = int(r["ttft_ms"] * 1e6), int(r["e2e_ms"] * 1e6)
            reqs.append(RequestTiming(ok=r["ok"], ttft_ns=ttft, e2e_ns=e2e,
                                      itl_ns=[int(g * 1e6) for g in r.get("itl_ms") or ()],
                                      output_tokens=r["output_tokens"], prompt_tokens=r["prompt_tokens"],
                                      token_chunks=r["token_chunks"], error=r["error"]))
        return cls(base_url=data["base_url"], model=data["model"], workload=Workload(**wl), requests=reqs,
                   duration_s=float(data["summary"]["duration_s"]), notes=list(data["notes"]),
                   variant=data.get("variant"), hardware=data.get("hardware"))

    def write(self, out_dir: Path | str, stem: str = "bench") -> list[Path]:
        """Write ``STEM.json`` and, with matplotlib installed, ``STEM.png`` (the latency plot) into
        ``out_dir``; return the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{stem}.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, default=_nan_safe) + "\n", encoding="utf-8")
        png = plot_latency(self, out / f"{stem}.png")
        return [path] if png is None else [path, png]


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


PLOT_MISSING = "no latency plot: matplotlib is not installed (pip install 'pytest-lfm[plot]')"


def plot_latency(result: BenchResult, path: Path | str) -> Path | None:
    """Draw the latency plot with matplotlib (the ``[plot]`` extra): one CDF panel each for TTFT, TPOT, ITL
    and end-to-end latency, with mean, p50, p90 and p99 marked. Returns None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    panels = [("TTFT", result.ttft_ms()), ("TPOT", result.tpot_ms()), ("ITL", result.itl_ms()),
              ("End-to-end latency", result.e2e_ms())]
    w = result.workload
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), layout="constrained")
    model = result.model.rstrip("/").rsplit("/", 1)[-1] if result.model.startswith("/") else result.model
    who = f"{result.variant} ({model})" if result.variant else model
    fig.suptitle(f"{who} at {result.base_url}\n"
                 f"in {w.input_len} / out {w.output_len} tokens, concurrency {w.concurrency}, "
                 f"{len(result.ok)} requests ({len(result.failed)} failed), "
                 f"{result.summary()['output_throughput']:.0f} output tok/s", fontsize=11)
    marks = (("p50", 50, "tab:green", "--"), ("p90", 90, "tab:orange", "-."), ("p99", 99, "tab:red", ":"))
    for ax, (title, values) in zip(axes.flat, panels, strict=True):
        ax.set_title(f"{title}: cumulative distribution", fontsize=10)
        ax.set_xlabel(f"{title} (ms)")
        ax.set_ylabel("fraction of requests" if title != "ITL" else "fraction of token gaps")
        ax.grid(True, alpha=0.3)
        if not values:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="gray")
            continue
        data = np.sort(np.asarray(values, dtype=float))
        ax.step(data, np.arange(1, len(data) + 1) / len(data), where="post", color="tab:blue", lw=1.8,
                label=f"mean {data.mean():.2f} ms")
        for name, q, colour, style in marks:
            ax.axvline(percentile(data, q), color=colour, ls=style, lw=1.2,
                       label=f"{name} {percentile(data, q):.2f} ms")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    out = Path(path)
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
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


WARMUP_OUTPUT_CAP = 32  # bench_serving's warm-up requests ask for min(output_len, 32) tokens
WARMUP_PAUSE_S = 1.0  # and it sleeps 1 s between the warm-up and the timed run


def workload_prompts(http: httpx.Client, model: str, workload: Workload,
                     tokenizer: PromptTokenizer | None = None) -> PromptSet:
    """The timed prompts (``num_prompts``, plus ``warmup`` more for ``warmup_mode="distinct"``).

    ``random-ids`` needs a tokenizer: the one given, else ``workload.tokenizer`` or the server's
    ``/model_info`` path loaded with ``transformers``; when none loads, the ``words`` dataset is used and
    its note says why.
    """
    count = workload.num_prompts + (workload.warmup if workload.warmup_mode == "distinct" else 0)
    fallback = ""
    if workload.dataset == "random-ids":
        if tokenizer is None:
            name = workload.tokenizer or server_tokenizer_path(http)
            if name is None:
                fallback = "the server's /model_info names no tokenizer and --tokenizer was not given"
            else:
                try:
                    tokenizer = load_tokenizer(name)
                except RuntimeError as exc:
                    fallback = str(exc)
        if tokenizer is not None:
            return random_id_prompts(tokenizer, count, workload.input_len, workload.seed)
    words = make_prompts(http, model, count, workload.input_len, workload.seed)
    if fallback:
        words.note = f"NOT bench_serving's random-ids prompts ({fallback}); random words instead: {words.note}"
    return words


def run_benchmark(base_url: str, workload: Workload, *, model: str | None = None, api_key: str | None = None,
                  progress: bool = False, variant: str | None = None, hardware: str | None = None,
                  client: httpx.Client | None = None, tokenizer: PromptTokenizer | None = None) -> BenchResult:
    """Run one workload against one server: build the prompts, warm up, then time ``num_prompts`` requests
    (the module docstring gives each step's definition)."""
    own = client is None
    keepalive = workload.connection == "pooled"
    warm_slots = workload.warmup if workload.warmup_mode == "bench_serving" else workload.concurrency
    http = client or make_client(base_url, api_key, workload.timeout,
                                 max(workload.concurrency, warm_slots), keepalive=keepalive)
    try:
        model = model or served_model(http)
        prompt_set = workload_prompts(http, model, workload, tokenizer)
        notes = [prompt_set.note]
        if workload.image:
            notes.append(f"one {workload.image_size[0]}x{workload.image_size[1]} JPEG per request, distinct per request")
        if workload.connection == "per-request":
            notes.append("a new connection per request (as bench_serving); the connect time counts in TTFT")
        if workload.first_token == "content":
            notes.append("TTFT counts answer text only (bench_serving 0.5.17 counts reasoning_content too)")

        def payload(offset: int, output_len: int) -> Callable[[int], bytes]:
            def build(i: int) -> bytes:
                k = offset + i
                image = make_image_data_url(workload.seed * 100003 + k, workload.image_size) if workload.image else None
                return chat_payload(model, prompt_set.prompts[k], output_len, image)
            return build

        timed_offset = 0
        if workload.warmup and workload.warmup_mode == "bench_serving":
            notes.append(f"warm-up as bench_serving: {workload.warmup} copies of the first timed prompt with "
                         f"{min(workload.output_len, WARMUP_OUTPUT_CAP)} output tokens, all at once, then "
                         f"{WARMUP_PAUSE_S:g} s pause")
            bar = Progress(workload.warmup, "warm-up", progress)
            warm, _ = run_requests(http, lambda _i: payload(0, min(workload.output_len, WARMUP_OUTPUT_CAP))(0),
                                   workload.warmup, workload.warmup, bar, first_token=workload.first_token,
                                   keepalive=keepalive)
            bar.close()
            if not any(r.ok for r in warm):
                raise RuntimeError(f"every warm-up request failed: {warm[0].error}")
            time.sleep(WARMUP_PAUSE_S)
        elif workload.warmup:
            notes.append(f"warm-up: {workload.warmup} other prompts at concurrency {workload.concurrency}")
            bar = Progress(workload.warmup, "warm-up", progress)
            run_requests(http, payload(workload.num_prompts, workload.output_len), workload.warmup,
                         workload.concurrency, bar, first_token=workload.first_token, keepalive=keepalive)
            bar.close()
        bar = Progress(workload.num_prompts, f"c={workload.concurrency}", progress)
        timings, duration = run_requests(http, payload(timed_offset, workload.output_len), workload.num_prompts,
                                         workload.concurrency, bar, first_token=workload.first_token, keepalive=keepalive)
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
    ap.add_argument("--seed", type=int, default=42, help="prompt seed (bench_serving's --seed, default 42)")
    ap.add_argument("--dataset", choices=("random-ids", "words"), default="random-ids",
                    help="random-ids: bench_serving's --dataset-name random-ids prompts, built with the model's "
                         "tokenizer (needs transformers; falls back to words, with a note, when none loads); "
                         "words: random English words calibrated with /v1/tokenize")
    ap.add_argument("--tokenizer", default=None, metavar="PATH",
                    help="tokenizer for random-ids (default: the server's /model_info tokenizer_path or model_path)")
    ap.add_argument("--warmup-mode", choices=("bench_serving", "distinct"), default="bench_serving",
                    help="bench_serving: --warmup copies of the first prompt, min(output-len, 32) tokens, all at "
                         "once, then 1 s pause; distinct: other prompts at the timed concurrency")
    ap.add_argument("--first-token", choices=("any", "content"), default="any",
                    help="what counts as the first token for TTFT: any (content or reasoning_content, as "
                         "bench_serving 0.5.17) or content (answer text only)")
    ap.add_argument("--connection", choices=("per-request", "pooled"), default="per-request",
                    help="per-request: a new connection per request (as bench_serving); pooled: keep-alive")
    ap.add_argument("--timeout", type=float, default=600.0, help="per-request timeout in seconds")
    ap.add_argument("--out", default=None, metavar="DIR", help="write bench-cN.json and bench-cN.png (the "
                    "latency plot, with the [plot] extra) here")
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
                      warmup=args.warmup, concurrency=c, image=args.image, seed=args.seed, timeout=args.timeout,
                      dataset=args.dataset, tokenizer=args.tokenizer, warmup_mode=args.warmup_mode,
                      first_token=args.first_token, connection=args.connection)
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
            if len(paths) == 1:
                print(PLOT_MISSING)
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
