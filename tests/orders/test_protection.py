"""Protection of open positions: `protect_positions` after a halt's cancel-all, and protective orders (bracket
children and protection pairs) kept within the position as it changes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from omega_tui.core.types import ExecutionReport, OrderType, Side
from tests.orders.conftest import Rig, RigFactory, intent, quote


def _bracket_filled(rig: Rig, qty: int = 100, *, side: Side = Side.BUY) -> tuple[int, int, int]:
    """A bracket entry whose parent filled at 100.00: (parent, take-profit, stop-loss) ids, children working."""
    tp, sl = ("101.00", "99.00") if side is Side.BUY else ("99.00", "101.00")
    parent, tp_id, sl_id = rig.manager.submit(intent(qty, side=side, limit="100.00", tp=tp, sl=sl))
    for oid in (parent, tp_id, sl_id):
        rig.broker.ack(oid, "Submitted" if oid == parent else "PreSubmitted")
    rig.broker.fill(parent, qty, D("100.00"))
    return parent, tp_id, sl_id


def _cancel_all_children(rig: Rig, *ids: int) -> None:
    """What a halt's cancel-all does to the bracket children."""
    for oid in ids:
        rig.manager.cancel(oid, "halt")
        rig.broker.cancelled(oid)


def _working(rig: Rig, key: str = "AAPL") -> list:  # type: ignore[type-arg]
    return [o for o in rig.manager.working_orders() if o["key"] == key]


