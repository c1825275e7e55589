"""Issue 6 end to end: API-error and connection halts driven by the simulated gateway's faults, the halt's
global cancel, flatten with open brackets and partial fills, and the daily-loss limit that flattens."""

from __future__ import annotations

import time
from decimal import Decimal

from omega_tui.core.types import ConnectionState, Flatten, Halt, OrderState, Resume, TradingState
from tests.e2e.conftest import ASK, Engine, EngineFactory, until, until_async

HALTED, ACTIVE = TradingState.HALTED, TradingState.ACTIVE
# A halt must have cancelled every working order at the broker within this long.
HALT_CANCEL_BOUND_S = 2.0


async def nothing_working_at_broker(engine: Engine) -> bool:
    return await engine.sim_open_orders() == [] and await engine.sim_held_orders() == []


async def reconnected(engine: Engine, before: int) -> None:
    await until(
        lambda: engine.broker.reconnects > before and engine.broker.connection_state is ConnectionState.UP,
        what="the session reconnected",
    )


def flatten_records(engine: Engine) -> list[dict[str, object]]:
    return [r for r in engine.runtime.journal.read() if r.get("kind") == "flatten"]


async def assert_new_orders_denied_while_halted(engine: Engine) -> None:
    result = await engine.place(engine.intent(quantity=100, limit="229.50"))
    assert not result.ok and result.details["rule"] == "trading_state", result.message


async def test_error_1100_halts_disconnects_and_reconnects_but_trading_stays_halted_until_resume(
    engine: Engine,
) -> None:
    legs = await engine.place_bracket(engine.intent(quantity=100, limit="229.50"))
    reconnects = engine.broker.reconnects

    await engine.sim(engine.gw.faults.connectivity_lost)
    await until(lambda: engine.risk.trading_state is HALTED, what="HALTED on 1100")
    assert engine.risk.state_source == "api_error:1100"
    assert "1100" in engine.risk.state_reason
    await reconnected(engine, reconnects)
    # The halt's cancel-all could not reach a dropped socket; it is retried once the session is back.
    await until_async(lambda: nothing_working_at_broker(engine), what="the bracket cancelled after reconnecting")
    await until(lambda: all(o.state is OrderState.CANCELLED for o in legs.values()), what="Omega sees it cancelled")

    await engine.sim(engine.gw.faults.connectivity_restored)
    await engine.quote_seen()
    assert engine.risk.trading_state is HALTED and engine.risk.state_source == "api_error:1100"
    await assert_new_orders_denied_while_halted(engine)

    result = await engine.runtime.handle(Resume("operator:test", "connectivity is back"))
    assert result.ok, result.message
    assert engine.risk.trading_state is ACTIVE
    await engine.place_bracket(engine.intent(quantity=100, limit="229.50"))


async def test_socket_drop_halts_and_reconnection_does_not_resume(engine: Engine) -> None:
    reconnects = engine.broker.reconnects
    await engine.sim(lambda: engine.gw.faults.drop_connections(refuse_for=0.3))
    await until(lambda: engine.risk.trading_state is HALTED, what="HALTED on the socket drop")
    assert engine.risk.state_source == "connection:down"
    await reconnected(engine, reconnects)
    await engine.quote_seen()
    assert engine.risk.trading_state is HALTED and engine.risk.state_source == "connection:down"
    await assert_new_orders_denied_while_halted(engine)
    result = await engine.runtime.handle(Resume("operator:test"))
    assert result.ok and engine.risk.trading_state is ACTIVE, result.message


async def test_error_2110_halts_disconnects_and_trading_stays_halted_after_reconnecting(engine: Engine) -> None:
    reconnects = engine.broker.reconnects
    await engine.sim(engine.gw.faults.server_connection_broken)
    await until(lambda: engine.risk.trading_state is HALTED, what="HALTED on 2110")
    assert engine.risk.state_source == "api_error:2110"
    await reconnected(engine, reconnects)
    await engine.quote_seen()
    assert engine.risk.trading_state is HALTED and engine.risk.state_source == "api_error:2110"
    await assert_new_orders_denied_while_halted(engine)
    halts = [r for r in engine.runtime.journal.read() if r.get("kind") == "halt"]
    assert [h["source"] for h in halts] == ["api_error:2110"]


