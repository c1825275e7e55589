"""The decision loop: every interval, per tradable instrument, scheduler → model → signal → risk engine.

Wiring (the runtime does this)::

    engine = DecisionEngine(settings, clock, bus, hot_state, instruments, risk.submit, positions.qty)
    await engine.start()   # builds the model pool, starts warm-up calibration and the decision loop
    ...
    await engine.stop()

What callers must know:

- Quotes come from the hot state (read at each decision) and from `QuoteUpdated` on the bus (kept as
  history); both paths feed one ring buffer per instrument, so the engine works with either.
- Warm-up: a model can be chosen only once it has `Scheduler.warm_samples` latency samples (at q = 0.99,
  99). A background calibrator runs each model off the hot path (in its lane; inline models between
  decisions) on the latest snapshot — or a simulated one before the market has data — back to back until it
  has half a window of samples, then re-measures every model every `scheduler.calibration_interval_ms`, so
  bounds follow the machine's load even for models the scheduler is not choosing, and a model whose bound
  does not fit the budget every `scheduler.probe_interval_ms` (no more than `PROBE_DUTY` of the time for a
  slow one), so that once the samples of a burst of preemptions have aged out of its window
  (`scheduler.latency_max_age_ms`) it can be chosen again. A probe only feeds the latency window (recorded
  with its time like every sample), never a decision. A worker-thread probe is not started when the next
  decision round is due within twice its p99 latency: a probe still running then would compete for the
  GIL with the decision's inline model. Until a model is warm it
  is never chosen; until one is, every decision abstains.
- A decision's budget is `deadline_ms − reserve_ms` from its start. The choice sees what is left of it once
  the snapshot and regime are ready (time lost before the choice, a preemption included, is already off),
  less the typical measured delay from there to the model's start (`DISPATCH_QUANTILE`), less the
  scheduler's adaptive headroom; the same test is made again at dispatch (a decision whose chosen model no longer fits
  what is left then abstains, with the choice still recorded). The chosen model runs
  under the hard timeout of the deadline (inline models on the loop, the others in their own single-thread
  lane); an answer that arrives late is discarded and counted as a miss, and its real latency still feeds
  the model's window.
- Bookkeeping runs after each decision, off its deadline (`DecisionCore.end`): the headroom adapts to the
  decision's outcome (met or missed), then matured predictions are scored and online models learn.
- Everything that can change a choice goes through `DecisionCore` in a fixed order (quotes, latency samples,
  matured outcomes, parameters), and a `Recorder` receives the same stream, so `replay.replay` reproduces
  the choices and intents exactly.
- `submit` is called on the core loop with each intent; it must not block. An exception from it is logged
  and treated as a denial.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from omega_tui.config import Settings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import Clock
from omega_tui.core.component import Component
from omega_tui.core.hot_state import HotState
from omega_tui.core.models.base import Model, OnlineModel, Prediction, PreparedModel, Snapshot, is_inline, min_history
from omega_tui.core.models.data import Priors, load_priors
from omega_tui.core.models.features import logvol
from omega_tui.core.models.market import simulate, snapshot_at
from omega_tui.core.models.registry import load_models
from omega_tui.core.scheduler import INF, Choice, Scheduler, SchedulerMetrics, SchedulerSnapshot, choose, fits
from omega_tui.core.signals import DEFAULT_PARAMS, TradingParams, explain
from omega_tui.core.types import (
    ComponentState,
    OrderIntent,
    Quote,
    QuoteFlag,
    QuoteUpdated,
    RiskDecision,
    VerifiedInstrument,
)

log = logging.getLogger(__name__)

Policy = Callable[[SchedulerSnapshot], Choice]
MET = frozenset({"ok", "abstain"})  # decision statuses that met the deadline
MISSED = frozenset({"late", "timeout"})  # …and those that missed it
DISPATCH_ABSTAIN = "the chosen model no longer fit when it was to start"
PROBE_DUTY = 0.05  # an infeasible model's frequent re-measurement takes at most this share of the time
HISTORY = 256  # updates of history per instrument handed to models
ROUND_SLICE_NS = 2_000_000
"""A round of decisions gives the loop back between two decisions once it has run this long: a round over a
hundred instruments is tens of ms of work, and a kill switch, a fill or a tick batch waiting behind it is then
taken within about one slice instead of after the whole round."""


@dataclass(frozen=True, slots=True)
class DecisionMade:
    """A decision that produced an intent (published on the bus for the journal and the UI)."""

    key: str
    decision_seq: int
    model: str
    intent_id: str
    bound_us: float
    budget_us: float
    latency_us: float
    approved: bool


@dataclass(frozen=True, slots=True)
class DecisionOutcome:
    """What one decision did: choice, the model's answer (if on time), the intent and the risk answer."""

    key: str
    decision_seq: int
    at_ns: int
    choice: Choice
    status: str  # "abstain", "no data", "ok", "late", "timeout", "error"
    prediction: Prediction | None = None
    latency_ns: int | None = None
    intent: OrderIntent | None = None
    reason: str = ""
    approved: bool | None = None

    @property
    def on_time(self) -> bool:
        return self.status == "ok"


