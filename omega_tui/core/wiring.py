"""The one place where the engines are built and connected to each other (DESIGN §4, runtime row).

Start order (stop is the reverse): the order manager's journal replay (before the broker connects, whose
startup sync already reports orders and fills) → broker session (connect, verify, subscribe) → binding of the
verified instruments into every engine → order manager (recovery: reconciliation with the broker) → risk
engine → decision engine → background AI tasks. The risk engine stops before the broker, so the broker's own
shutdown never reads as a lost connection; the shutdown policy runs before anything stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from omega_tui.config import Settings
from omega_tui.core.ai_tasks import AiTasks
from omega_tui.core.broker import BrokerSession
from omega_tui.core.broker.snapshot import BrokerFigures, BrokerSnapshot
from omega_tui.core.clock import Clock
from omega_tui.core.component import Component
from omega_tui.core.decision import DecisionEngine
from omega_tui.core.orders import OrderManager
from omega_tui.core.risk import RiskEngine
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import (
    CancelAll,
    CancelOrder,
    CommandResult,
    ConnectionChanged,
    ConnectionState,
    Flatten,
    Halt,
    PlaceOrder,
    Resume,
    TradingState,
)

log = logging.getLogger(__name__)


class Hook(Component):
    """A step in the start sequence: runs `on_start_fn` when started (used to pass results along)."""

    def __init__(self, runtime: Runtime, name: str, on_start_fn: Callable[[], Awaitable[None]]) -> None:
        super().__init__(runtime.clock)
        self.name = name
        self._fn = on_start_fn

    async def on_start(self) -> None:
        await self._fn()


class Engines:
    """Handles to every engine of one runtime, for the front ends, tests and validation."""

    def __init__(
        self,
        runtime: Runtime,
        broker: BrokerSession,
        orders: OrderManager,
        risk: RiskEngine,
        decision: DecisionEngine | None,
        ai: AiTasks | None,
    ) -> None:
        self.runtime, self.broker, self.orders, self.risk = runtime, broker, orders, risk
        self.decision, self.ai = decision, ai


def build_runtime(
    settings: Settings,
    clock: Clock | None = None,
    *,
    strategy: bool = True,
    broker_kwargs: dict[str, Any] | None = None,
) -> Runtime:
    """A runtime with every engine wired but not started. `strategy=False` leaves out the decision loop
    (manual trading only); `broker_kwargs` go to the BrokerSession (tests pass `sleep`, `rng`)."""
    runtime = Runtime(settings, clock)
    clock = runtime.clock
    bus, hot, journal = runtime.bus, runtime.hot_state, runtime.journal

    broker = BrokerSession(settings, clock, bus, hot, **(broker_kwargs or {}))
    orders = OrderManager(settings, clock, bus, hot, journal, broker.orders)
    broker.orders.set_order_events(orders)
    orders.set_snapshot_source(BrokerSnapshot(broker))
    orders.set_event_log(runtime.log_event)
    figures = BrokerFigures(broker, bus, orders)

    risk = RiskEngine(settings, clock, bus, hot, journal, orders)
    risk.set_disconnect(broker.drop)
    risk.set_event_log(runtime.log_event)

    decision: DecisionEngine | None = None
    ai: AiTasks | None = None
    if strategy:
        decision = DecisionEngine(settings, clock, bus, hot, {}, risk.submit, orders.position_qty)
        ai = AiTasks(settings, clock, hot, {})

    async def bind_instruments() -> None:
        verified = {v.key: v for v in broker.verified}
        orders.set_instruments(verified)
        risk.set_instruments(verified)
        if decision is not None:
            decision.set_instruments(verified)
        if ai is not None:
            ai.set_instruments(verified)
        figures.start()

    async def recover() -> None:
        await orders.recover()
        after_recovery("startup")

    def after_recovery(when: str) -> None:
        # A position recovered without working stops (a restart, orders lost while away) is protected unless
        # HALTED, when nothing new may be placed: then the operator is told which positions have no stop.
        if risk.trading_state is TradingState.HALTED:
            risk.warn_unprotected()
            return
        try:
            ids = orders.protect_positions(f"recovery ({when})")
        except Exception:
            log.exception("protecting positions after recovery failed")
            runtime.log_event("error", "order", "open positions could not be protected after recovery")
            return
        if ids:
            runtime.journal.record("protect_positions", reason=f"recovery ({when})", order_ids=ids)
            runtime.log_event("info", "order", f"{len(ids) // 2} recovered positions protected with stops")

    async def recover_after_reconnect() -> None:
        await orders.recover()
        after_recovery("reconnect")

    async def replay_journal() -> None:
        orders.replay_journal()

    runtime.add(Hook(runtime, "journal", replay_journal))
    runtime.add(broker)
    runtime.add(Hook(runtime, "bind", bind_instruments))
    runtime.add(orders)
    runtime.add(Hook(runtime, "recovery", recover))
    runtime.add(risk)
    if decision is not None and ai is not None:
        runtime.add(decision)
        runtime.add(ai)

    # Recovery again after every reconnect: the broker is the truth for what happened while we were away.
    was_down = False

    def on_connection(event: ConnectionChanged) -> None:
        nonlocal was_down
        if event.state is ConnectionState.DOWN:
            was_down = True
        elif event.state is ConnectionState.UP and was_down and orders.state.value == "RUNNING":
            was_down = False
            runtime.spawn_background(recover_after_reconnect(), "recover-after-reconnect")

    bus.subscribe(ConnectionChanged, on_connection)

    # Commands: the kill switch and re-arm belong to the risk engine; manual orders pass through it too.
    async def place(command: PlaceOrder) -> CommandResult:
        decision_ = risk.submit(command.intent)
        return CommandResult(
            command.intent.intent_id,
            decision_.approved,
            "approved" if decision_.approved else f"denied by {decision_.rule}: {decision_.reason}",
            clock.now_utc(),
            {"rule": decision_.rule},
        )

    async def cancel(command: CancelOrder) -> CommandResult:
        ok = orders.cancel(command.order_id, reason=f"cancel from {command.source}")
        msg = f"cancel sent for order {command.order_id}" if ok else f"order {command.order_id} is not working"
        return CommandResult(str(command.order_id), ok, msg, clock.now_utc())

    async def cancel_all(command: CancelAll) -> CommandResult:
        ok = await orders.cancel_all(f"cancel all from {command.source}")
        msg = "every order cancelled" if ok else "some orders did not confirm the cancel; see the event log"
        return CommandResult("cancel_all", ok, msg, clock.now_utc())

    runtime.on_urgent_command(Halt, lambda command: risk.halt(command.source, command.reason))
    runtime.on_command(Flatten, risk.handle)
    runtime.on_command(Resume, risk.handle)
    runtime.on_command(PlaceOrder, place)
    runtime.on_command(CancelOrder, cancel)
    runtime.on_command(CancelAll, cancel_all)

    async def shutdown_policy() -> None:
        await apply_shutdown_policy(settings, runtime, orders, risk)

    runtime.on_shutdown(shutdown_policy)
    runtime.engines = Engines(runtime, broker, orders, risk, decision, ai)
    return runtime


async def apply_shutdown_policy(settings: Settings, runtime: Runtime, orders: OrderManager, risk: RiskEngine) -> None:
    """`[shutdown] on_exit`: cancel working orders, flatten, or leave them; bounded, journaled either way."""
    policy = settings.shutdown.on_exit
    timeout = settings.shutdown.confirm_timeout_s
    working = [o["order_id"] for o in orders.working_orders()]
    if not orders.broker.connected:
        runtime.journal.record(
            "shutdown", policy=policy, outcome="not connected", working_before=working, working_after=working
        )
        if working:
            # Headless operators read the log, not the event pane: say it in both.
            text = f"exiting disconnected with {len(working)} orders possibly working: {working}"
            runtime.log_event("error", "system", text)
            log.error("shutdown policy %s not applied: %s", policy, text)
        return
    # "left" only when orders really were left working; with nothing working there was nothing to do.
    outcome = "left" if working else "nothing working"
    try:
        if policy == "cancel" and working:
            ok = await asyncio.wait_for(orders.cancel_all("engine shutdown"), timeout)
            outcome = "cancelled" if ok else "cancel not confirmed"
        elif policy == "flatten":
            result = await asyncio.wait_for(risk.flatten("system:shutdown", "engine shutdown"), timeout)
            outcome = "flattened" if result.ok else f"flatten incomplete: {result.message}"
    except TimeoutError:
        outcome = f"{policy} not confirmed within {timeout:g} s"
    except Exception as exc:  # the journal must still say what was left working, so record and carry on
        log.exception("shutdown policy %s failed", policy)
        outcome = f"{policy} failed: {type(exc).__name__}: {exc}"
    remaining = [o["order_id"] for o in orders.working_orders()]
    runtime.journal.record("shutdown", policy=policy, outcome=outcome, working_before=working, working_after=remaining)
    level = "info" if not remaining or policy == "leave" else "error"
    runtime.log_event(level, "system", f"shutdown ({policy}): {outcome}; {len(remaining)} orders still working")
    log.log(
        logging.INFO if level == "info" else logging.ERROR,
        "shutdown policy %s: %s (%d working left)",
        policy,
        outcome,
        len(remaining),
    )
