"""Launch mode: start SGLang from the verified recipe, wait until it is ready, and tear it down.

:class:`LaunchedServer` owns one server process group: a free port, a per-variant log file, readiness that
polls ``/health_generate`` *and* the process on every round (failing at once with the exit code and the
last log lines when the process exits), and a stop that sends SIGTERM to the group, waits, then SIGKILLs.
:func:`launch_many` starts one server per variant in parallel and stops all of them if any fails.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pytest_lfm.errors import ServerUnavailable
from pytest_lfm.hardware import Hardware
from pytest_lfm.recipe import Recipe, build_recipe
from pytest_lfm.redaction import redact_text as redact
from pytest_lfm.redaction import secret_values
from pytest_lfm.server.process import spawn_group, stop_group
from pytest_lfm.variants import Variant

TAIL_LINES = 50
DEFAULT_STARTUP_TIMEOUT = 600.0
DEFAULT_GRACE = 10.0
POLL_INTERVAL = 0.5
READY_PATHS = ("/health_generate", "/health")


class LaunchFailed(ServerUnavailable):
    """A launched SGLang server exited during start-up or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path | str | None, n: int = TAIL_LINES, secrets: Sequence[str] = ()) -> str:
    """The last ``n`` lines of a log file, secrets redacted ('' when there is no file)."""
    if path is None:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = deque(fh, maxlen=n)
    except OSError:
        return ""
    return redact("".join(lines), secrets).rstrip("\n")


def pid_alive(pid: int | None) -> bool:
    """True while a process with this pid exists (it may belong to another run; used by xdist workers)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; treat it as dead.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class LaunchedServer:
    """One SGLang server started by this run for one variant."""

    variant: Variant
    hardware: Hardware
    framing: str = "python"
    command: Sequence[str] = ("sglang",)
    version: str | None = None
    model_path: str | None = None
    image: str | None = None
    extra_args: Sequence[str] = ()
    api_key: str | None = None
    log_dir: Path = field(default_factory=lambda: Path("."))
    host: str = "127.0.0.1"
    port: int = 0
    grace: float = DEFAULT_GRACE
    environ: Mapping[str, str] | None = None
    recipe: Recipe | None = None
    proc: subprocess.Popen[Any] | None = None
    log_path: Path | None = None
    container: str | None = None
    returncode: int | None = None
    started_at: float = 0.0
    ready_after: float | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` of the server."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The process-group leader's pid, once started."""
        return self.proc.pid if self.proc else None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed (HF_TOKEN, API keys, ...)."""
        return secret_values(os.environ if self.environ is None else self.environ, [self.api_key])

    def start(self) -> None:
        """Build the recipe for a free port and start it in its own process group (returns at once)."""
        if not self.port:
            self.port = free_port(self.host)
        if self.framing == "docker":
            self.container = f"lfm-{_slug(self.variant.id)}-{os.getpid()}-{self.port}"
        self.recipe = build_recipe(
            self.variant, self.hardware, framing=self.framing, version=self.version,
            port=self.port, host=self.host if self.framing == "python" else "0.0.0.0",
            model_path=self.model_path, image=self.image, extra_args=self.extra_args, command=self.command,
            api_key=self.api_key, container_name=self.container, environ=self.environ,
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"sglang-{_slug(self.variant.id)}.log"
        env = dict(os.environ if self.environ is None else self.environ)
        env.update(self.recipe.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(self.log_path, "w", encoding="utf-8") as log:
            log.write(f"# pytest-lfm launched {self.variant.id} on {self.hardware.id}: {self.recipe.shell()}\n")
            log.flush()
            try:
                self.proc = spawn_group(self.recipe.argv, env=env, stdout=log, die_with_parent=True)
            except OSError as exc:
                raise LaunchFailed(
                    f"could not start SGLang for {self.variant.id}: {exc.strerror or exc}",
                    tried=[self.recipe.shell()],
                    remedy=_remedy(self.framing),
                ) from None
        self.started_at = time.monotonic()

    def poll_ready(self, client: httpx.Client) -> bool:
        """One readiness round: raise if the process exited, True once the health endpoint answers 200."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            self.returncode = code
            self._fail(f"SGLang for {self.variant.id} exited with code {code} during start-up")
        for path in READY_PATHS:
            try:
                resp = client.get(self.base_url + path, timeout=5.0)
            except httpx.HTTPError:
                return False
            if resp.status_code == 200:
                self.ready_after = time.monotonic() - self.started_at
                return True
            if resp.status_code != 404:  # /health_generate exists but is not healthy yet
                return False
        return False

    def wait_ready(self, timeout: float = DEFAULT_STARTUP_TIMEOUT) -> None:
        """Poll until ready; fail fast when the process exits; stop it and raise on timeout."""
        wait_all([self], timeout)

    def alive(self) -> bool:
        """True while the server's process is running."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = TAIL_LINES) -> str:
        """The last ``n`` lines of the server log, secrets redacted."""
        return tail(self.log_path, n, self.secrets)

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL after ``grace``; for docker also ``docker kill`` the container."""
        if self.proc is None:
            return
        code = stop_group(self.proc, self.grace)
        if self.returncode is None:
            self.returncode = code
        if self.container and shutil.which("docker"):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(["docker", "kill", self.container], capture_output=True, timeout=30, check=False)

    def info(self) -> dict[str, Any]:
        """Plain data for xdist workers (they attach to the server, they do not own it)."""
        return {"variant": self.variant.id, "hardware": self.hardware.id, "base_url": self.base_url,
                "log_path": str(self.log_path) if self.log_path else None, "pid": self.pid,
                "command": self.recipe.shell() if self.recipe else ""}

    def _fail(self, message: str, extra: Sequence[str] = ()) -> None:
        assert self.recipe is not None
        log_tail = self.log_tail()
        self.stop()
        tried = [f"command: {self.recipe.shell()}", *extra, f"log: {self.log_path}"]
        text = f"{message}.\nLast {TAIL_LINES} log lines:\n{log_tail or '(empty)'}"
        raise LaunchFailed(text, tried=tried, remedy=_remedy(self.framing))


