"""The bar store: recent bars per instrument, warmed up from IB's historical data for the models.

Filled by the broker session at startup (through the historical pacer), re-warmed after every reconnect so
the history has no hole where the connection was down, and readable by anything on the core loop. Bars are
kept in time order, at most `max_bars` per instrument; a bar whose start time is already stored replaces it
(the last bar of a warm-up is usually still forming).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from omega_tui.core.types import Bar

_BAR_UNITS = {"sec": 1, "min": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000}
_DURATION_UNITS = {"S": 1, "D": 86400, "W": 604800, "M": 2592000, "Y": 31536000}


def bar_seconds(bar_size: str) -> int | None:
    """Seconds in an IB bar size ("5 secs", "1 min", "1 hour", "1 day"); None if not understood."""
    m = re.fullmatch(r"\s*(\d+)\s*(sec|secs|min|mins|hour|hours|day|days|week|weeks|month|months)\s*", bar_size)
    if not m:
        return None
    return int(m.group(1)) * _BAR_UNITS[m.group(2).rstrip("s")]


def duration_seconds(duration: str) -> int | None:
    """Seconds in an IB duration ("1800 S", "2 D", "1 W"; months and years approximated); None if not understood."""
    m = re.fullmatch(r"\s*(\d+)\s*([SDWMY])\s*", duration)
    if not m:
        return None
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


class BarStore:
    """Recent bars per instrument key; `bars(key)` returns a copy in time order."""

    def __init__(self, max_bars: int = 2_000) -> None:
        self.max_bars = max_bars
        self._bars: dict[str, list[Bar]] = {}

    def bars(self, key: str) -> list[Bar]:
        return list(self._bars.get(key, ()))

    def last(self, key: str) -> Bar | None:
        """The newest stored bar of `key` (often the one that was still forming when it was fetched)."""
        bars = self._bars.get(key)
        return bars[-1] if bars else None

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

    def replace(self, key: str, bars: Iterable[Bar]) -> int:
        """Drop what is stored for `key` and keep `bars` instead; returns how many are stored."""
        self._bars.pop(key, None)
        return self.merge(key, bars)