def test_protect_after_halt_then_oca_stop_and_take_profit_for_the_full_position(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    rig.hot.put_quote(quote("AAPL", "100.00", "100.02", rig.clock))
    _p, tp, sl = _bracket_filled(rig)
    _cancel_all_children(rig, tp, sl)
    assert _working(rig) == [] and rig.manager.unprotected_positions() == ["AAPL"]

    ids = rig.manager.protect_positions("resume by operator:key")

    assert len(ids) == 2
    take, stop = rig.broker.placed[-2:]
    assert [o.order_id for o in (take, stop)] == ids
    assert (take.order_type, stop.order_type) == (OrderType.LMT, OrderType.STP)
    assert take.action is Side.SELL and stop.action is Side.SELL
    assert take.quantity == stop.quantity == 100
    assert take.parent_id == stop.parent_id == 0
    assert take.oca_group == stop.oca_group != "" and take.oca_type == stop.oca_type == 2
    assert (take.transmit, stop.transmit) == (False, True)  # neither is live alone
    # signals.stop_loss_ticks = 20 and take_profit_ticks = 30 from the average cost 100.00, tick 0.01
    assert stop.aux_price == D("99.80") and take.limit_price == D("100.30")
    assert stop.order_ref.endswith(":stop_loss") and stop.order_ref.startswith("protect-AAPL-")
    assert take.order_ref == stop.order_ref.replace("stop_loss", "take_profit")
    roles = {o["role"] for o in _working(rig) if o["order_id"] in ids}
    assert roles == {"stop_loss", "take_profit"}
    (submit,) = [r for r in rig.records("submit") if r["intent_id"].startswith("protect-")]
    assert submit["intent"]["reason"] == "resume by operator:key"
    assert rig.manager.unprotected_positions() == []
    assert rig.manager.protect_positions("again") == []  # already covered: nothing more


def test_protect_when_bracket_children_still_work_then_nothing_placed(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.hot.put_quote(quote("AAPL", "100.00", "100.02", rig.clock))
    _bracket_filled(rig)
    placed = len(rig.broker.placed)
    assert rig.manager.protect_positions("recovery") == []
    assert len(rig.broker.placed) == placed


def test_protect_short_position_then_buy_stop_above_and_take_profit_below(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    rig.hot.put_quote(quote("AAPL", "99.98", "100.00", rig.clock))
    _p, tp, sl = _bracket_filled(rig, 50, side=Side.SELL)
    _cancel_all_children(rig, tp, sl)
    rig.manager.protect_positions("resume")
    take, stop = rig.broker.placed[-2:]
    assert take.action is Side.BUY and stop.action is Side.BUY and stop.quantity == 50
    assert stop.aux_price == D("100.20") and take.limit_price == D("99.70")


def test_protect_when_stop_would_trigger_at_once_then_placed_beyond_the_touch(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    _p, tp, sl = _bracket_filled(rig)
    _cancel_all_children(rig, tp, sl)
    # The market fell through where the stop would be (avg 100.00 - 20 ticks = 99.80): bid 99.50.
    rig.hot.put_quote(quote("AAPL", "99.50", "99.52", rig.clock))
    rig.manager.protect_positions("resume")
    take, stop = rig.broker.placed[-2:]
    assert stop.aux_price == D("99.30")  # 20 ticks below the bid: not triggerable now
    assert stop.aux_price < D("99.50")
    assert take.limit_price == D("100.30")


def test_protect_when_take_profit_would_be_marketable_then_beyond_the_other_side(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    _p, tp, sl = _bracket_filled(rig)
    _cancel_all_children(rig, tp, sl)
    rig.hot.put_quote(quote("AAPL", "101.00", "101.02", rig.clock))
    rig.manager.protect_positions("resume")
    take, stop = rig.broker.placed[-2:]
    assert stop.aux_price == D("99.80") and stop.aux_price < D("101.00")
    assert take.limit_price == D("101.32")


def test_protect_without_quote_then_waits_and_protects_on_first_quote(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    warnings: list[tuple[str, str, str]] = []
    rig.manager.set_event_log(lambda level, kind, text: warnings.append((level, kind, text)))
    _p, tp, sl = _bracket_filled(rig)
    _cancel_all_children(rig, tp, sl)
    placed = len(rig.broker.placed)
    assert rig.manager.protect_positions("resume") == []
    assert len(rig.broker.placed) == placed
    assert any("unprotected" in text for _l, _k, text in warnings)
    from omega_tui.core.types import QuoteUpdated

    q = quote("AAPL", "100.00", "100.02", rig.clock)
    rig.hot.put_quote(q)
    rig.bus.publish(QuoteUpdated(q))
    assert len(rig.broker.placed) == placed + 2
    assert rig.broker.placed[-1].aux_price == D("99.80")


def test_partial_reduce_then_protection_resized_never_beyond_position(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    rig.hot.put_quote(quote("AAPL", "100.00", "100.02", rig.clock))
    _p, tp, sl = _bracket_filled(rig)
    _cancel_all_children(rig, tp, sl)
    take_id, stop_id = rig.manager.protect_positions("resume")
    for oid in (take_id, stop_id):
        rig.broker.ack(oid)
    (reduce_id,) = rig.manager.submit(intent(40, side=Side.SELL, limit="100.00", reduce_only=True))
    rig.broker.ack(reduce_id)
    rig.broker.fill(reduce_id, 40, D("100.00"))

    assert rig.manager.position_qty("AAPL") == 60
    assert rig.broker.order(take_id).quantity == 60 and rig.broker.order(stop_id).quantity == 60
    assert all(o["remaining"] <= 60 for o in _working(rig))
    assert rig.records("protection_resize")


def test_manual_reduce_then_bracket_children_shrink_too(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    _p, tp, sl = _bracket_filled(rig)
    (reduce_id,) = rig.manager.submit(intent(30, side=Side.SELL, limit="100.00", reduce_only=True))
    rig.broker.ack(reduce_id)
    rig.broker.fill(reduce_id, 30, D("100.00"))
    assert rig.broker.order(tp).quantity == 70 and rig.broker.order(sl).quantity == 70


def test_position_closed_by_another_order_then_bracket_children_cancelled(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    _p, tp, sl = _bracket_filled(rig)
    (reduce_id,) = rig.manager.submit(intent(100, side=Side.SELL, limit="100.00", reduce_only=True))
    rig.broker.ack(reduce_id)
    rig.broker.fill(reduce_id, 100, D("100.00"))
    assert rig.manager.position_qty("AAPL") == 0
    assert tp in rig.broker.cancels and sl in rig.broker.cancels
    rig.broker.cancelled(tp)
    rig.broker.cancelled(sl)
    assert _working(rig) == []


def test_protection_cancelled_when_flat(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    rig.hot.put_quote(quote("AAPL", "100.00", "100.02", rig.clock))
    _p, tp, sl = _bracket_filled(rig)
    _cancel_all_children(rig, tp, sl)
    take_id, stop_id = rig.manager.protect_positions("resume")
    (flat_id,) = rig.manager.submit(intent(100, side=Side.SELL, limit="99.90", reduce_only=True))
    rig.broker.ack(flat_id)
    rig.broker.fill(flat_id, 100, D("99.90"))
    assert take_id in rig.broker.cancels and stop_id in rig.broker.cancels


def test_own_leg_fill_then_sibling_left_to_the_broker_oca(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    _p, tp, sl = _bracket_filled(rig)
    rig.broker.status(tp, "Submitted")
    rig.broker.fill(tp, 100, D("101.00"))
    assert rig.manager.position_qty("AAPL") == 0
    assert sl not in rig.broker.cancels  # OCA: the broker reduces the stop to zero and cancels it itself


def test_children_of_a_working_parent_are_not_touched(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    parent, tp, sl = rig.manager.submit(intent(100, limit="100.00", tp="101.00", sl="99.00"))
    for oid in (parent, tp, sl):
        rig.broker.ack(oid)
    rig.broker.fill(parent, 40, D("100.00"))  # partial: the children are held by the broker
    assert rig.broker.order(tp).quantity == 100 and rig.broker.cancels == []


def test_queued_protection_when_position_closed_meanwhile_then_dropped(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=3)
    rig.hot.put_quote(quote("AAPL", "100.00", "100.02", rig.clock))
    _p, tp, sl = _bracket_filled(rig)
    _cancel_all_children(rig, tp, sl)
    assert rig.manager.protect_positions("resume") == []  # the bracket used the tokens: queued
    assert rig.manager.queued_count() == 2
    # The position is closed elsewhere (an order placed at the desk, seen through its execution) meanwhile.
    rig.manager.on_execution(
        ExecutionReport(
            exec_id="desk.1",
            order_id=9999,
            perm_id=1,
            key="AAPL",
            con_id=1004,
            side=Side.SELL,
            quantity=100,
            price=D("100.00"),
            cum_qty=100,
            avg_price=D("100.00"),
            time_utc=datetime(2026, 11, 26, 15, tzinfo=UTC),
            recv_ns=0,
        )
    )
    assert rig.manager.position_qty("AAPL") == 0
    rig.clock.advance(5.0)
    rig.manager.pump()
    assert rig.manager.queued_count() == 0
    assert not [o for o in rig.broker.placed if o.order_ref.startswith("protect-")]


def test_partial_take_profit_fill_then_stop_reduced_by_the_broker_not_refitted(make_rig: RigFactory) -> None:
    """ocaType 2: a 30-share take-profit fill shrinks the stop to 70 at the broker; Omega mirrors it (journaled)
    and sends nothing for the stop (no modify, no cancel): the remaining 70 stay fully protected."""
    rig = make_rig(orders_per_second=45)
    _p, tp, sl = _bracket_filled(rig)
    rig.broker.status(tp, "Submitted")
    rig.broker.status(sl, "Submitted")
    placed_before = len(rig.broker.placed)
    rig.broker.fill(tp, 30, D("101.00"))
    assert rig.manager.position_qty("AAPL") == 70
    stop = rig.manager.order(sl)
    take = rig.manager.order(tp)
    assert stop is not None and take is not None
    assert stop.order.quantity == 70 and stop.remaining == 70  # as the broker now holds it
    assert take.remaining == 70
    assert len(rig.broker.placed) == placed_before and rig.broker.cancels == []  # nothing fights the broker
    assert rig.manager.unprotected_positions() == []
    (reduce,) = rig.records("oca_reduce")
    assert (reduce["order_id"], reduce["old_quantity"], reduce["new_quantity"]) == (sl, 100, 70)
    # the rest of the take-profit fills: the stop goes to zero (the broker cancels it), Omega cancels nothing
    rig.broker.fill(tp, 70, D("101.00"))
    assert rig.manager.position_qty("AAPL") == 0
    assert stop.remaining == 0 and rig.broker.cancels == []
    rig.broker.cancelled(sl, with_error=False)
    assert stop.state.value == "CANCELLED"


def test_partial_stop_fill_then_take_profit_reduced_alike(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    _p, tp, sl = _bracket_filled(rig, 100, side=Side.SELL)  # short 100: buy stop above, buy take-profit below
    rig.broker.fill(sl, 40, D("101.00"))
    take = rig.manager.order(tp)
    assert take is not None and take.order.quantity == 60
    assert rig.manager.position_qty("AAPL") == -60 and rig.manager.unprotected_positions() == []
    assert rig.broker.cancels == []


def test_position_reduced_elsewhere_after_oca_reduce_then_both_legs_fitted_once(make_rig: RigFactory) -> None:
    """A manual sale after the broker's reduction: the pair is fitted to the new position from the reduced
    sizes (70 -> 50), one modify per leg, never back to the original 100."""
    rig = make_rig(orders_per_second=45)
    _p, tp, sl = _bracket_filled(rig)
    rig.broker.fill(tp, 30, D("101.00"))
    manual = rig.manager.submit(intent(20, side=Side.SELL, limit="100.50", tp=None, sl=None))[0]
    rig.broker.ack(manual)
    rig.broker.fill(manual, 20, D("100.50"))
    assert rig.manager.position_qty("AAPL") == 50
    stop, take = rig.manager.order(sl), rig.manager.order(tp)
    assert stop is not None and take is not None
    assert stop.remaining == 50 and take.remaining == 50
    assert stop.order.quantity == 50 and take.order.quantity == 30 + 50
    assert rig.manager.unprotected_positions() == []


def test_take_profit_fill_before_the_parents_filled_status_then_stop_still_mirrored(make_rig: RigFactory) -> None:
    """Reordered reports: the take-profit's execution arrives while the parent is not yet known to be filled
    (its children still indexed as held); the stop is reduced all the same, and nothing is sent for it."""
    rig = make_rig(orders_per_second=45)
    parent, tp, sl = rig.manager.submit(intent(100, limit="100.00", tp="101.00", sl="99.00"))
    for oid in (parent, tp, sl):
        rig.broker.ack(oid)
    parent_fill = rig.broker.execution(parent, 100, D("100.00"))  # delivered late, below
    rig.manager.on_execution(rig.broker.execution(tp, 30, D("101.00")))
    stop = rig.manager.order(sl)
    assert stop is not None and stop.order.quantity == 70
    rig.manager.on_execution(parent_fill)
    rig.broker.status(parent, "Filled")
    assert rig.manager.position_qty("AAPL") == 70 and rig.manager.unprotected_positions() == []
    assert rig.broker.cancels == [] and all(o.order_id != sl for o in rig.broker.placed[3:])
