"""Throttles: token buckets, pacing queues and backoff, so IB's pacing rules are never broken by us.

`TokenBucket` is the primitive (the risk engine's order-rate rule, the order submission queue);
historical-data pacing builds on it. Everything takes the time from a `Clock`, so tests use a fake one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from omega_tui.core.clock import Clock

log = logging.getLogger(__name__)


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
        self._refill_at(self._clock.monotonic_ns())

    def _refill_at(self, now: int) -> None:
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
        return self.take_at(n, self._clock.monotonic_ns())

    def take_at(self, n: float, now_ns: int) -> bool:
        """`try_take` at `now_ns`, a time the caller has just read from this bucket's clock (the order path
        reads it once for its pacing check and the bucket)."""
        self._refill_at(now_ns)
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


# ------------------------------------------------------------------------------- historical data pacing


class PacingViolation(Exception):
    """IB refused a historical request for pacing (error 162); the pacer backs off and retries it."""


@dataclass(frozen=True, slots=True)
class HistoricalRequest:
    """The identity of a historical-data request as IB's pacing rules see it.

    Two requests are identical when every field is equal; the per-contract rule counts requests with the
    same (con_id, exchange, what_to_show).
    """

    con_id: int
    exchange: str
    what_to_show: str
    duration: str
    bar_size: str
    end: str = ""
    use_rth: bool = False

    @property
    def contract_key(self) -> tuple[int, str, str]:
        return (self.con_id, self.exchange, self.what_to_show)


T = TypeVar("T")

SENT_LOG_MAX = 1_000  # more than the 60 sends IB allows in 10 minutes, times a reconnect storm or two


class HistoricalPacer:
    """A queue for historical-data requests that never breaks IB's pacing rules.

    The rules (IB's documentation): no identical request within 15 s; at most 5 requests for one contract,
    exchange and data type within 2 s (the 6th is a violation); at most 60 requests in any 10 minutes; at
    most 50 requests open at once. A request refused anyway with error 162 (the fetch raises
    `PacingViolation`) is retried after an exponential backoff, at most `max_retries` times.

    Time comes from `clock` and waiting goes through `sleep`, so tests drive it with a `FakeClock` and a
    sleep that advances it. Use `submit` from the core loop; requests are sent in submission order.
    """

    def __init__(
        self,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        *,
        identical_window_s: float = 15.0,
        per_contract_max: int = 5,
        per_contract_window_s: float = 2.0,
        window_max: int = 60,
        window_s: float = 600.0,
        max_open: int = 50,
        backoff: Backoff | None = None,
        max_retries: int = 5,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._identical_ns = int(identical_window_s * 1e9)
        self._per_contract_max = per_contract_max
        self._per_contract_ns = int(per_contract_window_s * 1e9)
        self._window_max = window_max
        self._window_ns = int(window_s * 1e9)
        self.max_open = max_open
        self.backoff = backoff or Backoff(2.0, 60.0)
        self.max_retries = max_retries
        self._last_identical: dict[HistoricalRequest, int] = {}
        self._per_contract: dict[tuple[int, str, str], deque[int]] = {}
        self._window: deque[int] = deque()
        self.open = 0
        self.sent = 0  # requests sent since start, retries included
        # The most recent sends (sent ns, request), for audits and tests; bounded so a long run stays flat.
        self.sent_log: deque[tuple[int, HistoricalRequest]] = deque(maxlen=SENT_LOG_MAX)
        self.violations = 0
        self.retries = 0
        self._turn = asyncio.Lock()

    def delay_s(self, req: HistoricalRequest) -> float:
        """Seconds until `req` may be sent without breaking a rule (0.0 = now). Does not reserve anything."""
        now = self._clock.monotonic_ns()
        self._expire(now)
        wait_ns = 0
        last = self._last_identical.get(req)
        if last is not None:
            wait_ns = max(wait_ns, last + self._identical_ns - now)
        times = self._per_contract.get(req.contract_key)
        if times is not None and len(times) >= self._per_contract_max:
            # The oldest of the last `max` sends must leave the window first.
            wait_ns = max(wait_ns, times[-self._per_contract_max] + self._per_contract_ns - now)
        if len(self._window) >= self._window_max:
            wait_ns = max(wait_ns, self._window[-self._window_max] + self._window_ns - now)
        # One nanosecond past the edge: a send exactly at the window boundary would count as inside it.
        return 0.0 if wait_ns <= 0 else (wait_ns + 1) / 1e9

    def _expire(self, now: int) -> None:
        while self._window and self._window[0] + self._window_ns <= now:
            self._window.popleft()
        for req in [r for r, t in self._last_identical.items() if t + self._identical_ns <= now]:
            del self._last_identical[req]
        for contract, times in list(self._per_contract.items()):
            while times and times[0] + self._per_contract_ns <= now:
                times.popleft()
            if not times:
                del self._per_contract[contract]

    def _record(self, req: HistoricalRequest) -> None:
        now = self._clock.monotonic_ns()
        self._last_identical[req] = now
        self._per_contract.setdefault(req.contract_key, deque()).append(now)
        self._window.append(now)
        self.sent += 1
        self.sent_log.append((now, req))

    async def _acquire(self, req: HistoricalRequest) -> None:
        # One request at a time through the gate, so two waiters cannot both take the last slot.
        async with self._turn:
            while True:
                delay = self.delay_s(req)
                if delay <= 0 and self.open < self.max_open:
                    break
                await self._sleep(delay if delay > 0 else 0.05)
            self._record(req)
            self.open += 1

    async def submit(self, req: HistoricalRequest, fetch: Callable[[], Awaitable[T]]) -> T:
        """Send `fetch()` when the rules allow; retry on `PacingViolation` after a backoff.

        Raises the last `PacingViolation` when `max_retries` retries were all refused.
        """
        attempt = 0
        while True:
            await self._acquire(req)
            try:
                result = await fetch()
                self.backoff.reset()
                return result
            except PacingViolation:
                self.violations += 1
                if attempt >= self.max_retries:
                    raise
            finally:
                self.open -= 1
            attempt += 1
            self.retries += 1
            delay = self.backoff.next_delay()
            log.warning("historical request %s refused for pacing; retry %d in %.1f s", req, attempt, delay)
            await self._sleep(delay)
