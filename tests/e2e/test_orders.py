"""Issue 5 end to end: bracket entries, fills, cancels and P&L through the wired runtime and the simulated gateway."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from omega_tui.core.broker.snapshot import BrokerSnapshot
from omega_tui.core.types import CancelAll, CancelOrder, OrderState, OrderType, Side
from omega_tui.core.views import PnLView
from tests.e2e.conftest import AAPL, ASK, Engine, EngineFactory, until, until_async

FILLED, CANCELLED, SUBMITTED = OrderState.FILLED, OrderState.CANCELLED, OrderState.SUBMITTED


async def test_bracket_entry_when_placed_then_parent_is_adaptive_and_children_wait_for_its_fill(engine: Engine) -> None:
    legs = await engine.place_bracket(engine.intent(quantity=100, limit="229.50"))
    entry, tp, sl = legs["entry"], legs["take_profit"], legs["stop_loss"]
    assert entry.order.order_type is OrderType.LMT and entry.order.limit_price == Decimal("229.50")
    assert tp.order.order_type is OrderType.LMT and tp.order.limit_price == Decimal("232.00")
    assert sl.order.order_type is OrderType.STP and sl.order.aux_price == Decimal("228.00")
    assert tp.order.parent_id == sl.order.parent_id == entry.order_id
    assert tp.order.oca_group == sl.order.oca_group != ""
    assert [o.state for o in (entry, tp, sl)] == [SUBMITTED] * 3
    assert (entry.ib_status, tp.ib_status, sl.ib_status) == ("Submitted", "PreSubmitted", "PreSubmitted")

    # What the broker says it holds, as the broker layer decodes it from the wire (reqAllOpenOrders).
    at_broker = {r.order.order_id: r for r in await BrokerSnapshot(engine.broker).open_orders()}
    assert set(at_broker) == {entry.order_id, tp.order_id, sl.order_id}
    echoed = at_broker[entry.order_id].order
    assert echoed.algo_strategy == "Adaptive"
    assert dict(echoed.algo_params) == {"adaptivePriority": "Urgent"}
    assert echoed.order_ref == f"{entry.intent_id}:entry"
    assert at_broker[tp.order_id].status == at_broker[sl.order_id].status == "PreSubmitted"
    assert at_broker[tp.order_id].order.algo_strategy == ""

    # The touch comes to the parent's limit: it fills, and only then do the protective legs go live.
    await engine.quote(bid=Decimal("229.48"), ask=Decimal("229.50"))
    await engine.pump_until(lambda: entry.state is FILLED, what="the parent filled")
    await until(lambda: tp.ib_status == sl.ib_status == "Submitted", what="children live")
    assert tp.state is SUBMITTED and sl.state is SUBMITTED
    assert engine.orders.position_qty("AAPL") == 100 == await engine.sim_position()
    live = {o.order_id: o.status for o in await engine.sim_open_orders()}
    assert live == {tp.order_id: "Submitted", sl.order_id: "Submitted"}


async def test_partial_fills_of_the_parent_are_counted_once_each_and_make_the_position(engine: Engine) -> None:
    await engine.quote(ask_size=50)  # a thin offer: each new quote lets 50 of the 200 fill
    legs = await engine.place_bracket(engine.intent(quantity=200, limit=str(ASK)))
    entry = legs["entry"]
    engine.gw.faults.duplicate_order_status(count=20)  # every status twice: must not count anything twice
    await engine.pump_until(lambda: entry.state is FILLED, what="the parent filled in parts")

    fills = list(entry.fills.values())
    assert len(fills) == 4 and len({f.exec_id for f in fills}) == 4
    assert [f.quantity for f in fills] == [50, 50, 50, 50]
    assert [f.cum_qty for f in fills] == [50, 100, 150, 200]
    assert OrderState.PARTIALLY_FILLED in [t[0] for t in entry.transitions]
    assert engine.orders.position_qty("AAPL") == sum(f.quantity for f in fills) == 200
    assert await engine.sim_position() == 200

    # The broker's executions delivered again (what recovery does) change nothing.
    await engine.orders.reconcile_now("test")
    assert engine.orders.position_qty("AAPL") == 200 and entry.filled == 200 and len(entry.fills) == 4
    position = engine.orders.positions()["AAPL"]
    assert position.fills == 4 and position.avg_cost == ASK
    await until(lambda: position.commissions == Decimal("4.00"), what="four commissions of 1.00 (the minimum)")


async def test_one_protective_leg_fills_then_the_other_is_cancelled_and_the_position_is_flat(engine: Engine) -> None:
    legs = await engine.filled_entry(quantity=100, take_profit="232.00")
    tp, sl = legs["take_profit"], legs["stop_loss"]
    await engine.quote(bid=Decimal("232.00"), ask=Decimal("232.02"))
    await engine.pump_until(lambda: tp.state is FILLED, what="the take-profit filled")
    await until(lambda: sl.state is CANCELLED, what="the stop-loss cancelled by the OCA group")
    assert engine.orders.position_qty("AAPL") == 0 == await engine.sim_position()
    assert await engine.sim_open_orders() == []
    assert all(o.state.is_terminal for o in legs.values())


async def test_entry_above_max_child_qty_is_placed_as_several_bracketed_slices(make_engine: EngineFactory) -> None:
    engine = await make_engine(execution={"max_child_qty": 100})
    intent = engine.intent(quantity=250, limit="229.50")
    result = await engine.place(intent)
    assert result.ok, result.message
    await until(
        lambda: (
            len(engine.intent_orders(intent.intent_id)) == 9
            and all(o.ib_status for o in engine.intent_orders(intent.intent_id).values())
        ),
        what="three bracketed slices acknowledged",
    )
    legs = engine.intent_orders(intent.intent_id)
    for k, qty in enumerate((100, 100, 50)):
        parent, tp, sl = legs[f"slice:{k}"], legs[f"take_profit:{k}"], legs[f"stop_loss:{k}"]
        assert parent.order.quantity == tp.order.quantity == sl.order.quantity == qty
        assert parent.order.algo_strategy == "Adaptive"
        assert tp.order.parent_id == sl.order.parent_id == parent.order_id
        assert (parent.ib_status, tp.ib_status, sl.ib_status) == ("Submitted", "PreSubmitted", "PreSubmitted")
    at_sim = {o.order_id: o for o in await engine.sim_open_orders()}
    assert set(at_sim) == {o.order_id for o in legs.values()}
    assert sorted(o.total_qty for o in at_sim.values() if o.parent_id == 0) == [50, 100, 100]
    assert engine.orders.working_entry_qty("AAPL") == 250


async def test_modify_changes_the_working_orders_at_the_broker(engine: Engine) -> None:
    legs = await engine.place_bracket(engine.intent(quantity=100, limit="229.50"))
    entry, sl = legs["entry"], legs["stop_loss"]
    assert engine.orders.modify(entry.order_id, limit_price=Decimal("229.60"), quantity=120)
    assert engine.orders.modify(sl.order_id, aux_price=Decimal("227.50"))

    async def at_broker() -> tuple[float | None, int, float | None]:
        parent, stop = await engine.sim_order(entry.order_id), await engine.sim_order(sl.order_id)
        assert parent is not None and stop is not None
        return parent.lmt_price, parent.total_qty, stop.aux_price

    async def modified() -> bool:
        return await at_broker() == (229.60, 120, 227.50)

    await until_async(modified, what="the modifications at the broker")
    reports = {r.order.order_id: r for r in await BrokerSnapshot(engine.broker).open_orders()}
    assert reports[entry.order_id].order.limit_price == Decimal("229.6")
    assert reports[entry.order_id].order.quantity == 120
    assert reports[sl.order_id].order.aux_price == Decimal("227.5")
    assert entry.state is SUBMITTED and sl.state is SUBMITTED and not entry.anomalies


async def test_cancel_of_a_working_bracket_parent_cancels_the_bracket_at_the_broker(engine: Engine) -> None:
    legs = await engine.place_bracket(engine.intent(quantity=100, limit="229.50"))
    result = await engine.runtime.handle(CancelOrder(legs["entry"].order_id, "test"))
    assert result.ok, result.message
    await until(lambda: all(o.state is CANCELLED for o in legs.values()), what="the whole bracket cancelled")
    assert await engine.sim_open_orders() == [] and await engine.sim_held_orders() == []
    assert engine.orders.working_entry_qty("AAPL") == 0 and engine.orders.position_qty("AAPL") == 0


async def test_cancel_all_with_live_bracket_children_leaves_nothing_working_at_the_broker(engine: Engine) -> None:
    filled = await engine.filled_entry(quantity=100)
    resting = await engine.place_bracket(engine.intent(quantity=100, limit="229.50"))
    assert len(await engine.sim_open_orders()) == 5  # two live children, a resting parent and its two children

    result = await engine.runtime.handle(CancelAll("test"))
    assert result.ok, result.message
    assert await engine.sim_open_orders() == [] and await engine.sim_held_orders() == []
    assert all(o.state.is_terminal for o in engine.all_orders())
    assert filled["entry"].state is FILLED
    assert [o.state for o in (filled["take_profit"], filled["stop_loss"])] == [CANCELLED, CANCELLED]
    assert all(o.state is CANCELLED for o in resting.values())
    assert engine.orders.position_qty("AAPL") == 100 == await engine.sim_position()


async def test_market_order_intent_is_denied_and_never_reaches_the_broker(engine: Engine) -> None:
    intent = engine.intent(limit=None, order_type=OrderType.MKT, take_profit="232.00", stop_loss="228.00")
    result = await engine.place(intent)
    assert not result.ok
    assert result.details["rule"] == "market_orders"
    assert engine.all_orders() == [] and engine.orders.queued_count() == 0
    # Nothing at the gateway either: no working, held, finished or rejected order (rejects use up their id).
    assert await engine.sim_open_orders() == [] and await engine.sim_held_orders() == []
    assert await engine.sim(lambda: engine.gw.server.exchange.completed_orders()) == []
    assert await engine.sim(lambda: dict(engine.gw.server.exchange._orders)) == {}
    journal = list(engine.runtime.journal.read())
    decisions = [r for r in journal if r.get("kind") == "risk_decision"]
    assert [d["decision"]["rule"] for d in decisions] == ["market_orders"]
    assert not [r for r in journal if r.get("kind") == "submit"]


async def test_round_trip_pnl_matches_hand_computed_values_and_the_sim_ledger(engine: Engine) -> None:
    legs = await engine.filled_entry(quantity=100, take_profit="231.00")  # bought 100 at the ask, 230.02
    await engine.quote(bid=Decimal("231.00"), ask=Decimal("231.02"))
    await engine.pump_until(lambda: legs["take_profit"].state is FILLED, what="the take-profit filled at 231.00")
    position = engine.orders.positions()["AAPL"]
    # IB-tiered-like stock commission: max(1.00, 0.005/share) capped at 1% of value: 1.00 a side here.
    await until(lambda: position.commissions == Decimal("2.00"), what="both commissions booked")

    assert position.quantity == 0
    assert position.realized == (Decimal("231.00") - Decimal("230.02")) * 100 == Decimal("98.00")
    realized, unrealized, commissions = engine.orders.day_pnl()
    assert (realized, unrealized, commissions) == (Decimal("98.00"), Decimal(0), Decimal("2.00"))
    assert engine.risk.day_pnl() == Decimal("96.00")

    # The sim's ledger folds commissions into cost and realised P&L, as IB does: same net figure.
    daily, sim_unrealized, sim_realized = await engine.sim(lambda: engine.gw.server.ledger.pnl())
    assert abs(sim_realized - 96.00) < 0.005 and sim_unrealized == 0 and abs(daily - 96.00) < 0.005
    assert await engine.sim_position(AAPL) == 0

    # And the broker's own P&L stream (reqPnL) agrees with Omega's within a cent.
    def view() -> PnLView | None:
        return engine.runtime.hot_state.get("pnl")  # type: ignore[no-any-return]

    def broker_daily() -> Decimal | None:
        v = view()
        daily = None if v is None else v["broker_daily"]
        return None if daily is None else Decimal(daily)

    await until(lambda: broker_daily() == Decimal("96"), what="the broker's daily P&L of 96.00")
    pnl = view()
    assert pnl is not None and pnl["agrees"] and Decimal(pnl["total"]) == Decimal("96.00")


async def test_sell_entry_bracket_fills_at_the_bid_and_its_stop_is_above(engine: Engine) -> None:
    legs = await engine.place_bracket(
        engine.intent(side=Side.SELL, quantity=100, limit="230.00", take_profit="228.00", stop_loss="232.00")
    )
    await engine.pump_until(lambda: legs["entry"].state is FILLED, what="the short entry filled at the bid")
    assert engine.orders.position_qty("AAPL") == -100 == await engine.sim_position()
    assert legs["stop_loss"].order.action is Side.BUY and legs["take_profit"].order.action is Side.BUY


async def test_execution_correction_from_the_gateway_replaces_the_fill_in_position_and_pnl(engine: Engine) -> None:
    """The simulated gateway corrects the entry's execution (80 shares at 229.90 instead of 100 at 230.02):
    the engine's position, average cost and journal follow, and the protection shrinks to the new position."""
    legs = await engine.filled_entry(quantity=100)
    entry = legs["entry"]
    (old_id,) = list(entry.fills)
    new_id = await asyncio.to_thread(engine.gw.faults.correct_execution, old_id, 80, 229.90)
    assert new_id.rpartition(".")[0] == old_id.rpartition(".")[0] and new_id > old_id

    await until(lambda: engine.orders.position_qty("AAPL") == 80, what="the position corrected to 80")
    pos = engine.orders.positions()["AAPL"]
    assert pos.avg_cost == Decimal("229.9") and pos.fills == 1
    assert set(entry.fills) == {new_id} and entry.fill_qty == 80
    assert await engine.sim_position() == 80
    await until(
        lambda: legs["take_profit"].order.quantity == 80 and legs["stop_loss"].order.quantity == 80,
        what="the protection resized to the corrected position",
    )
    records = [r for r in engine.runtime.journal.read() if r["kind"] == "fill_correction"]
    assert [(r["replaces"], r["exec_id"], r["new_quantity"]) for r in records] == [(old_id, new_id, 80)]
