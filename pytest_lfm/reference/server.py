"""Run the reference server: in a background thread of this process (the plugin's default), or as a
foreground process (``python -m pytest_lfm.reference``)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterable

import uvicorn

from pytest_lfm.reference.app import create_app
from pytest_lfm.reference.faults import Faults
from pytest_lfm.reference.state import ServerState
from pytest_lfm.variants import get_variant


class ReferenceServer:
    """One reference server for one variant, on a loopback port."""

    def __init__(self, variant_id: str, *, host: str = "127.0.0.1", port: int = 0, faults: Iterable[str] = (),
                 api_key: str | None = None, version: str = "0.5.23", context_length: int | None = None,
                 parsers: str = "project", sglang_dir: str | None = None, hardware: str | None = None,
                 ttft_delay_ms: float = 0.0, tpot_delay_ms: float = 0.0, stream_interval: int = 1,
                 sampling_defaults: dict[str, float] | None = None) -> None:
        if stream_interval < 1:
            raise ValueError(f"stream_interval must be at least 1 token per chunk, got {stream_interval}")
        self.state = ServerState(variant=get_variant(variant_id), version=version, faults=Faults(faults),
                                 api_key=api_key, context_length=context_length,
                                 ttft_delay_ms=ttft_delay_ms, tpot_delay_ms=tpot_delay_ms,
                                 stream_interval=stream_interval, sampling_defaults=sampling_defaults)
        self.state.hardware = hardware
        if parsers == "sglang":
            # a real SGLang release's parser code; its version replaces the emulated one (case gates)
            from pytest_lfm.reference.upstream import UpstreamParsers, UpstreamParsersError

            if not sglang_dir:
                raise UpstreamParsersError(
                    "--parsers sglang needs the directory of an installed sglang tree",
                    tried=["--sglang-dir", "LFM_SGLANG_PARSERS_DIR"],
                    remedy="install one with scripts/install_sglang_parsers.sh VERSION DIR and pass --sglang-dir DIR")
            upstream = UpstreamParsers(sglang_dir)
            self.state.parsers = upstream
            self.state.version = upstream.version
        elif parsers != "project":
            raise ValueError(f"unknown parsers {parsers!r}: expected 'project' or 'sglang'")
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` once started."""
        return f"http://{self.host}:{self.port}"

    def _config(self, sock_port: int) -> uvicorn.Config:
        return uvicorn.Config(create_app(self.state), host=self.host, port=sock_port, log_level="warning",
                              access_log=False, lifespan="off", timeout_graceful_shutdown=1)

    def start(self, timeout: float = 10.0) -> ReferenceServer:
        """Start serving in a daemon thread and wait until the socket accepts connections."""
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and without
        # it every keep-alive POST waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(self._config(self.port))
        # uvicorn must not take over the signals of the process it runs in (a thread of pytest's process)
        setattr(server, "install_signal_handlers", lambda: None)  # noqa: B010
        self._server = server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                        name=f"lfm-reference-{self.state.variant.id}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"reference server for {self.state.variant.id} did not start on {self.base_url}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self, announce: bool = False, watch_parent: bool = False) -> None:
        """Serve in the foreground until interrupted.

        With ``announce``, print ``LFM_REFERENCE_READY port=N`` once the socket listens (port 0 picks a
        free port). With ``watch_parent``, exit as soon as the parent process is gone, so that a
        crashed or killed pytest run leaves no server behind.
        """
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is TCP, and without
        # it every keep-alive POST waits ~40 ms for a delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(512)
        self.port = sock.getsockname()[1]
        if watch_parent:
            _watch_parent()
        if announce:
            print(f"LFM_REFERENCE_READY port={self.port}", flush=True)
        uvicorn.Server(self._config(self.port)).run(sockets=[sock])


def _watch_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="lfm-parent-watch", daemon=True).start()
