"""The ticker feed: a batch of ib_async tickers goes into the hot state before any of its bus events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from omega_tui.core.broker.market_data import TickerFeed
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.normalizer import Normalizer
from omega_tui.core.types import QuoteUpdated

NAN = float("nan")
KEYS = ("AAPL", "MSFT", "SPY")


@dataclass(eq=False)  # hashed by identity, like ib_async's Ticker
class FakeTicker:
    bid: float
    ask: float
    last: float = NAN
    bidSize: float = 100.0  # ib_async's field names
    askSize: float = 100.0
    lastSize: float = NAN
    volume: float = NAN
    open: float = NAN
    high: float = NAN
    low: float = NAN
    close: float = NAN
    marketDataType: int = 1
    prevBid: float = NAN
    prevAsk: float = NAN
    prevLast: float = NAN


@pytest.fixture
def hot_state(tmp_path: Path) -> Iterator[HotState]:
    hot = HotState(tmp_path, flush_ms=10)
    yield hot
    hot.close()


def feed_for(hot_state: HotState, bus: EventBus, clock: FakeClock) -> tuple[TickerFeed, list[FakeTicker]]:
    normalizer = Normalizer(clock, bus, hot_state)
    feed = TickerFeed(normalizer, clock)
    tickers = []
    for i, key in enumerate(KEYS):
        normalizer.register(key, Decimal("0.01"))
        ticker = FakeTicker(bid=100.0 + i, ask=100.02 + i)
        feed.bind(ticker, key)
        tickers.append(ticker)
    return feed, tickers


def test_every_quote_of_a_batch_is_readable_before_the_first_event(hot_state: HotState, fake_clock: FakeClock) -> None:
    bus = EventBus()
    seen: list[tuple[str, list[bool]]] = []
    # A subscriber that looks at the hot state when each event arrives, as the models and the UI bridge do.
    bus.subscribe(QuoteUpdated, lambda e: seen.append((e.quote.key, [hot_state.quote(k) is not None for k in KEYS])))
    feed, tickers = feed_for(hot_state, bus, fake_clock)
    feed.on_pending_tickers(tickers)
    assert seen == [(key, [True, True, True]) for key in KEYS]  # in the batch's order, all already readable


def test_a_failing_ticker_does_not_hold_back_the_quotes_already_normalized(
    hot_state: HotState, fake_clock: FakeClock
) -> None:
    bus = EventBus()
    events: list[str] = []
    bus.subscribe(QuoteUpdated, lambda e: events.append(e.quote.key))
    feed, tickers = feed_for(hot_state, bus, fake_clock)
    broken = FakeTicker(bid=1.0, ask=1.01)
    del broken.bid  # reading it raises, as a bug in the feed would
    feed.bind(broken, "AAPL")
    with pytest.raises(AttributeError):
        feed.on_pending_tickers([tickers[0], tickers[1], broken, tickers[2]])
    assert events == ["AAPL", "MSFT"]
    assert hot_state.quote("MSFT") is not None and hot_state.quote("SPY") is None
