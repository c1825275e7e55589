"""An SSH drop must end the app: SIGHUP, or the terminal vanishing under it (EOF / EIO on stdin).

Textual's own input thread spins at 100% CPU on EOF; OmegaDriver posts TerminalLost instead and the app
takes its normal exit path (the engine is asked to stop first)."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals only")


def _start_app() -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.ui.hangup_app"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 30
    while b"ACTIVE" not in seen:
        assert time.monotonic() < deadline, f"the app did not draw in time: {seen[-400:]!r}"
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            seen += os.read(master, 65536)
        assert proc.poll() is None, f"the app died: {seen[-2000:]!r}"
    return proc, master


def _drain_until_exit(proc: subprocess.Popen[bytes], master: int | None, timeout: float) -> bytes:
    """Wait for the process to end, reading what it writes; returns the output."""
    out = b""
    deadline = time.monotonic() + timeout
    while proc.poll() is None or master is not None:
        if time.monotonic() > deadline:
            cpu = _cpu_seconds(proc.pid)
            proc.kill()
            pytest.fail(f"the app did not exit within {timeout} s after the hangup (cpu {cpu:.1f} s)")
        if master is not None:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed its side, nothing more to read
                    chunk = b""
                out += chunk
                if not chunk:
                    master = None
            elif proc.poll() is not None:
                master = None
        else:
            time.sleep(0.1)
    return out


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_sighup_makes_the_app_exit() -> None:
    proc, master = _start_app()
    try:
        proc.send_signal(signal.SIGHUP)
        out = _drain_until_exit(proc, master, timeout=15)
        # Printed after App.run() returned: the exit was the graceful one (engine stopped), not a kill.
        assert b"omega-ui-exited" in out
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()


def test_terminal_vanishing_makes_the_app_exit_instead_of_spinning() -> None:
    proc, master = _start_app()
    try:
        os.close(master)  # the pty's other side is gone: stdin reads now fail (EIO) or hit EOF
        _drain_until_exit(proc, None, timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
