"""A small in-memory order manager for the risk tests: the `ExposureView` the risk engine is written against.

It keeps working orders, bracket children, positions (the real `Position` arithmetic) and a day's P&L, and
fills only what a test asks it to. Protective children are modelled the way the order manager promises to
handle them: they become working as their parent fills, share one OCA group, never close more than the
position they protect, and are cancelled when that position is flat.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from omega_tui.core.bus import EventBus
from omega_tui.core.clock import Clock
from omega_tui.core.positions import Position
from omega_tui.core.types import (
    ExecutionReport,
    InstrumentSpec,
    IntentSource,
    OrderIntent,
    OrderState,
    OrderStateChanged,
    OrderType,
    Quote,
    QuoteFlag,
    Side,
    TradingState,
    VerifiedInstrument,
)

ENTRY_ROLES = ("entry",)  # what working_entry_qty counts, as the real order manager does
PARENT_ROLES = ("entry", "flatten", "reduce")


@dataclass
class FakeOrder:
    order_id: int
    key: str
    side: Side
    quantity: int
    price: Decimal | None
    role: str  # entry, reduce, flatten, take_profit, stop_loss
    intent_id: str = ""
    parent_id: int = 0
    filled: int = 0
    active: bool = True
    done: bool = False

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


class FakeOrders:
    """An order manager double with scripted fills; `submitted` records (intent, trading state at submit)."""

    def __init__(self, clock: Clock, multipliers: Mapping[str, int] | None = None) -> None:
        self.clock = clock
        self.multipliers = dict(multipliers or {})
        self.orders: dict[int, FakeOrder] = {}
        self.pos: dict[str, Position] = {}
        self.submitted: list[tuple[OrderIntent, TradingState | None]] = []
        self.cancelled: list[int] = []
        self.cancel_all_calls: list[str] = []
        self.protect_calls: list[tuple[str, TradingState | None]] = []
        self.cancel_all_result = True
        self.cancel_all_cancels = True  # cancel_all really cancels every working order
        self.state_probe: Callable[[], TradingState] | None = None
        self.bus: EventBus | None = None  # where OrderStateChanged goes, as the real order manager publishes it
        self.on_cancel_all: Callable[[], None] | None = None
        self._ids = itertools.count(1)
        self._exec = itertools.count(1)

    # ---------------------------------------------------------------- ExposureView

    def submit(self, intent: OrderIntent) -> list[int]:
        self.submitted.append((intent, self.state_probe() if self.state_probe else None))
        role = "flatten" if intent.source is IntentSource.FLATTEN else "reduce" if intent.reduce_only else "entry"
        parent = FakeOrder(
            next(self._ids), intent.key, intent.side, intent.quantity, intent.limit_price, role, intent.intent_id
        )
        self.orders[parent.order_id] = parent
        ids = [parent.order_id]
        if intent.take_profit is not None and intent.stop_loss is not None:
            for child_role, price in (("take_profit", intent.take_profit), ("stop_loss", intent.stop_loss)):
                child = FakeOrder(
                    next(self._ids),
                    intent.key,
                    intent.side.opposite,
                    0,
                    price,
                    child_role,
                    intent.intent_id,
                    parent_id=parent.order_id,
                    active=False,
                )
                self.orders[child.order_id] = child
                ids.append(child.order_id)
        return ids

    def cancel(self, order_id: int) -> bool:
        order = self.orders.get(order_id)
        if order is None or order.done:
            return False
        self._finish(order, OrderState.CANCELLED)
        self.cancelled.append(order_id)
        return True

    def begin_cancel_all(self, reason: str) -> str:
        self.cancel_all_calls.append(reason)
        if self.on_cancel_all is not None:
            self.on_cancel_all()
        if self.cancel_all_cancels:
            for order in self.orders.values():
                if not order.done:
                    self._finish(order, OrderState.CANCELLED)
        return reason

    async def finish_cancel_all(self, reason: str, begun: str) -> bool:
        return self.cancel_all_result

    def protect_positions(self, reason: str) -> list[int]:
        """Records the call; two fake ids per open position (a stop-loss and a take-profit)."""
        self.protect_calls.append((reason, self.state_probe() if self.state_probe else None))
        keys = [k for k, p in self.pos.items() if p.quantity]
        return [next(self._ids) for _ in keys for _leg in range(2)]

    def unprotected_positions(self) -> list[str]:
        return [k for k, p in self.pos.items() if p.quantity]

    def position_qty(self, key: str) -> int:
        position = self.pos.get(key)
        return position.quantity if position is not None else 0

    def working_entry_qty(self, key: str) -> int:
        return sum(
            o.remaining * o.side.sign
            for o in self.orders.values()
            if o.key == key and not o.done and o.role in ENTRY_ROLES
        )

    def open_order_count(self) -> int:
        return sum(1 for o in self.working())

    def positions(self) -> Mapping[str, Position]:
        return self.pos

    def day_pnl(self) -> tuple[Decimal, Decimal, Decimal]:
        realized = sum((p.realized for p in self.pos.values()), Decimal(0))
        commissions = sum((p.commissions for p in self.pos.values()), Decimal(0))
        return realized, Decimal(0), commissions

    # ---------------------------------------------------------------- scripting

    def working(self, key: str | None = None, role: str | None = None) -> list[FakeOrder]:
        return [
            o
            for o in self.orders.values()
            if not o.done
            and (o.active or o.role in PARENT_ROLES)
            and (key is None or o.key == key)
            and (role is None or o.role == role)
        ]

    def set_position(self, key: str, qty: int, price: Decimal) -> None:
        """Book a position as if it had been filled earlier (no P&L)."""
        position = Position(key, multiplier=self.multipliers.get(key, 1))
        if qty:
            position.apply_fill(Side.BUY if qty > 0 else Side.SELL, abs(qty), price)
        self.pos[key] = position

    def fill(
        self, order_id: int, qty: int, price: Decimal | None = None, commission: Decimal = Decimal("1")
    ) -> ExecutionReport | None:
        """Fill up to `qty` of a working order (clipped as the order manager would); None if nothing filled."""
        order = self.orders[order_id]
        if order.done or not (order.active or order.role in PARENT_ROLES):
            return None
        qty = min(qty, order.remaining)
        position = self.pos.get(order.key) or Position(order.key, multiplier=self.multipliers.get(order.key, 1))
        self.pos[order.key] = position
        if order.role in ("take_profit", "stop_loss", "reduce", "flatten"):
            # Closing orders never go through zero.
            if position.quantity * order.side.sign >= 0:
                return None
            qty = min(qty, abs(position.quantity))
        if qty <= 0:
            return None
        fill_price = price if price is not None else order.price or Decimal("100")
        position.apply_fill(order.side, qty, fill_price)
        position.add_commission(commission)
        order.filled += qty
        report = ExecutionReport(
            exec_id=f"e{next(self._exec)}",
            order_id=order.order_id,
            perm_id=order.order_id,
            key=order.key,
            con_id=1,
            side=order.side,
            quantity=qty,
            price=fill_price,
            cum_qty=order.filled,
            avg_price=fill_price,
            time_utc=self.clock.now_utc(),
            recv_ns=self.clock.monotonic_ns(),
            order_ref=f"{order.intent_id}:{order.role}",
        )
        if order.remaining == 0:
            self._finish(order, OrderState.FILLED)
        if order.role == "entry":
            for child in self._children(order.order_id):
                child.quantity += qty
                child.active = True
        elif order.role in ("take_profit", "stop_loss"):
            for sibling in self._children(order.parent_id):
                if sibling.order_id != order.order_id and not sibling.done:
                    sibling.quantity = max(sibling.filled, sibling.quantity - qty)
                    if sibling.remaining == 0:
                        self._finish(sibling, OrderState.CANCELLED)
        if position.quantity == 0:
            for o in self.orders.values():
                if o.key == order.key and o.role in ("take_profit", "stop_loss") and not o.done:
                    self._finish(o, OrderState.CANCELLED)
        return report

    def _finish(self, order: FakeOrder, state: OrderState) -> None:
        order.done = True
        if self.bus is not None:
            self.bus.publish(
                OrderStateChanged(
                    order.order_id,
                    order.key,
                    f"{order.intent_id}:{order.role}",
                    OrderState.SUBMITTED,
                    state,
                    state.value,
                    self.clock.monotonic_ns(),
                )
            )

    def _children(self, parent_id: int) -> list[FakeOrder]:
        return [o for o in self.orders.values() if o.parent_id == parent_id]


# -------------------------------------------------------------------- builders


def instrument(
    key: str,
    *,
    tick: str = "0.01",
    multiplier: int = 1,
    watch_only: bool = False,
    permission_ok: bool = True,
    detail: str = "",
) -> VerifiedInstrument:
    return VerifiedInstrument(
        spec=InstrumentSpec(key=key, symbol=key, watch_only=watch_only),
        con_id=abs(hash(key)) % 100_000,
        min_tick=Decimal(tick),
        multiplier=multiplier,
        exchange="SMART",
        primary_exchange="",
        currency="USD",
        long_name=key,
        time_zone="US/Eastern",
        trading_hours="",
        order_types=("LMT", "MKT"),
        permission_ok=permission_ok,
        permission_detail=detail,
    )


INSTRUMENTS = {
    "AAPL": instrument("AAPL"),
    "ES": instrument("ES", tick="0.25", multiplier=50),
    "WATCH": instrument("WATCH", watch_only=True),
    "NOPERM": instrument("NOPERM", permission_ok=False, detail="no US stock permission"),
}


def quote(
    clock: Clock,
    key: str,
    bid: str | None,
    ask: str | None,
    *,
    last: str | None = None,
    flags: QuoteFlag = QuoteFlag.NONE,
    age_s: float = 0.0,
    seq: int = 1,
) -> Quote:
    return Quote(
        key=key,
        seq=seq,
        recv_ns=clock.monotonic_ns() - int(age_s * 1e9),
        recv_utc=clock.now_utc(),
        bid=Decimal(bid) if bid is not None else None,
        ask=Decimal(ask) if ask is not None else None,
        last=Decimal(last) if last is not None else None,
        flags=flags,
    )


_intent_ids = itertools.count(1)


def intent(
    key: str = "AAPL",
    side: Side = Side.BUY,
    quantity: int = 10,
    limit: str | None = "100.00",
    *,
    tp: str | None = "__auto__",
    sl: str | None = "__auto__",
    source: IntentSource = IntentSource.STRATEGY,
    order_type: OrderType = OrderType.LMT,
    reduce_only: bool = False,
) -> OrderIntent:
    """An intent; by default a bracket 1% either side of the limit (on AAPL's cent grid)."""
    lim = Decimal(limit) if limit is not None else None
    base = lim if lim is not None else Decimal("100.00")
    up, down = base * Decimal("1.01"), base * Decimal("0.99")
    if reduce_only or source is IntentSource.FLATTEN:
        auto_tp: Decimal | None = None
        auto_sl: Decimal | None = None
    elif side is Side.BUY:
        auto_tp, auto_sl = up, down
    else:
        auto_tp, auto_sl = down, up
    grid = Decimal("0.25") if key == "ES" else Decimal("0.01")

    def snap(v: Decimal | None) -> Decimal | None:
        return None if v is None else (v / grid).quantize(Decimal(1)) * grid

    take_profit = snap(auto_tp) if tp == "__auto__" else (Decimal(tp) if tp is not None else None)
    stop_loss = snap(auto_sl) if sl == "__auto__" else (Decimal(sl) if sl is not None else None)
    return OrderIntent(
        intent_id=f"i{next(_intent_ids)}",
        key=key,
        side=side,
        quantity=quantity,
        limit_price=lim,
        take_profit=take_profit,
        stop_loss=stop_loss,
        source=source,
        created_ns=0,
        order_type=order_type,
        reduce_only=reduce_only,
    )


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
