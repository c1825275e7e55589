"""Every fault as ib_async sees it, the TOML scenario runner, and seeded determinism."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock, Ticker, Trade

from omega_tui.sim import SimGateway
from omega_tui.sim.faults import Scenario, ScenarioError
from tests.sim.conftest import LogGrab, connect, pump, wait_until


def record_errors(ib: IB) -> list[int]:
    codes: list[int] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    return codes


async def stream(ib: IB, symbol: str = "AAPL") -> Ticker:
    [c] = await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD"))
    assert c is not None
    ticker = ib.reqMktData(c)
    await wait_until(lambda: ticker.bid > 0, what="first quote")
    return ticker


def count_updates(ticker: Ticker) -> list[object]:
    updates: list[object] = []
    ticker.updateEvent += updates.append
    return updates


async def test_connectivity_lost_then_restored_with_data_lost_drops_subscriptions(vgw: SimGateway, ib: IB) -> None:
    codes = record_errors(ib)
    ticker = await stream(ib)
    updates = count_updates(ticker)
    vgw.faults.connectivity_lost()
    await wait_until(lambda: 1100 in codes, what="1100")
    await vgw.advance_async(3.0)
    await asyncio.sleep(0.05)
    assert updates == [], "no market data while connectivity is lost"
    vgw.faults.connectivity_restored(data_lost=True)
    await wait_until(lambda: 1101 in codes, what="1101")
    assert vgw.server.lines_in_use == 0
    await vgw.advance_async(3.0)
    await asyncio.sleep(0.05)
    assert updates == [], "IB drops the subscriptions on 1101: the client must resubscribe"
    again = await stream(ib, "MSFT")
    assert again.bid > 0


async def test_connectivity_restored_with_data_kept_resumes_and_answers_account_summary(
    vgw: SimGateway, ib: IB, iblog: LogGrab
) -> None:
    codes = record_errors(ib)
    ticker = await stream(ib)
    vgw.faults.connectivity_lost()
    vgw.faults.connectivity_restored(data_lost=False)
    await wait_until(lambda: codes[-2:] == [1100, 1102], what="1100 then 1102")
    # ib_async re-requests the account summary on 1102; the gateway must answer it.
    await wait_until(lambda: len(ib.wrapper.acctSummary) > 0, what="account summary after 1102")
    updates = count_updates(ticker)
    await pump(vgw, lambda: len(updates) > 0, what="market data after 1102")
    assert not iblog.has("Error handling fields")


@pytest.mark.parametrize(("farm", "codes"), [("market", [2103, 2104]), ("hmds", [2105, 2106])])
async def test_farm_blip(vgw: SimGateway, ib: IB, iblog: LogGrab, farm: str, codes: list[int]) -> None:
    seen = record_errors(ib)
    vgw.faults.farm_blip(farm)
    await wait_until(lambda: seen[-2:] == codes)
    assert iblog.has("is broken") and ib.isConnected()


async def test_server_connection_broken_2110(vgw: SimGateway, ib: IB) -> None:
    seen = record_errors(ib)
    vgw.faults.server_connection_broken()
    await wait_until(lambda: 2110 in seen)


async def test_socket_drop_and_refused_connections_like_a_gateway_restart(vgw: SimGateway, ib: IB) -> None:
    dropped = asyncio.Event()
    ib.disconnectedEvent += dropped.set
    vgw.faults.drop_connections(refuse_for=0.6)
    await asyncio.wait_for(dropped.wait(), 3)
    assert not ib.isConnected()
    with pytest.raises(ConnectionRefusedError):
        await IB().connectAsync("127.0.0.1", vgw.port, clientId=1, timeout=1)
    await asyncio.sleep(0.8)
    again = await connect(vgw, client_id=1)
    again.disconnect()


async def test_stalled_end_marker_times_out_the_startup_sync(vgw: SimGateway, iblog: LogGrab) -> None:
    vgw.faults.stall("execDetailsEnd")
    ib = IB()
    try:
        with pytest.raises(ConnectionError, match="executions request timed out"):
            await ib.connectAsync("127.0.0.1", vgw.port, clientId=1, timeout=0.5, raiseSyncErrors=True)
    finally:
        ib.disconnect()
    # the stall was for one message: the next connect is clean
    ib2 = await connect(vgw, client_id=1)
    ib2.disconnect()


async def test_message_rate_fault_shows_error_100(vgw: SimGateway, ib: IB) -> None:
    seen = record_errors(ib)
    vgw.faults.message_rate_exceeded()
    await wait_until(lambda: 100 in seen)


async def test_unthrottled_client_over_50_messages_a_second_gets_100(vgw: SimGateway, ib: IB) -> None:
    seen = record_errors(ib)
    ib.client.MaxRequests = 0  # switch off ib_async's own 45/s throttle
    for _ in range(60):
        ib.client.reqCurrentTime()
    await wait_until(lambda: 100 in seen, what="error 100")


def trace_wrapper(ib: IB, names: tuple[str, ...]) -> list[tuple[str, tuple[Any, ...]]]:
    """Record the wrapper calls ib_async's decoder makes, in order."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    for name in names:
        original = getattr(ib.wrapper, name)

        def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append((_name, args))
            return _original(*args)

        setattr(ib.wrapper, name, spy)
    ib.client.decoder.handlers.update(type(ib.client.decoder)(ib.wrapper, ib.client.serverVersion()).handlers)
    return calls


async def test_duplicate_order_status_is_sent_twice_and_ib_async_keeps_one(vgw: SimGateway, ib: IB) -> None:
    calls = trace_wrapper(ib, ("orderStatus",))
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    vgw.faults.duplicate_order_status(1)
    trade = ib.placeOrder(c, LimitOrder("BUY", 100, 100.0))
    await wait_until(lambda: len(calls) >= 2)
    assert calls[0] == calls[1]
    assert [e.status for e in trade.log].count("Submitted") == 1


