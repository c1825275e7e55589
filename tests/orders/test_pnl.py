"""Positions and P&L from fills against hand-computed figures, and reconciliation with the broker's."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from omega_tui.core.positions import Position
from omega_tui.core.types import Side
from tests.orders.conftest import Rig, RigFactory, instrument, intent, quote

D = Decimal


def _filled_order(rig: Rig, side: Side, qty: int, price: str, commission: str) -> None:
    oid = rig.broker.placed[-1].order_id + 1 if rig.broker.placed else 1
    rig.manager.submit(intent(qty, side=side, limit=price, tp=None, sl=None))
    rig.broker.ack(oid)
    rig.broker.fill(oid, qty, D(price), commission=D(commission))


def test_fills_with_commissions_then_pnl_matches_hand_computed(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled_order(rig, Side.BUY, 100, "10.00", "1.00")
    _filled_order(rig, Side.BUY, 100, "11.00", "1.00")
    pos = rig.manager.positions()["AAPL"]
    assert (pos.quantity, pos.avg_cost) == (200, D("10.50"))
    _filled_order(rig, Side.SELL, 150, "12.00", "1.25")
    rig.hot.put_quote(quote("AAPL", "12.99", "13.01", rig.clock))  # mark = mid = 13.00

    # realised: (12 - 10.5) * 150 = 225; unrealised: (13 - 10.5) * 50 = 125; commissions 3.25
    assert (pos.quantity, pos.avg_cost) == (50, D("10.50"))
    assert rig.manager.day_pnl() == (D("225"), D("125"), D("3.25"))
    rig.manager.publish()
    pnl = rig.hot.get("pnl")
    assert (D(pnl["realized"]), D(pnl["unrealized"]), D(pnl["commissions"]), D(pnl["total"])) == (
        D(225),
        D(125),
        D("3.25"),
        D("346.75"),
    )
    view = rig.hot.get("positions")["AAPL"]
    assert view["quantity"] == 50 and D(view["avg_cost"]) == D("10.5") and D(view["mark"]) == D(13)


def test_fill_through_zero_then_closes_and_opens_the_rest_at_fill_price(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled_order(rig, Side.BUY, 10, "100.00", "0")
    _filled_order(rig, Side.SELL, 25, "102.00", "0")
    pos = rig.manager.positions()["AAPL"]
    assert (pos.quantity, pos.avg_cost, pos.realized) == (-15, D("102.00"), D("20.00"))
    assert pos.unrealized(D("101.00")) == D("15.00")  # short 15 from 102, marked at 101


def test_short_then_cover_then_realises_sign_correctly() -> None:
    pos = Position("X")
    pos.apply_fill(Side.SELL, 3, D("50.10"))
    pos.apply_fill(Side.SELL, 1, D("50.50"))
    assert pos.avg_cost == D("50.2")
    assert pos.apply_fill(Side.BUY, 4, D("49.90")) == D("1.20")
    assert (pos.quantity, pos.avg_cost, pos.cost_basis) == (0, D(0), D(0))


def test_futures_multiplier_then_pnl_scaled(make_rig: RigFactory) -> None:
    rig = make_rig(instruments=[instrument("ES", multiplier=50, min_tick="0.25")])
    rig.manager.submit(intent(2, key="ES", limit="5000.00", tp="5010.00", sl="4990.00"))
    rig.broker.ack(1)
    rig.broker.fill(1, 2, D("5000.00"), commission=D("4.50"))
    rig.broker.fill(2, 2, D("5010.00"), commission=D("4.50"))  # the take-profit
    assert rig.manager.day_pnl() == (D("1000.00"), D(0), D("9.00"))


def test_partial_close_then_realised_uses_average_cost_exactly() -> None:
    pos = Position("X")
    pos.apply_fill(Side.BUY, 3, D("10.00"))
    pos.apply_fill(Side.BUY, 3, D("10.01"))  # avg 10.005
    assert pos.apply_fill(Side.SELL, 2, D("10.02")) == D("0.03")
    assert pos.apply_fill(Side.SELL, 4, D("10.00")) == D("-0.02")
    assert pos.realized == D("0.01") and pos.quantity == 0


@pytest.mark.parametrize(
    ("broker_daily", "agrees"),
    [("346.75", True), ("346.76", True), ("346.74", True), ("346.77", False), ("340.00", False)],
)
def test_broker_pnl_differs_by_more_than_a_cent_then_flagged_and_journaled(
    make_rig: RigFactory, broker_daily: str, agrees: bool
) -> None:
    rig = make_rig()
    _filled_order(rig, Side.BUY, 100, "10.00", "1.00")
    _filled_order(rig, Side.BUY, 100, "11.00", "1.00")
    _filled_order(rig, Side.SELL, 150, "12.00", "1.25")
    rig.hot.put_quote(quote("AAPL", "12.99", "13.01", rig.clock))
    rig.manager.on_broker_pnl(D(broker_daily), None, None)
    rig.manager.publish()
    assert rig.hot.get("pnl")["agrees"] is agrees
    assert rig.hot.get("pnl")["broker_daily"] == broker_daily
    assert bool(rig.records("pnl_reconcile")) is not agrees


def test_a_pnl_disagreement_is_logged_in_cents(make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    """The warning shows money as a trader reads it, not with the Decimals' own exponents (IB's commissions
    have four decimals or more; the journal keeps the exact figures)."""
    rig = make_rig()
    _filled_order(rig, Side.BUY, 100, "10.00", "0.3485")
    rig.hot.put_quote(quote("AAPL", "10.49", "10.51", rig.clock))  # ours: 50 - 0.3485 = 49.6515
    with caplog.at_level(logging.WARNING, logger="omega_tui.core.orders"):
        rig.manager.on_broker_pnl(D("40.5"), None, None)
    warnings = [r.getMessage() for r in caplog.records if "P&L disagrees" in r.getMessage()]
    assert warnings == ["P&L disagrees with the broker: ours 49.65, broker 40.50"]
    (record,) = rig.records("pnl_reconcile")
    assert D(record["ours"]) == D("49.6515")


def test_broker_position_quantity_differs_then_position_flagged(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled_order(rig, Side.BUY, 10, "100.00", "1.00")
    rig.hot.put_quote(quote("AAPL", "101.00", "101.00", rig.clock))
    rig.manager.on_broker_position("AAPL", 10, D("100.10"), D("9.00"), D("0"))  # net: 10 - 1 = 9
    rig.manager.publish()
    assert rig.hot.get("positions")["AAPL"]["agrees"] is True
    rig.manager.on_broker_position("AAPL", 12, D("100.10"), D("9.00"), D("0"))
    rig.manager.publish()
    view = rig.hot.get("positions")["AAPL"]
    assert view["agrees"] is False and view["broker_quantity"] == 12
    assert rig.hot.get("pnl")["agrees"] is False
    assert rig.records("position_reconcile")[-1]["agrees"] is False


async def test_broker_position_never_traded_after_recovery_then_adopted_at_broker_cost(make_rig: RigFactory) -> None:
    rig = make_rig()
    await rig.manager.recover()
    rig.manager.on_broker_position("MSFT", -20, D("400.00"), None, None)
    assert rig.manager.position_qty("MSFT") == -20
    assert rig.manager.positions()["MSFT"].avg_cost == D("400.00")
    assert rig.records("position_adopted")


def test_reset_day_then_realised_and_commissions_restart_but_position_stays(make_rig: RigFactory) -> None:
    rig = make_rig()
    _filled_order(rig, Side.BUY, 10, "100.00", "1.00")
    _filled_order(rig, Side.SELL, 5, "101.00", "1.00")
    rig.manager.reset_day()
    pos = rig.manager.positions()["AAPL"]
    assert (pos.quantity, pos.realized, pos.commissions, pos.avg_cost) == (5, D(0), D(0), D("100.00"))
