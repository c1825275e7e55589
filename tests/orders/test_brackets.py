"""How intents become broker orders: brackets, Adaptive, OCA, transmit chain, slicing, refusals, flatten."""

from __future__ import annotations

from decimal import Decimal

import pytest

from omega_tui.core.orders import OrderRefused
from omega_tui.core.types import IntentSource, OrderState, OrderType, Side
from tests.fakes import FakeBroker
from tests.orders.conftest import RigFactory, intent, quote


def test_submit_entry_when_bracketed_then_places_parent_take_profit_and_stop_in_transmit_chain(
    make_rig: RigFactory,
) -> None:
    rig = make_rig()
    ids = rig.manager.submit(intent(100, intent_id="abc"))

    parent, tp, sl = rig.broker.placed
    assert ids == [parent.order_id, tp.order_id, sl.order_id]
    assert [o.transmit for o in rig.broker.placed] == [False, False, True]
    assert parent.parent_id == 0 and tp.parent_id == parent.order_id and sl.parent_id == parent.order_id
    assert (parent.action, tp.action, sl.action) == (Side.BUY, Side.SELL, Side.SELL)
    assert (parent.order_type, tp.order_type, sl.order_type) == (OrderType.LMT, OrderType.LMT, OrderType.STP)
    assert parent.limit_price == Decimal("100.00")
    assert tp.limit_price == Decimal("101.00")
    assert sl.aux_price == Decimal("99.00") and sl.limit_price is None
    assert all(o.quantity == 100 for o in rig.broker.placed)


def test_submit_entry_then_parent_uses_adaptive_algo_and_children_share_one_oca_group(make_rig: RigFactory) -> None:
    rig = make_rig(adaptive_priority="Patient")
    rig.manager.submit(intent(10))
    parent, tp, sl = rig.broker.placed
    assert parent.algo_strategy == "Adaptive"
    assert parent.algo_params == (("adaptivePriority", "Patient"),)
    assert tp.algo_strategy == "" and sl.algo_strategy == ""
    assert tp.oca_group == sl.oca_group != "" and parent.oca_group == ""
    assert tp.oca_type == sl.oca_type == 2  # reduce the other leg on a partial fill, never cancel it


def test_submit_entry_with_explicit_priority_then_intent_priority_wins(make_rig: RigFactory) -> None:
    rig = make_rig(adaptive_priority="Patient")
    rig.manager.submit(intent(10, priority="Urgent"))
    assert rig.broker.placed[0].algo_params == (("adaptivePriority", "Urgent"),)


def test_submit_entry_then_every_order_ref_links_to_the_intent_and_role(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, intent_id="sig-7"))
    assert [o.order_ref for o in rig.broker.placed] == ["sig-7:entry", "sig-7:take_profit", "sig-7:stop_loss"]
    roles = [rig.manager.order(o.order_id).role for o in rig.broker.placed]  # type: ignore[union-attr]
    assert roles == ["entry", "take_profit", "stop_loss"]


def test_submit_entry_then_submission_is_journaled_in_the_same_step_before_any_answer_is_acted_on(
    make_rig: RigFactory,
) -> None:
    # The "submit" record is serialised right after the transmitting leg's send (not before the first leg:
    # see OrderManager._place_group); a broker answering inside place_order is held until it is durable.
    rig = make_rig(broker=FakeBroker(auto_ack=True))
    seen: list[list[str]] = []
    place = rig.broker.place_order

    def spy(order):  # type: ignore[no-untyped-def]
        seen.append(rig.kinds())
        place(order)  # the transmitting leg: acknowledged synchronously, the whole bracket at once

    rig.broker.place_order = spy  # type: ignore[method-assign]
    parent, tp, sl = rig.manager.submit(intent(10))
    assert len(seen) == 3 and not any("submit" in kinds for kinds in seen)
    kinds = rig.kinds()
    assert "submit" in kinds and "order_state" in kinds
    assert kinds.index("submit") < kinds.index("order_state")  # nothing acted on before the record
    (rec,) = rig.records("submit")
    assert rec["intent"]["intent_id"] == rig.broker.placed[0].order_ref.split(":")[0]  # the intent rides along
    assert [leg["role"] for leg in rec["legs"]] == ["entry", "take_profit", "stop_loss"]
    order = rig.manager.order(parent)
    assert order is not None and order.state is OrderState.SUBMITTED
    assert [t[0] for t in order.transitions] == [OrderState.PENDING_SUBMIT, OrderState.SUBMITTED]
    assert all(rig.manager.order(oid).state is OrderState.SUBMITTED for oid in (tp, sl))  # type: ignore[union-attr]


