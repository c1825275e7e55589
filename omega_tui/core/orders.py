"""The order manager: order state machine, bracket entries, submission queue, fills, positions, P&L, recovery.

What callers must know:

- `submit(intent)` is called only after the risk engine approved the intent; it checks structure only and
  raises `OrderRefused` (one sentence naming what is wrong) for a market order when they are not allowed,
  an unknown or untradable instrument, a missing or mis-sided price, or a reduce-only intent that would not
  reduce. It returns the order ids placed now; the rest (throttled groups, later slices) are placed by
  `pump()`, which the component's own task runs once started.
- An entry becomes a bracket: parent LMT with IB's Adaptive algo, take-profit LMT and stop-loss STP as OCA
  children (`oca_type=2`, see "Protection" below), transmit chain parent=False, TP=False, SL=True, so IB
  holds the chain until the last leg arrives and nothing goes live half-built. An entry larger than
  `execution.max_child_qty` is sliced: slice k is placed `k * slice_interval_ms` after the first, and **each
  slice is its own bracket** sized to the slice. We chose that over one shared protective pair because the
  protection then always matches what was actually filled, with no resizing of a live stop as slices fill or
  get cancelled; the price is three orders per slice (they count against `risk.max_open_orders`). A reduce-
  only intent is one marketable LMT (no bracket, never sliced) and is clamped to the position it reduces.
- Every order carries `orderRef = "{intent_id}:{role}"` (`"{intent_id}:{role}:{k}"` for slice k).
- State changes go through `TRANSITIONS`, an explicit table. A transition it marks `STALE` is a declared
  race (a status older than what we know, a late fill after a cancel) and changes nothing; one it does not
  list is an anomaly: logged, journaled, recorded on the order, and the order is reconciled with the broker.
  Fills are identified by execId and counted once whatever the state; the position comes from counted
  fills only, and an order's filled quantity is the larger of its counted fills and the broker's
  cumulative figure, so nothing is double counted.
- Protection: a take-profit and its stop-loss form one OCA group with IB's `ocaType=2` (reduce the others
  proportionately, with overfill block), not 1 (cancel the others): a partial take-profit fill must shrink the
  stop to what is left of the position, not cancel it and leave the rest unprotected. A full fill reduces the
  other leg to zero, which IB cancels. The order manager mirrors the reduction when it counts the fill
  (`_oca_reduce`, journaled as "oca_reduce"), so fitting protection to the position after a fill sees the
  stop as the broker holds it and sends nothing for it.
- Execution corrections: IB corrects an execution by re-sending its execId with a higher last suffix
  (`0000e0d5.65a1b2c3.01.01` → `….01.02`). The correction replaces the earlier execution (quantity, price),
  it is not another fill: the order's fills are updated, the position and P&L recomputed from the day's fills
  with the corrected one (average cost is path-dependent), the journal keeps the new version (replayed alike
  after a restart) and a "fill_correction" audit record, and `FillCorrected` goes on the bus. A commission
  for the corrected execution replaces the earlier one's. An older version arriving late is ignored.
- Journal: a bracket's "submit" record is queued for the journal's writer in the same step of the loop as
  its legs' sends, right after the transmitting leg (no file I/O on the loop, see core/journal.py; the writer
  runs after the step either way); any broker event about an order whose "submit" record is not yet
  recorded and fsynced is held (`_hold`) and processed, in arrival order, when the writer reports it durable.
- Hot-state sections `orders`, `positions`, `pnl`, `latency` are published coalesced (once per loop turn
  after order changes, at most every `execution.pnl_publish_ms` while quotes move). Without a running loop
  (unit tests, benchmarks) call `publish()` yourself.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import heapq
import itertools
import logging
import math
import operator
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from types import MappingProxyType
from typing import Any, Protocol

from omega_tui.config import Settings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import Clock
from omega_tui.core.component import Component
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.ports import GroupSender, OrderPort
from omega_tui.core.positions import ZERO, Position, differs
from omega_tui.core.throttle import Backoff, TokenBucket
from omega_tui.core.types import (
    LEG_FIELDS,
    BrokerError,
    BrokerOrder,
    CommissionReport,
    ExecutionReport,
    FillCorrected,
    FillReceived,
    IntentSource,
    OpenOrderReport,
    OrderIntent,
    OrderState,
    OrderStateChanged,
    OrderStatusReport,
    OrderType,
    QuoteUpdated,
    Side,
    VerifiedInstrument,
    leg_values,
    new_broker_order_from,
)
from omega_tui.core.views import EventLine, LatencyView, OrderView, PnLView, PositionView, TransitionView

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------ state machine

NEW = OrderState.NEW
PENDING_SUBMIT = OrderState.PENDING_SUBMIT
SUBMITTED = OrderState.SUBMITTED
PARTIALLY_FILLED = OrderState.PARTIALLY_FILLED
FILLED = OrderState.FILLED
PENDING_CANCEL = OrderState.PENDING_CANCEL
CANCELLED = OrderState.CANCELLED
REJECTED = OrderState.REJECTED
INACTIVE = OrderState.INACTIVE


class Rule(enum.Enum):
    APPLY = "apply"
    STALE = "stale"  # a declared race: the report is older than what we know; keep the state


_A, _S = Rule.APPLY, Rule.STALE

# Every declared (from, to). Anything absent is an anomaly. Same-state reports are duplicates (no-ops).
TRANSITIONS: Mapping[tuple[OrderState, OrderState], Rule] = MappingProxyType(
    {
        (NEW, PENDING_SUBMIT): _A,
        (NEW, REJECTED): _A,
        (PENDING_SUBMIT, SUBMITTED): _A,
        (PENDING_SUBMIT, PARTIALLY_FILLED): _A,  # execDetails before any status (fast fills)
        (PENDING_SUBMIT, FILLED): _A,
        (PENDING_SUBMIT, PENDING_CANCEL): _A,
        (PENDING_SUBMIT, CANCELLED): _A,
        (PENDING_SUBMIT, REJECTED): _A,
        (PENDING_SUBMIT, INACTIVE): _A,
        (SUBMITTED, PENDING_SUBMIT): _S,  # a late PendingSubmit
        (SUBMITTED, PARTIALLY_FILLED): _A,
        (SUBMITTED, FILLED): _A,
        (SUBMITTED, PENDING_CANCEL): _A,
        (SUBMITTED, CANCELLED): _A,
        (SUBMITTED, REJECTED): _A,  # refused after acceptance (exchange reject)
        (SUBMITTED, INACTIVE): _A,
        (PARTIALLY_FILLED, PENDING_SUBMIT): _S,
        (PARTIALLY_FILLED, SUBMITTED): _S,  # a status from before the fill we already counted
        (PARTIALLY_FILLED, FILLED): _A,
        (PARTIALLY_FILLED, PENDING_CANCEL): _A,
        (PARTIALLY_FILLED, CANCELLED): _A,  # the remainder was cancelled
        (PARTIALLY_FILLED, INACTIVE): _A,
        (PENDING_CANCEL, PENDING_SUBMIT): _S,
        (PENDING_CANCEL, SUBMITTED): _S,  # a status sent before the broker saw our cancel
        (PENDING_CANCEL, PARTIALLY_FILLED): _S,  # a fill while the cancel is in flight: counted, still cancelling
        (PENDING_CANCEL, FILLED): _A,  # the fill won the race against the cancel
        (PENDING_CANCEL, CANCELLED): _A,
        (PENDING_CANCEL, INACTIVE): _A,
        (FILLED, PENDING_SUBMIT): _S,
        (FILLED, SUBMITTED): _S,  # a status from before the last fill
        (FILLED, PARTIALLY_FILLED): _S,  # executions arriving after the Filled status
        (FILLED, PENDING_CANCEL): _S,  # a cancel request that lost the race
        (FILLED, CANCELLED): _S,  # the cancel's 202 for an order that had already filled
        (CANCELLED, PENDING_SUBMIT): _S,
        (CANCELLED, SUBMITTED): _S,  # a status from before the cancel
        (CANCELLED, PARTIALLY_FILLED): _S,  # a late fill after the cancel: counted, still cancelled
        (CANCELLED, PENDING_CANCEL): _S,
        (CANCELLED, FILLED): _A,  # late fills that complete the order: the cancel lost the race
        (CANCELLED, REJECTED): _S,  # IB reports some rejects as Cancelled then 201
        (REJECTED, PENDING_SUBMIT): _S,
        (REJECTED, CANCELLED): _S,  # ib_async-style Cancelled status after the 201
        (INACTIVE, PENDING_SUBMIT): _S,
        (INACTIVE, CANCELLED): _A,
        (INACTIVE, FILLED): _A,
    }
)

# IB's raw order status → Omega's state (PreSubmitted is a held or simulated order: working, so SUBMITTED).
IB_STATUS: Mapping[str, OrderState] = MappingProxyType(
    {
        "ApiPending": PENDING_SUBMIT,
        "PendingSubmit": PENDING_SUBMIT,
        "PreSubmitted": SUBMITTED,
        "Submitted": SUBMITTED,
        "ApiUpdate": SUBMITTED,
        "PendingCancel": PENDING_CANCEL,
        "ApiCancelled": CANCELLED,
        "Cancelled": CANCELLED,
        "Filled": FILLED,
        "Inactive": INACTIVE,
    }
)

# ib_async's warning codes (wire spec §1.7): informational, the order stays alive.
WARNING_CODES = frozenset({105, 110, 165, 321, 329, 399, 404, 434, 492, 10167})
PACING_CODES = frozenset({100})
ENTRY_ROLES = frozenset({"entry", "slice"})
PROTECTIVE_ROLES = frozenset({"take_profit", "stop_loss"})
OWN_ROLES = ENTRY_ROLES | PROTECTIVE_ROLES | {"reduce", "flatten"}  # what `_adopt` recognises in an orderRef
PROTECT_PREFIX = "protect-"
# IB's ocaType 2: "remaining orders are proportionately reduced in size with block" (3 is the same without the
# block; 1 cancels them all). A partial fill of one protective leg shrinks the other by as much, so the stop
# keeps covering what is left of the position; "block" is IB's overfill protection (one leg of the group is
# routed at a time), which an exit pair wants: an overfill would open a position the other way.
PROTECTIVE_OCA_TYPE = 2
OCA_REDUCE_TYPES = frozenset({2, 3})  # intent ids of protection pairs (`protect_positions`)
TERMINAL_KEPT = 200  # terminal orders kept in the `orders` section for display
LATENCY_WINDOW = 2048
_ONE = Decimal(1)
_OPENING_TYPES = frozenset({OrderType.LMT, OrderType.MKT})  # an adopted parentless order of these may open
_LIMIT_TYPES = frozenset({OrderType.LMT, OrderType.STP_LMT})
_AUX_TYPES = frozenset({OrderType.STP, OrderType.STP_LMT, OrderType.TRAIL})
_OPPOSITE = {Side.BUY: Side.SELL, Side.SELL: Side.BUY}
# Members as module constants: on Python 3.11 `OrderType.LMT` is a class attribute lookup through EnumType
# (~1k instructions each), and the submission path reads several.
_BUY, _SELL = Side.BUY, Side.SELL
_LMT, _MKT, _STP = OrderType.LMT, OrderType.MKT, OrderType.STP
_UNRECORDED = 1 << 62  # `ManagedOrder.journal_seq` between the send and the "submit" record (`_place_group`)


class OrderRefused(ValueError):
    """An intent the order manager cannot turn into orders; the message names what and what is allowed."""


class BrokerSnapshotSource(Protocol):
    """What recovery asks the broker for (the broker adapter implements it; the runtime wires it)."""

    async def open_orders(self) -> list[OpenOrderReport]:
        """Every open order the broker knows (all clients when it can), with its current status."""
        ...

    async def executions(self) -> list[ExecutionReport]:
        """The day's executions."""
        ...


EventLogSink = Callable[[str, str, str], None]  # (level, kind, text), e.g. Runtime.log_event


# ------------------------------------------------------------------------------------ order records


@dataclass(slots=True)
class ManagedOrder:
    """One order as Omega tracks it. Mutated only by the OrderManager; read it, never write it."""

    order: BrokerOrder
    role: str
    intent_id: str
    state: OrderState = NEW
    ib_status: str = ""
    perm_id: int = 0
    fills: dict[str, ExecutionReport] = field(default_factory=dict)
    fill_qty: int = 0
    fill_notional: Decimal = ZERO
    broker_filled: int = 0
    broker_avg: Decimal | None = None
    # (state, ib_status, at_ns, at_utc): formatted into TransitionViews only when a view is built.
    transitions: list[tuple[OrderState, str, int, datetime]] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    submit_ns: int = 0
    journal_seq: int = 0  # the journal record that submitted it (durable before its first ack is processed)
    ack_ns: int = 0
    first_fill_ns: int = 0
    last_ns: int = 0
    cancel_requested: bool = False
    needs_reconcile: bool = False
    modified_ns: int = 0  # when Omega last sent a modification (reconciliation leaves younger ones alone)
    view: OrderView | None = None  # cached, rebuilt when the order changes

    @property
    def order_id(self) -> int:
        return self.order.order_id

    @property
    def key(self) -> str:
        return self.order.key

    @property
    def filled(self) -> int:
        return max(self.fill_qty, self.broker_filled)

    @property
    def remaining(self) -> int:
        return max(self.order.quantity - self.filled, 0)

    @property
    def avg_fill_price(self) -> Decimal | None:
        if self.fill_qty:
            return self.fill_notional / self.fill_qty
        return self.broker_avg

    @property
    def opens_exposure(self) -> bool:
        """Entries and slices; an adopted parentless LMT/MKT counts too (we cannot know it reduces)."""
        if self.role in ENTRY_ROLES:
            return True
        return self.role == "adopted" and self.order.parent_id == 0 and self.order.order_type in _OPENING_TYPES


@dataclass(slots=True)
class _Leg:
    role: str
    # The BrokerOrder's values but the ids, in `types.LEG_FIELDS` order (`new_broker_order_from` builds the
    # order from them at placement): the ids are taken then, so they rise in placement order as IB requires.
    values: tuple[Any, ...]
    parent: int | None = None  # index of the parent leg in the group

    @property
    def key(self) -> str:
        return self.values[_LEG_KEY]  # type: ignore[no-any-return]

    @property
    def action(self) -> Side:
        return self.values[_LEG_ACTION]  # type: ignore[no-any-return]

    @property
    def quantity(self) -> int:
        return int(self.values[_LEG_QUANTITY])

    def with_quantity(self, quantity: int) -> None:
        values = self.values
        self.values = (*values[:_LEG_QUANTITY], quantity, *values[_LEG_QUANTITY + 1 :])

    @property
    def signed_qty(self) -> int:
        return self.action.sign * self.quantity


