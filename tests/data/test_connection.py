"""Connection events against the simulated gateway: socket drop, 1100/1101/1102, farm blips."""

from __future__ import annotations

from collections.abc import Callable

from omega_tui.core.types import ComponentState, ConnectionState
from omega_tui.sim.gateway import SimGateway
from tests.data.conftest import Harness, wait_until


async def started(make_session: Callable[..., Harness]) -> Harness:
    h = make_session()
    await h.session.start()
    await wait_until(lambda: all(h.hot_state.quote(k) is not None for k in ("AAPL", "MSFT", "SPY")), "quotes")
    return h


def fresh_quote_after(h: Harness, key: str, seq: int) -> bool:
    quote = h.hot_state.quote(key)
    return quote is not None and quote.seq > seq and not quote.stale


async def test_socket_drop_goes_down_then_reconnects_and_quotes_flow_again(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    h = await started(make_session)
    old_tickers = set(h.session.feed._keys)
    gateway.faults.drop_connections()
    await wait_until(lambda: any(c.state is ConnectionState.DOWN for c in h.rec.connection), "DOWN")
    stale = h.hot_state.quote("AAPL")
    assert stale is not None and stale.stale
    await wait_until(lambda: h.session.connection_state is ConnectionState.UP, "UP again")
    assert h.session.reconnects == 1 and h.session.state is ComponentState.RUNNING
    assert h.hot_state.get("connection")["reconnects"] == 1
    # New ticker objects are bound (the old ones died with the connection), and fresh quotes flow.
    assert set(h.session.feed._keys).isdisjoint(old_tickers)
    await wait_until(lambda: fresh_quote_after(h, "AAPL", stale.seq), "a fresh AAPL quote")
    states = [c.state for c in h.rec.connection]
    assert states[states.index(ConnectionState.DOWN) :][-1] is ConnectionState.UP
    assert not any(e.error.code == 326 for e in h.rec.errors)


async def test_reconnect_retries_while_the_gateway_refuses(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    h = await started(make_session)
    gateway.faults.drop_connections(refuse_for=1.0)
    await wait_until(lambda: h.session.connection_state is ConnectionState.UP and h.session.reconnects, "UP again")
    failed = [c for c in h.rec.connection if "failed: ConnectionRefusedError" in c.detail]
    assert failed and h.session.reconnects == 1


async def test_1100_goes_down_and_1101_resubscribes_so_quotes_flow_again(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    h = await started(make_session)
    gateway.faults.connectivity_lost()
    await wait_until(lambda: h.session.connection_state is ConnectionState.DOWN, "DOWN on 1100")
    last = h.hot_state.quote("AAPL")
    assert last is not None and last.stale
    assert h.session.state is ComponentState.DEGRADED
    gateway.faults.connectivity_restored(data_lost=True)
    await wait_until(lambda: h.session.connection_state is ConnectionState.UP, "UP on 1101")
    assert "resubscribed" in h.session.connection_detail
    # The simulator dropped every line on 1101: only a resubscription brings quotes back.
    await wait_until(lambda: fresh_quote_after(h, "AAPL", last.seq), "a fresh AAPL quote after 1101")
    assert [e.error.code for e in h.rec.errors if e.error.code in (1100, 1101)] == [1100, 1101]


async def test_1102_keeps_the_subscriptions(gateway: SimGateway, make_session: Callable[..., Harness]) -> None:
    h = await started(make_session)
    tickers = set(h.session.feed._keys)
    gateway.faults.connectivity_lost()
    await wait_until(lambda: h.session.connection_state is ConnectionState.DOWN, "DOWN on 1100")
    last = h.hot_state.quote("MSFT")
    assert last is not None
    gateway.faults.connectivity_restored(data_lost=False)
    await wait_until(lambda: h.session.connection_state is ConnectionState.UP, "UP on 1102")
    assert "1102" in h.session.connection_detail
    assert set(h.session.feed._keys) == tickers  # nothing was resubscribed
    await wait_until(lambda: fresh_quote_after(h, "MSFT", last.seq), "a fresh MSFT quote after 1102")


async def test_market_farm_blip_marks_quotes_stale_then_fresh(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    h = await started(make_session)
    before = {key: h.rec.quotes_for(key)[-1].seq for key in ("AAPL", "MSFT", "SPY")}
    gateway.faults.farm_broken("market")
    await wait_until(lambda: h.session.connection_state is ConnectionState.DEGRADED, "DEGRADED on 2103")
    # Every instrument's quote was republished STALE at once (a later tick may already have cleared it).
    for key, seq in before.items():
        assert any(q.stale and q.seq > seq for q in h.rec.quotes_for(key)), key
    gateway.faults.farm_ok("market")
    await wait_until(lambda: h.session.connection_state is ConnectionState.UP, "UP on 2104")
    last = h.rec.quotes_for("SPY")[-1]
    await wait_until(lambda: fresh_quote_after(h, "SPY", last.seq - 1), "SPY not stale")
    codes = [e.error.code for e in h.rec.errors]
    assert 2103 in codes and 2104 in codes


async def test_hmds_farm_outage_and_2110_degrade_the_connection(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    h = await started(make_session)
    gateway.faults.server_connection_broken()
    await wait_until(lambda: h.session.connection_state is ConnectionState.DEGRADED, "DEGRADED on 2110")
    assert "2110" in h.hot_state.get("connection")["detail"]
    gateway.faults.farm_ok("hmds")
    await wait_until(lambda: h.session.connection_state is ConnectionState.UP, "UP on 2106")
