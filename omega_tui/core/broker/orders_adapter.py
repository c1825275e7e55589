"""The order port on top of ib_async: `BrokerOrder` out, normalized reports back.

`IbOrderAdapter` implements `OrderPort` (place, cancel, global cancel, order ids) and delivers what IB says
about orders to one `OrderEvents` sink as `OrderStatusReport`, `OpenOrderReport`, `ExecutionReport`,
`CommissionReport` and `BrokerError`.

Reports come from the broker's messages themselves, not from ib_async's derived events: the adapter taps the
wrapper callbacks ib_async's decoder invokes (`orderStatus`, `openOrder`, `execDetails`, `commissionReport`,
`error`), runs ib_async's own handling first, then translates. Three reasons, all seen in ib_async 2.1.0:

- ib_async drops `orderStatus` and live `execDetails`/`commissionReport` for orders it has no `Trade` for
  ("No order found"), but orders placed elsewhere or before a restart must still reach the order manager;
- it emits statuses it made up locally (`PendingCancel` on a cancel request, `Cancelled` before the 201
  reject error arrives), which would make a reject look like a cancel;
- `errorEvent` loses the advanced reject JSON.

Everything is called on the core loop; the sink is called synchronously and must not block. A sink that
raises is logged and never breaks ib_async's own processing.

Placing an order writes its bytes first and keeps ib_async's books after. `IB.placeOrder` encodes and writes
the message, then builds a `Trade` (a dozen eventkit events), emits `newOrderEvent` and logs the trade with an
eagerly formatted f-string (the `repr` of a 150-field Order and its Contract, whether INFO is enabled or
not): in ib_async 2.1.0 that bookkeeping costs about as much as the encoding itself, three times per bracket,
and it sat between the first leg's write and the transmitting leg's. So `place_order` calls
`ib.client.placeOrder` (the encoder and socket write: ib_async's own, or, where the broker session installed
Omega's encoders, `order_wire`'s byte-identical template, which `build_order`'s orders may skip the
per-attribute check of via `order_wire.vouch`) and leaves the same bookkeeping
(`_book_placed`, which mirrors `IB.placeOrder` after its send) to a `call_soon` callback. That callback runs
before the loop reads the socket again, so ib_async has its `Trade` before any openOrder, orderStatus or
execDetails about the order is decoded; anything that needs the books sooner (a cancel or modification in
the same step) settles them first. Without a running loop (unit tests) the books are kept immediately.

Two more things keep the send short. Once `order_wire` has a template for an order's shape (the first order of
each shape makes it, through `build_order` and the template `placeOrder`), `place_order` encodes the
`BrokerOrder` itself and builds the ib_async `Order` in the deferred bookkeeping, replaying what ib_async's
`placeOrder` writes on it (tests/data/test_order_direct.py: same bytes, same books). The first such order of a
shape and contract makes an `order_wire.DirectRoute` (the template compiled for `_DIRECT_SPEC`: the
BrokerOrder's fields read directly, each formatted by the code for its type), kept under (order type, algo
strategy, algo params, conId): a repeat is one dict lookup and one generated function; a field of an
unexpected type is encoded by the generic template from `_Holes` (the values `build_order` would set).
And `cork`/`uncork` (the order manager's `_place_group` around a bracket's legs) hold the framed messages
below ib_async's `Client.sendMsg`, whose throttle still counts and queues each message, and hand them to the
socket in one write: one syscall per bracket instead of three.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import operator
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ib_async import IB, Contract, Order, OrderStatus, SoftDollarTier, TagValue, Trade, TradeLogEntry
from ib_async.client import Client

from omega_tui.core.broker import order_wire, wire_send
from omega_tui.core.clock import Clock
from omega_tui.core.ports import OrderEvents
from omega_tui.core.types import (
    BrokerError,
    BrokerOrder,
    CommissionReport,
    ExecutionReport,
    OpenOrderReport,
    OrderStatusReport,
    OrderType,
    Side,
)

log = logging.getLogger(__name__)

UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INTEGER = 2**31 - 1
_SIDES = {"BOT": Side.BUY, "BUY": Side.BUY, "SLD": Side.SELL, "SELL": Side.SELL}
_ORDER_TYPES = {t.value: t for t in OrderType}
_ORDER_DEFAULTS: dict[str, Any] = dict(vars(Order()))  # every field of a default ib_async Order
# The attributes `build_order` may set to something other than a default Order's own objects; every other
# attribute is one (tests/data/test_order_wire.py checks it), which `order_wire.vouch` relies on.
BUILT_ATTRS = frozenset(
    {
        "orderId",
        "action",
        "totalQuantity",
        "orderType",
        "tif",
        "parentId",
        "ocaGroup",
        "ocaType",
        "transmit",
        "orderRef",
        "account",
        "whatIf",
        "algoParams",
        "smartComboRoutingParams",
        "orderComboLegs",
        "orderMiscOptions",
        "conditions",
        "softDollarTier",
        "lmtPrice",
        "auxPrice",
        "algoStrategy",
    }
)


_SOFT_DOLLAR_TIER = SoftDollarTier()  # (its three fields are "": shared by every _Holes, only ever read)
_NO_OPTIONS: list[TagValue] = []  # orderMiscOptions of every _Holes: an empty list, only ever read
_UNSET_PRICE: float = _ORDER_DEFAULTS["lmtPrice"]


class _Holes:
    """The values `build_order` would give an `Order`'s `order_wire.ORDER_HOLES`, without the `Order`: what a
    template encodes per send (`OrderWire.send_direct`). tests/data/test_order_wire.py proves the bytes equal
    ib_async's `Client.placeOrder(build_order(...))` for every shape Omega sends."""

    __slots__ = order_wire.ORDER_HOLES

    def __init__(self, order: BrokerOrder) -> None:
        self.action = order.action.value
        self.totalQuantity = float(order.quantity)
        limit = order.limit_price
        self.lmtPrice = _UNSET_PRICE if limit is None else float(limit)
        aux = order.aux_price
        self.auxPrice = _UNSET_PRICE if aux is None else float(aux)
        self.tif = order.tif
        self.ocaGroup = order.oca_group
        self.ocaType = order.oca_type
        self.account = order.account
        self.orderRef = order.order_ref
        self.transmit = order.transmit
        self.parentId = order.parent_id
        self.whatIf = order.what_if
        self.orderMiscOptions = _NO_OPTIONS
        self.softDollarTier = _SOFT_DOLLAR_TIER


