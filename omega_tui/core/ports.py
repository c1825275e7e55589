"""The small interface the engines use to talk to the broker (DESIGN §4).

Only `core/broker/` imports ib_async; the order manager, risk engine and the rest depend on this Protocol,
so each is testable with a fake broker. Every method is non-blocking: it writes to the socket (through the
client's own throttle) and returns; answers come back as `OrderStatusReport`, `OpenOrderReport`,
`ExecutionReport`, `CommissionReport` and `BrokerError` through the callbacks the runtime wires.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from omega_tui.core.types import (
    BrokerError,
    BrokerOrder,
    CommissionReport,
    ExecutionReport,
    OpenOrderReport,
    OrderStatusReport,
)


class GroupSender(Protocol):
    """Sends new groups of one shape from their ids and varying values (`OrderPort.group_sender`)."""

    def send(self, ids: Sequence[int], values: Sequence[Any]) -> bool:
        """Write the group's orders (ids in leg order; `values`: each leg's varying attributes, leg by leg, in
        the order they were named) in one socket write: True, or False with NOTHING written (the caller then
        sends the group the usual way). All or nothing: an exception means none was sent."""
        ...

    def sent(self, orders: Sequence[BrokerOrder]) -> bool:
        """The `BrokerOrder`s `send` just wrote (same step of the loop), for the broker's own books. False when
        the sender finds, after the write, that what it encoded once no longer holds (a guard: see the
        adapter's); the caller then reconciles, and the sender sends nothing more."""
        ...


class OrderPort(Protocol):
    """What the order manager needs from a broker."""

    def next_order_ids(self, count: int) -> list[int]:
        """`count` fresh order ids, in increasing order (IB shares one counter for request and order ids;
        gaps are normal)."""
        ...

    def place_order(self, order: BrokerOrder) -> None:
        """Send a new order, or a modification when `order.order_id` is already known to the broker."""
        ...

    def place_group(self, orders: Sequence[BrokerOrder]) -> bool:
        """Send new orders (a bracket's legs, in order) in one socket write, as `cork`, `place_order` for each
        and `uncork` would: True once all are sent, or False with NOTHING sent (the caller then sends them that
        way). All or nothing: an exception means none was sent."""
        ...

    def group_sender(self, orders: Sequence[BrokerOrder], variable: Sequence[Sequence[str]]) -> GroupSender | None:
        """A `GroupSender` for groups shaped like `orders` (just sent) in which only the ids and, for leg k,
        the attributes named in `variable[k]` change (the parent ids follow the ids), or None if this port has
        no such short way (the caller keeps sending groups with `place_group` / `place_order`)."""
        ...

    def cork(self) -> None:
        """Hold the bytes of the following `place_order`s until `uncork` (a bracket's legs), which hands them
        to the socket in one write: same messages, same order, each still counted by the client's throttle."""
        ...

    def uncork(self) -> None:
        """Write what `cork` held (nothing if nothing was); always called after `cork`, even if a send raised."""
        ...

    def cancel_order(self, order_id: int) -> None: ...

    def global_cancel(self) -> None:
        """`reqGlobalCancel`: every order of every client, bracket children included."""
        ...

    @property
    def connected(self) -> bool: ...


class OrderEvents(Protocol):
    """What a broker calls back into (the order manager implements it)."""

    def on_order_status(self, report: OrderStatusReport) -> None: ...

    def on_open_order(self, report: OpenOrderReport) -> None: ...

    def on_execution(self, report: ExecutionReport) -> None: ...

    def on_commission(self, report: CommissionReport) -> None: ...

    def on_broker_error(self, error: BrokerError) -> None: ...


OrderEventSink = Callable[[object], None]
