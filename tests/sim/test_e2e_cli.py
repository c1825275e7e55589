"""`omega-tui sim-gateway` as a process: prints its port, serves ib_async, exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from omega_tui.sim.cli import main
from tests.sim.conftest import connect


class _Port:
    def __init__(self, port: int) -> None:
        self.port = port


async def test_cli_prints_its_port_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[step]]\nat = 0.2\naction = "farm_blip"\n')
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "omega_tui.sim.cli",
        "--port",
        "0",
        "--seed",
        "3",
        "--speed",
        "2",
        "--scenario",
        str(scenario),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert line.startswith("sim-gateway listening on 127.0.0.1:")
        port = int(line.strip().rsplit(":", 1)[1])
        ib = await connect(_Port(port))  # type: ignore[arg-type]
        codes: list[int] = []
        ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
        try:
            assert ib.managedAccounts() == ["DU1234567"]
            for _ in range(100):
                if 2104 in codes and 2103 in codes:
                    break
                await asyncio.sleep(0.02)
            assert 2103 in codes, "the scenario's farm blip reached the client"
        finally:
            ib.disconnect()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "0.0.0.0"], "loopback"),
        (["--scenario", "/nonexistent/x.toml"], "cannot read scenario"),
        (["--speed", "0"], "--speed"),
    ],
)
def test_cli_bad_configuration_exits_2_with_one_sentence(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--port", "0", *argv]) == 2
    assert message in capsys.readouterr().err