# How the compiled template encoders read a `BrokerOrder` (order_wire.DirectSpec): what `build_order` sets, and
# `_Holes` holds, for each hole.
_DIRECT_SPEC = order_wire.DirectSpec(
    {
        "action": ("enum", "action", Side),
        "totalQuantity": ("qty", "quantity"),
        "lmtPrice": ("price", "limit_price", _UNSET_PRICE),
        "auxPrice": ("price", "aux_price", _UNSET_PRICE),
        "tif": ("str", "tif"),
        "ocaGroup": ("str", "oca_group"),
        "ocaType": ("int", "oca_type"),
        "account": ("str", "account"),
        "orderRef": ("str", "order_ref"),
        "transmit": ("bool", "transmit"),
        "parentId": ("int", "parent_id"),
        "whatIf": ("bool", "what_if"),
        "orderMiscOptions": ("const", _NO_OPTIONS),
        "softDollarTier": ("const", _SOFT_DOLLAR_TIER),
    }
)
_CONNECTED = Client.CONNECTED  # (ib_async 2.1: `Client.isConnected()` is `connState == CONNECTED`)
MAX_ROUTES = 256  # a bound on the adapter's direct routes (one per order shape and contract)


def _str_pairs(params: tuple[Any, ...]) -> bool:
    """Whether algo params are exactly what `_shape` accepts (pairs of exact str)."""
    for pair in params:
        if type(pair) is not tuple or len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not str:
            return False
    return True


def _shape(order: BrokerOrder) -> tuple[Any, ...] | None:
    """What `order_wire._order_key` makes of `build_order(order)`'s orderType/algoStrategy/algoParams/
    conditions, or None for values it would refuse (the send then goes through the `Order`)."""
    order_type = order.order_type.value
    strategy = order.algo_strategy
    if type(order_type) is not str or type(strategy) is not str:
        return None
    if not strategy:
        return (order_type, _ORDER_DEFAULTS["algoStrategy"])
    params = order.algo_params
    if not params:
        return (order_type, strategy)
    key: list[str] = []
    for pair in params:
        if len(pair) != 2 or type(pair[0]) is not str or type(pair[1]) is not str:
            return None
        key += pair
    return (order_type, strategy, tuple(key))


def _dec(value: float | None) -> Decimal | None:
    """An exact Decimal of a broker float, or None for IB's unset/empty values."""
    if value is None or value != value or value >= UNSET_DOUBLE or value <= -UNSET_DOUBLE:
        return None
    # repr gives the shortest string that round-trips: 190.05 -> Decimal("190.05"), not the binary expansion.
    return Decimal(repr(float(value)))


def _price_or_none(value: float | None) -> Decimal | None:
    """Like `_dec`, and 0 also means "none" (IB reports avgFillPrice 0 before the first fill)."""
    d = _dec(value)
    return None if d is None or d == 0 else d


def _qty(value: float | None) -> int:
    if value is None or value != value or value >= UNSET_INTEGER:
        return 0
    return round(value)


