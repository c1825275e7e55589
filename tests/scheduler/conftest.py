"""Helpers for the scheduler, models, signals, decision loop and replay tests."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from omega_tui.config import Settings
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.models.base import Prediction, Snapshot
from omega_tui.core.models.market import Session, simulate
from omega_tui.core.types import InstrumentSpec, OrderIntent, RiskDecision, VerifiedInstrument


def instrument(key: str = "SIM", tick: str = "0.01", multiplier: int = 1) -> VerifiedInstrument:
    return VerifiedInstrument(
        spec=InstrumentSpec(key, key),
        con_id=1,
        min_tick=Decimal(tick),
        multiplier=multiplier,
        exchange="SMART",
        primary_exchange="",
        currency="USD",
        long_name=key,
        time_zone="UTC",
        trading_hours="",
        order_types=("LMT",),
        permission_ok=True,
    )


class ClockModel:
    """An inline model that takes `latency_ns` of fake-clock time per prediction and always says `direction`."""

    inline = True
    features: tuple[str, ...] = ("quote",)
    min_history = 1

    def __init__(self, name: str, clock: FakeClock, latency_ns: int, direction: int = 1, conf: float = 0.9) -> None:
        self.name = name
        self.clock = clock
        self.latency_ns = latency_ns
        self.direction = direction
        self.conf = conf
        self.calls = 0

    def predict(self, snapshot: Snapshot) -> Prediction:
        self.calls += 1
        self.clock.advance(ns=self.latency_ns)
        return Prediction(self.direction, self.conf)


class Risk:
    """A risk engine stand-in that approves everything and keeps what it saw."""

    def __init__(self, approve: bool = True) -> None:
        self.approve = approve
        self.intents: list[OrderIntent] = []

    def submit(self, intent: OrderIntent) -> RiskDecision:
        self.intents.append(intent)
        return RiskDecision(intent.intent_id, self.approve, "" if self.approve else "test", "", intent.created_ns)


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def hot_state(state_dir: Path) -> Iterator[HotState]:
    hs = HotState(state_dir)
    yield hs
    hs.close()


@pytest.fixture(scope="session")
def session() -> Session:
    return simulate(5, 4000)
