"""Position reconciliation with the broker's portfolio rows, in IB's terms: quantity and average cost (with the
open quantity's commissions folded in), unrealised P&L at the broker's mark, realised within one cent."""

from __future__ import annotations

from decimal import Decimal as D

from omega_tui.core.types import Side
from tests.orders.conftest import Rig, RigFactory, intent, quote


def _filled(rig: Rig, side: Side, qty: int, price: str, commission: str = "1.00") -> None:
    (oid,) = rig.manager.submit(intent(qty, side=side, limit=price, tp=None, sl=None))
    rig.broker.ack(oid)
    rig.broker.fill(oid, qty, D(price), commission=D(commission))


def test_matching_quantities_and_different_marks_then_agrees(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled(rig, Side.SELL, 100, "100.00")
    rig.hot.put_quote(quote("AAPL", "100.39", "100.41", rig.clock))  # our mark 100.40; the broker's is 100.50
    # IB: avgCost 99.99 (the 1.00 commission folded into a short's proceeds), unrealised (99.99 - 100.50) * 100
    rig.manager.on_broker_position("AAPL", -100, D("99.99"), D("-51.00"), D("0"), D("100.50"))
    rig.manager.publish()
    assert rig.hot.get("positions")["AAPL"]["agrees"] is True
    assert not rig.records("position_reconcile")


def test_partial_close_then_realised_and_average_cost_follow_ibs_commission_folding(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled(rig, Side.SELL, 100, "100.00")
    _filled(rig, Side.BUY, 40, "100.20")
    # IB: realised (99.99 - 100.20) * 40 - 1.00 = -9.40; avgCost stays 99.99; unrealised (99.99 - 100.50) * 60
    rig.manager.on_broker_position("AAPL", -60, D("99.99"), D("-30.60"), D("-9.40"), D("100.50"))
    assert rig.manager.positions()["AAPL"].agrees is True


def test_real_difference_over_a_cent_then_flagged_and_journaled(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled(rig, Side.SELL, 100, "100.00")
    rig.manager.on_broker_position("AAPL", -100, D("99.99"), D("-51.02"), D("0"), D("100.50"))
    rig.manager.publish()
    assert rig.hot.get("positions")["AAPL"]["agrees"] is False
    rec = rig.records("position_reconcile")[-1]
    assert rec["agrees"] is False and any("unrealised" in p for p in rec["problems"])


def test_average_cost_differs_then_flagged(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled(rig, Side.BUY, 100, "100.00")
    rig.manager.on_broker_position("AAPL", 100, D("100.05"), None, None, D("100.00"))
    assert rig.manager.positions()["AAPL"].agrees is False
    assert any("average cost" in p for p in rig.records("position_reconcile")[-1]["problems"])


def test_account_pnl_compared_at_the_brokers_marks(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled(rig, Side.SELL, 100, "100.00")
    rig.hot.put_quote(quote("AAPL", "100.39", "100.41", rig.clock))
    rig.manager.on_broker_position("AAPL", -100, D("99.99"), D("-51.00"), D("0"), D("100.50"))
    rig.manager.on_broker_pnl(D("-51.00"), D("-51.00"), D("0"))
    rig.manager.publish()
    assert rig.hot.get("pnl")["agrees"] is True
