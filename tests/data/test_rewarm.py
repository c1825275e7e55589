"""Bars re-warmed after a reconnect, against the simulated gateway: no hole where the connection was down."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from omega_tui.core.bars import BarStore, bar_seconds, duration_seconds
from omega_tui.core.broker.session import rewarm_duration
from omega_tui.core.types import Bar, ConnectionState
from omega_tui.sim.gateway import SimGateway
from tests.data.conftest import Harness, wait_until

KEYS = ("AAPL", "MSFT", "SPY")
BAR = timedelta(seconds=1)
# The simulator's clock is real time: one-second bars, so that a short outage still spans a few bars.
WINDOW = "60 S"
WARM = {"warmup_bars": True, "warmup_duration": WINDOW, "warmup_bar_size": "1 secs"}


async def warmed(make_session: Callable[..., Harness]) -> Harness:
    h = make_session(market_data=WARM)
    await h.session.start()
    await asyncio.wait_for(h.session.bars_ready.wait(), 20)
    assert all(h.session.bars.bars(key) for key in KEYS)
    return h


async def reference_starts(h: Harness, key: str) -> list[datetime]:
    """The bar start times the gateway has for `key` over the last 120 s, asked directly (not through the store)."""
    v = next(v for v in h.session.verified if v.key == key)
    bars = await asyncio.wait_for(h.session.fetch_bars(v, "120 S"), 20)
    return [b.start_utc for b in bars]


def assert_no_hole(h: Harness, key: str, reference: list[datetime]) -> None:
    stored = [b.start_utc for b in h.session.bars.bars(key)]
    # The store reaches the present (within a few bars of the reference fetched just after) ...
    assert stored[-1] >= reference[-1] - 3 * BAR, (key, stored[-1], reference[-1])
    # ... and holds every bar the gateway has between its first and its last bar.
    missing = [t for t in reference if stored[0] <= t <= stored[-1] and t not in set(stored)]
    assert not missing, (key, missing)


async def test_a_socket_drop_rewarms_the_bars_so_the_history_has_no_hole(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    h = await warmed(make_session)
    before = {key: h.session.bars.bars(key) for key in KEYS}
    sent = h.session.pacer.sent
    # The gateway restarts and refuses connections for 2 s: at least two bars go by unseen.
    gateway.faults.drop_connections(refuse_for=2.0)
    await wait_until(lambda: h.session.connection_state is ConnectionState.DOWN, "DOWN")
    await wait_until(lambda: h.session.rewarms == 1, "bars re-warmed after the reconnect")
    assert h.session.reconnects == 1
    assert h.session.pacer.sent == sent + len(KEYS)  # one paced request per instrument
    for key in KEYS:
        bars = h.session.bars.bars(key)
        # Merged, not replaced: the bars from before the drop are still there, and newer ones follow them.
        assert bars[0] == before[key][0]
        assert bars[-1].start_utc - before[key][-1].start_utc >= 2 * BAR
        assert_no_hole(h, key, await reference_starts(h, key))


async def test_the_rewarm_asks_only_for_the_span_since_the_newest_stored_bar(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    h = await warmed(make_session)
    gateway.faults.drop_connections(refuse_for=1.0)
    await wait_until(lambda: h.session.rewarms == 1, "bars re-warmed after the reconnect")
    window = duration_seconds(WINDOW)
    rewarm = list(h.session.pacer.sent_log)[-len(KEYS) :]
    for _, req in rewarm:
        span = duration_seconds(req.duration)
        assert req.duration.endswith(" S") and span is not None and window is not None
        # At least the outage plus the bar that was forming, and less than the whole window.
        assert 2 * BAR.total_seconds() <= span < window, req


async def test_1101_rewarms_the_bars_too(gateway: SimGateway, make_session: Callable[..., Harness]) -> None:
    h = await warmed(make_session)
    gateway.faults.connectivity_lost()
    await wait_until(lambda: h.session.connection_state is ConnectionState.DOWN, "DOWN on 1100")
    await asyncio.sleep(1.5)  # simulated time moves on while IB is cut off
    gateway.faults.connectivity_restored(data_lost=True)
    await wait_until(lambda: h.session.rewarms == 1, "bars re-warmed after 1101")
    for key in KEYS:
        assert_no_hole(h, key, await reference_starts(h, key))


def bar_at(start: datetime) -> Bar:
    return Bar("AAPL", start, Decimal(1), Decimal(1), Decimal(1), Decimal(1), 0)


NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("last_age_s", "window", "bar_size", "expected"),
    [
        (90, "1800 S", "1 min", "150 S"),  # from the newest bar's start, plus that bar (it was still forming)
        (0.5, "1800 S", "1 min", "120 S"),  # never less than two bars
        (3.2, "60 S", "1 secs", "5 S"),  # partial seconds round up
        (1740, "1800 S", "1 min", None),  # the gap reaches the window: fetch the window, replace the store
        (3 * 86400, "1 W", "1 hour", None),  # longer than IB allows in seconds: the window instead
        (None, "1800 S", "1 min", None),  # nothing stored yet: the window
        (60, "1800", "1 min", None),  # a duration not understood: the configured request as is
        (60, "1800 S", "1 minute", None),
    ],
)
def test_rewarm_duration_covers_the_gap_or_falls_back_to_the_window(
    last_age_s: float | None, window: str, bar_size: str, expected: str | None
) -> None:
    last = None if last_age_s is None else bar_at(NOW - timedelta(seconds=last_age_s))
    assert rewarm_duration(last, NOW, window, bar_size) == expected


def test_replace_drops_the_stored_bars_of_that_instrument_only() -> None:
    store = BarStore()
    old = [bar_at(NOW - timedelta(minutes=m)) for m in (30, 29)]
    store.merge("AAPL", old)
    store.merge("MSFT", [replace(old[0], key="MSFT")])
    fresh = [bar_at(NOW - timedelta(minutes=m)) for m in (2, 1)]
    assert store.replace("AAPL", reversed(fresh)) == 2
    assert store.bars("AAPL") == fresh and store.last("AAPL") == fresh[-1]
    assert len(store.bars("MSFT")) == 1


def test_ib_bar_sizes_and_durations_convert_to_seconds() -> None:
    assert [bar_seconds(s) for s in ("1 secs", "5 secs", "1 min", "5 mins", "1 hour", "1 day")] == [
        1,
        5,
        60,
        300,
        3600,
        86400,
    ]
    assert [duration_seconds(s) for s in ("1800 S", "1 D", "2 W")] == [1800, 86400, 1_209_600]
    assert bar_seconds("fortnightly") is None and duration_seconds("1800") is None
