"""Property: no sequence of intents, partial fills, cancels, quote moves, halts, resumes, flattens and restarts
ends with a position beyond its limit, or an order reaching the order manager while HALTED (other than the
flatten procedure's reduce-only orders)."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from omega_tui.core.clock import FakeClock
from omega_tui.core.types import (
    FillReceived,
    IntentSource,
    OrderStateChanged,
    QuoteUpdated,
    Side,
    TradingState,
)
from tests.risk.conftest import Harness
from tests.risk.fakes import intent

KEYS = ("AAPL", "ES")
TICK = {"AAPL": Decimal("0.01"), "ES": Decimal("0.25")}
LIMIT = {"AAPL": 1000, "ES": 5}
ES_QTY = {1: 1, 100: 2, 400: 3, 500: 4, 600: 6}  # the AAPL quantity choices, scaled to ES contracts


class RiskMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="risk-prop-"))
        state_dir = self.dir / "state"
        state_dir.mkdir(mode=0o700)
        self.h = Harness(
            state_dir,
            FakeClock(),
            {
                "max_order_notional": 5_000_000.0,
                "max_position_notional": 50_000_000.0,
                "max_orders_per_second": 50.0,
                "max_orders_per_minute": 3000.0,
                "max_daily_loss": 1e9,  # loss halts are tested on their own; here they would end every run
            },
            {"flatten_reprice_s": 0.2, "flatten_timeout_s": 2.0},
        )
        self.mid = {"AAPL": Decimal("100.00"), "ES": Decimal("5000.00")}
        self._wire()

    def _wire(self) -> None:
        """Subscribe the engine as `start` would, without a running loop."""
        e, bus = self.h.engine, self.h.bus
        bus.subscribe(FillReceived, e.on_fill)
        bus.subscribe(QuoteUpdated, e.on_quote)
        bus.subscribe(OrderStateChanged, e.on_order_state)

    def teardown(self) -> None:
        self.h.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _quote(self, key: str) -> None:
        mid, tick = self.mid[key], TICK[key]
        self.h.tick(key, str(mid - tick), str(mid + tick))

    # ------------------------------------------------------------------ rules

    @rule(
        key=st.sampled_from(KEYS),
        side=st.sampled_from(Side),
        qty=st.sampled_from([1, 100, 400, 500, 600]),
        offset=st.integers(-3, 3),
        bracket=st.sampled_from([True, True, True, False]),
        source=st.sampled_from([IntentSource.STRATEGY, IntentSource.MANUAL]),
    )
    def entry(self, key: str, side: Side, qty: int, offset: int, bracket: bool, source: IntentSource) -> None:
        if key == "ES":
            qty = ES_QTY[qty]
        tick = TICK[key]
        limit = self.mid[key] + offset * tick
        step = tick * 10
        tp, sl = (limit + step, limit - step) if side is Side.BUY else (limit - step, limit + step)
        if bracket:
            order = intent(key, side, qty, str(limit), tp=str(tp), sl=str(sl), source=source)
        else:
            order = intent(key, side, qty, str(limit), tp=None, sl=None, source=source)
        self.h.engine.submit(order)

    @rule(
        key=st.sampled_from(KEYS),
        against=st.booleans(),
        qty=st.sampled_from([1, 100, 400, 600]),
        reduce_only=st.booleans(),
        source=st.sampled_from([IntentSource.MANUAL, IntentSource.FLATTEN, IntentSource.STRATEGY]),
    )
    def close(self, key: str, against: bool, qty: int, reduce_only: bool, source: IntentSource) -> None:
        """An order meant to close (reduce-only or not), usually against the position, sometimes not."""
        held = self.h.orders.position_qty(key)
        side = (Side.SELL if held > 0 else Side.BUY) if against else (Side.BUY if held > 0 else Side.SELL)
        if key == "ES":
            qty = ES_QTY.get(qty, 1)
        tick = TICK[key]
        limit = self.mid[key] - tick if side is Side.SELL else self.mid[key] + tick
        self.h.engine.submit(
            intent(key, side, qty, str(limit), tp=None, sl=None, source=source, reduce_only=reduce_only)
        )

    @rule(pick=st.integers(0, 1000), fraction=st.sampled_from([0.3, 0.5, 1.0]))
    def fill(self, pick: int, fraction: float) -> None:
        working = self.h.orders.working()
        if working:
            order = working[pick % len(working)]
            self.h.fill(order.order_id, max(1, int(order.remaining * fraction)))

    @rule(pick=st.integers(0, 1000), fraction=st.sampled_from([0.5, 1.0]))
    def fill_entry(self, pick: int, fraction: float) -> None:
        """Entries are what can build a position up; fill them more often than protective legs."""
        working = self.h.orders.working(role="entry")
        if working:
            order = working[pick % len(working)]
            self.h.fill(order.order_id, max(1, int(order.remaining * fraction)))

    @rule(pick=st.integers(0, 1000))
    def cancel(self, pick: int) -> None:
        working = self.h.orders.working()
        if working:
            self.h.orders.cancel(working[pick % len(working)].order_id)

    @rule(key=st.sampled_from(KEYS), ticks=st.integers(-40, 40))
    def move(self, key: str, ticks: int) -> None:
        self.mid[key] = max(self.mid[key] + ticks * TICK[key], TICK[key] * 100)
        self._quote(key)

    @rule(seconds=st.floats(0.0, 3.0))
    def advance(self, seconds: float) -> None:
        self.h.clock.advance(seconds)
        for key in KEYS:
            self._quote(key)

    @rule(dice=st.integers(0, 3))
    def halt(self, dice: int) -> None:
        if dice == 0:  # a quarter as often as the other rules, or most runs would be spent halted
            self.h.engine.halt("operator:key", "property halt")

    @rule()
    def resume(self) -> None:
        self.h.engine.resume("operator:key")

    @rule(dice=st.integers(0, 2))
    def restart(self, dice: int) -> None:
        if dice == 0:
            self.h.restart()
            self._wire()
            for key in KEYS:  # market data streams again after a restart
                self._quote(key)

    @rule(seed=st.integers(0, 2**16))
    def flatten(self, seed: int) -> None:
        if not any(p.quantity for p in self.h.orders.pos.values()):
            return
        rng = random.Random(seed)

        def market() -> None:
            for key in KEYS:
                self._quote(key)
            for order in self.h.orders.working():
                if rng.random() < 0.5:
                    self.h.fill(order.order_id, rng.randint(1, order.remaining))

        self.h.sleep_hook = market
        try:
            asyncio.run(self.h.engine.flatten("operator:key", "property flatten"))
        finally:
            self.h.sleep_hook = None

    # ------------------------------------------------------------------ invariants

    @invariant()
    def positions_within_limits(self) -> None:
        for key, position in self.h.orders.pos.items():
            assert abs(position.quantity) <= LIMIT[key], (key, position.quantity)

    @invariant()
    def nothing_sent_while_halted_but_flatten_closes(self) -> None:
        for order, state in self.h.orders.submitted:
            if state is TradingState.HALTED:
                assert order.source is IntentSource.FLATTEN and order.reduce_only, order


RiskMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_risk_properties = RiskMachine.TestCase
