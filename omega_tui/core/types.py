"""Omega's domain model: values, events and commands shared by every engine.

Everything here is a frozen dataclass or an enum, with no behaviour beyond small derived properties, so the
hot path can pass these objects between engines without copying or locking. Prices and quantities that can
reach the broker are exact: `Decimal` prices (on the contract's tick grid once they leave the signal
generator) and `int` quantities. Times are monotonic nanoseconds for latency and timezone-aware UTC
datetimes for display and the journal.

Names follow DESIGN §5: events are past tense (`QuoteUpdated`), commands imperative (`Halt`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

# --------------------------------------------------------------------------------------------- enums


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderState(enum.StrEnum):
    """Omega's order states (DESIGN §5); IB's raw status is kept beside them."""

    NEW = "NEW"
    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    INACTIVE = "INACTIVE"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_ORDER_STATES

    @property
    def is_working(self) -> bool:
        return self not in _TERMINAL_ORDER_STATES  # (not `not self.is_terminal`: hot path, one call fewer)


_TERMINAL_ORDER_STATES = frozenset({OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.INACTIVE})


class TradingState(enum.StrEnum):
    """The risk engine's trading state: ACTIVE, REDUCING (only orders that shrink a position), HALTED."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class ConnectionState(enum.StrEnum):
    DOWN = "DOWN"
    CONNECTING = "CONNECTING"
    UP = "UP"
    DEGRADED = "DEGRADED"  # socket up, but IB says connectivity or a data farm is lost (1100, 2103, 2110…)