async def test_exec_details_before_open_order(vgw: SimGateway, ib: IB) -> None:
    calls = trace_wrapper(ib, ("openOrder", "execDetails", "orderStatus"))
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    vgw.faults.exec_before_open(1)
    trade = ib.placeOrder(c, MarketOrder("BUY", 100))
    await pump(vgw, lambda: trade.orderStatus.status == "Filled")
    names = [n for n, _ in calls]
    assert names[0] == "execDetails" and names.index("openOrder") > 0
    assert trade.fills, "ib_async still links the early execution to its trade"


async def test_fill_after_a_cancel_request(vgw: SimGateway, ib: IB) -> None:
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    trade: Trade = ib.placeOrder(c, LimitOrder("BUY", 400, 100.0))
    await wait_until(lambda: trade.orderStatus.status == "Submitted")
    vgw.faults.fill_after_cancel(1)
    ib.cancelOrder(trade.order)
    await wait_until(lambda: trade.orderStatus.status == "Cancelled", what="cancelled in the end")
    assert len(trade.fills) == 1 and trade.fills[0].execution.shares == 200
    assert trade.orderStatus.filled == 200


async def test_unsolicited_completed_order_trips_ib_async_128(vgw: SimGateway, ib: IB, iblog: LogGrab) -> None:
    vgw.faults.unsolicited_completed_order()
    await wait_until(lambda: iblog.has("Error handling fields"), what="ib_async's KeyError log")
    assert ib.isConnected()


async def test_misreported_commission_reaches_the_client(vgw: SimGateway, ib: IB) -> None:
    [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
    honest = ib.placeOrder(c, MarketOrder("BUY", 100))
    await pump(vgw, lambda: honest.orderStatus.status == "Filled" and honest.fills[-1].commissionReport.commission)
    vgw.faults.misreport_commission(10.0)
    skewed = ib.placeOrder(c, MarketOrder("BUY", 100))
    await pump(vgw, lambda: skewed.orderStatus.status == "Filled" and skewed.fills[-1].commissionReport.commission)
    ratio = sum(f.commissionReport.commission for f in skewed.fills) / sum(
        f.commissionReport.commission for f in honest.fills
    )
    assert 9 < ratio < 11


# ---- scenarios ----------------------------------------------------------------------------------


SCENARIO = """
[[step]]
at = 1.0
action = "connectivity_lost"

[[step]]
at = 2.5
action = "connectivity_restored"
data_lost = true

[[step]]
at = 4
action = "farm_blip"
farm = "hmds"
"""


async def test_toml_scenario_runs_on_the_virtual_clock(tmp_path: Path) -> None:
    path = tmp_path / "gap.toml"
    path.write_text(SCENARIO)
    gw = SimGateway(clock="virtual", scenario=path)
    await gw.start_async()
    ib = await connect(gw)
    try:
        codes = record_errors(ib)
        await gw.advance_async(0.9)
        await asyncio.sleep(0.05)
        assert 1100 not in codes
        await pump(gw, lambda: 2106 in codes, step=0.5, what="the whole scenario")
        assert [c for c in codes if c in (1100, 1101, 2105, 2106)] == [1100, 1101, 2105, 2106]
    finally:
        ib.disconnect()
        await gw.stop_async()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[step]]\nat = 1\naction = "explode"', "unknown action 'explode'"),
        ('[[step]]\naction = "farm_blip"', "'at' must be a number"),
        ('[[step]]\nat = 1\naction = "farm_blip"\ncolour = "red"', "bad arguments for farm_blip"),
        ("[[step]\n", "not valid TOML"),
    ],
)
def test_bad_scenario_files_are_reported_by_file_and_step(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as info:
        Scenario.load(path)
    assert str(path) in str(info.value)


async def run_seeded(seed: int) -> list[tuple[float, float, float, float]]:
    gw = SimGateway(seed=seed, clock="virtual")
    await gw.start_async()
    ib = await connect(gw)
    seen: list[tuple[float, float, float, float]] = []
    try:
        [c] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        assert c is not None
        ticker = ib.reqMktData(c)
        await wait_until(lambda: ticker.bid > 0)
        trade = ib.placeOrder(c, MarketOrder("BUY", 500))
        for _ in range(20):
            await gw.advance_async(0.5)
            q = gw.server.market.quote(c.conId)
            await wait_until(lambda q=q: (ticker.bid, ticker.ask) == (q.bid, q.ask), what="the client to catch up")
            seen.append((ticker.bid, ticker.ask, ticker.volume, trade.orderStatus.avgFillPrice))
    finally:
        ib.disconnect()
        await gw.stop_async()
    return seen


async def test_same_seed_replays_identically_and_another_seed_differs() -> None:
    first = await run_seeded(11)
    assert first == await run_seeded(11)
    assert first != await run_seeded(12)


async def test_slow_end_marker_holds_the_connect_until_time_moves(vgw: SimGateway, iblog: LogGrab) -> None:
    vgw.faults.delay("completedOrdersEnd", 2.0)
    ib = IB()
    connecting = asyncio.create_task(ib.connectAsync("127.0.0.1", vgw.port, clientId=1, timeout=3))
    try:
        await asyncio.sleep(0.3)
        assert not connecting.done(), "completedOrdersEnd has not arrived yet"
        await vgw.advance_async(2.1)
        await asyncio.wait_for(connecting, 3)
        assert not iblog.has("timed out")
    finally:
        connecting.cancel()
        ib.disconnect()
