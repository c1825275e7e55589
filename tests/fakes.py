"""Test doubles shared by the engine tests: `FakeBroker`, an in-memory `OrderPort` with scriptable callbacks.

Usage:

    broker = FakeBroker(clock)                 # implements OrderPort (and BrokerSnapshotSource)
    manager = OrderManager(..., broker=broker)
    broker.attach(manager)                     # where scripted callbacks go (any OrderEvents)
    manager.submit(intent)
    broker.placed                              # every BrokerOrder placed, in order
    broker.ack(order_id)                       # openOrder + orderStatus(Submitted)
    broker.fill(order_id, 10, Decimal("100"))  # execDetails + orderStatus + commissionReport
    broker.cancelled(order_id)                 # orderStatus(Cancelled) + error 202

By default the fake does nothing on its own: placing, cancelling and global-cancelling only record the call,
and a test scripts every callback it wants (so races and omissions are explicit). `auto_ack=True` acknowledges
transmitted orders as they are placed (and releases untransmitted bracket legs when the chain's transmit=True
leg arrives, as IB does); `auto_cancel=True` answers cancels and global cancels with Cancelled + 202;
`survivors` names order ids that ignore cancels (for cancel-all tests).

Every callback helper builds the report with a fresh `recv_ns` from the clock and returns it, so a test can
replay it (duplicates) or reorder it. The `emit_*=False` flags of `fill` let a test drop parts of a sequence.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from omega_tui.core.clock import Clock, FakeClock
from omega_tui.core.ports import OrderEvents
from omega_tui.core.types import (
    BrokerError,
    BrokerOrder,
    CommissionReport,
    ExecutionReport,
    OpenOrderReport,
    OrderStatusReport,
)


@dataclass
class _Book:
    """What the fake believes about one order: the last order placed under its id and its fills."""

    order: BrokerOrder
    filled: int = 0
    notional: Decimal = Decimal(0)
    last_price: Decimal | None = None
    status: str = "PendingSubmit"
    perm_id: int = 0
    exec_ids: list[str] = field(default_factory=list)

    @property
    def avg(self) -> Decimal | None:
        return self.notional / self.filled if self.filled else None


class FakeBroker:
    """An `OrderPort` that records calls and lets tests script IB's callbacks (see the module docstring)."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        first_order_id: int = 1,
        auto_ack: bool = False,
        auto_cancel: bool = False,
        client_id: int = 17,
    ) -> None:
        self.clock: Clock = clock or FakeClock()
        self.sink: OrderEvents | None = None
        self.auto_ack = auto_ack
        self.auto_cancel = auto_cancel
        self.client_id = client_id
        self.is_connected = True
        self.placed: list[BrokerOrder] = []
        # The orders of each cork/uncork (one socket write on the real adapter), in order; `corked` while open.
        self.writes: list[list[BrokerOrder]] = []
        self.corked: list[BrokerOrder] | None = None
        self.group_sends = True  # `place_group` / `group_sender` take groups (False: the one-by-one way)
        self.group_sent: list[tuple[list[int], tuple[object, ...]]] = []  # what `group_sender`s' `send` got
        self.group_sender_stale = False  # True: the senders' `sent` reports its encoding stale after the write
        self.place_times_ns: list[int] = []
        self.cancels: list[int] = []
        self.global_cancels = 0
        self.survivors: set[int] = set()
        self.books: dict[int, _Book] = {}
        # What `open_orders()` / `executions()` return (BrokerSnapshotSource); tests fill them directly.
        self.snapshot_open_orders: list[OpenOrderReport] = []
        self.snapshot_executions: list[ExecutionReport] = []
        self._ids = itertools.count(first_order_id)
        self._exec_seq = itertools.count(1)
        self._perm_seq = itertools.count(900_000)

    def attach(self, sink: OrderEvents) -> None:
        """Route scripted callbacks to `sink` (normally the order manager)."""
        self.sink = sink

    # ------------------------------------------------------------------ OrderPort

    def next_order_ids(self, count: int) -> list[int]:
        return [next(self._ids) for _ in range(count)]

    def cork(self) -> None:
        if self.corked is None:
            self.corked = []

    def uncork(self) -> None:
        held, self.corked = self.corked, None
        if held:
            self.writes.append(held)

    def place_group(self, orders: Sequence[BrokerOrder]) -> bool:
        """As the real adapter's: one write of the group (here: `place_order` each, corked), or False with
        nothing sent while `group_sends` is off (the order manager then corks and places each itself)."""
        if not self.group_sends or self.corked is not None:
            return False
        self.write_group(orders)
        return True

    def write_group(self, orders: Sequence[BrokerOrder]) -> None:
        """`orders` as one write: `place_order` each (the same books, answers and spies), corked."""
        self.cork()
        try:
            for order in orders:
                self.place_order(order)
        finally:
            self.uncork()

    def group_sender(self, orders: Sequence[BrokerOrder], variable: Sequence[Sequence[str]]) -> _FakeGroupSender | None:
        """As the real adapter's (while `group_sends` is on): `send` records the ids and values, `sent` places
        the orders as one write (`place_order` each, corked: the same books, answers and spies)."""
        return _FakeGroupSender(self) if self.group_sends else None

    def place_order(self, order: BrokerOrder) -> None:
        self.placed.append(order)
        if self.corked is not None:
            self.corked.append(order)
        else:
            self.writes.append([order])
        self.place_times_ns.append(self.clock.monotonic_ns())
        book = self.books.get(order.order_id)
        if book is None:
            self.books[order.order_id] = _Book(order, perm_id=next(self._perm_seq))
        else:
            book.order = order  # a modification
        if self.auto_ack and order.transmit:
            # IB releases a held bracket chain when its transmit=True leg arrives.
            chain = [o for o in self.books.values() if o.status == "PendingSubmit"]
            for held in chain:
                is_child = held.order.parent_id != 0
                self.ack(held.order.order_id, "PreSubmitted" if is_child else "Submitted")

    def cancel_order(self, order_id: int) -> None:
        self.cancels.append(order_id)
        if self.auto_cancel and order_id not in self.survivors:
            self.cancelled(order_id)

    def global_cancel(self) -> None:
        self.global_cancels += 1
        if self.auto_cancel:
            for order_id, book in list(self.books.items()):
                if book.status not in ("Filled", "Cancelled", "Inactive") and order_id not in self.survivors:
                    self.cancelled(order_id)

    @property
    def connected(self) -> bool:
        return self.is_connected

    # ------------------------------------------------------------------ BrokerSnapshotSource

    async def open_orders(self) -> list[OpenOrderReport]:
        return list(self.snapshot_open_orders)

    async def executions(self) -> list[ExecutionReport]:
        return list(self.snapshot_executions)

    # ------------------------------------------------------------------ scripted callbacks

    def _sink(self) -> OrderEvents:
        if self.sink is None:
            raise RuntimeError("FakeBroker.attach(sink) first")
        return self.sink

    def order(self, order_id: int) -> BrokerOrder:
        """The last order placed under `order_id`."""
        return self.books[order_id].order

    def last_placed(self, n: int = 1) -> list[BrokerOrder]:
        return self.placed[-n:]

    def status_report(self, order_id: int, status: str, *, why_held: str = "") -> OrderStatusReport:
        book = self.books[order_id]
        return OrderStatusReport(
            order_id=order_id,
            status=status,
            filled=book.filled,
            remaining=max(book.order.quantity - book.filled, 0),
            avg_fill_price=book.avg,
            perm_id=book.perm_id,
            parent_id=book.order.parent_id,
            last_fill_price=book.last_price,
            recv_ns=self.clock.monotonic_ns(),
            why_held=why_held,
        )

    def open_order_report(self, order_id: int, status: str | None = None) -> OpenOrderReport:
        book = self.books[order_id]
        return OpenOrderReport(
            order=book.order,
            status=status or book.status,
            perm_id=book.perm_id,
            client_id=self.client_id,
            recv_ns=self.clock.monotonic_ns(),
        )

    def ack(self, order_id: int, status: str = "Submitted") -> tuple[OpenOrderReport, OrderStatusReport]:
        """openOrder then orderStatus with `status` (IB's usual acknowledgement of a new order)."""
        book = self.books[order_id]
        book.status = status
        oo = self.open_order_report(order_id, status)
        st = self.status_report(order_id, status)
        if self.sink is not None:
            self.sink.on_open_order(oo)
            self.sink.on_order_status(st)
        return oo, st

    def status(self, order_id: int, status: str) -> OrderStatusReport:
        """One orderStatus with the fake's current cumulative figures."""
        self.books[order_id].status = status
        st = self.status_report(order_id, status)
        self._sink().on_order_status(st)
        return st

    def execution(self, order_id: int, qty: int, price: Decimal, *, exec_id: str | None = None) -> ExecutionReport:
        """Book a fill and build its execDetails (not sent); cumulative figures advance."""
        book = self.books[order_id]
        book.filled += qty
        book.notional += price * qty
        book.last_price = price
        exec_id = exec_id or f"0000e{next(self._exec_seq):04d}.01"
        book.exec_ids.append(exec_id)
        avg = book.avg
        assert avg is not None
        return ExecutionReport(
            exec_id=exec_id,
            order_id=order_id,
            perm_id=book.perm_id,
            key=book.order.key,
            con_id=book.order.con_id,
            side=book.order.action,
            quantity=qty,
            price=price,
            cum_qty=book.filled,
            avg_price=avg,
            time_utc=datetime(2026, 11, 26, 14, 30, tzinfo=UTC),
            recv_ns=self.clock.monotonic_ns(),
            order_ref=book.order.order_ref,
            client_id=self.client_id,
        )

    def commission_report(self, exec_id: str, amount: Decimal = Decimal("1.00")) -> CommissionReport:
        return CommissionReport(exec_id, amount, "USD", None, self.clock.monotonic_ns())

    def fill(
        self,
        order_id: int,
        qty: int,
        price: Decimal,
        *,
        commission: Decimal | None = Decimal("1.00"),
        exec_id: str | None = None,
        emit_status: bool = True,
        emit_open_order: bool = True,
    ) -> tuple[ExecutionReport, OrderStatusReport, CommissionReport | None]:
        """A (partial) fill in IB's usual order: execDetails → orderStatus → openOrder → commissionReport."""
        sink = self._sink()
        book = self.books[order_id]
        ex = self.execution(order_id, qty, price, exec_id=exec_id)
        book.status = "Filled" if book.filled >= book.order.quantity else "Submitted"
        sink.on_execution(ex)
        st = self.status_report(order_id, book.status)
        if emit_status:
            sink.on_order_status(st)
        if emit_open_order:
            sink.on_open_order(self.open_order_report(order_id))
        cr = None
        if commission is not None:
            cr = self.commission_report(ex.exec_id, commission)
            sink.on_commission(cr)
        return ex, st, cr

    def cancelled(self, order_id: int, *, with_error: bool = True) -> OrderStatusReport:
        """orderStatus(Cancelled), then error 202 as IB sends for a cancel."""
        st = self.status(order_id, "Cancelled")
        if with_error:
            self.error(order_id, 202, "Order Canceled - reason:")
        return st

    def error(self, req_id: int, code: int, message: str = "") -> BrokerError:
        err = BrokerError(req_id, code, message, self.clock.monotonic_ns())
        if req_id in self.books and code in (201, 202):
            self.books[req_id].status = "Cancelled"
        self._sink().on_broker_error(err)
        return err

    def reject(self, order_id: int, reason: str = "insufficient margin") -> BrokerError:
        """error 201, which IB sends for an order it refuses."""
        return self.error(order_id, 201, f"Order rejected - reason:{reason}")


class _FakeGroupSender:
    """`FakeBroker.group_sender`'s sender: declines once the broker's `group_sends` is off or it is not connected."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def send(self, ids: Sequence[int], values: Sequence[object]) -> bool:
        if not self.broker.group_sends or not self.broker.is_connected or self.broker.corked is not None:
            return False
        self.broker.group_sent.append((list(ids), tuple(values)))
        return True

    def sent(self, orders: Sequence[BrokerOrder]) -> bool:
        self.broker.write_group(orders)
        return not self.broker.group_sender_stale
