"""The risk engine: trading state, pre-trade checks, limits that halt, and the kill switches (checklist §6).

Every order intent, from the signal generator or the manual ticket, goes through `RiskEngine.submit`, which
runs `check`, journals the decision and calls the order manager only on approval. Nothing else may call the
order manager's `submit`.

Trading states (DESIGN §5): ACTIVE; REDUCING (only orders that shrink a position); HALTED (no new orders;
only the flatten procedure's reduce-only orders, and cancels, which do not pass here). A halt is latched:
it is written through to the state directory before anything else happens, restored by the next engine
over the same directory, and cleared only by an operator's `resume`, which is refused while a limit is still
breached.

Post-trade monitors (bus subscribers, active between `start` and `stop`): the day's P&L on fills and on
quotes of instruments with a position (max daily loss → HALTED, then flatten if configured); a position
beyond its limit after a fill → REDUCING; a critical IB error code → HALTED and the broker's disconnect; a
lost connection → HALTED. Trading stays halted after reconnection until an operator resumes.

Positions are protected again after a resume: the halt cancels every bracket stop and take-profit, so a
successful `resume` (ACTIVE or REDUCING) calls the order manager's `protect_positions`, which gives every
open position without working protection an OCA stop-loss + take-profit pair. While HALTED nothing is placed,
so open positions have no stop: after the halt's cancel-all (and after recovery into a persisted halt, see
`core/wiring.py`) the event log warns "N positions unprotected while HALTED" (`warn_unprotected`).

The order manager is reached through `ExposureView`, so tests use a fake. Exposure is projected
conservatively: position + working orders in this order's direction + this order. Working entries come
from the order manager (`working_entry_qty`, one signed net figure, protective children excluded); working
reduce-only and flatten orders, which it does not count, are tracked here from their approval until the
order manager reports them terminal (`OrderStateChanged`, matched by the `<intent_id>:` order_ref prefix)
or filled. Because a net figure over entries in both directions would hide exposure, the
`opposing_working_orders` rule refuses an order against a working entry of the other side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from omega_tui.config import Settings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import Clock
from omega_tui.core.component import Component
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.throttle import TokenBucket
from omega_tui.core.trading_day import TradingDay
from omega_tui.core.types import (
    ApiErrorReceived,
    CommandResult,
    ComponentState,
    ConnectionChanged,
    ConnectionState,
    FillCorrected,
    FillReceived,
    Flatten,
    Halt,
    IntentSource,
    OrderIntent,
    OrderStateChanged,
    OrderType,
    Quote,
    QuoteFlag,
    QuoteUpdated,
    Resume,
    RiskDecision,
    Side,
    TradingState,
    TradingStateChanged,
    VerifiedInstrument,
)
from omega_tui.core.views import EventLine, LimitView, RiskView

log = logging.getLogger(__name__)

ZERO = Decimal(0)
HUNDRED = Decimal(100)

# Rule names, as they appear in RiskDecision.rule, the journal and the UI.
RULE_TRADING_STATE = "trading_state"
RULE_TRADING_ENABLED = "trading_enabled"
RULE_QUANTITY = "quantity"
RULE_INSTRUMENT = "instrument"
RULE_REDUCE_ONLY = "reduce_only"
RULE_ORDER_TYPE = "order_type"
RULE_MARKET_ORDERS = "market_orders"
RULE_PRICE_GRID = "price_grid"
RULE_BRACKET = "bracket_required"
RULE_MAX_ORDER_QTY = "max_order_qty"
RULE_OPPOSING = "opposing_working_orders"
RULE_QUOTE = "quote"
RULE_PRICE_COLLAR = "price_collar"
RULE_MAX_ORDER_NOTIONAL = "max_order_notional"
RULE_MAX_POSITION_QTY = "max_position_qty"
RULE_MAX_POSITION_NOTIONAL = "max_position_notional"
RULE_MAX_OPEN_ORDERS = "max_open_orders"
RULE_ORDER_RATE = "order_rate"

# Sources that may never re-arm trading: resuming is an operator's decision.
_AUTOMATED_SOURCES = ("rule:", "api_error:", "connection:", "strategy", "system")
# The gauges are republished at most this often unless the trading state changes (then at once).
VIEW_INTERVAL_S = 0.05
# How often the flatten procedure looks at positions and working orders between repricings.
FLATTEN_POLL_S = 0.05
EVENT_LOG_LINES = 200
_BAD_QUOTE = QuoteFlag.STALE | QuoteFlag.CROSSED
# Enum members as module globals: the hot path reads them many times per check, and a global is cheaper.
_HALTED, _REDUCING = TradingState.HALTED, TradingState.REDUCING
_FLATTEN = IntentSource.FLATTEN
_MKT, _LMT = OrderType.MKT, OrderType.LMT
_BUY = Side.BUY


class PositionLike(Protocol):
    """What the risk engine reads of one position (the order manager's `Position`)."""

    @property
    def quantity(self) -> int: ...

    @property
    def avg_cost(self) -> Decimal: ...

    @property
    def realized(self) -> Decimal: ...

    @property
    def commissions(self) -> Decimal: ...

    def unrealized(self, mark: Decimal) -> Decimal: ...


class ExposureView(Protocol):
    """The order manager as the risk engine uses it.

    `working_entry_qty` is the signed remaining quantity of working orders that are not protective
    children, reduce-only and flatten orders included: the flatten procedure relies on it to never have
    two closing orders working at once.
    """

    def submit(self, intent: OrderIntent) -> list[int]: ...

    def cancel(self, order_id: int) -> bool: ...

    def begin_cancel_all(self, reason: str) -> Any:
        """Send the global cancel now; returns what `finish_cancel_all` waits for (see OrderManager)."""
        ...

    async def finish_cancel_all(self, reason: str, begun: Any) -> bool: ...

    def protect_positions(self, reason: str) -> list[int]: ...

    def unprotected_positions(self) -> list[str]: ...

    def position_qty(self, key: str) -> int: ...

    def working_entry_qty(self, key: str) -> int: ...

    def open_order_count(self) -> int: ...

    def positions(self) -> Mapping[str, PositionLike]: ...

    def day_pnl(self) -> tuple[Decimal, Decimal, Decimal]: ...


@dataclass(frozen=True, slots=True)
class HaltLatch:
    """The persisted halt: who or what halted, why, and when (ISO UTC)."""

    source: str
    reason: str
    at_utc: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "reason": self.reason, "at_utc": self.at_utc}

    @classmethod
    def from_value(cls, value: Any) -> HaltLatch | None:
        """The latch read from the state directory, or None when there is none (or it is unreadable)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(str(value["source"]), str(value["reason"]), str(value["at_utc"]))
        except KeyError:
            return None


@dataclass(slots=True)
class _DayCounters:
    """The trading day's counters; persisted as `safety:risk_day` so a restart within the day keeps them."""

    label: str
    carried_realized: Decimal = ZERO  # realised P&L of this day from earlier engine processes
    carried_commissions: Decimal = ZERO
    orders_sent: int = 0
    denied: int = 0


