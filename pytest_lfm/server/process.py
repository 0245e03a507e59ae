"""Child-process plumbing shared by the reference server and launched SGLang servers.

Every server child starts in its own session (``start_new_session=True``), so that it and everything it
spawns (SGLang's scheduler and detokenizer processes) form one process group that :func:`stop_group`
ends with SIGTERM, a bounded wait, then SIGKILL (mirakuru's teardown). Children are also tagged with a
run-wide marker variable (:data:`MARKER_ENV`), so that :func:`sweep` finds and kills any process that left
the group (mirakuru's ``cleanup_subprocesses``). An ``atexit`` hook sweeps whatever is still registered, and
:func:`install_sigterm_handler` turns a SIGTERM of the pytest process into ``KeyboardInterrupt``, so that a
CI timeout gets the same orderly teardown as Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

MARKER_ENV = "LFM_SERVER_RUN"
RUN_TOKEN = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
_LIVE: set[subprocess.Popen[Any]] = set()
_LOCK = threading.Lock()


def _set_parent_death_signal() -> None:
    """Linux: SIGKILL the child when the thread that started it dies (covers a SIGKILLed pytest)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn_group(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, stdout: IO[Any] | int | None = None,
                stderr: IO[Any] | int | None = subprocess.STDOUT, text: bool = True,
                die_with_parent: bool = False, cwd: str | Path | None = None) -> subprocess.Popen[Any]:
    """Start ``cmd`` as the leader of a new process group, tagged with :data:`MARKER_ENV`, and register it."""
    child_env = dict(os.environ if env is None else env)
    child_env[MARKER_ENV] = RUN_TOKEN
    proc: subprocess.Popen[Any] = subprocess.Popen(
        list(cmd), stdout=stdout, stderr=stderr, text=text, env=child_env, cwd=cwd, start_new_session=True,
        preexec_fn=_set_parent_death_signal if die_with_parent else None,
    )
    with _LOCK:
        _LIVE.add(proc)
    return proc


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to a process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists (signal 0 probes without sending anything)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_group(proc: subprocess.Popen[Any], grace: float = 10.0) -> int | None:
    """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL it; returns the exit code.

    Stragglers of the group are killed even when the leader has already exited (a crashed SGLang can leave
    its scheduler behind). Never raises for processes that are already gone.
    """
    pgid = proc.pid
    if proc.poll() is None:
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    if group_alive(pgid):
        # The leader is gone but members remain: give them the same grace, then kill.
        _signal_group(pgid, signal.SIGTERM)
        deadline = grace
        while deadline > 0 and group_alive(pgid):
            threading.Event().wait(0.05)
            deadline -= 0.05
        _signal_group(pgid, signal.SIGKILL)
    with _LOCK:
        _LIVE.discard(proc)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    return proc.returncode


def marked_pids(token: str = RUN_TOKEN) -> list[int]:
    """Pids of live processes carrying ``MARKER_ENV=token`` in their environment (Linux ``/proc``)."""
    needle = f"{MARKER_ENV}={token}".encode()
    found: list[int] = []
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return found
    me = os.getpid()
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            data = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in data.split(b"\0"):
            found.append(int(entry.name))
    return found


def sweep(token: str = RUN_TOKEN) -> list[int]:
    """SIGKILL every registered child group and every process marked with ``token``; returns marked pids."""
    with _LOCK:
        live = list(_LIVE)
    for proc in live:
        with contextlib.suppress(Exception):
            stop_group(proc, grace=1.0)
    pids = marked_pids(token)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


_PREVIOUS_SIGTERM: Any = None


def install_sigterm_handler() -> None:
    """Make SIGTERM of this process raise ``KeyboardInterrupt`` (main thread, default handler only).

    pytest handles ``KeyboardInterrupt`` like Ctrl-C: ``pytest_sessionfinish`` runs and stops the servers.
    A handler someone else installed is left alone.
    """
    global _PREVIOUS_SIGTERM
    if threading.current_thread() is not threading.main_thread() or _PREVIOUS_SIGTERM is not None:
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    _PREVIOUS_SIGTERM = signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")


def reclaim_sigterm_handler() -> None:
    """Re-install the handler of :func:`install_sigterm_handler` when something replaced it since (SGLang's
    in-process engine adds an asyncio SIGTERM handler that only sets a drain flag). No-op when it was
    never installed or off the main thread."""
    if _PREVIOUS_SIGTERM is None or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        signal.signal(signal.SIGTERM, _on_sigterm)


def restore_sigterm_handler() -> None:
    """Undo :func:`install_sigterm_handler`."""
    global _PREVIOUS_SIGTERM
    if _PREVIOUS_SIGTERM is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _PREVIOUS_SIGTERM)
        _PREVIOUS_SIGTERM = None


@atexit.register
def _sweep_at_exit() -> None:
    with contextlib.suppress(Exception):
        sweep()