def test_submit_sell_entry_then_protective_legs_are_buys_above_and_below(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, side=Side.SELL, limit="100.00", tp="98.00", sl="102.00"))
    parent, tp, sl = rig.broker.placed
    assert parent.action is Side.SELL and tp.action is Side.BUY and sl.action is Side.BUY


def test_submit_market_order_when_not_allowed_then_refuses_and_places_nothing(make_rig: RigFactory) -> None:
    rig = make_rig()
    with pytest.raises(OrderRefused, match="market orders are refused"):
        rig.manager.submit(intent(10, limit=None, order_type=OrderType.MKT))
    assert rig.broker.placed == []


def test_submit_market_order_when_allowed_then_places_market_parent(make_rig: RigFactory) -> None:
    rig = make_rig(allow_market_orders=True)
    rig.manager.submit(intent(10, limit=None, order_type=OrderType.MKT))
    assert rig.broker.placed[0].order_type is OrderType.MKT and rig.broker.placed[0].limit_price is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": "NOPE"}, "not a verified instrument"),
        ({"qty": 0}, "positive integer"),
        ({"limit": None}, "needs a limit price"),
        ({"tp": "99.50"}, "take-profit 99.50 must be above"),
        ({"sl": "100.50"}, "stop-loss 100.50 must be below"),
        ({"limit": "100.005"}, "tick grid"),
    ],
)
def test_submit_structurally_invalid_intent_then_refuses_with_reason(
    make_rig: RigFactory, kwargs: dict[str, object], message: str
) -> None:
    rig = make_rig()
    with pytest.raises(OrderRefused, match=message):
        rig.manager.submit(intent(**kwargs))  # type: ignore[arg-type]
    assert rig.broker.placed == []


