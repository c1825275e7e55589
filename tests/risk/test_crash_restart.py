"""The halt latch across a real crash: a process halts and is SIGKILLed; a new process starts HALTED."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(state_dir: Path, mode: str, reason: str = "") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.risk.halt_process", str(state_dir), mode, reason],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_halt_when_process_killed_then_new_process_starts_halted_with_same_reason(state_dir: Path) -> None:
    first = _run(state_dir, "halt", "crash drill 42")
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        assert line, first.stderr.read() if first.stderr else ""
        halted = json.loads(line)
        assert halted["state"] == "HALTED"
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    assert first.returncode == -signal.SIGKILL

    second = _run(state_dir, "show")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    restored = json.loads(out.strip().splitlines()[-1])
    assert restored == {
        "state": "HALTED",
        "source": "control:halt",
        "reason": "crash drill 42",
        "since": halted["since"],
    }


def test_show_when_never_halted_then_new_process_is_active(state_dir: Path) -> None:
    proc = _run(state_dir, "show")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["state"] == "ACTIVE"
