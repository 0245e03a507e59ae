"""A loopback HTTP server for the suite's fixture images (vision checks deliver images by URL, §6).

SGLang downloads ``http(s)://`` image URLs itself (3 s timeout, ``REQUEST_TIMEOUT``), so the images must
be reachable from the server under test. The plugin's image host (``--lfm-image-host``, default
127.0.0.1) is the name the server should use; when it is not a loopback address the server binds
0.0.0.0 so that a remote SGLang host can reach it. Nothing is downloaded from the internet.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
import time
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pytest_lfm.paths import fixtures_dir


def images_dir() -> Path:
    """The committed fixture images (``fixtures/images``)."""
    return fixtures_dir() / "images"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


SLOW_SECONDS = 12.0  # the /slow/ route's delay: 4x SGLang's 3 s image download timeout (REQUEST_TIMEOUT)


class _QuietHandler(SimpleHTTPRequestHandler):
    """The fixture files, plus routes for media-error checks (§6 loading):

    * ``/status/<code>/<name>``: answers HTTP ``<code>`` (e.g. 404, 500) with a short text body;
    * ``/slow/<name>``: sends ``<name>`` after :data:`SLOW_SECONDS` (slower than the server's timeout);
    * ``/truncated/<name>``: the first half of ``<name>``'s bytes (a valid header, truncated data).
    """

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) == 3 and parts[0] == "status" and parts[1].isdigit():
            code = int(parts[1])
            body = f"{code} {HTTPStatus(code).phrase}: no picture here\n".encode()
            self._send(code, body, "text/plain")
        elif len(parts) == 2 and parts[0] == "slow":
            time.sleep(SLOW_SECONDS)
            self.path = "/" + parts[1]
            try:
                super().do_GET()
            except OSError:  # the server under test gave up waiting (its timeout): nothing to do
                return
        elif len(parts) == 2 and parts[0] == "truncated":
            path = Path(self.directory) / parts[1]
            if not path.is_file():
                self._send(404, b"not found\n", "text/plain")
                return
            data = path.read_bytes()
            self._send(200, data[: len(data) // 2], self.guess_type(str(path)))
        else:
            super().do_GET()

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the server under test gave up (timeout): nothing to do
            return


class ImageServer:
    """Serve a directory over HTTP on a free port; URLs use the configured image host."""

    def __init__(self, directory: Path | None = None, image_host: str = "127.0.0.1") -> None:
        self.directory = directory or images_dir()
        self.image_host = image_host
        self.bind_host = "127.0.0.1" if is_loopback(image_host) else "0.0.0.0"
        handler = functools.partial(_QuietHandler, directory=str(self.directory))
        self._httpd = ThreadingHTTPServer((self.bind_host, 0), handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    def start(self) -> ImageServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lfm-image-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        """``http://IMAGE_HOST:PORT``."""
        host = f"[{self.image_host}]" if ":" in self.image_host else self.image_host
        return f"http://{host}:{self.port}"

    def url(self, name: str) -> str:
        """The URL of one fixture image (or of a route of :class:`_QuietHandler`, e.g. ``status/404/red.png``)."""
        return f"{self.base_url}/{name}"

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def closed_port(host: str = "127.0.0.1") -> int:
    """A loopback port with nothing listening: bind, read the port, close (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