def _int(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return 0 if number == UNSET_INTEGER else number


class IbOrderAdapter:
    """`OrderPort` over one `ib_async.IB`; construct once per IB instance (taps survive reconnects).

    `register_contract(con_id, key, contract)` tells it which qualified contract and Omega key belong to a
    conId (the broker session does this after verification); orders for an unregistered conId are sent as a
    bare `Contract(conId=…, exchange="SMART")`, and reports about them carry the IB symbol as key.
    """

    def __init__(self, ib: IB, clock: Clock) -> None:
        self.ib = ib
        self.clock = clock
        self._sink: OrderEvents | None = None
        self._error_listeners: list[Callable[[BrokerError], None]] = []
        self._contracts: dict[int, Contract] = {}
        self._keys: dict[int, str] = {}
        self.sink_errors = 0
        # Sent, ib_async's Trade not made yet: (contract, the Order sent, or the BrokerOrder sent without one
        # and what the template's placeOrder writes on its Order).
        self._unbooked: list[tuple[Contract, Order | BrokerOrder, tuple[tuple[str, object], ...]]] = []
        self._unbooked_ids: set[int] = set()
        # (order type, algo strategy, algo params, conId) -> how such an order was last sent without an Order.
        self._routes: dict[tuple[Any, ...], order_wire.DirectRoute] = {}
        self._pairs_ok: tuple[Any, ...] = ()  # the last algo params `_str_pairs` accepted
        self._groups_refused: set[tuple[Any, ...]] = set()  # (routes, variable, parents) `group_sender` refused
        self._corked: list[bytes] | None = None  # the placeOrder messages held back by `cork`
        self._corked_conn: Any = None
        # (contract, names, its values) read by the first routed leg of the corked group, for the next legs.
        self._cork_read: tuple[Contract, tuple[str, ...], tuple[Any, ...]] | None = None
        self._install_taps()

    # ------------------------------------------------------------------ wiring

    def set_order_events(self, sink: OrderEvents | None) -> None:
        """Where reports go (the order manager). Reports before a sink is set are dropped."""
        self._sink = sink

    def add_error_listener(self, listener: Callable[[BrokerError], None]) -> None:
        """Also receive every `BrokerError` (the broker session turns them into connection state)."""
        self._error_listeners.append(listener)

    def register_contract(self, con_id: int, key: str, contract: Contract) -> None:
        """Orders for `con_id` go to a copy of `contract` made now, which is the adapter's own: a contract the
        caller changes later changes nothing here until it is registered again. (ib_async changes contracts in
        place, e.g. `qualifyContracts`; an instrument is verified once and traded as verified.) The routes and
        group senders made for the copy before stay with it: registering again makes new ones."""
        self._contracts[con_id] = copy.deepcopy(contract)
        self._keys[con_id] = key

    def key_of(self, con_id: int, fallback: str = "") -> str:
        return self._keys.get(con_id, fallback)

    # ------------------------------------------------------------------ OrderPort

    @property
    def connected(self) -> bool:
        return bool(self.ib.client._apiReady)  # (`IB.isConnected()`: `Client.isReady()`, read directly)

    def next_order_ids(self, count: int) -> list[int]:
        """`count` fresh ids from ib_async's shared request/order counter, as `count` calls of `Client.getReqId()`
        (ib_async 2.1's, written out: tests/data/test_order_direct.py interleaves both) would give them;
        raises ConnectionError when not connected."""
        client = self.ib.client
        if not client._apiReady:
            raise ConnectionError("Not connected")
        first = int(client._reqIdSeq)
        client._reqIdSeq = first + count
        return list(range(first, first + count))

    def place_order(self, order: BrokerOrder) -> None:
        """Send (or modify, for a known id) an order. Raises ConnectionError when not connected.

        The message is encoded and written by ib_async's client before anything else; ib_async's `Trade`
        bookkeeping follows on the next loop turn (see the module docstring). Where the broker session
        installed `order_wire`'s templates and one exists for this order's shape, the message is encoded from
        the `BrokerOrder` itself (a route's compiled encoder, see the module docstring) and the ib_async
        `Order` is built only for the books, after."""
        con_id = order.con_id
        order_id = order.order_id
        contract = self._contracts.get(con_id) or Contract(conId=con_id, exchange="SMART")
        if order_id in self._unbooked_ids:
            self._book_unbooked()  # a modification of an order sent in this same step
        wrapper = self.ib.wrapper
        trade = wrapper.trades.get((wrapper.clientId, order_id))
        if trade is not None and trade.isDone():
            # ib_async asserts on modifying a finished order; IB would refuse it anyway (error 10148/104).
            raise ValueError(f"order {order_id} is already {trade.orderStatus.status}; it cannot be modified")
        # A repeat shape: one lookup, then the route's compiled encoder (order_wire.DirectRoute).
        order_type, strategy, params = order.order_type, order.algo_strategy, order.algo_params
        key: tuple[Any, ...] | None = None
        route = None
        if type(order_type) is OrderType and type(strategy) is str and type(params) is tuple:
            # (A tuple's items cannot change: one that passed `_str_pairs` passes again; the order manager
            # reuses its algo params tuples.)
            if not params or params is self._pairs_ok or _str_pairs(params):
                if params:
                    self._pairs_ok = params
                key = (order_type._value_, strategy, params, con_id)
                route = self._routes.get(key)
        sent: Order | BrokerOrder
        fields = None
        if route is not None:
            # In a corked group (a bracket's legs, sent back to back with nothing run in between) the contract
            # is read once: its legs' routes compare the same values (the routes of one wire read the same names).
            seen = self._cork_read
            if seen is not None and seen[0] is contract and seen[1] == route.names:
                fields = seen[2]
            else:
                fields = route.read(contract)
                if self._corked is not None:
                    self._cork_read = (contract, route.names, fields)
        if route is not None and route.send(order_id, contract, order, fields):
            sent, writes = order, route.writes
        else:
            sent, writes = self._send_first(order, contract, key)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._book_placed(contract, self._order_for_books(sent, writes))
            return
        if not self._unbooked:
            loop.call_soon(self._book_unbooked)
        self._unbooked.append((contract, sent, writes))
        self._unbooked_ids.add(order_id)

    def place_group(self, orders: Sequence[BrokerOrder]) -> bool:
        """Send new orders (a bracket's legs, in order) in ONE socket write, as `cork`, `place_order` for each
        and `uncork` would send them (the same bytes, the same throttle bookkeeping, the same books after):
        True once all are sent, or False with nothing done (the caller then sends them that way).

        The short way is taken when every order is new (its id in none of ib_async's books, kept or deferred),
        its shape has a direct route to its registered contract (the first order of a shape makes its template,
        the second its route: a bracket shape's third bracket is the first sent this way), every route still
        applies, and `wire_send.send_msgs` takes the messages
        (Omega's `sendMsg` installed, nothing throttled). The routes are checked and every message encoded
        before anything is written, so a send is all or nothing; an encoder that raises leaves nothing sent.
        It skips, per leg, what `place_order` does for one order at a time (its own route check and call,
        `sendMsg`'s throttle step, the cork's held write): a bracket's transmitting leg is on the wire that
        much sooner."""
        if self._corked is not None or not orders:
            return False
        wrapper = self.ib.wrapper
        trades, client_id = wrapper.trades, wrapper.clientId
        unbooked_ids, routes, contracts = self._unbooked_ids, self._routes, self._contracts
        texts: list[str] = []
        read: tuple[Contract, tuple[str, ...], tuple[Any, ...]] | None = None  # one contract read per group
        used: list[order_wire.DirectRoute] = []
        for order in orders:
            order_id = order.order_id
            if order_id in unbooked_ids or (client_id, order_id) in trades:
                return False  # a modification: `place_order` settles the books first
            order_type, strategy, params = order.order_type, order.algo_strategy, order.algo_params
            if type(order_type) is not OrderType or type(strategy) is not str or type(params) is not tuple:
                return False
            if params and params is not self._pairs_ok:
                if not _str_pairs(params):
                    return False
                self._pairs_ok = params
            con_id = order.con_id
            route = routes.get((order_type._value_, strategy, params, con_id))
            contract = contracts.get(con_id)
            if route is None or contract is None:
                return False
            if read is not None and read[0] is contract and read[1] == route.names:
                fields = read[2]
            else:
                fields = route.read(contract)
                read = (contract, route.names, fields)
            text = route.message(order_id, contract, order, fields)
            if text is None:
                return False
            texts.append(text)
            used.append(route)
        if not wire_send.send_msgs(self.ib.client, texts):
            return False
        unbooked = self._unbooked
        if not unbooked:  # (send_msgs ran on a running loop)
            asyncio.get_running_loop().call_soon(self._book_unbooked)
        for order, route in zip(orders, used, strict=True):
            wire = route.wire
            wire.templated += 1
            wire.direct_sends += 1
            unbooked.append((contracts[order.con_id], order, route.writes))
            unbooked_ids.add(order.order_id)
        return True

    def group_sender(self, orders: Sequence[BrokerOrder], variable: Sequence[Sequence[str]]) -> GroupSender | None:
        """A `GroupSender` for groups shaped like `orders` (just sent: each has a direct route) in which only the
        ids and leg k's attributes `variable[k]` change, or None when that is not possible here (no route,
        unregistered contract, a shape the compiled encoders do not cover). Checked once against the
        routes' own encoders on `orders` (see `GroupSender`)."""
        routes: list[order_wire.DirectRoute] = []
        ids = [order.order_id for order in orders]
        if not orders or len({order.con_id for order in orders}) != 1:
            return None
        parents: list[int | None] = []
        values: list[Any] = []
        for order, names in zip(orders, variable, strict=True):
            order_type, strategy, params = order.order_type, order.algo_strategy, order.algo_params
            if type(order_type) is not OrderType or type(strategy) is not str or type(params) is not tuple:
                return None
            route = self._routes.get((order_type._value_, strategy, params, order.con_id))
            contract = self._contracts.get(order.con_id)
            if route is None or contract is None or route.contract is not contract or route.render is None:
                return None
            if {"order_id", "parent_id"} & set(names) or order.parent_id not in (0, *ids):
                return None
            routes.append(route)
            parents.append(ids.index(order.parent_id) if order.parent_id else None)
            values += [getattr(order, name) for name in names]
        first = routes[0]
        if any(
            r.wire is not first.wire
            or r.contract is not first.contract
            or r.generation != first.generation
            or r.installed is not first.installed
            or r.version != first.version
            or r.chunk != first.chunk
            for r in routes
        ):
            return None
        refusal = (*routes, *map(tuple, variable), *parents)
        if refusal in self._groups_refused:
            return None
        render = order_wire.compile_group([r.template for r in routes], _DIRECT_SPEC, orders, variable, parents)
        messages = [r.message(o.order_id, r.contract, o) for r, o in zip(routes, orders, strict=True)]
        expected = [m for m in messages if m is not None]
        if (
            render is None
            or len(expected) != len(messages)
            or render(ids, first.chunk, values) != wire_send.frame(expected)
        ):
            if render is not None:
                log.error("the compiled group encoder differs from the legs' own; not using it for %s", orders)
            if len(self._groups_refused) >= MAX_ROUTES:
                self._groups_refused.clear()
            self._groups_refused.add(refusal)  # (decided for these routes: not tried again)
            return None
        return GroupSender(self, orders[0].con_id, routes, render)

    def _send_first(
        self, order: BrokerOrder, contract: Contract, key: tuple[Any, ...] | None
    ) -> tuple[Order | BrokerOrder, tuple[tuple[str, object], ...]]:
        """Send an order no route covers: directly if its shape has a template (and keep a route for the next
        ones), else through `build_order` and the client's `placeOrder`. Returns what was sent and what the
        template's placeOrder writes on its Order (for the books)."""
        client = self.ib.client
        wire = order_wire.wire_of(client)
        shape = None if wire is None else _shape(order)
        template = None if shape is None or wire is None else wire.direct(contract, shape, BUILT_ATTRS)
        if template is not None and wire is not None:
            route = None if key is None else wire.route(template, contract, _DIRECT_SPEC, _Holes, order.order_id, order)
            if key is not None and route is not None and route.send(order.order_id, contract, order):
                if len(self._routes) >= MAX_ROUTES:
                    self._routes.clear()
                self._routes[key] = route
            else:
                wire.send_direct(template, order.order_id, contract, _Holes(order))
            return order, tuple(template.writes)
        sent = self.build_order(order)
        order_wire.vouch(sent, BUILT_ATTRS)  # (for the template encoder, when installed: see build_order)
        try:
            client.placeOrder(order.order_id, contract, sent)  # ConnectionError if not connected
        finally:
            order_wire.unvouch()  # never left for a later send (ib_async's own placeOrder does not consume it)
        return sent, ()

    def cork(self) -> None:
        """Hold the bytes of the next sends until `uncork`, which hands them to the socket in one write (a
        bracket's legs: one write instead of three). Each message still goes through ib_async's
        `Client.sendMsg` (its throttle counts and queues it as before); only the connection's write of the
        framed bytes is held, in order, so the stream carries the same bytes in the same order. A routed leg's
        contract is read once per group (the legs' routes compare that read): nothing may change a contract's
        attributes between `cork` and `uncork` (the order manager's `_place_group` sends the legs back to back)."""
        if self._corked is not None:
            return
        self._cork_read = None
        conn = self.ib.client.conn
        held: list[bytes] = []
        self._corked = held
        self._corked_conn = conn
        conn.sendMsg = held.append  # an instance attribute shadowing `Connection.sendMsg` until `uncork`

    def uncork(self) -> None:
        """Write what `cork` held (one `transport.write`), with `Connection.sendMsg`'s counters."""
        held, conn = self._corked, self._corked_conn
        if held is None:
            return
        self._corked = self._corked_conn = None
        self._cork_read = None
        conn.__dict__.pop("sendMsg", None)
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        transport = conn.transport
        if transport:  # (as Connection.sendMsg: nothing is written without a transport)
            transport.write(data)
            conn.numBytesSent += len(data)
            conn.numMsgSent += len(held)

    def _order_for_books(self, sent: Order | BrokerOrder, writes: tuple[tuple[str, object], ...]) -> Order:
        if isinstance(sent, Order):
            return sent
        ib_order = self.build_order(sent)
        for name, value in writes:  # what ib_async's placeOrder would have written on it
            setattr(ib_order, name, value)
        return ib_order

    def _book_unbooked(self) -> None:
        pending, self._unbooked = self._unbooked, []
        self._unbooked_ids.clear()
        for contract, sent, writes in pending:
            try:
                self._book_placed(contract, self._order_for_books(sent, writes))
            except Exception:
                log.exception("could not record order %s in ib_async's trades", sent)

    def _book_placed(self, contract: Contract, order: Order) -> None:
        """What `IB.placeOrder` (ib_async 2.1) does after sending, with a lazily formatted log line."""
        ib = self.ib
        wrapper = ib.wrapper
        now = datetime.now(wrapper.defaultTimezone)
        key = wrapper.orderKey(wrapper.clientId, order.orderId, order.permId)
        trade = wrapper.trades.get(key)
        if trade is not None:
            if trade.orderStatus.status in OrderStatus.DoneStates:
                return  # finished meanwhile; IB answers the modification with an error
            trade.log.append(TradeLogEntry(now, trade.orderStatus.status, "Modify"))
            log.debug("placeOrder: modify order %s", order.orderId)
            trade.modifyEvent.emit(trade)
            ib.orderModifyEvent.emit(trade)
            return
        order.clientId = wrapper.clientId
        status = OrderStatus(orderId=order.orderId, status=OrderStatus.PendingSubmit)
        trade = Trade(contract, order, status, [], [TradeLogEntry(now, status.status)])
        wrapper.trades[key] = trade
        log.debug("placeOrder: new order %s %s", order.orderId, order.orderRef)
        ib.newOrderEvent.emit(trade)

    @staticmethod
    def build_order(order: BrokerOrder) -> Order:
        """The ib_async `Order` for a `BrokerOrder` (prices as floats of the exact tick-grid Decimals).

        Built from a copy of a default `Order`'s fields: ib_async's `Order` is a 139-field dataclass whose
        generated `__init__` costs ~7 us, twice the copy; the list fields get fresh lists, as
        `default_factory` would give them."""
        fields = dict(_ORDER_DEFAULTS)
        fields.update(
            orderId=order.order_id,
            action=order.action.value,
            totalQuantity=float(order.quantity),
            orderType=order.order_type.value,
            tif=order.tif,
            parentId=order.parent_id,
            ocaGroup=order.oca_group,
            ocaType=order.oca_type,
            transmit=order.transmit,
            orderRef=order.order_ref,
            account=order.account,
            whatIf=order.what_if,
            algoParams=[],
            smartComboRoutingParams=[],
            orderComboLegs=[],
            orderMiscOptions=[],
            conditions=[],
            softDollarTier=SoftDollarTier(),
        )
        if order.limit_price is not None:
            fields["lmtPrice"] = float(order.limit_price)
        if order.aux_price is not None:
            fields["auxPrice"] = float(order.aux_price)
        if order.algo_strategy:
            fields["algoStrategy"] = order.algo_strategy
            fields["algoParams"] = [TagValue(tag, value) for tag, value in order.algo_params]
        ib_order: Order = Order.__new__(Order)
        ib_order.__dict__ = fields
        return ib_order

    def cancel_order(self, order_id: int) -> None:
        """Ask IB to cancel; the answer comes back as a status report (or error 10147 if IB does not know it)."""
        if self._unbooked:
            self._book_unbooked()
        trade = self.ib.wrapper.trades.get((self.ib.wrapper.clientId, order_id))
        if trade is not None:
            self.ib.cancelOrder(trade.order)
        else:
            self.ib.client.cancelOrder(order_id, "")

    def global_cancel(self) -> None:
        if self._unbooked:
            self._book_unbooked()
        self.ib.reqGlobalCancel()

    # ------------------------------------------------------------------ taps on ib_async's wrapper

    def _install_taps(self) -> None:
        wrapper = self.ib.wrapper
        # The decoder looks these methods up on the wrapper instance for every message, so instance
        # attributes take effect immediately and stay in place across reconnects (the wrapper is reused).
        wrapper.orderStatus = self._tap(wrapper.orderStatus, self._on_order_status)
        wrapper.openOrder = self._tap(wrapper.openOrder, self._on_open_order)
        wrapper.execDetails = self._tap(wrapper.execDetails, self._on_exec_details)
        wrapper.commissionReport = self._tap(wrapper.commissionReport, self._on_commission, before=True)
        # Before: ib_async's handler ends the request an error belongs to, and we need to know it was one.
        wrapper.error = self._tap(wrapper.error, self._on_error, before=True)

    def _tap(
        self,
        original: Callable[..., Any],
        translate: Callable[..., Callable[[], None] | None],
        before: bool = False,
    ) -> Callable[..., None]:
        """Call ib_async's handler and our translation; `before` translates first (the original mutates)."""

        def handler(*args: Any) -> None:
            deliver = None
            if before:
                deliver = self._safe_translate(translate, args)
            original(*args)
            if not before:
                deliver = self._safe_translate(translate, args)
            if deliver is not None:
                try:
                    deliver()
                except Exception:
                    self.sink_errors += 1
                    log.exception("order event sink failed")

        return handler

    @staticmethod
    def _safe_translate(
        translate: Callable[..., Callable[[], None] | None], args: tuple[Any, ...]
    ) -> Callable[[], None] | None:
        try:
            return translate(*args)
        except Exception:
            log.exception("could not translate broker message %r", args)
            return None

    def _mine(self, client_id: Any) -> bool:
        """Whether an order message belongs to this connection. Order ids are per client, so another API
        client's order 7 is not ours; only the master client 0 sees (and may manage) everyone's orders."""
        mine = _int(self.ib.client.clientId)
        return mine == 0 or _int(client_id) == mine

    def _on_order_status(
        self,
        order_id: int,
        status: str,
        filled: float,
        remaining: float,
        avg_fill_price: float,
        perm_id: int,
        parent_id: int,
        last_fill_price: float,
        client_id: int,
        why_held: str,
        mkt_cap_price: float = 0.0,
    ) -> Callable[[], None] | None:
        sink = self._sink
        if sink is None or not self._mine(client_id):
            return None
        report = OrderStatusReport(
            order_id=_int(order_id),
            status=status,
            filled=_qty(filled),
            remaining=_qty(remaining),
            avg_fill_price=_price_or_none(avg_fill_price),
            perm_id=_int(perm_id),
            parent_id=_int(parent_id),
            last_fill_price=_price_or_none(last_fill_price),
            recv_ns=self.clock.monotonic_ns(),
            why_held=why_held or "",
        )
        return lambda: sink.on_order_status(report)

    def _on_open_order(self, order_id: int, contract: Contract, order: Order, state: Any) -> Callable[[], None] | None:
        sink = self._sink
        if sink is None or order.whatIf or not self._mine(order.clientId):
            return None  # what-if answers are the verification's business; other clients' orders are theirs
        report = self.open_order_report(order_id, contract, order, str(state.status))
        return lambda: sink.on_open_order(report)

    def broker_order_of(self, order_id: int, contract: Contract, order: Order) -> BrokerOrder:
        """What IB says an order is, as a `BrokerOrder` (unknown order types are kept as LMT, logged)."""
        con_id = _int(contract.conId)
        order_type = _ORDER_TYPES.get(str(order.orderType))
        if order_type is None:
            log.warning("order %s has order type %r, which Omega does not model", order_id, order.orderType)
            order_type = OrderType.LMT
        return BrokerOrder(
            order_id=_int(order_id),
            key=self._keys.get(con_id, str(contract.localSymbol or contract.symbol)),
            con_id=con_id,
            action=_SIDES.get(str(order.action), Side.BUY),
            quantity=_qty(order.totalQuantity),
            order_type=order_type,
            limit_price=_dec(order.lmtPrice),
            aux_price=_dec(order.auxPrice),
            tif=str(order.tif or ""),
            parent_id=_int(order.parentId),
            oca_group=str(order.ocaGroup or ""),
            oca_type=_int(order.ocaType),
            transmit=bool(order.transmit),
            order_ref=str(order.orderRef or ""),
            algo_strategy=str(order.algoStrategy or ""),
            algo_params=tuple((str(tv.tag), str(tv.value)) for tv in (order.algoParams or ())),
            what_if=bool(order.whatIf),
            account=str(order.account or ""),
        )

    def _on_exec_details(self, req_id: int, contract: Contract, execution: Any) -> Callable[[], None] | None:
        sink = self._sink
        if sink is None or not self._mine(execution.clientId):
            return None
        report = self.execution_report(contract, execution)
        return lambda: sink.on_execution(report)

    def execution_report(self, contract: Contract, execution: Any) -> ExecutionReport:
        """An ib_async `Execution` (live or from `reqExecutions`) as an `ExecutionReport`."""
        con_id = _int(contract.conId)
        when = execution.time
        if isinstance(when, datetime):
            time_utc = when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
        else:
            time_utc = self.clock.now_utc()
        return ExecutionReport(
            exec_id=str(execution.execId),
            order_id=_int(execution.orderId),
            perm_id=_int(execution.permId),
            key=self._keys.get(con_id, str(contract.localSymbol or contract.symbol)),
            con_id=con_id,
            side=_SIDES[str(execution.side)],
            quantity=_qty(execution.shares),
            price=_dec(execution.price) or Decimal(0),
            cum_qty=_qty(execution.cumQty),
            avg_price=_dec(execution.avgPrice) or Decimal(0),
            time_utc=time_utc,
            recv_ns=self.clock.monotonic_ns(),
            order_ref=str(execution.orderRef or ""),
            client_id=_int(execution.clientId),
        )

    def open_order_report(self, order_id: int, contract: Contract, order: Order, status: str) -> OpenOrderReport:
        """An ib_async order (live or from `reqAllOpenOrders`) as an `OpenOrderReport`."""
        return OpenOrderReport(
            order=self.broker_order_of(order_id, contract, order),
            status=status,
            perm_id=_int(order.permId),
            client_id=_int(order.clientId),
            recv_ns=self.clock.monotonic_ns(),
        )

    def _on_commission(self, report: Any) -> Callable[[], None] | None:
        sink = self._sink
        if sink is None:
            return None
        # Read before ib_async's handler runs: it rewrites an unset realizedPNL to 0.0 in place.
        out = CommissionReport(
            exec_id=str(report.execId),
            commission=_dec(report.commission) or Decimal(0),
            currency=str(report.currency),
            realized_pnl=_dec(report.realizedPNL),
            recv_ns=self.clock.monotonic_ns(),
        )
        return lambda: sink.on_commission(out)

    def _on_error(self, req_id: int, code: int, message: str, advanced: str = "") -> Callable[[], None] | None:
        error = BrokerError(
            req_id=_int(req_id) if req_id != -1 else -1,
            code=_int(code),
            message=str(message),
            recv_ns=self.clock.monotonic_ns(),
            advanced=str(advanced or ""),
        )
        wrapper = self.ib.wrapper
        # Errors of our own data requests (historical data, contract details, market data, what-if) are not
        # about orders; everything else (order ids, including unknown ones, and system notices) is.
        for_orders = not (req_id in wrapper._futures or req_id in wrapper.reqId2Ticker)
        listeners = list(self._error_listeners)
        sink = self._sink

        def deliver() -> None:
            for listener in listeners:
                try:
                    listener(error)
                except Exception:
                    log.exception("broker error listener failed")
            if sink is not None and for_orders:
                sink.on_broker_error(error)

        return deliver


_RETIRED = -1  # a retired `GroupSender`'s template generation: no wire's is negative


class GroupSender:
    """Sends groups of new orders of one shape (a bracket's legs to one contract, as `IbOrderAdapter.group_sender`
    saw them) from their ids and the values that vary, in ONE socket write, through one generated encoder
    (`order_wire.compile_group`: the legs' templates, every attribute that does not vary encoded once, the
    messages framed for the socket). The bytes are the legs' own routes' (`DirectRoute.message`), which the
    encoder was checked against when made; tests/data/test_group_send.py compares them with the one-by-one way
    for random groups.

    `send(ids, values)` is all or nothing: True once every message is written, False with nothing written when
    the routes no longer apply (the client, its encoders, its server version or templates changed, the contract
    was registered anew; not connected), a value is not of the spec's type, an id is known already, or
    `wire_send.send_framed` would not take them (the throttle): the caller then sends the group the usual way.
    The caller then hands the sent `BrokerOrder`s to `sent` (same step of the loop), for ib_async's books.

    The contract's attributes are checked in `sent`, after the write, not before it: the contract is the
    adapter's own copy (`register_contract`), which nothing changes, so the check is a guard against a bug, not
    a condition of the send. Should it ever fail, `sent` says so (False): the group went out with the contract as
    registered, and this sender sends nothing more."""

    __slots__ = ("_adapter", "_chunk", "_client", "_con_id", "_contract", "_count", "_generation", "_installed",
                 "_reads", "_render", "_routes", "_version", "_wire")  # fmt: skip

    def __init__(
        self,
        adapter: IbOrderAdapter,
        con_id: int,
        routes: Sequence[order_wire.DirectRoute],
        render: Callable[..., Any],
    ) -> None:
        self._adapter = adapter
        self._con_id = con_id
        self._routes = tuple(routes)
        self._count = len(routes)
        first = routes[0]  # (the routes share all of these: `IbOrderAdapter.group_sender` checks)
        self._wire = first.wire
        self._client = first.wire.client
        self._generation = first.generation
        self._installed = first.installed
        self._version = first.version
        self._contract = first.contract
        self._chunk = first.chunk
        self._render = render
        # Each distinct contract read of the legs' routes, with the objects it must still give (`sent`).
        seen: dict[tuple[str, ...], order_wire.DirectRoute] = {}
        for route in routes:
            seen.setdefault(route.names, route)
        self._reads = tuple((route.read, route.fields) for route in seen.values())

    def send(self, ids: Sequence[int], values: Sequence[Any]) -> bool:
        adapter = self._adapter
        wire = self._wire
        client = self._client
        if (
            adapter._corked is not None
            or wire.generation != self._generation
            or client.__dict__.get("placeOrder") is not self._installed
            or client.connState != _CONNECTED
            or client._serverVersion != self._version
            or adapter._contracts.get(self._con_id) is not self._contract
        ):
            return False
        wrapper = adapter.ib.wrapper
        trades, client_id, unbooked = wrapper.trades, wrapper.clientId, adapter._unbooked_ids
        for order_id in ids:
            if order_id in unbooked or (client_id, order_id) in trades:
                return False
        data = self._render(ids, self._chunk, values)
        count = self._count
        if data is None or not wire_send.send_framed(client, data, count):
            return False
        wire.templated += count
        wire.direct_sends += count
        return True

    def sent(self, orders: Sequence[BrokerOrder]) -> bool:
        """Book the orders `send` wrote (ib_async's `Trade`s follow on the next loop turn, as for `place_order`);
        then check that the contract still reads as when this sender was made. False if not (see the class)."""
        adapter = self._adapter
        unbooked = adapter._unbooked
        if not unbooked:
            asyncio.get_running_loop().call_soon(adapter._book_unbooked)
        contract = self._contract
        for order, route in zip(orders, self._routes, strict=True):
            unbooked.append((contract, order, route.writes))
            adapter._unbooked_ids.add(order.order_id)
        if self._contract_unchanged():
            return True
        log.error("the registered contract of conId %s changed in place; its group sender is retired", self._con_id)
        self._generation = _RETIRED  # (`send` declines from now on)
        return False

    def _contract_unchanged(self) -> bool:
        """Every attribute the routes' encoders read from the contract is still the object they encoded."""
        contract = self._contract
        for read, fields in self._reads:
            try:
                current = read(contract)
            except AttributeError:  # (an attribute deleted from a contract whose class has no default for it)
                return False
            if not all(map(operator.is_, current, fields)):
                return False
        return True
