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


async def test_partial_take_profit_fill_shrinks_the_stop_to_the_rest_and_a_full_fill_cancels_it(
    engine: Engine,
) -> None:
    """ocaType 2 end to end: 30 of 100 filled on the take-profit leave a 70-share stop working at the broker
    (the rest of the position stays fully protected, Omega sends nothing for it); the other 70 filling
    cancels the stop."""
    from decimal import Decimal

    legs = await engine.filled_entry(quantity=100, take_profit="232.00")
    tp, sl = legs["take_profit"], legs["stop_loss"]
    placed_before = engine.orders.open_order_count()
    await engine.quote(bid=Decimal("232.00"), ask=Decimal("232.02"), bid_size=30)

    async def stop_reduced() -> bool:
        stop = await engine.sim_order(sl.order_id)
        return stop is not None and stop.total_qty == 70 and engine.orders.position_qty("AAPL") == 70

    await until_async(stop_reduced, what="the take-profit's partial fill and the stop reduced to 70")
    stop = await engine.sim_order(sl.order_id)
    assert stop is not None and stop.status == "Submitted" and stop.remaining == 70
    assert sl.order.quantity == 70 and sl.remaining == 70 and not sl.cancel_requested
    assert tp.state is OrderState.PARTIALLY_FILLED and tp.remaining == 70
    assert engine.orders.unprotected_positions() == []
    assert engine.orders.open_order_count() == placed_before  # nothing placed or cancelled by Omega
    assert await engine.sim_position() == 70

    await engine.quote(bid=Decimal("232.00"), ask=Decimal("232.02"), bid_size=1000)
    await until(
        lambda: tp.state is OrderState.FILLED and sl.state is OrderState.CANCELLED,
        what="the take-profit filled and the stop cancelled by the broker",
    )
    assert engine.orders.position_qty("AAPL") == 0 == await engine.sim_position()
    assert not sl.cancel_requested  # the broker's OCA did it, not a cancel from Omega
