"""`omega-tui validate`: a trading day of the complete engine, headless, with a verdict (checklist §8).

With `ib.mode = "sim"` the embedded simulated gateway runs on a virtual clock that `Pacer` moves `speed`
times faster than wall time (default 100: a 390-minute day in about four minutes); the engine's `SessionClock`
reads that virtual time as UTC and keeps real monotonic time for latencies. With `ib.mode = "gateway"` the day
runs in real time against a paper account (a live account is refused before any engine starts).

The script of the day, in session minutes: round-trip latency probes throughout, P&L checkpoints at intervals
(the market paused, figures compared at the broker's marks), the risk probes at 15 %, a scripted partial fill
at 25 %, a connectivity loss (1100 … 1101) at 40 % and a socket drop at 60 % (sim), and a daily-loss breach at
88 % that halts (and flattens) for the rest of the day. At the close: cancel every working order, final
reconciliation, report.

Test API (never a setting or a flag): `disable_rule` makes the risk engine approve what that one rule would
deny; `misreport_commission` makes the simulated gateway report commissions × factor; `delay_commission_s`
makes it send every commission report that many wall seconds late; `sim_account` is the account the simulated
gateway reports.

Once the engine is warm (before the open) the run applies the first step of the engine's garbage-collector
policy, `headless.freeze_startup_heap` (collect, then freeze what survives): a full collection over a large
heap holds the GIL for hundreds of milliseconds, which would be charged to whatever callback it interrupts. The
heap is unfrozen when the day ends, so a caller that goes on (the test suite) collects it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from omega_tui.config import Settings, ensure_state_dir
from omega_tui.core.broker import BrokerSession
from omega_tui.core.broker.verify import StartupVerificationError
from omega_tui.core.clock import Clock, SystemClock
from omega_tui.core.decision import DecisionEngine
from omega_tui.core.orders import OrderManager
from omega_tui.core.risk import RiskEngine
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import (
    CancelAll,
    ConnectionChanged,
    ConnectionState,
    FillReceived,
    OrderState,
    OrderStateChanged,
    OrderType,
    Quote,
    QuoteFlag,
    QuoteUpdated,
    RiskDecision,
    Side,
    TradingState,
    TradingStateChanged,
)
from omega_tui.core.wiring import Hook, build_runtime
from omega_tui.headless import freeze_startup_heap
from omega_tui.validate import probes
from omega_tui.validate.report import Check, LatencySeries, ValidationReport

log = logging.getLogger(__name__)

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE, EXIT_STARTUP = 0, 1, 2, 3
DEFAULT_SPEED = 100.0
LATENCY_BUDGET_MS = 100.0
CENT = Decimal("0.01")
MARKETABLE_MARGIN = Decimal("1.001")  # 0.1 % through the touch
PAPER_PREFIX = "DU"

CHECK_FILLS = "Order fills & partials"
CHECK_LATENCY = "Callback latencies"
CHECK_RISK = "Risk engine enforcement"
CHECK_PNL = "PnL calculation accuracy"
CHECK_FAULTS = "Faults during the day"


class LiveAccountRefused(StartupVerificationError):
    """The gateway reports a live (non-paper) account: validation never trades one."""


@dataclass
class ValidationOptions:
    """What to run; the last four fields are the test API (see the module docstring)."""

    minutes: float = 390.0
    out_dir: Path = Path("validation")
    speed: float = DEFAULT_SPEED
    disable_rule: str | None = None
    misreport_commission: float | None = None
    delay_commission_s: float | None = None
    sim_account: str | None = None


@dataclass
class Outcome:
    """The result of one validation: the report (None when it could not start), paths and exit code."""

    exit_code: int
    report: ValidationReport | None = None
    paths: dict[str, Path] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def validation_settings(settings: Settings, out_dir: Path, speed: float) -> tuple[Settings, dict[str, str]]:
    """The run's own settings: a fresh state directory, and the strategy scaled to the accelerated day.

    Wall-clock strategy settings are divided by the speed so they mean the same in market time; the
    1-minute order-rate limit is multiplied by it for the same reason (the 1-second limit stays in wall
    time, where IB's pacing lives, and is what the rate probe trips). Returns the settings and what changed.
    """
    state_dir = ensure_state_dir(out_dir / "state")
    changed: dict[str, str] = {"state.dir": str(state_dir)}
    signals = settings.signals
    risk = settings.risk
    scheduler = settings.scheduler
    upd_signals: dict[str, Any] = {}
    upd_risk: dict[str, Any] = {}
    upd_sched: dict[str, Any] = {}
    if speed != 1.0:
        upd_signals["cooldown_s"] = signals.cooldown_s / speed
        upd_risk["max_orders_per_minute"] = risk.max_orders_per_minute * speed
        upd_sched["decision_interval_ms"] = max(20, int(scheduler.decision_interval_ms / speed))
    for k, v in upd_signals.items():
        changed[f"signals.{k}"] = f"{getattr(signals, k):g} → {v:g}"
    for k, v in upd_risk.items():
        changed[f"risk.{k}"] = f"{getattr(risk, k):g} → {v:g}"
    for k, v in upd_sched.items():
        changed[f"scheduler.{k}"] = f"{getattr(scheduler, k)} → {v}"
    out = settings.model_copy(
        update={
            "state": settings.state.model_copy(update={"dir": state_dir}),
            "signals": signals.model_copy(update=upd_signals),
            "risk": risk.model_copy(update=upd_risk),
            "scheduler": scheduler.model_copy(update=upd_sched),
        }
    )
    return out, changed


# ------------------------------------------------------------------------------------------------ recorder


class Recorder:
    """Bus subscriber: the day's timeline, decisions, connection gaps and what each order was sent against."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.timeline: list[tuple[float, str]] = []
        self.decisions: dict[str, RiskDecision] = {}
        self.marketable: set[int] = set()
        self.down_since: int | None = None
        self.gaps: list[tuple[int, int]] = []  # monotonic ns intervals without a connection
        self.last_quote_ns: dict[str, int] = {}
        self.fills = 0
        bus = session.runtime.bus
        bus.subscribe(RiskDecision, self._on_decision)
        bus.subscribe(OrderStateChanged, self._on_order)
        bus.subscribe(ConnectionChanged, self._on_connection)
        bus.subscribe(TradingStateChanged, self._on_trading)
        bus.subscribe(QuoteUpdated, self._on_quote)
        bus.subscribe(FillReceived, self._on_fill)

    def note(self, text: str) -> None:
        self.timeline.append((self.s.minute(), text))

    def _on_decision(self, d: RiskDecision) -> None:
        self.decisions[d.intent_id] = d

    def _on_order(self, e: OrderStateChanged) -> None:
        if e.old is not OrderState.NEW or e.new is not OrderState.PENDING_SUBMIT:
            return
        o = self.s.orders.order(e.order_id)
        q = self.s.runtime.hot_state.quote(e.key)
        if o is None or o.order.parent_id or q is None:
            return
        order = o.order
        limit = order.limit_price
        if order.order_type is OrderType.MKT:
            self.marketable.add(e.order_id)
        elif order.order_type is OrderType.LMT and limit is not None:
            # Through the touch by a margin the market does not cover in one step: it fills on arrival.
            if (order.action.sign > 0 and q.ask is not None and limit >= q.ask * MARKETABLE_MARGIN) or (
                order.action.sign < 0 and q.bid is not None and limit <= q.bid / MARKETABLE_MARGIN
            ):
                self.marketable.add(e.order_id)

    def _on_connection(self, e: ConnectionChanged) -> None:
        now = time.monotonic_ns()
        if e.state is ConnectionState.UP:
            if self.down_since is not None:
                self.gaps.append((self.down_since, now))
                self.down_since = None
            self.note(f"connection UP: {e.detail}")
        elif e.state is ConnectionState.DOWN:
            if self.down_since is None:
                self.down_since = now
            self.note(f"connection DOWN: {e.detail}")
        else:
            self.note(f"connection {e.state}: {e.detail}")

    def _on_trading(self, e: TradingStateChanged) -> None:
        self.note(f"trading {e.old} → {e.new} by {e.source}: {e.reason}")

    def _on_quote(self, e: QuoteUpdated) -> None:
        self.last_quote_ns[e.quote.key] = time.monotonic_ns()

    def _on_fill(self, e: FillReceived) -> None:
        self.fills += 1

    def in_gap(self, start_ns: int, end_ns: int) -> bool:
        gaps = [*self.gaps, *([(self.down_since, end_ns)] if self.down_since is not None else [])]
        return any(a < end_ns and start_ns < b for a, b in gaps)


# ------------------------------------------------------------------------------------------------ session


class Session:
    """The running day: the runtime, the broker (simulated or paper) and the controls probes need."""

    def __init__(self, settings: Settings, runtime: Runtime, gateway: Any, pacer: Any, options: ValidationOptions):
        self.settings = settings
        self.runtime = runtime
        self.gateway = gateway  # SimGateway or None
        self.pacer = pacer  # Pacer or None
        self.options = options
        engines = runtime.engines
        self.orders: OrderManager = engines.orders
        self.risk: RiskEngine = engines.risk
        self.broker: BrokerSession = engines.broker
        self.decision: DecisionEngine | None = engines.decision
        self.wall0 = time.monotonic()
        self.virtual0 = gateway.clock.now() if gateway is not None else 0.0
        self._strategy_pauses = 0
        self.recorder = Recorder(self)

    @property
    def simulated(self) -> bool:
        return self.gateway is not None

    def minute(self) -> float:
        """Session minutes since the open (virtual in sim mode, wall in gateway mode)."""
        if self.gateway is not None:
            virtual: float = self.gateway.clock.now()
            return (virtual - self.virtual0) / 60.0
        return (time.monotonic() - self.wall0) / 60.0

    # -------------------------------------------------------------------------------- market facts

    def quote(self, key: str) -> Quote:
        q = self.runtime.hot_state.quote(key)
        if q is None:
            raise LookupError(f"no quote for {key}")
        return q

    def quote_ok(self, key: str) -> bool:
        q = self.runtime.hot_state.quote(key)
        return (
            q is not None
            and q.bid is not None
            and q.ask is not None
            and q.bid < q.ask
            and not (q.flags & (QuoteFlag.STALE | QuoteFlag.CROSSED))
        )

    def tick(self, key: str) -> Decimal:
        return Decimal(self.orders.instruments[key].min_tick)

    # -------------------------------------------------------------------------------- controls

    @contextlib.asynccontextmanager
    async def strategy_paused(self) -> AsyncIterator[None]:
        """Hold the strategy's intents back while a probe runs, so the probe's exposure is its own."""
        self._strategy_pauses += 1
        try:
            yield
        finally:
            self._strategy_pauses -= 1

    def install_strategy_gate(self) -> None:
        # The decision engine keeps the submit callable it was built with; the validation wraps it so a probe
        # runs against exposure it computed itself. A held-back intent never reaches the risk engine.
        decision = self.decision
        if decision is None:
            return
        inner = decision._submit

        def gated(intent: Any) -> RiskDecision:
            if self._strategy_pauses:
                return RiskDecision(intent.intent_id, False, "validation_pause", "a validation probe is running", 0)
            result: RiskDecision = inner(intent)
            return result

        decision._submit = gated

    @contextlib.asynccontextmanager
    async def market_paused(self) -> AsyncIterator[None]:
        """Freeze the simulated market (a no-op against a real gateway)."""
        if self.pacer is None or self.pacer.paused:
            yield
            return
        await self.pacer.pause()
        try:
            yield
        finally:
            self.pacer.resume()

    async def resume(self, reason: str) -> bool:
        ok = await probes.resume_trading(self, reason)
        self.recorder.note(f"operator resume ({reason}): {'ok' if ok else 'refused'}")
        return ok

    # -------------------------------------------------------------------------------- broker side

    async def on_gateway(self, fn: Callable[[], Any]) -> Any:
        from omega_tui.validate.pacing import on_gateway

        return await on_gateway(self.gateway, fn)

    async def reached_broker(self, intent_ids: list[str]) -> list[str]:
        """Orders of these intents the broker has seen (the simulated exchange, or the gateway's trades)."""
        prefixes = tuple(f"{i}:" for i in intent_ids)
        if not prefixes:
            return []
        if self.gateway is not None:
            ex = self.gateway.server.exchange

            def collect() -> list[str]:
                seen = ex.open_orders() + ex.held_orders() + ex.completed_orders()
                return sorted({o.order_ref for o in seen if o.order_ref.startswith(prefixes)})

            result: list[str] = await self.on_gateway(collect)
            return result
        trades = self.broker.ib.trades()
        return sorted({t.order.orderRef for t in trades if str(t.order.orderRef or "").startswith(prefixes)})

    async def broker_flat(self) -> bool:
        if self.gateway is not None:
            ledger = self.gateway.server.ledger
            flat: bool = await self.on_gateway(lambda: all(p.quantity == 0 for p in ledger.positions()))
            return flat
        positions = await asyncio.wait_for(self.broker.ib.reqPositionsAsync(), 10)
        return all(p.position == 0 for p in positions if p.account == self.broker.account)

    async def shock(self, key: str, pct: float) -> None:
        con_id = self.orders.instruments[key].con_id
        server = self.gateway.server
        await self.on_gateway(lambda: server.market.shock(con_id, pct))
        self.recorder.note(f"market shock {key} {pct:+.2f}%")

    async def thin_book(self, key: str, price: Decimal, side: Side) -> bool:
        """Show one lot at `price` on the side a resting `side` order takes, and match at that same instant."""
        con_id = self.orders.instruments[key].con_id
        server = self.gateway.server
        tick = float(self.tick(key))
        px = float(price)

        def act() -> bool:
            # One ordinary step first, so the resting order is past the Adaptive algo's delay; then the book
            # comes to its limit showing one lot, and the matcher runs before time moves again.
            server.clock.advance(self.pacer.step_s if self.pacer is not None else 2.0)
            server.advance_to(server.clock.now())
            q = server.market.quote(con_id)
            if side is Side.BUY:
                if px - tick <= 0:
                    return False
                server.market.set_quote(con_id, round(px - tick, 10), px, q.bid_size, 100)
            else:
                server.market.set_quote(con_id, px, round(px + tick, 10), 100, q.ask_size)
            server.advance_to(server.clock.now())
            return True

        async with self.market_paused():
            ok: bool = await self.on_gateway(act)
        self.recorder.note(f"thin book on {key}: one lot at {price} for a resting {side}")
        return ok


# ------------------------------------------------------------------------------------------------ running


async def run_validation(settings: Settings, options: ValidationOptions) -> Outcome:
    """Run the day and write the report; the caller prints it. See the module docstring."""
    out_dir = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    speed = options.speed if settings.ib.mode == "sim" else 1.0
    vsettings, changed = validation_settings(settings, out_dir, speed)
    gateway: Any = None
    pacer: Any = None
    clock: Clock
    if settings.ib.mode == "sim":
        from omega_tui.sim import SimGateway
        from omega_tui.validate.pacing import Pacer, SessionClock

        gateway = SimGateway(
            seed=settings.sim.seed,
            port=0,
            account=options.sim_account or settings.ib.account or "DU1234567",
            max_lines=settings.ib.max_market_data_lines,
            clock="virtual",
        )
        gateway.start()
        if options.misreport_commission is not None:
            gateway.faults.misreport_commission(options.misreport_commission)
        if options.delay_commission_s is not None:
            # The gateway's clock is virtual: `speed` virtual seconds pass per wall second.
            gateway.faults.delay("commissionReport", options.delay_commission_s * speed, count=1_000_000)
        pacer = Pacer(gateway, speed)
        clock = SessionClock(gateway.clock)
        ib = vsettings.ib.model_copy(update={"host": "127.0.0.1", "port": gateway.port})
        vsettings = vsettings.model_copy(update={"ib": ib})
    else:
        clock = SystemClock()
    try:
        runtime = build_runtime(vsettings, clock)
        _guard_paper_account(runtime)
        if options.disable_rule:
            _disable_rule(runtime, options.disable_rule)
        return await _run_day(vsettings, runtime, gateway, pacer, options, changed)
    finally:
        if pacer is not None:
            pacer.stop()
        if gateway is not None:
            gateway.stop()


def _guard_paper_account(runtime: Runtime) -> None:
    """Refuse (as a startup failure, before anything trades) unless the broker's account is a paper one."""
    broker = runtime.engines.broker

    async def check() -> None:
        account = broker.account or ""
        if not account.startswith(PAPER_PREFIX):
            raise LiveAccountRefused(
                [
                    f"account {account or '(none)'} is not a paper account (IB paper accounts start with "
                    f"{PAPER_PREFIX}); validation only runs against paper trading and refuses a live account"
                ]
            )

    hook = Hook(runtime, "paper-account", check)
    hook.set_status_listener(runtime.bus.publish)
    runtime.components.insert(runtime.components.index(broker) + 1, hook)


def _disable_rule(runtime: Runtime, rule: str) -> None:
    """Test-only: the risk engine approves what `rule` alone would deny (proves the enforcement check fails)."""
    risk = runtime.engines.risk
    inner = risk.check

    def check(intent: Any) -> RiskDecision:
        decision: RiskDecision = inner(intent)
        if not decision.approved and decision.rule == rule:
            return RiskDecision(intent.intent_id, True, "", f"approved: rule {rule} disabled by a test hook", 0)
        return decision

    risk.check = check


async def _run_day(
    settings: Settings,
    runtime: Runtime,
    gateway: Any,
    pacer: Any,
    options: ValidationOptions,
    changed: dict[str, str],
) -> Outcome:
    started_utc = runtime.clock.now_utc()
    wall0 = time.monotonic()
    stop = asyncio.Event()
    engine = asyncio.create_task(runtime.run(stop), name="validation-engine")
    await asyncio.to_thread(runtime.wait_started)  # set once running, or once it gave up starting
    await asyncio.sleep(0)
    if engine.done() or runtime.exit_code == EXIT_STARTUP:
        await engine
        return Outcome(EXIT_STARTUP, errors=list(runtime.startup_errors) or ["the engine did not start"])
    session = Session(settings, runtime, gateway, pacer, options)
    session.install_strategy_gate()
    day = Day(session)
    warm_s = await _pre_open(session)
    day.end_of_day["pre-open warm-up"] = f"{warm_s:.1f} s"
    freeze_startup_heap()
    try:
        if pacer is not None:
            session.virtual0 = gateway.clock.now()
            pacer.start()
        session.wall0 = time.monotonic()
        await day.run(options.minutes)
        checks = await day.close()
    finally:
        gc.unfreeze()
        stop.set()
        await asyncio.wait_for(engine, 60)
    wall_s = time.monotonic() - wall0
    report = ValidationReport(
        title="Paper-trading validation (checklist §8)",
        started_utc=started_utc.isoformat(timespec="seconds"),
        finished_utc=runtime.clock.now_utc().isoformat(timespec="seconds"),
        mode=f"SIM (seed {settings.sim.seed}, ×{options.speed:g})" if gateway is not None else "PAPER (IB Gateway)",
        minutes=options.minutes,
        checks=checks,
        latencies=day.latency_series,
        pnl_curve=day.pnl_curve,
        facts=day.facts(changed, wall_s),
    )
    paths = report.write(options.out_dir)
    return Outcome(EXIT_PASSED if report.passed else EXIT_FAILED, report, paths)


async def _pre_open(s: Session, within_s: float = 30.0) -> float:
    """Before the open (the market not moving yet): warm-up bars loaded and every model calibrated.

    A real session starts the engine before the bell; starting the accelerated day before the engine is warm
    would charge its start-up work to the first orders' latencies.
    """
    t0 = time.monotonic()
    decision = s.decision

    def warm() -> bool:
        if not s.broker.bars_ready.is_set():
            return False
        if decision is None or decision.core is None:
            return decision is None
        sched = decision.core.scheduler
        need = max(sched.warm_samples, s.settings.scheduler.window // 2)
        return all(len(sched.latency[name]) >= need for name in decision.lanes)

    await probes.wait_for(warm, within_s, step=0.05)
    await asyncio.sleep(0.5)
    return time.monotonic() - t0


# ------------------------------------------------------------------------------------------------ the day


@dataclass
class PnlComparison:
    """One reconciliation of Omega's figures with the broker's, per instrument and for the account."""

    minute: float
    rows: list[dict[str, Any]]
    worst: Decimal
    worst_what: str
    error: str = ""


@dataclass
class FaultRecord:
    name: str
    minute: float
    halted: bool = False
    reconnected: bool = False
    resubscribed: bool = False
    lost: str = "not checked"
    resumed: bool = False
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.halted and self.reconnected and self.resubscribed and self.lost == "" and self.resumed


class Day:
    """The scripted day and the checks made from it."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.probe_results: list[probes.ProbeResult] = []
        self.scripted: list[probes.ScriptedOutcome] = []
        self.comparisons: list[PnlComparison] = []
        self.faults: list[FaultRecord] = []
        self.pnl_curve: list[tuple[float, float]] = []
        self.latency_series: list[LatencySeries] = []
        self.round_trips = 0
        self.end_of_day: dict[str, Any] = {}
        self._pnl_single: dict[tuple[str, int], Any] = {}
        self._pnl_single_epoch = -1

    # ------------------------------------------------------------------------------------ script

    async def run(self, minutes: float) -> None:
        s = self.s
        n = minutes
        actions: list[tuple[float, str, Callable[[], Awaitable[None]]]] = []
        cp_every = max(5.0, round(n / 13))
        t = cp_every
        while t < n - 1e-9:
            actions.append((t, "P&L checkpoint", self.checkpoint))
            t += cp_every
        rt_every = max(2.0, n / 20)
        t = max(1.0, n * 0.05)
        while t < n * 0.85:
            actions.append((t, "round trip", self.round_trip))
            t += rt_every
        actions.append((max(2.0, n * 0.15), "risk probes", self.risk_probes))
        if s.simulated:
            actions.append((n * 0.25, "partial fill", self.partial_fill))
            actions.append((n * 0.40, "connectivity loss (1100 … 1101)", self.fault_connectivity))
            actions.append((n * 0.60, "socket drop", self.fault_socket))
        actions.append((n * 0.88, "daily-loss breach", self.daily_loss))
        actions.sort(key=lambda a: a[0])
        sampler = asyncio.create_task(self._sample_curve(max(0.5, n / 390)), name="validation-pnl-curve")
        try:
            await self._play(actions, n)
        finally:
            sampler.cancel()
        self.sample_pnl()

    async def _sample_curve(self, every_min: float) -> None:
        """The intraday P&L curve, sampled on its own task so long probes leave no holes in it."""
        next_sample = 0.0
        while True:
            if self.s.minute() >= next_sample:
                self.sample_pnl()
                next_sample = self.s.minute() + every_min
            await asyncio.sleep(0.01)

    async def _play(self, actions: list[tuple[float, str, Callable[[], Awaitable[None]]]], n: float) -> None:
        s = self.s
        while True:
            now = s.minute()
            while actions and actions[0][0] <= now:
                _, name, act = actions.pop(0)
                s.recorder.note(f"— {name}")
                try:
                    await act()
                except Exception as exc:
                    log.exception("validation step %s failed", name)
                    s.recorder.note(f"{name} failed: {exc!r}")
            if now >= n:
                break
            await asyncio.sleep(0.01)

    def sample_pnl(self) -> None:
        realized, unrealized, commissions = self.s.orders.day_pnl()
        self.pnl_curve.append((round(self.s.minute(), 3), float(realized + unrealized - commissions)))

    # ------------------------------------------------------------------------------------ steps

    async def round_trip(self) -> None:
        if self.s.risk.trading_state is not TradingState.ACTIVE:
            return
        outcome = await probes.round_trip(self.s)
        if outcome.ok:
            self.round_trips += 1
        self.s.recorder.note(f"round trip: {outcome.detail}")

    async def risk_probes(self) -> None:
        self.probe_results = await probes.RiskProbes(self.s).run()

    async def partial_fill(self) -> None:
        outcome = await probes.partial_fill(self.s, self.s.thin_book if self.s.simulated else None)
        self.scripted.append(outcome)

    async def daily_loss(self) -> None:
        s = self.s

        def lower() -> None:
            # Paper: the limit is lowered in this engine only, just below the day's P&L, so the breach is real.
            s.risk._max_daily_loss = -s.risk.day_pnl() - CENT
            s.risk._check_daily_loss()

        outcome = await probes.daily_loss(s, s.shock if s.simulated else None, None if s.simulated else lower)
        self.scripted.append(outcome)

    async def fault_connectivity(self) -> None:
        s = self.s
        faults = s.gateway.faults
        record = FaultRecord("connectivity loss 1100, restored 1101 (data lost)", s.minute())
        before = await self._broker_snapshot()
        reconnects = s.broker.reconnects
        await s.on_gateway(lambda: _server_call(faults.connectivity_lost))
        s.recorder.note("fault: 1100 connectivity lost")
        record.halted = await probes.wait_for(lambda: s.risk.trading_state is TradingState.HALTED, 5.0)
        record.reconnected = await probes.wait_for(lambda: s.broker.reconnects > reconnects, 15.0)
        await asyncio.sleep(0.5)
        restored_ns = time.monotonic_ns()
        await s.on_gateway(lambda: _server_call(lambda: faults.connectivity_restored(data_lost=True)))
        s.recorder.note("fault: 1101 connectivity restored, data lost")
        await self._finish_fault(record, before, restored_ns)

    async def fault_socket(self) -> None:
        s = self.s
        record = FaultRecord("socket drop (gateway restart)", s.minute())
        before = await self._broker_snapshot()
        reconnects = s.broker.reconnects
        await s.on_gateway(lambda: s.gateway.server.drop_all(0.3))
        s.recorder.note("fault: every socket dropped, new connections refused for 0.3 s")
        record.halted = await probes.wait_for(lambda: s.risk.trading_state is TradingState.HALTED, 5.0)
        record.reconnected = await probes.wait_for(lambda: s.broker.reconnects > reconnects, 20.0)
        await self._finish_fault(record, before, time.monotonic_ns())

    async def _finish_fault(self, record: FaultRecord, before: dict[str, Any], since_ns: int) -> None:
        s = self.s
        keys = [k for k, v in s.orders.instruments.items() if v.tradable]
        record.resubscribed = await probes.wait_for(
            lambda: all(s.recorder.last_quote_ns.get(k, 0) > since_ns for k in keys), 10.0
        )
        await probes.wait_for(lambda: s.orders.state.value == "RUNNING" and s.broker.connection_state.value == "UP", 5)
        await asyncio.sleep(0.5)  # recovery after the reconnect reconciles with the broker
        lost = await self._lost_since(before)
        record.lost = lost
        record.resumed = await s.resume(f"after {record.name}")
        lines = await self._sim_lines()
        record.detail = (
            f"halted={record.halted}, reconnected={record.reconnected} (reconnects {s.broker.reconnects}), "
            f"resubscribed={record.resubscribed} ({lines} market-data lines at the gateway), "
            f"lost: {lost or 'nothing'}, resumed={record.resumed}"
        )
        self.faults.append(record)

    async def _sim_lines(self) -> int:
        server = self.s.gateway.server
        count: int = await self.s.on_gateway(lambda: server.lines_in_use)
        return count

    async def _broker_snapshot(self) -> dict[str, Any]:
        ex = self.s.gateway.server.exchange
        cid = self.s.settings.ib.client_id

        def snap() -> dict[str, Any]:
            return {
                "execs": {e.exec_id for e in ex.executions(client_id=cid)},
                "orders": {o.order_id for o in ex.open_orders(cid)},
            }

        result: dict[str, Any] = await self.s.on_gateway(snap)
        return result

    async def _lost_since(self, before: dict[str, Any]) -> str:
        """'' when every execution and order the broker had (and has now) is known to Omega with its fills."""
        now = await self._broker_snapshot()
        orders = self.s.orders
        known_execs = {x for oid in _all_order_ids(self.s) for x in _order_fills(orders, oid)}
        missing_execs = sorted((before["execs"] | now["execs"]) - known_execs)
        missing_orders = sorted(oid for oid in before["orders"] | now["orders"] if orders.order(oid) is None)
        parts = []
        if missing_execs:
            parts.append(f"{len(missing_execs)} executions unknown to Omega")
        if missing_orders:
            parts.append(f"orders unknown to Omega: {missing_orders[:5]}")
        return "; ".join(parts)

    # ------------------------------------------------------------------------------------ P&L

    async def checkpoint(self) -> None:
        comparison = await self.compare_pnl()
        self.comparisons.append(comparison)
        self.s.recorder.note(f"P&L checkpoint: largest difference {comparison.worst} ({comparison.worst_what})")

    async def compare_pnl(self) -> PnlComparison:
        """Omega's figures against the broker's (portfolio, reqPnL, reqPnLSingle, executions) at one instant."""
        s = self.s
        async with s.market_paused():
            for _attempt in range(20):
                if s.simulated:
                    server = s.gateway.server

                    def push(server: Any = server) -> None:
                        server.push_pnl()
                        server.push_account(portfolio=True)

                    await s.on_gateway(push)
                try:
                    broker = await self._broker_figures()
                except Exception as exc:
                    return PnlComparison(s.minute(), [], Decimal(0), "", f"broker figures unavailable: {exc!r}")
                if broker["exec_ids"] == _known_exec_ids(s) and not _orders_in_flight(s):
                    return self._compare(broker)
                await asyncio.sleep(0.1)
            return PnlComparison(s.minute(), [], Decimal(0), "", "Omega and the broker never settled on the same fills")

    async def _broker_figures(self) -> dict[str, Any]:
        s = self.s
        ib = s.broker.ib
        account = s.broker.account
        if self._pnl_single_epoch != s.broker.reconnects:
            # A reconnect drops IB's side of every subscription: ask again on this connection.
            for acc, con_id in list(self._pnl_single):
                with contextlib.suppress(Exception):
                    ib.cancelPnLSingle(acc, "", con_id)
            self._pnl_single.clear()
            self._pnl_single_epoch = s.broker.reconnects
        for v in s.orders.instruments.values():
            if (account, v.con_id) not in self._pnl_single:
                self._pnl_single[(account, v.con_id)] = ib.reqPnLSingle(account, "", v.con_id)
        fills = await broker_executions(s)
        commissions: dict[int, Decimal] = {}
        for f in fills:
            commissions[f.contract.conId] = commissions.get(f.contract.conId, Decimal(0)) + _commission(s, f)
        portfolio = {item.contract.conId: item for item in ib.portfolio(account)}
        pnl = next(iter(ib.pnl(account)), None)
        singles = {con: ps for (acc, con), ps in self._pnl_single.items() if acc == account}
        return {
            "exec_ids": {f.execution.execId for f in fills},
            "commissions": commissions,
            "portfolio": portfolio,
            "pnl": pnl,
            "singles": singles,
        }

    def _compare(self, broker: dict[str, Any]) -> PnlComparison:
        s = self.s
        rows: list[dict[str, Any]] = []
        worst, worst_what = Decimal(0), "nothing to compare"
        total_ours = Decimal(0)

        def diff(what: str, ours: Decimal, theirs: Any) -> None:
            nonlocal worst, worst_what
            t = _dec(theirs)
            if t is None:
                return
            d = abs(ours - t)
            if d > worst or worst_what == "nothing to compare":
                worst, worst_what = d, what
            rows[-1][what] = {"omega": str(ours), "broker": str(t), "diff": str(d.quantize(Decimal("0.0001")))}

        positions = s.orders.positions()
        for key, v in sorted(s.orders.instruments.items()):
            pos = positions.get(key)
            item = broker["portfolio"].get(v.con_id)
            single = broker["singles"].get(v.con_id)
            if pos is None and item is None:
                continue
            rows.append({"instrument": key})
            qty = pos.quantity if pos is not None else 0
            realized = pos.realized if pos is not None else Decimal(0)
            commissions = pos.commissions if pos is not None else Decimal(0)
            mark = _dec(item.marketPrice) if item is not None else None
            unrealized = pos.unrealized(mark) if pos is not None and mark is not None else Decimal(0)
            net = realized + unrealized - commissions
            total_ours += net
            broker_qty = int(item.position) if item is not None else 0
            rows[-1]["quantity"] = {"omega": qty, "broker": broker_qty}
            if qty != broker_qty:
                worst, worst_what = Decimal("Infinity"), f"{key} quantity {qty} vs {broker_qty}"
            if item is not None:
                diff(
                    f"{key} realised+unrealised-commissions vs portfolio",
                    net,
                    _sum(item.unrealizedPNL, item.realizedPNL),
                )
                if qty == 0:
                    diff(f"{key} realised-commissions vs portfolio realised", realized - commissions, item.realizedPNL)
            if single is not None:
                diff(f"{key} net vs reqPnLSingle daily", net, single.dailyPnL)
            diff(f"{key} commissions vs commission reports", commissions, broker["commissions"].get(v.con_id))
        pnl = broker["pnl"]
        if pnl is not None:
            rows.append({"instrument": "account"})
            diff("account net vs reqPnL daily", total_ours, pnl.dailyPnL)
        return PnlComparison(self.s.minute(), rows, worst, worst_what)

    # ------------------------------------------------------------------------------------ close

    async def close(self) -> list[Check]:
        """End of the day: cancel what works, reconcile, and turn what was seen into checks."""
        s = self.s
        if s.pacer is not None:
            await s.pacer.pause()  # the market closes: nothing moves while the day is reconciled
        s.recorder.note("— the close: cancel every working order")
        result = await s.runtime.handle(CancelAll(source=probes.OPERATOR))
        self.end_of_day["cancel_all"] = result.message
        await probes.wait_for(lambda: not s.orders.working_orders(), 10.0)
        final = await self.compare_pnl()
        final.minute = s.minute()
        self.comparisons.append(final)
        fills_check = await self.check_fills()
        checks = [fills_check, self.check_latency(), self.check_risk(), self.check_pnl()]
        if s.simulated:
            checks.append(self.check_faults())
        for res in self.probe_results:
            checks.append(Check(f"probe: {res.name}", res.passed, res.detail(), section="probe"))
        for out in self.scripted:
            checks.append(Check(f"probe: {out.name}", out.ok, out.detail, section="probe"))
        return checks

    async def check_fills(self) -> Check:
        s = self.s
        orders = s.orders
        ids = _all_order_ids(s)
        not_terminal = [oid for oid in ids if (o := orders.order(oid)) is not None and not o.state.is_terminal]
        unknown_local = [oid for oid in ids if orders.order(oid) is None]
        needs = [oid for oid in ids if (o := orders.order(oid)) is not None and o.needs_reconcile]
        partial_orders = [
            oid
            for oid in ids
            if (o := orders.order(oid)) is not None
            and (len(o.fills) > 1 or any(st is OrderState.PARTIALLY_FILLED for st, *_ in o.transitions))
        ]
        mishandled = [
            oid
            for oid in partial_orders
            if (o := orders.order(oid)) is not None
            and (
                sum(f.quantity for f in o.fills.values()) != o.filled
                or (o.state is OrderState.FILLED) != (o.filled >= o.order.quantity)
            )
        ]
        # The journal against the broker's executions (reqExecutions through the broker session).
        journal_fills: dict[str, dict[str, Any]] = {}
        journal_commissions: dict[str, Decimal] = {}
        journal_submitted: set[int] = set()
        for rec in s.runtime.journal.read():
            kind = rec.get("kind")
            if kind == "fill":
                journal_fills[rec["fill"]["exec_id"]] = rec["fill"]
            elif kind == "commission":
                journal_commissions[rec["commission"]["exec_id"]] = Decimal(rec["commission"]["commission"])
            elif kind == "submit":
                journal_submitted.update(int(leg["order"]["order_id"]) for leg in rec.get("legs", []))
        problems: list[str] = []
        try:
            broker_fills = await broker_executions(s)
            open_trades = await asyncio.wait_for(s.broker.ib.reqAllOpenOrdersAsync(), 10)
        except Exception as exc:
            return Check(CHECK_FILLS, False, f"the broker's executions could not be fetched: {exc!r}")
        cid = s.settings.ib.client_id
        broker_execs = {f.execution.execId: f for f in broker_fills}
        missing_in_journal = sorted(set(broker_execs) - set(journal_fills))
        extra_in_journal = sorted(set(journal_fills) - set(broker_execs))
        mismatched = []
        for exec_id, f in broker_execs.items():
            j = journal_fills.get(exec_id)
            if j is None:
                continue
            if (
                int(j["quantity"]) != int(f.execution.shares)
                or Decimal(j["price"]) != _dec(f.execution.price)
                or int(j["order_id"]) != int(f.execution.orderId)
            ):
                mismatched.append(exec_id)
            theirs = _commission(s, f)
            ours = journal_commissions.get(exec_id)
            if ours is None or abs(ours - theirs) > CENT:
                mismatched.append(f"{exec_id} (commission)")
        broker_orders = {t.order.orderId for t in open_trades if t.order.clientId == cid}
        orders_unknown = sorted(oid for oid in broker_orders if orders.order(oid) is None)
        orders_unjournaled = sorted(
            oid for oid in ids if oid not in journal_submitted and orders.order(oid) is not None
        )
        orders_unjournaled = [oid for oid in orders_unjournaled if (o := orders.order(oid)) and o.role != "adopted"]
        if not_terminal:
            problems.append(f"{len(not_terminal)} orders not terminal at the close: {not_terminal[:5]}")
        if unknown_local or orders_unknown or needs:
            problems.append(f"orders left unknown or unreconciled: {(unknown_local + orders_unknown + needs)[:5]}")
        if missing_in_journal or extra_in_journal or mismatched:
            problems.append(
                f"journal vs broker executions: {len(missing_in_journal)} missing, {len(extra_in_journal)} extra, "
                f"{len(mismatched)} differ"
            )
        if orders_unjournaled:
            problems.append(f"orders placed without a journal submit record: {orders_unjournaled[:5]}")
        if not partial_orders:
            problems.append("no partial-fill sequence was seen, so their handling is unverified")
        if mishandled:
            problems.append(f"partial-fill sequences mishandled: {mishandled[:5]}")
        filled = sum(1 for oid in ids if (o := orders.order(oid)) is not None and o.state is OrderState.FILLED)
        detail = (
            f"{len(ids)} orders ({filled} filled), {len(broker_execs)} executions, all terminal at the close; "
            f"{len(partial_orders)} partial-fill sequences handled; journal and broker agree on every order and "
            "execution"
            if not problems
            else "; ".join(problems)
        )
        self.end_of_day.update(
            orders=len(ids),
            executions=len(broker_execs),
            partial_sequences=len(partial_orders),
            anomalies=orders.anomaly_count,
        )
        return Check(CHECK_FILLS, not problems, detail)

    def check_latency(self) -> Check:
        s = self.s
        orders = s.orders
        rec = s.recorder
        ack: list[float] = []
        fill: list[float] = []
        resting: list[float] = []
        excluded = 0
        for oid in _all_order_ids(s):
            o = orders.order(oid)
            if o is None or not o.submit_ns:
                continue
            if o.ack_ns:
                if rec.in_gap(o.submit_ns, o.ack_ns):
                    excluded += 1
                else:
                    ack.append((o.ack_ns - o.submit_ns) / 1e6)
            if o.first_fill_ns and o.order.parent_id == 0:
                sample = (o.first_fill_ns - o.submit_ns) / 1e6
                if rec.in_gap(o.submit_ns, o.first_fill_ns):
                    excluded += 1
                elif oid in rec.marketable:
                    fill.append(sample)
                else:
                    resting.append(sample)
        fill_recv: dict[str, int] = {}
        commission: list[float] = []
        for r in s.runtime.journal.read():
            if r.get("kind") == "fill":
                fill_recv[r["fill"]["exec_id"]] = int(r["fill"]["recv_ns"])
            elif r.get("kind") == "commission":
                c = r["commission"]
                start = fill_recv.get(c["exec_id"])
                if start is not None and c.get("recv_ns") and not rec.in_gap(start, int(c["recv_ns"])):
                    commission.append(max(0.0, (int(c["recv_ns"]) - start) / 1e6))
        budgeted = [
            LatencySeries("submit → acknowledged", ack),
            LatencySeries("submit → first fill (marketable)", fill),
            LatencySeries("fill → commission report", commission),
        ]
        self.latency_series = [
            *budgeted,
            LatencySeries("submit → first fill (other orders; includes time in the book)", resting),
        ]
        failing = []
        parts = []
        for series in budgeted:
            m = series.summary()
            if not series.samples_ms:
                failing.append(f"{series.name}: no samples")
                continue
            parts.append(f"{series.name} p99 {m['p99_ms']:.1f} ms (n={m['n']})")
            if m["p99_ms"] > LATENCY_BUDGET_MS:
                failing.append(f"{series.name} p99 {m['p99_ms']:.1f} ms over {LATENCY_BUDGET_MS:g} ms")
        if excluded:
            parts.append(f"{excluded} samples spanning a connection loss excluded")
        detail = "; ".join(failing) if failing else "; ".join(parts) + f" (budget p99 ≤ {LATENCY_BUDGET_MS:g} ms)"
        return Check(CHECK_LATENCY, not failing, detail)

    def check_risk(self) -> Check:
        bad = [r for r in self.probe_results if not r.passed]
        loss = next((o for o in self.scripted if o.name == "daily-loss breach"), None)
        problems = [f"{r.name}: {r.detail()}" for r in bad]
        if not self.probe_results:
            problems.append("the risk probes did not run")
        if loss is None:
            problems.append("the daily-loss breach did not run")
        elif not loss.ok:
            problems.append(f"daily loss: {loss.detail}")
        if problems:
            return Check(CHECK_RISK, False, "; ".join(problems))
        return Check(
            CHECK_RISK,
            True,
            f"{len(self.probe_results)} probes each denied by the right rule and never sent; daily-loss breach "
            "halted" + (" and flattened" if self.s.settings.risk.on_max_loss == "flatten" else ""),
        )

    def check_pnl(self) -> Check:
        comps = self.comparisons
        if not comps:
            return Check(CHECK_PNL, False, "no P&L comparison was made")
        errors = [c for c in comps if c.error]
        worst = max(comps, key=lambda c: c.worst)
        ok = not errors and worst.worst <= CENT
        if errors:
            detail = f"{len(errors)} of {len(comps)} comparisons failed: {errors[0].error}"
        else:
            detail = (
                f"{len(comps)} comparisons (portfolio, reqPnL, reqPnLSingle, commission reports); largest difference "
                f"{worst.worst:.4f} at minute {worst.minute:.0f} ({worst.worst_what}); limit 0.01 per instrument"
            )
        return Check(CHECK_PNL, ok, detail)

    def check_faults(self) -> Check:
        if len(self.faults) < 2:
            return Check(CHECK_FAULTS, False, f"only {len(self.faults)} of 2 faults ran")
        bad = [f for f in self.faults if not f.passed]
        detail = " | ".join(f"{f.name} at minute {f.minute:.0f}: {f.detail}" for f in self.faults)
        return Check(CHECK_FAULTS, not bad, detail)

    # ------------------------------------------------------------------------------------ facts

    def facts(self, changed: dict[str, str], wall_s: float) -> dict[str, Any]:
        s = self.s
        realized, unrealized, commissions = s.orders.day_pnl()
        facts: dict[str, Any] = {
            "wall time": f"{wall_s:.1f} s",
            "validation settings (strategy scaled to the accelerated day)": ", ".join(
                f"{k} = {v}" for k, v in changed.items()
            ),
            "orders": self.end_of_day.get("orders"),
            "executions": self.end_of_day.get("executions"),
            "partial-fill sequences": self.end_of_day.get("partial_sequences"),
            "order anomalies reconciled": self.end_of_day.get("anomalies"),
            "round-trip latency probes": self.round_trips,
            "risk decisions": len(s.recorder.decisions),
            "day P&L (realised, unrealised, commissions)": f"{realized:.2f}, {unrealized:.2f}, {commissions:.2f}",
            "trading state at the close": f"{s.risk.trading_state} ({s.risk.state_reason})",
            "broker reconnects": s.broker.reconnects,
            "end of day": self.end_of_day.get("cancel_all", ""),
        }
        if s.pacer is not None:
            facts["market steps"] = f"{s.pacer.steps} of {s.pacer.step_s:g} virtual s (late ticks {s.pacer.late_ticks})"
        if s.options.disable_rule:
            facts["TEST HOOK"] = f"risk rule {s.options.disable_rule} disabled"
        if s.options.misreport_commission is not None:
            facts["TEST HOOK"] = f"the simulated gateway reports commissions × {s.options.misreport_commission:g}"
        if s.options.delay_commission_s is not None:
            facts["TEST HOOK"] = (
                f"the simulated gateway sends commission reports {s.options.delay_commission_s:g} s late"
            )
        for c in self.comparisons[-1:]:
            facts["final P&L comparison"] = c.rows
        facts["timeline"] = [f"{m:7.2f} min  {text}" for m, text in s.recorder.timeline]
        return facts


# ------------------------------------------------------------------------------------------------ helpers


def _server_call(fn: Callable[[], None]) -> None:
    fn()


async def broker_executions(s: Session) -> list[Any]:
    """The day's executions of this client, as the broker reports them (`reqExecutions`)."""
    ib = s.broker.ib
    fills = await asyncio.wait_for(ib.reqExecutionsAsync(), 10)
    await asyncio.wait_for(ib.reqCurrentTimeAsync(), 10)  # every commission report sent before it is read
    cid = s.settings.ib.client_id
    return [f for f in fills if f.execution.clientId == cid]


def _commission(s: Session, fill: Any) -> Decimal:
    """The commission the broker reported for an execution (ib_async keeps it on its own copy of the fill)."""
    stored = s.broker.ib.wrapper.fills.get(fill.execution.execId, fill)
    report = stored.commissionReport
    return _dec(report.commission if report is not None else 0) or Decimal(0)


def _all_order_ids(s: Session) -> list[int]:
    """Every order id Omega knows today: what it submitted (journal) and what it adopted."""
    ids: set[int] = set()
    for rec in s.runtime.journal.read():
        kind = rec.get("kind")
        if kind == "submit":
            ids.update(int(leg["order"]["order_id"]) for leg in rec.get("legs", []))
        elif kind == "adopted":
            ids.add(int(rec["order"]["order_id"]))
        elif kind == "fill":
            ids.add(int(rec["fill"]["order_id"]))
    return sorted(ids)


def _order_fills(orders: Any, order_id: int) -> set[str]:
    o = orders.order(order_id)
    return set(o.fills) if o is not None else set()


def _known_exec_ids(s: Session) -> set[str]:
    return {x for oid in _all_order_ids(s) for x in _order_fills(s.orders, oid)}


def _orders_in_flight(s: Session) -> bool:
    return any(o.state in (OrderState.PENDING_SUBMIT, OrderState.PENDING_CANCEL) for o in _views(s))


def _views(s: Session) -> list[Any]:
    out = []
    for oid in _all_order_ids(s):
        o = s.orders.order(oid)
        if o is not None:
            out.append(o)
    return out


def _dec(value: Any) -> Decimal | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if f != f or abs(f) >= 1e300:
        return None
    return Decimal(str(round(f, 8)))


def _sum(a: Any, b: Any) -> Decimal | None:
    x, y = _dec(a), _dec(b)
    if x is None and y is None:
        return None
    return (x or Decimal(0)) + (y or Decimal(0))


def now_utc() -> datetime:
    return datetime.now(UTC)
