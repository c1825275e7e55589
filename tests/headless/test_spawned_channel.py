"""The workstation's own engine child takes the UI's commands on the socket pair it inherited (`--control-fd`).

A real `omega-tui --no-ui --exit-with-parent` started by `launcher.EngineProcess`, as `omega-tui` starts it,
driven by `attach.SpawnedEngine` in this process with the control queue's send made to fail: the Halt and the
Resume can only have gone through the direct channel.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from omega_tui.attach import SpawnedEngine
from omega_tui.config import Settings
from omega_tui.control import status_report
from omega_tui.core.control import ControlQueue
from omega_tui.core.types import Halt, Resume
from omega_tui.launcher import EngineProcess, engine_argv
from tests.headless.conftest import START_TIMEOUT_S, eventually, wait_state


def test_the_spawned_engine_halts_and_resumes_through_its_direct_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    options = ["--state-dir", str(state_dir), "--set", "scheduler.models=[]"]
    process = EngineProcess(engine_argv(options), cwd=str(tmp_path))
    process.start()
    client = SpawnedEngine(Settings(state={"dir": str(state_dir)}), process)
    try:

        def ready() -> bool:
            if not process.running():
                raise AssertionError(f"the engine exited: {process.failure_lines()}")
            report = status_report(state_dir)
            return report["connection"].get("state") == "UP" and report["trading_state"] == "ACTIVE"

        eventually(ready, START_TIMEOUT_S, "the engine child connected and ACTIVE", period=0.1)

        def no_queue(self: ControlQueue, command: object) -> str:
            raise AssertionError(f"{command!r} went to the control queue, not the direct channel")

        monkeypatch.setattr(ControlQueue, "send", no_queue)
        halted = client.submit(Halt(source="operator:key", reason="channel test")).result(30)
        assert halted.ok, halted.message
        assert client.read("risk")["trading_state"] == "HALTED"  # from the answer itself, not a later flush
        wait_state(state_dir, "HALTED")
        resumed = client.submit(Resume(source="operator:key", reason="channel test")).result(30)
        assert resumed.ok, resumed.message
        wait_state(state_dir, "ACTIVE")
    finally:
        client.close()
        process.stop(30)
    assert not process.running()
