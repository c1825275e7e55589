"""Synthetic stocks (`extra_stocks`): seeded, like the fixed US stocks, and leaving the fixed set unchanged."""

from __future__ import annotations

import pytest
from ib_async import IB, Stock

from omega_tui.sim import SimGateway
from omega_tui.sim.engine import ContractDB
from omega_tui.sim.engine.contracts import EXTRA_STOCK_CON_ID_BASE
from tests.sim.conftest import connect, pump


def test_extra_stocks_leave_the_fixed_contracts_unchanged() -> None:
    fixed = ContractDB(7).all()
    with_extra = ContractDB(7, extra_stocks=100).all()
    assert len(with_extra) == len(fixed) + 100
    assert with_extra[: len(fixed)] == fixed


def test_extra_stocks_are_the_same_for_a_seed_and_a_prefix_for_fewer() -> None:
    assert ContractDB(7, extra_stocks=40).all() == ContractDB(7, extra_stocks=40).all()
    assert ContractDB(7, extra_stocks=40).all()[:-30] == ContractDB(7, extra_stocks=10).all()
    other = [c.symbol for c in ContractDB(8, extra_stocks=40).all()[-40:]]
    assert other != [c.symbol for c in ContractDB(7, extra_stocks=40).all()[-40:]]


def test_extra_stocks_look_like_the_fixed_us_stocks() -> None:
    db = ContractDB(3, extra_stocks=300)
    fixed_symbols = {c.symbol for c in ContractDB(3).all()}
    extra = [c for c in db.all() if c.con_id > EXTRA_STOCK_CON_ID_BASE]
    assert [c.con_id for c in extra] == [EXTRA_STOCK_CON_ID_BASE + i for i in range(1, 301)]
    assert len({c.symbol for c in extra}) == 300 and not fixed_symbols & {c.symbol for c in extra}
    aapl = db.get(265598)
    assert aapl is not None
    same = ("sec_type", "exchange", "currency", "min_tick", "valid_exchanges", "order_types", "market_rule_ids")
    for c in extra:
        assert all(getattr(c, f) == getattr(aapl, f) for f in same), c
        assert c.tradable and c.stock_type == "COMMON" and c.local_symbol == c.symbol and len(c.symbol) == 4
        assert c.primary_exchange in ("NASDAQ", "NYSE")
        assert 5.0 <= c.start_price <= 500.0 and c.on_tick_grid(c.start_price)
        assert 0.15 <= c.annual_vol <= 0.60
        assert c.trading_hours == aapl.trading_hours and c.liquid_hours == aapl.liquid_hours
        assert not db.is_expired(c)
        assert db.lookup(symbol=c.symbol, sec_type="STK", exchange="SMART", currency="USD") == [c]
    prices = sorted(c.start_price for c in extra)
    assert prices[30] < 20 and prices[-30] > 150, "prices spread over the whole range"


def test_extra_stocks_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        ContractDB(7, extra_stocks=-1)


async def test_gateway_serves_and_streams_extra_stocks() -> None:
    gw = SimGateway(seed=7, clock="virtual", extra_stocks=5)
    await gw.start_async()
    ib: IB | None = None
    try:
        extra = gw.server.db.all()[-5:]
        ib = await connect(gw)
        details = await ib.reqContractDetailsAsync(Stock(extra[2].symbol, "SMART", "USD"))
        assert [d.contract.conId for d in details] == [extra[2].con_id]
        assert details[0].minTick == 0.01 and details[0].longName == extra[2].long_name
        ticker = ib.reqMktData(details[0].contract)
        await pump(gw, lambda: ticker.bid > 0 and ticker.ask > 0, what="a two-sided quote")
        assert ticker.bid < ticker.ask
        assert abs(ticker.bid - extra[2].start_price) / extra[2].start_price < 0.05
    finally:
        if ib is not None:
            ib.disconnect()
        await gw.stop_async()