_LEG_KEY, _LEG_ACTION, _LEG_QUANTITY = (LEG_FIELDS.index(name) for name in ("key", "action", "quantity"))


@dataclass(order=True, slots=True)
class _Group:
    """Orders that must reach the broker back-to-back (a bracket), queued until due and the rate allows."""

    due_ns: int
    seq: int
    intent_id: str = field(compare=False)
    legs: list[_Leg] = field(compare=False)
    # Journaled with the group's submission (or on its own if the group has to wait): the intent as a record,
    # or the intent itself, made into one (with `groups`, how many groups it became) after the send.
    intent_record: dict[str, Any] | OrderIntent | None = field(default=None, compare=False)
    groups: int = field(default=1, compare=False)

    @property
    def entry_signed_qty(self) -> int:
        return sum(leg.signed_qty for leg in self.legs if leg.role in ENTRY_ROLES)


class _Latency:
    """A bounded window of samples in microseconds, with nearest-rank percentiles."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.count = 0

    def add(self, delta_ns: int) -> None:
        if delta_ns >= 0:
            self.samples.append(delta_ns / 1000.0)
            self.count += 1

    def percentile(self, q: float) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# ------------------------------------------------------------------------------------ the manager


class _OrderBook(dict[int, ManagedOrder]):
    """Every known order by id, plus an index of the working ones.

    The risk engine asks for open-order counts and working exposure on every pre-trade check, so those
    must not scan the whole day's orders; any insertion indexes the order, and `OrderManager._apply`
    moves it out of the index when it reaches a terminal state.
    """

    def __init__(self) -> None:
        super().__init__()
        self.working: dict[int, ManagedOrder] = {}
        # Protective orders (stop-loss, take-profit) by instrument, kept while any leg of their OCA group is
        # working: fitting protection to the position after each fill looks only at these. Bracket children
        # wait in `held` (by parent id) while their parent works (the broker holds them until it fills, so
        # they cover nothing yet) and join `protective` when it ends: a fill then looks at armed protection
        # only, not at every resting bracket.
        self.protective: dict[str, dict[int, ManagedOrder]] = {}
        self.held: dict[int, list[ManagedOrder]] = {}
        # Terminal orders in the order they (last) became terminal, i.e. by `last_ns` (the published views
        # take the most recent `TERMINAL_KEPT` from its end); `rank` is each order's place in this dict, the
        # views' tie-break. `finished_unordered`: an order was inserted already terminal (its `last_ns` may be
        # out of order), the views then scan everything.
        self.finished: dict[int, ManagedOrder] = {}
        self.rank: dict[int, int] = {}
        self.finished_unordered = False

    def __setitem__(self, order_id: int, order: ManagedOrder) -> None:
        if order_id not in self.rank:
            self.rank[order_id] = len(self.rank)
        super().__setitem__(order_id, order)
        if order.state.is_working:
            self.working[order_id] = order
            self.finished.pop(order_id, None)
        else:
            self.working.pop(order_id, None)
            self.finished.pop(order_id, None)
            self.finished[order_id] = order
            self.finished_unordered = True
        if order.role in PROTECTIVE_ROLES:
            parent_id = order.order.parent_id
            parent = self.get(parent_id) if parent_id else None
            if parent is not None and parent.state.is_working:
                self.held.setdefault(parent_id, []).append(order)
            else:
                self.protective.setdefault(order.key, {})[order_id] = order

    def state_changed(self, order: ManagedOrder) -> None:
        if order.order_id not in self:
            return
        if order.state.is_working:
            self.working[order.order_id] = order
            self.finished.pop(order.order_id, None)
            return
        self.working.pop(order.order_id, None)
        self.finished.pop(order.order_id, None)
        self.finished[order.order_id] = order  # `_apply` sets its `last_ns` to now: the newest
        children = self.held.pop(order.order_id, None)
        if children and any(c.state.is_working for c in children):
            legs = self.protective.setdefault(children[0].key, {})
            for child in children:
                legs[child.order_id] = child
        if order.role in PROTECTIVE_ROLES:
            group = order.order.oca_group
            legs = self.protective.get(order.key, {})
            siblings = [o for o in legs.values() if group and o.order.oca_group == group] or [order]
            if not any(o.state.is_working for o in siblings):
                for o in siblings:
                    legs.pop(o.order_id, None)


_gc_isenabled, _gc_disable, _gc_enable = gc.isenabled, gc.disable, gc.enable

# The attributes that vary between full brackets of one shape (`OrderManager._bracket_shape`), per leg (entry,
# take-profit, stop-loss), in `LEG_FIELDS` order, as `OrderManager._bracket_values` gives them; the rest is the
# shape's.
_BRACKET_VARIABLE = (
    ("quantity", "limit_price", "order_ref"),
    ("quantity", "limit_price", "oca_group", "order_ref"),
    ("quantity", "aux_price", "oca_group", "order_ref"),
)
# Per leg: its variable fields / its other `LEG_FIELDS`, as tuples.
_BRACKET_VALUES = tuple(operator.attrgetter(*names) for names in _BRACKET_VARIABLE)
_BRACKET_CONSTANTS = tuple(
    operator.attrgetter(*(name for name in LEG_FIELDS if name not in names)) for names in _BRACKET_VARIABLE
)


class OrderManager(Component):
    """Owns every order Omega knows, its state machine, the submission queue, positions and P&L."""

    name = "orders"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        bus: EventBus,
        hot_state: HotState,
        journal: Journal,
        broker: OrderPort,
    ) -> None:
        super().__init__(clock)
        self.settings = settings
        self.execution = settings.execution
        self.bus = bus
        self.hot_state = hot_state
        self.journal = journal
        self.broker = broker
        self.instruments: dict[str, VerifiedInstrument] = {}
        self._orders = _OrderBook()
        self._exec_to_order: dict[str, int] = {}
        self._pending_commissions: dict[str, CommissionReport] = {}
        self._opened_share: dict[str, Decimal] = {}  # exec_id → share of the fill that opened (until its commission)
        self._protect_seq = itertools.count(1)
        self._protect_waiting: dict[str, str] = {}  # key → reason: protection waiting for a quote to be priced
        self._commissioned: set[str] = set()
        # Execution corrections: execId base → the version counted; replaced ↔ replacing ids; commissions.
        self._exec_versions: dict[str, str] = {}
        self._superseded: dict[str, str] = {}  # an execId → the version that replaced it
        self._corrects: dict[str, str] = {}  # a correcting execId → the one it replaced
        self._commission_amounts: dict[str, Decimal] = {}
        # Per position: its state when the history starts (the day's first fill, or after a reset or adoption)
        # and the fills (ExecutionReport) and commissions ((exec_id, amount)) booked since, so a correction can
        # recompute it exactly.
        self._pos_history: dict[str, tuple[Position, list[ExecutionReport | tuple[str, Decimal]]]] = {}
        self._orphan_status: dict[int, list[OrderStatusReport]] = {}
        # Broker events held until the journal record they acknowledge is durable (see `_hold`): in arrival
        # order, with the journal seq each held order waits for.
        self._held: deque[tuple[int, Callable[[Any], None], Any]] = deque()
        self._held_orders: dict[int, int] = {}
        self._placing: Collection[int] = ()  # ids of the group being sent (`_place_group`), not yet booked
        self.held_events = 0  # events that had to wait for the journal (normally none against IB)
        self._positions: dict[str, Position] = {}
        # Submission queue: brackets need their legs back-to-back, so the bucket holds at least three.
        rate = self.execution.orders_per_second
        self._bucket = TokenBucket(clock, rate, capacity=max(rate, 3.0))
        self._queue: list[_Group] = []
        self._seq = itertools.count()
        self._algo_params: dict[str, tuple[tuple[str, str], ...]] = {}  # by Adaptive priority (`_build_groups`)
        # The broker port's short way for a bracket's legs, by `_bracket_shape` (None: the port has none for it).
        # (with the shape's constants as its first legs held them: `_constants_of`)
        self._senders: dict[tuple[Any, ...], tuple[GroupSender, tuple[Any, ...]] | None] = {}
        self._max_child_qty = self.execution.max_child_qty
        self._backoff = Backoff(self.execution.pacing_backoff_initial_s, self.execution.pacing_backoff_max_s)
        self._paused_until_ns = 0
        self._last_pacing_ns = 0
        self._wake: asyncio.Event | None = None
        # Latency (checklist §8).
        self._lat_ack = _Latency()
        self._lat_fill = _Latency()
        self._lat_commission = _Latency()
        # Broker P&L reconciliation.
        self._broker_daily: Decimal | None = None
        self._broker_unrealized: Decimal | None = None
        self._broker_realized: Decimal | None = None
        self._pnl_agrees = True
        # Publication, reconciliation, recovery.
        self._publish_handle: asyncio.TimerHandle | None = None  # a throttled publication's timer
        self._publish_soon = False  # a publication waits for the end of the step (`Journal.after_step`)
        self._last_publish_ns = 0
        self._views_dirty = False
        self._reconcile_handle: asyncio.TimerHandle | None = None
        self._reconcile_task: asyncio.Task[None] | None = None
        self._terminal_changed: asyncio.Event | None = None
        self._snapshot: BrokerSnapshotSource | None = None
        self._event_log: EventLogSink | None = None
        self._journal_replayed = False
        self._recovered = False
        self._replaying = False
        self.anomaly_count = 0
        self.alerts: list[str] = []
        bus.subscribe(QuoteUpdated, self._on_quote)

    # ------------------------------------------------------------------ wiring

    def set_instruments(self, instruments: Mapping[str, VerifiedInstrument]) -> None:
        """The verified instruments orders may be placed for; also sets each position's multiplier."""
        self.instruments = dict(instruments)
        self._senders.clear()  # (a shape's constants include its instrument's conId)
        for key, pos in self._positions.items():
            if key in self.instruments:
                pos.multiplier = max(1, self.instruments[key].multiplier)

    def set_snapshot_source(self, source: BrokerSnapshotSource) -> None:
        """Where `recover()` and anomaly reconciliation fetch the broker's open orders and executions."""
        self._snapshot = source

    def set_event_log(self, sink: EventLogSink) -> None:
        """Where alerts go for the UI's event log (normally `Runtime.log_event`)."""
        self._event_log = sink

    async def on_start(self) -> None:
        self._wake = asyncio.Event()
        self._terminal_changed = asyncio.Event()
        self.spawn(self._run_queue(), "submission-queue")

    async def on_stop(self) -> None:
        if self._reconcile_handle is not None:
            self._reconcile_handle.cancel()
        self.publish()

    # ------------------------------------------------------------------ queries (risk engine, runtime, UI)

    def order(self, order_id: int) -> ManagedOrder | None:
        return self._orders.get(order_id)

    def orders_for_intent(self, intent_id: str) -> list[ManagedOrder]:
        return [o for o in self._orders.values() if o.intent_id == intent_id]

    def position_qty(self, key: str) -> int:
        """Signed position from counted fills (long > 0)."""
        pos = self._positions.get(key)
        return pos.quantity if pos is not None else 0

    def working_entry_qty(self, key: str) -> int:
        """Signed remaining quantity that would open or increase exposure: working entries and slices,
        including slices still queued; protective children are excluded (they only reduce)."""
        total = 0
        for o in self._orders.working.values():  # (`opens_exposure` and `remaining` inlined: every pre-trade check)
            order = o.order
            if order.key != key:
                continue
            role = o.role
            if role in ENTRY_ROLES or (
                role == "adopted" and order.parent_id == 0 and order.order_type in _OPENING_TYPES
            ):
                filled = o.fill_qty if o.fill_qty > o.broker_filled else o.broker_filled
                if order.quantity > filled:
                    total += order.quantity - filled if order.action is Side.BUY else filled - order.quantity
        for group in self._queue:
            if group.legs and group.legs[0].key == key:
                total += group.entry_signed_qty
        return total

    def open_order_count(self) -> int:
        """Working orders at the broker, bracket children included (queued, unplaced groups are not)."""
        return len(self._orders.working)

    def queued_count(self) -> int:
        """Orders waiting in the submission queue (throttled groups and later slices)."""
        return sum(len(g.legs) for g in self._queue)

    def working_orders(self) -> list[OrderView]:
        return [self._view(o) for o in self._orders.working.values()]

    def positions(self) -> Mapping[str, Position]:
        return MappingProxyType(self._positions)

    def mark(self, key: str) -> Decimal | None:
        quote = self.hot_state.quote(key)
        return quote.mark if quote is not None else None

    def day_pnl(self) -> tuple[Decimal, Decimal, Decimal]:
        """(realised, unrealised marked from the hot state's quotes, commissions), all positions."""
        realized = unrealized = commissions = ZERO
        quote = self.hot_state.quote
        for pos in self._positions.values():
            realized += pos.realized
            commissions += pos.commissions
            if pos.quantity:  # (a flat position's unrealised P&L is 0 whatever its mark: no quote looked up)
                q = quote(pos.key)  # (`mark`, inlined: the risk engine reads this after every fill)
                if q is not None:  # (no mark: no unrealised P&L, `Position.unrealized(None)`)
                    unrealized += pos.unrealized(q.mark)
        return realized, unrealized, commissions

    def reset_day(self) -> None:
        """A new trading day: realised P&L and commissions restart from zero; open positions stay."""
        self._pos_history.clear()
        for pos in self._positions.values():
            pos.reset_day()
        self.journal.record("pnl_day_reset")
        self._request_publish()

    # ------------------------------------------------------------------ submission

    def submit(self, intent: OrderIntent) -> list[int]:
        """Turn an approved intent into orders and place what the rate allows now; returns those ids.

        Raises `OrderRefused` for a structurally invalid intent (see the module docstring).
        """
        # The cyclic garbage collector waits until a bracket of a learned shape is on the wire, so no collection
        # (tens of microseconds) can start in that window; one that is due runs at the next allocation after,
        # with the bookkeeping. (~4% of submits had one start inside them, all in the bookkeeping after the
        # write in the benchmark's runs: `python -m bench orders` counts those in the window.)
        gc_on = _gc_isenabled()
        _gc_disable()
        try:
            intent = self._validated(intent)
            shape = self._bracket_shape(intent)
            learned = None if shape is None or self._queue else self._senders.get(shape)
            sent = None if learned is None else self._send_bracket(intent, learned[0])  # the usual case, shortest
        finally:
            if gc_on:
                _gc_enable()
        if sent is not None:
            assert shape is not None and learned is not None
            return self._sent_bracket(intent, shape, learned, *sent)
        groups = self._build_groups(intent)
        # One journal line on the hot path: the intent rides in its first group's "submit" record (serialised
        # once the transmitting leg is on the wire); if that group has to wait, the intent is journaled now.
        first = groups[0]
        first.intent_record = intent
        first.groups = len(groups)
        if len(groups) == 1 and not self._queue:
            ids = self._place_now(first)  # the usual case, without the queue's heap and lists
            if ids is not None:
                if shape is not None and shape not in self._senders:
                    self._learn_bracket(shape, intent, ids)
                return ids
        for group in groups:
            heapq.heappush(self._queue, group)
        placed = self._pump()
        if first.intent_record is not None and not any(g is first for g, _ in placed):
            self.journal.record("intent", intent=_intent_record(first))
            first.intent_record = None
        self._wake_queue()
        return [oid for group, ids in placed if group.intent_id == intent.intent_id for oid in ids]

    # A whole bracket (entry, take-profit, stop-loss; not sliced) of a known shape is sent by the broker port's
    # `GroupSender`, from the ids and the values below, before its legs exist: one generated encoder, one write.
    # Its legs are built after the write by `_build_groups`, as for every other group; the values are checked
    # against those legs when a shape's sender is made (`_learn_bracket`) and after every such send.

    def _bracket_shape(self, intent: OrderIntent) -> tuple[Any, ...] | None:
        """What a full bracket's legs hold but the `_BRACKET_VARIABLE` values, or None for an intent that is not
        one (reduce-only, no exits, market, sliced): the instrument, the side (as two bools: an enum member hashes
        through a Python-level `__hash__`) and the intent's Adaptive priority as `_priority` reads it; the
        rest (conIds, tif) is the manager's for its life or until `set_instruments`, which forgets the shapes."""
        if (
            intent.reduce_only
            or intent.order_type is not _LMT
            or intent.take_profit is None
            or intent.stop_loss is None
            or intent.limit_price is None
            or intent.quantity > self._max_child_qty
            or intent.intent_id.startswith(PROTECT_PREFIX)  # (`_place_now` leaves those to the queue)
        ):
            return None
        return (intent.key, intent.side is _BUY, intent.side is _SELL, intent.adaptive_priority)

    @staticmethod
    def _bracket_values(intent: OrderIntent) -> tuple[Any, ...]:
        """The `_BRACKET_VARIABLE` values of `intent`'s bracket (`_build_groups` makes the same legs)."""
        iid, qty = intent.intent_id, intent.quantity
        oca = f"{iid}:oca"
        return (
            qty, intent.limit_price, f"{iid}:entry",
            qty, intent.take_profit, oca, f"{iid}:take_profit",
            qty, intent.stop_loss, oca, f"{iid}:stop_loss",
        )  # fmt: skip

    @staticmethod
    def _values_of(orders: Sequence[BrokerOrder]) -> tuple[Any, ...]:
        """The `_BRACKET_VARIABLE` values of a bracket's orders."""
        entry, take_profit, stop_loss = orders
        return _BRACKET_VALUES[0](entry) + _BRACKET_VALUES[1](take_profit) + _BRACKET_VALUES[2](stop_loss)

    @staticmethod
    def _constants_of(orders: Sequence[BrokerOrder]) -> tuple[Any, ...]:
        """Everything else of a bracket's orders: each leg's other fields, and whose child it is (the entry's
        id for the exits)."""
        entry, take_profit, stop_loss = orders
        parent = entry.order_id
        return (
            entry.parent_id,
            take_profit.parent_id == parent,
            stop_loss.parent_id == parent,
            _BRACKET_CONSTANTS[0](entry),
            _BRACKET_CONSTANTS[1](take_profit),
            _BRACKET_CONSTANTS[2](stop_loss),
        )

    def _learn_bracket(self, shape: tuple[Any, ...], intent: OrderIntent, ids: list[int]) -> None:
        """After a bracket of a new shape went the usual way: ask the port for its `GroupSender`, once the values
        `_bracket_values` gives are those of the legs `_build_groups` made."""
        orders = [self._orders[oid].order for oid in ids]
        if len(orders) != 3 or self._values_of(orders) != self._bracket_values(intent):
            log.error("bracket values of %s differ from its legs'; its shape keeps the usual way", intent.intent_id)
            self._senders[shape] = None
            return
        sender = self.broker.group_sender(orders, _BRACKET_VARIABLE)
        if sender is not None:  # (else asked again after the next such bracket: the port may have a way by then)
            self._senders[shape] = (sender, self._constants_of(orders))

    def _send_bracket(
        self, intent: OrderIntent, sender: GroupSender
    ) -> tuple[list[int], tuple[Any, ...], int, bool] | None:
        """`_place_now`'s checks and send for a bracket of a shape with a sender: None if the pacing pause or
        the rate say not now (nothing done; the caller queues it the usual way), else (its ids, the values
        sent, the time, whether `sender` sent it). (The connection: `_validated` checked it in this same call.)
        A send that raises leaves nothing sent: the legs are journaled, as for a group whose send raised."""
        now = self.clock.monotonic_ns()
        if now < self._paused_until_ns or not self._bucket.take_at(3, now):
            return None
        ids = self.broker.next_order_ids(3)
        values = self._bracket_values(intent)
        self._placing = ids
        try:
            return ids, values, now, sender.send(ids, values)
        except BaseException:
            self._bracket_booked(intent, ids, 0, now)  # (which takes the ids out of `_placing`)
            raise

    def _sent_bracket(
        self,
        intent: OrderIntent,
        shape: tuple[Any, ...],
        learned: tuple[GroupSender, tuple[Any, ...]],
        ids: list[int],
        values: tuple[Any, ...],
        now: int,
        sent: bool,
    ) -> list[int]:
        """After `_send_bracket`: the legs built, booked and journaled, and checked against what was sent; or,
        when the sender declined, the bracket sent the usual way (`_place_group`, under new ids; the declined
        ones stay unused, a gap IB allows, as after any failed send) and the shape learned again later."""
        sender, constants = learned
        if not sent:
            self._placing = ()
            self._senders.pop(shape, None)
            group = self._build_groups(intent)[0]
            group.intent_record = intent
            ids = self._place_group(group)
        else:
            orders, fresh = self._bracket_booked(intent, ids, 3, now, sender)
            if self._values_of(orders) != values or self._constants_of(orders) != constants:
                # (never, unless `_bracket_values` or `_bracket_shape` and `_build_groups` part ways)
                self._senders[shape] = None
                log.error("bracket %s: sent values differ from its legs'; reconciling", intent.intent_id)
                self._schedule_reconcile(f"bracket {intent.intent_id} sent with other values than its legs")
            elif not fresh:  # (never, unless the port's own encoding went stale: it says so after the write)
                self._senders.pop(shape, None)  # (learned again from the next bracket the usual way)
                log.error("bracket %s: the group sender found its encoding stale after the write; reconciling",
                          intent.intent_id)  # fmt: skip
                self._schedule_reconcile(f"bracket {intent.intent_id} sent by a stale group sender")
        self._placed_since_pacing(now)
        return ids

    def _bracket_booked(
        self, intent: OrderIntent, ids: list[int], sent: int, now_ns: int, sender: GroupSender | None = None
    ) -> tuple[list[BrokerOrder], bool]:
        """The legs of a bracket whose `sent` first legs `_send_bracket` sent under `ids`: built, handed
        to the sender's books, then booked and journaled (`_after_send`); and whether the sender found its
        encoding still good after the write (`GroupSender.sent`; True without a sender)."""
        group = self._build_groups(intent)[0]
        group.intent_record = intent
        legs = group.legs
        orders = _orders_of(legs, ids)
        fresh = True
        try:
            if sender is not None:
                fresh = sender.sent(orders)
        finally:
            self._after_send(group, orders, sent, now_ns)
        return orders, fresh

    def _validated(self, intent: OrderIntent) -> OrderIntent:
        inst = self.instruments.get(intent.key)
        if inst is None:
            raise OrderRefused(f"intent {intent.intent_id}: instrument {intent.key!r} is not a verified instrument")
        if not inst.tradable:
            raise OrderRefused(f"intent {intent.intent_id}: {intent.key} is not tradable ({inst.permission_detail})")
        if intent.quantity <= 0:
            raise OrderRefused(f"intent {intent.intent_id}: quantity must be a positive integer, got {intent.quantity}")
        if not self.broker.connected:
            raise OrderRefused(f"intent {intent.intent_id}: the broker is not connected")
        order_type = intent.order_type
        if order_type is _MKT:
            if not self.execution.allow_market_orders:
                raise OrderRefused(
                    f"intent {intent.intent_id}: market orders are refused; use a limit price "
                    "(or set execution.allow_market_orders = true)"
                )
        elif order_type is not _LMT:
            raise OrderRefused(f"intent {intent.intent_id}: order type {intent.order_type} is not LMT or MKT")
        if intent.reduce_only:
            return self._validated_reduce(intent, inst)
        ref, tp, sl = intent.limit_price, intent.take_profit, intent.stop_loss
        if ref is None and order_type is _LMT:
            raise OrderRefused(f"intent {intent.intent_id}: a limit order needs a limit price")
        tick = inst.min_tick
        # (Against the Decimal ZERO, not the int 0: a Decimal compared with an int converts it each time.)
        if (
            tick <= ZERO
            or (ref is not None and (ref <= ZERO or ref % tick))
            or (tp is not None and (tp <= ZERO or tp % tick))
            or (sl is not None and (sl <= ZERO or sl % tick))
        ):  # one test for the usual case (all on the grid); the reason, in order, otherwise
            for label, price in (("limit", ref), ("take-profit", tp), ("stop-loss", sl)):
                self._check_tick(intent, label, price, inst)
        if ref is not None:
            # Exits on the profitable / losing side of the limit (compared directly: no Decimal arithmetic).
            buy = intent.side is _BUY
            if tp is not None and (tp <= ref if buy else tp >= ref):
                raise OrderRefused(
                    f"intent {intent.intent_id}: take-profit {intent.take_profit} must be "
                    f"{'above' if buy else 'below'} the limit {ref} for a {intent.side} entry"
                )
            if sl is not None and (sl >= ref if buy else sl <= ref):
                raise OrderRefused(
                    f"intent {intent.intent_id}: stop-loss {intent.stop_loss} must be "
                    f"{'below' if buy else 'above'} the limit {ref} for a {intent.side} entry"
                )
        return intent

    @staticmethod
    def _check_tick(intent: OrderIntent, label: str, price: Decimal | None, inst: VerifiedInstrument) -> None:
        if price is None:
            return
        if price <= 0:
            raise OrderRefused(f"intent {intent.intent_id}: {label} price must be positive, got {price}")
        if inst.min_tick > 0 and price % inst.min_tick != 0:
            raise OrderRefused(
                f"intent {intent.intent_id}: {label} price {price} is not on {intent.key}'s tick grid ({inst.min_tick})"
            )

    def _validated_reduce(self, intent: OrderIntent, inst: VerifiedInstrument) -> OrderIntent:
        held = self.position_qty(intent.key)
        if held == 0 or (held > 0) == (intent.side is Side.BUY):
            raise OrderRefused(
                f"intent {intent.intent_id}: reduce-only {intent.side} {intent.key} "
                f"would not reduce a position of {held}"
            )
        qty = min(intent.quantity, abs(held))
        price = intent.limit_price
        if price is None and intent.order_type is OrderType.LMT:
            price = self._marketable_price(intent.key, intent.side, inst)
            if price is None:
                raise OrderRefused(f"intent {intent.intent_id}: no quote for {intent.key} to price the flatten order")
        self._check_tick(intent, "limit", price, inst)
        return replace(intent, quantity=qty, limit_price=price, take_profit=None, stop_loss=None)

    def _marketable_price(self, key: str, side: Side, inst: VerifiedInstrument) -> Decimal | None:
        """Through the touch by `flatten_offset_ticks`, so the limit trades like a market order but is bounded."""
        quote = self.hot_state.quote(key)
        if quote is None:
            return None
        offset = inst.min_tick * self.execution.flatten_offset_ticks
        if side is Side.SELL:
            base = quote.bid if quote.bid is not None else quote.last
            return None if base is None else max(base - offset, inst.min_tick)
        base = quote.ask if quote.ask is not None else quote.last
        return None if base is None else base + offset

    def _priority(self, intent: OrderIntent) -> str:
        # The intent's priority wins when it asks for something other than the dataclass default.
        if intent.adaptive_priority != "Normal" and intent.adaptive_priority in ("Patient", "Urgent"):
            return intent.adaptive_priority
        return self.execution.adaptive_priority

    def _build_groups(self, intent: OrderIntent) -> list[_Group]:
        inst = self.instruments[intent.key]
        now = self.clock.monotonic_ns()
        iid = intent.intent_id
        execution = self.execution
        key, con_id, side, order_type, tif = intent.key, inst.con_id, intent.side, intent.order_type, execution.tif
        limit = intent.limit_price if order_type is _LMT else None
        # Legs are value tuples, built into one BrokerOrder each at placement (`new_broker_order_from`).
        if intent.reduce_only:
            role = "flatten" if intent.source is IntentSource.FLATTEN else "reduce"
            fields = {
                "key": key,
                "con_id": con_id,
                "action": side,
                "quantity": intent.quantity,
                "order_type": order_type,
                "limit_price": limit,
                "tif": tif,
                "order_ref": f"{iid}:{role}",
                "transmit": True,
            }
            return [_Group(now, next(self._seq), iid, [_Leg(role, leg_values(fields))])]
        max_qty = execution.max_child_qty
        quantity = intent.quantity
        if quantity <= max_qty:
            sizes = [quantity]
        else:
            sizes = [max_qty] * (quantity // max_qty)
            if quantity % max_qty:
                sizes.append(quantity % max_qty)
        sliced = len(sizes) > 1
        interval_ns = execution.slice_interval_ms * 1_000_000 if sliced else 0
        priority = self._priority(intent)
        algo_params = self._algo_params.get(priority)  # one tuple per priority (the adapter caches its check)
        if algo_params is None:
            algo_params = self._algo_params[priority] = (("adaptivePriority", priority),)
        exit_side = _SELL if side is _BUY else _BUY if side is _SELL else _OPPOSITE[side]
        take_profit, stop_loss = intent.take_profit, intent.stop_loss
        groups = []
        for k, qty in enumerate(sizes):
            suffix = f":{k}" if sliced else ""
            role = "slice" if sliced else "entry"
            oca = f"{iid}:oca{suffix}"
            # Transmit chain: only the last leg transmits, so IB releases the bracket whole. Each leg is the
            # tuple of its BrokerOrder's values in `LEG_FIELDS` order: key, con_id, action, quantity,
            # order_type, limit_price, aux_price, tif, oca_group, oca_type, transmit, order_ref, algo_strategy,
            # algo_params, what_if, account (tests/orders/test_new_broker_order.py checks the order).
            legs = [
                _Leg(
                    role,
                    (key, con_id, side, qty, order_type, limit, None, tif, "", 0,
                     take_profit is None and stop_loss is None, f"{iid}:{role}{suffix}", "Adaptive", algo_params,
                     False, ""),
                )
            ]  # fmt: skip
            if take_profit is not None:
                tp = (key, con_id, exit_side, qty, _LMT, take_profit, None, tif, oca, PROTECTIVE_OCA_TYPE,
                      stop_loss is None, f"{iid}:take_profit{suffix}", "", (), False, "")  # fmt: skip
                legs.append(_Leg("take_profit", tp, 0))
            if stop_loss is not None:
                sl = (key, con_id, exit_side, qty, _STP, None, stop_loss, tif, oca, PROTECTIVE_OCA_TYPE, True,
                      f"{iid}:stop_loss{suffix}", "", (), False, "")  # fmt: skip
                legs.append(_Leg("stop_loss", sl, 0))
            groups.append(_Group(now + k * interval_ns, next(self._seq), iid, legs))
        return groups

    def pump(self) -> float | None:
        """Place every due queued group the rate allows; seconds until worth calling again, None if empty."""
        self._pump()
        return self._next_pump_s()

    def _pump(self) -> list[tuple[_Group, list[int]]]:
        placed: list[tuple[_Group, list[int]]] = []
        now = self.clock.monotonic_ns()
        if now < self._paused_until_ns or not self.broker.connected:
            return placed
        while self._queue:
            group = self._queue[0]
            if group.due_ns > now:
                break
            if not self._take_tokens(group):
                break
            heapq.heappop(self._queue)
            if group.intent_id.startswith(PROTECT_PREFIX) and not self._still_needed(group):
                continue
            placed.append((group, self._place_group(group)))
        if placed:
            self._placed_since_pacing(now)
        return placed

    def _take_tokens(self, group: _Group) -> bool:
        """The submission rate's tokens for `group`'s legs (a group larger than the bucket takes it whole)."""
        return self._bucket.try_take(min(len(group.legs), self._bucket.capacity))

    def _placed_since_pacing(self, now: int) -> None:
        """Placements went through: the pacing backoff starts again once the last pacing error is old enough."""
        if self._last_pacing_ns and now - self._last_pacing_ns > self.execution.pacing_backoff_max_s * 1e9:
            self._backoff.reset()

    def _place_now(self, group: _Group) -> list[int] | None:
        """`_pump` for a queue that would hold only `group`: placed (its ids) if it is due and the rate, the
        pacing pause and the connection allow, else None (nothing done but the bucket's refill; the caller
        queues it, and `_pump` then decides the same way)."""
        now = self.clock.monotonic_ns()
        if (
            now < self._paused_until_ns
            or group.due_ns > now
            or group.intent_id.startswith(PROTECT_PREFIX)
            or not self.broker.connected
            or not self._take_tokens(group)
        ):
            return None
        ids = self._place_group(group)
        self._placed_since_pacing(now)
        return ids

    def _next_pump_s(self) -> float | None:
        if not self._queue:
            return None
        now = self.clock.monotonic_ns()
        if now < self._paused_until_ns:
            return (self._paused_until_ns - now) / 1e9
        if not self.broker.connected:
            return 0.25
        head = self._queue[0]
        if head.due_ns > now:
            return (head.due_ns - now) / 1e9
        return max(self._bucket.wait_s(min(len(head.legs), self._bucket.capacity)), 0.001)

    def _place_group(self, group: _Group) -> list[int]:
        """Send a group's legs back to back, then do the bookkeeping (book, journal, bus, views).

        The legs leave in one socket write: `OrderPort.place_group` sends them all at once (or nothing, and
        then they go one by one between `cork` and `uncork`). Only what the broker needs happens before the
        transmitting leg's bytes leave: the ids and the `BrokerOrder`s. The orders join the book and the
        "submit" record is numbered and serialised right
        after, in the same step of the loop: the journal's writer runs after the step (see core/journal.py),
        so the record reaches the file no later than if it had been queued before the send, and until it is
        durable every broker event about these orders is held (`_hold`: the ids are in `_placing` during the
        sends, and their `journal_seq` is `_UNRECORDED` until the record exists). The record carries every leg
        of the group, sent or not (a leg whose send raised is journaled, as it always was)."""
        broker = self.broker
        legs = group.legs
        ids = broker.next_order_ids(len(legs))
        orders = _orders_of(legs, ids)
        self._placing = ids
        now_ns = self.clock.monotonic_ns()
        sent = 0
        try:
            if broker.place_group(orders):  # all legs in one write, or none sent
                sent = len(orders)
            else:
                broker.cork()  # the legs leave in one socket write, at the last leg's `uncork`
                try:
                    for order in orders:
                        broker.place_order(order)
                        sent += 1
                finally:
                    broker.uncork()
        finally:
            self._after_send(group, orders, sent, now_ns)
        return ids

    def _after_send(self, group: _Group, orders: list[BrokerOrder], sent: int, now_ns: int) -> None:
        """The group's legs are on the wire (the first `sent` of them): book them, journal the submission,
        mark the sent legs PENDING_SUBMIT, tell the bus, and process any broker event that arrived meanwhile
        once the record is durable. The group's ids leave `_placing` once booked, whatever happens."""
        book = self._orders
        intent_id = group.intent_id
        managed: list[ManagedOrder] = []
        try:
            for leg, order in zip(group.legs, orders, strict=True):
                mo = ManagedOrder(order=order, role=leg.role, intent_id=intent_id, journal_seq=_UNRECORDED)
                mo.submit_ns = now_ns
                book[order.order_id] = mo
                managed.append(mo)
        finally:
            self._placing = ()  # booked: `_hold` finds them (`journal_seq` still `_UNRECORDED`)
        self.journal.record(
            "submit",
            intent_id=group.intent_id,
            intent=_intent_record(group),
            legs=[{"role": mo.role, "order": order_json(mo.order)} for mo in managed],
        )
        group.intent_record = None
        seq = self.journal.seq
        for mo in managed:
            mo.journal_seq = seq
        now_utc = self.clock.now_utc()
        changed: list[ManagedOrder] = []
        for mo in managed[:sent]:
            if mo.state is NEW:  # (held events cannot have moved it; a replay may have)
                mo.state = PENDING_SUBMIT
                mo.transitions.append((PENDING_SUBMIT, mo.ib_status, now_ns, now_utc))
                mo.last_ns = now_ns
                mo.view = None
                changed.append(mo)
        # The submit record journals these transitions; the orders stay in the working index (NEW and
        # PENDING_SUBMIT are both working), so `_apply` has nothing else to do.
        if changed and not self._replaying:
            publish = self.bus.publish
            for mo in changed:
                order = mo.order
                publish(
                    OrderStateChanged(
                        order.order_id, order.key, order.order_ref, NEW, PENDING_SUBMIT, mo.ib_status, now_ns
                    )
                )
            self._request_publish()
        held = self._held_orders
        if held:
            waiting = [mo.order_id for mo in managed if held.get(mo.order_id) == _UNRECORDED]
            if waiting:  # a broker answered inside `place_order`: its events wait for this record
                for oid in waiting:
                    held[oid] = seq
                if self.journal.when_durable(seq, self._release_held):
                    self._release_held()
                else:
                    self.held_events += sum(1 for item in self._held if item[0] in waiting)

    async def _run_queue(self) -> None:
        assert self._wake is not None
        while True:
            delay = self.pump()
            self._wake.clear()
            if delay is None:
                await self._wake.wait()
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    def _wake_queue(self) -> None:
        if self._wake is not None and self._queue:
            self._wake.set()

    def _drop_queued(self, intent_id: str | None, reason: str) -> int:
        """Remove queued groups (all, or one intent's); returns how many orders were dropped."""
        keep = [g for g in self._queue if intent_id is not None and g.intent_id != intent_id]
        dropped = [g for g in self._queue if not (intent_id is not None and g.intent_id != intent_id)]
        if not dropped:
            return 0
        heapq.heapify(keep)
        self._queue = keep
        count = sum(len(g.legs) for g in dropped)
        self.journal.record(
            "queue_dropped", intent_ids=sorted({g.intent_id for g in dropped}), orders=count, reason=reason
        )
        return count

    # ------------------------------------------------------------------ cancel and modify

    def cancel(self, order_id: int, reason: str = "") -> bool:
        """Ask the broker to cancel a working order; False if unknown or already terminal.

        Cancelling an entry or slice parent also drops the intent's slices not yet placed.
        """
        o = self._orders.get(order_id)
        if o is None or o.state.is_terminal:
            return False
        self.journal.record("cancel", order_id=order_id, order_ref=o.order.order_ref, reason=reason)
        o.cancel_requested = True
        self._transition(o, PENDING_CANCEL, o.ib_status, "cancel request")
        if o.role in ENTRY_ROLES:
            self._drop_queued(o.intent_id, f"entry {order_id} cancelled")
        self.broker.cancel_order(order_id)
        return True

    def modify(
        self,
        order_id: int,
        *,
        quantity: int | None = None,
        limit_price: Decimal | None = None,
        aux_price: Decimal | None = None,
    ) -> bool:
        """Re-send a working order with a new quantity or price (same id); False if not modifiable."""
        o = self._orders.get(order_id)
        if o is None or o.state.is_terminal or o.state is PENDING_CANCEL:
            return False
        if quantity is not None and quantity <= o.filled:
            return False
        changes: dict[str, Any] = {"transmit": True}
        if quantity is not None:
            changes["quantity"] = quantity
        if limit_price is not None:
            changes["limit_price"] = limit_price
        if aux_price is not None:
            changes["aux_price"] = aux_price
        new = replace(o.order, **changes)
        self.journal.record("modify", order_id=order_id, order=order_json(new))
        o.order = new
        o.modified_ns = self.clock.monotonic_ns()
        o.view = None
        self.broker.place_order(new)
        self._request_publish()
        return True

    async def cancel_all(self, reason: str) -> bool:
        """Global cancel, then wait (bounded) for every known working order to end: `begin_cancel_all`, then
        `finish_cancel_all`. True when all are terminal."""
        return await self.finish_cancel_all(reason, self.begin_cancel_all(reason))

    def begin_cancel_all(self, reason: str) -> list[ManagedOrder]:
        """The global cancel, now: its journal record, queued (unplaced) groups dropped, the cancel sent, the
        working orders moved to PENDING_CANCEL. Returns those orders for `finish_cancel_all`.

        Synchronous, so a kill switch on the loop's urgent path has the cancel on the socket without waiting
        for a task to start. Raises ConnectionError (from the broker) when not connected.
        """
        working = [o for o in self._orders.values() if o.state.is_working]
        self._protect_waiting.clear()
        self.journal.record("cancel_all", reason=reason, working=[o.order_id for o in working])
        self._drop_queued(None, f"cancel all: {reason}")
        # The one message that stops everything goes first; the bookkeeping of each order follows (a kill
        # switch must not wait for 100 state transitions). A broker that answers synchronously may already
        # have ended some orders, so only those still working move to PENDING_CANCEL.
        self.broker.global_cancel()
        for o in working:
            o.cancel_requested = True
            if o.state.is_working:
                self._transition(o, PENDING_CANCEL, o.ib_status, "global cancel")
        return working

    async def finish_cancel_all(self, reason: str, working: list[ManagedOrder]) -> bool:
        """Wait (bounded) for the orders `begin_cancel_all` returned to end; survivors get per-order cancels and
        a second wait; one still alive raises an alert. True when all are terminal."""
        timeout = self.execution.cancel_all_timeout_s
        if await self._wait_terminal(working, timeout):
            return True
        survivors = [o for o in working if o.state.is_working]
        self.journal.record("cancel_all_retry", reason=reason, survivors=[o.order_id for o in survivors])
        log.warning("cancel all: %d orders survived the global cancel; cancelling each", len(survivors))
        for o in survivors:
            self.broker.cancel_order(o.order_id)
        if await self._wait_terminal(survivors, timeout):
            return True
        alive = [o for o in survivors if o.state.is_working]
        self._alert(
            f"cancel all ({reason}): {len(alive)} order(s) still working after global and per-order cancels: "
            + ", ".join(f"{o.order_id} {o.key} {o.role} {o.state.value}" for o in alive)
        )
        return False

    async def _wait_terminal(self, orders: list[ManagedOrder], timeout_s: float) -> bool:
        if self._terminal_changed is None:
            self._terminal_changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(o.state.is_working for o in orders):
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._terminal_changed.clear()
            try:
                await asyncio.wait_for(self._terminal_changed.wait(), timeout=left)
            except TimeoutError:
                return not any(o.state.is_working for o in orders)
        return True

    # ------------------------------------------------------------------ protection of open positions

    def protect_positions(self, reason: str) -> list[int]:
        """Give every open position without working protection an OCA stop-loss + take-profit; returns the ids
        placed now (a pair the rate does not allow yet is queued and placed by the queue).

        Called by the risk engine after a resume (the halt cancelled every bracket child) and by the runtime
        after recovery when not HALTED; never call it while HALTED (no new orders then). For each nonzero
        position, the quantity not covered by working protective orders (bracket children whose parent has
        filled, or earlier protection) gets a pair: STP and LMT on the exit side, `oca_type=2`, no parent,
        TP transmit=False then SL transmit=True so neither is live alone, `orderRef "protect-<key>-<n>:<role>"`.
        Prices come from the position's average cost, `signals.stop_loss_ticks` / `take_profit_ticks` away on
        the instrument's tick grid; a stop that would already be through the touch (it would trigger at once)
        is put `stop_loss_ticks` beyond the touch instead, and a take-profit that would be marketable
        `take_profit_ticks` beyond the other side of the touch. A position with no quote yet is protected when
        its first quote arrives (an event-log warning says so). Protection is kept within the position by
        `_fit_protection` after every fill.
        """
        placed: list[int] = []
        for key, pos in list(self._positions.items()):
            if pos.quantity == 0:
                continue
            placed += self._protect(key, reason)
        return placed

    def unprotected_positions(self) -> list[str]:
        """Keys of nonzero positions with quantity not covered by working protective orders."""
        return [k for k, p in self._positions.items() if p.quantity and self._cover(k)[0] < abs(p.quantity)]

    def _protect(self, key: str, reason: str) -> list[int]:
        self._protect_waiting.pop(key, None)
        pos = self._positions.get(key)
        inst = self.instruments.get(key)
        if pos is None or pos.quantity == 0:
            return []
        if inst is None or not inst.tradable:
            self._warn(f"position {key} {pos.quantity} cannot be protected: not a verified, tradable instrument")
            return []
        if not self.broker.connected:
            self._warn(f"position {key} {pos.quantity} is not protected: the broker is not connected")
            return []
        self._fit_protection(key)
        covered, _groups = self._cover(key)
        missing = abs(pos.quantity) - covered
        if missing <= 0:
            return []
        prices = self._protect_prices(pos, inst)
        if prices is None:
            self._protect_waiting[key] = reason
            self._warn(f"position {key} {pos.quantity} is unprotected: no quote to price its stop; waiting for one")
            return []
        stop, take_profit = prices
        iid = f"{PROTECT_PREFIX}{key}-{next(self._protect_seq)}"
        exit_side = Side.SELL if pos.quantity > 0 else Side.BUY
        child: dict[str, Any] = {
            "key": key,
            "con_id": inst.con_id,
            "action": exit_side,
            "quantity": missing,
            "tif": self.execution.tif,
            "oca_group": f"{iid}:oca",
            "oca_type": PROTECTIVE_OCA_TYPE,
        }
        legs = [
            _Leg(
                "take_profit",
                leg_values(
                    {
                        **child,
                        "order_type": OrderType.LMT,
                        "limit_price": take_profit,
                        "order_ref": f"{iid}:take_profit",
                        "transmit": False,
                    }
                ),
            ),
            _Leg(
                "stop_loss",
                leg_values(
                    {
                        **child,
                        "order_type": OrderType.STP,
                        "limit_price": None,
                        "aux_price": stop,
                        "order_ref": f"{iid}:stop_loss",
                        "transmit": True,
                    }
                ),
            ),
        ]
        group = _Group(self.clock.monotonic_ns(), next(self._seq), iid, legs)
        group.intent_record = {
            "intent_id": iid,
            "key": key,
            "kind": "protect",
            "side": exit_side.value,
            "quantity": missing,
            "position": pos.quantity,
            "avg_cost": str(pos.avg_cost),
            "stop_loss": str(stop),
            "take_profit": str(take_profit),
            "reason": reason,
        }
        heapq.heappush(self._queue, group)
        placed = self._pump()
        if group.intent_record is not None and not any(g is group for g, _ in placed):
            self.journal.record("intent", intent=_intent_record(group))
            group.intent_record = None
        self._wake_queue()
        log.info("protecting %s %s: stop %s, take-profit %s (%s)", key, pos.quantity, stop, take_profit, reason)
        return [oid for g, ids in placed if g is group for oid in ids]

    def _protect_prices(self, pos: Position, inst: VerifiedInstrument) -> tuple[Decimal, Decimal] | None:
        """(stop, take-profit) on the tick grid, the stop never through the touch; None without a quote."""
        quote = self.hot_state.quote(pos.key)
        if quote is None:
            return None
        bid = quote.bid if quote.bid is not None else quote.last
        ask = quote.ask if quote.ask is not None else quote.last
        if bid is None or ask is None:
            return None
        tick = inst.min_tick if inst.min_tick > 0 else Decimal("0.01")
        sl = tick * self.settings.signals.stop_loss_ticks
        tp = tick * self.settings.signals.take_profit_ticks
        avg = pos.avg_cost
        if pos.quantity > 0:
            # A sell stop triggers when the bid reaches it: it must stay strictly below the bid.
            stop = _grid(avg - sl, tick, ROUND_FLOOR)
            if stop >= bid:
                stop = _grid(bid, tick, ROUND_FLOOR) - sl
            take = _grid(avg + tp, tick, ROUND_CEILING)
            if take <= bid:
                take = _grid(ask, tick, ROUND_CEILING) + tp
            if stop <= 0:
                return None
            return stop, take
        # A buy stop triggers when the ask reaches it: it must stay strictly above the ask.
        stop = _grid(avg + sl, tick, ROUND_CEILING)
        if stop <= ask:
            stop = _grid(ask, tick, ROUND_CEILING) + sl
        take = _grid(avg - tp, tick, ROUND_FLOOR)
        if take >= ask:
            take = _grid(bid, tick, ROUND_FLOOR) - tp
        return stop, max(take, tick)

    def _cover(self, key: str) -> tuple[int, list[tuple[list[ManagedOrder], int, Side]]]:
        """(quantity covered on the position's exit side, [(resizable legs, cover, exit side)] per live group).

        Protective orders are grouped by OCA group. A group whose bracket parent is still working is held by
        the broker until the parent fills, so it neither covers nor can over-cover yet. With `oca_type` 2 or
        3 (Omega's own pairs) a leg's fill has already shrunk its siblings (`_oca_reduce` mirrors what the
        broker does), so the group covers what its largest live leg has left. With `oca_type` 1 (adopted
        orders, journals written before ocaType 2) the broker cancels the others on any fill, so only the
        filled leg's remainder covers.
        """
        legs_by_id = self._orders.protective.get(key)
        if not legs_by_id:
            return 0, []
        by_group: dict[str | int, list[ManagedOrder]] = {}
        for o in legs_by_id.values():
            by_group.setdefault(o.order.oca_group or o.order_id, []).append(o)
        pos = self.position_qty(key)
        exit_sign = -1 if pos > 0 else 1
        covered = 0
        groups: list[tuple[list[ManagedOrder], int, Side]] = []
        orders = self._orders
        for legs in by_group.values():
            first = legs[0].order
            if first.parent_id:
                parent = orders.get(first.parent_id)
                if parent is not None and parent.state.is_working:
                    continue
            live = [o for o in legs if o.state.is_working and not o.cancel_requested and o.remaining > 0]
            if not live:
                continue
            if first.oca_type not in OCA_REDUCE_TYPES and any(o.filled for o in legs):
                live = [o for o in live if o.filled]
                if not live:
                    continue
                cover = sum(o.remaining for o in live)
            else:
                cover = max(o.remaining for o in live)
            side = live[0].order.action
            groups.append((live, cover, side))
            if pos and side.sign == exit_sign:
                covered += cover
        return covered, groups

    def _oca_reduce(self, o: ManagedOrder, qty: int) -> None:
        """`o` (in an OCA group of type 2 or 3) filled `qty`: the broker shrinks its working siblings by as much
        (proportionately to what each has left: Omega's legs are equal, so by `qty`), cancelling any that reach
        zero. Mirror that here, so protection is measured as the broker holds it and never "re-fitted" (modified
        or cancelled) against the broker's own reduction; the broker's Cancelled statuses follow."""
        group = o.order.oca_group
        # From the working index (at most a few dozen orders), not the armed protection: a child's fill may
        # arrive before its parent's Filled status, while its siblings are still indexed as held.
        siblings = [s for s in self._orders.working.values() if s is not o and s.order.oca_group == group]
        before = o.order.quantity - o.fill_qty + qty  # what `o` had left before this fill
        for sib in siblings:
            left = sib.remaining
            cut = qty if left == before or before <= 0 else max(1, round(qty * left / before))
            new_qty = max(sib.order.quantity - cut, sib.filled)
            if new_qty == sib.order.quantity:
                continue
            if not self._replaying:
                self.journal.record(
                    "oca_reduce",
                    order_id=sib.order_id,
                    order_ref=sib.order.order_ref,
                    by_order=o.order_id,
                    filled=qty,
                    old_quantity=sib.order.quantity,
                    new_quantity=new_qty,
                )
            sib.order = replace(sib.order, quantity=new_qty)
            sib.view = None

    def _fit_protection(self, key: str) -> None:
        """Keep protective orders within the position: shrink or cancel what exceeds it, cancel what is on the
        wrong side. A stop or take-profit bigger than the position (after a flatten, a manual reduce, or the
        other leg's fill of another group) would open a position in the other direction that risk cannot see.
        """
        pos = self.position_qty(key)
        _covered, groups = self._cover(key)
        if not groups:
            return
        exit_sign = -1 if pos > 0 else 1
        excess = -abs(pos)
        keep: list[tuple[list[ManagedOrder], int]] = []
        for legs, cover, side in groups:
            if pos == 0 or side.sign != exit_sign:
                self._cancel_protection(legs, f"position {key} is {pos}")
            else:
                keep.append((legs, cover))
                excess += cover
        # Newest protection shrinks first (highest order ids), so the oldest, original brackets stay intact.
        for legs, cover in sorted(keep, key=lambda g: -max(o.order_id for o in g[0])):
            if excess <= 0:
                break
            new_cover = max(cover - excess, 0)
            excess -= cover - new_cover
            if new_cover == 0:
                self._cancel_protection(legs, f"position {key} is {pos}")
                continue
            for o in legs:
                self.journal.record(
                    "protection_resize", order_id=o.order_id, key=key, position=pos, cover=cover, new_cover=new_cover
                )
                self.modify(o.order_id, quantity=o.filled + new_cover)

    def _still_needed(self, group: _Group) -> bool:
        """A protection pair that waited in the queue is placed only for what is still uncovered (the position
        may have shrunk, closed or flipped meanwhile); resized to that, or dropped."""
        key = group.legs[0].key
        pos = self.position_qty(key)
        side = group.legs[0].action
        missing = abs(pos) - self._cover(key)[0]
        if pos == 0 or side.sign == (1 if pos > 0 else -1) or missing <= 0:
            self.journal.record("queue_dropped", intent_ids=[group.intent_id], orders=len(group.legs), reason="covered")
            return False
        for leg in group.legs:
            leg.with_quantity(min(leg.quantity, missing))
        return True

    def _cancel_protection(self, legs: list[ManagedOrder], why: str) -> None:
        for o in legs:
            self.cancel(o.order_id, reason=f"protection exceeds the position: {why}")

    def _warn(self, text: str) -> None:
        log.warning("%s", text)
        self.journal.record("warning", source="orders", text=text)
        if self._event_log is not None:
            self._event_log("warn", "order", text)

    # ------------------------------------------------------------------ broker callbacks (OrderEvents)

    def _hold(self, order_id: int, handler: Callable[[Any], None], report: object) -> bool:
        """Whether a broker event about `order_id` must wait: its "submit" record is not durable yet, or
        earlier events of the order are waiting. A held event is queued (arrival order) and handed back to
        `handler` by `_release_held` when the journal's writer reports the record fsynced; the loop never
        blocks. Against IB the group commit finishes long before the first acknowledgement: nothing waits."""
        if order_id in self._held_orders:
            self._held.append((order_id, handler, report))
            return True
        o = self._orders.get(order_id)
        if o is not None:
            seq = o.journal_seq
        elif order_id in self._placing:
            seq = _UNRECORDED
        else:
            return False
        if seq <= self.journal.durable_seq:
            return False
        if seq == _UNRECORDED:  # answered inside `place_order`: `_after_send` takes it from here
            self._held_orders[order_id] = _UNRECORDED
            self._held.append((order_id, handler, report))
            return True
        if self.journal.when_durable(seq, self._release_held):
            return False  # durable after all (or fsynced inline: no running loop)
        self._held_orders[order_id] = seq
        self._held.append((order_id, handler, report))
        self.held_events += 1
        return True

    def _release_held(self) -> None:
        """The journal made more records durable: process the held events of the orders they cover, in
        the order they arrived (events of orders still waiting stay queued, in order)."""
        durable = self.journal.durable_seq
        ready = {oid for oid, seq in self._held_orders.items() if seq <= durable}
        if not ready:
            return
        run = [item for item in self._held if item[0] in ready]
        self._held = deque(item for item in self._held if item[0] not in ready)
        for oid in ready:
            del self._held_orders[oid]
        for oid, handler, report in run:
            try:
                handler(report)
            except Exception:  # one bad event must not drop the others held with it
                log.exception("order %s: a broker event held for the journal failed", oid)

    def on_order_status(self, report: OrderStatusReport) -> None:
        if self._hold(report.order_id, self.on_order_status, report):
            return
        o = self._orders.get(report.order_id)
        if o is None:
            # A status for an order we have not seen: keep it until its openOrder (or recovery) adopts it.
            self._orphan_status.setdefault(report.order_id, []).append(report)
            self._schedule_reconcile(f"orderStatus for unknown order {report.order_id}")
            return
        self._note_ack(o, report.recv_ns)
        if report.perm_id:
            o.perm_id = report.perm_id
        if report.filled > o.broker_filled:
            o.broker_filled = report.filled
            o.broker_avg = report.avg_fill_price
        self._apply_ib_status(o, report.status, "orderStatus", report.why_held)

    def on_open_order(self, report: OpenOrderReport) -> None:
        if self._hold(report.order.order_id, self.on_open_order, report):
            return
        o = self._orders.get(report.order.order_id)
        if o is None:
            o = self._adopt(report.order, report.status, report.perm_id, "openOrder")
        else:
            self._note_ack(o, report.recv_ns)
            if report.perm_id:
                o.perm_id = report.perm_id
        self._apply_ib_status(o, report.status, "openOrder")

    def on_execution(self, report: ExecutionReport) -> None:
        # The fill → position and P&L path (`python -m bench orders`: fill_to_pnl, p99 < 100 us, mostly right
        # after an idle loop, with cold caches): the helpers it would call per fill (`_position`,
        # `ManagedOrder.key`, `_shrank`, `_request_publish`) are written out or guarded, and what can wait for
        # the end of the step (the journal's record, the views) goes to the journal's one end-of-step callback
        # (`Journal.record_soon`, `Journal.after_step`).
        o = self._orders.get(report.order_id)
        if (
            self._held_orders or self._placing or (o is not None and o.journal_seq > self.journal.durable_seq)
        ) and self._hold(report.order_id, self.on_execution, report):
            return  # a fill before any ack is an acknowledgement too
        exec_id = report.exec_id
        if exec_id in self._exec_to_order:
            return  # a duplicate: a fill is counted once
        base, dot, _version = exec_id.rpartition(".")
        if dot:
            current = self._exec_versions.get(base)
            if current is not None:
                self._on_exec_version(report, base, current)
                return
            self._exec_versions[base] = exec_id
        if o is None:
            placeholder = BrokerOrder(
                order_id=report.order_id,
                key=report.key,
                con_id=report.con_id,
                action=report.side,
                quantity=report.cum_qty,
                order_type=OrderType.LMT,
                order_ref=report.order_ref,
            )
            o = self._adopt(placeholder, "Submitted", report.perm_id, "execDetails", placeholder=True)
        live = not self._replaying
        if live:
            # Numbered and serialised after this step (the position, the bus and the risk engine first);
            # nothing reaches the file sooner either way (core/journal.py, "Deferred serialisation").
            self.journal.record_soon("fill", _fill_fields, report)
        self._exec_to_order[exec_id] = report.order_id  # (`o.order_id`: o is the book's order of this id)
        quantity = report.quantity
        price = report.price
        o.fills[exec_id] = report
        fill_qty = o.fill_qty = o.fill_qty + quantity
        o.fill_notional += price * quantity
        if report.cum_qty > o.broker_filled and report.cum_qty <= fill_qty:
            o.broker_filled = report.cum_qty
        if report.perm_id:
            o.perm_id = report.perm_id
        order = o.order
        if fill_qty > order.quantity:
            # More filled than ordered: only an adopted placeholder can grow; anything else is an anomaly.
            if o.role == "adopted":
                order = o.order = replace(order, quantity=fill_qty)
            else:
                self._anomaly(o, f"filled {fill_qty} of an order for {order.quantity}")
        if order.oca_group and order.oca_type in OCA_REDUCE_TYPES:
            self._oca_reduce(o, quantity)  # (its siblings': `o.order` stays)
        key = order.key or report.key
        pos = self._positions.get(key) or self._position(key)
        history = self._pos_history.get(key)
        if history is None:
            history = self._pos_history[key] = (replace(pos), [])
        before = pos.quantity
        opened, _ = pos.fill(report.side, quantity, price)  # (what it opened, as opening_qty)
        if opened:
            self._opened_share[exec_id] = _ONE if opened == quantity else Decimal(opened) / quantity
        history[1].append(report)
        if not o.first_fill_ns:
            o.first_fill_ns = report.recv_ns
            if o.submit_ns and live:
                self._lat_fill.add(report.recv_ns - o.submit_ns)
        if self._pending_commissions:
            pending = self._pending_commissions.pop(exec_id, None)
            if pending is not None:
                self._book_commission(pending, pos, o)
        filled = fill_qty if fill_qty > o.broker_filled else o.broker_filled  # (`o.filled`)
        target = FILLED if filled >= order.quantity else PARTIALLY_FILLED
        if target is not o.state:  # (the same state with its own ib_status: `_transition` would do nothing)
            self._transition(o, target, o.ib_status, "execDetails")
        o.view = None
        if live:
            self.bus.publish(FillReceived(report))
            if before and self._orders.protective.get(key) and _shrank(before, pos.quantity):
                self._fit_protection(key)  # (which has nothing to fit without armed protection)
            # (`_request_publish`, written out: the views after the step, with the record above)
            self._views_dirty = True
            if not self._publish_soon and self._publish_handle is None:
                self._publish_soon = self.journal.after_step(self._publish_scheduled)
        else:
            self._views_dirty = True

    def _on_exec_version(self, report: ExecutionReport, base: str, current_id: str) -> None:
        """Another version of a counted execution: IB corrects an execution by sending the same execId with a
        higher last suffix (`….01.01` → `….01.02`), which replaces the earlier one (quantity, price); it is
        not an extra fill. A lower suffix arriving after its correction is the superseded version: ignored.

        The order's fills and the position are rebuilt with the corrected execution (`_replay_position`), the
        journal keeps the new version as a "fill" (so a restart replays the same correction) and an audit
        "fill_correction" record, and `FillCorrected` goes on the bus."""
        exec_id = report.exec_id
        order_id = self._exec_to_order[current_id]
        o = self._orders[order_id]
        self._exec_to_order[exec_id] = order_id
        if _exec_version(exec_id) <= _exec_version(current_id):
            self._superseded[exec_id] = current_id
            if not self._replaying:
                self.journal.record("fill_superseded", exec_id=exec_id, by=current_id, order_id=order_id)
            return
        prev = o.fills.pop(current_id)
        if not self._replaying:
            self.journal.record("fill", fill=execution_json(report), corrects=current_id)
        self._exec_versions[base] = exec_id
        self._superseded[current_id] = exec_id
        self._corrects[exec_id] = current_id
        o.fills[exec_id] = report
        o.fill_qty += report.quantity - prev.quantity
        o.fill_notional += report.price * report.quantity - prev.price * prev.quantity
        o.broker_filled = min(o.broker_filled, o.fill_qty) if report.quantity < prev.quantity else o.broker_filled
        if o.fill_qty > o.order.quantity and o.role != "adopted":
            self._anomaly(o, f"corrected execution {exec_id}: filled {o.fill_qty} of an order for {o.order.quantity}")
        pos = self._position(o.key or report.key)
        before_qty, before_realized, before_avg = pos.quantity, pos.realized, pos.avg_cost
        self._replay_position(pos, current_id, report)
        target = FILLED if o.filled >= o.order.quantity else PARTIALLY_FILLED
        self._transition(o, target, o.ib_status, "execDetails correction")
        o.view = None
        if not self._replaying:
            self.journal.record(
                "fill_correction",
                order_id=order_id,
                order_ref=o.order.order_ref,
                key=pos.key,
                replaces=current_id,
                exec_id=exec_id,
                old_quantity=prev.quantity,
                old_price=prev.price,
                new_quantity=report.quantity,
                new_price=report.price,
                position_before=before_qty,
                position_after=pos.quantity,
                avg_cost_before=before_avg,
                avg_cost_after=pos.avg_cost,
                realized_before=before_realized,
                realized_after=pos.realized,
            )
            log.warning(
                "execution %s corrected by %s: %s @ %s -> %s @ %s (%s position %s -> %s)",
                current_id, exec_id, prev.quantity, prev.price, report.quantity, report.price, pos.key,
                before_qty, pos.quantity,
            )  # fmt: skip
            self.bus.publish(FillCorrected(report, prev))
            if _shrank(before_qty, pos.quantity):
                self._fit_protection(pos.key)
            elif abs(pos.quantity) > abs(before_qty) and self.unprotected_positions().count(pos.key):
                self._warn(f"execution correction grew {pos.key} to {pos.quantity}; part of it is unprotected")
        self._request_publish()

    def _replay_position(self, pos: Position, old_id: str, new: ExecutionReport) -> None:
        """Recompute `pos` from its checkpoint and the fills and commissions booked since, with execution
        `old_id` replaced by `new` (average cost is path-dependent: only a replay gives the exact figures)."""
        history = self._pos_history.get(pos.key)
        if history is None or not any(isinstance(e, ExecutionReport) and e.exec_id == old_id for e in history[1]):
            # Booked before the last day reset or position adoption: undo it and book the new version.
            old = self._orders[self._exec_to_order[old_id]].fills.get(old_id)
            log.warning("execution %s is not in today's position history; correcting by reversal", old_id)
            if old is not None:
                pos.apply_fill(old.side.opposite, old.quantity, old.price)
            pos.apply_fill(new.side, new.quantity, new.price)
            return
        checkpoint, events = history
        fresh = replace(checkpoint)
        shares: dict[str, Decimal] = {}
        for i, event in enumerate(events):
            if isinstance(event, ExecutionReport):
                if event.exec_id == old_id:
                    event = events[i] = new
                opened = fresh.opening_qty(event.side, event.quantity)
                shares[event.exec_id] = Decimal(opened) / event.quantity if opened else ZERO
                fresh.apply_fill(event.side, event.quantity, event.price)
            else:
                exec_id, amount = event
                if exec_id == old_id:
                    exec_id = new.exec_id
                    events[i] = (exec_id, amount)
                fresh.add_commission(amount, shares.pop(exec_id, ZERO))
        for name in ("quantity", "cost_basis", "realized", "commissions", "fills", "open_commissions"):
            setattr(pos, name, getattr(fresh, name))
        pos.closed_commissions = fresh.closed_commissions
        self._opened_share.pop(old_id, None)
        for exec_id, share in shares.items():
            if exec_id not in self._commissioned:
                if share:
                    self._opened_share[exec_id] = share
                else:
                    self._opened_share.pop(exec_id, None)

    def on_commission(self, report: CommissionReport) -> None:
        if report.exec_id in self._commissioned:
            return
        order_id = self._exec_to_order.get(report.exec_id)
        if order_id is None:
            # Commission before its execution (reordered): book it when the execution arrives.
            self._pending_commissions[report.exec_id] = report
            return
        o = self._orders[order_id]
        self._book_commission(report, self._position(o.key), o)
        self._request_publish()

    def _book_commission(self, report: CommissionReport, pos: Position, o: ManagedOrder) -> None:
        exec_id = report.exec_id
        self._commissioned.add(exec_id)
        if not self._replaying:
            self.journal.record("commission", commission=commission_json(report), order_id=o.order_id, key=o.key)
            fill = o.fills.get(exec_id)
            if fill is not None:
                self._lat_commission.add(report.recv_ns - fill.recv_ns)
        # A corrected execution's commission replaces the one of the version it corrects, whichever arrives
        # first: the later of the two books only the difference.
        amount = report.commission
        replaced = self._corrects.get(exec_id)
        if replaced is not None and replaced in self._commission_amounts:
            amount -= self._commission_amounts[replaced]  # the replaced one's was booked: the difference
        newer = self._superseded.get(exec_id)
        if newer is not None and newer in self._commission_amounts:
            amount = ZERO  # the correction's own commission is booked already and stands
        self._commission_amounts[exec_id] = report.commission
        pos.add_commission(amount, self._opened_share.pop(exec_id, ZERO))
        history = self._pos_history.get(pos.key)
        if history is not None:
            history[1].append((exec_id, amount))

    def on_broker_error(self, error: BrokerError) -> None:
        code = error.code
        known = error.req_id in self._orders or error.req_id in self._placing
        if code in PACING_CODES or (known and "pacing" in error.message.lower()):
            self._pacing_violation(error)
        self._on_order_error(error)

    def _on_order_error(self, error: BrokerError) -> None:
        if self._hold(error.req_id, self._on_order_error, error):
            return
        code = error.code
        o = self._orders.get(error.req_id)
        if o is None:
            return
        detail = f"{code} {error.message}".strip()
        acknowledged = bool(o.perm_id) or o.state not in (NEW, PENDING_SUBMIT)
        if code == 103 and acknowledged:
            # "Duplicate order id" for an id the broker already holds refuses a request on that order (a
            # modification, e.g. resizing protection the broker has just filled), not the order: it stands as
            # it was, and its true state comes from the broker, never from a guess here. (A 201 on a working
            # order can be a real exchange rejection, so 201 keeps the declared transitions.)
            self._note(o, f"request refused: {detail}")
            self._schedule_reconcile(f"order {o.order_id}: {detail}")
        elif code == 201:
            self._transition(o, REJECTED, "Rejected", "error 201", detail)
        elif code == 202:
            self._transition(o, CANCELLED, "Cancelled", "error 202", detail)
        elif code == 103:
            # Duplicate order id: the broker never accepted this order under it.
            self._transition(o, REJECTED, "Rejected", "error 103", detail)
            self._alert(f"order {o.order_id} ({o.order.order_ref}) refused: duplicate order id")
        elif code == 10147 or code == 10148:
            # The cancel found nothing to cancel (already done, or never arrived): ask the broker.
            self._schedule_reconcile(f"order {o.order_id}: {detail}")
        elif code in WARNING_CODES or 2100 <= code <= 2199:
            self._note(o, detail)
        elif o.state is PENDING_SUBMIT:
            self._transition(o, REJECTED, "Rejected", f"error {code}", detail)
        else:
            self._note(o, detail)
            self._schedule_reconcile(f"order {o.order_id}: {detail}")

    def _pacing_violation(self, error: BrokerError) -> None:
        delay = self._backoff.next_delay()
        now = self.clock.monotonic_ns()
        self._last_pacing_ns = now
        self._paused_until_ns = max(self._paused_until_ns, now + int(delay * 1e9))
        self.journal.record("pacing", code=error.code, message=error.message, pause_s=round(delay, 3))
        log.warning("IB pacing error %s; order queue paused %.2fs", error.code, delay)
        # The message that tripped the limit may have been dropped: check with the broker.
        self._schedule_reconcile(f"pacing error {error.code}")

    # ------------------------------------------------------------------ state machine

    def _apply_ib_status(self, o: ManagedOrder, status: str, source: str, detail: str = "") -> None:
        target = IB_STATUS.get(status)
        if target is None:
            if status == "ValidationError":
                self._note(o, f"{source}: ValidationError")
            else:
                self._anomaly(o, f"{source}: unknown IB status {status!r}")
            return
        if target is SUBMITTED and o.filled > 0:
            target = PARTIALLY_FILLED
        if target is FILLED and o.filled < o.order.quantity and o.role != "adopted":
            # IB says Filled; its cumulative figure will follow (or recovery will fetch the executions).
            o.broker_filled = max(o.broker_filled, o.order.quantity)
        self._transition(o, target, status, source, detail)

    def _transition(self, o: ManagedOrder, target: OrderState, ib_status: str, source: str, detail: str = "") -> None:
        if target is o.state:
            if ib_status and ib_status != o.ib_status:
                o.ib_status = ib_status
                o.view = None
                self._request_publish()
            return
        rule = TRANSITIONS.get((o.state, target))
        if rule is Rule.STALE:
            return
        if rule is None:
            self._anomaly(o, f"undeclared transition {o.state.value} -> {target.value} on {source} ({ib_status})")
            return
        self._apply(o, target, ib_status, source, detail)

    def _apply(
        self,
        o: ManagedOrder,
        target: OrderState,
        ib_status: str,
        source: str,
        detail: str = "",
        *,
        journal: bool = True,
    ) -> None:
        old = o.state
        now = self.clock.monotonic_ns()
        o.state = target
        self._orders.state_changed(o)
        if ib_status:
            o.ib_status = ib_status
        o.transitions.append((target, o.ib_status, now, self.clock.now_utc()))
        o.last_ns = now
        o.view = None
        if self._replaying:
            return
        if journal:
            self.journal.record(
                "order_state",
                order_id=o.order_id,
                order_ref=o.order.order_ref,
                old=old,
                new=target,
                ib_status=o.ib_status,
                source=source,
                detail=detail,
            )
        self.bus.publish(OrderStateChanged(o.order_id, o.key, o.order.order_ref, old, target, o.ib_status, now, detail))
        if target.is_terminal:
            if self._terminal_changed is not None:
                self._terminal_changed.set()
            if o.broker_filled > o.fill_qty:
                # The broker reports fills whose executions we have not seen yet: fetch them if they stay missing.
                self._schedule_reconcile(
                    f"order {o.order_id}: {o.broker_filled - o.fill_qty} filled without executions"
                )
        self._request_publish()

    def _force(self, o: ManagedOrder, target: OrderState, ib_status: str, detail: str) -> None:
        """Reconciliation's verdict: the broker's answer wins, whatever the table says."""
        o.needs_reconcile = False
        if target is not o.state:
            self._apply(o, target, ib_status, "reconcile", detail)

    def _anomaly(self, o: ManagedOrder, text: str) -> None:
        self.anomaly_count += 1
        o.anomalies.append(text)
        o.needs_reconcile = True
        o.view = None
        if not self._replaying:
            log.warning("order %s anomaly: %s", o.order_id, text)
            self.journal.record("order_anomaly", order_id=o.order_id, order_ref=o.order.order_ref, text=text)
            self._schedule_reconcile(f"order {o.order_id}: {text}")
        self._request_publish()

    def _note(self, o: ManagedOrder, text: str) -> None:
        if not self._replaying:
            self.journal.record("order_note", order_id=o.order_id, text=text)

    def _note_ack(self, o: ManagedOrder, recv_ns: int) -> None:
        if not o.ack_ns:
            # The broker's first word on an order: `_hold` saw its "submit" record durable before this ran.
            o.ack_ns = recv_ns
            if o.submit_ns and not self._replaying:
                self._lat_ack.add(recv_ns - o.submit_ns)

    def _adopt(
        self, order: BrokerOrder, status: str, perm_id: int, source: str, *, placeholder: bool = False
    ) -> ManagedOrder:
        """An order the broker knows and Omega did not: tracked from now on, linked to its intent by orderRef.

        Its role is "adopted", unless the broker reported the whole order (`placeholder` False: an openOrder,
        not just an execution of it) and its orderRef is one of Omega's (`"{intent}:{role}[:k]"`): then it is
        Omega's own order whose "submit" record was lost (the journal's loss window, core/journal.py) and it
        gets its role back, so a stop-loss or take-profit counts as the position's protection again (else
        recovery would put a second protective pair beside it) and an entry as working exposure."""
        intent_id = order.order_ref.split(":", 1)[0] if ":" in order.order_ref else ""
        role = "adopted" if placeholder else _own_role(order.order_ref)
        o = ManagedOrder(order=order, role=role, intent_id=intent_id, perm_id=perm_id)
        self._orders[order.order_id] = o
        target = IB_STATUS.get(status, SUBMITTED)
        if target is PENDING_SUBMIT:
            target = SUBMITTED
        if not self._replaying:
            self.journal.record(
                "adopted", order=order_json(order), status=status, perm_id=perm_id, source=source, role=role
            )
            log.info(
                "adopted order %s (%s %s %s) from %s", order.order_id, order.action, order.quantity, order.key, source
            )
        self._apply(o, PENDING_SUBMIT, status, source, journal=False)
        if target is not PENDING_SUBMIT:
            self._apply(o, target, status, source, "adopted", journal=False)
        for report in self._orphan_status.pop(order.order_id, []):
            self.on_order_status(report)
        return o

    def _position(self, key: str) -> Position:
        pos = self._positions.get(key)
        if pos is None:
            inst = self.instruments.get(key)
            pos = Position(key, multiplier=max(1, inst.multiplier) if inst is not None else 1)
            self._positions[key] = pos
        return pos

    # ------------------------------------------------------------------ broker P&L reconciliation

    def on_broker_pnl(self, daily: Decimal | None, unrealized: Decimal | None, realized: Decimal | None) -> None:
        """The account's P&L from the broker (`reqPnL`); flags and journals a difference over one cent.

        Ours is marked at the broker's own mark of each position (its last portfolio row) where known, so two
        marks a tick apart are not read as a disagreement.
        """
        self._broker_daily, self._broker_unrealized, self._broker_realized = daily, unrealized, realized
        ours = ZERO
        for key, pos in self._positions.items():
            mark = pos.broker_mark if pos.broker_mark is not None else self.mark(key)
            ours += pos.net(mark)
        agrees = not differs(ours, daily)
        if agrees != self._pnl_agrees:
            self.journal.record("pnl_reconcile", agrees=agrees, ours=ours, broker_daily=daily)
            if not agrees:
                log.warning("P&L disagrees with the broker: ours %s, broker %s", f"{ours:.2f}", f"{daily:.2f}")
        self._pnl_agrees = agrees
        self._request_publish()

    def on_broker_position(
        self,
        key: str,
        qty: int,
        avg_cost: Decimal | None,
        unrealized: Decimal | None,
        realized: Decimal | None,
        market_price: Decimal | None = None,
    ) -> None:
        """One position from the broker's portfolio; flags and journals a disagreement.

        `avg_cost` is per unit (the broker's averageCost divided by the multiplier) and, as IB's, includes the
        open quantity's commissions; `market_price` is the broker's mark of the row. The comparison is made in
        IB's terms (see `core/positions.py`): the quantity exactly; the average cost, unrealised P&L **at the
        broker's mark** (ours when the broker sends none) and realised P&L each within one cent (the average
        cost as the open quantity's total cost, since IB sends a rounded float). Comparing at two different marks
        would flag every position whose quotes differ by a tick.

        A position the broker holds that Omega has never traded (carried from an earlier day or placed
        elsewhere) is adopted at the broker's average cost, once recovery has run.
        """
        pos = self._position(key)
        if (
            self._recovered
            and qty != 0
            and pos.quantity == 0
            and pos.fills == 0
            and avg_cost is not None
            and not any(o.key == key for o in self._orders.values())
        ):
            pos.quantity = qty
            pos.cost_basis = avg_cost * abs(qty)
            pos.open_commissions = ZERO  # already inside the broker's average cost
            self._pos_history.pop(key, None)
            self.journal.record("position_adopted", key=key, quantity=qty, avg_cost=avg_cost)
        pos.broker_quantity, pos.broker_avg_cost = qty, avg_cost
        pos.broker_unrealized, pos.broker_realized = unrealized, realized
        if market_price is not None and market_price > 0:
            pos.broker_mark = market_price
        mark = market_price if market_price is not None and market_price > 0 else self.mark(key)
        problems: list[str] = []
        if qty != pos.quantity:
            problems.append(f"quantity ours {pos.quantity}, broker {qty}")
        else:
            size = abs(qty) * pos.multiplier
            if qty and avg_cost is not None and differs(pos.ib_avg_cost * size, avg_cost * size):
                problems.append(f"average cost ours {pos.ib_avg_cost:.6f}, broker {avg_cost}")
            if unrealized is not None and mark is not None and differs(pos.ib_unrealized(mark), unrealized):
                problems.append(f"unrealised at {mark} ours {pos.ib_unrealized(mark):.2f}, broker {unrealized:.2f}")
            if realized is not None and differs(pos.ib_realized, realized):
                problems.append(f"realised ours {pos.ib_realized:.2f}, broker {realized:.2f}")
        agrees = not problems
        if agrees != pos.agrees:
            self.journal.record(
                "position_reconcile",
                key=key,
                agrees=agrees,
                quantity=pos.quantity,
                broker_quantity=qty,
                avg_cost=pos.ib_avg_cost,
                broker_avg_cost=avg_cost,
                mark=mark,
                unrealized=pos.ib_unrealized(mark),
                realized=pos.ib_realized,
                broker_unrealized=unrealized,
                broker_realized=realized,
                problems=problems,
            )
            if not agrees:
                log.warning("position %s disagrees with the broker: %s", key, "; ".join(problems))
        pos.agrees = agrees
        self._request_publish()

    # ------------------------------------------------------------------ recovery

    def replay_journal(self) -> None:
        """Rebuild today's orders, fills and positions from the journal, once.

        Call it before the broker connects: ib_async's startup sync already reports open orders and
        executions, which must find the journal's orders (not adopt them as unknown ones that the replay
        would then replace, losing their fills) and whose fills the journal already counted.
        """
        if not self._journal_replayed:
            self._replay_journal()
            self._journal_replayed = True

    async def recover(self) -> None:
        """On start and after every reconnect: rebuild from today's journal (once, if `replay_journal` has
        not), then reconcile with the broker's open orders and the day's executions. Unknown broker orders
        are adopted."""
        self.replay_journal()
        if self._snapshot is None:
            log.warning("order recovery: no broker snapshot source wired; journal state only")
        else:
            await self._reconcile("recover")
        self._recovered = True
        self._wake_queue()
        self.publish()

    def _replay_journal(self) -> None:
        day = self.clock.now_utc().strftime("%Y%m%d")
        self._replaying = True
        replayed = 0
        try:
            for rec in self.journal.read(since_day=day):
                try:
                    replayed += self._replay_record(rec)
                except (KeyError, TypeError, ValueError) as exc:
                    log.warning("journal record %s not replayed: %s", rec.get("kind"), exc)
        finally:
            self._replaying = False
        if replayed:
            self.journal.record("orders_replayed", records=replayed, orders=len(self._orders))

    def _replay_record(self, rec: dict[str, Any]) -> int:
        kind = rec.get("kind")
        if kind == "submit":
            for leg in rec["legs"]:
                order = _order_from(leg["order"])
                mo = ManagedOrder(order=order, role=leg["role"], intent_id=rec.get("intent_id", ""))
                self._orders[order.order_id] = mo
                self._apply(mo, PENDING_SUBMIT, "", "journal")
        elif kind == "adopted":
            order = _order_from(rec["order"])
            if order.order_id not in self._orders:
                status, perm_id = rec.get("status", "Submitted"), int(rec.get("perm_id", 0))
                self._adopt(order, status, perm_id, "journal", placeholder=rec.get("source") == "execDetails")
        elif kind == "order_state":
            o = self._orders.get(int(rec["order_id"]))
            if o is None:
                return 0
            self._apply(o, OrderState(rec["new"]), rec.get("ib_status", ""), "journal")
        elif kind == "modify":
            o = self._orders.get(int(rec["order_id"]))
            if o is None:
                return 0
            o.order = _order_from(rec["order"])
        elif kind == "cancel":
            o = self._orders.get(int(rec["order_id"]))
            if o is not None:
                o.cancel_requested = True
        elif kind == "fill":
            self.on_execution(_execution_from(rec["fill"]))
        elif kind == "commission":
            c = rec["commission"]
            self.on_commission(
                CommissionReport(
                    c["exec_id"], Decimal(c["commission"]), c["currency"], _dec(c.get("realized_pnl")), c["recv_ns"]
                )
            )
        elif kind == "pnl_day_reset":
            self._pos_history.clear()
            for pos in self._positions.values():
                pos.reset_day()
        else:
            return 0
        return 1

    async def _reconcile(self, reason: str) -> None:
        source = self._snapshot
        if source is None:
            return
        await self._journal_durable()  # held events first: the snapshot is judged against what they say
        started_ns = self.clock.monotonic_ns()
        open_orders = await source.open_orders()
        executions = await source.executions()
        for ex in executions:
            self.on_execution(ex)
        open_ids: set[int] = set()
        adopted = 0
        for report in open_orders:
            oid = report.order.order_id
            open_ids.add(oid)
            o = self._orders.get(oid)
            if o is None:
                self.on_open_order(report)
                adopted += 1
                continue
            if report.perm_id:
                o.perm_id = report.perm_id
            if o.modified_ns <= started_ns:  # (a modification sent since the request may not be in the answer)
                self._take_broker_figures(o, report.order, reason)
            target = IB_STATUS.get(report.status, SUBMITTED)
            if target is SUBMITTED and o.filled > 0:
                target = PARTIALLY_FILLED
            if o.needs_reconcile or TRANSITIONS.get((o.state, target)) is None:
                self._force(o, target, report.status, f"broker open order ({report.status})")
            else:
                self._transition(o, target, report.status, "reconcile")
        closed = 0
        for o in list(self._orders.values()):
            if not o.state.is_working or o.order_id in open_ids or o.submit_ns > started_ns:
                continue
            closed += 1
            if o.filled and o.filled >= o.order.quantity:  # (an OCA leg reduced to nothing was cancelled)
                self._force(o, FILLED, "Filled", "not open at the broker; fully filled")
            else:
                self._force(o, CANCELLED, "Cancelled", "not open at the broker")
        for o in self._orders.values():
            if o.needs_reconcile and o.order_id in open_ids:
                o.needs_reconcile = False
        self.journal.record(
            "reconcile",
            reason=reason,
            broker_open=len(open_orders),
            executions=len(executions),
            adopted=adopted,
            closed=closed,
            working=self.open_order_count(),
        )
        self._request_publish()

    def _take_broker_figures(self, o: ManagedOrder, theirs: BrokerOrder, reason: str) -> None:
        """Make an open order's quantity and prices the broker's when they differ (the broker holds the
        truth: e.g. a modification reached it but its journal record died with the engine, or it never arrived
        and the broker still works the old figures). Journaled as a "modify" record (`source: reconcile`), so
        a replay rebuilds the same order; nothing is sent. A figure the broker leaves unset (0 or none, e.g.
        a stop's limit price) is not one it disagrees on."""
        ours = o.order
        changes: dict[str, Any] = {}
        if theirs.quantity > 0 and theirs.quantity != ours.quantity:
            changes["quantity"] = theirs.quantity
        kind = ours.order_type
        names = (("limit_price",) if kind in _LIMIT_TYPES else ()) + (("aux_price",) if kind in _AUX_TYPES else ())
        for name in names:  # the prices this order type has: IB reports the others as 0 or unset, or echoes junk
            price: Decimal | None = getattr(theirs, name)
            if price and price != getattr(ours, name):
                changes[name] = price
        if not changes:
            return
        new = replace(ours, **changes)
        before = {name: _json_value(getattr(ours, name)) for name in changes}
        after = {name: _json_value(value) for name, value in changes.items()}
        self.journal.record(
            "modify", order_id=o.order_id, order=order_json(new), source="reconcile", reason=reason, before=before
        )
        o.order = new
        o.view = None
        text = f"broker's figures taken at reconciliation: {before} -> {after}"
        log.warning("order %s (%s): %s", o.order_id, ours.order_ref, text)
        self._request_publish()

    async def _journal_durable(self) -> None:
        """Until every record so far is durable and the events it held are processed (bounded)."""
        seq = self.journal.seq
        if seq <= self.journal.durable_seq:
            return
        done = asyncio.get_running_loop().create_future()

        def durable() -> None:
            if not done.done():
                done.set_result(None)

        if not self.journal.when_durable(seq, durable):
            try:
                await asyncio.wait_for(done, timeout=self.execution.cancel_all_timeout_s)
            except TimeoutError:
                log.warning("order reconciliation: journal record %d not durable in time; going on", seq)

    def _schedule_reconcile(self, reason: str) -> None:
        if self._replaying or self._snapshot is None or self._reconcile_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._reconcile_handle = loop.call_later(self.execution.reconcile_delay_s, self._start_reconcile, reason)

    def _start_reconcile(self, reason: str) -> None:
        self._reconcile_handle = None
        if self._reconcile_task is not None and not self._reconcile_task.done():
            return
        self._reconcile_task = asyncio.get_running_loop().create_task(self._reconcile_logged(reason))

    async def _reconcile_logged(self, reason: str) -> None:
        try:
            await self._reconcile(reason)
        except Exception:
            log.exception("order reconciliation (%s) failed", reason)

    async def reconcile_now(self, reason: str = "requested") -> None:
        """Reconcile with the broker snapshot immediately (tests, operator command)."""
        await self._reconcile(reason)

    # ------------------------------------------------------------------ alerts

    def _alert(self, text: str) -> None:
        self.alerts.append(text)
        log.error("%s", text)
        self.journal.record("alert", source="orders", text=text)
        if self._event_log is not None:
            self._event_log("error", "order", text)
        else:
            lines = list(self.hot_state.get("events", []) or [])
            stamp = self.clock.now_utc().isoformat(timespec="milliseconds")
            lines.append(EventLine(at_utc=stamp, level="error", kind="order", text=text))
            self.hot_state.set("events", lines[-200:])

    # ------------------------------------------------------------------ hot state

    def _on_quote(self, event: QuoteUpdated) -> None:
        if self._protect_waiting and event.quote.key in self._protect_waiting:
            self._protect(event.quote.key, self._protect_waiting[event.quote.key])
        pos = self._positions.get(event.quote.key)
        if pos is not None and pos.quantity != 0:
            self._request_publish(throttled=True)

    def _request_publish(self, *, throttled: bool = False) -> None:
        self._views_dirty = True
        if self._publish_soon or self._publish_handle is not None or self._replaying:
            return
        if throttled:
            wait_ns = self._last_publish_ns + self.execution.pnl_publish_ms * 1_000_000 - self.clock.monotonic_ns()
            if wait_ns > 0:
                loop = asyncio._get_running_loop()
                if loop is not None:
                    self._publish_handle = loop.call_later(wait_ns / 1e9, self._publish_scheduled)
                return
        # After this step, in the journal's end-of-step callback (one per step for the fill's record and this);
        # without a loop the caller publishes explicitly.
        self._publish_soon = self.journal.after_step(self._publish_scheduled)

    def _publish_scheduled(self) -> None:
        if self._publish_handle is not None:
            self._publish_handle.cancel()
            self._publish_handle = None
        self._publish_soon = False
        self.publish()

    def publish(self) -> None:
        """Write the `orders`, `positions`, `pnl` and `latency` sections now."""
        self._views_dirty = False
        self._last_publish_ns = self.clock.monotonic_ns()
        self.hot_state.set("orders", self._order_views())
        pos_views: dict[str, PositionView] = {}
        realized = unrealized = commissions = ZERO
        for key, pos in self._positions.items():
            mark = self.mark(key)
            unreal = pos.unrealized(mark)
            realized += pos.realized
            unrealized += unreal
            commissions += pos.commissions
            pos_views[key] = PositionView(
                key=key,
                quantity=pos.quantity,
                avg_cost=str(pos.avg_cost),
                mark=None if mark is None else str(mark),
                unrealized=str(unreal),
                realized=str(pos.realized),
                commissions=str(pos.commissions),
                broker_quantity=pos.broker_quantity,
                broker_unrealized=_str(pos.broker_unrealized),
                broker_realized=_str(pos.broker_realized),
                agrees=pos.agrees,
            )
        self.hot_state.set("positions", pos_views)
        self.hot_state.set(
            "pnl",
            PnLView(
                realized=str(realized),
                unrealized=str(unrealized),
                commissions=str(commissions),
                total=str(realized + unrealized - commissions),
                broker_daily=_str(self._broker_daily),
                agrees=self._pnl_agrees and all(p.agrees for p in self._positions.values()),
            ),
        )
        self.hot_state.set("latency", self.latency_view())

    def latency_view(self) -> LatencyView:
        return LatencyView(
            submit_to_ack_p50_us=self._lat_ack.percentile(0.5),
            submit_to_ack_p99_us=self._lat_ack.percentile(0.99),
            submit_to_fill_p50_us=self._lat_fill.percentile(0.5),
            submit_to_fill_p99_us=self._lat_fill.percentile(0.99),
            fill_to_commission_p50_us=self._lat_commission.percentile(0.5),
            fill_to_commission_p99_us=self._lat_commission.percentile(0.99),
            samples=self._lat_ack.count + self._lat_fill.count + self._lat_commission.count,
        )

    def _order_views(self) -> list[OrderView]:
        """Working orders and the `TERMINAL_KEPT` most recently finished ones (by `last_ns`, ties to the later
        known), by order id. Reads the working index and the end of the finished index, not the whole day."""
        book = self._orders
        if book.finished_unordered:
            done = [o for o in book.values() if not o.state.is_working]
        else:
            # The finished index is in `last_ns` order; besides the last TERMINAL_KEPT, take the ones tied
            # with the oldest of them (the tie-break below may prefer them).
            done = []
            boundary = -1
            finished = book.finished
            newer = math.inf
            for oid in reversed(finished):
                o = finished[oid]
                if len(done) >= TERMINAL_KEPT and o.last_ns != boundary:
                    break
                if o.last_ns > newer:  # a clock that went back: the index is not in order, scan everything
                    done = [o for o in book.values() if not o.state.is_working]
                    break
                newer = o.last_ns
                done.append(o)
                if len(done) == TERMINAL_KEPT:
                    boundary = o.last_ns
        rank = book.rank
        done.sort(key=lambda o: (o.last_ns, rank[o.order_id]))
        shown = sorted([*book.working.values(), *done[-TERMINAL_KEPT:]], key=lambda o: o.order_id)
        return [self._view(o) for o in shown]

    def _view(self, o: ManagedOrder) -> OrderView:
        if o.view is None:
            avg = o.avg_fill_price
            o.view = OrderView(
                order_id=o.order_id,
                perm_id=o.perm_id,
                parent_id=o.order.parent_id,
                key=o.key,
                order_ref=o.order.order_ref,
                role=o.role,
                side=o.order.action.value,
                order_type=o.order.order_type.value,
                quantity=o.order.quantity,
                filled=o.filled,
                remaining=o.remaining,
                limit_price=_str(o.order.limit_price),
                aux_price=_str(o.order.aux_price),
                avg_fill_price=_str(avg),
                state=o.state.value,
                ib_status=o.ib_status,
                transitions=_transition_views(o.transitions),
                anomalies=list(o.anomalies),
            )
        return o.view


# ------------------------------------------------------------------------------------ journal decoding


def _orders_of(legs: list[_Leg], ids: list[int]) -> list[BrokerOrder]:
    """A group's `BrokerOrder`s under `ids` (its parents' ids filled in), without the frozen `__init__`'s cost."""
    return [
        new_broker_order_from(ids[i], 0 if leg.parent is None else ids[leg.parent], leg.values)
        for i, leg in enumerate(legs)
    ]


def _own_role(order_ref: str) -> str:
    """The role in one of Omega's orderRefs (`"{intent}:{role}"`, `"{intent}:{role}:{k}"`), else "adopted"."""
    parts = order_ref.split(":")
    return parts[1] if len(parts) in (2, 3) and parts[1] in OWN_ROLES else "adopted"


def _shrank(before: int, after: int) -> bool:
    """Whether a fill shrank a position or flipped its side: only then can protection come to exceed it
    (from flat there is nothing to exceed: protection was fitted away when the position closed)."""
    return before != 0 and (abs(after) < abs(before) or (before > 0) != (after > 0))


def _exec_version(exec_id: str) -> tuple[int, str]:
    """The last suffix of an execId, comparable: IB's corrections raise it (`.01` → `.02`)."""
    suffix = exec_id.rpartition(".")[2]
    return len(suffix), suffix


def _grid(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).to_integral_value(rounding) * tick


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _json_value(value: object) -> object:
    return str(value) if isinstance(value, Decimal) else value


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def order_json(o: BrokerOrder) -> dict[str, Any]:
    """A BrokerOrder as plain JSON values (hand-written: `dataclasses.asdict` costs ~10x on the hot path)."""
    return {
        "order_id": o.order_id,
        "key": o.key,
        "con_id": o.con_id,
        "action": str(o.action),
        "quantity": o.quantity,
        "order_type": str(o.order_type),
        "limit_price": _str(o.limit_price),
        "aux_price": _str(o.aux_price),
        "tif": o.tif,
        "parent_id": o.parent_id,
        "oca_group": o.oca_group,
        "oca_type": o.oca_type,
        "transmit": o.transmit,
        "order_ref": o.order_ref,
        "algo_strategy": o.algo_strategy,
        "algo_params": [list(p) for p in o.algo_params],
        "what_if": o.what_if,
        "account": o.account,
    }


def _intent_record(group: _Group) -> dict[str, Any] | None:
    record = group.intent_record
    if isinstance(record, OrderIntent):
        return intent_json(record) | {"groups": group.groups}
    return record


def intent_json(i: OrderIntent) -> dict[str, Any]:
    return {
        "intent_id": i.intent_id,
        "key": i.key,
        "side": str(i.side),
        "quantity": i.quantity,
        "limit_price": _str(i.limit_price),
        "take_profit": _str(i.take_profit),
        "stop_loss": _str(i.stop_loss),
        "source": str(i.source),
        "created_ns": i.created_ns,
        "order_type": str(i.order_type),
        "reduce_only": i.reduce_only,
        "adaptive_priority": i.adaptive_priority,
        "model": i.model,
        "reason": i.reason,
    }


def execution_json(e: ExecutionReport) -> dict[str, Any]:
    return {
        "exec_id": e.exec_id,
        "order_id": e.order_id,
        "perm_id": e.perm_id,
        "key": e.key,
        "con_id": e.con_id,
        "side": str(e.side),
        "quantity": e.quantity,
        "price": str(e.price),
        "cum_qty": e.cum_qty,
        "avg_price": str(e.avg_price),
        "time_utc": e.time_utc.isoformat(),
        "recv_ns": e.recv_ns,
        "order_ref": e.order_ref,
        "client_id": e.client_id,
    }


def _fill_fields(e: ExecutionReport) -> dict[str, Any]:
    return {"fill": execution_json(e)}


def commission_json(c: CommissionReport) -> dict[str, Any]:
    return {
        "exec_id": c.exec_id,
        "commission": str(c.commission),
        "currency": c.currency,
        "realized_pnl": _str(c.realized_pnl),
        "recv_ns": c.recv_ns,
    }


def _transition_views(transitions: list[tuple[OrderState, str, int, datetime]]) -> list[TransitionView]:
    views: list[TransitionView] = []
    prev_ns = transitions[0][2] if transitions else 0
    for state, ib_status, at_ns, at_utc in transitions:
        views.append(
            TransitionView(
                state=state.value,
                ib_status=ib_status,
                at_utc=at_utc.isoformat(timespec="microseconds"),
                at_ns=at_ns,
                since_prev_us=(at_ns - prev_ns) // 1000,
            )
        )
        prev_ns = at_ns
    return views


def _order_from(d: Mapping[str, Any]) -> BrokerOrder:
    """A BrokerOrder back from its journal form (Decimals as strings, enums as values, tuples as lists)."""
    return BrokerOrder(
        order_id=int(d["order_id"]),
        key=d["key"],
        con_id=int(d["con_id"]),
        action=Side(d["action"]),
        quantity=int(d["quantity"]),
        order_type=OrderType(d["order_type"]),
        limit_price=_dec(d.get("limit_price")),
        aux_price=_dec(d.get("aux_price")),
        tif=d.get("tif", "DAY"),
        parent_id=int(d.get("parent_id", 0)),
        oca_group=d.get("oca_group", ""),
        oca_type=int(d.get("oca_type", 0)),
        transmit=bool(d.get("transmit", True)),
        order_ref=d.get("order_ref", ""),
        algo_strategy=d.get("algo_strategy", ""),
        algo_params=tuple((str(k), str(v)) for k, v in d.get("algo_params", ())),
        what_if=bool(d.get("what_if", False)),
        account=d.get("account", ""),
    )


def _execution_from(d: Mapping[str, Any]) -> ExecutionReport:
    return ExecutionReport(
        exec_id=d["exec_id"],
        order_id=int(d["order_id"]),
        perm_id=int(d.get("perm_id", 0)),
        key=d["key"],
        con_id=int(d.get("con_id", 0)),
        side=Side(d["side"]),
        quantity=int(d["quantity"]),
        price=Decimal(d["price"]),
        cum_qty=int(d.get("cum_qty", 0)),
        avg_price=Decimal(d.get("avg_price", d["price"])),
        time_utc=datetime.fromisoformat(d["time_utc"]),
        recv_ns=int(d.get("recv_ns", 0)),
        order_ref=d.get("order_ref", ""),
        client_id=int(d.get("client_id", 0)),
    )
