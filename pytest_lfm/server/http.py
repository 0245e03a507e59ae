"""HTTP plumbing shared by fixtures and probes: clients with TCP_NODELAY, and the session-start probe."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from pytest_lfm.config import Secret
from pytest_lfm.errors import ServerUnavailable

PROBE_BUDGET_S = 8.0


def make_http_client(base_url: str, api_key: Secret | None = None, timeout: float = 120.0) -> httpx.Client:
    """An httpx client for a server (TCP_NODELAY, Bearer token when a key is configured)."""
    headers = {"Authorization": f"Bearer {api_key.get()}"} if api_key else {}
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(base_url=base_url, headers=headers, timeout=timeout, transport=transport)


@dataclass
class ProbeResult:
    """What a server said about itself at session start."""

    base_url: str
    server_info: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)

    @property
    def version(self) -> str | None:
        """The SGLang version from ``/server_info``."""
        v = self.server_info.get("version")
        return str(v) if v else None

    @property
    def model_path(self) -> str | None:
        """The served model path, from ``/model_info`` or ``/v1/models``."""
        for value in (self.model_info.get("model_path"), self.server_info.get("model_path"),
                      self.models[0] if self.models else None):
            if value:
                return str(value)
        return None


def _unauthorized(base_url: str, path: str, api_key: Secret | None, tried: list[str]) -> ServerUnavailable:
    """A 401: a wrong key and a missing key get different messages."""
    if api_key:
        return ServerUnavailable(f"{base_url} refused the API key that was given (401 on {path}): the key is wrong",
                                 tried=tried, remedy="pass the key the server was started with (its --api-key) "
                                                     "with --lfm-api-key or LFM_API_KEY")
    return ServerUnavailable(f"{base_url} needs an API key and none was given (401 on {path})", tried=tried,
                             remedy="pass the server's key with --lfm-api-key or LFM_API_KEY")


def probe(base_url: str, api_key: Secret | None = None, budget: float = PROBE_BUDGET_S) -> ProbeResult:
    """Check that a server is up and healthy and read its info, within ``budget`` seconds."""
    deadline = time.monotonic() + budget
    tried: list[str] = []
    result = ProbeResult(base_url=base_url)
    with make_http_client(base_url, api_key, timeout=max(1.0, budget / 3)) as client:
        try:
            resp = client.get("/health", timeout=min(5.0, max(0.5, deadline - time.monotonic())))
        except httpx.HTTPError as exc:
            tried.append(f"GET {base_url}/health: {type(exc).__name__}: {exc}")
            raise ServerUnavailable(
                f"cannot reach an SGLang server at {base_url}",
                tried=tried,
                remedy="start the server (e.g. `sglang serve --model-path LiquidAI/LFM2.5-1.2B-Instruct "
                "--port 30000 --tool-call-parser lfm2`) and check host and port, or run "
                "`pytest --lfm-server=reference` to use the bundled reference server",
            ) from None
        tried.append(f"GET /health: {resp.status_code}")
        if resp.status_code == 401:
            raise _unauthorized(base_url, "/health", api_key, tried)
        if resp.status_code in (404, 405):
            raise ServerUnavailable(
                f"{base_url} answers HTTP but has no /health endpoint (HTTP {resp.status_code}): it does not look "
                "like an SGLang server", tried=tried,
                remedy="check host and port: point --lfm-server at the SGLang server (`sglang serve ... --port N`)")
        if resp.status_code != 200:
            raise ServerUnavailable(f"the server at {base_url} is not healthy", tried=tried,
                                    remedy="wait until /health answers 200 (the server may still be loading)")
        for path, attr in (("/server_info", "server_info"), ("/model_info", "model_info")):
            try:
                r = client.get(path, timeout=max(0.5, deadline - time.monotonic()))
            except httpx.HTTPError as exc:
                tried.append(f"GET {path}: {type(exc).__name__}")
                continue
            tried.append(f"GET {path}: {r.status_code}")
            if r.status_code == 401:
                raise _unauthorized(base_url, path, api_key, tried)
            if r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json"):
                data = r.json()
                if isinstance(data, dict):
                    setattr(result, attr, data)
        try:
            r = client.get("/v1/models", timeout=max(0.5, deadline - time.monotonic()))
            if r.status_code == 200:
                result.models = [str(m.get("id")) for m in r.json().get("data", []) if isinstance(m, dict)]
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
    return result
