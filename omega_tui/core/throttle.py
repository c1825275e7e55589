"""Throttles: token buckets, pacing queues and backoff, so IB's pacing rules are never broken by us.

`TokenBucket` is the primitive (the risk engine's order-rate rule, the order submission queue);
historical-data pacing builds on it. Everything takes the time from a `Clock`, so tests use a fake one.
"""

from __future__ import annotations

import random

from omega_tui.core.clock import Clock


class TokenBucket:
    """`rate` tokens per `per_s` seconds, holding at most `capacity` (default: `rate`)."""

    def __init__(self, clock: Clock, rate: float, per_s: float = 1.0, capacity: float | None = None) -> None:
        if rate <= 0 or per_s <= 0:
            raise ValueError("a token bucket needs a positive rate and period")
        self._clock = clock
        self._refill_per_ns = rate / (per_s * 1e9)
        self.capacity = float(capacity if capacity is not None else rate)
        self._tokens = self.capacity
        self._last_ns = clock.monotonic_ns()

    def _refill(self) -> None:
        now = self._clock.monotonic_ns()
        if now > self._last_ns:
            self._tokens = min(self.capacity, self._tokens + (now - self._last_ns) * self._refill_per_ns)
            self._last_ns = now

    @property
    def available(self) -> float:
        self._refill()
        return self._tokens

    def can_take(self, n: float = 1.0) -> bool:
        self._refill()
        return self._tokens >= n

    def try_take(self, n: float = 1.0) -> bool:
        """Take `n` tokens if they are there; never waits."""
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def wait_s(self, n: float = 1.0) -> float:
        """Seconds until `n` tokens will be available (0 if now)."""
        self._refill()
        missing = n - self._tokens
        return 0.0 if missing <= 0 else missing / self._refill_per_ns / 1e9

    def used_fraction(self) -> float:
        """How much of the capacity is used right now, 0..1 (for the order-rate gauge)."""
        self._refill()
        return 1.0 - self._tokens / self.capacity


class Backoff:
    """Exponential backoff with full jitter and a cap; deterministic when given a seeded `rng`."""

    def __init__(self, initial_s: float, cap_s: float, factor: float = 2.0, rng: random.Random | None = None) -> None:
        self.initial_s, self.cap_s, self.factor = initial_s, cap_s, factor
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        base = min(self.cap_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        # Half fixed, half jittered: never zero, never in lock-step with other clients.
        return base / 2 + self._rng.uniform(0, base / 2)

    def reset(self) -> None:
        self.attempt = 0
