"""Exit codes of DESIGN §6: 2 bad config or state directory taken, 3 startup verification failed, 4 no engine."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from omega_tui.config import Settings
from omega_tui.core.control import EngineLock
from omega_tui.headless import run_headless
from tests.headless.conftest import journal_records, omega


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_instrument_the_gateway_does_not_know_fails_startup_with_exit_3_and_a_journal_record(
    tmp_path: Path, state: Path
) -> None:
    done = omega(tmp_path, state, "--no-ui", "--set", 'instruments.watchlist=[{symbol="ZZZQ"}]')
    assert done.returncode == 3, done.stderr[-2000:]
    assert "omega-tui: startup failed: ZZZQ (STK ZZZQ SMART USD): IB found no such contract" in done.stderr
    record = journal_records(state, "shutdown")[-1]
    assert record["outcome"].startswith("startup verification failed; the shutdown policy did not run")
    assert any("ZZZQ" in line for line in record["errors"])


def test_gateway_that_refuses_the_connection_fails_startup_with_exit_3(tmp_path: Path, state: Path) -> None:
    args = ("--no-ui", "--mode", "gateway", "--set", f"ib.port={free_port()}", "--set", "ib.connect_timeout_s=2")
    done = omega(tmp_path, state, *args)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "omega-tui: startup failed: connection: could not connect to 127.0.0.1:" in done.stderr


def test_invalid_setting_exits_2_naming_it(tmp_path: Path, state: Path) -> None:
    done = omega(tmp_path, state, "--no-ui", "--set", "risk.max_daily_loss=-5")
    assert done.returncode == 2
    assert "omega-tui: config error: command line: risk.max_daily_loss = -5" in done.stderr


@pytest.mark.parametrize(
    "args",
    [("status",), ("status", "--json"), ("halt",), ("flatten", "--yes"), ("resume", "--yes")],
    ids=" ".join,
)
def test_control_command_without_a_running_engine_exits_4(tmp_path: Path, state: Path, args: tuple[str, ...]) -> None:
    done = omega(tmp_path, state, *args)
    assert done.returncode == 4
    if args == ("status", "--json"):
        assert json.loads(done.stdout)["running"] is False
    else:
        assert f"no running engine found on {state}" in done.stderr


def test_engine_that_loses_the_race_for_the_lock_exits_2_naming_the_holder(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI refuses a second engine before starting it; this is the runtime's own check behind that, for
    # two engines started at the same moment. It fails before any connection or state is touched.
    holder = EngineLock(state)
    holder.acquire("SIM")
    try:
        code = run_headless(Settings(state={"dir": str(state)}, ib={"mode": "gateway", "port": 1}))
    finally:
        holder.release()
    assert code == 2
    assert f"already running on {state} (pid {os.getpid()} on " in capsys.readouterr().err
    assert journal_records(state, "shutdown") == []


def test_a_control_fd_that_is_not_a_socket_exits_2_before_anything_starts(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    read_end, write_end = os.pipe()  # an fd this process holds, but not a socket
    try:
        code = run_headless(Settings(state={"dir": str(state)}, ib={"mode": "gateway", "port": 1}), control_fd=read_end)
    finally:
        os.close(write_end)
        os.close(read_end)
    assert code == 2
    assert f"--control-fd {read_end} is not a socket this process holds" in capsys.readouterr().err
    assert journal_records(state, "shutdown") == []
