"""Accelerated time for a simulated validation day: the sim's virtual clock, paced from wall time.

The simulated gateway runs on a virtual clock (`SimGateway(clock="virtual")`) that only moves when told to.
`Pacer` moves it on the gateway's own loop by one fixed virtual step (`speed × tick` seconds) per wall tick,
so a 390-minute day takes 390 / speed wall minutes. Fixed steps keep the market path a function of the seed
(the market is step-independent anyway; the matcher sees the same grid of instants every run). The pacer can
be paused, which freezes the market for reconciliation checkpoints and probes.

`SessionClock` is the engine's clock in that run: `now_utc` is the exchange's (virtual) time, so the journal,
the trading day and the P&L curve are in market time; `monotonic_ns` stays real, because what it measures is
physical (callback latencies, model deadlines, order-rate buckets, quote age) and does not speed up.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from omega_tui.sim import SimGateway
from omega_tui.sim.engine import SimClock

T = TypeVar("T")


class SessionClock:
    """The engine's `Clock` during a simulated validation: virtual UTC from the sim, real monotonic time."""

    def __init__(self, sim_clock: SimClock) -> None:
        self._sim = sim_clock

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def now_utc(self) -> datetime:
        # A float read of the sim's clock from another thread: atomic under the GIL, never decreasing.
        return datetime.fromtimestamp(self._sim.now(), UTC)


class Pacer:
    """Moves a virtual-clock `SimGateway` `speed` times faster than wall time, in fixed steps; pausable."""

    def __init__(self, gateway: SimGateway, speed: float, tick_s: float = 0.02) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.gateway = gateway
        self.speed = speed
        self.tick_s = tick_s
        self.step_s = speed * tick_s
        self.steps = 0
        self.late_ticks = 0  # ticks where the gateway could not keep up and had to catch up
        self._paused = threading.Event()
        self._task: asyncio.Future[None] | None = None

    @property
    def virtual_now(self) -> float:
        return self.gateway.clock.now()

    def start(self) -> None:
        """Start stepping (the gateway must be running in its own thread)."""
        loop = self.gateway.loop
        if loop is None:
            raise RuntimeError("the simulated gateway is not running")
        self._task = asyncio.run_coroutine_threadsafe(self._drive(), loop)  # type: ignore[assignment]

    def stop(self) -> None:
        task, loop = self._task, self.gateway.loop
        if task is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        self._task = None

    async def _drive(self) -> None:
        wall0 = time.monotonic()
        done = 0  # steps since wall0 (rebased after every pause, so a pause never causes a burst)
        while True:
            await asyncio.sleep(self.tick_s)
            if self._paused.is_set():
                wall0, done = time.monotonic(), 0
                continue
            due = int((time.monotonic() - wall0) / self.tick_s)
            # Catch up at most a few steps per tick: a saturated machine slows the day down rather than
            # jumping the market past the engine.
            todo = min(due - done, 4)
            if due - done > 1:
                self.late_ticks += 1
            for _ in range(max(todo, 0)):
                self.gateway.advance(self.step_s, self.step_s)
                self.steps += 1
            done = due

    async def pause(self) -> None:
        """Freeze the market (returns once no step is in progress)."""
        self._paused.set()
        await on_gateway(self.gateway, lambda: None)

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()


async def on_gateway(gateway: SimGateway, fn: Callable[[], T]) -> T:
    """Run `fn` on the gateway's loop and await its result without blocking the caller's loop."""
    loop = gateway.loop
    if loop is None:
        raise RuntimeError("the simulated gateway is not running")

    async def run() -> T:
        return fn()

    future: Any = asyncio.run_coroutine_threadsafe(run(), loop)
    result: T = await asyncio.wrap_future(future)
    return result
