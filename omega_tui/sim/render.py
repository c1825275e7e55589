"""Engine objects → message value dicts for the wire table (and placeOrder values → SimOrder).

Everything here is pure: no sockets, no state. Callers must know: a SimOrder created by
`order_from_wire` keeps the decoded placeOrder values in `extras["wire"]`, which `open_order_values`
echoes back (that is how algo params, OCA fields and the rest round-trip unchanged).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from omega_tui.sim.engine import (
    SimCommission,
    SimContract,
    SimExecution,
    SimOrder,
    WhatIfResult,
)
from omega_tui.sim.wire import UNSET_DOUBLE


def contract_values(c: SimContract, exchange: str = "") -> dict[str, Any]:
    """The C12/C11 contract block of a contract (exchange overridable, e.g. the routed one)."""
    return {
        "conId": c.con_id,
        "symbol": c.symbol,
        "secType": c.sec_type,
        "lastTradeDateOrContractMonth": c.last_trade_date,
        "strike": c.strike,
        "right": c.right,
        "multiplier": c.multiplier,
        "exchange": exchange or c.exchange,
        "primaryExchange": c.primary_exchange,
        "currency": c.currency,
        "localSymbol": c.local_symbol,
        "tradingClass": c.trading_class,
    }


def _escape_non_ascii(text: str) -> str:
    # TWS escapes non-ASCII long names as \uXXXX since v153; ib_async decodes them with unicode-escape.
    return "".join(ch if ord(ch) < 128 else f"\\u{ord(ch):04x}" for ch in text)


def contract_details_values(req_id: int, c: SimContract, exchange: str = "") -> dict[str, Any]:
    """A contractData message for one contract."""
    return {
        "reqId": req_id,
        "symbol": c.symbol,
        "secType": c.sec_type,
        "lastTradeDate": c.last_trade_date,
        "strike": c.strike,
        "right": c.right,
        "exchange": exchange or c.exchange,
        "currency": c.currency,
        "localSymbol": c.local_symbol,
        "marketName": c.market_name or c.trading_class,
        "tradingClass": c.trading_class,
        "conId": c.con_id,
        "minTick": c.min_tick,
        "multiplier": c.multiplier,
        "orderTypes": c.order_types,
        "validExchanges": c.valid_exchanges,
        "priceMagnifier": 1,
        "underConId": c.under_con_id,
        "longName": _escape_non_ascii(c.long_name),
        "primaryExchange": c.primary_exchange,
        "contractMonth": c.contract_month,
        "industry": c.industry,
        "category": c.category,
        "subcategory": c.subcategory,
        "timeZoneId": c.time_zone_id,
        "tradingHours": c.trading_hours,
        "liquidHours": c.liquid_hours,
        "evRule": "",
        "evMultiplier": None,
        "secIdList": [],
        "aggGroup": 1,
        "underSymbol": c.under_symbol,
        "underSecType": c.under_sec_type,
        "marketRuleIds": c.market_rule_ids,
        "realExpirationDate": c.last_trade_date,
        "stockType": c.stock_type,
        "minSize": Decimal(str(c.min_size)),
        "sizeIncrement": Decimal(str(c.size_increment)),
        "suggestedSizeIncrement": Decimal(str(c.size_increment)),
    }


def ib_time(epoch: float, tz: str = "UTC") -> str:
    """`YYYYMMDD HH:MM:SS TZ`, which ib_async parses into an aware datetime."""
    return dt.datetime.fromtimestamp(epoch, ZoneInfo(tz)).strftime("%Y%m%d %H:%M:%S ") + tz


def order_from_wire(values: dict[str, Any], client_id: int, con_id: int, account: str) -> SimOrder:
    """A SimOrder from decoded placeOrder values (quantity must already be integral)."""
    qty = values.get("totalQuantity") or Decimal(0)
    return SimOrder(
        client_id=client_id,
        order_id=values.get("orderId") or 0,
        con_id=con_id,
        action=(values.get("action") or "").upper(),
        total_qty=int(qty),
        order_type=(values.get("orderType") or "").upper(),
        lmt_price=values.get("lmtPrice"),
        aux_price=values.get("auxPrice"),
        tif=(values.get("tif") or "DAY").upper(),
        account=values.get("account") or account,
        parent_id=values.get("parentId") or 0,
        oca_group=values.get("ocaGroup") or "",
        oca_type=values.get("ocaType") or 0,
        transmit=bool(values.get("transmit")),
        order_ref=values.get("orderRef") or "",
        algo_strategy=values.get("algoStrategy") or "",
        algo_params=[(p.get("tag", ""), p.get("value", "")) for p in values.get("algoParams") or []],
        what_if=bool(values.get("whatIf")),
        trailing_percent=values.get("trailingPercent"),
        trail_stop_price=values.get("trailStopPrice"),
        outside_rth=bool(values.get("outsideRth")),
        extras={"wire": values},
    )


def open_order_values(o: SimOrder, c: SimContract) -> dict[str, Any]:
    """An openOrder for an order: the placeOrder fields echoed, the engine's state on top."""
    wire: dict[str, Any] = dict(o.extras.get("wire") or {})
    values = {**wire, **contract_values(c, wire.get("exchange") or "")}
    values.update(
        orderId=o.order_id,
        clientId=o.client_id,
        permId=o.perm_id,
        action=o.action,
        totalQuantity=o.total_qty,
        orderType=o.order_type,
        lmtPrice=o.lmt_price,
        auxPrice=o.aux_price,
        tif=o.tif,
        ocaGroup=o.oca_group,
        ocaType=o.oca_type,
        account=o.account,
        orderRef=o.order_ref,
        parentId=o.parent_id,
        algoStrategy=o.algo_strategy,
        algoParams=[{"tag": t, "value": v} for t, v in o.algo_params],
        whatIf=o.what_if,
        outsideRth=o.outside_rth,
        trailingPercent=o.trailing_percent,
        trailStopPrice=o.trail_stop_price,
        status=o.status,
        warningText=o.warning_text,
        volatility=wire.get("volatility"),
        # Margin fields are only meaningful for what-if answers; TWS leaves them unset otherwise.
        initMarginBefore="",
        maintMarginBefore="",
        equityWithLoanBefore="",
        initMarginChange="",
        maintMarginChange="",
        equityWithLoanChange="",
        initMarginAfter="",
        maintMarginAfter="",
        equityWithLoanAfter="",
        commission=None,
        minCommission=None,
        maxCommission=None,
        commissionCurrency="",
    )
    return values


