"""Builders for the order-manager tests: settings, instruments, intents and a manager wired to a FakeBroker."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from omega_tui.config import ExecutionSettings, Settings, StateSettings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.orders import OrderManager
from omega_tui.core.types import (
    InstrumentSpec,
    IntentSource,
    OrderIntent,
    OrderType,
    Quote,
    Side,
    VerifiedInstrument,
)
from tests.fakes import FakeBroker

_ids = itertools.count(1)


def instrument(key: str = "AAPL", *, multiplier: int = 1, min_tick: str = "0.01") -> VerifiedInstrument:
    return VerifiedInstrument(
        spec=InstrumentSpec(key=key, symbol=key),
        con_id=1000 + len(key),
        min_tick=Decimal(min_tick),
        multiplier=multiplier,
        exchange="SMART",
        primary_exchange="NASDAQ",
        currency="USD",
        long_name=key,
        time_zone="America/New_York",
        trading_hours="",
        order_types=("LMT", "STP", "MKT"),
        permission_ok=True,
    )


def intent(
    qty: int = 100,
    *,
    key: str = "AAPL",
    side: Side = Side.BUY,
    limit: str | None = "100.00",
    tp: str | None = "101.00",
    sl: str | None = "99.00",
    order_type: OrderType = OrderType.LMT,
    reduce_only: bool = False,
    source: IntentSource = IntentSource.STRATEGY,
    priority: str = "Normal",
    intent_id: str | None = None,
) -> OrderIntent:
    return OrderIntent(
        intent_id=intent_id or f"i{next(_ids)}",
        key=key,
        side=side,
        quantity=qty,
        limit_price=None if limit is None else Decimal(limit),
        take_profit=None if tp is None else Decimal(tp),
        stop_loss=None if sl is None else Decimal(sl),
        source=source,
        created_ns=0,
        order_type=order_type,
        reduce_only=reduce_only,
        adaptive_priority=priority,
    )


def quote(key: str, bid: str, ask: str, clock: FakeClock, seq: int = 1) -> Quote:
    return Quote(
        key=key,
        seq=seq,
        recv_ns=clock.monotonic_ns(),
        recv_utc=clock.now_utc(),
        bid=Decimal(bid),
        ask=Decimal(ask),
        last=Decimal(bid),
    )


@dataclass
class Rig:
    """A manager, its fake broker and everything it writes to, for one test."""

    manager: OrderManager
    broker: FakeBroker
    clock: FakeClock
    bus: EventBus
    hot: HotState
    journal: Journal
    state_dir: Path
    events: list[object]

    def kinds(self) -> list[str]:
        return [rec["kind"] for rec in self.journal.read()]

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [rec for rec in self.journal.read() if rec["kind"] == kind]


RigFactory = Callable[..., Rig]


def build_rig(
    state_dir: Path,
    broker: Any = None,
    clock: FakeClock | None = None,
    instruments: list[VerifiedInstrument] | None = None,
    **execution: Any,
) -> Rig:
    """An order manager over `state_dir` (journal without fsync) wired to `broker` (a `FakeBroker` by default,
    or any port with `set_order_events`, e.g. a real `IbOrderAdapter`), with AAPL and MSFT unless told."""
    clock = clock or FakeClock()
    settings = Settings(execution=ExecutionSettings(**execution), state=StateSettings(dir=state_dir))
    bus = EventBus()
    events: list[object] = []
    bus.subscribe_all(events.append)
    hot = HotState(state_dir)
    journal = Journal(state_dir, clock, fsync=False)
    broker = broker if broker is not None else FakeBroker(clock)
    manager = OrderManager(settings, clock, bus, hot, journal, broker)
    if isinstance(broker, FakeBroker):
        broker.attach(manager)
    else:
        broker.set_order_events(manager)
    insts = instruments or [instrument("AAPL"), instrument("MSFT")]
    manager.set_instruments({i.key: i for i in insts})
    return Rig(manager, broker, clock, bus, hot, journal, state_dir, events)


@pytest.fixture
def make_rig(state_dir: Path) -> Iterator[RigFactory]:
    """`make_rig(**execution_overrides, broker=..., instruments=...)`; journals share `state_dir`."""
    made: list[Rig] = []

    def factory(
        *,
        broker: FakeBroker | None = None,
        clock: FakeClock | None = None,
        instruments: list[VerifiedInstrument] | None = None,
        **execution: Any,
    ) -> Rig:
        # A second rig over the same state directory is a restart: the earlier engines' queued journal
        # records are written first, as a clean stop would (a kill loses them: see test_recovery's kill test).
        for earlier in made:
            earlier.journal.flush()
        rig = build_rig(state_dir, broker, clock, instruments, **execution)
        made.append(rig)
        return rig

    yield factory
    for rig in made:
        rig.journal.close()
        rig.hot.close()