class Recorder(Protocol):
    """Receives the decision stream in order (see `replay.JsonlRecorder`)."""

    def quote(self, quote: Quote) -> None: ...

    def latency(self, model: str, ns: int, at_ns: int | None = None) -> None: ...

    def params(self, version: int, view: Mapping[str, Any] | None) -> None: ...

    def decision(
        self,
        seq: int,
        key: str,
        at_ns: int,
        budget_ns: int,
        queue_ns: Mapping[str, float],
        params_version: int,
        position: int,
        choice: str | None,
        margin_ns: float | None = None,
    ) -> None: ...

    def done(
        self, seq: int, status: str, latency_ns: int | None, intent_id: str | None, approved: bool | None
    ) -> None: ...


# ---------------------------------------------------------------------------------------------- history


class History:
    """The last `capacity` usable quotes of one instrument as float arrays (mid, imbalance, spread)."""

    __slots__ = ("_buf", "_i", "capacity", "last", "n")

    def __init__(self, capacity: int = HISTORY) -> None:
        self.capacity = capacity
        # Each value is written twice, `capacity` apart, so the newest window is always one contiguous slice.
        self._buf = np.zeros((3, 2 * capacity))
        self._i = 0
        self.n = 0
        self.last: Quote | None = None

    def append(self, q: Quote) -> bool:
        """Append a quote; False (and ignored) when it is one-sided, crossed or already seen."""
        if self.last is not None and q.seq <= self.last.seq and q.recv_ns <= self.last.recv_ns:
            return False
        if q.bid is None or q.ask is None or q.bid >= q.ask or q.flags & QuoteFlag.REJECTED_PRICE:
            return False
        bid, ask = float(q.bid), float(q.ask)
        bs, az = q.bid_size or 0, q.ask_size or 0
        imb = (bs - az) / (bs + az) if bs + az > 0 else 0.0
        i = self._i
        for j in (i, i + self.capacity):
            self._buf[0, j] = (bid + ask) / 2.0
            self._buf[1, j] = imb
            self._buf[2, j] = ask - bid
        self._i = (i + 1) % self.capacity
        self.n += 1
        self.last = q
        return True

    @property
    def mid(self) -> float:
        return float(self._buf[0, (self._i - 1) % self.capacity]) if self.n else math.nan

    def window(self) -> NDArray[np.float64]:
        """A read-only copy of the newest min(n, capacity) rows of (mid, imbalance, spread), oldest first."""
        k = min(self.n, self.capacity)
        end = self._i + self.capacity
        out = self._buf[:, end - k : end].copy()
        out.flags.writeable = False
        return out

    def snapshot(self, key: str, at_ns: int, tick: float) -> Snapshot | None:
        if self.last is None:
            return None
        w = self.window()
        return Snapshot(key, at_ns, self.last, tick, w[0], w[1], w[2])


# ------------------------------------------------------------------------------------------------ core


@dataclass(slots=True)
class _Pending:
    at_ns: int  # recv_ns of the quote the prediction was made on
    mid: float
    model: str
    regime: int
    direction: int
    on_time: bool
    snapshot: Snapshot


class Prepared(NamedTuple):
    """A decision before its choice: snapshot (None without a usable quote) and regime bucket."""

    key: str
    at_ns: int
    snapshot: Snapshot | None
    regime: int
    params: TradingParams


@dataclass(frozen=True, slots=True)
class Begun:
    """A decision after its choice: what `finish` needs."""

    seq: int
    key: str
    at_ns: int
    snapshot: Snapshot | None
    regime: int
    scheduler_snapshot: SchedulerSnapshot | None
    choice: Choice
    params: TradingParams
    position: int


