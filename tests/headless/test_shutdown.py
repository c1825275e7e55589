"""The `[shutdown] on_exit` policy on SIGINT, SIGTERM and SIGHUP: bounded, journaled, exit 0.

Each test runs its own engine (the driver, so it has working orders) with its own client id against the
module's simulated gateway. The leave test runs last: the engine recovers every open order of the account
(`reqAllOpenOrders`), so orders left working by one engine would be adopted by the next.
"""

from __future__ import annotations

import itertools
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.headless.conftest import (
    Engine,
    Proc,
    eventually,
    journal_records,
    position_qty,
    start_engine,
    working_orders,
)

CLIENT_IDS = itertools.count(41)


def engine_with_orders(tmp_path: Path, gateway: int, policy: str, *orders: str) -> Engine:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    engine = start_engine(
        tmp_path,
        state_dir,
        "--mode",
        "gateway",
        "--set",
        f"ib.port={gateway}",
        "--set",
        f"ib.client_id={next(CLIENT_IDS)}",
        "--set",
        f'shutdown.on_exit="{policy}"',
        driver=True,
    )
    try:
        for order in orders:
            answer = engine.request(order)
            assert answer["ok"], answer
        eventually(lambda: working_orders(engine.report()), 10, "orders working")
    except BaseException:
        engine.kill()
        raise
    return engine


def last_shutdown(state_dir: Path) -> dict[str, Any]:
    records = journal_records(state_dir, "shutdown")
    assert records, "no shutdown record in the journal"
    return records[-1]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_stop_signal_cancels_working_orders_journals_it_and_exits_0(
    tmp_path: Path, gateway: int, signum: signal.Signals
) -> None:
    engine = engine_with_orders(tmp_path, gateway, "cancel", "rest AAPL")
    try:
        before = {o["order_id"] for o in working_orders(engine.report())}
        assert engine.stop(signum) == 0, engine.tail()
        record = last_shutdown(engine.state_dir)
        assert record["policy"] == "cancel" and record["outcome"] == "cancelled"
        assert set(record["working_before"]) == before and record["working_after"] == []
        final = engine.report()
        assert not final["running"] and working_orders(final) == []
        assert f"received {signum.name}, stopping" in "\n".join(engine.stderr_lines())
    finally:
        engine.kill()


def test_flatten_policy_closes_the_position_on_sigterm(tmp_path: Path, gateway: int) -> None:
    engine = engine_with_orders(tmp_path, gateway, "flatten", "take MSFT")
    try:
        eventually(lambda: position_qty(engine.report(), "MSFT"), 10, "MSFT position opened")
        assert engine.stop(signal.SIGTERM) == 0, engine.tail()
        record = last_shutdown(engine.state_dir)
        assert record["policy"] == "flatten" and record["outcome"] == "flattened", record
        assert record["working_after"] == []
        assert position_qty(engine.report(), "MSFT") == 0
    finally:
        engine.kill()


def test_leave_policy_leaves_orders_working_and_the_journal_says_which(tmp_path: Path, gateway: int) -> None:
    engine = engine_with_orders(tmp_path, gateway, "leave", "rest SPY")
    try:
        before = sorted(o["order_id"] for o in working_orders(engine.report()))
        assert engine.stop(signal.SIGTERM) == 0, engine.tail()
        record = last_shutdown(engine.state_dir)
        assert record["policy"] == "leave" and record["outcome"] == "left"
        assert sorted(record["working_before"]) == before == sorted(record["working_after"])
    finally:
        engine.kill()


def test_stop_after_the_gateway_died_journals_the_orders_it_could_not_manage(tmp_path: Path) -> None:
    gateway = Proc(
        [sys.executable, "-m", "omega_tui", "sim-gateway", "--host", "127.0.0.1", "--port", "0"],
        tmp_path,
        tmp_path / "gateway.stderr",
    )
    engine: Engine | None = None
    try:
        port = int(gateway.next_line(20).rsplit(":", 1)[1])
        engine = engine_with_orders(tmp_path, port, "cancel", "rest AAPL")
        before = sorted(o["order_id"] for o in working_orders(engine.report()))
        gateway.kill()
        eventually(lambda: engine.report()["connection"].get("state") != "UP", 10, "connection lost")
        assert engine.stop(signal.SIGTERM) == 0, engine.tail()
        record = last_shutdown(engine.state_dir)
        assert record["policy"] == "cancel" and record["outcome"] == "not connected"
        assert sorted(record["working_after"]) == before
        logged = "\n".join(engine.stderr_lines())
        assert f"shutdown policy cancel not applied: exiting disconnected with {len(before)} orders" in logged
    finally:
        if engine is not None:
            engine.kill()
        gateway.kill()
