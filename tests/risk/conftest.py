"""The risk tests' harness: a RiskEngine over a real hot state and journal, a fake order manager, a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from omega_tui.config import ExecutionSettings, RiskSettings, Settings, StateSettings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.risk import RiskEngine
from omega_tui.core.types import ExecutionReport, FillReceived, Quote, QuoteFlag, QuoteUpdated
from tests.risk.fakes import INSTRUMENTS, FakeOrders, quote

# Limits chosen so quantity binds for AAPL (1,000 x ~100) and ES (5 contracts x 250,000).
BASE_RISK: dict[str, Any] = {
    "max_order_notional": 600_000.0,
    "max_position_notional": 1_500_000.0,
    "per_instrument_max_qty": {"ES": 5},
    "max_daily_loss": 2_000.0,
}


class Harness:
    """One engine and everything around it; `restart()` builds a new engine over the same state directory."""

    def __init__(self, state_dir: Path, clock: FakeClock, risk: dict[str, Any], execution: dict[str, Any]) -> None:
        self.state_dir = state_dir
        self.clock = clock
        self.risk_overrides = {**BASE_RISK, **risk}
        self.settings = Settings(
            risk=RiskSettings(**self.risk_overrides),
            execution=ExecutionSettings(**execution),
            state=StateSettings(dir=state_dir),
        )
        self.bus = EventBus()
        self.events: list[object] = []
        self.bus.subscribe_all(self.events.append)
        self.orders = FakeOrders(clock, {k: v.multiplier for k, v in INSTRUMENTS.items()})
        self.hot = HotState(state_dir)
        self.journal = Journal(state_dir, clock)
        self.disconnects: list[str] = []
        self.sleep_hook: Callable[[], None] | None = None
        self.engine = self._build()
        self.quote("AAPL", "99.99", "100.01")
        self.quote("ES", "5000.00", "5000.25")

    def _build(self) -> RiskEngine:
        engine = RiskEngine(self.settings, self.clock, self.bus, self.hot, self.journal, self.orders, sleep=self.sleep)
        engine.set_instruments(INSTRUMENTS)
        engine.set_disconnect(self.disconnects.append)
        self.orders.state_probe = lambda: engine.trading_state
        self.orders.bus = self.bus
        return engine

    async def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.sleep_hook is not None:
            self.sleep_hook()
        await asyncio.sleep(0)

    def quote(self, key: str, bid: str | None, ask: str | None, **kw: Any) -> Quote:
        q = quote(self.clock, key, bid, ask, **kw)
        self.hot.put_quote(q)
        return q

    def tick(self, key: str, bid: str, ask: str, flags: QuoteFlag = QuoteFlag.NONE) -> None:
        """A quote arriving through the bus, as the normalizer publishes it."""
        q = self.quote(key, bid, ask, flags=flags)
        self.bus.publish(QuoteUpdated(q))

    def fill(self, order_id: int, qty: int, price: str | None = None) -> ExecutionReport | None:
        report = self.orders.fill(order_id, qty, Decimal(price) if price is not None else None)
        if report is not None:
            self.bus.publish(FillReceived(report))
        return report

    def restart(self) -> RiskEngine:
        """A crash and restart: a new hot state, journal and engine over the same directory (the broker keeps
        its orders and positions, so the fake order manager survives)."""
        self.journal.close()
        self.hot.close()
        self.hot = HotState(self.state_dir)
        self.journal = Journal(self.state_dir, self.clock)
        self.bus = EventBus()
        self.bus.subscribe_all(self.events.append)
        self.engine = self._build()
        return self.engine

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RiskEngine]:
        """The engine started (subscribed to the bus, as in the runtime) for the duration of the block."""
        await self.engine.start()
        try:
            yield self.engine
        finally:
            await self.engine.stop()

    def journal_kinds(self) -> list[str]:
        return [r["kind"] for r in self.journal.read()]

    def close(self) -> None:
        self.journal.close()
        self.hot.close()


@pytest.fixture
def make_harness(state_dir: Path, fake_clock: FakeClock) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(risk: dict[str, Any] | None = None, execution: dict[str, Any] | None = None) -> Harness:
        h = Harness(state_dir, fake_clock, risk or {}, execution or {})
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()
