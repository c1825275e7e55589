"""Clocks: the engine never reads time directly, so tests and replays can inject their own."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Monotonic nanoseconds for latency and ordering; timezone-aware UTC for display and the journal."""

    def monotonic_ns(self) -> int: ...

    def now_utc(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def now_utc(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to. Starts at a fixed UTC instant so test output is stable."""

    def __init__(self, start_utc: datetime | None = None, start_ns: int = 1_000_000_000) -> None:
        self._utc0 = start_utc or datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
        self._ns0 = start_ns
        self._ns = start_ns

    def monotonic_ns(self) -> int:
        return self._ns

    def now_utc(self) -> datetime:
        return self._utc0 + timedelta(microseconds=(self._ns - self._ns0) // 1000)

    def advance(self, seconds: float = 0.0, *, ns: int = 0) -> None:
        self._ns += int(seconds * 1_000_000_000) + ns
