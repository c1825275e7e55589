"""Virtual time for the simulated gateway: deterministic by default, real time (scaled) for the demo."""

from __future__ import annotations

import time
from collections.abc import Callable

# 2026-11-25 14:30:00 UTC = Wednesday 09:30 America/New_York (EST): a regular US session open, so runs that
# start here see the market open and are identical from one machine to the next.
DEFAULT_START: float = 1795617000.0


class SimClock:
    """Virtual epoch-seconds clock; `advance` moves it, and in real-time mode wall time moves it too.

    A virtual clock (the default) only moves when `advance` or `set` is called, which is what tests and
    deterministic replays want. `SimClock.realtime(speed)` also follows the monotonic wall clock scaled by
    `speed` (2.0 = twice as fast as real time), starting from `start`.
    """

    def __init__(
        self, start: float = DEFAULT_START, *, speed: float = 0.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._base = float(start)
        self._speed = float(speed)
        self._monotonic = monotonic
        self._anchor = monotonic()

    @classmethod
    def realtime(cls, speed: float = 1.0, start: float = DEFAULT_START) -> SimClock:
        """A clock that follows wall time × `speed` from `start` (the demo mode; not deterministic)."""
        if speed <= 0:
            raise ValueError(f"real-time clock speed must be > 0, got {speed}")
        return cls(start, speed=speed)

    @property
    def speed(self) -> float:
        """Virtual seconds per wall second; 0 for a purely virtual clock."""
        return self._speed

    @property
    def is_realtime(self) -> bool:
        """True when wall time moves this clock."""
        return self._speed > 0

    def now(self) -> float:
        """Current virtual time in epoch seconds (never decreases)."""
        if self._speed > 0:
            return self._base + (self._monotonic() - self._anchor) * self._speed
        return self._base

    def advance(self, dt: float) -> float:
        """Move virtual time forward by `dt` seconds (on top of wall time in real-time mode); returns now()."""
        if dt < 0:
            raise ValueError(f"cannot move the clock backwards (dt={dt})")
        self._base += dt
        return self.now()

    def set(self, t: float) -> float:
        """Jump virtual time forward to epoch `t`; jumping backwards is an error. Returns now()."""
        current = self.now()
        if t < current:
            raise ValueError(f"cannot move the clock backwards ({t} < {current})")
        self._base += t - current
        return self.now()
