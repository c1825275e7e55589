"""Issue 5: an engine killed with SIGKILL mid-order; the next engine on the same state directory recovers
every order from the journal and the broker, and reconciles them with what the broker holds."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from omega_tui.core.types import OrderState
from omega_tui.sim import SimGateway
from tests.e2e.conftest import CLIENT_ID, FROZEN, EngineFactory, Touch, until

ROOT = Path(__file__).resolve().parents[2]
PROCESS_WAIT_S = 40.0


def config_toml(port: int) -> str:
    """The crashing engine's config: a real Gateway connection (`ib.mode = "gateway"`) to the test's sim."""
    return f"""
[ib]
mode = "gateway"
host = "127.0.0.1"
port = {port}
client_id = {CLIENT_ID}
connect_timeout_s = 5.0

[[instruments.watchlist]]
symbol = "AAPL"
primary_exchange = "NASDAQ"

[market_data]
warmup_bars = false
stale_after_s = 600.0

[risk]
max_quote_age_s = 600.0

[execution]
adaptive_priority = "Urgent"

[shutdown]
on_exit = "leave"
"""


@pytest.fixture
async def gateway() -> AsyncIterator[SimGateway]:
    gw = SimGateway(seed=7, speed=FROZEN, port=0)
    await asyncio.to_thread(gw.start)
    try:
        yield gw
    finally:
        await asyncio.to_thread(gw.stop)


def tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-4000:]


async def read_line(proc: asyncio.subprocess.Process, prefix: str, log: Path) -> dict[str, object]:
    """The next stdout line starting with `prefix`, as JSON; fails with the process's log otherwise."""
    assert proc.stdout is not None
    try:
        while True:
            raw = await asyncio.wait_for(proc.stdout.readline(), PROCESS_WAIT_S)
            if not raw:
                raise AssertionError(f"engine process ended before {prefix!r}:\n{tail(log)}")
            line = raw.decode().strip()
            if line.startswith(prefix + " "):
                return json.loads(line[len(prefix) + 1 :])  # type: ignore[no-any-return]
    except TimeoutError:
        raise AssertionError(f"no {prefix!r} line within {PROCESS_WAIT_S:g} s:\n{tail(log)}") from None


async def test_engine_killed_mid_order_then_restart_recovers_and_reconciles_every_order(
    gateway: SimGateway, make_engine: EngineFactory, state_dir: Path, tmp_path: Path
) -> None:
    touch = Touch(gateway)
    await touch.quote()  # 230.00 / 230.02, 1000 on each side
    config = tmp_path / "crash.toml"
    config.write_text(config_toml(gateway.port), encoding="utf-8")
    log = tmp_path / "engine_process.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.e2e.engine_process",
            str(config),
            str(state_dir),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        placed = await read_line(proc, "placed", log)
        rest, take = placed["rest"], placed["take"]
        assert isinstance(rest, dict) and isinstance(take, dict)

        async def take_entry_filled() -> bool:
            o = await touch.sim_order(take["entry"])
            return o is not None and o.status == "Filled"

        await touch.pump_until(take_entry_filled, what="the marketable entry filled at the gateway")
        filled = await read_line(proc, "filled", log)
        assert filled == {"position": 100}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == -signal.SIGKILL

    # While no engine runs, the take-profit fills at the gateway and its stop-loss is cancelled (OCA).
    await touch.quote(bid=Decimal("231.00"), ask=Decimal("231.02"))

    async def take_profit_filled() -> bool:
        o = await touch.sim_order(take["take_profit"])
        return o is not None and o.status == "Filled"

    await touch.pump_until(take_profit_filled, what="the take-profit filled while the engine was dead")

    engine = await make_engine(gw=gateway, touch=touch)
    at_broker = {o.order_id: o for o in await engine.sim_open_orders() if o.client_id == CLIENT_ID}
    assert set(at_broker) == set(rest.values())

    def recovered() -> bool:
        return all(
            (o := engine.orders.order(oid)) is not None and o.ib_status == at_broker[oid].status for oid in at_broker
        )

    await until(recovered, what="the resting bracket reconciled with the broker")
    for role, oid in rest.items():
        o = engine.orders.order(oid)
        assert o is not None
        assert (o.role, o.intent_id, o.order.order_ref) == (role, "rest", f"rest:{role}")
        assert o.state is OrderState.SUBMITTED, (role, o.state)
    assert engine.orders.order(rest["entry"]).ib_status == "Submitted"  # type: ignore[union-attr]

    expected = {"entry": OrderState.FILLED, "take_profit": OrderState.FILLED, "stop_loss": OrderState.CANCELLED}
    for role, oid in take.items():
        o = engine.orders.order(oid)
        assert o is not None and o.role == role and o.intent_id == "take"
        assert o.state is expected[role], (role, o.state, o.ib_status)
        assert o.filled == (100 if role != "stop_loss" else 0)

    # Nothing unknown: every order is one Omega placed, and working exactly when the broker has it open.
    known = set(rest.values()) | set(take.values())
    assert {o.order_id for o in engine.all_orders()} == known
    assert {o.order_id for o in engine.all_orders() if o.state.is_working} == set(at_broker)
    assert all(o.role != "adopted" for o in engine.all_orders())
    assert not [r for r in engine.runtime.journal.read() if r.get("kind") in ("adopted", "order_anomaly")]

    # The position and P&L come back from the fills: the round trip is closed, 98.00 realised, 2.00 fees.
    assert engine.orders.position_qty("AAPL") == 0 == await engine.sim_position()
    position = engine.orders.positions()["AAPL"]
    assert position.realized == Decimal("98.00")
    await until(lambda: position.commissions == Decimal("2.00"), what="both commissions recovered")


