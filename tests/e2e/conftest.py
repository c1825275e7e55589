"""End-to-end fixtures: the real wired runtime (`build_runtime`) against a simulated IB Gateway on loopback.

The gateway runs in its own thread with a market that almost never moves by itself (a tiny `speed`), so
every touch is scripted with `Engine.quote(...)`: a quote change is also what makes the sim's matcher look
at resting orders again, so `Engine.pump_until` re-sends the scripted quote until a condition holds. Every
wait is bounded; every gateway and engine is stopped by the test that started it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from omega_tui.config import Settings
from omega_tui.core.broker import BrokerSession
from omega_tui.core.orders import ManagedOrder, OrderManager
from omega_tui.core.risk import RiskEngine
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import (
    CommandResult,
    IntentSource,
    OrderIntent,
    OrderState,
    OrderType,
    PlaceOrder,
    Side,
)
from omega_tui.core.wiring import build_runtime
from omega_tui.sim import SimGateway
from omega_tui.sim.engine import SimOrder

T = TypeVar("T")
WAIT_S = 10.0
CLIENT_ID = 21
AAPL = 265598  # the sim's conId for AAPL
# Event rate multiplier of the sim market: about one random AAPL move per forty minutes, so prices only
# change when a test says so.
FROZEN = 1e-4
BID, ASK = Decimal("230.00"), Decimal("230.02")


async def until(predicate: Callable[[], object], within_s: float = WAIT_S, what: str = "condition") -> None:
    """Poll `predicate` on the loop every 10 ms until truthy; fail the test after `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:g} s waiting for {what}")
        await asyncio.sleep(0.01)


async def until_async(
    predicate: Callable[[], Awaitable[object]], within_s: float = WAIT_S, what: str = "condition"
) -> None:
    """`until` for a predicate that has to ask another thread (the gateway): awaited every 10 ms."""
    deadline = time.monotonic() + within_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:g} s waiting for {what}")
        await asyncio.sleep(0.01)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def engine_settings(port: int, state_dir: Path, **overrides: Any) -> dict[str, Any]:
    """The e2e defaults as plain data (also written as TOML for engine subprocesses)."""
    base: dict[str, Any] = {
        "ib": {
            "mode": "sim",
            "port": port,
            "client_id": CLIENT_ID,
            "connect_timeout_s": 5.0,
            "reconnect_initial_s": 0.05,
            "reconnect_max_s": 0.5,
        },
        "instruments": {"watchlist": [{"symbol": "AAPL", "primary_exchange": "NASDAQ"}]},
        # The scripted market is quiet between touches: quotes must not turn stale under the tests.
        "market_data": {"warmup_bars": False, "stale_after_s": 600.0},
        "risk": {"max_quote_age_s": 600.0},
        "execution": {
            "adaptive_priority": "Urgent",  # the sim holds Adaptive orders 0.1-0.5 s before they may match
            "slice_interval_ms": 50,
            "cancel_all_timeout_s": 2.0,
            "flatten_reprice_s": 0.5,
            "flatten_timeout_s": 10.0,
            "reconcile_delay_s": 0.2,
        },
        "state": {"dir": str(state_dir), "flush_ms": 10},
        "shutdown": {"on_exit": "leave", "confirm_timeout_s": 5.0},
    }
    return deep_merge(base, overrides)


class Touch:
    """AAPL's scripted top of book at one gateway (a thread of its own: every call is marshalled onto its loop)."""

    def __init__(self, gw: SimGateway) -> None:
        self.gw = gw
        self.bid, self.ask, self.bid_size, self.ask_size = BID, ASK, 1000, 1000

    async def sim(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(self.gw.call, fn)

    async def quote(
        self,
        bid: Decimal | None = None,
        ask: Decimal | None = None,
        bid_size: int | None = None,
        ask_size: int | None = None,
    ) -> None:
        """Put AAPL's touch at exactly these values (omitted ones keep the last scripted values)."""
        self.bid = bid if bid is not None else self.bid
        self.ask = ask if ask is not None else self.ask
        self.bid_size = bid_size if bid_size is not None else self.bid_size
        self.ask_size = ask_size if ask_size is not None else self.ask_size
        b, a, bs, asz = float(self.bid), float(self.ask), self.bid_size, self.ask_size
        await self.sim(lambda: self.gw.server.market.set_quote(AAPL, b, a, bs, asz))

    async def pump_until(
        self, predicate: Callable[[], Awaitable[bool]], within_s: float = WAIT_S, what: str = "condition"
    ) -> None:
        """Re-send the touch every 100 ms (each is a new quote the matcher looks at) until `predicate`."""
        deadline = time.monotonic() + within_s
        while not await predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within_s:g} s waiting for {what}")
            await self.quote()
            await asyncio.sleep(0.1)

    async def sim_order(self, order_id: int, client_id: int = CLIENT_ID) -> SimOrder | None:
        return await self.sim(lambda: self.gw.server.exchange.order(client_id, order_id))

    async def sim_open_orders(self) -> list[SimOrder]:
        """Working orders of every client at the gateway (snapshots)."""
        return await self.sim(lambda: self.gw.server.exchange.open_orders())

    async def sim_held_orders(self) -> list[SimOrder]:
        return await self.sim(lambda: self.gw.server.exchange.held_orders())

    async def sim_position(self, con_id: int = AAPL) -> int:
        return await self.sim(lambda: self.gw.server.ledger.position(con_id))


class Engine:
    """One running runtime and the gateway it trades with, plus the helpers the tests share."""

    def __init__(self, gw: SimGateway, runtime: Runtime, settings: Settings, touch: Touch | None = None) -> None:
        self.gw = gw
        self.runtime = runtime
        self.settings = settings
        self.touch = touch or Touch(gw)
        self._ids = itertools.count(1)

    # ---- engines

    @property
    def orders(self) -> OrderManager:
        return self.runtime.engines.orders  # type: ignore[no-any-return]

    @property
    def risk(self) -> RiskEngine:
        return self.runtime.engines.risk  # type: ignore[no-any-return]

    @property
    def broker(self) -> BrokerSession:
        return self.runtime.engines.broker  # type: ignore[no-any-return]

    def intent_orders(self, intent_id: str) -> dict[str, ManagedOrder]:
        """The intent's orders by role ("entry", "take_profit", "stop_loss"; slices as "slice:0", …)."""
        out: dict[str, ManagedOrder] = {}
        for o in self.orders.orders_for_intent(intent_id):
            parts = o.order.order_ref.split(":")
            out[":".join(parts[1:])] = o
        return out

    def all_orders(self) -> list[ManagedOrder]:
        return [o for o in (self.orders.order(i) for i in sorted(self.orders._orders)) if o is not None]

    # ---- the simulated gateway

    async def sim(self, fn: Callable[[], T]) -> T:
        return await self.touch.sim(fn)

    async def sim_open_orders(self) -> list[SimOrder]:
        return await self.touch.sim_open_orders()

    async def sim_held_orders(self) -> list[SimOrder]:
        return await self.touch.sim_held_orders()

    async def sim_order(self, order_id: int) -> SimOrder | None:
        return await self.touch.sim_order(order_id)

    async def sim_position(self, con_id: int = AAPL) -> int:
        return await self.touch.sim_position(con_id)

    async def quote(
        self,
        bid: Decimal | None = None,
        ask: Decimal | None = None,
        bid_size: int | None = None,
        ask_size: int | None = None,
    ) -> None:
        await self.touch.quote(bid, ask, bid_size, ask_size)

    async def quote_seen(self, bid: Decimal | None = None, ask: Decimal | None = None) -> None:
        """Script a touch and wait until the engine's hot state shows it."""
        await self.quote(bid, ask)
        t = self.touch

        def seen() -> bool:
            q = self.runtime.hot_state.quote("AAPL")
            return q is not None and q.bid == t.bid and q.ask == t.ask

        await until(seen, what=f"the engine to see {t.bid} / {t.ask}")

    async def pump_until(
        self, predicate: Callable[[], object], within_s: float = WAIT_S, what: str = "condition"
    ) -> None:
        """Re-send the scripted touch until `predicate` (a condition on the engine) holds."""

        async def check() -> bool:
            for _ in range(10):
                if predicate():
                    return True
                await asyncio.sleep(0.01)
            return False

        await self.touch.pump_until(check, within_s, what)

    # ---- commands

    def intent(
        self,
        side: Side = Side.BUY,
        quantity: int = 100,
        limit: str | None = "229.50",
        take_profit: str | None = "232.00",
        stop_loss: str | None = "228.00",
        order_type: OrderType = OrderType.LMT,
    ) -> OrderIntent:
        return OrderIntent(
            intent_id=f"e2e{next(self._ids)}",
            key="AAPL",
            side=side,
            quantity=quantity,
            limit_price=None if limit is None else Decimal(limit),
            take_profit=None if take_profit is None else Decimal(take_profit),
            stop_loss=None if stop_loss is None else Decimal(stop_loss),
            source=IntentSource.MANUAL,
            created_ns=time.monotonic_ns(),
            order_type=order_type,
        )

    async def place(self, intent: OrderIntent) -> CommandResult:
        """A manual order ticket: `PlaceOrder` through the runtime (risk engine, then order manager)."""
        return await self.runtime.handle(PlaceOrder(intent))

    async def place_bracket(self, intent: OrderIntent) -> dict[str, ManagedOrder]:
        """Place an approved bracket and wait until all three legs are acknowledged by the broker."""
        result = await self.place(intent)
        assert result.ok, result.message

        def acknowledged() -> bool:
            legs = self.intent_orders(intent.intent_id)
            return len(legs) == 3 and all(o.ib_status in ("Submitted", "PreSubmitted") for o in legs.values())

        await until(acknowledged, what=f"bracket {intent.intent_id} acknowledged")
        return self.intent_orders(intent.intent_id)

    async def filled_entry(
        self, quantity: int = 100, take_profit: str = "232.00", stop_loss: str = "228.00"
    ) -> dict[str, ManagedOrder]:
        """A bracket whose parent fills at the ask (230.02) and whose children are then live."""
        legs = await self.place_bracket(
            self.intent(quantity=quantity, limit=str(ASK), take_profit=take_profit, stop_loss=stop_loss)
        )
        await self.pump_until(lambda: legs["entry"].state is OrderState.FILLED, what="the entry filled")
        await until(
            lambda: legs["take_profit"].ib_status == "Submitted" and legs["stop_loss"].ib_status == "Submitted",
            what="the protective legs live",
        )
        return legs


EngineFactory = Callable[..., Awaitable[Engine]]


@pytest.fixture
async def make_engine(state_dir: Path) -> AsyncIterator[EngineFactory]:
    """Start a gateway and a runtime (settings overrides as nested dicts); both are stopped at teardown."""
    started: list[tuple[SimGateway, asyncio.Event, asyncio.Task[int]]] = []

    async def make(
        *, strategy: bool = False, gw: SimGateway | None = None, touch: Touch | None = None, **overrides: Any
    ) -> Engine:
        """A new engine; on a new gateway (touch at 230.00 / 230.02), or on `gw` as it is."""
        fresh = gw is None
        if gw is None:
            gw = SimGateway(seed=7, speed=FROZEN, port=0)
            await asyncio.to_thread(gw.start)
        settings = Settings(**engine_settings(gw.port, state_dir, **overrides))
        runtime = build_runtime(settings, strategy=strategy)
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop), name="e2e-runtime")
        started.append((gw, stop, task))
        assert await asyncio.to_thread(runtime.wait_started, 20), "the engine did not start within 20 s"
        assert runtime.exit_code == 0, runtime.startup_errors
        engine = Engine(gw, runtime, settings, touch)
        if fresh:
            await engine.quote_seen(BID, ASK)
        return engine

    try:
        yield make
    finally:
        for gw, stop, task in reversed(started):
            stop.set()
            try:
                await asyncio.wait_for(task, 30)
            finally:
                await asyncio.to_thread(gw.stop)


@pytest.fixture
async def engine(make_engine: EngineFactory) -> Engine:
    """The default engine: manual trading only (no decision loop), AAPL, scripted quotes at 230.00 / 230.02."""
    return await make_engine()
