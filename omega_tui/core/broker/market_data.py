"""The thin adapter from ib_async tickers to the normalizer.

ib_async batches ticker updates per TCP read and emits the set in `pendingTickersEvent`; `TickerFeed` reads
each ticker's fields into a `RawQuote` and hands it to the `Normalizer`. Every ticker of one batch gets the
same receive time: they arrived in the same read. The whole batch is normalized into the hot state first and
only then published on the bus, so a quote late in a batch is not held back by the subscribers (models, risk,
UI bridge) of the quotes before it; subscribers still see every quote in the batch's order.

Bindings (ticker → Omega key) must be rebuilt after every (re)subscription, because ib_async's old `Ticker`
objects are dead after a reconnect.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omega_tui.core.clock import Clock
from omega_tui.core.normalizer import Normalizer, RawQuote
from omega_tui.core.types import Quote

_new_raw = tuple.__new__


class TickerFeed:
    """Feeds `pendingTickersEvent` batches into a `Normalizer`; subscribe `on_pending_tickers` to the event."""

    def __init__(self, normalizer: Normalizer, clock: Clock) -> None:
        self.normalizer = normalizer
        self.clock = clock
        self._keys: dict[Any, str] = {}  # ib_async Ticker (hashed by identity) -> instrument key
        self.batches = 0

    def bind(self, ticker: Any, key: str) -> None:
        self._keys[ticker] = key

    def clear(self) -> None:
        self._keys.clear()

    def bound_keys(self) -> list[str]:
        return list(self._keys.values())

    def on_pending_tickers(self, tickers: Iterable[Any]) -> None:
        """Normalize every bound ticker of one batch (on the core loop, synchronously)."""
        self.batches += 1
        recv_ns = self.clock.monotonic_ns()
        recv_utc = self.clock.now_utc()
        keys = self._keys
        normalizer = self.normalizer
        update = normalizer.update
        fresh: list[Quote] = []
        try:
            for t in tickers:
                key = keys.get(t)
                if key is None:
                    continue
                quote = update(
                    key,
                    # All fields given: the tuple constructor itself, without RawQuote's Python-level __new__.
                    _new_raw(
                        RawQuote,
                        (
                            t.bid,
                            t.ask,
                            t.last,
                            t.bidSize,
                            t.askSize,
                            t.lastSize,
                            t.volume,
                            t.open,
                            t.high,
                            t.low,
                            t.close,
                            t.marketDataType,
                            t.prevBid,
                            t.prevAsk,
                            t.prevLast,
                        ),
                    ),
                    recv_ns,
                    recv_utc,
                )
                if quote is not None:
                    fresh.append(quote)
        finally:
            # Quotes already in the hot state are announced even if a later ticker of the batch failed.
            if fresh:
                normalizer.publish(fresh)