@dataclass(slots=True)
class _Closing:
    """A working reduce-only or flatten order, which the order manager's `working_entry_qty` leaves out."""

    key: str
    signed_remaining: int
    order_ids: set[int]


def _fmt_qty(qty: int) -> str:
    return f"{qty:+,d}" if qty else "0"


def _fmt_money(value: Decimal) -> str:
    return f"{value:,.2f}"


class RiskEngine(Component):
    """Trading state, pre-trade checks, post-trade monitors and the kill switches.

    The runtime must: `set_instruments` with the verified instruments (before any intent), `set_disconnect`
    with the broker session's disconnect, route Halt/Flatten/Resume commands to `handle`, and call `submit`
    (never the order manager) for every intent. Stop the risk engine before the broker session, or the
    broker's shutdown reads as a lost connection and latches a halt.
    """

    name = "risk"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        bus: EventBus,
        hot_state: HotState,
        journal: Journal,
        orders: ExposureView,
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(clock)
        self._settings = settings
        self._risk = settings.risk
        self._execution = settings.execution
        self._bus = bus
        self._hot = hot_state
        self._journal = journal
        self._orders = orders
        # Injected so tests drive the flatten procedure with a fake clock instead of real sleeps.
        self._sleep: Callable[[float], Awaitable[None]] = sleep or asyncio.sleep
        self._instruments: dict[str, VerifiedInstrument] = {}
        self._disconnect: Callable[[str], None] | None = None
        self._event_log: Callable[[str, str, str], None] | None = None

        r = self._risk
        self._max_daily_loss = Decimal(str(r.max_daily_loss))
        self._max_position_notional = Decimal(str(r.max_position_notional))
        self._max_order_notional = Decimal(str(r.max_order_notional))
        self._collar = Decimal(str(r.price_collar_pct)) / HUNDRED
        self._max_quote_age_ns = int(r.max_quote_age_s * 1e9)
        self._critical_codes = frozenset(r.critical_error_codes)
        self._warn = r.warn_pct / 100.0
        self._tz = ZoneInfo(r.day_reset_tz)
        self._rate_1s = TokenBucket(clock, r.max_orders_per_second, 1.0)
        self._rate_1m = TokenBucket(clock, r.max_orders_per_minute, 60.0)

        # Trading state. A persisted halt wins over everything: the engine starts HALTED with its story.
        self._state = TradingState.ACTIVE
        self._state_source = "system:start"
        self._state_reason = "engine started"
        self._state_since = clock.now_utc().isoformat()
        latch = HaltLatch.from_value(hot_state.read_safety("halt"))
        if latch is not None:
            self._state = TradingState.HALTED
            self._state_source, self._state_reason, self._state_since = latch.source, latch.reason, latch.at_utc
            log.warning("restored a persisted halt: %s by %s at %s", latch.reason, latch.source, latch.at_utc)
        # False until a cancel-all after the halt is confirmed, so a reconnection retries it.
        self._cancel_verified = latch is None
        self._cancel_task: asyncio.Task[bool] | None = None
        self._flatten_task: asyncio.Task[CommandResult] | None = None
        self._flattening = False
        self._loss_breached = False
        self._connection_seen_up = False
        self._tasks_bg: set[asyncio.Task[Any]] = set()
        self._command_seq = 0
        self._flatten_seq = 0
        self._closing: dict[str, _Closing] = {}  # by intent_id
        self._closing_by_order: dict[int, str] = {}

        # Trading day and P&L bookkeeping (see _read_pnl for how order-manager resets are absorbed).
        self._day_span = TradingDay.at(clock.now_utc(), r.day_reset_time, self._tz)
        self._day = self._restore_day()
        self._base_realized, self._base_commissions = self._om_realized_commissions()
        self._last_realized, self._last_commissions = self._base_realized, self._base_commissions
        self._fills_seen = 0
        self._persisted_pnl = (ZERO, ZERO)
        self._day_dirty = False
        self._view_dirty = True
        self._last_view_ns = 0
        self._last_pnl = ZERO

    # ------------------------------------------------------------------ wiring

    def set_instruments(self, instruments: Mapping[str, VerifiedInstrument]) -> None:
        """The instruments verified at startup; an intent for any other key is denied."""
        self._instruments = dict(instruments)
        self._view_dirty = True

    def set_disconnect(self, callback: Callable[[str], None]) -> None:
        """The broker session's disconnect, called (with the reason) on a critical API error."""
        self._disconnect = callback

    def set_event_log(self, callback: Callable[[str, str, str], None]) -> None:
        """Where event lines go (level, kind, text); the runtime wires its `log_event`. Default: the hot state."""
        self._event_log = callback

    @property
    def trading_state(self) -> TradingState:
        return self._state

    @property
    def state_source(self) -> str:
        return self._state_source

    @property
    def state_reason(self) -> str:
        return self._state_reason

    @property
    def state_since(self) -> str:
        return self._state_since

    @property
    def orders_today(self) -> int:
        return self._day.orders_sent

    @property
    def denied_today(self) -> int:
        return self._day.denied

    @property
    def trading_day(self) -> str:
        return self._day.label

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        if self._fills_seen == 0:
            # The order manager may have rebuilt its figures since construction; what it holds now
            # belongs to earlier processes, which the persisted risk day already carries.
            self._base_realized, self._base_commissions = self._om_realized_commissions()
            self._last_realized, self._last_commissions = self._base_realized, self._base_commissions
        self._bus.subscribe(FillReceived, self.on_fill)
        self._bus.subscribe(FillCorrected, self.on_fill_corrected)
        self._bus.subscribe(QuoteUpdated, self.on_quote)
        self._bus.subscribe(ApiErrorReceived, self.on_api_error)
        self._bus.subscribe(ConnectionChanged, self.on_connection)
        self._bus.subscribe(OrderStateChanged, self.on_order_state)
        # The runtime starts this engine once the broker is connected, so that UP was published before the
        # subscription above: take it from the hot state, or the first lost connection would not halt.
        connection = self._hot.get("connection")
        if isinstance(connection, Mapping) and connection.get("state") in (
            ConnectionState.UP,
            ConnectionState.DEGRADED,
        ):
            self._connection_seen_up = True
        self._persist_day()
        self.publish_view()
        self.spawn(self._run_ticker(), "ticker")

    async def on_stop(self) -> None:
        self._bus.unsubscribe(FillReceived, self.on_fill)
        self._bus.unsubscribe(FillCorrected, self.on_fill_corrected)
        self._bus.unsubscribe(QuoteUpdated, self.on_quote)
        self._bus.unsubscribe(ApiErrorReceived, self.on_api_error)
        self._bus.unsubscribe(ConnectionChanged, self.on_connection)
        self._bus.unsubscribe(OrderStateChanged, self.on_order_state)
        for task in list(self._tasks_bg):
            task.cancel()
        self._persist_day()
        self.publish_view()

    async def _run_ticker(self) -> None:
        while True:
            await asyncio.sleep(VIEW_INTERVAL_S)
            self.tick()

    def tick(self) -> None:
        """Roll the trading day, persist the day's counters and publish the gauges if due (every 50 ms)."""
        self._maybe_roll_day()
        if self._day_dirty or self._read_pnl() != self._persisted_pnl:
            self._persist_day()
        if self._view_dirty:
            self.publish_view()

    # ------------------------------------------------------------------ pre-trade checks (hot path)

    def check(self, intent: OrderIntent) -> RiskDecision:
        """Run every pre-trade rule; the first that fails names itself and why. No side effects.

        Approval is a statement about now: `submit` checks and acts in one step of the loop, so nothing
        can change in between.
        """
        now = self.clock.monotonic_ns()
        key = intent.key
        qty = intent.quantity
        if qty <= 0:
            return self._deny(intent, RULE_QUANTITY, f"order quantity must be positive, got {qty}", now)
        orders = self._orders
        flatten = intent.source is _FLATTEN
        bracket = intent.take_profit is not None and intent.stop_loss is not None
        signed = qty if intent.side is _BUY else -qty
        position = orders.position_qty(key)
        working = orders.working_entry_qty(key)
        closing = self.closing_qty(key) if self._closing else 0
        same_dir_working = (working if working * signed > 0 else 0) + (closing if closing * signed > 0 else 0)
        after = position + same_dir_working + signed
        # Shrinks: against the position, and even if everything working this way fills, never through zero.
        shrinks = position * signed < 0 and after * position >= 0

        state = self._state
        if state is _HALTED:
            if not (flatten and intent.reduce_only and shrinks):
                return self._deny(
                    intent,
                    RULE_TRADING_STATE,
                    f"trading is HALTED ({self._state_reason}, by {self._state_source} at {self._state_since}); "
                    "only an operator resume re-arms it",
                    now,
                )
        elif state is _REDUCING and (not shrinks or bracket):
            return self._deny(
                intent,
                RULE_TRADING_STATE,
                f"trading is REDUCING ({self._state_reason}): only orders that shrink the {key} position "
                f"({_fmt_qty(position)}) without protective legs are allowed",
                now,
            )
        if not self._risk.trading_enabled and not flatten:
            return self._deny(intent, RULE_TRADING_ENABLED, "trading is disabled (risk.trading_enabled = false)", now)

        instrument = self._instruments.get(key)
        if instrument is None:
            return self._deny(intent, RULE_INSTRUMENT, f"{key} was not verified at startup; it cannot be traded", now)
        if not instrument.tradable:
            why = "is watch-only" if instrument.spec.watch_only else "has no trading permission"
            detail = f": {instrument.permission_detail}" if instrument.permission_detail else ""
            return self._deny(intent, RULE_INSTRUMENT, f"{key} {why}{detail}", now)

        if flatten and not intent.reduce_only:
            return self._deny(intent, RULE_REDUCE_ONLY, "a flatten order must be reduce-only", now)
        if intent.reduce_only and not shrinks:
            if position == 0:
                text = f"reduce-only {intent.side} {qty} {key}: there is no position to reduce"
            else:
                text = (
                    f"reduce-only {intent.side} {qty} {key} would not shrink the position {_fmt_qty(position)} "
                    f"(with {_fmt_qty(same_dir_working)} already working the same way it would reach {_fmt_qty(after)})"
                )
            return self._deny(intent, RULE_REDUCE_ONLY, text, now)

        limit = intent.limit_price
        if intent.order_type is _MKT:
            if not self._execution.allow_market_orders:
                return self._deny(
                    intent,
                    RULE_MARKET_ORDERS,
                    "market orders are not allowed (execution.allow_market_orders = false); send a limit order",
                    now,
                )
        elif intent.order_type is not _LMT:
            return self._deny(
                intent, RULE_ORDER_TYPE, f"{intent.order_type} is not accepted for new orders; use LMT", now
            )
        elif limit is None:
            return self._deny(intent, RULE_ORDER_TYPE, "a limit order needs a limit price", now)

        tick = instrument.min_tick
        tp, sl = intent.take_profit, intent.stop_loss
        if (
            (limit is not None and (limit <= 0 or limit % tick))
            or (tp is not None and (tp <= 0 or tp % tick))
            or (sl is not None and (sl <= 0 or sl % tick))
        ):
            return self._deny(intent, RULE_PRICE_GRID, self._grid_reason(intent, tick), now)

        if flatten:
            # The kill switch's own orders: reduce-only and shrinking were checked above; nothing else may
            # stand between the operator and a flat book (rate, size, collar, stale quotes included).
            return RiskDecision(intent.intent_id, True, "", "approved (flatten)", now)

        # An order that only shrinks a position is not an entry: protective legs would re-open it.
        if self._risk.require_bracket and not intent.reduce_only and not shrinks and not bracket:
            return self._deny(intent, RULE_BRACKET, "entries need both a take-profit and a stop-loss", now)
        if bracket and (wrong := self._check_bracket_sides(intent)):
            return self._deny(intent, RULE_BRACKET, wrong, now)

        if qty > self._risk.max_order_qty:
            return self._deny(
                intent,
                RULE_MAX_ORDER_QTY,
                f"order quantity {qty:,} is above the per-order limit of {self._risk.max_order_qty:,}",
                now,
            )

        if working * signed < 0:
            return self._deny(
                intent,
                RULE_OPPOSING,
                f"{'a BUY' if working > 0 else 'a SELL'} of {abs(working):,} is still working on {key}; "
                f"cancel it before sending a {intent.side}",
                now,
            )

        quote = self._hot.quote(key)
        if quote is None:
            return self._deny(intent, RULE_QUOTE, f"no quote for {key} yet", now)
        age_ns = now - quote.recv_ns
        if age_ns > self._max_quote_age_ns:
            return self._deny(
                intent,
                RULE_QUOTE,
                f"the {key} quote is {age_ns / 1e9:.1f} s old (limit {self._risk.max_quote_age_s:g} s)",
                now,
            )
        if quote.flags and quote.flags & _BAD_QUOTE:  # the cheap test first: most quotes carry no flag
            what = "stale" if quote.flags & QuoteFlag.STALE else "crossed"
            return self._deny(intent, RULE_QUOTE, f"the {key} quote is {what}", now)

        if limit is not None:
            bid, ask = quote.bid, quote.ask
            if bid is None or ask is None or bid + ask <= 0:
                return self._deny(
                    intent, RULE_PRICE_COLLAR, f"no two-sided {key} quote to check the price against", now
                )
            # |limit - mid| > mid * collar, in twice-the-mid units: no Decimal division on the hot path.
            both = bid + ask
            if abs(limit + limit - both) > both * self._collar:
                mid = both / 2
                return self._deny(
                    intent,
                    RULE_PRICE_COLLAR,
                    f"limit {limit} is {abs(limit - mid) / mid * HUNDRED:.2f}% from the {key} mid {mid} "
                    f"(collar {self._risk.price_collar_pct:g}%)",
                    now,
                )
            price = limit
        else:
            touch = quote.ask if intent.side is _BUY else quote.bid
            ref = touch if touch is not None else quote.mark
            if ref is None:
                return self._deny(intent, RULE_QUOTE, f"no {key} price to value a market order against", now)
            price = ref

        multiplier = instrument.multiplier or 1
        order_notional = qty * price * multiplier
        if order_notional > self._max_order_notional:
            return self._deny(
                intent,
                RULE_MAX_ORDER_NOTIONAL,
                f"order value {_fmt_money(order_notional)} is above the per-order limit "
                f"{_fmt_money(self._max_order_notional)}",
                now,
            )

        if not shrinks:
            max_qty = self._max_qty(key)
            if abs(after) > max_qty:
                return self._deny(
                    intent,
                    RULE_MAX_POSITION_QTY,
                    f"{key} position would reach {_fmt_qty(after)} (now {_fmt_qty(position)}, working "
                    f"{_fmt_qty(same_dir_working)}, this {_fmt_qty(signed)}); the limit is {max_qty:,}",
                    now,
                )
            position_notional = abs(after) * price * multiplier
            if position_notional > self._max_position_notional:
                return self._deny(
                    intent,
                    RULE_MAX_POSITION_NOTIONAL,
                    f"{key} position value would reach {_fmt_money(position_notional)}; the limit is "
                    f"{_fmt_money(self._max_position_notional)}",
                    now,
                )

        legs = 3 if bracket else 1
        open_orders = orders.open_order_count()
        if open_orders + legs > self._risk.max_open_orders:
            return self._deny(
                intent,
                RULE_MAX_OPEN_ORDERS,
                f"{open_orders} orders are working and this adds {legs}; the limit is {self._risk.max_open_orders}",
                now,
            )

        if not self._rate_1s.can_take():
            return self._deny(
                intent,
                RULE_ORDER_RATE,
                f"order rate above {self._risk.max_orders_per_second:g}/s; denied, not queued",
                now,
            )
        if not self._rate_1m.can_take():
            return self._deny(
                intent,
                RULE_ORDER_RATE,
                f"order rate above {self._risk.max_orders_per_minute:g}/min; denied, not queued",
                now,
            )
        return RiskDecision(intent.intent_id, True, "", "approved", now)

    def _check_bracket_sides(self, intent: OrderIntent) -> str:
        """Why the protective legs are on the wrong side of the entry, or "" when they are fine."""
        ref = intent.limit_price
        tp, sl = intent.take_profit, intent.stop_loss
        if ref is None or tp is None or sl is None:
            return ""
        if intent.side is Side.BUY and not sl < ref < tp:
            return f"a BUY needs stop-loss < entry < take-profit, got {sl} / {ref} / {tp}"
        if intent.side is Side.SELL and not tp < ref < sl:
            return f"a SELL needs take-profit < entry < stop-loss, got {tp} / {ref} / {sl}"
        return ""

    @staticmethod
    def _grid_reason(intent: OrderIntent, tick: Decimal) -> str:
        for label, price in (
            ("limit", intent.limit_price),
            ("take-profit", intent.take_profit),
            ("stop-loss", intent.stop_loss),
        ):
            if price is not None and (price <= 0 or price % tick):
                return f"{label} price {price} is not a positive multiple of {intent.key}'s tick {tick}"
        return "price off the tick grid"

    @staticmethod
    def _deny(intent: OrderIntent, rule: str, reason: str, now: int) -> RiskDecision:
        return RiskDecision(intent.intent_id, False, rule, reason, now)

    def _max_qty(self, key: str) -> int:
        return self._risk.per_instrument_max_qty.get(key, self._risk.max_position_qty)

    # ------------------------------------------------------------------ submit

    def submit(self, intent: OrderIntent) -> RiskDecision:
        """Check, journal, publish the decision, and hand an approved intent to the order manager."""
        decision, _ids = self._submit(intent)
        return decision

    def _submit(self, intent: OrderIntent) -> tuple[RiskDecision, list[int]]:
        self._maybe_roll_day()
        decision = self.check(intent)
        if decision.approved:
            # Only approved orders consume rate tokens; flatten orders take one if there is one.
            self._rate_1s.try_take()
            self._rate_1m.try_take()
            self._day.orders_sent += 1
        else:
            self._day.denied += 1
        self._day_dirty = True
        self._view_dirty = True
        # Numbered and serialised after the orders' bytes are out: the order manager's "submit" record numbers
        # it first (core/journal.py, "Deferred serialisation"), so the file still reads decision, submission.
        self._journal.record_soon("risk_decision", lambda: {"decision": decision, "intent": intent})
        self._bus.publish(decision)
        if not decision.approved:
            return decision, []
        if intent.reduce_only:
            # Tracked before the order manager can report on it (it may call back synchronously).
            self._closing[intent.intent_id] = _Closing(intent.key, intent.quantity * intent.side.sign, set())
        try:
            ids = self._orders.submit(intent)
        except ValueError as exc:
            # The order manager refused it structurally (e.g. disconnected, reduce-only that would not
            # reduce): nothing was placed, so the approval becomes a denial the user sees and the journal keeps.
            self._closing.pop(intent.intent_id, None)
            self._day.orders_sent -= 1
            self._day.denied += 1
            refused = RiskDecision(intent.intent_id, False, "order_refused", str(exc), self.clock.monotonic_ns())
            self._journal.record("risk_decision", decision=refused, intent=intent)
            self._bus.publish(refused)
            return refused, []
        tracked = self._closing.get(intent.intent_id)
        if tracked is not None:
            tracked.order_ids.update(ids)
            for order_id in ids:
                self._closing_by_order[order_id] = intent.intent_id
        return decision, ids

    def closing_qty(self, key: str) -> int:
        """Signed remaining quantity of working reduce-only and flatten orders on `key`."""
        return sum(c.signed_remaining for c in self._closing.values() if c.key == key)

    def on_order_state(self, event: OrderStateChanged) -> None:
        """Follow reduce-only and flatten orders until terminal (learning their ids if queued at first)."""
        if not self._closing:
            return
        intent_id = event.order_ref.split(":", 1)[0] if event.order_ref else self._closing_by_order.get(event.order_id)
        tracked = self._closing.get(intent_id or "")
        if tracked is None:
            return
        if event.new.is_terminal:
            self._forget_closing(intent_id or "")
        elif event.order_id not in tracked.order_ids:
            tracked.order_ids.add(event.order_id)
            self._closing_by_order[event.order_id] = intent_id or ""

    def _forget_closing(self, intent_id: str) -> None:
        tracked = self._closing.pop(intent_id, None)
        if tracked is not None:
            for order_id in tracked.order_ids:
                self._closing_by_order.pop(order_id, None)

    def _closing_fill(self, order_id: int, order_ref: str, qty: int) -> None:
        intent_id = order_ref.split(":", 1)[0] if order_ref else self._closing_by_order.get(order_id, "")
        tracked = self._closing.get(intent_id)
        if tracked is None:
            return
        step = min(qty, abs(tracked.signed_remaining))
        tracked.signed_remaining -= step if tracked.signed_remaining > 0 else -step
        if tracked.signed_remaining == 0:
            self._forget_closing(intent_id)

    def _closing_unfill(self, order_id: int, order_ref: str, qty: int) -> None:
        intent_id = order_ref.split(":", 1)[0] if order_ref else self._closing_by_order.get(order_id, "")
        tracked = self._closing.get(intent_id)
        if tracked is not None:
            tracked.signed_remaining += qty if tracked.signed_remaining > 0 else -qty

    # ------------------------------------------------------------------ trading state

    def _set_state(
        self,
        new: TradingState,
        source: str,
        reason: str,
        *,
        journal: bool = True,
        old: TradingState | None = None,
        at: datetime | None = None,
    ) -> None:
        old = self._state if old is None else old
        at = at or self.clock.now_utc()
        self._state, self._state_source, self._state_reason = new, source, reason
        self._state_since = at.isoformat()
        event = TradingStateChanged(old, new, source, reason, at)
        if journal:
            self._journal.record("trading_state", old=old, new=new, source=source, reason=reason)
        self._bus.publish(event)
        level = "error" if new is TradingState.HALTED else "warn" if new is TradingState.REDUCING else "info"
        self._event(level, f"{old} → {new} by {source}: {reason}")
        self._publish_state()

    def _publish_state(self) -> None:
        """Publish the new trading state now, with the gauges as last published; the full view follows.

        A state change does not move any gauge, and computing them (two per instrument) is milliseconds with a
        hundred instruments: on a halt that would sit between the latch and the answer the kill switch's banner
        is drawn from. The ticker publishes the whole view within `VIEW_INTERVAL_S`."""
        last: RiskView | None = self._hot.get("risk")
        if last is None:
            self.publish_view()
            return
        view = RiskView(**last)  # a new dict: published values are never changed in place
        view["trading_state"] = self._state.value
        view["reason"], view["source"], view["since_utc"] = self._state_reason, self._state_source, self._state_since
        self._hot.set("risk", view)
        self._view_dirty = True

    def halt(self, source: str, reason: str) -> CommandResult:
        """Stop trading now: latch HALTED, persist it, then cancel every working order. Idempotent.

        Synchronous and safe to call from any handler on the core loop. HALTED in memory first (no order
        passes from here on), then the latch on disk (fsynced: it survives a crash or a power cut), then the
        global cancel, then the journal's record (written; the group commit fsyncs it) and the new state
        published, before the answer goes back: the cancel leaves once the halt is durable, and neither it nor
        the answer waits for a second fsync for the audit record.
        A second halt keeps the original story and only retries the cancel-all if none is running.
        """
        if self._state is TradingState.HALTED:
            self._schedule_cancel_all(f"halt: {reason}")
            return self._result(
                True,
                f"already halted since {self._state_since} by {self._state_source}: {self._state_reason}",
                source=self._state_source,
            )
        old = self._state
        # In memory first, so even a failing disk cannot let another order through.
        self._state = TradingState.HALTED
        self._cancel_verified = False
        at = self.clock.now_utc()
        latch = HaltLatch(source, reason, at.isoformat())
        try:
            self._hot.write_through("halt", latch.as_dict())
        except Exception:
            log.exception("the halt could not be written to the state directory")
            self._event(
                "error", "HALT NOT PERSISTED: the state directory refused the write; a restart would not be halted"
            )
        self._schedule_cancel_all(f"halt: {reason}")
        try:
            self._journal.record("halt", source=source, reason=reason, old=old, at_utc=latch.at_utc)
        except Exception:
            log.exception("the halt could not be journaled")
        # The cancel-all sent the global cancel above, so publishing the view here never delays it; the view is
        # then current when the halt's answer leaves (the kill switch's banner is drawn from it).
        self._set_state(TradingState.HALTED, source, reason, journal=False, old=old, at=at)
        log.error("trading HALTED by %s: %s", source, reason)
        return self._result(True, f"halted: {reason}", source=source)

    def _schedule_cancel_all(self, reason: str) -> None:
        if self._cancel_task is not None and not self._cancel_task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.error("no running loop: the cancel-all after the halt is deferred to the next reconnection")
            return
        # The global cancel goes out in this call (a halt on the urgent path sends it in the same callback
        # that latched); the task only waits for the orders to end.
        begun: Any
        try:
            begun = self._orders.begin_cancel_all(reason)
        except Exception as exc:
            begun = exc
        self._cancel_task = loop.create_task(self._cancel_all(reason, begun), name="risk:cancel_all")
        self._keep(self._cancel_task)

    async def _cancel_all(self, reason: str, begun: Any) -> bool:
        try:
            if isinstance(begun, Exception):
                raise begun
            ok = await self._orders.finish_cancel_all(reason, begun)
        except ConnectionError as exc:
            # Expected when the halt was caused by the lost connection: the reconnection retries it.
            log.warning("cancel-all not sent (%s): it is sent again on reconnection", exc)
            ok = False
        except Exception:
            log.exception("cancel-all failed")
            ok = False
        self._cancel_verified = ok
        if ok:
            # Every order is terminal (queued ones dropped): no closing order can still be working.
            self._closing.clear()
            self._closing_by_order.clear()
        self._journal.record("risk_cancel_all", reason=reason, ok=ok)
        if not self._flattening:
            self.warn_unprotected()
        if not ok:
            self._alert("cancel-all after the halt is not confirmed: some orders may still be working")
        self._view_dirty = True
        return ok

    def resume(self, source: str, reason: str = "operator resume") -> CommandResult:
        """Re-arm trading; only an operator may, and not while a limit is still breached.

        Goes to REDUCING instead of ACTIVE when a position is still beyond its limit.
        """
        if source.startswith(_AUTOMATED_SOURCES):
            return self._result(False, f"resume refused: only an operator can resume, not {source}")
        if self._flattening:
            return self._result(False, "resume refused: a flatten is still running")
        if self._state is TradingState.ACTIVE:
            return self._result(True, "trading is already ACTIVE")
        self._maybe_roll_day()
        pnl = self.day_pnl()
        if pnl <= -self._max_daily_loss:
            return self._result(
                False,
                f"resume refused: the day's P&L {_fmt_money(pnl)} is beyond the daily loss limit "
                f"-{_fmt_money(self._max_daily_loss)}; trading stays halted until the day resets",
            )
        beyond = self._positions_beyond_limits()
        if self._state is TradingState.REDUCING and beyond:
            return self._result(False, f"resume refused: still beyond the position limit: {', '.join(beyond)}")
        if self._state is TradingState.HALTED:
            try:
                self._hot.write_through("halt", None)
            except Exception as exc:
                log.exception("could not clear the persisted halt")
                return self._result(False, f"resume refused: the halt latch could not be cleared ({exc})")
            self._journal.record("resume", source=source, reason=reason, halted_by=self._state_source)
        self._loss_breached = False
        if beyond:
            self._set_state(TradingState.REDUCING, source, f"{reason}; beyond the position limit: {', '.join(beyond)}")
            protected = self._protect(f"resume by {source}")
            return self._result(True, f"resumed in REDUCING: beyond the position limit: {', '.join(beyond)}{protected}")
        self._set_state(TradingState.ACTIVE, source, reason)
        return self._result(True, f"trading resumed: ACTIVE{self._protect(f'resume by {source}')}")

    def _protect(self, reason: str) -> str:
        """After a resume: the halt cancelled every stop and take-profit, so re-protect open positions."""
        try:
            ids = self._orders.protect_positions(reason)
        except Exception:
            log.exception("protecting open positions after the resume failed")
            self._alert("open positions could not be re-protected after the resume: place stops by hand")
            return "; positions NOT re-protected (see the event log)"
        if not ids:
            return ""
        self._journal.record("protect_positions", reason=reason, order_ids=ids)
        self._event("info", f"{len(ids) // 2} open positions re-protected with a stop-loss and take-profit")
        return f"; {len(ids) // 2} positions re-protected"

    def warn_unprotected(self) -> None:
        """While HALTED no protective order is placed: tell the operator which positions have no stop."""
        if self._state is not TradingState.HALTED:
            return
        keys = self._orders.unprotected_positions()
        if keys:
            self._event(
                "warn",
                f"{len(keys)} positions unprotected while HALTED ({', '.join(sorted(keys))}): "
                "no stop-loss until resumed or flattened",
            )

    async def flatten(self, source: str, reason: str) -> CommandResult:
        """Halt, cancel every order, then close every position with marketable limits until flat.

        Closing orders are reduce-only limits `execution.flatten_offset_ticks` through the touch, repriced
        every `execution.flatten_reprice_s` (cancel, wait until it is gone, send again at the new touch) until
        flat or `execution.flatten_timeout_s`; what remains then is alerted loudly and in the result.
        """
        if self._flattening:
            return self._result(False, "a flatten is already running")
        self._flattening = True
        try:
            self.halt(source, reason)
            self._schedule_cancel_all(f"flatten: {reason}")
            cancelled = False
            task = self._cancel_task
            if task is not None:
                cancelled = await asyncio.shield(task)
            if not cancelled:
                self._alert("flatten: not every order is confirmed cancelled; closing positions anyway")
            remaining = await self._close_positions(reason)
        finally:
            self._flattening = False
        if remaining:
            text = ", ".join(f"{k} {_fmt_qty(q)}" for k, q in sorted(remaining.items()))
            self._alert(f"FLATTEN INCOMPLETE after {self._execution.flatten_timeout_s:g} s: still open {text}")
            self._journal.record("flatten", source=source, reason=reason, ok=False, remaining=remaining)
            return self._result(False, f"flatten incomplete: still open {text}", remaining=remaining)
        self._journal.record("flatten", source=source, reason=reason, ok=True, remaining={})
        self._event("info", f"flatten complete: no positions ({reason})")
        return self._result(True, "flat: every order cancelled and every position closed")

    async def _close_positions(self, reason: str) -> dict[str, int]:
        orders = self._orders
        reprice_ns = int(self._execution.flatten_reprice_s * 1e9)
        deadline = self.clock.monotonic_ns() + int(self._execution.flatten_timeout_s * 1e9)
        started = self.clock.monotonic_ns()
        sent_at: dict[str, int] = {}
        cancel_sent: set[str] = set()
        no_price: set[str] = set()
        poll_s = min(FLATTEN_POLL_S, self._execution.flatten_reprice_s)
        while True:
            open_positions = {k: p.quantity for k, p in orders.positions().items() if p.quantity}
            if not open_positions:
                return {}
            now = self.clock.monotonic_ns()
            if now >= deadline:
                return open_positions
            for key, qty in open_positions.items():
                out = [c for c in self._closing.values() if c.key == key]
                if out:
                    # A closing order is still out: reprice it when due, never send a second one beside it.
                    if now - sent_at.get(key, started) >= reprice_ns and key not in cancel_sent:
                        for order_id in {i for c in out for i in c.order_ids}:
                            orders.cancel(order_id)
                        cancel_sent.add(key)
                    continue
                side = Side.SELL if qty > 0 else Side.BUY
                price = self._flatten_price(key, side)
                if price is None:
                    if key not in no_price:
                        no_price.add(key)
                        self._alert(f"flatten: no {key} quote to price a closing order; waiting for one")
                    continue
                self._flatten_seq += 1
                intent = OrderIntent(
                    intent_id=f"flatten-{key}-{self._flatten_seq}",
                    key=key,
                    side=side,
                    quantity=abs(qty),
                    limit_price=price,
                    take_profit=None,
                    stop_loss=None,
                    source=IntentSource.FLATTEN,
                    created_ns=now,
                    reduce_only=True,
                    adaptive_priority="Urgent",
                    reason=f"flatten: {reason}",
                )
                decision, _ids = self._submit(intent)
                if decision.approved:
                    sent_at[key] = now
                    cancel_sent.discard(key)
                elif key not in no_price:
                    no_price.add(key)
                    self._alert(f"flatten: closing {key} was denied ({decision.rule}: {decision.reason})")
            await self._sleep(poll_s)

    def _flatten_price(self, key: str, side: Side) -> Decimal | None:
        """Touch ± offset ticks, on the tick grid, rounded the marketable way; None without a price."""
        instrument = self._instruments.get(key)
        quote = self._hot.quote(key)
        if instrument is None or quote is None:
            return None
        tick = instrument.min_tick
        offset = tick * self._execution.flatten_offset_ticks
        if side is Side.SELL:
            base = quote.bid if quote.bid is not None else quote.last
            if base is None:
                return None
            price = ((base - offset) / tick).to_integral_value(ROUND_FLOOR) * tick
            return max(price, tick)
        base = quote.ask if quote.ask is not None else quote.last
        if base is None:
            return None
        return ((base + offset) / tick).to_integral_value(ROUND_CEILING) * tick

    async def handle(self, command: Halt | Flatten | Resume) -> CommandResult:
        """Run a kill-switch command (the runtime routes Halt, Flatten and Resume here)."""
        if isinstance(command, Halt):
            return self.halt(command.source, command.reason)
        if isinstance(command, Flatten):
            return await self.flatten(command.source, command.reason)
        return self.resume(command.source, command.reason)

    def _result(self, ok: bool, message: str, **details: object) -> CommandResult:
        self._command_seq += 1
        return CommandResult(f"risk-{self._command_seq}", ok, message, self.clock.now_utc(), dict(details))

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks_bg.add(task)
        task.add_done_callback(self._tasks_bg.discard)

    # ------------------------------------------------------------------ post-trade monitors

    def on_quote(self, event: QuoteUpdated) -> None:
        """Re-mark the day's P&L, but only for an instrument we hold (most ticks return at once)."""
        if self._orders.position_qty(event.quote.key) == 0:
            return
        self._check_daily_loss()

    def on_fill(self, event: FillReceived) -> None:
        """After a fill: the day's P&L, and whether that position is now beyond its limit."""
        self._fills_seen += 1
        if self._closing:
            self._closing_fill(event.fill.order_id, event.fill.order_ref, event.fill.quantity)
        self._after_position_change(event.fill.key, event.fill.price)

    def on_fill_corrected(self, event: FillCorrected) -> None:
        """IB corrected an execution: the position and P&L moved without a new fill; check them alike.

        A working closing (flatten, reduce-only) order's remaining quantity follows the corrected quantity: a
        larger correction closed more, a smaller one left more to close. One already done is not tracked again:
        its order is filled, so nothing more can close through it."""
        fill, old = event.fill, event.replaces
        delta = fill.quantity - old.quantity
        if delta > 0 and self._closing:
            self._closing_fill(fill.order_id, fill.order_ref, delta)
        elif delta < 0:
            self._closing_unfill(fill.order_id, fill.order_ref, -delta)
        self._after_position_change(fill.key, fill.price)

    def _after_position_change(self, key: str, price: Decimal) -> None:
        self._maybe_roll_day()
        self._check_daily_loss()
        # The day's figures must survive a crash: written through when they moved (a closing fill's realised
        # P&L), not for a fill that only opened or added (the persisted figures are already these; a write
        # through the disk cache costs hundreds of microseconds on the loop, milliseconds behind writeback).
        if self._day_dirty or self._read_pnl() != self._persisted_pnl:
            self._persist_day()
        beyond = self._beyond_limit(key, price)
        if beyond and self._state is TradingState.ACTIVE:
            rule = RULE_MAX_POSITION_QTY if "quantity" in beyond else RULE_MAX_POSITION_NOTIONAL
            self._set_state(TradingState.REDUCING, f"rule:{rule}", beyond)
        elif (
            not beyond
            and self._state is TradingState.REDUCING
            and self._state_source.startswith("rule:max_position")
            and not self._positions_beyond_limits()
        ):
            self._set_state(TradingState.ACTIVE, "rule:position_within_limits", "every position is within its limits")

    def on_api_error(self, event: ApiErrorReceived) -> None:
        """A critical IB error code halts trading and disconnects the broker session."""
        error = event.error
        if error.code not in self._critical_codes:
            return
        reason = f"IB error {error.code}: {error.message}".rstrip(": ")
        self.halt(f"api_error:{error.code}", reason)
        if self._disconnect is not None:
            try:
                self._disconnect(reason)
            except Exception:
                log.exception("disconnect after IB error %s failed", error.code)

    def on_connection(self, event: ConnectionChanged) -> None:
        """A lost connection halts; a reconnection retries an unconfirmed cancel-all but never resumes."""
        if self.state is ComponentState.STOPPING:
            return
        if event.state is ConnectionState.UP:
            self._connection_seen_up = True
            if self._state is TradingState.HALTED and not self._cancel_verified:
                self._schedule_cancel_all("reconnected while halted")
        elif event.state is ConnectionState.DEGRADED:
            self._connection_seen_up = True
        elif event.state is ConnectionState.DOWN and self._connection_seen_up:
            self.halt("connection:down", f"connection to IB lost: {event.detail}".rstrip(": "))

    def _check_daily_loss(self) -> None:
        pnl = self.day_pnl()
        if pnl != self._last_pnl:
            self._last_pnl = pnl
            self._view_dirty = True
        if pnl > -self._max_daily_loss or self._loss_breached:
            return
        self._loss_breached = True
        reason = (
            f"daily loss {_fmt_money(-pnl)} reached the limit {_fmt_money(self._max_daily_loss)} "
            "(realised + unrealised - commissions)"
        )
        source = "rule:max_daily_loss"
        self.halt(source, reason)
        if self._risk.on_max_loss == "flatten":
            if not self._flattening:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    self._alert("daily loss breached with no running loop: flatten not started")
                    return
                self._flatten_task = loop.create_task(self.flatten(source, reason), name="risk:flatten")
                self._keep(self._flatten_task)

    def _beyond_limit(self, key: str, price: Decimal | None = None) -> str:
        """Why the `key` position is beyond its limits now, or ""."""
        qty = abs(self._orders.position_qty(key))
        if qty == 0:
            return ""
        max_qty = self._max_qty(key)
        if qty > max_qty:
            return f"{key} position quantity {qty:,} is beyond the limit of {max_qty:,}"
        instrument = self._instruments.get(key)
        if price is None:
            quote = self._hot.quote(key)
            price = quote.mark if quote is not None else None
        if instrument is not None and price is not None:
            notional = qty * price * (instrument.multiplier or 1)
            if notional > self._max_position_notional:
                return (
                    f"{key} position value {_fmt_money(notional)} is beyond the limit "
                    f"{_fmt_money(self._max_position_notional)}"
                )
        return ""

    def _positions_beyond_limits(self) -> list[str]:
        return [why for key in self._orders.positions() if (why := self._beyond_limit(key))]

    # ------------------------------------------------------------------ the day's P&L

    def _om_realized_commissions(self) -> tuple[Decimal, Decimal]:
        realized, _unrealized, commissions = self._orders.day_pnl()
        return realized, commissions

    def _read_pnl(self) -> tuple[Decimal, Decimal]:
        """The trading day's realised P&L and commissions, across restarts and order-manager day resets."""
        realized, commissions = self._om_realized_commissions()
        if commissions < self._last_commissions:
            # Commissions only grow within a day, so a drop means the order manager reset its day: keep
            # what it had counted since our baseline and count from its new zero.
            self._day.carried_realized += self._last_realized - self._base_realized
            self._day.carried_commissions += self._last_commissions - self._base_commissions
            self._base_realized = self._base_commissions = ZERO
            self._day_dirty = True
        self._last_realized, self._last_commissions = realized, commissions
        return (
            self._day.carried_realized + realized - self._base_realized,
            self._day.carried_commissions + commissions - self._base_commissions,
        )

    def unrealized(self) -> Decimal:
        """Unrealised P&L of every position at the hot state's marks (a position with no mark counts 0)."""
        total = ZERO
        for key, position in self._orders.positions().items():
            if position.quantity:
                quote = self._hot.quote(key)
                mark = quote.mark if quote is not None else None
                if mark is not None:
                    total += position.unrealized(mark)
        return total

    def day_pnl(self) -> Decimal:
        """The trading day's realised + unrealised P&L after commissions (what max_daily_loss limits).

        Unrealised P&L is measured from cost, so a position carried over the reset counts its whole open
        loss against the new day (the conservative side).
        """
        realized, commissions = self._read_pnl()
        return realized + self.unrealized() - commissions

    def _restore_day(self) -> _DayCounters:
        label = self._day_span.label.isoformat()
        saved = self._hot.read_safety("risk_day")
        if isinstance(saved, dict) and saved.get("trading_day") == label:
            try:
                return _DayCounters(
                    label,
                    Decimal(str(saved["realized"])),
                    Decimal(str(saved["commissions"])),
                    int(saved["orders_sent"]),
                    int(saved["denied"]),
                )
            except (KeyError, ValueError, ArithmeticError):
                log.warning("the persisted risk day is unreadable; starting the day's counters from zero")
        return _DayCounters(label)

    def _persist_day(self) -> None:
        realized, commissions = self._read_pnl()
        value = {
            "trading_day": self._day.label,
            "realized": str(realized),
            "commissions": str(commissions),
            "orders_sent": self._day.orders_sent,
            "denied": self._day.denied,
        }
        try:
            self._hot.write_through("risk_day", value)
            self._day_dirty = False
            self._persisted_pnl = (realized, commissions)
        except Exception:
            log.exception("the risk day could not be persisted; will retry")

    def _maybe_roll_day(self) -> None:
        now = self.clock.now_utc()
        if now < self._day_span.end_utc:
            return
        self._read_pnl()  # absorb an order-manager reset that happened before ours
        old = self._day.label
        self._day_span = TradingDay.at(now, self._risk.day_reset_time, self._tz)
        self._day = _DayCounters(self._day_span.label.isoformat())
        self._base_realized, self._base_commissions = self._om_realized_commissions()
        self._last_realized, self._last_commissions = self._base_realized, self._base_commissions
        self._loss_breached = False
        self._last_pnl = ZERO
        self._persist_day()
        self._journal.record("risk_day_reset", old=old, new=self._day.label)
        self._event("info", f"trading day {self._day.label} started; day counters reset")
        self._view_dirty = True

    # ------------------------------------------------------------------ the risk view

    def publish_view(self) -> None:
        """Publish the trading state and limit gauges to the hot state's `risk` section."""
        self._view_dirty = False
        self._last_view_ns = self.clock.monotonic_ns()
        self._hot.set("risk", self.view())

    def view(self) -> RiskView:
        """The `risk` section: trading state, its story, and one gauge per limit."""
        limits: list[LimitView] = []
        loss = -self.day_pnl()
        limits.append(self._gauge("daily_loss", float(max(loss, ZERO)), float(self._max_daily_loss)))
        keys = [k for k, inst in self._instruments.items() if inst.tradable]
        keys += [k for k in self._orders.positions() if k not in self._instruments]
        for key in keys:
            qty = abs(self._orders.position_qty(key))
            limits.append(self._gauge(f"position_qty:{key}", float(qty), float(self._max_qty(key))))
            instrument = self._instruments.get(key)
            quote: Quote | None = self._hot.quote(key)
            mark = quote.mark if quote is not None else None
            notional = qty * mark * instrument.multiplier if instrument is not None and mark is not None else ZERO
            limits.append(self._gauge(f"position_notional:{key}", float(notional), float(self._max_position_notional)))
        limits.append(
            self._gauge("order_rate_1s", self._rate_1s.capacity - self._rate_1s.available, self._rate_1s.capacity)
        )
        limits.append(
            self._gauge("order_rate_1m", self._rate_1m.capacity - self._rate_1m.available, self._rate_1m.capacity)
        )
        limits.append(
            self._gauge("open_orders", float(self._orders.open_order_count()), float(self._risk.max_open_orders))
        )
        return RiskView(
            trading_state=self._state.value,
            reason=self._state_reason,
            source=self._state_source,
            since_utc=self._state_since,
            limits=limits,
            denied_today=self._day.denied,
            orders_today=self._day.orders_sent,
            trading_day=self._day.label,
        )

    def _gauge(self, name: str, used: float, limit: float) -> LimitView:
        breach = used >= limit if name == "daily_loss" else used > limit
        level = "breach" if breach else "warn" if used >= limit * self._warn else "ok"
        return LimitView(name=name, used=round(used, 6), limit=limit, level=level)

    # ------------------------------------------------------------------ events and alerts

    def _event(self, level: str, text: str) -> None:
        if self._event_log is not None:
            self._event_log(level, "risk", text)
            return
        line = EventLine(
            at_utc=self.clock.now_utc().isoformat(timespec="milliseconds"), level=level, kind="risk", text=text
        )
        events = list(self._hot.get("events") or [])[-(EVENT_LOG_LINES - 1) :]
        events.append(line)
        self._hot.set("events", events)

    def _alert(self, text: str) -> None:
        """Loud: the log at error level, the journal and the UI's event line."""
        log.error("RISK ALERT: %s", text)
        self._journal.record("alert", source="risk", text=text)
        self._event("error", text)
