"""A tiny scriptable HTTP server for the plugin's own tests (health, info endpoints, canned JSON)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def fake_server(routes: dict[str, tuple[int, Any]]) -> Iterator[str]:
    """Serve ``routes`` ({path: (status, json body)}) on a loopback port; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            status, body = routes.get(self.path.split("?")[0], (404, {"detail": "Not Found"}))
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _answer
        do_POST = _answer

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def sglang_like(model_path: str, version: str = "0.5.17", healthy: bool = True) -> dict[str, tuple[int, Any]]:
    """Routes of a minimal SGLang-looking server serving ``model_path``."""
    return {
        "/health": (200 if healthy else 503, None),
        "/server_info": (200, {"version": version, "model_path": model_path, "tool_call_parser": "lfm2"}),
        "/model_info": (200, {"model_path": model_path}),
        "/v1/models": (200, {"object": "list", "data": [{"id": model_path, "object": "model"}]}),
    }
