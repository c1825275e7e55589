"""Positions are not left naked after a halt: resume re-protects them at the broker, and a flatten afterwards
leaves no working order (the protection never outlives the position)."""

from __future__ import annotations

from omega_tui.core.types import Flatten, Halt, OrderState, Resume, TradingState
from tests.e2e.conftest import Engine, until, until_async


async def test_halt_then_resume_reprotects_the_position_at_the_broker_and_flatten_leaves_nothing(
    engine: Engine,
) -> None:
    legs = await engine.filled_entry(quantity=100)
    assert engine.orders.position_qty("AAPL") == 100 == await engine.sim_position()

    assert (await engine.runtime.handle(Halt("operator:test", "drill"))).ok
    await until(
        lambda: legs["take_profit"].state is OrderState.CANCELLED and legs["stop_loss"].state is OrderState.CANCELLED,
        what="the bracket children cancelled",
    )
    assert engine.orders.unprotected_positions() == ["AAPL"]

    result = await engine.runtime.handle(Resume("operator:test", "drill over"))
    assert result.ok and engine.risk.trading_state is TradingState.ACTIVE, result.message

    async def protected_at_broker() -> bool:
        working = [o for o in await engine.sim_open_orders() if o.order_ref.startswith("protect-AAPL-")]
        return len(working) == 2 and all(o.status == "Submitted" for o in working)

    await until_async(protected_at_broker, what="protective orders working at the simulated broker")
    working = [o for o in await engine.sim_open_orders() if o.order_ref.startswith("protect-AAPL-")]
    assert sorted(o.order_type for o in working) == ["LMT", "STP"]
    assert all(o.total_qty == 100 and o.oca_group and o.oca_type == 2 for o in working)
    protect = [o for o in engine.all_orders() if o.intent_id.startswith("protect-")]
    assert sorted(o.role for o in protect) == ["stop_loss", "take_profit"]
    assert engine.orders.unprotected_positions() == []
    assert engine.orders.position_qty("AAPL") == 100  # the protection did not trade

    flat = await engine.runtime.handle(Flatten("operator:test", "end of drill"))
    assert flat.ok, flat.message
    assert engine.orders.position_qty("AAPL") == 0 == await engine.sim_position()
    await until_async(lambda: _nothing_working(engine), what="no working order at the broker after the flatten")
    assert all(o.state.is_terminal for o in engine.all_orders())


async def _nothing_working(engine: Engine) -> bool:
    return await engine.sim_open_orders() == [] and await engine.sim_held_orders() == []
