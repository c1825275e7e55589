"""Historical bars, keepUpToDate, head timestamps and IB's pacing rules, through ib_async."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest
from ib_async import IB, BarData, Contract, Stock

from omega_tui.sim import SimGateway
from tests.sim.conftest import LogGrab, pump, wait_until


async def aapl(ib: IB) -> Contract:
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    assert c is not None
    return c


async def bars(
    ib: IB,
    c: Contract,
    duration: str = "1 D",
    size: str = "5 mins",
    end: object = "",
    use_rth: bool = True,
    **kw: object,
) -> list[BarData]:
    result = await asyncio.wait_for(
        ib.reqHistoricalDataAsync(c, end, duration, size, "TRADES", use_rth, **kw),  # type: ignore[arg-type]
        5,
    )
    return list(result)


async def test_intraday_bars_are_consistent(ib: IB) -> None:
    result = await bars(ib, await aapl(ib))
    assert len(result) > 10
    for b in result:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert isinstance(b.date, dt.datetime) and b.date.tzinfo is not None
    assert all(a.date < b.date for a, b in itertools.pairwise(result))


async def test_daily_bars_have_dates_and_epoch_format_works(ib: IB) -> None:
    c = await aapl(ib)
    daily = await bars(ib, c, "1 M", "1 day")
    assert daily and all(isinstance(b.date, dt.date) and not isinstance(b.date, dt.datetime) for b in daily)
    epoch = await bars(ib, c, "2 D", "1 hour", formatDate=2)
    assert epoch and all(b.date.tzinfo is not None for b in epoch)


async def test_explicit_end_date_time(vgw: SimGateway, ib: IB) -> None:
    end = dt.datetime.fromtimestamp(vgw.clock.now() - 20 * 3600, dt.UTC)  # 13:30 New York, the day before
    result = await bars(ib, await aapl(ib), "3600 S", "1 min", end=end)
    assert result and result[-1].date <= end


async def test_keep_up_to_date_streams_the_forming_bar(vgw: SimGateway, ib: IB) -> None:
    c = await aapl(ib)
    await vgw.advance_async(150)  # the session opened at the gateway's start: let a few bars form
    result = await asyncio.wait_for(
        ib.reqHistoricalDataAsync(c, "", "3600 S", "1 min", "TRADES", True, keepUpToDate=True), 5
    )
    n = len(result)
    updates: list[bool] = []
    result.updateEvent += lambda _bars, has_new: updates.append(has_new)
    await pump(vgw, lambda: True in updates, step=2.0, what="a new bar")
    assert len(result) > n
    ib.cancelHistoricalData(result)
    await wait_until(lambda: not vgw.server.hist_by_con.get(c.conId), what="subscription dropped")


async def test_head_timestamp(ib: IB) -> None:
    ts = await asyncio.wait_for(ib.reqHeadTimeStampAsync(await aapl(ib), "TRADES", True, 1), 3)
    assert isinstance(ts, dt.datetime) and ts.year < 2026


async def test_no_data_in_range_gets_162_no_data(ib: IB, iblog: LogGrab) -> None:
    assert await bars(ib, await aapl(ib), "1800 S", "1 min") == []  # RTH only, and the session opens now
    assert iblog.has("HMDS query returned no data")


async def test_unknown_contract_history_gets_200(ib: IB, iblog: LogGrab) -> None:
    assert await bars(ib, Stock("NOPE", "SMART", "USD")) == []
    assert iblog.has("Error 200")


async def test_invalid_bar_size_gets_321_which_ib_async_only_logs(ib: IB, iblog: LogGrab) -> None:
    # IB answers a bad bar size with 321; ib_async counts 321 as a warning, so the request never ends.
    c = await aapl(ib)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ib.reqHistoricalDataAsync(c, "", "1 D", "7 mins", "TRADES", True), 0.5)
    assert iblog.has("Warning 321")


async def test_identical_request_within_15_seconds_is_a_pacing_violation(
    vgw: SimGateway, ib: IB, iblog: LogGrab
) -> None:
    c = await aapl(ib)
    assert await bars(ib, c, "1 D", "1 min")
    assert await bars(ib, c, "1 D", "1 min") == []
    assert iblog.has("Error 162") and iblog.has("pacing violation")
    await vgw.advance_async(16)
    assert await bars(ib, c, "1 D", "1 min")


async def test_six_requests_for_one_contract_within_2_seconds(ib: IB, iblog: LogGrab) -> None:
    c = await aapl(ib)
    sizes = ["1 min", "2 mins", "3 mins", "5 mins", "10 mins", "15 mins"]
    results = [await bars(ib, c, "1 D", s) for s in sizes]
    assert all(results[:5]) and results[5] == []
    assert iblog.has("within 2 seconds")


async def test_more_than_60_small_bar_requests_in_10_minutes(vgw: SimGateway, ib: IB, iblog: LogGrab) -> None:
    c = await aapl(ib)
    ok = 0
    for i in range(61):
        ok += bool(await bars(ib, c, f"{300 + i} S", "5 secs", use_rth=False))
        await vgw.advance_async(2.5)
    assert ok == 60
    assert iblog.has("60 requests")


@pytest.mark.parametrize("count", [1, 2])
async def test_pacing_fault_forces_162(vgw: SimGateway, ib: IB, iblog: LogGrab, count: int) -> None:
    c = await aapl(ib)
    vgw.faults.pacing_violation(count)
    for i in range(count):
        assert await bars(ib, c, f"{1 + i} D", "1 min") == []
    assert await bars(ib, c, "1 D", "1 hour")
    assert iblog.has("Error 162")


async def test_more_than_50_simultaneous_live_requests_get_162(vgw: SimGateway, ib: IB, iblog: LogGrab) -> None:
    symbols = ["AAPL", "MSFT", "SPY", "JPM", "NVDA", "TSLA"]
    contracts = [c for c in await ib.qualifyContractsAsync(*(Stock(s, "SMART", "USD") for s in symbols)) if c]
    live = []
    for i in range(51):
        c = contracts[i % len(contracts)]
        if i % len(contracts) == 0:
            await vgw.advance_async(2.1, step=2.1)  # stay under the 6-per-contract-in-2-seconds rule
        result = await asyncio.wait_for(
            ib.reqHistoricalDataAsync(c, "", f"{3600 + i} S", "1 min", "TRADES", False, keepUpToDate=True), 5
        )
        live.append(result)
    assert all(live[:50]) and not live[50]
    assert iblog.has("Only 50 simultaneous")
