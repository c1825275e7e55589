"""Connecting ib_async to the simulated gateway: handshake, startup sync, clientIds, contracts, market data."""

from __future__ import annotations

import asyncio
import logging
import time

import ib_async
import pytest
from ib_async import IB, Contract, Forex, Future, Stock

from omega_tui.sim import SimGateway
from tests.sim.conftest import LogGrab, connect, pump, wait_until


def test_ib_async_client_version_range_still_contains_178() -> None:
    assert ib_async.client.Client.MinClientVersion <= 178 <= ib_async.client.Client.MaxClientVersion


async def test_connect_returns_quickly_without_any_sync_timeout(vgw: SimGateway, iblog: LogGrab) -> None:
    ib = IB()
    t0 = time.perf_counter()
    await ib.connectAsync("127.0.0.1", vgw.port, clientId=3, timeout=2, raiseSyncErrors=True)
    elapsed = time.perf_counter() - t0
    try:
        assert elapsed < 1.0
        assert ib.client.serverVersion() == 178
        assert ib.managedAccounts() == ["DU1234567"]
        assert not iblog.has("timed out")
        assert iblog.has("Synchronization complete")
        assert {v.tag for v in ib.accountValues()} >= {"NetLiquidation", "TotalCashValue", "BuyingPower"}
        codes = [r.getMessage() for r in iblog.records if "Warning 21" in r.getMessage() or "2104" in r.getMessage()]
        assert any("2104" in m for m in codes)
    finally:
        ib.disconnect()


async def test_connect_as_client_zero_auto_binds(vgw: SimGateway, iblog: LogGrab) -> None:
    ib = await connect(vgw, client_id=0)
    try:
        await wait_until(lambda: vgw.server.sessions.get(0) is not None and vgw.server.sessions[0].auto_bind)
        assert not iblog.has("timed out")
    finally:
        ib.disconnect()


async def test_duplicate_client_id_gets_326_and_is_closed(vgw: SimGateway, iblog: LogGrab) -> None:
    first = await connect(vgw, client_id=5)
    second = IB()
    try:
        with pytest.raises((TimeoutError, ConnectionError)):
            await second.connectAsync("127.0.0.1", vgw.port, clientId=5, timeout=1)
        assert iblog.has("326")
        assert iblog.has("already in use")
        assert first.isConnected()
        assert (await first.reqCurrentTimeAsync()) is not None
    finally:
        second.disconnect()
        first.disconnect()


async def test_client_id_is_free_again_after_disconnect(vgw: SimGateway) -> None:
    ib = await connect(vgw, client_id=9)
    ib.disconnect()
    await wait_until(lambda: 9 not in vgw.server.sessions, what="server to notice the disconnect")
    again = await connect(vgw, client_id=9)
    again.disconnect()


