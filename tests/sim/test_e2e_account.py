"""Account streams through ib_async: positions, portfolio, account values, summary, multi, PnL."""

from __future__ import annotations

import asyncio

from ib_async import IB, AccountValue, MarketOrder, PnL, PnLSingle, Stock

from omega_tui.sim import SimGateway
from tests.sim.conftest import pump, wait_until


def value(ib: IB, tag: str, currency: str = "USD") -> float:
    return float(next(v.value for v in ib.accountValues() if v.tag == tag and v.currency == currency))


async def buy_aapl(vgw: SimGateway, ib: IB, qty: int = 100) -> int:
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    assert c is not None
    trade = ib.placeOrder(c, MarketOrder("BUY", qty))
    await pump(vgw, lambda: trade.orderStatus.status == "Filled", what="fill")
    return c.conId


async def test_account_values_stream_after_a_fill(vgw: SimGateway, ib: IB) -> None:
    cash_before = value(ib, "TotalCashValue")
    updates: list[AccountValue] = []
    ib.accountValueEvent += updates.append
    con_id = await buy_aapl(vgw, ib)
    await wait_until(lambda: value(ib, "TotalCashValue") < cash_before, what="cash to drop")
    assert any(u.tag == "NetLiquidation" for u in updates)
    await wait_until(lambda: any(p.contract.conId == con_id for p in ib.portfolio()), what="portfolio row")
    [item] = [p for p in ib.portfolio() if p.contract.conId == con_id]
    assert item.position == 100 and item.marketPrice > 0 and item.averageCost > 0


async def test_portfolio_is_remarked_periodically(vgw: SimGateway, ib: IB) -> None:
    con_id = await buy_aapl(vgw, ib)
    marks: list[float] = []
    ib.updatePortfolioEvent += lambda item: marks.append(item.marketPrice) if item.contract.conId == con_id else None
    await pump(vgw, lambda: len(set(marks)) >= 2, step=1.0, what="two different marks")


async def test_positions_arrive_as_position_objects(vgw: SimGateway, ib: IB) -> None:
    con_id = await buy_aapl(vgw, ib, 300)
    positions = await asyncio.wait_for(ib.reqPositionsAsync(), 3)
    [p] = [p for p in positions if p.contract.conId == con_id]
    assert p.position == 300 and p.avgCost > 0 and p.account == "DU1234567"


async def test_account_summary_answers_with_every_requested_tag(ib: IB) -> None:
    rows = await asyncio.wait_for(ib.accountSummaryAsync(), 3)
    tags = {r.tag for r in rows}
    assert {"NetLiquidation", "TotalCashValue", "BuyingPower", "AvailableFunds"} <= tags
    assert all(r.account == "DU1234567" for r in rows)


async def test_account_updates_multi_is_answered_and_streams(vgw: SimGateway, ib: IB) -> None:
    seen: list[AccountValue] = []
    ib.accountValueEvent += seen.append
    await asyncio.wait_for(ib.reqAccountUpdatesMultiAsync("DU1234567", "MODEL1"), 3)
    assert any(r.tag == "NetLiquidation" and r.modelCode == "MODEL1" for r in seen)
    seen.clear()
    await buy_aapl(vgw, ib)
    await wait_until(lambda: any(r.modelCode == "MODEL1" for r in seen), what="a streamed multi update")


async def test_pnl_ticks_periodically(vgw: SimGateway, ib: IB) -> None:
    con_id = await buy_aapl(vgw, ib)
    pnl = ib.reqPnL("DU1234567")
    seen: list[PnL] = []
    ib.pnlEvent += seen.append
    await pump(vgw, lambda: len(seen) >= 2, step=0.5, what="two PnL updates")
    assert pnl.unrealizedPnL == pnl.unrealizedPnL  # not NaN
    single = ib.reqPnLSingle("DU1234567", "", con_id)
    singles: list[PnLSingle] = []
    ib.pnlSingleEvent += singles.append
    await pump(vgw, lambda: len(singles) >= 2, step=0.5, what="two PnLSingle updates")
    assert single.position == 100 and single.value > 0
    ib.cancelPnL("DU1234567")
    ib.cancelPnLSingle("DU1234567", "", con_id)


async def test_current_time_follows_the_virtual_clock(vgw: SimGateway, ib: IB) -> None:
    before = await ib.reqCurrentTimeAsync()
    await vgw.advance_async(120, step=5.0)
    after = await ib.reqCurrentTimeAsync()
    assert 119 <= (after - before).total_seconds() <= 121