class ComponentState(enum.StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    DEGRADED = "DEGRADED"
    FAILED = "FAILED"
    STOPPING = "STOPPING"


class OrderType(enum.StrEnum):
    LMT = "LMT"
    MKT = "MKT"
    STP = "STP"
    STP_LMT = "STP LMT"
    TRAIL = "TRAIL"


class IntentSource(enum.StrEnum):
    STRATEGY = "strategy"
    MANUAL = "manual"
    FLATTEN = "flatten"
    VALIDATION = "validation"


# ------------------------------------------------------------------------------------------ instruments


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """An instrument as configured in `[instruments]`: what to ask IB for. `key` is Omega's unique name."""

    key: str
    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    currency: str = "USD"
    primary_exchange: str = ""
    expiry: str = ""  # lastTradeDateOrContractMonth, e.g. "202612"
    strike: float = 0.0
    right: str = ""  # "C" / "P" for options
    multiplier: str = ""
    watch_only: bool = False


@dataclass(frozen=True, slots=True)
class VerifiedInstrument:
    """An instrument resolved by `reqContractDetails` at startup and checked for trading permission."""

    spec: InstrumentSpec
    con_id: int
    min_tick: Decimal
    multiplier: int
    exchange: str
    primary_exchange: str
    currency: str
    long_name: str
    time_zone: str
    trading_hours: str
    order_types: tuple[str, ...]
    permission_ok: bool
    permission_detail: str = ""

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def tradable(self) -> bool:
        return self.permission_ok and not self.spec.watch_only


# ---------------------------------------------------------------------------------------------- quotes


class QuoteFlag(enum.IntFlag):
    NONE = 0
    CROSSED = 1  # bid > ask
    LOCKED = 2  # bid == ask
    STALE = 4  # no update for `market_data.stale_after_s`, or the data farm is down
    DELAYED = 8  # delayed or frozen market data type
    REJECTED_PRICE = 16  # this update carried a price the normalizer refused (zero, off-grid, outlier)


@dataclass(frozen=True, slots=True)
class Quote:
    """One instrument's latest normalized market data. Missing values are `None`, never NaN or -1."""

    key: str
    seq: int
    recv_ns: int  # monotonic, when ib_async handed us the update
    recv_utc: datetime
    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None
    bid_size: int | None = None
    ask_size: int | None = None
    last_size: int | None = None
    volume: int | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    close: Decimal | None = None  # previous session's close
    market_data_type: int = 1  # 1 live, 2 frozen, 3 delayed, 4 delayed-frozen
    flags: QuoteFlag = QuoteFlag.NONE

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2

    @property
    def spread(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return self.ask - self.bid

    @property
    def stale(self) -> bool:
        return bool(self.flags & QuoteFlag.STALE)

    @property
    def mark(self) -> Decimal | None:
        """The price positions are marked at: mid when two-sided and not crossed, else last."""
        if self.bid is not None and self.ask is not None and not self.flags & QuoteFlag.CROSSED:
            return (self.bid + self.ask) / 2
        return self.last


@dataclass(frozen=True, slots=True)
class Bar:
    key: str
    start_utc: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


# ---------------------------------------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What the signal generator or the order ticket wants: an entry, normally with both protective legs.

    `take_profit` and `stop_loss` are absolute prices on the tick grid. A flatten or reduce intent has
    `reduce_only=True` and no protective legs.
    """

    intent_id: str
    key: str
    side: Side
    quantity: int
    limit_price: Decimal | None  # None only for a market order, which the risk engine refuses by default
    take_profit: Decimal | None
    stop_loss: Decimal | None
    source: IntentSource
    created_ns: int
    order_type: OrderType = OrderType.LMT
    reduce_only: bool = False
    adaptive_priority: str = "Normal"  # Patient / Normal / Urgent
    model: str = ""
    reason: str = ""

    @property
    def has_bracket(self) -> bool:
        return self.take_profit is not None and self.stop_loss is not None


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    """One order exactly as it goes to the broker (what `placeOrder` carries)."""

    order_id: int
    key: str
    con_id: int
    action: Side
    quantity: int
    order_type: OrderType
    limit_price: Decimal | None = None
    aux_price: Decimal | None = None  # stop price for STP / STP LMT, trailing amount for TRAIL
    tif: str = "DAY"
    parent_id: int = 0
    oca_group: str = ""
    oca_type: int = 0
    transmit: bool = True
    order_ref: str = ""
    algo_strategy: str = ""
    algo_params: tuple[tuple[str, str], ...] = ()
    what_if: bool = False
    account: str = ""


class _BrokerOrderSlots:
    """BrokerOrder's memory layout (the same slots) without the frozen `__setattr__`: `new_broker_order_from` fills
    one with plain attribute stores and then makes it a BrokerOrder (`__class__` assignment, which CPython
    allows between classes with the same slots). Never seen outside that function."""

    __slots__ = tuple(BrokerOrder.__dataclass_fields__)


_new_object = object.__new__
_ORDER_FIELDS = frozenset(BrokerOrder.__dataclass_fields__)
_ORDER_DEFAULTS = {name: f.default for name, f in BrokerOrder.__dataclass_fields__.items()}


# The fields of a BrokerOrder but its ids, in declaration order: a leg built before its ids are taken (the order
# manager's bracket legs) is a tuple of these values (`leg_values`, `new_broker_order_from`).
LEG_FIELDS: tuple[str, ...] = tuple(
    name for name in BrokerOrder.__dataclass_fields__ if name not in ("order_id", "parent_id")
)
_REQUIRED_LEG_FIELDS = frozenset(("key", "con_id", "action", "quantity", "order_type"))


def leg_values(fields: Mapping[str, Any]) -> tuple[Any, ...]:
    """`fields` (BrokerOrder fields but the ids; the rest default) as the tuple `new_broker_order_from` takes.
    An unknown name raises TypeError, a missing required one KeyError."""
    if not fields.keys() <= _ORDER_FIELDS - {"order_id", "parent_id"}:
        raise TypeError(f"not a BrokerOrder leg field: {sorted(fields.keys() - set(LEG_FIELDS))}")
    missing = _REQUIRED_LEG_FIELDS - fields.keys()
    if missing:
        raise KeyError(f"BrokerOrder leg without {sorted(missing)}")
    return tuple(fields[name] if name in fields else _ORDER_DEFAULTS[name] for name in LEG_FIELDS)


def new_broker_order_from(order_id: int, parent_id: int, values: tuple[Any, ...]) -> BrokerOrder:
    """`BrokerOrder(order_id, parent_id=parent_id, **dict(zip(LEG_FIELDS, values)))`, the same object (type,
    equality, hash, repr, immutability), built from the values in `LEG_FIELDS` order with plain attribute
    stores (one unpacking, no name lookups) instead of the frozen dataclass's `__init__`, which sets each of its
    18 fields through `object.__setattr__`: the order manager's bracket legs, built between the intent and the
    write. Anything but exactly `len(LEG_FIELDS)` values raises ValueError."""
    o: Any = _new_object(_BrokerOrderSlots)
    (
        o.key,
        o.con_id,
        o.action,
        o.quantity,
        o.order_type,
        o.limit_price,
        o.aux_price,
        o.tif,
        o.oca_group,
        o.oca_type,
        o.transmit,
        o.order_ref,
        o.algo_strategy,
        o.algo_params,
        o.what_if,
        o.account,
    ) = values
    o.order_id = order_id
    o.parent_id = parent_id
    o.__class__ = BrokerOrder
    return o  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class OrderStatusReport:
    """IB's orderStatus, normalized (the broker layer makes these from ib_async's callbacks)."""

    order_id: int
    status: str  # IB's raw status: PendingSubmit, PreSubmitted, Submitted, Filled, Cancelled, Inactive…
    filled: int
    remaining: int
    avg_fill_price: Decimal | None
    perm_id: int
    parent_id: int
    last_fill_price: Decimal | None
    recv_ns: int
    why_held: str = ""


@dataclass(frozen=True, slots=True)
class OpenOrderReport:
    """IB's openOrder, normalized: what the broker says the order is."""

    order: BrokerOrder
    status: str
    perm_id: int
    client_id: int
    recv_ns: int


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """IB's execDetails, normalized. `exec_id` identifies the fill; it is counted once."""

    exec_id: str
    order_id: int
    perm_id: int
    key: str
    con_id: int
    side: Side
    quantity: int
    price: Decimal
    cum_qty: int
    avg_price: Decimal
    time_utc: datetime
    recv_ns: int
    order_ref: str = ""
    client_id: int = 0


@dataclass(frozen=True, slots=True)
class CommissionReport:
    exec_id: str
    commission: Decimal
    currency: str
    realized_pnl: Decimal | None
    recv_ns: int


@dataclass(frozen=True, slots=True)
class BrokerError:
    """An `error` message from IB. `req_id` is -1 for system notices, else a request or order id."""

    req_id: int
    code: int
    message: str
    recv_ns: int
    advanced: str = ""


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class QuoteUpdated:
    quote: Quote


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    state: ConnectionState
    detail: str
    at_utc: datetime
    host: str = ""
    port: int = 0


@dataclass(frozen=True, slots=True)
class ApiErrorReceived:
    error: BrokerError


@dataclass(frozen=True, slots=True)
class OrderStateChanged:
    order_id: int
    key: str
    order_ref: str
    old: OrderState
    new: OrderState
    ib_status: str
    at_ns: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FillReceived:
    fill: ExecutionReport


@dataclass(frozen=True, slots=True)
class FillCorrected:
    """IB corrected an execution: `fill` (same execId base, higher last suffix) replaces `replaces`.

    Positions and P&L were recomputed with the corrected quantity and price; it is not an extra fill."""

    fill: ExecutionReport
    replaces: ExecutionReport


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The risk engine's answer to one intent: approved, or the named rule that denied it and why."""

    intent_id: str
    approved: bool
    rule: str  # "" when approved
    reason: str
    at_ns: int


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """Every change of trading state, with who or what caused it, why and when (a halt is one of these)."""

    old: TradingState
    new: TradingState
    source: str  # "operator:key", "control:halt", "rule:max_daily_loss", "api_error:1100", …
    reason: str
    at_utc: datetime


@dataclass(frozen=True, slots=True)
class ComponentStatusChanged:
    name: str
    state: ComponentState
    detail: str
    at_utc: datetime


# -------------------------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop trading now: latch HALTED, persist it, cancel every working order. No confirmation."""

    source: str
    reason: str = "operator halt"


@dataclass(frozen=True, slots=True)
class Flatten:
    """Halt, cancel every order including bracket children, then close every position."""

    source: str
    reason: str = "operator flatten"


@dataclass(frozen=True, slots=True)
class Resume:
    """Re-arm after a halt. Refused while a limit is still breached."""

    source: str
    reason: str = "operator resume"


@dataclass(frozen=True, slots=True)
class CancelOrder:
    order_id: int
    source: str


@dataclass(frozen=True, slots=True)
class CancelAll:
    source: str


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    intent: OrderIntent


Command = Halt | Flatten | Resume | CancelOrder | CancelAll | PlaceOrder


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The engine's answer to a command, for the UI and for control commands from another terminal."""

    command_id: str
    ok: bool
    message: str
    at_utc: datetime
    details: dict[str, object] = field(default_factory=dict)