class DecisionCore:
    """The deterministic part of deciding: history, choice state, maturation, signals (no clock, no I/O).

    The live engine and the replay both drive this one class, with the same inputs in the same order.
    """

    def __init__(
        self,
        settings: Settings,
        instruments: Mapping[str, VerifiedInstrument],
        models: Sequence[Model],
        priors: Priors,
        policy: Policy | None = None,
    ) -> None:
        self.settings = settings
        self.instruments = dict(instruments)
        self.models = {m.name: m for m in models}
        self.priors = priors
        defaults = {m.name: float(getattr(m, "expected_accuracy", 0.5)) for m in models}
        self.scheduler = Scheduler(settings.scheduler, self.models, priors, defaults)
        self.metrics = SchedulerMetrics(self.models)
        self.policy: Policy = policy or choose
        self.histories: dict[str, History] = {}
        self.pending: dict[str, list[_Pending]] = {}
        self.last_entry_ns: dict[str, int] = {}
        self.horizon_ns = settings.scheduler.horizon_ms * 1_000_000
        self.seq = 0

    def history(self, key: str) -> History:
        h = self.histories.get(key)
        if h is None:
            h = self.histories[key] = History()
        return h

    def add_quote(self, quote: Quote) -> bool:
        return self.history(quote.key).append(quote)

    def regime(self, key: str, snap: Snapshot, params: TradingParams) -> int:
        lo, hi = params.regime_thresholds.get(key, self.priors.regime_thresholds)
        if snap.n < 2:
            return 1
        lv = logvol(snap.mids, snap.tick)
        return 0 if lv < lo else (1 if lv < hi else 2)

    def mature(self, key: str) -> None:
        """Score this instrument's predictions whose horizon has passed against the current mid.

        Called after each decision on the instrument has ended (the live engine and the replay at the same
        point), so its cost (the accuracy book, online learning) never eats into a decision's deadline.
        Time here is market-data time (the latest quote's `recv_ns`), so scoring depends on quotes alone.
        """
        items = self.pending.get(key)
        hist = self.history(key)
        if not items or hist.last is None:
            return
        now_ns = hist.last.recv_ns
        mid = hist.mid
        keep: list[_Pending] = []
        for p in items:
            if p.at_ns + self.horizon_ns > now_ns:
                keep.append(p)
                continue
            move = mid - p.mid
            if move == 0 or math.isnan(move):
                continue  # a flat outcome says nothing about direction
            outcome = 1 if move > 0 else -1
            correct = p.direction == outcome
            self.metrics.scored(p.model, correct, p.on_time)
            if p.on_time:  # only on-time answers move the book, so late threads cannot make replays diverge
                self.scheduler.record_outcome(p.model, p.regime, correct)
                model = self.models.get(p.model)
                if isinstance(model, OnlineModel):
                    model.learn(p.snapshot, outcome)
        self.pending[key] = keep

    def prepare(self, key: str, at_ns: int, params: TradingParams) -> Prepared:
        """The decision's inputs from market data: the instrument's snapshot and its regime bucket."""
        snap = self.history(key).snapshot(key, at_ns, float(self.instruments[key].min_tick))
        return Prepared(key, at_ns, snap, 1 if snap is None else self.regime(key, snap, params), params)

    def choose(
        self,
        prepared: Prepared,
        budget_ns: int,
        queue_ns: Mapping[str, float],
        position: int,
        seq: int | None = None,
    ) -> Begun:
        """The choice for a prepared decision; `budget_ns` is what is left for the model at this moment."""
        self.seq = self.seq + 1 if seq is None else seq
        key, at_ns, snap, regime, params = prepared
        if snap is None:
            choice = Choice(None, budget_ns, reason="no quote")
            self.metrics.decided(None)
            return Begun(self.seq, key, at_ns, None, 1, None, choice, params, position)
        ssnap = self.scheduler.snapshot(budget_ns, regime, queue_ns)
        choice = self.policy(ssnap)
        if choice.model is not None and choice.model not in self.models:
            choice = Choice(None, budget_ns, reason=f"policy chose unknown model {choice.model!r}")
        self.metrics.decided(choice.model)
        return Begun(self.seq, key, at_ns, snap, regime, ssnap, choice, params, position)

    def begin(
        self,
        key: str,
        at_ns: int,
        budget_ns: int,
        queue_ns: Mapping[str, float],
        params: TradingParams,
        position: int,
        seq: int | None = None,
    ) -> Begun:
        """`prepare` then `choose` with a known budget (replays, tests)."""
        return self.choose(self.prepare(key, at_ns, params), budget_ns, queue_ns, position, seq)

    def finish(self, begun: Begun, prediction: Prediction | None, on_time: bool) -> tuple[OrderIntent | None, str]:
        """Register the prediction for scoring and run the signal generator when it came on time."""
        model = begun.choice.model
        if model is None or prediction is None or begun.snapshot is None:
            return None, "no prediction"
        self.pending.setdefault(begun.key, []).append(
            _Pending(
                begun.snapshot.quote.recv_ns,
                float(begun.snapshot.mids[-1]),
                model,
                begun.regime,
                prediction.direction,
                on_time,
                begun.snapshot,
            )
        )
        if not on_time:
            return None, "late"
        return explain(
            prediction,
            begun.snapshot.quote,
            begun.position,
            begun.params.for_key(begun.key),
            self.instruments[begun.key],
            self.settings.signals,
            decision_seq=begun.seq,
            now_ns=begun.at_ns,
            last_entry_ns=self.last_entry_ns.get(begun.key),
            model=model,
        )

    def end(self, key: str, status: str) -> None:
        """A decision on `key` ended with `status`: adapt the headroom, then mature predictions.

        The live engine calls this once the decision is over, the replay at the decision's end record, so
        neither step eats into a deadline and both see the same sequence. "no data" and "error" say nothing
        about timing and leave the headroom alone; an abstention met its deadline.
        """
        if status in MISSED or status in MET:
            self.scheduler.record_deadline(status in MISSED)
        self.mature(key)

    def entered(self, key: str, at_ns: int) -> None:
        """The risk engine approved an entry made at `at_ns` (starts the cooldown)."""
        self.last_entry_ns[key] = at_ns


