"""Order life cycles through unmodified ib_async: fills, partials, brackets, algos, modify, cancel, rejects."""

from __future__ import annotations

import asyncio

from ib_async import IB, Contract, Future, LimitOrder, MarketOrder, Order, Stock, TagValue, Trade

from omega_tui.sim import SimGateway
from tests.sim.conftest import LogGrab, connect, pump, wait_until

AAPL = Stock("AAPL", "SMART", "USD")


async def quote(ib: IB, contract: Contract) -> tuple[float, float]:
    [t] = await asyncio.wait_for(ib.reqTickersAsync(contract), 3)
    return t.bid, t.ask


async def aapl(ib: IB) -> Contract:
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    assert c is not None
    return c


def status(trade: Trade) -> str:
    return trade.orderStatus.status


async def test_resting_limit_order_is_submitted_modified_and_cancelled(vgw: SimGateway, ib: IB, iblog: LogGrab) -> None:
    c = await aapl(ib)
    bid, _ = await quote(ib, c)
    trade = ib.placeOrder(c, LimitOrder("BUY", 100, round(bid - 5, 2)))
    await wait_until(lambda: status(trade) == "Submitted", what="Submitted")
    assert trade.order.permId > 0 and trade.orderStatus.remaining == 100
    assert trade.orderStatus.clientId == 1

    trade.order.lmtPrice = round(bid - 4, 2)
    ib.placeOrder(c, trade.order)
    await wait_until(lambda: any(e.message == "Modified" for e in trade.log), what="modification acknowledged")
    assert vgw.server.exchange.order(1, trade.order.orderId).lmt_price == round(bid - 4, 2)  # type: ignore[union-attr]

    ib.cancelOrder(trade.order)
    await wait_until(lambda: status(trade) == "Cancelled", what="Cancelled")
    await wait_until(lambda: iblog.has("Error 202"))


