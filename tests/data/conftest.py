"""Fixtures for the market data tests: a simulated gateway on loopback and a broker session against it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omega_tui.config import Settings
from omega_tui.core.broker import BrokerSession
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import SystemClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.types import ApiErrorReceived, ConnectionChanged, QuoteUpdated
from omega_tui.sim.gateway import SimGateway

WAIT_S = 15.0


async def wait_until(predicate: Callable[[], bool], what: str = "condition", within_s: float = WAIT_S) -> None:
    """Poll `predicate` on the loop until it holds; fail after `within_s` seconds (a bound, not a delay)."""

    async def poll() -> None:
        # The conditions come from another thread's socket traffic; polling the loop is the simple bound.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), within_s)
    except TimeoutError:
        raise AssertionError(f"timed out after {within_s:g} s waiting for {what}") from None


@pytest.fixture
def gateway() -> Iterator[SimGateway]:
    gw = SimGateway(seed=7, speed=5.0)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


class Recorder:
    """Everything the session published on the bus, by kind."""

    def __init__(self, bus: EventBus) -> None:
        self.quotes: list[Any] = []
        self.connection: list[ConnectionChanged] = []
        self.errors: list[ApiErrorReceived] = []
        bus.subscribe(QuoteUpdated, lambda e: self.quotes.append(e.quote))
        bus.subscribe(ConnectionChanged, self.connection.append)
        bus.subscribe(ApiErrorReceived, self.errors.append)

    def quotes_for(self, key: str) -> list[Any]:
        return [q for q in self.quotes if q.key == key]


class Harness:
    def __init__(self, session: BrokerSession, hot_state: HotState, recorder: Recorder, state_dir: Path) -> None:
        self.session = session
        self.hot_state = hot_state
        self.rec = recorder
        self.state_dir = state_dir


@pytest.fixture
async def make_session(gateway: SimGateway, state_dir: Path) -> AsyncIterator[Callable[..., Harness]]:
    """Build (not start) a session against the gateway; everything is stopped at the end of the test."""
    made: list[Harness] = []

    def make(**sections: Any) -> Harness:
        ib = {"port": gateway.port, "connect_timeout_s": 5.0, "reconnect_initial_s": 0.05, "reconnect_max_s": 0.5}
        ib.update(sections.pop("ib", {}))
        market_data = {"warmup_bars": False}
        market_data.update(sections.pop("market_data", {}))
        # (Sections as mappings, as a config file gives them: pydantic validates them into their settings.)
        fields: dict[str, Any] = {"ib": ib, "market_data": market_data, "state": {"dir": state_dir, "flush_ms": 10}}
        settings = Settings(**fields, **sections)
        bus = EventBus()
        hot_state = HotState(state_dir, settings.state.flush_ms)
        hot_state.start()
        recorder = Recorder(bus)
        session = BrokerSession(settings, SystemClock(), bus, hot_state, rng=random.Random(1))
        harness = Harness(session, hot_state, recorder, state_dir)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await asyncio.wait_for(harness.session.stop(), 10)
        harness.hot_state.close()
