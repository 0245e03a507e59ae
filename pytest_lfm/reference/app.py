"""The ASGI app of the reference server (FastAPI, as SGLang's own HTTP server is)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from pytest_lfm.reference import hooks, serving
from pytest_lfm.reference.state import ServerState
from pytest_lfm.reference.validation import ClientError, error_response
from pytest_lfm.reference.vision import MediaError

_OPEN_PATHS = {"/health", "/health_generate", "/ready", "/metrics"}


def create_app(state: ServerState) -> FastAPI:
    """Build the app for one served variant."""
    app = FastAPI(title="pytest-lfm reference server", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.lfm = state

    @app.middleware("http")
    async def auth(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if state.api_key and request.url.path not in _OPEN_PATHS:
            if request.headers.get("authorization", "") != f"Bearer {state.api_key}":
                return JSONResponse({"error": "Unauthorized"}, status_code=401)
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> Response:
        return error_response(f"Invalid request: {exc.errors()}", type_="Bad Request")

    async def body_of(request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "")
        if "application/json" not in ctype:
            raise ClientError("Unsupported Media Type: Only 'application/json' is allowed", type_="Bad Request")
        raw = await request.body()
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ClientError(f"JSON decode error: {exc}", type_="Bad Request") from exc
        if not isinstance(data, dict):
            raise ClientError("Input should be a valid dictionary or object", type_="Bad Request")
        return data

    async def handle(request: Request, fn: Callable[[dict[str, Any], ServerState], Any],
                     stream_fn: Callable[[dict[str, Any], ServerState], Iterator[Any]] | None = None) -> Response:
        # Requests run concurrently: the work in a worker thread, the SSE writing on the event loop. Each
        # holds a decode slot until its last byte is written (the stream's generator frees it).
        slot = state.slots.acquire()
        released = False
        streaming = False

        def in_slot(call: Callable[[], Any]) -> Any:
            with state.slots.bound(slot):
                return call()

        try:
            body = await body_of(request)
            streaming = stream_fn is not None and bool(body.get("stream"))
            if stream_fn is not None and body.get("stream"):
                events = await run_in_threadpool(in_slot, lambda: list(stream_fn(body, state)))
                released = True
                return StreamingResponse(_sse(events, state, lambda: state.slots.release(slot)),
                                         media_type="text/event-stream")
            result = await run_in_threadpool(in_slot, lambda: fn(body, state))
            return JSONResponse(result)
        except MediaError as exc:
            err = serving.media_error(exc, state)
            if streaming:
                err = state.hooks(hooks.STREAM_MEDIA_ERROR, err)
            return error_response(err.message, err.type_, err.status)
        except ClientError as exc:
            err = state.hooks(hooks.CLIENT_ERROR, exc)
            return error_response(err.message, err.type_, err.status)
        finally:
            if not released:
                state.slots.release(slot)

    @app.get("/health")
    @app.get("/health_generate")
    @app.get("/ready")
    async def health() -> Response:
        return Response(status_code=200)

    @app.get("/v1/models")
    async def models() -> Response:
        return JSONResponse(serving.models_list(state))

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> Response:
        if model_id != state.model_name:
            status, body = state.hooks(hooks.MODEL_NOT_FOUND, (404, {"error": {
                "message": f"The model '{model_id}' does not exist", "type": "invalid_request_error",
                "param": "model", "code": "model_not_found"}}))
            return JSONResponse(body, status_code=status)
        return JSONResponse(serving.models_list(state)["data"][0])

    @app.get("/server_info")
    @app.get("/get_server_info")
    async def server_info() -> Response:
        return JSONResponse(serving.server_info(state))

    @app.get("/model_info")
    @app.get("/get_model_info")
    async def model_info() -> Response:
        return JSONResponse(serving.model_info(state))

    @app.get("/get_weight_version")
    @app.get("/weight_version")
    async def weight_version() -> Response:
        return error_response("Endpoint '/get_weight_version' or '/weight_version' is deprecated. Please use "
                              "'/model_info' instead.", "404", 404)

    @app.get("/get_load")
    async def get_load() -> Response:
        busy = state.slots.in_flight
        return JSONResponse([{"dp_rank": 0, "num_reqs": busy, "num_waiting_reqs": 0, "num_tokens": 0,
                              "num_pending_tokens": 0, "ts_tic": time.time()}])

    @app.api_route("/flush_cache", methods=["GET", "POST"])
    async def flush_cache() -> Response:
        serving.flush_cache(state)
        return PlainTextResponse("Cache flushed.\nPlease check backend logs for more details. (When there are "
                                 "running or waiting requests, the operation will not be performed.)\n")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await handle(request, serving.chat_response, serving.chat_stream)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await handle(request, serving.completion_response, serving.completion_stream)

    @app.post("/parse_function_call")
    async def parse_function_call(request: Request) -> Response:
        return await handle(request, serving.parse_function_call)

    @app.post("/separate_reasoning")
    async def separate_reasoning(request: Request) -> Response:
        return await handle(request, serving.separate_reasoning)

    @app.post("/v1/tokenize")
    @app.post("/tokenize")
    async def tokenize(request: Request) -> Response:
        return await handle(request, serving.tokenize)

    return app


def _has_token(ev: Any) -> bool:
    """A chunk that carries generated output (content, reasoning, tool-call or completion text)."""
    if not isinstance(ev, dict):
        return False
    for ch in ev.get("choices") or ():
        delta = ch.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls") or ch.get("text"):
            return True
    return False


async def _sleep_until(loop: asyncio.AbstractEventLoop, due: float) -> None:
    """Wait until ``loop.time() >= due`` to within ~0.1 ms: asyncio rounds epoll timeouts up to whole
    milliseconds, so sleep to 1.5 ms before ``due`` and yield to other tasks for the rest."""
    wait = due - loop.time() - 0.0015
    if wait > 0:
        await asyncio.sleep(wait)
    while loop.time() < due:
        await asyncio.sleep(0)


async def _sse(events: list[Any], state: ServerState | None = None,
               done: Callable[[], None] | None = None) -> Any:
    try:
        async for line in _sse_lines(events, state):
            yield line
    finally:
        if done is not None:
            done()


async def _sse_lines(events: list[Any], state: ServerState | None) -> Any:
    ttft = state.ttft_delay_ms / 1000.0 if state is not None else 0.0
    tpot = state.tpot_delay_ms / 1000.0 if state is not None else 0.0
    loop = asyncio.get_running_loop()
    first: float | None = None
    tokens = 0
    start = loop.time()
    for ev in events:
        if (ttft > 0 or tpot > 0) and _has_token(ev):
            # an absolute schedule (first token at start + ttft, token k at first + k * tpot), so that the
            # time spent writing chunks and the timer's wake-up latency do not accumulate over a stream
            due = start + ttft if first is None else first + tokens * tpot
            first = start + ttft if first is None else first
            tokens += 1
            await _sleep_until(loop, due)
        if isinstance(ev, str):
            yield f"data: {ev}\n\n"
        else:
            yield "data: " + json.dumps(ev, ensure_ascii=False) + "\n\n"