# ----------------------------------------------------------------------------------------------- lanes


@dataclass(frozen=True, slots=True)
class RunResult:
    prediction: Prediction | None
    latency_ns: int | None  # None when the answer has not arrived (hard timeout) or the model failed
    status: str  # "ok", "late", "timeout", "error"


class ModelLane:
    """One model's worker: a single thread, so a slow or stuck model delays only itself."""

    def __init__(self, model: Model, clock: Clock) -> None:
        self.model = model
        self.clock = clock
        self.inline = is_inline(model)
        self._executor: ThreadPoolExecutor | None = None
        self.inflight = 0
        self.busy_since_ns: int | None = None
        self.errors = 0

    def queue_wait_ns(self, now_ns: int, bound_ns: float) -> float:
        """Expected wait before a new job starts: the rest of the running job's bound, +inf if it overran it."""
        if self.inline or self.busy_since_ns is None:
            return 0.0
        elapsed = now_ns - self.busy_since_ns
        if elapsed >= bound_ns or bound_ns == INF:  # (an infinite bound would make 0 × inf below a NaN)
            return INF
        return (bound_ns - elapsed) + (self.inflight - 1) * bound_ns

    def _call(self, snapshot: Snapshot) -> tuple[Prediction, int]:
        start = self.clock.monotonic_ns()
        return self.model.predict(snapshot), start

    async def run(
        self,
        snapshot: Snapshot,
        deadline_ns: int,
        on_late: Callable[[Prediction | None, int | None], None] | None = None,
    ) -> RunResult:
        """Run under a hard deadline (monotonic ns of the engine clock); late answers go to `on_late`."""
        if self.inline:
            start = self.clock.monotonic_ns()
            try:
                pred = self.model.predict(snapshot)
            except Exception:
                self.errors += 1
                log.exception("model %s failed", self.model.name)
                return RunResult(None, None, "error")
            end = self.clock.monotonic_ns()
            return RunResult(pred, end - start, "ok" if end <= deadline_ns else "late")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"model-{self.model.name}")
        loop = asyncio.get_running_loop()
        submit_ns = self.clock.monotonic_ns()
        idle = self.inflight == 0
        if idle:
            self.busy_since_ns = submit_ns
        self.inflight += 1
        fut: Future[tuple[Prediction, int]] = self._executor.submit(self._call, snapshot)
        afut = asyncio.wrap_future(fut, loop=loop)
        afut.add_done_callback(self._job_done)
        timeout_s = max(0.0, (deadline_ns - submit_ns) / 1e9)
        try:
            pred, start = await asyncio.wait_for(asyncio.shield(afut), timeout_s)
        except TimeoutError:
            if on_late is not None:
                afut.add_done_callback(lambda f: self._late(f, submit_ns, idle, on_late))
            return RunResult(None, None, "timeout")
        except Exception:
            self.errors += 1
            log.exception("model %s failed", self.model.name)
            return RunResult(None, None, "error")
        end = self.clock.monotonic_ns()
        latency = end - (submit_ns if idle else start)
        return RunResult(pred, latency, "ok" if end <= deadline_ns else "late")

    def _job_done(self, _f: asyncio.Future[tuple[Prediction, int]]) -> None:
        self.inflight -= 1
        self.busy_since_ns = self.clock.monotonic_ns() if self.inflight else None

    def _late(
        self,
        f: asyncio.Future[tuple[Prediction, int]],
        submit_ns: int,
        idle: bool,
        on_late: Callable[[Prediction | None, int | None], None],
    ) -> None:
        if f.cancelled() or f.exception() is not None:
            on_late(None, None)
            return
        pred, start = f.result()
        on_late(pred, self.clock.monotonic_ns() - (submit_ns if idle else start))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# ---------------------------------------------------------------------------------------------- engine


