"""Start the bundled reference server as child processes, one per variant, and stop them."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping

from pytest_lfm.errors import ServerUnavailable
from pytest_lfm.server.process import spawn_group, stop_group

READY = "LFM_REFERENCE_READY port="
OUTPUT_TAIL_LINES = 200  # lines of the server's output kept after start-up (for error messages)


class ReferenceProcess:
    """``python -m pytest_lfm.reference`` on a free loopback port, in its own process group."""

    def __init__(self, variant_id: str, faults: Iterable[str] = (), api_key: str | None = None,
                 version: str | None = None, sglang_dir: str | None = None, hardware: str | None = None,
                 stream_interval: int = 1, sampling_defaults: Mapping[str, float] | None = None) -> None:
        self.variant_id = variant_id
        self.sampling_defaults = dict(sampling_defaults) if sampling_defaults else None  # --sampling-defaults
        self.stream_interval = stream_interval  # tokens per stream chunk (SGLang's --stream-interval)
        self.hardware = hardware  # reported in /server_info's resolved backends
        self.faults = list(faults)
        self.api_key = api_key
        self.version = version
        self.sglang_dir = sglang_dir  # set: parse with that installed SGLang release's own parser code
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.cmd: list[str] = []
        # The server's output after the READY line, drained by a thread so that the child never blocks on a
        # full pipe (tracebacks of failing requests add up); the last lines are kept for diagnosis.
        self.output_tail: deque[str] = deque(maxlen=OUTPUT_TAIL_LINES)
        self._drainer: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` once started."""
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process (returns at once; :meth:`wait_ready` waits)."""
        cmd = [sys.executable, "-m", "pytest_lfm.reference", "--variant", self.variant_id, "--port", "0",
               "--announce", "--watch-parent"]
        for f in self.faults:
            cmd += ["--fault", f]
        if self.version:
            cmd += ["--sglang-version", self.version]
        if self.sglang_dir:
            cmd += ["--parsers", "sglang", "--sglang-dir", self.sglang_dir]
        if self.hardware:
            cmd += ["--hardware", self.hardware]
        if self.stream_interval != 1:
            cmd += ["--stream-interval", str(self.stream_interval)]
        if self.sampling_defaults:
            cmd += ["--sampling-defaults", json.dumps(self.sampling_defaults)]
        env = dict(os.environ)
        if self.api_key:
            cmd += ["--api-key-env", "LFM_REFERENCE_API_KEY"]  # never in argv
            env["LFM_REFERENCE_API_KEY"] = self.api_key
        self.cmd = cmd
        self.proc = spawn_group(cmd, env=env, stdout=subprocess.PIPE)

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

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
        if self.proc is not None:
            stop_group(self.proc, grace)


def start_many(variant_ids: Iterable[str], faults: Iterable[str] = (), api_key: str | None = None,
               version: str | None = None, sglang_dir: str | None = None,
               hardware: str | None = None) -> list[ReferenceProcess]:
    """Start one reference server per variant, in parallel; on any failure stop them all."""
    procs = [ReferenceProcess(v, faults, api_key, version, sglang_dir, hardware) for v in variant_ids]
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