def what_if_values(r: WhatIfResult, c: SimContract) -> dict[str, Any]:
    """The openOrder(whatIf=1) answering a what-if order."""
    values = open_order_values(r.order, c)
    values.update(
        whatIf=True,
        status="PreSubmitted",
        initMarginBefore=r.init_margin_before,
        maintMarginBefore=r.maint_margin_before,
        equityWithLoanBefore=r.equity_with_loan_before,
        initMarginChange=r.init_margin_change,
        maintMarginChange=r.maint_margin_change,
        equityWithLoanChange=r.equity_with_loan_change,
        initMarginAfter=r.init_margin_after,
        maintMarginAfter=r.maint_margin_after,
        equityWithLoanAfter=r.equity_with_loan_after,
        commission=r.commission if r.commission is not None else UNSET_DOUBLE,
        minCommission=r.min_commission if r.min_commission is not None else UNSET_DOUBLE,
        maxCommission=r.max_commission if r.max_commission is not None else UNSET_DOUBLE,
        commissionCurrency=r.commission_currency,
        warningText=r.warning_text,
    )
    return values


def order_status_values(o: SimOrder) -> dict[str, Any]:
    """An orderStatus for an order (clientId is the owner's, as ib_async keys trades by it)."""
    return {
        "orderId": o.order_id,
        "status": o.status,
        "filled": o.filled,
        "remaining": o.remaining,
        "avgFillPrice": o.avg_fill_price,
        "permId": o.perm_id,
        "parentId": o.parent_id,
        "lastFillPrice": o.last_fill_price,
        "clientId": o.client_id,
        "whyHeld": o.why_held,
        "mktCapPrice": o.mkt_cap_price,
    }


def completed_order_values(o: SimOrder, c: SimContract) -> dict[str, Any]:
    """A completedOrder for a finished order."""
    values = open_order_values(o, c)
    values.update(
        filledQuantity=o.filled,
        parentPermId=o.parent_perm_id or None,
        completedTime=ib_time(o.completed_time) if o.completed_time else "",
        completedStatus=o.completed_status or o.status,
        refFuturesConId=None,
        autoCancelDate="",
        shareholder="",
    )
    return values


def exec_values(req_id: int, e: SimExecution, c: SimContract) -> dict[str, Any]:
    """An execDetails (req_id -1 for a live fill)."""
    values = contract_values(c, e.exchange)
    values.update(
        reqId=req_id,
        orderId=e.order_id,
        execId=e.exec_id,
        time=ib_time(e.time),
        acctNumber=e.account,
        execExchange=e.exchange,
        side=e.side,
        shares=e.shares,
        price=e.price,
        permId=e.perm_id,
        clientId=e.client_id,
        liquidation=e.liquidation,
        cumQty=e.cum_qty,
        avgPrice=e.avg_price,
        orderRef=e.order_ref,
        evRule="",
        evMultiplier=None,
        modelCode="",
        lastLiquidity=e.last_liquidity,
        pendingPriceRevision=False,
    )
    return values


def commission_values(cr: SimCommission) -> dict[str, Any]:
    """A commissionReport; an unset realised P&L goes out as IB's UNSET_DOUBLE literal."""
    return {
        "execId": cr.exec_id,
        "commission": cr.commission,
        "currency": cr.currency,
        "realizedPNL": UNSET_DOUBLE if cr.realized_pnl is None else cr.realized_pnl,
        "yield_": UNSET_DOUBLE if cr.yield_ is None else cr.yield_,
        "yieldRedemptionDate": cr.yield_redemption_date,
    }