def test_submit_when_broker_disconnected_then_refuses(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.broker.is_connected = False
    with pytest.raises(OrderRefused, match="not connected"):
        rig.manager.submit(intent(10))


def test_submit_entry_above_max_child_qty_then_slices_each_with_its_own_bracket(make_rig: RigFactory) -> None:
    rig = make_rig(max_child_qty=100, slice_interval_ms=500, orders_per_second=45)
    ids = rig.manager.submit(intent(250, intent_id="big"))

    assert len(ids) == 3  # only the first slice goes now
    assert [o.quantity for o in rig.broker.placed] == [100, 100, 100]
    assert rig.broker.placed[0].order_ref == "big:slice:0"
    assert rig.manager.working_entry_qty("AAPL") == 250  # queued slices count as exposure

    rig.clock.advance(0.499)
    rig.manager.pump()
    assert len(rig.broker.placed) == 3
    rig.clock.advance(0.001)
    rig.manager.pump()
    assert [o.order_ref for o in rig.broker.placed[3:]] == ["big:slice:1", "big:take_profit:1", "big:stop_loss:1"]
    rig.clock.advance(0.5)
    assert rig.manager.pump() is None
    last = rig.broker.placed[6:]
    assert [o.quantity for o in last] == [50, 50, 50]
    assert [o.transmit for o in last] == [False, False, True]
    assert last[1].parent_id == last[0].order_id and last[1].oca_group != rig.broker.placed[1].oca_group
    ids_in_order = [o.order_id for o in rig.broker.placed]
    assert ids_in_order == sorted(ids_in_order)  # ids rise in placement order, as IB requires


def test_cancel_slice_parent_then_unplaced_slices_of_the_intent_are_dropped(make_rig: RigFactory) -> None:
    rig = make_rig(max_child_qty=100)
    ids = rig.manager.submit(intent(300))
    assert rig.manager.cancel(ids[0])
    assert rig.manager.queued_count() == 0
    rig.clock.advance(5)
    rig.manager.pump()
    assert len(rig.broker.placed) == 3
    assert rig.manager.working_entry_qty("AAPL") == 100  # still pending cancel at the broker


def test_submit_reduce_only_then_places_one_marketable_limit_without_bracket(make_rig: RigFactory) -> None:
    rig = make_rig(flatten_offset_ticks=5)
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    rig.broker.fill(1, 10, Decimal("100.00"))
    rig.hot.put_quote(quote("AAPL", "100.10", "100.12", rig.clock))

    ids = rig.manager.submit(
        intent(50, side=Side.SELL, limit=None, tp=None, sl=None, reduce_only=True, source=IntentSource.FLATTEN)
    )
    (order,) = rig.broker.placed[1:]
    assert ids == [order.order_id]
    assert order.quantity == 10  # clamped to the position
    assert order.limit_price == Decimal("100.05")  # bid minus five ticks
    assert order.parent_id == 0 and order.oca_group == "" and order.algo_strategy == "" and order.transmit
    assert rig.manager.order(order.order_id).role == "flatten"  # type: ignore[union-attr]
    assert rig.manager.working_entry_qty("AAPL") == 0


def test_submit_reduce_only_when_flat_then_refuses(make_rig: RigFactory) -> None:
    rig = make_rig()
    with pytest.raises(OrderRefused, match="would not reduce"):
        rig.manager.submit(intent(10, side=Side.SELL, tp=None, sl=None, reduce_only=True))


def test_submit_entry_without_protective_legs_then_single_adaptive_limit(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    (order,) = rig.broker.placed
    assert order.transmit and order.algo_strategy == "Adaptive"
    assert rig.manager.order(order.order_id).state is OrderState.PENDING_SUBMIT  # type: ignore[union-attr]


async def test_through_the_risk_engine_on_a_loop_then_the_journal_reads_decision_submission_fill(
    make_rig: RigFactory,
) -> None:
    """The decision and the fill are serialised after the step (Journal.record_soon), the submission right
    after the send: the file still holds them in the order they happened, decision first."""
    import asyncio

    from omega_tui.core.risk import RiskEngine

    rig = make_rig()
    rig.hot.put_quote(quote("AAPL", "99.99", "100.01", rig.clock))
    risk = RiskEngine(rig.manager.settings, rig.clock, rig.bus, rig.hot, rig.journal, rig.manager)
    risk.set_instruments(rig.manager.instruments)
    decision = risk.submit(intent(10, intent_id="r1"))
    assert decision.approved, decision.reason
    parent = rig.broker.placed[0].order_id
    rig.broker.ack(parent)
    rig.broker.fill(parent, 10, Decimal("100.00"), commission=None)
    assert rig.manager.position_qty("AAPL") == 10
    await asyncio.sleep(0)
    kinds = [k for k in rig.kinds() if k in ("risk_decision", "submit", "order_state", "fill")]
    assert kinds[:3] == ["risk_decision", "submit", "order_state"] and "fill" in kinds
    assert kinds.index("fill") > kinds.index("submit")


async def test_a_halt_sends_the_global_cancel_and_publishes_halted_before_it_returns(make_rig: RigFactory) -> None:
    """The kill switch's urgent path: when `halt` returns, the global cancel is on the broker port, the working
    orders are PENDING_CANCEL and the `risk` section says HALTED (the control answer is read from it at once)."""
    import asyncio

    from omega_tui.core.risk import RiskEngine

    rig = make_rig()
    rig.hot.put_quote(quote("AAPL", "99.99", "100.01", rig.clock))
    risk = RiskEngine(rig.manager.settings, rig.clock, rig.bus, rig.hot, rig.journal, rig.manager)
    risk.set_instruments(rig.manager.instruments)
    assert risk.submit(intent(10, intent_id="k1")).approved
    parent = rig.broker.placed[0].order_id
    rig.broker.ack(parent)
    rig.broker.auto_cancel = False  # the broker answers later, as IB does
    result = risk.halt("operator:key", "kill switch")
    assert result.ok
    assert rig.broker.global_cancels == 1
    assert rig.manager.order(parent).state.value == "PENDING_CANCEL"
    assert rig.hot.get("risk")["trading_state"] == "HALTED"
    for placed in rig.broker.placed:  # the broker confirms: the waiting part of the cancel-all completes
        rig.broker.cancelled(placed.order_id)
    task = risk._cancel_task
    assert task is not None
    assert await asyncio.wait_for(asyncio.shield(task), 5) is True
