"""The simulated gateway as a child process (`SimGatewayProcess`, what `launcher.gateway_for` runs).

It reports its port, serves ib_async, takes control lines, relays its logs, names what failed when it cannot
start, and never outlives its parent: not a clean stop, not a closed stdin, not a SIGKILLed parent.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ib_async import IB, Stock

from omega_tui.config import Settings
from omega_tui.launcher import gateway_for
from omega_tui.sim.process import SimGatewayProcess, SimProcessError

WAIT_S = 10.0


def _gone(pid: int) -> bool:
    """True when `pid` no longer runs (an unreaped zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _wait_gone(pid: int, seconds: float = WAIT_S) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_process_listens_serves_extra_stocks_relays_logs_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gw = SimGatewayProcess(seed=7, extra_stocks=3, log_level="INFO")
    port = gw.start()
    pid = gw.pid
    assert pid is not None and pid != os.getpid() and port > 0
    try:
        ib = IB()
        ib.connect("127.0.0.1", port, clientId=5, timeout=WAIT_S)
        try:
            assert ib.managedAccounts() == ["DU1234567"]
            from omega_tui.sim.engine import ContractDB

            last = ContractDB(7, extra_stocks=3).all()[-1]
            details = ib.reqContractDetails(Stock(last.symbol, "SMART", "USD"))
            assert [d.contract.conId for d in details] == [last.con_id]
            gw.set_burst(2)
        finally:
            ib.disconnect()
    finally:
        gw.stop()
    assert _gone(pid)
    assert gw.pid is None
    messages = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("omega_tui.sim.session", "clientId 5 connected from") in [(n, m[:25]) for n, m in messages]
    assert any(n == "omega_tui.sim.cli" and m.startswith("burst set to 2") for n, m in messages)
    gw.stop()  # idempotent


def test_a_start_failure_names_what_failed() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gw = SimGatewayProcess(port=port)
        with pytest.raises(SimProcessError) as failed:
            gw.start()
    text = str(failed.value)
    assert "simulated IB Gateway process failed to start" in text
    assert "exit status 2" in text and f"cannot listen on 127.0.0.1:{port}" in text
    assert gw.proc is None


def test_the_child_exits_when_its_stdin_closes() -> None:
    gw = SimGatewayProcess()
    gw.start()
    assert gw.proc is not None and gw.proc.stdin is not None
    gw.proc.stdin.close()
    assert gw.proc.wait(WAIT_S) == 0
    gw.stop()


PARENT = """
import sys, time
from omega_tui.sim.process import SimGatewayProcess
gw = SimGatewayProcess()
gw.start()
print(gw.pid, gw.port, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_dies_with_a_sigkilled_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = 0
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline().split()[0])
        assert not _gone(child)
        parent.kill()
        parent.wait(WAIT_S)
        assert _wait_gone(child), "the simulated gateway outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
        if child and not _gone(child):
            os.kill(child, 9)


def test_gateway_for_points_the_settings_at_the_child_and_ends_it() -> None:
    settings = Settings.model_validate({"ib": {"mode": "sim", "port": 1}, "sim": {"extra_stocks": 2}})
    gw = SimGatewayProcess()
    with gateway_for(settings, gw) as effective:
        assert effective.ib.host == "127.0.0.1" and effective.ib.port == gw.port != 1
        pid = gw.pid
        assert pid is not None and not _gone(pid)
    assert _wait_gone(pid)
    gateway = Settings.model_validate({"ib": {"mode": "gateway", "port": 4002}})
    with gateway_for(gateway) as effective:
        assert effective is gateway