async def test_halt_cancels_every_working_order_at_the_broker_within_a_bounded_time(engine: Engine) -> None:
    filled = await engine.filled_entry(quantity=100)
    resting = [await engine.place_bracket(engine.intent(quantity=100, limit=limit)) for limit in ("229.50", "229.40")]
    assert len(await engine.sim_open_orders()) == 8

    started = time.monotonic()
    result = await engine.runtime.handle(Halt("operator:test", "kill switch drill"))
    assert result.ok and engine.risk.trading_state is HALTED
    await until_async(lambda: nothing_working_at_broker(engine), within_s=HALT_CANCEL_BOUND_S, what="no working order")
    assert time.monotonic() - started < HALT_CANCEL_BOUND_S
    await until(lambda: all(o.state.is_terminal for o in engine.all_orders()), what="every Omega order terminal")
    assert filled["entry"].state is OrderState.FILLED
    assert all(o.state is OrderState.CANCELLED for legs in resting for o in legs.values())
    assert engine.orders.position_qty("AAPL") == 100  # a halt cancels; it does not close positions
    await assert_new_orders_denied_while_halted(engine)


async def test_flatten_with_an_open_bracket_and_a_partial_fill_leaves_no_orders_and_no_positions(
    make_engine: EngineFactory,
) -> None:
    engine = await make_engine(execution={"max_child_qty": 500})
    filled = await engine.filled_entry(quantity=100)
    await engine.quote(ask_size=100)  # thin: the next entry fills 100 of 300, then the touch stops refreshing
    partial = await engine.place_bracket(engine.intent(quantity=300, limit=str(ASK)))
    await engine.pump_until(lambda: partial["entry"].filled > 0, what="a partial fill")
    assert partial["entry"].state is OrderState.PARTIALLY_FILLED, partial["entry"].state
    assert partial["take_profit"].ib_status == "PreSubmitted"
    held = engine.orders.position_qty("AAPL")
    assert 200 <= held < 400 and held == await engine.sim_position()

    result = await engine.runtime.handle(Flatten("operator:test", "flatten drill"))
    assert result.ok, result.message
    assert engine.risk.trading_state is HALTED
    assert await nothing_working_at_broker(engine)
    assert engine.orders.position_qty("AAPL") == 0 == await engine.sim_position()
    assert all(o.state.is_terminal for o in engine.all_orders())
    assert all(o.state is OrderState.CANCELLED for o in (filled["take_profit"], filled["stop_loss"]))
    entry = partial["entry"]  # a new name: the PARTIALLY_FILLED assertion above narrowed the old expression
    assert entry.state is OrderState.CANCELLED and entry.filled == held - 100
    closing = [o for o in engine.all_orders() if o.role == "flatten"]
    assert closing and all(o.state is OrderState.FILLED for o in closing)
    assert sum(o.filled for o in closing) == held


async def test_daily_loss_breach_halts_and_flattens_when_configured_to(make_engine: EngineFactory) -> None:
    engine = await make_engine(risk={"max_daily_loss": 50.0, "on_max_loss": "flatten"})
    legs = await engine.filled_entry(quantity=100)  # long 100 at 230.02
    assert engine.risk.trading_state is ACTIVE

    await engine.sim(lambda: engine.gw.faults.shock("AAPL", -0.5))  # about -1.15 a share: -115 on 100
    await until(lambda: engine.risk.trading_state is HALTED, what="HALTED on the daily loss")
    assert engine.risk.state_source == "rule:max_daily_loss"
    await until(lambda: engine.orders.position_qty("AAPL") == 0, what="the position flattened")
    assert await engine.sim_position() == 0
    await until_async(lambda: nothing_working_at_broker(engine), what="no working order at the broker")
    assert [legs[r].state for r in ("take_profit", "stop_loss")] == [OrderState.CANCELLED] * 2
    await until(lambda: flatten_records(engine), what="the flatten procedure finished")
    assert [(r["source"], r["ok"]) for r in flatten_records(engine)] == [("rule:max_daily_loss", True)]
    assert engine.risk.day_pnl() < Decimal(-50)

    refused = await engine.runtime.handle(Resume("operator:test"))
    assert not refused.ok and "daily loss" in refused.message
    assert engine.risk.trading_state is HALTED
