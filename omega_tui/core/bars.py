"""The bar store: recent bars per instrument, warmed up from IB's historical data for the models.

Filled by the broker session at startup (through the historical pacer) and readable by anything on the core
loop. Bars are kept in time order, at most `max_bars` per instrument; a bar whose start time is already
stored replaces it (the last bar of a warm-up is usually still forming).
"""

from __future__ import annotations

from collections.abc import Iterable

from omega_tui.core.types import Bar


class BarStore:
    """Recent bars per instrument key; `bars(key)` returns a copy in time order."""

    def __init__(self, max_bars: int = 2_000) -> None:
        self.max_bars = max_bars
        self._bars: dict[str, list[Bar]] = {}

    def bars(self, key: str) -> list[Bar]:
        return list(self._bars.get(key, ()))

    def keys(self) -> list[str]:
        return list(self._bars)

    def merge(self, key: str, bars: Iterable[Bar]) -> int:
        """Add bars (any order), replacing those with the same start time; returns how many are stored."""
        by_start = {bar.start_utc: bar for bar in self._bars.get(key, ())}
        for bar in bars:
            by_start[bar.start_utc] = bar
        merged = sorted(by_start.values(), key=lambda bar: bar.start_utc)[-self.max_bars :]
        self._bars[key] = merged
        return len(merged)
