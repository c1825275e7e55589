"""Startup against the simulated gateway: verification (fail fast), the startup report, streaming."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from omega_tui.core.broker import StartupVerificationError, verify_instruments
from omega_tui.core.clock import SystemClock
from omega_tui.core.types import ConnectionState, InstrumentSpec
from omega_tui.sim.gateway import SimGateway
from tests.data.conftest import Harness, wait_until

ES_DEC = {"symbol": "ES", "sec_type": "FUT", "exchange": "CME", "expiry": "202612"}
# CLF7 (contract month 202701) by its last trading day: the simulator matches a 6-digit expiry against the
# last trading day's month only, where IB would also match the contract month.
CL_JAN = {"symbol": "CL", "sec_type": "FUT", "exchange": "NYMEX", "expiry": "20261217"}


def watchlist(*items: dict[str, Any]) -> dict[str, Any]:
    return {"watchlist": list(items)}


async def test_startup_verifies_instruments_and_streams_quotes_into_the_hot_state(
    make_session: Callable[..., Harness],
) -> None:
    h = make_session(instruments=watchlist({"symbol": "AAPL", "primary_exchange": "NASDAQ"}, {"symbol": "SPY"}, ES_DEC))
    await h.session.start()
    verified = {v.key: v for v in h.session.verified}
    assert verified["AAPL"].con_id == 265598 and verified["AAPL"].min_tick == Decimal("0.01")
    assert verified["ES"].min_tick == Decimal("0.25") and verified["ES"].multiplier == 50
    assert all(v.permission_ok and v.tradable for v in verified.values())
    report = h.hot_state.get("startup_report")
    assert [row["instrument"] for row in report] == ["AAPL", "SPY", "ES"]
    assert report[0]["con_id"] == 265598 and report[0]["min_tick"] == "0.01" and report[0]["permission_ok"]
    connection = h.hot_state.get("connection")
    assert connection["state"] == "UP" and connection["mode"] == "SIM" and connection["account"] == "DU1234567"
    assert h.rec.connection[-1].state is ConnectionState.UP
    await wait_until(lambda: all(h.hot_state.quote(k) is not None for k in ("AAPL", "SPY", "ES")), "a quote each")
    es = h.hot_state.quote("ES")
    assert es is not None and es.bid is not None and es.bid % Decimal("0.25") == 0
    seqs = [q.seq for q in h.rec.quotes_for("AAPL")]
    assert seqs == list(range(1, len(seqs) + 1))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"symbol": "NOSUCH"}, ["NOSUCH (STK NOSUCH SMART USD)", "IB found no such contract", "error 200"]),
        (
            {"symbol": "ES", "sec_type": "FUT", "exchange": "CME", "expiry": "202609"},
            ["ES (FUT ES CME USD expiry 202609)", "expired", "20260918"],
        ),
        (CL_JAN, ["CL (FUT CL NYMEX USD expiry 20261217)", "may not trade it"]),
    ],
    ids=["unknown", "expired", "permission-refused"],
)
async def test_verification_failure_stops_startup_and_names_the_instrument(
    make_session: Callable[..., Harness], item: dict[str, Any], expected: list[str]
) -> None:
    h = make_session(instruments=watchlist({"symbol": "AAPL"}, item))
    with pytest.raises(StartupVerificationError) as failure:
        await h.session.start()
    (line,) = failure.value.lines
    for text in expected:
        assert text in line
    assert h.session.connection_state is ConnectionState.DOWN
    rows = {row["instrument"]: row for row in h.hot_state.get("startup_report")}
    assert rows["AAPL"]["permission_ok"] and not rows[item["symbol"]]["permission_ok"]


async def test_every_problem_is_reported_at_once(make_session: Callable[..., Harness]) -> None:
    h = make_session(instruments=watchlist({"symbol": "NOSUCH"}, {"symbol": "AAPL"}, CL_JAN, {"symbol": "NOPE"}))
    with pytest.raises(StartupVerificationError) as failure:
        await h.session.start()
    assert [line.split(" ", 1)[0] for line in failure.value.lines] == ["NOSUCH", "CL", "NOPE"]


async def test_ambiguous_contract_lists_the_candidates(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    # Settings refuse a future without an expiry, so the ambiguous request is made directly.
    h = make_session()
    ib = h.session.ib
    await ib.connectAsync("127.0.0.1", gateway.port, clientId=31, timeout=5)
    try:
        spec = InstrumentSpec(key="ES", symbol="ES", sec_type="FUT", exchange="CME")
        with pytest.raises(StartupVerificationError) as failure:
            await verify_instruments(ib, [spec], SystemClock(), timeout_s=5)
    finally:
        ib.disconnect()
    (line,) = failure.value.lines
    assert line.startswith("ES (FUT ES CME USD): ambiguous, IB returned 2 contracts")
    assert "ESZ6" in line and "ESH7" in line and "add expiry" in line


async def test_watch_only_instrument_skips_the_permission_check_and_streams(
    make_session: Callable[..., Harness],
) -> None:
    h = make_session(instruments=watchlist({"symbol": "AAPL"}, {**CL_JAN, "watch_only": True}))
    await h.session.start()
    cl = next(v for v in h.session.verified if v.key == "CL")
    assert not cl.tradable and not cl.permission_ok and "watch-only" in cl.permission_detail
    assert next(v for v in h.session.verified if v.key == "AAPL").tradable
    await wait_until(lambda: h.hot_state.quote("CL") is not None, "a CL quote")


async def test_a_client_id_in_use_fails_fast_with_a_clear_line(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    first = make_session(ib={"client_id": 5})
    await first.session.start()
    second = make_session(ib={"client_id": 5, "connect_timeout_s": 20.0})
    with pytest.raises(StartupVerificationError) as failure:
        await second.session.start()
    assert "clientId 5 is already in use (IB error 326)" in failure.value.lines[0]
    assert first.session.connection_state is ConnectionState.UP


async def test_unreachable_gateway_is_a_startup_failure(make_session: Callable[..., Harness]) -> None:
    h = make_session(ib={"port": 1})
    with pytest.raises(StartupVerificationError) as failure:
        await h.session.start()
    assert failure.value.lines[0].startswith("connection: could not connect to 127.0.0.1:1 as clientId 17")
