"""Recovery: rebuild from the journal, reconcile with the broker's open orders and executions, adopt strays."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from omega_tui.core.types import BrokerOrder, OrderState, OrderType, Side
from tests.fakes import FakeBroker
from tests.orders.conftest import RigFactory, intent

D = Decimal


async def test_restart_then_orders_and_position_rebuilt_from_journal_and_reconciled(make_rig: RigFactory) -> None:
    first = make_rig()
    first.manager.submit(intent(10, intent_id="a"))  # 1 entry, 2 TP, 3 SL
    first.broker.ack(1)
    first.broker.fill(1, 10, D("100.00"), commission=D("1.00"))
    first.broker.ack(2, "Submitted")
    first.broker.ack(3, "Submitted")
    first.manager.submit(intent(5, key="MSFT", tp=None, sl=None, intent_id="b"))  # 4, never acknowledged
    # ---- the engine dies here (kill -9): nothing but the journal survives.
    broker = FakeBroker(first.clock, first_order_id=100)
    # At the broker: the TP partly filled while we were down, the SL is still open, order 4 never arrived,
    # and someone placed order 55 from TWS.
    broker.place_order(replace(first.broker.order(2)))
    broker.place_order(replace(first.broker.order(3)))
    tws = BrokerOrder(55, "MSFT", 1004, Side.SELL, 7, OrderType.LMT, D("400.00"), order_ref="")
    broker.place_order(tws)
    broker.books[2].filled = 0
    tp_fill = broker.execution(2, 4, D("101.00"), exec_id="tp-while-down")
    old_fill = first.manager.order(1).fills  # type: ignore[union-attr]
    broker.snapshot_executions = [*old_fill.values(), tp_fill]
    broker.snapshot_open_orders = [
        broker.open_order_report(2, "Submitted"),
        broker.open_order_report(3, "PreSubmitted"),
        broker.open_order_report(55, "Submitted"),
    ]
    second = make_rig(broker=broker, clock=first.clock)
    second.manager.set_snapshot_source(broker)

    await second.manager.recover()

    m = second.manager
    assert m.order(1).state is OrderState.FILLED  # type: ignore[union-attr]
    assert m.order(2).state is OrderState.PARTIALLY_FILLED and m.order(2).filled == 4  # type: ignore[union-attr]
    assert m.order(3).state is OrderState.SUBMITTED and m.order(3).role == "stop_loss"  # type: ignore[union-attr]
    assert m.order(4).state is OrderState.CANCELLED  # type: ignore[union-attr]
    adopted = m.order(55)
    assert adopted is not None and adopted.role == "adopted" and adopted.state is OrderState.SUBMITTED
    assert m.position_qty("AAPL") == 6 and m.positions()["AAPL"].commissions == D("1.00")
    assert m.open_order_count() == 3
    assert all(o["state"] in {s.value for s in OrderState} for o in m.working_orders())
    (rec,) = second.records("reconcile")
    assert (rec["adopted"], rec["closed"]) == (1, 1)


async def test_recover_twice_then_fills_are_not_counted_twice(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.set_snapshot_source(rig.broker)
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    ex, _, _ = rig.broker.fill(1, 4, D("100.00"))
    rig.broker.snapshot_executions = [ex]
    rig.broker.snapshot_open_orders = [rig.broker.open_order_report(1, "Submitted")]
    await rig.manager.recover()
    await rig.manager.recover()  # a reconnect
    assert rig.manager.position_qty("AAPL") == 4
    assert rig.manager.order(1).state is OrderState.PARTIALLY_FILLED  # type: ignore[union-attr]


async def test_anomalous_order_then_reconciled_to_the_brokers_state(make_rig: RigFactory) -> None:
    rig = make_rig(reconcile_delay_s=0)
    rig.manager.set_snapshot_source(rig.broker)
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.reject(1)  # 201 ...
    rig.broker.books[1].status = "Submitted"
    rig.broker.snapshot_open_orders = [rig.broker.open_order_report(1, "Submitted")]
    rig.broker.status(1, "Submitted")  # ... yet the broker says it works: REJECTED -> SUBMITTED is undeclared
    order = rig.manager.order(1)
    assert order is not None and order.state is OrderState.REJECTED and order.needs_reconcile
    await rig.manager.reconcile_now("test")
    assert order.state is OrderState.SUBMITTED and not order.needs_reconcile
    assert order.transitions[-1][0] is OrderState.SUBMITTED


async def test_execution_for_unknown_order_then_adopted_and_position_counted(make_rig: RigFactory) -> None:
    rig = make_rig()
    stray = BrokerOrder(900, "AAPL", 1004, Side.BUY, 3, OrderType.LMT, D("100"))
    rig.broker.place_order(stray)
    rig.broker.placed.clear()
    ex = rig.broker.execution(900, 3, D("100.00"))
    rig.manager.on_execution(ex)
    order = rig.manager.order(900)
    assert order is not None and order.role == "adopted" and order.state is OrderState.FILLED
    assert rig.manager.position_qty("AAPL") == 3


async def test_kill_between_the_send_and_the_journal_write_then_orders_adopted_and_linked_to_the_intent(
    make_rig: RigFactory,
) -> None:
    """The journal's one loss window (core/journal.py): the bracket went out, its "submit" record was still
    queued for the writer when the engine died. Recovery adopts the orders from the broker's open orders
    and executions, linked to the intent by their orderRef."""
    first = make_rig()
    first.journal._wake_writer = lambda: None  # type: ignore[method-assign]  # the writer never gets to run
    ids = first.manager.submit(intent(10, intent_id="lost"))  # 1 entry, 2 TP, 3 SL: on the wire
    assert len(first.broker.placed) == 3 and first.journal.written_seq == 0
    # ---- kill -9: the queued records die with the process.
    first.journal._pending.clear()
    assert "submit" not in first.kinds()
    broker = FakeBroker(first.clock, first_order_id=100)
    for oid in ids:
        broker.place_order(replace(first.broker.order(oid)))
    entry_fill = broker.execution(1, 10, D("100.00"), exec_id="entry-while-down")
    broker.snapshot_executions = [entry_fill]
    broker.snapshot_open_orders = [broker.open_order_report(2, "Submitted"), broker.open_order_report(3, "Submitted")]
    second = make_rig(broker=broker, clock=first.clock)
    second.manager.set_snapshot_source(broker)

    await second.manager.recover()

    m = second.manager
    orders = {o.order_id: o for o in m.orders_for_intent("lost")}
    assert sorted(orders) == [1, 2, 3]  # every order of the bracket, linked to its intent
    assert all(o.intent_id == "lost" for o in orders.values())
    # The entry is known from its execution only (a placeholder: "adopted"); the children from their openOrder,
    # with Omega's orderRef: their roles are back, so they protect the position and nothing is added beside them.
    assert [orders[i].role for i in (1, 2, 3)] == ["adopted", "take_profit", "stop_loss"]
    assert m.unprotected_positions() == [] and m.protect_positions("recovered") == []
    assert [orders[i].order.order_ref for i in (1, 2, 3)] == ["lost:entry", "lost:take_profit", "lost:stop_loss"]
    assert orders[1].state is OrderState.FILLED and m.position_qty("AAPL") == 10
    assert orders[2].state is OrderState.SUBMITTED and orders[3].state is OrderState.SUBMITTED
    adopted = [r for r in second.records("adopted") if r["order"]["order_ref"].startswith("lost:")]
    assert len(adopted) == 3  # the journal now explains them
    third = make_rig(broker=FakeBroker(first.clock, first_order_id=200), clock=first.clock)
    third.manager.replay_journal()  # a later restart rebuilds the same roles from the "adopted" records
    assert [third.manager.order(i).role for i in (1, 2, 3)] == ["adopted", "take_profit", "stop_loss"]  # type: ignore[union-attr]


async def test_modify_record_lost_in_a_crash_then_reconcile_takes_the_brokers_figures_and_journals_it(
    make_rig: RigFactory,
) -> None:
    """A modification reached the broker but its "modify" record was still queued when the engine died: after
    the restart the journal's order has the old figures, the broker's openOrder the new ones; reconciliation
    copies the broker's (quantity, limit, stop) and journals that it did, so a later replay agrees."""
    first = make_rig()
    entry, tp, sl = first.manager.submit(intent(10, intent_id="m"))  # limit 100.00, TP 101.00, SL 99.00
    for oid in (entry, tp, sl):
        first.broker.ack(oid)
    first.journal.flush()  # everything so far is in the file
    first.journal._wake_writer = lambda: None  # type: ignore[method-assign]  # the writer never runs again
    assert first.manager.modify(entry, quantity=20, limit_price=D("100.05"))
    assert first.manager.modify(sl, aux_price=D("99.50"))
    # ---- kill -9: the queued "modify" records die with the process; the broker has the modifications.
    first.journal._pending.clear()
    assert "modify" not in first.kinds()
    broker = FakeBroker(first.clock, first_order_id=100)
    for oid in (entry, tp, sl):
        broker.place_order(first.broker.order(oid))  # the broker's current orders (modified ones included)
    reports = [broker.open_order_report(oid, "Submitted") for oid in (entry, tp, sl)]
    # IB echoes prices an order type does not use (a stop's lmtPrice, a limit's auxPrice): not disagreements.
    reports[1] = replace(reports[1], order=replace(reports[1].order, aux_price=D("3.00")))
    reports[2] = replace(reports[2], order=replace(reports[2].order, limit_price=D("98.00")))
    broker.snapshot_open_orders = reports
    second = make_rig(broker=broker, clock=first.clock)
    second.manager.replay_journal()
    assert second.manager.order(entry).order.quantity == 10  # type: ignore[union-attr]  # the journal's view
    second.manager.set_snapshot_source(broker)

    await second.manager.recover()

    m = second.manager
    parent, stop, take = m.order(entry), m.order(sl), m.order(tp)
    assert parent is not None and stop is not None and take is not None
    assert (parent.order.quantity, parent.order.limit_price) == (20, D("100.05"))
    assert stop.order.aux_price == D("99.50") and stop.order.limit_price is None  # an STP keeps no limit
    assert (take.order.quantity, take.order.limit_price, take.order.aux_price) == (10, D("101.00"), None)
    assert parent.state is OrderState.SUBMITTED and stop.state is OrderState.SUBMITTED
    assert broker.placed == [first.broker.order(oid) for oid in (entry, tp, sl)]  # nothing was sent
    records = [r for r in second.records("modify") if r.get("source") == "reconcile"]
    assert {r["order_id"]: r["before"] for r in records} == {
        entry: {"quantity": 10, "limit_price": "100.00"},
        sl: {"aux_price": "99.00"},
    }
    # A later restart replays the reconciled figures from the journal.
    third = make_rig(broker=FakeBroker(first.clock, first_order_id=200), clock=first.clock)
    third.manager.replay_journal()
    assert third.manager.order(entry).order.quantity == 20  # type: ignore[union-attr]
    assert third.manager.order(sl).order.aux_price == D("99.50")  # type: ignore[union-attr]


async def test_reconcile_leaves_a_modification_sent_after_its_request_alone(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.set_snapshot_source(rig.broker)
    (oid,) = rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(oid)
    stale = rig.broker.open_order_report(oid, "Submitted")  # taken before the modification below
    source = rig.broker

    class _Snapshot:
        async def open_orders(self) -> list[object]:
            rig.clock.advance(0.001)
            assert rig.manager.modify(oid, limit_price=D("100.02"))  # sent while the request is out
            return [stale]

        async def executions(self) -> list[object]:
            return await source.executions()  # type: ignore[return-value]

    rig.manager.set_snapshot_source(_Snapshot())  # type: ignore[arg-type]
    rig.clock.advance(0.001)
    await rig.manager.reconcile_now("test")
    order = rig.manager.order(oid)
    assert order is not None and order.order.limit_price == D("100.02")
    assert not [r for r in rig.records("modify") if r.get("source") == "reconcile"]
