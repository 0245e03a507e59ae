"""The reference server's child process never blocks on its own output (issue 18).

Before the fix nothing read the child's stdout/stderr pipe after the READY line: once a server had logged
more than a pipe buffer (64 KiB on Linux; ~13 request tracebacks), its next write blocked and the run hung.
"""

from __future__ import annotations

import subprocess
import sys
import time

from pytest_lfm.server.process import spawn_group
from pytest_lfm.server.reference import OUTPUT_TAIL_LINES, READY, ReferenceProcess

# Prints READY, then ~4 MiB (64x a Linux pipe buffer) on stdout and stderr, then a last line, and exits.
CHATTY = f"""
import sys
print("{READY}12345", flush=True)
for i in range(20000):
    print("stdout line", i, "x" * 100)
    print("stderr line", i, "y" * 100, file=sys.stderr)
print("last line", flush=True)
"""


class ChattyProcess(ReferenceProcess):
    """A stand-in child that announces itself like the reference server, then logs a lot."""

    def spawn(self) -> None:
        self.cmd = [sys.executable, "-c", CHATTY]
        self.proc = spawn_group(self.cmd, stdout=subprocess.PIPE)


def test_chatty_server_is_drained_and_its_last_lines_kept() -> None:
    proc = ChattyProcess("8B-A1B")
    proc.spawn()
    try:
        proc.wait_ready(timeout=30)
        assert proc.port == 12345
        assert proc.proc is not None
        # A child blocked on a full pipe never exits; a drained one exits as soon as it has written.
        try:
            proc.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the child blocked writing its output: nothing drains the pipe") from None
        assert proc.proc.returncode == 0
        assert proc._drainer is not None
        proc._drainer.join(timeout=30)
        deadline = time.monotonic() + 30
        while (not proc.output_tail or proc.output_tail[-1] != "last line") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(proc.output_tail)[-1] == "last line"
        assert len(proc.output_tail) == OUTPUT_TAIL_LINES
    finally:
        proc.stop()