class DecisionEngine(Component):
    """The decision loop component (see the module docstring for wiring and guarantees).

    Optional keyword arguments are for tests, replays and the benchmark: a ready model pool (else built from
    `scheduler.models` and the entry points at start), priors (else the shipped evaluation), a `Recorder`,
    a different choice `policy`, and `calibrate=False` to drive calibration by hand.
    """

    name = "decision"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        bus: EventBus,
        hot_state: HotState,
        instruments: Mapping[str, VerifiedInstrument],
        submit: Callable[[OrderIntent], RiskDecision],
        position_qty: Callable[[str], int],
        *,
        models: Sequence[Model] | None = None,
        priors: Priors | None = None,
        recorder: Recorder | None = None,
        policy: Policy | None = None,
        calibrate: bool = True,
        publish_every_ms: float = 250.0,
    ) -> None:
        super().__init__(clock)
        self.settings = settings
        self.bus = bus
        self.hot_state = hot_state
        self.instruments = dict(instruments)
        self._submit = submit
        self._position_qty = position_qty
        self._given_models = list(models) if models is not None else None
        self._priors = priors
        self.recorder = recorder
        self._policy = policy
        self._calibrate = calibrate
        self._publish_ns = int(publish_every_ms * 1e6)
        self._last_publish_ns = -(1 << 62)
        self.model_errors: list[str] = []
        self.core: DecisionCore | None = None
        self.lanes: dict[str, ModelLane] = {}
        self._params = DEFAULT_PARAMS
        self._params_seen = -1
        self._deciding = False
        self._in_round = False  # a round is running (it may be yielding between two decisions)
        self._last_probe_ns: dict[str, int] = {}
        self._next_decision_s: float | None = None  # loop time of the next round (set by the decision loop)
        self._synthetic: Snapshot | None = None
        self.outcomes_dropped = 0
        s = settings.scheduler
        self._deadline_ns = int(s.deadline_ms * 1e6)
        self._budget_ns = int((s.deadline_ms - s.reserve_ms) * 1e6)
        if models is not None:
            self._build(list(models))

    # ------------------------------------------------------------------ lifecycle

    def set_instruments(self, instruments: Mapping[str, VerifiedInstrument]) -> None:
        """The verified instruments, known only after startup verification; call before `start()`."""
        self.instruments = dict(instruments)
        if self.core is not None:  # built early from given models: rebuild it over the new instruments
            self._build(list(self.core.models.values()))

    def _build(self, models: list[Model]) -> None:
        priors = self._priors if self._priors is not None else load_priors()
        self.core = DecisionCore(self.settings, self.instruments, models, priors, self._policy)
        self.lanes = {m.name: ModelLane(m, self.clock) for m in models}

    async def on_start(self) -> None:
        if self.core is None:
            models, errors = await asyncio.to_thread(load_models, self.settings.scheduler.models)
            self.model_errors = errors
            self._build(models)
        assert self.core is not None
        prepared = [m for m in self.core.models.values() if isinstance(m, PreparedModel)]
        for m in prepared:  # heavy setup in a thread: the loop keeps serving ticks meanwhile
            try:
                await asyncio.to_thread(m.prepare)
            except Exception as exc:
                self.model_errors.append(f"model {m.name!r} failed to prepare: {type(exc).__name__}: {exc}")
                log.exception("model %s failed to prepare", m.name)
        self.bus.subscribe(QuoteUpdated, self._on_quote_event)
        if self._calibrate:
            self.spawn(self._calibration_loop(), "calibrate")
        self.spawn(self._decision_loop(), "decide")
        if self.model_errors:
            self.set_state(ComponentState.DEGRADED, "; ".join(self.model_errors))

    async def on_stop(self) -> None:
        self.bus.unsubscribe(QuoteUpdated, self._on_quote_event)
        self.publish(force=True)
        for lane in self.lanes.values():
            lane.close()

    # ------------------------------------------------------------------ inputs

    def _on_quote_event(self, event: QuoteUpdated) -> None:
        self.on_quote(event.quote)

    def on_quote(self, quote: Quote) -> None:
        """Add a quote to the instrument's history (bus handler; also callable directly)."""
        if self.core is not None and quote.key in self.instruments and self.core.add_quote(quote):
            if self.recorder is not None:
                self.recorder.quote(quote)

    def _observe(self, model: str, ns: int) -> None:
        assert self.core is not None
        at_ns = self.clock.monotonic_ns()
        self.core.scheduler.observe_latency(model, ns, at_ns)
        if self.recorder is not None:
            self.recorder.latency(model, ns, at_ns)

    def current_params(self) -> TradingParams:
        """The last published parameters (never waits; defaults when nothing or garbage was published)."""
        view = self.hot_state.get("params")
        version = view.get("version", 0) if isinstance(view, Mapping) else 0
        if version != self._params_seen:
            self._params_seen = version if isinstance(version, int) else -1
            self._params = TradingParams.from_view(view if isinstance(view, Mapping) else None)
            if self.recorder is not None:
                self.recorder.params(self._params.version, view if isinstance(view, Mapping) else None)
        return self._params

    # ------------------------------------------------------------------ deciding

    def tradable(self) -> list[str]:
        return sorted(k for k, inst in self.instruments.items() if inst.tradable)

    async def run_round(self) -> list[DecisionOutcome]:
        """One decision for every tradable instrument, one after another (each within its deadline).

        Between two decisions, once `ROUND_SLICE_NS` has gone by since the round last gave the loop back, it
        yields (`sleep(0)`): what waits behind the round (an urgent command such as the kill switch, order
        events, ticks) runs then. Each decision takes its own start time and its latest quote, so yielding
        between them changes no decision's budget; the quotes taken in between are recorded in the order they
        were applied, as everywhere else, so a replay sees the same inputs. The calibrator leaves a round
        alone (`_in_round`), as it did when a round never yielded.
        """
        out: list[DecisionOutcome] = []
        clock = self.clock
        self._in_round = True
        try:
            slice_end = clock.monotonic_ns() + ROUND_SLICE_NS
            for i, key in enumerate(self.tradable()):
                if i and clock.monotonic_ns() >= slice_end:
                    await asyncio.sleep(0)
                    slice_end = clock.monotonic_ns() + ROUND_SLICE_NS
                out.append(await self.decide(key))
        finally:
            self._in_round = False
        self.publish()
        return out

    async def decide(self, key: str) -> DecisionOutcome:
        """One decision for `key` (see the module docstring)."""
        core = self.core
        assert core is not None
        t0 = self.clock.monotonic_ns()
        self._deciding = True
        try:
            latest = self.hot_state.quote(key)
            if latest is not None:
                self.on_quote(latest)
            params = self.current_params()
            position = self._position_qty(key)
            prepared = core.prepare(key, t0, params)
            # The budget is what is left at the moment of the choice (time spent so far, including any
            # preemption of this process, is already gone) less the typical dispatch delay still to come
            # (measured), so a model that would no longer fit when it starts is not chosen.
            now = self.clock.monotonic_ns()
            queue = {
                n: lane.queue_wait_ns(now, core.scheduler.bound_ns(n))
                for n, lane in self.lanes.items()
                if not lane.inline and lane.inflight
            }
            budget = self._budget_ns - (now - t0) - core.metrics.dispatch_allowance_ns()
            begun = core.choose(prepared, budget, queue, position)
            choice = begun.choice
            if self.recorder is not None:
                margin = begun.scheduler_snapshot.margin_ns if begun.scheduler_snapshot is not None else None
                self.recorder.decision(
                    begun.seq, key, t0, budget, queue, params.version, position, choice.model, margin
                )
            start = self.clock.monotonic_ns()  # the point of dispatch
            if begun.snapshot is not None:  # abstentions too, so the estimate never stops following the load
                core.metrics.dispatch.add(start - now)
            if choice.model is None or begun.snapshot is None:
                status = "no data" if begun.snapshot is None else "abstain"
                return self._done(begun, DecisionOutcome(key, begun.seq, t0, choice, status, reason=choice.reason))
            lane = self.lanes[choice.model]
            deadline = t0 + self._budget_ns
            # The same test once more at dispatch: if this process lost the CPU since the choice, so that the
            # model's bound no longer fits what is left, abstain now rather than start a run bound to be late.
            # (Baseline policies that ignore feasibility give no bound, and their choice always runs.)
            ssnap = begun.scheduler_snapshot
            margin = ssnap.margin_ns if ssnap is not None else 0.0
            wait = queue.get(choice.model, 0.0)
            bound = choice.bound_ns
            if bound != INF and not fits(bound, wait, deadline - margin - start):
                core.metrics.withdrawn(choice.model)
                outcome = DecisionOutcome(key, begun.seq, t0, choice, "abstain", reason=DISPATCH_ABSTAIN)
                return self._done(begun, outcome)
            result = await lane.run(begun.snapshot, deadline, lambda p, ns: self._late_answer(begun, p, ns))
            if result.latency_ns is not None:
                self._observe(choice.model, result.latency_ns)
            if result.status == "error":
                core.metrics.ran(choice.model, False)
                return self._done(begun, DecisionOutcome(key, begun.seq, t0, choice, "error", reason="model failed"))
            if result.status == "timeout":
                core.metrics.timed_out(choice.model)
                return self._done(begun, DecisionOutcome(key, begun.seq, t0, choice, "timeout", reason="late"))
            on_time = result.status == "ok"
            core.metrics.ran(choice.model, on_time)
            intent, reason = core.finish(begun, result.prediction, on_time)
            approved: bool | None = None
            if intent is not None:
                approved = self._send(intent)
                if approved:
                    core.entered(key, t0)
                self.bus.publish(
                    DecisionMade(
                        key,
                        begun.seq,
                        choice.model,
                        intent.intent_id,
                        choice.bound_ns / 1e3,
                        budget / 1e3,
                        (result.latency_ns or 0) / 1e3,
                        approved,
                    )
                )
            outcome = DecisionOutcome(
                key,
                begun.seq,
                t0,
                choice,
                result.status,
                result.prediction,
                result.latency_ns,
                intent,
                reason,
                approved,
            )
            return self._done(begun, outcome)
        finally:
            self._deciding = False

    def _send(self, intent: OrderIntent) -> bool:
        try:
            return self._submit(intent).approved
        except Exception:
            log.exception("submitting intent %s failed; treated as denied", intent.intent_id)
            return False

    def _done(self, begun: Begun, outcome: DecisionOutcome) -> DecisionOutcome:
        assert self.core is not None
        if self.recorder is not None:
            self.recorder.done(
                outcome.decision_seq,
                outcome.status,
                outcome.latency_ns,
                outcome.intent.intent_id if outcome.intent else None,
                outcome.approved,
            )
        quote = begun.snapshot.quote if begun.snapshot is not None else None
        if quote is not None:
            t2d = self.clock.monotonic_ns() - quote.recv_ns
            if t2d >= 0:
                self.core.metrics.tick_to_decision.add(t2d)
        # Adapting the headroom and scoring matured predictions (with online learning) is bookkeeping, not
        # part of deciding: it runs once the decision is over, off its deadline (the replay does the same).
        self.core.end(outcome.key, outcome.status)
        return outcome

    def _late_answer(self, begun: Begun, prediction: Prediction | None, latency_ns: int | None) -> None:
        """A timed-out run finished: its latency is a real sample; its answer only counts for raw accuracy."""
        if self.core is None or begun.choice.model is None or latency_ns is None:
            return
        self._observe(begun.choice.model, latency_ns)
        if prediction is not None and begun.snapshot is not None:
            self.core.finish(begun, prediction, on_time=False)

    # ------------------------------------------------------------------ background

    async def _decision_loop(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.scheduler.decision_interval_ms / 1000.0
        next_t = loop.time()
        while True:
            await self.run_round()
            next_t += interval
            delay = next_t - loop.time()
            if delay < 0:  # overran: skip ahead instead of bursting to catch up
                next_t = loop.time()
                delay = 0.0
            self._next_decision_s = next_t
            await asyncio.sleep(delay)

    def _probe_snapshot(self) -> Snapshot:
        assert self.core is not None
        for key in self.tradable():
            h = self.core.history(key)
            if h.n >= 64:
                snap = h.snapshot(key, self.clock.monotonic_ns(), float(self.instruments[key].min_tick))
                if snap is not None:
                    return snap
        if self._synthetic is None:  # before the market has data: a fixed simulated snapshot
            self._synthetic = snapshot_at(simulate(7, 300), 299)
        return self._synthetic

    async def calibrate_once(self) -> int:
        """Measure each model that is still warming up or is due a refresh, off the hot path; returns how many."""
        core = self.core
        assert core is not None
        # The fast phase goes past the first finite bound to half a window, so that one unlucky sample
        # (a preemption) is not the bound itself.
        sched = core.scheduler
        warm = max(sched.warm_samples, self.settings.scheduler.window // 2)
        refresh_ns = self.settings.scheduler.calibration_interval_ms * 1_000_000
        probe_ns = int(self.settings.scheduler.probe_interval_ms * 1_000_000)
        budget = self._budget_ns - core.metrics.dispatch_allowance_ns()
        probed = 0
        for name in sorted(self.lanes):
            lane = self.lanes[name]
            now = self.clock.monotonic_ns()
            window = sched.latency[name]
            since = now - self._last_probe_ns.get(name, -(1 << 62))
            # (Warm-up counts samples ever taken: an aged window holds fewer, and needs no second warm-up.)
            due = window.total < warm or since >= refresh_ns
            if not due and not sched.fits(name, budget):
                # Infeasible now: probe it often (its results only feed the window, never a decision), so a
                # window pushed over the budget by a burst of preemptions recovers once they age out, but
                # never more than PROBE_DUTY of the time for a slow model.
                due = since >= max(probe_ns, window.quantile(0.5) / PROBE_DUTY)
            if not due or self._deciding or self._in_round or lane.inflight:
                continue
            if not lane.inline and self._next_decision_s is not None:
                # A probe in a worker thread still running when a decision starts would compete for the GIL
                # with the decision's inline model: leave it for after that decision.
                left_s = self._next_decision_s - asyncio.get_running_loop().time()
                if left_s * 1e9 < 2.0 * window.quantile(0.99):
                    continue
            self._last_probe_ns[name] = now
            snap = self._probe_snapshot()
            if lane.inline:
                await asyncio.sleep(0)  # yield between inline probes so ticks are never held up
            result = await lane.run(snap, now + 10 * 1_000_000_000, partial(self._probe_late, name))
            if result.latency_ns is not None:
                self._observe(name, result.latency_ns)
                probed += 1
        return probed

    def _probe_late(self, name: str, _prediction: Prediction | None, ns: int | None) -> None:
        if ns is not None:
            self._observe(name, ns)

    async def _calibration_loop(self) -> None:
        while True:
            try:
                probed = await self.calibrate_once()
            except Exception:
                log.exception("model calibration failed; retrying")
                probed = 0
            await asyncio.sleep(0.002 if probed else 0.05)

    def publish(self, force: bool = False) -> None:
        """Publish the scheduler metrics to the hot state, at most every `publish_every_ms` unless forced."""
        if self.core is None:
            return
        now = self.clock.monotonic_ns()
        if not force and now - self._last_publish_ns < self._publish_ns:
            return
        self._last_publish_ns = now
        view = self.core.metrics.view(self.core.scheduler, self.settings.scheduler.deadline_ms, self._params.version)
        self.hot_state.set("scheduler", view)


def seeded_random_policy(names: Sequence[str], seed: int) -> Policy:
    """A baseline: a uniformly random model per decision, deterministic under the seed."""
    rng = random.Random(seed)
    ordered = sorted(names)

    def policy(snap: SchedulerSnapshot) -> Choice:
        return Choice(rng.choice(ordered), snap.budget_ns, reason="random")

    return policy


def fixed_policy(name: str) -> Policy:
    """A baseline: always the same model, whether or not it fits."""

    def policy(snap: SchedulerSnapshot) -> Choice:
        return Choice(name, snap.budget_ns, reason="fixed")

    return policy


def min_history_of(models: Sequence[Model]) -> int:
    return max((min_history(m) for m in models), default=1)
