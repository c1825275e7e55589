"""SIGKILL, then restart on the same state directory: the stale lock is taken over, working orders are
recovered from the broker, and a halt latched before the kill is still latched after it.

The gateway is its own process (like a real IB Gateway), so the orders outlive the killed engine. The
restarted engine is plain `omega-tui --no-ui` with the same client id.
"""

from __future__ import annotations

import signal
from pathlib import Path

from tests.headless.conftest import (
    Engine,
    eventually,
    journal_records,
    omega,
    start_engine,
    wait_state,
    working_orders,
)

CLIENT_ID = 61


def engine_args(gateway: int) -> tuple[str, ...]:
    return ("--mode", "gateway", "--set", f"ib.port={gateway}", "--set", f"ib.client_id={CLIENT_ID}")


def kill9(engine: Engine) -> None:
    engine.send_signal(signal.SIGKILL)
    assert engine.wait(10) == -signal.SIGKILL


def test_sigkill_then_restart_recovers_working_orders_and_keeps_the_halt_latched(tmp_path: Path, gateway: int) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    engines: list[Engine] = []
    try:
        first = start_engine(tmp_path, state_dir, *engine_args(gateway), driver=True)
        engines.append(first)
        assert first.request("rest AAPL")["ok"]
        placed = eventually(lambda: working_orders(first.report()), 10, "bracket working")
        placed_ids = {o["order_id"] for o in placed}
        kill9(first)
        assert not first.report()["running"]  # the kernel dropped the lock with the process

        second = start_engine(tmp_path, state_dir, *engine_args(gateway))
        engines.append(second)
        recovered = eventually(
            lambda: {o["order_id"] for o in working_orders(second.report())} >= placed_ids, 10, "orders recovered"
        )
        assert recovered
        assert f"took over the state directory from a dead engine (pid {first.pid}" in "\n".join(second.stderr_lines())

        done = omega(tmp_path, state_dir, "halt", "--reason", "latched before the kill")
        assert done.returncode == 0, done.stderr
        halted = wait_state(state_dir, "HALTED")
        eventually(lambda: not working_orders(second.report()), 10, "orders cancelled by the halt")
        kill9(second)

        third = start_engine(tmp_path, state_dir, *engine_args(gateway))
        engines.append(third)
        report = third.report()
        assert report["trading_state"] == "HALTED"
        assert (report["reason"], report["source"]) == ("latched before the kill", "control:halt")
        assert report["since_utc"] == halted["since_utc"]

        assert third.stop(signal.SIGTERM) == 0, third.tail()
        assert journal_records(state_dir, "shutdown")[-1]["outcome"] == "nothing working"
    finally:
        for engine in engines:
            engine.kill()