async def test_thread_mode_gateway_serves_ib_async(tgw: SimGateway, iblog: LogGrab) -> None:
    ib = await connect(tgw, client_id=1)
    try:
        [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        ticker = ib.reqMktData(aapl)
        await wait_until(lambda: ticker.bid > 0 and ticker.ask > ticker.bid, what="live quotes")
        seq = ticker.ask, ticker.bid, ticker.volume
        await wait_until(lambda: (ticker.ask, ticker.bid, ticker.volume) != seq, what="a quote update")
        assert not iblog.has("timed out")
    finally:
        ib.disconnect()


def test_context_manager_starts_and_stops_the_thread() -> None:
    with SimGateway(seed=1) as gw:
        assert gw.port > 0
        thread = gw._thread
        assert thread is not None and thread.is_alive()
    assert not thread.is_alive()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_bind_address_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimGateway(host=host)


async def test_contract_details_carry_everything_the_decoder_reads(ib: IB) -> None:
    [cd] = await ib.reqContractDetailsAsync(Stock("AAPL", "SMART", "USD"))
    c = cd.contract
    assert c is not None
    assert (c.conId, c.symbol, c.secType, c.exchange, c.primaryExchange, c.currency) == (
        265598,
        "AAPL",
        "STK",
        "SMART",
        "NASDAQ",
        "USD",
    )
    assert cd.minTick == 0.01
    assert "LMT" in cd.orderTypes.split(",") and "SMART" in cd.validExchanges.split(",")
    assert cd.timeZoneId and cd.tradingHours and cd.liquidHours
    assert cd.longName == "APPLE INC"
    assert cd.marketRuleIds and cd.stockType == "COMMON"
    assert cd.minSize == 1 and cd.sizeIncrement == 1


async def test_contract_details_for_non_us_stock_future_and_fx(ib: IB) -> None:
    [sap] = await ib.reqContractDetailsAsync(Stock("SAP", "IBIS", "EUR"))
    assert sap.contract is not None and sap.contract.currency == "EUR"
    [fx] = await ib.reqContractDetailsAsync(Forex("EURUSD"))
    assert fx.contract is not None and fx.contract.secType == "CASH" and fx.minTick == 5e-05
    [es] = await ib.reqContractDetailsAsync(Future("ES", "20261218", "CME"))
    assert es.contract is not None and es.contract.multiplier == "50" and es.minTick == 0.25


async def test_unknown_contract_gets_200_and_an_empty_answer(ib: IB, iblog: LogGrab) -> None:
    assert await ib.reqContractDetailsAsync(Stock("NOPE", "SMART", "USD")) == []
    assert iblog.has("Error 200")
    [q] = await ib.qualifyContractsAsync(Stock("NOPE", "SMART", "USD"))
    assert q is None


async def test_ambiguous_contract_returns_every_candidate(ib: IB) -> None:
    details = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
    assert len(details) >= 2
    assert len({d.contract.conId for d in details if d.contract}) == len(details)


async def test_streaming_market_data_fills_a_ticker(vgw: SimGateway, ib: IB) -> None:
    [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(aapl)
    await wait_until(lambda: ticker.bid > 0, what="first quote")
    assert ticker.minTick == 0.01
    assert ticker.ask > ticker.bid and ticker.bidSize > 0 and ticker.askSize > 0
    assert ticker.close > 0 and ticker.high >= ticker.low > 0
    first = (ticker.bid, ticker.ask, ticker.last, ticker.volume)
    await pump(vgw, lambda: (ticker.bid, ticker.ask, ticker.last, ticker.volume) != first, what="an update")
    assert ticker.bid < ticker.ask
    assert ticker.low <= ticker.last <= ticker.high


async def test_cancel_market_data_stops_the_stream(vgw: SimGateway, ib: IB) -> None:
    [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(aapl)
    updates: list[object] = []
    ticker.updateEvent += updates.append
    await wait_until(lambda: ticker.bid > 0)
    await pump(vgw, lambda: len(updates) > 3, what="streaming updates")
    ib.cancelMktData(aapl)
    await wait_until(lambda: vgw.server.lines_in_use == 0, what="the line to be released")
    n = len(updates)
    await vgw.advance_async(5.0)
    await asyncio.sleep(0.05)
    assert len(updates) == n


async def test_snapshot_ends_with_tick_snapshot_end(ib: IB) -> None:
    [msft] = await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD"))
    [ticker] = await asyncio.wait_for(ib.reqTickersAsync(msft), 3)
    assert ticker.bid > 0 and ticker.ask > ticker.bid and ticker.last > 0


async def test_delayed_market_data_uses_delayed_tick_types(vgw: SimGateway, ib: IB) -> None:
    ib.reqMarketDataType(3)
    [spy] = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"))
    ticker = ib.reqMktData(spy)
    await wait_until(lambda: ticker.bid > 0 and ticker.marketDataType == 3, what="delayed quotes")
    assert {t.tickType for t in ticker.ticks} <= set(range(66, 77))


async def test_market_data_line_limit_gives_101(iblog: LogGrab) -> None:
    gw = SimGateway(clock="virtual", max_lines=2)
    await gw.start_async()
    ib = await connect(gw)
    try:
        contracts = await ib.qualifyContractsAsync(*(Stock(s, "SMART", "USD") for s in ("AAPL", "MSFT", "SPY")))
        tickers = [ib.reqMktData(c) for c in contracts if c]
        await wait_until(lambda: iblog.has("Error 101"), what="error 101")
        await wait_until(lambda: tickers[0].bid > 0 and tickers[1].bid > 0)
        assert gw.server.lines_in_use == 2
    finally:
        ib.disconnect()
        await gw.stop_async()


async def test_unknown_contract_market_data_gets_200(ib: IB, iblog: LogGrab) -> None:
    ib.reqMktData(Contract(conId=1, exchange="SMART"))
    await wait_until(lambda: iblog.has("Error 200"))


async def test_current_time_is_the_virtual_clocks(vgw: SimGateway, ib: IB) -> None:
    t = await ib.reqCurrentTimeAsync()
    assert abs(t.timestamp() - vgw.clock.now()) < 2


async def test_startup_trace_matches_the_spec(vgw: SimGateway) -> None:
    """Spec §1.4: the messages (by id) of a connect, in order, as ib_async's DEBUG log shows them."""
    grab = LogGrab()
    logger = logging.getLogger("ib_async.client")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(grab)
    ib = IB()
    try:
        await ib.connectAsync("127.0.0.1", vgw.port, clientId=1, timeout=2)
    finally:
        logger.removeHandler(grab)
        logger.setLevel(old)
        ib.disconnect()
    trace = [m[:3] + m[4:].split(",", 1)[0] for m in grab.messages() if m.startswith((">>>", "<<<"))]
    received = [t[3:] for t in trace if t.startswith("<<<")]
    sent = [t[3:] for t in trace if t.startswith(">>>")]
    assert received[:6] == ["178", "15", "9", "4", "4", "4"]
    assert sent[:6] == ["71", "61", "5", "99", "6", "76"]
    # each end marker arrives, and executions are asked for only after the rest is in
    for marker in ("62", "53", "102", "54", "74", "55"):
        assert marker in received
    assert received.index("54") > received.index("6") and received.index("54") > received.index("8")
    assert sent[-1] == "7" and received[-1] == "55"


async def test_req_ids_answers_next_valid_id_above_used_order_ids(vgw: SimGateway, ib: IB) -> None:
    from ib_async import LimitOrder

    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    ib.client.placeOrder(500, c, LimitOrder("BUY", 1, 100.0))  # ids may have gaps
    await wait_until(lambda: vgw.server.next_order_id == 501)
    seen: list[int] = []
    original = ib.wrapper.nextValidId
    ib.wrapper.nextValidId = lambda i: (seen.append(i), original(i))  # type: ignore[method-assign]
    ib.client.decoder.handlers[9] = ib.client.decoder.wrap("nextValidId", [int])
    ib.client.reqIds(1)
    await wait_until(lambda: seen == [501])


async def test_ipv6_loopback(iblog: LogGrab) -> None:
    gw = SimGateway(host="::1", clock="virtual")
    try:
        await gw.start_async()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    ib = IB()
    try:
        await ib.connectAsync("::1", gw.port, clientId=1, timeout=3)
        assert ib.managedAccounts() == ["DU1234567"]
    finally:
        ib.disconnect()
        await gw.stop_async()
