"""The real `omega-tui` in a real terminal (tmux, 80x24): quotes stream, ctrl+k halts, the screen says so."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")

ROOT = Path(__file__).resolve().parents[2]


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10, check=False).stdout


def wait_for(session: str, predicate: object, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if predicate(screen):  # type: ignore[operator]
            return screen
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s; the screen was:\n{screen}")


def test_workstation_in_tmux_streams_quotes_and_ctrl_k_halts(tmp_path: Path) -> None:
    session = f"omega-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    # Textual draws on stderr, so it must stay the terminal (no redirection).
    command = (
        f"cd {ROOT} && OMEGA_STATE__DIR={state} {sys.executable} -m omega_tui --config {ROOT / 'config.toml'} "
        "--set scheduler.models=[]"  # no strategy: the test is about the screen and the kill switch
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", command],
        check=True,
        timeout=10,
        env={**env, "TERM": "xterm-256color"},
    )
    try:
        # Quotes: the banner says ACTIVE and AAPL shows a two-sided price.
        screen = wait_for(session, lambda s: "ACTIVE" in s and "AAPL" in s and any(c.isdigit() for c in s), 60)
        assert "SIM" in screen
        tmux("send-keys", "-t", session, "C-k")
        wait_for(session, lambda s: "HALTED" in s, 15)
        # The halt was latched by the engine, not only drawn: the control command sees it.
        status = subprocess.run(
            [sys.executable, "-m", "omega_tui", "--state-dir", str(state), "status", "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
        )
        assert '"trading_state": "HALTED"' in status.stdout, status.stdout + status.stderr
        tmux("send-keys", "-t", session, "C-q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and session in tmux("list-sessions", "-F", "#{session_name}"):
            time.sleep(0.2)
        assert session not in tmux("list-sessions", "-F", "#{session_name}"), "ctrl+q did not end the app"
    finally:
        tmux("kill-session", "-t", session)