async def test_marketable_order_fills_in_parts_with_commissions(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    _, ask = await quote(ib, c)
    trade = ib.placeOrder(c, LimitOrder("BUY", 3000, round(ask + 2, 2)))
    await pump(vgw, lambda: status(trade) == "Filled", what="Filled", limit=10)
    assert len(trade.fills) > 1, "3000 shares against displayed round lots fill in parts"
    assert sum(f.execution.shares for f in trade.fills) == 3000
    assert all(f.execution.price <= round(ask + 2, 2) for f in trade.fills)
    await wait_until(lambda: all(f.commissionReport.commission > 0 for f in trade.fills), what="commissions")
    assert trade.orderStatus.filled == 3000 and trade.orderStatus.remaining == 0
    avg = sum(f.execution.shares * f.execution.price for f in trade.fills) / 3000
    assert abs(trade.orderStatus.avgFillPrice - avg) < 1e-6
    await wait_until(lambda: any(p.contract.conId == c.conId and p.position == 3000 for p in ib.positions()))
    await wait_until(lambda: any(p.contract.conId == c.conId and p.position == 3000 for p in ib.portfolio()))


async def test_market_order_fills_and_sell_realises_pnl(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    buy = ib.placeOrder(c, MarketOrder("BUY", 100))
    await pump(vgw, lambda: status(buy) == "Filled", what="buy filled")
    sell = ib.placeOrder(c, MarketOrder("SELL", 100))
    await pump(vgw, lambda: status(sell) == "Filled", what="sell filled")
    await wait_until(lambda: sell.fills and sell.fills[-1].commissionReport.execId != "", what="commission report")
    assert sell.fills[-1].commissionReport.realizedPNL != 0
    await wait_until(lambda: not any(p.contract.conId == c.conId for p in ib.positions()), what="flat position")


async def test_bracket_parent_fill_activates_children_and_one_fill_cancels_the_other(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    _, ask = await quote(ib, c)
    parent, take_profit, stop_loss = ib.bracketOrder(
        "BUY", 100, round(ask + 0.5, 2), round(ask + 3, 2), round(ask - 3, 2)
    )
    trades = [ib.placeOrder(c, o) for o in (parent, take_profit, stop_loss)]
    await pump(vgw, lambda: status(trades[0]) == "Filled", what="parent filled")
    await wait_until(
        lambda: status(trades[1]) == "Submitted" and status(trades[2]) == "Submitted", what="children live"
    )
    vgw.faults.shock("AAPL", 5.0)
    await pump(vgw, lambda: status(trades[1]) == "Filled", what="take-profit filled")
    await wait_until(lambda: status(trades[2]) == "Cancelled", what="stop-loss cancelled by OCA")


async def test_bracket_legs_are_held_until_the_last_leg_transmits(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    bid, _ = await quote(ib, c)
    parent, take_profit, stop_loss = ib.bracketOrder(
        "BUY", 100, round(bid - 5, 2), round(bid + 5, 2), round(bid - 8, 2)
    )
    t_parent = ib.placeOrder(c, parent)
    t_tp = ib.placeOrder(c, take_profit)
    await vgw.advance_async(0.5)
    await asyncio.sleep(0.05)
    assert status(t_parent) == "PendingSubmit" and status(t_tp) == "PendingSubmit"
    t_sl = ib.placeOrder(c, stop_loss)
    await wait_until(lambda: status(t_parent) == "Submitted", what="parent released")
    await wait_until(lambda: status(t_tp) == "PreSubmitted" and status(t_sl) == "PreSubmitted", what="children held")


async def test_adaptive_algo_params_are_echoed(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    bid, _ = await quote(ib, c)
    order = LimitOrder(
        "BUY", 100, round(bid - 3, 2), algoStrategy="Adaptive", algoParams=[TagValue("adaptivePriority", "Urgent")]
    )
    trade = ib.placeOrder(c, order)
    await wait_until(lambda: status(trade) == "Submitted")
    other = await connect(vgw, client_id=2)
    try:
        trades = await asyncio.wait_for(other.reqAllOpenOrdersAsync(), 3)
        [seen] = [t for t in trades if t.order.orderId == trade.order.orderId]
        assert seen.order.algoStrategy == "Adaptive"
        assert seen.order.algoParams == [TagValue("adaptivePriority", "Urgent")]
        assert seen.order.clientId == 1
    finally:
        other.disconnect()


async def test_adaptive_marketable_order_fills_after_its_delay(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    _, ask = await quote(ib, c)
    order = LimitOrder(
        "BUY", 100, round(ask + 1, 2), algoStrategy="Adaptive", algoParams=[TagValue("adaptivePriority", "Patient")]
    )
    trade = ib.placeOrder(c, order)
    await wait_until(lambda: status(trade) == "Submitted")
    assert not trade.fills
    await pump(vgw, lambda: status(trade) == "Filled", what="Adaptive fill")


async def test_global_cancel_cancels_every_clients_orders(vgw: SimGateway, ib: IB) -> None:
    other = await connect(vgw, client_id=2)
    try:
        c = await aapl(ib)
        bid, _ = await quote(ib, c)
        mine = ib.placeOrder(c, LimitOrder("BUY", 100, round(bid - 5, 2)))
        theirs = other.placeOrder(c, LimitOrder("BUY", 100, round(bid - 6, 2)))
        await wait_until(lambda: status(mine) == "Submitted" and status(theirs) == "Submitted")
        ib.reqGlobalCancel()
        await wait_until(lambda: status(mine) == "Cancelled" and status(theirs) == "Cancelled", what="all cancelled")
    finally:
        other.disconnect()


async def test_client_zero_with_auto_bind_sees_other_clients_orders(vgw: SimGateway, ib: IB) -> None:
    master = await connect(vgw, client_id=0)
    seen: list[Trade] = []
    master.openOrderEvent += seen.append
    try:
        c = await aapl(ib)
        bid, _ = await quote(ib, c)
        trade = ib.placeOrder(c, LimitOrder("BUY", 100, round(bid - 5, 2)))
        await wait_until(lambda: any(t.order.orderId == trade.order.orderId for t in seen), what="master sees it")
        assert seen[-1].order.clientId == 1
    finally:
        master.disconnect()


async def reject_code(ib: IB, iblog: LogGrab, contract: Contract, order: Order) -> Trade:
    trade = ib.placeOrder(contract, order)
    await wait_until(lambda: status(trade) == "Cancelled", what=f"reject of {order}")
    return trade


async def test_zero_quantity_is_rejected(ib: IB, iblog: LogGrab) -> None:
    trade = await reject_code(ib, iblog, await aapl(ib), LimitOrder("BUY", 0, 100.0))
    assert any(e.errorCode == 201 for e in trade.log)


async def test_price_off_the_tick_grid_is_rejected(ib: IB, iblog: LogGrab) -> None:
    trade = await reject_code(ib, iblog, await aapl(ib), LimitOrder("BUY", 100, 100.005))
    assert any(e.errorCode == 201 and "minimum price variation" in e.message for e in trade.log)


async def test_unknown_contract_order_is_rejected(ib: IB, iblog: LogGrab) -> None:
    trade = await reject_code(ib, iblog, Stock("NOPE", "SMART", "USD"), LimitOrder("BUY", 1, 1.0))
    assert any(e.errorCode == 200 for e in trade.log)


async def test_contract_without_permission_is_rejected(ib: IB, iblog: LogGrab) -> None:
    [cl] = await ib.qualifyContractsAsync(Future("CL", "20261217", "NYMEX"))
    assert cl is not None
    trade = await reject_code(ib, iblog, cl, LimitOrder("BUY", 1, 70.0))
    assert any(e.errorCode == 201 and "permission" in e.message for e in trade.log)


async def test_reject_next_fault_rejects_one_valid_order(vgw: SimGateway, ib: IB, iblog: LogGrab) -> None:
    c = await aapl(ib)
    vgw.faults.reject_next_order("Simulated margin check")
    trade = await reject_code(ib, iblog, c, LimitOrder("BUY", 100, 100.0))
    assert any("Simulated margin check" in e.message for e in trade.log)
    ok = ib.placeOrder(c, LimitOrder("BUY", 100, 100.0))
    await wait_until(lambda: status(ok) == "Submitted")


async def test_reusing_a_finished_order_id_gets_103(vgw: SimGateway, ib: IB, iblog: LogGrab) -> None:
    c = await aapl(ib)
    trade = ib.placeOrder(c, LimitOrder("BUY", 100, 100.0))
    await wait_until(lambda: status(trade) == "Submitted")
    ib.cancelOrder(trade.order)
    await wait_until(lambda: status(trade) == "Cancelled")
    ib.client.placeOrder(trade.order.orderId, c, LimitOrder("BUY", 100, 100.0))
    await wait_until(lambda: iblog.has("Error 103"), what="duplicate order id")


async def test_cancel_of_unknown_order_gets_10147(ib: IB, iblog: LogGrab) -> None:
    ib.client.cancelOrder(987654)
    await wait_until(lambda: iblog.has("10147"))


async def test_what_if_returns_margin_and_commission(ib: IB) -> None:
    c = await aapl(ib)
    state = await asyncio.wait_for(ib.whatIfOrderAsync(c, LimitOrder("BUY", 100, 200.0)), 3)
    assert float(state.initMarginChange) > 0
    assert state.commission > 0 and state.commissionCurrency == "USD"
    assert ib.openTrades() == []


async def test_what_if_without_permission_gets_the_permission_error(ib: IB, iblog: LogGrab) -> None:
    [cl] = await ib.qualifyContractsAsync(Future("CL", "20261217", "NYMEX"))
    assert cl is not None
    state = await asyncio.wait_for(ib.whatIfOrderAsync(cl, LimitOrder("BUY", 1, 70.0)), 3)
    assert not state or state.initMarginChange in ("", None)
    assert iblog.has("permission")


async def test_executions_and_completed_orders_are_replayed(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    trade = ib.placeOrder(c, MarketOrder("BUY", 200))
    await pump(vgw, lambda: status(trade) == "Filled")
    fills = await asyncio.wait_for(ib.reqExecutionsAsync(), 3)
    assert sum(f.execution.shares for f in fills) == 200
    assert {f.execution.permId for f in fills} == {trade.order.permId}
    from ib_async import ExecutionFilter

    assert await asyncio.wait_for(ib.reqExecutionsAsync(ExecutionFilter(symbol="MSFT")), 3) == []
    done = await asyncio.wait_for(ib.reqCompletedOrdersAsync(False), 3)
    assert any(t.order.permId == trade.order.permId and t.orderStatus.status == "Filled" for t in done)


async def test_reconnect_sees_its_open_orders_and_fills(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    bid, _ = await quote(ib, c)
    resting = ib.placeOrder(c, LimitOrder("BUY", 100, round(bid - 5, 2)))
    filled = ib.placeOrder(c, MarketOrder("BUY", 100))
    await pump(vgw, lambda: status(filled) == "Filled" and status(resting) == "Submitted")
    ib.disconnect()
    await wait_until(lambda: 1 not in vgw.server.sessions)
    again = await connect(vgw, client_id=1)
    try:
        assert {t.order.orderId for t in again.openTrades()} == {resting.order.orderId}
        assert any(f.execution.orderId == filled.order.orderId for f in again.fills())
        assert any(p.contract.conId == c.conId and p.position == 100 for p in again.positions())
    finally:
        again.disconnect()
