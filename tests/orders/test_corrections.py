"""IB's execution corrections: the same execId base with a higher last suffix replaces the earlier execution."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from omega_tui.core.types import FillCorrected, FillReceived, OrderState, Side
from tests.orders.conftest import Rig, RigFactory, intent

D = Decimal
EXEC = "0000e0d5.65a1b2c3.01.01"
FIXED = "0000e0d5.65a1b2c3.01.02"


def _entry(rig: Rig, qty: int = 100, *, side: Side = Side.BUY, limit: str = "100.00") -> int:
    oid = rig.manager.submit(intent(qty, side=side, limit=limit, tp=None, sl=None))[0]
    rig.broker.ack(oid)
    return oid


def test_correction_replaces_quantity_and_price_not_an_extra_fill(make_rig: RigFactory) -> None:
    rig = make_rig()
    oid = _entry(rig)
    first, _st, _cr = rig.broker.fill(oid, 100, D("100.00"), exec_id=EXEC, commission=D("1.00"))
    # IB corrects it: 80 shares at 99.90, not 100 at 100.00 (cumulative figures restated)
    fixed = replace(first, exec_id=FIXED, quantity=80, price=D("99.90"), cum_qty=80, avg_price=D("99.90"))
    rig.manager.on_execution(fixed)

    pos = rig.manager.positions()["AAPL"]
    assert (pos.quantity, pos.avg_cost, pos.fills) == (80, D("99.90"), 1)
    assert pos.commissions == D("1.00")  # the replaced execution's commission stands until its own arrives
    o = rig.manager.order(oid)
    assert o is not None and set(o.fills) == {FIXED}
    assert (o.fill_qty, o.avg_fill_price) == (80, D("99.90"))
    assert o.state is OrderState.PARTIALLY_FILLED or o.state is OrderState.FILLED
    (audit,) = rig.records("fill_correction")
    assert (audit["replaces"], audit["exec_id"]) == (EXEC, FIXED)
    assert (audit["old_quantity"], audit["new_quantity"]) == (100, 80)
    assert (audit["old_price"], audit["new_price"]) == ("100.00", "99.90")
    assert (audit["position_before"], audit["position_after"]) == (100, 80)
    assert [r["fill"]["exec_id"] for r in rig.records("fill")] == [EXEC, FIXED]
    corrected = [e for e in rig.events if isinstance(e, FillCorrected)]
    assert len(corrected) == 1 and corrected[0].replaces.exec_id == EXEC and corrected[0].fill.exec_id == FIXED
    assert len([e for e in rig.events if isinstance(e, FillReceived)]) == 1  # no second fill on the bus

    rig.manager.on_execution(fixed)  # a duplicate of the correction: counted once
    rig.manager.on_execution(first)  # the old version again: ignored
    assert (pos.quantity, pos.avg_cost) == (80, D("99.90"))


def test_correction_of_a_closing_fill_then_realised_pnl_recomputed_exactly(make_rig: RigFactory) -> None:
    rig = make_rig()
    buy1 = _entry(rig, 100, limit="10.00")
    rig.broker.fill(buy1, 100, D("10.00"), commission=None)
    buy2 = _entry(rig, 100, limit="11.00")
    rig.broker.fill(buy2, 100, D("11.00"), commission=None)
    sell = _entry(rig, 150, side=Side.SELL, limit="12.00")
    closing, _st, _cr = rig.broker.fill(sell, 150, D("12.00"), exec_id="00aa.01", commission=None)
    last = _entry(rig, 50, limit="12.50")
    rig.broker.fill(last, 50, D("12.50"), commission=None)  # a later fill: the replay must keep its order
    pos = rig.manager.positions()["AAPL"]
    # before: realised (12 - 10.5) * 150 = 225; open 50 @ 10.5 + 50 @ 12.5 = 100 @ 11.5
    assert (pos.realized, pos.quantity, pos.avg_cost) == (D("225"), 100, D("11.5"))
    rig.manager.on_execution(replace(closing, exec_id="00aa.02", price=D("11.80")))
    # after: realised (11.80 - 10.5) * 150 = 195; the open quantity and its cost do not change
    assert (pos.realized, pos.quantity, pos.avg_cost) == (D("195"), 100, D("11.5"))


def test_correction_to_a_smaller_quantity_then_position_and_protection_follow(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    parent, tp, sl = rig.manager.submit(intent(100, limit="100.00", tp="101.00", sl="99.00"))
    for oid in (parent, tp, sl):
        rig.broker.ack(oid)
    fill, _st, _cr = rig.broker.fill(parent, 100, D("100.00"), exec_id=EXEC)
    rig.manager.on_execution(replace(fill, exec_id=FIXED, quantity=60, cum_qty=60))
    assert rig.manager.position_qty("AAPL") == 60
    for leg in (tp, sl):  # the children were resized to the corrected position (never beyond it)
        assert rig.broker.order(leg).quantity == 60


def test_commission_of_the_correction_replaces_the_earlier_one_in_either_order(make_rig: RigFactory) -> None:
    rig = make_rig()
    oid = _entry(rig)
    first, _st, _cr = rig.broker.fill(oid, 100, D("100.00"), exec_id=EXEC, commission=D("1.00"))
    rig.manager.on_execution(replace(first, exec_id=FIXED, quantity=100, price=D("100.01")))
    rig.manager.on_commission(rig.broker.commission_report(FIXED, D("1.20")))
    pos = rig.manager.positions()["AAPL"]
    assert pos.commissions == D("1.20")
    # the other order: the correction's commission first, the replaced one's late
    other = make_rig()
    oid2 = _entry(other)
    ex = other.broker.execution(oid2, 100, D("100.00"), exec_id=EXEC)
    other.manager.on_execution(ex)
    other.manager.on_execution(replace(ex, exec_id=FIXED, price=D("100.01")))
    other.manager.on_commission(other.broker.commission_report(FIXED, D("1.20")))
    other.manager.on_commission(other.broker.commission_report(EXEC, D("1.00")))
    assert other.manager.positions()["AAPL"].commissions == D("1.20")


async def test_restart_replays_the_correction_from_the_journal(make_rig: RigFactory) -> None:
    first = make_rig()
    oid = _entry(first)
    fill, _st, _cr = first.broker.fill(oid, 100, D("100.00"), exec_id=EXEC, commission=D("1.00"))
    first.manager.on_execution(replace(fill, exec_id=FIXED, quantity=90, price=D("99.95"), cum_qty=90))
    second = make_rig(clock=first.clock)
    second.manager.replay_journal()
    pos = second.manager.positions()["AAPL"]
    assert (pos.quantity, pos.avg_cost, pos.commissions) == (90, D("99.95"), D("1.00"))
    o = second.manager.order(oid)
    assert o is not None and set(o.fills) == {FIXED} and o.fill_qty == 90
    # the broker's execution list after the restart carries both versions: neither counts again
    second.manager.on_execution(fill)
    second.manager.on_execution(replace(fill, exec_id=FIXED, quantity=90, price=D("99.95"), cum_qty=90))
    assert (pos.quantity, pos.avg_cost) == (90, D("99.95"))