def wait_all(servers: Sequence[LaunchedServer], timeout: float) -> None:
    """Wait for every server in one loop: the first exit or the timeout fails the whole start."""
    pending = list(servers)
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False) as client:
        while pending:
            for server in list(pending):
                if server.poll_ready(client):
                    pending.remove(server)
            if not pending:
                return
            if time.monotonic() >= deadline:
                server = pending[0]
                server._fail(
                    f"SGLang for {server.variant.id} was not ready after {timeout:g} s "
                    f"(GET {server.base_url}{READY_PATHS[0]} never answered 200)",
                    [f"waited {timeout:g} s; raise it with --lfm-startup-timeout (weights are downloaded "
                     "on first start)"],
                )
            time.sleep(POLL_INTERVAL)


def launch_many(servers: Sequence[LaunchedServer], timeout: float) -> list[LaunchedServer]:
    """Start all servers, then wait for all; on any failure (or Ctrl-C) stop every one and re-raise."""
    try:
        for server in servers:
            server.start()
        wait_all(servers, timeout)
    except BaseException:
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        raise
    return list(servers)


def split_command(value: str | None) -> list[str]:
    """``--lfm-sglang-command`` as argv (shell-style quoting); default ``sglang``."""
    return shlex.split(value) if value and value.strip() else ["sglang"]


def sglang_version_of(command: Sequence[str], timeout: float = 20.0) -> str | None:
    """The SGLang version installed for ``command`` (a Python interpreter or a console script), if any."""
    interpreter: str | None = None
    first = shutil.which(command[0]) if command else None
    if first is None:
        return None
    if Path(first).name.startswith("python") and len(command) == 1:
        interpreter = first
    else:
        try:
            with open(first, "rb") as fh:
                head = fh.readline().decode("utf-8", "replace")
        except OSError:
            return None
        if head.startswith("#!") and "python" in head:
            parts = head[2:].split()
            interpreter = parts[1] if Path(parts[0]).name == "env" and len(parts) > 1 else parts[0]
    if interpreter is None:
        return None
    try:
        out = subprocess.run([interpreter, "-c", "import importlib.metadata as m; print(m.version('sglang'))"],
                             capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _remedy(framing: str) -> str:
    if framing == "docker":
        return ("check that docker and the NVIDIA container toolkit work (`docker run --gpus all ... nvidia-smi`), "
                "pick another image with --lfm-sglang-image, or read the log above")
    return ("check that SGLang is installed (`pip install \"sglang>=0.5.10\"`) or point --lfm-sglang-command at "
            "its executable or Python; use --lfm-framing=docker to run the lmsysorg/sglang image; read the log above")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)