async def test_engine_killed_between_the_send_and_the_submit_record_then_restart_adopts_by_order_ref(
    gateway: SimGateway, make_engine: EngineFactory, state_dir: Path, tmp_path: Path
) -> None:
    """The journal's one loss window (core/journal.py), end to end: the engine process dies by SIGKILL right
    after the marketable bracket's transmitting leg is on the socket, before its "submit" record exists in
    the file. The gateway holds the bracket (and fills its entry meanwhile); the next engine finds the orders
    among the broker's open orders and the day's executions, adopts them linked to their intent by orderRef,
    and reconciles their states and the position with the broker's."""
    touch = Touch(gateway)
    await touch.quote()  # 230.00 / 230.02, 1000 on each side
    config = tmp_path / "crash.toml"
    config.write_text(config_toml(gateway.port), encoding="utf-8")
    log = tmp_path / "engine_process.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.e2e.engine_process",
            str(config),
            str(state_dir),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "OMEGA_E2E_KILL_AFTER_SEND": "take"},
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    try:
        killing = await read_line(proc, "killing", log)
        await asyncio.wait_for(proc.wait(), PROCESS_WAIT_S)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
    assert proc.returncode == -signal.SIGKILL, tail(log)
    rest, take = killing["rest"], killing["take"]
    assert isinstance(rest, dict) and isinstance(take, dict)
    assert set(take) == {"entry", "take_profit", "stop_loss"} and killing["unsent_bytes"] == 0
    journal = killing["journal"]
    assert isinstance(journal, dict) and journal["durable"] <= journal["written"] <= journal["seq"]

    # On disk: the resting bracket's submission, nothing of the killed one (not even numbered in time).
    records = [json.loads(line) for path in sorted((state_dir / "journal").glob("*.jsonl")) for line in path.open()]
    submitted = {r["intent_id"] for r in records if r.get("kind") == "submit"}
    assert submitted == {"rest"}
    assert not [r for r in records if r.get("kind") == "fill"]

    # The gateway has the whole bracket, released by its transmitting leg; the marketable entry fills.
    for oid in take.values():
        assert await touch.sim_order(oid) is not None, oid

    async def take_entry_filled() -> bool:
        o = await touch.sim_order(take["entry"])
        return o is not None and o.status == "Filled"

    await touch.pump_until(take_entry_filled, what="the killed engine's entry filled at the gateway")

    engine = await make_engine(gw=gateway, touch=touch)
    at_broker = {o.order_id: o for o in await engine.sim_open_orders() if o.client_id == CLIENT_ID}
    assert set(at_broker) == set(rest.values()) | {take["take_profit"], take["stop_loss"]}

    def recovered() -> bool:
        return (
            all(
                (o := engine.orders.order(oid)) is not None and o.ib_status == at_broker[oid].status
                for oid in at_broker
            )
            and engine.orders.order(take["entry"]) is not None
        )

    await until(recovered, what="every order at the broker known and reconciled")
    adoptions = {r["order"]["order_id"]: r for r in engine.runtime.journal.read() if r.get("kind") == "adopted"}
    assert set(adoptions) == set(take.values())  # the journal now explains every order of the bracket
    for role, oid in take.items():  # adopted from the broker, linked to the intent by orderRef
        o = engine.orders.order(oid)
        assert o is not None and (o.intent_id, o.order.order_ref) == ("take", f"take:{role}")
        # Omega's own orderRef gives the role back, unless only an execution of the order was seen.
        assert o.role == ("adopted" if adoptions[oid]["source"] == "execDetails" else role), (role, o.role)
    assert adoptions[take["stop_loss"]]["source"] != "execDetails"  # the open children came whole
    entry = engine.orders.order(take["entry"])
    assert entry is not None and entry.state is OrderState.FILLED and entry.filled == 100
    for role in ("take_profit", "stop_loss"):
        o = engine.orders.order(take[role])
        assert o is not None and o.state is OrderState.SUBMITTED, (role, o and o.state)
    for role, oid in rest.items():  # from the journal, as placed
        o = engine.orders.order(oid)
        assert o is not None and (o.role, o.intent_id) == (role, "rest") and o.state is OrderState.SUBMITTED
    assert engine.orders.position_qty("AAPL") == 100 == await engine.sim_position()

    # Nothing unknown, nothing added: working exactly when the broker has it open; the adopted stop-loss and
    # take-profit protect the position (no second protective pair was placed beside them).
    assert {o.order_id for o in engine.all_orders() if o.state.is_working} == set(at_broker)
    assert {o.order_id for o in engine.all_orders()} == set(rest.values()) | set(take.values())
    assert engine.orders.unprotected_positions() == []
