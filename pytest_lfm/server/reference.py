"""The bundled reference server as a child process: one per variant, on a free loopback port, in its own
process group.

:class:`ReferenceOptions` is the one description of a reference server. The plugin and the project's tests
start it as a process (:class:`ReferenceProcess`, ``python -m pytest_lfm.reference``: its own interpreter,
so it never shares pytest's GIL); :meth:`ReferenceOptions.server_kwargs` gives the same options to the
in-thread :class:`pytest_lfm.reference.server.ReferenceServer`, and :meth:`ReferenceOptions.argv` to the
command line. A test that needs a server with delays, an old version, fault modes, an API key or a real
SGLang release's parsers passes them here; none starts the process or reads its READY line by hand.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_lfm.errors import ServerUnavailable
from pytest_lfm.server.process import spawn_group, stop_group

if TYPE_CHECKING:
    from pytest_lfm.reference.server import ReferenceServer

READY = "LFM_REFERENCE_READY port="
API_KEY_ENV = "LFM_REFERENCE_API_KEY"
DEFAULT_VERSION = "0.5.23"
OUTPUT_TAIL_LINES = 200  # lines of the server's output kept after start-up (for error messages)


@dataclass(frozen=True)
class ReferenceOptions:
    """Everything a reference server can be started with (the ``python -m pytest_lfm.reference`` flags)."""

    variant_id: str
    faults: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    version: str | None = None
    """The SGLang release to emulate (None: the reference server's default, :data:`DEFAULT_VERSION`)."""
    sglang_dir: str | None = None
    """Set: parse with that installed SGLang release's own parser code (its version then wins)."""
    hardware: str | None = None
    """Reported in ``/server_info``'s resolved backends."""
    context_length: int | None = None
    ttft_delay_ms: float = 0.0
    tpot_delay_ms: float = 0.0
    stream_interval: int = 1
    """Tokens per stream chunk (SGLang's ``--stream-interval``)."""
    sampling_defaults: tuple[tuple[str, float], ...] = ()
    """Declared sampling defaults (``--sampling-defaults``: a checkpoint's generation_config)."""

    def argv(self) -> list[str]:
        """The command-line flags (the API key is not among them: see :meth:`env`)."""
        cmd = ["--variant", self.variant_id]
        for f in self.faults:
            cmd += ["--fault", f]
        if self.version:
            cmd += ["--sglang-version", self.version]
        if self.sglang_dir:
            cmd += ["--parsers", "sglang", "--sglang-dir", self.sglang_dir]
        if self.hardware:
            cmd += ["--hardware", self.hardware]
        if self.context_length is not None:
            cmd += ["--context-length", str(self.context_length)]
        if self.ttft_delay_ms:
            cmd += ["--ttft-delay-ms", str(self.ttft_delay_ms)]
        if self.tpot_delay_ms:
            cmd += ["--tpot-delay-ms", str(self.tpot_delay_ms)]
        if self.stream_interval != 1:
            cmd += ["--stream-interval", str(self.stream_interval)]
        if self.sampling_defaults:
            cmd += ["--sampling-defaults", json.dumps(dict(self.sampling_defaults))]
        if self.api_key:
            cmd += ["--api-key-env", API_KEY_ENV]  # never in argv
        return cmd

    def env(self) -> dict[str, str]:
        """The child's environment: ours plus the API key, which stays out of the process list."""
        env = dict(os.environ)
        if self.api_key:
            env[API_KEY_ENV] = self.api_key
        return env

    def server_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the in-thread ``ReferenceServer(variant_id, **kwargs)``."""
        return {"faults": self.faults, "api_key": self.api_key, "version": self.version or DEFAULT_VERSION,
                "context_length": self.context_length, "parsers": "sglang" if self.sglang_dir else "project",
                "sglang_dir": self.sglang_dir, "hardware": self.hardware,
                "ttft_delay_ms": self.ttft_delay_ms, "tpot_delay_ms": self.tpot_delay_ms,
                "stream_interval": self.stream_interval,
                "sampling_defaults": dict(self.sampling_defaults) or None}

    def in_thread(self) -> ReferenceServer:
        """The same server as a (not yet started) thread of this process, for tests that call it directly."""
        from pytest_lfm.reference.server import ReferenceServer

        return ReferenceServer(self.variant_id, **self.server_kwargs())


class ReferenceProcess:
    """``python -m pytest_lfm.reference`` on a free loopback port, in its own process group.

    Keyword arguments are the fields of :class:`ReferenceOptions`. Use :meth:`start` (or ``with``) to start
    it and wait until it listens; :meth:`spawn` plus :meth:`wait_ready` start several in parallel.
    """

    def __init__(self, variant_id: str, faults: Iterable[str] = (), api_key: str | None = None,
                 version: str | None = None, sglang_dir: str | None = None, hardware: str | None = None, *,
                 context_length: int | None = None, ttft_delay_ms: float = 0.0, tpot_delay_ms: float = 0.0,
                 stream_interval: int = 1, sampling_defaults: Mapping[str, float] | None = None) -> None:
        self.options = ReferenceOptions(variant_id, tuple(faults), api_key, version, sglang_dir, hardware,
                                        context_length, ttft_delay_ms, tpot_delay_ms, stream_interval,
                                        tuple((sampling_defaults or {}).items()))
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.cmd: list[str] = []
        # The server's output after the READY line, drained by a thread so that the child never blocks on a
        # full pipe (tracebacks of failing requests add up); the last lines are kept for diagnosis.
        self.output_tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
        self._drainer: threading.Thread | None = None

    @property
    def variant_id(self) -> str:
        """The variant it serves."""
        return self.options.variant_id

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process (returns at once; :meth:`wait_ready` waits)."""
        self.cmd = [sys.executable, "-m", "pytest_lfm.reference", *self.options.argv(), "--port", "0",
                    "--announce", "--watch-parent"]
        self.proc = spawn_group(self.cmd, env=self.options.env(), stdout=subprocess.PIPE)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Read the READY line; fail fast with the output if the process exits."""
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith(READY):
                    self.port = int(line[len(READY):].strip())
                    self._start_draining()
                    return
                if line:
                    seen.append(line.rstrip())
            if self.proc.poll() is not None and not ready:
                break
        self.stop()
        raise ServerUnavailable(
            f"the reference server for {self.variant_id} did not start",
            tried=[f"{' '.join(self.cmd)} (exit code {self.proc.returncode})", *seen[-20:]],
            remedy="check that pytest-lfm is installed with its dependencies (fastapi, uvicorn, numpy, pillow)",
        )

    def _start_draining(self) -> None:
        """Read the rest of the server's output in a daemon thread until the pipe closes."""
        assert self.proc is not None
        stream = self.proc.stdout

        def drain() -> None:
            try:
                for line in stream or ():
                    self.output_tail.append(line.rstrip("\n"))
            except (OSError, ValueError):  # the pipe was closed by stop()
                pass

        self._drainer = threading.Thread(target=drain, name=f"lfm-reference-output-{self.variant_id}", daemon=True)
        self._drainer.start()

    def start(self, timeout: float = 30.0) -> ReferenceProcess:
        """Spawn and wait until it listens."""
        self.spawn()
        self.wait_ready(timeout)
        return self

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
        if self.proc is not None:
            stop_group(self.proc, grace)

    def __enter__(self) -> ReferenceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_many(variant_ids: Sequence[str], faults: Iterable[str] = (), api_key: str | None = None,
               version: str | None = None, sglang_dir: str | None = None,
               hardware: str | None = None, stream_interval: int = 1) -> list[ReferenceProcess]:
    """Start one reference server per variant, in parallel; on any failure stop them all."""
    faults = tuple(faults)
    procs = [ReferenceProcess(v, faults, api_key, version, sglang_dir, hardware, stream_interval=stream_interval)
             for v in variant_ids]
    try:
        for p in procs:
            p.spawn()
        for p in procs:
            p.wait_ready()
    except BaseException:
        for p in procs:
            p.stop()
        raise
    return procs
