"""`IbOrderAdapter` sends Omega's orders without building an ib_async `Order` first, and a bracket in one write.

- Direct encoding: once `order_wire` has a template for an order's shape (made by the first order of that shape,
  through `build_order` and the template `placeOrder`), `IbOrderAdapter.place_order` encodes the `BrokerOrder`
  itself (`_Holes`) and builds the `Order` for ib_async's books afterwards. The bytes handed to `sendMsg` must
  equal ib_async's own `Client.placeOrder(build_order(order))`, and ib_async's `Trade` must hold an order equal
  to the one ib_async's `placeOrder` would have left (its `volatility` write included), for random
  `BrokerOrder`s of every shape Omega sends, random contracts and server versions.
- Cork: between `cork()` and `uncork()` the framed messages are held and then handed to the transport in one
  `write`: the same bytes in the same order as three writes, every message still through ib_async's
  `Client.sendMsg` (its throttle counts three, and queues what exceeds `MaxRequests`, sent later on its own).
- `OrderManager._place_group` corks around a group's legs (FakeBroker records one write per bracket).
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_async import IB, Contract, Stock
from ib_async.client import Client

from omega_tui.config import ExecutionSettings, Settings, StateSettings
from omega_tui.core.broker import order_wire, wire_send
from omega_tui.core.broker.orders_adapter import IbOrderAdapter
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.orders import OrderManager
from omega_tui.core.types import BrokerOrder, OrderType, Side
from tests.data.test_order_wire import PROPERTY, VERSIONS, _client, _same, broker_orders, stock_contracts
from tests.fakes import FakeBroker
from tests.orders.conftest import instrument, intent


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _ib(version: int = 178, capture: bool = True) -> tuple[IB, list[str]]:
    ib = IB()
    ib.client.connState = Client.CONNECTED
    ib.client._serverVersion = version
    sent: list[str] = []
    if capture:
        ib.client.sendMsg = sent.append
    assert wire_send.install(ib.client)
    return ib, sent


def _wire(ib: IB) -> order_wire.OrderWire:
    wire = order_wire.wire_of(ib.client)
    assert wire is not None
    return wire


@PROPERTY
@given(st.lists(broker_orders(), min_size=1, max_size=4), stock_contracts(), st.sampled_from(VERSIONS))
def test_direct_sends_are_ib_asyncs_bytes_and_books(
    orders: list[BrokerOrder], contract: Contract, version: int
) -> None:
    ib, sent = _ib(version)
    try:
        _check_direct(ib, sent, orders, contract, version)
    finally:
        ib.client.connState = Client.DISCONNECTED  # (IB.__del__ would try to disconnect)


def _check_direct(ib: IB, sent: list[str], orders: list[BrokerOrder], contract: Contract, version: int) -> None:
    adapter = IbOrderAdapter(ib, FakeClock())
    theirs, sent_theirs = _client(False, version)
    wire = _wire(ib)
    references = []
    for round_ in range(2):  # the first order of a shape makes its template; the rest are encoded directly
        for i, order in enumerate(orders):
            order = BrokerOrder(**{**_fields(order), "order_id": 1000 * round_ + i + 1})
            adapter.register_contract(order.con_id, "K", contract)
            adapter.place_order(order)  # no running loop: ib_async's books are kept at once
            reference = IbOrderAdapter.build_order(order)
            theirs.placeOrder(order.order_id, contract, reference)
            references.append(reference)
    assert sent == sent_theirs
    assert wire.templated == 2 * len(orders) and wire.fallbacks == 0
    assert wire.direct_sends >= len(orders)  # every order of the second round at least
    # Repeat shapes go through a route's compiled encoder; only quantities beyond its fast path and the
    # unset parent id (encoded empty) take the generic one.
    assert wire.direct_generic <= 2 * sum(abs(o.quantity) >= 10**15 or o.parent_id == 2**31 - 1 for o in orders)
    assert adapter._routes or wire.direct_sends == 0
    for reference in references:
        trade = ib.wrapper.trades[(ib.wrapper.clientId, reference.orderId)]
        assert _same(vars(trade.order), {**vars(reference), "clientId": trade.order.clientId})
        assert trade.contract is not contract and vars(trade.contract) == vars(contract)  # the adapter's own copy


class _Tif(StrEnum):
    DAY = "DAY"


class _Text(str):
    def __str__(self) -> str:
        return "not what the bytes hold"


# BrokerOrder fields of types the compiled encoders do not expect: each falls back to the generic template
# encoder (or the long way), and the bytes are still ib_async's own.
_ODD_VALUES: list[dict[str, Any]] = [
    {"quantity": Decimal("100")},
    {"quantity": 10**15},
    {"quantity": -(10**15)},
    {"quantity": 2**53 + 1},
    {"quantity": True},
    {"tif": _Tif.DAY},
    {"order_ref": _Text("r:entry")},
    {"transmit": 1},
    {"what_if": 0},
    {"parent_id": True},
    {"parent_id": 2**31 - 1},
    {"oca_type": 2.0},
    {"limit_price": 101.5},
    {"aux_price": 7},
    {"account": None},
]


@pytest.mark.parametrize("odd", _ODD_VALUES, ids=lambda odd: "-".join(f"{k}={v!r}" for k, v in odd.items()))
def test_a_value_of_an_unexpected_type_is_still_ib_asyncs_bytes(odd: dict[str, Any]) -> None:
    ib, sent = _ib()
    theirs, sent_theirs = _client(False)
    adapter = IbOrderAdapter(ib, FakeClock())
    contract = Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ", localSymbol="AAPL")
    adapter.register_contract(265598, "AAPL", contract)
    usual = BrokerOrder(1, "AAPL", 265598, Side.BUY, 10, OrderType.LMT, Decimal("101.5"), order_ref="r:entry")
    orders = [
        usual,
        BrokerOrder(**{**_fields(usual), "order_id": 2}),
        BrokerOrder(**{**_fields(usual), **odd, "order_id": 3}),
    ]
    try:
        for order in orders:
            adapter.place_order(order)
            theirs.placeOrder(order.order_id, contract, IbOrderAdapter.build_order(order))
    finally:
        ib.client.connState = Client.DISCONNECTED
    assert sent == sent_theirs
    wire = _wire(ib)
    assert wire.direct_sends == 2 and wire.direct_generic == 1  # the second by the compiled encoder, the third not
    assert len(adapter._routes) == 1


def test_a_route_is_not_taken_once_what_it_depends_on_changed() -> None:
    """Same contract object with a field changed in place, another server version, encoders removed,
    templates dropped: each send is still ib_async's bytes (a new route, or the long way)."""
    ib, sent = _ib()
    theirs, sent_theirs = _client(False)
    adapter = IbOrderAdapter(ib, FakeClock())
    contract = Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ", localSymbol="AAPL")
    adapter.register_contract(265598, "AAPL", contract)
    contract = adapter._contracts[265598]  # the adapter's own copy, changed in place below (as only a bug could)
    wire = _wire(ib)
    base = BrokerOrder(1, "AAPL", 265598, Side.BUY, 10, OrderType.LMT, Decimal("101.5"), order_ref="r:entry")

    def place(order_id: int) -> None:
        order = BrokerOrder(**{**_fields(base), "order_id": order_id})
        adapter.place_order(order)
        theirs._serverVersion = ib.client._serverVersion
        theirs.placeOrder(order_id, contract, IbOrderAdapter.build_order(order))

    try:
        place(1)
        place(2)
        assert wire.direct_sends == 1
        contract.primaryExchange = "ARCA"  # in place: the route's chunk is stale
        place(3)
        contract.exchange = "IBKRATS"  # a value the template's key holds
        place(4)
        place(5)
        contract.strike = -0.0  # equal to 0.0, another field
        place(11)
        del contract.primaryExchange  # the class's default ("") from now on
        place(12)
        contract.primaryExchange = "ARCA"  # back, after the other attributes (another order in __dict__)
        place(13)
        contract.comment = "x"  # an attribute ib_async never reads: a new route, the same bytes
        place(14)
        place(15)
        ib.client._serverVersion = 170  # reconnected to another version
        place(6)
        place(7)
        wire._templates.clear()  # (what a new contract attribute or the bound does)
        wire.generation += 1
        place(8)
        place(9)
        del ib.client.__dict__["placeOrder"]  # Omega's placeOrder taken off: ib_async's own
        place(10)
    finally:
        ib.client.connState = Client.DISCONNECTED
    assert sent == sent_theirs
    assert wire.fallbacks == 0 and wire.templated == 14  # the last went through ib_async's placeOrder


def test_the_price_cache_is_bounded_and_keyed_by_what_float_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(order_wire, "MAX_PRICE_TEXTS", 8)
    monkeypatch.setitem(order_wire._PRICE_TEXTS, True, {})
    ib, sent = _ib()
    theirs, sent_theirs = _client(False)
    adapter = IbOrderAdapter(ib, FakeClock())
    base = BrokerOrder(1, "AAPL", 265598, Side.BUY, 10, OrderType.LMT, Decimal("101.5"), order_ref="r:entry")
    prices = [Decimal(f"{100 + k}.{k % 10}5") for k in range(20)] + [Decimal("190.10"), Decimal("190.1")]
    try:
        for k, price in enumerate(prices * 2):
            order = BrokerOrder(**{**_fields(base), "order_id": k + 1, "limit_price": price})
            adapter.place_order(order)
            theirs.placeOrder(
                order.order_id, Contract(conId=265598, exchange="SMART"), IbOrderAdapter.build_order(order)
            )
    finally:
        ib.client.connState = Client.DISCONNECTED
    assert sent == sent_theirs
    assert 0 < len(order_wire._PRICE_TEXTS[True]) <= 8


def _fields(order: BrokerOrder) -> dict[str, Any]:
    return {name: getattr(order, name) for name in BrokerOrder.__dataclass_fields__}


def test_not_connected_raises_and_keeps_no_books() -> None:
    ib, sent = _ib()
    adapter = IbOrderAdapter(ib, FakeClock())
    order = BrokerOrder(5, "AAPL", 265598, Side.BUY, 10, OrderType.LMT, Decimal("101.5"), order_ref="r:entry")
    adapter.place_order(order)  # makes the template
    ib.client.connState = Client.DISCONNECTED
    with pytest.raises(ConnectionError):
        adapter.place_order(BrokerOrder(**{**_fields(order), "order_id": 6}))
    assert len(sent) == 1 and (ib.wrapper.clientId, 6) not in ib.wrapper.trades


async def test_direct_sends_are_booked_on_the_next_loop_turn() -> None:
    import asyncio

    ib, sent = _ib()
    adapter = IbOrderAdapter(ib, FakeClock())
    first = BrokerOrder(5, "AAPL", 265598, Side.BUY, 10, OrderType.LMT, Decimal("101.5"), order_ref="r:entry")
    adapter.place_order(first)
    second = BrokerOrder(**{**_fields(first), "order_id": 6})
    adapter.place_order(second)
    assert _wire(ib).direct_sends == 1 and len(sent) == 2
    assert (ib.wrapper.clientId, 6) not in ib.wrapper.trades
    await asyncio.sleep(0)
    trade = ib.wrapper.trades[(ib.wrapper.clientId, 6)]
    assert trade.order.orderRef == "r:entry" and trade.order.volatility is None
    ib.client.connState = Client.DISCONNECTED


def _bracket(base: int) -> list[BrokerOrder]:
    return [
        BrokerOrder(base, "AAPL", 265598, Side.BUY, 100, OrderType.LMT, Decimal("190.05"), order_ref="i1:entry",
                    algo_strategy="Adaptive", algo_params=(("adaptivePriority", "Normal"),), transmit=False),
        BrokerOrder(base + 1, "AAPL", 265598, Side.SELL, 100, OrderType.LMT, Decimal("190.35"), parent_id=base,
                    oca_group="i1:oca", oca_type=2, order_ref="i1:take_profit", transmit=False),
        BrokerOrder(base + 2, "AAPL", 265598, Side.SELL, 100, OrderType.STP, None, Decimal("189.85"),
                    parent_id=base, oca_group="i1:oca", oca_type=2, order_ref="i1:stop_loss", transmit=True),
    ]  # fmt: skip


def _reference_bytes(legs: list[BrokerOrder], contract: Contract) -> list[bytes]:
    theirs, sent_theirs = _client(False)
    for leg in legs:
        theirs.placeOrder(leg.order_id, contract, IbOrderAdapter.build_order(leg))
    return [theirs._prefix(m.encode()) for m in sent_theirs]


def test_a_corked_bracket_is_one_write_of_the_same_bytes() -> None:
    ib, _ = _ib(capture=False)
    ib.client.MaxRequests = 0
    transport = _Transport()
    ib.client.conn.transport = transport
    contract = Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ", localSymbol="AAPL")
    adapter = IbOrderAdapter(ib, FakeClock())
    adapter.register_contract(265598, "AAPL", contract)
    for base in (10, 20):  # the first bracket makes the templates, the second is encoded directly
        transport.writes.clear()
        adapter.cork()
        for leg in _bracket(base):
            adapter.place_order(leg)
        assert transport.writes == []
        adapter.uncork()
        assert transport.writes == [b"".join(_reference_bytes(_bracket(base), contract))]
    assert ib.client.conn.numMsgSent == 6
    both = _reference_bytes(_bracket(10), contract) + _reference_bytes(_bracket(20), contract)
    assert ib.client.conn.numBytesSent == sum(map(len, both))
    assert _wire(ib).direct_sends == 3
    adapter.uncork()  # uncorked already: nothing
    assert len(transport.writes) == 1
    adapter.place_order(BrokerOrder(**{**_fields(_bracket(30)[0]), "order_id": 30}))  # not corked: written at once
    assert len(transport.writes) == 2
    ib.client.conn.transport = None
    ib.client.connState = Client.DISCONNECTED


def test_a_cork_keeps_ib_asyncs_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    """ib_async's throttle still sees three messages: the two it lets through leave in the uncork's write,
    the third waits in `_msgQ` and is written on its own when the throttle's timer sends it."""
    import ib_async.client as ib_client

    ib, _ = _ib(capture=False)
    ib.client.MaxRequests = 2
    transport = _Transport()
    ib.client.conn.transport = transport
    scheduled: list[Any] = []

    class _Loop:
        def time(self) -> float:
            return 100.0

        def call_at(self, when: float, callback: Any, *args: Any) -> None:
            scheduled.append((callback, args))

    monkeypatch.setattr(ib_client, "getLoop", lambda: _Loop())
    contract = Contract(conId=265598, exchange="SMART")
    adapter = IbOrderAdapter(ib, FakeClock())
    legs = _bracket(10)
    adapter.cork()
    for leg in legs:
        adapter.place_order(leg)
    adapter.uncork()
    expected = _reference_bytes(legs, contract)
    assert transport.writes == [expected[0] + expected[1]]
    assert len(ib.client._timeQ) == 2 and len(ib.client._msgQ) == 1 and ib.client._isThrottling
    ib.client._timeQ.clear()  # the interval passed
    (callback, args), *_ = scheduled
    callback(*args)
    assert transport.writes == [expected[0] + expected[1], expected[2]]
    assert ib.client.conn.numMsgSent == 3
    ib.client.conn.transport = None
    ib.client.connState = Client.DISCONNECTED


def test_a_leg_that_raises_still_writes_the_legs_before_it() -> None:
    ib, _ = _ib(capture=False)
    ib.client.MaxRequests = 0
    transport = _Transport()
    ib.client.conn.transport = transport
    adapter = IbOrderAdapter(ib, FakeClock())
    legs = _bracket(10)
    adapter.cork()
    adapter.place_order(legs[0])
    ib.client.connState = Client.DISCONNECTED
    try:
        with pytest.raises(ConnectionError):
            adapter.place_order(legs[1])
    finally:
        adapter.uncork()
    assert transport.writes == _reference_bytes(legs[:1], Contract(conId=265598, exchange="SMART"))
    assert "sendMsg" not in vars(ib.client.conn)
    ib.client.conn.transport = None


def test_the_order_manager_sends_a_bracket_in_one_write() -> None:
    with tempfile.TemporaryDirectory(prefix="omega-cork-") as tmp:
        state = Path(tmp)
        clock = FakeClock()
        settings = Settings(execution=ExecutionSettings(), state=StateSettings(dir=state))
        hot = HotState(state)
        journal = Journal(state, clock, fsync=False)
        try:
            broker = FakeBroker(clock)
            manager = OrderManager(settings, clock, EventBus(), hot, journal, broker)
            broker.attach(manager)
            manager.set_instruments({"AAPL": instrument("AAPL")})
            ids = manager.submit(intent(10, tp="101.00", sl="99.00", intent_id="c1"))
            assert len(ids) == 3
            assert [[o.order_id for o in write] for write in broker.writes] == [ids]
            assert broker.corked is None
        finally:
            journal.close()
            hot.close()


def test_next_order_ids_and_connected_are_ib_asyncs() -> None:
    """`next_order_ids` and `connected` read ib_async's client directly: the same ids as `Client.getReqId()`
    from the same counter (interleaved with ib_async's own requests), the same refusal when not ready, and
    `connected` is `IB.isConnected()`."""
    ib = IB()
    adapter = IbOrderAdapter(ib, FakeClock())
    client = ib.client
    assert not adapter.connected and adapter.connected == ib.isConnected()
    with pytest.raises(ConnectionError, match="Not connected"):
        adapter.next_order_ids(1)
    with pytest.raises(ConnectionError, match="Not connected"):
        client.getReqId()
    client._apiReady = True
    client._reqIdSeq = 41
    ids = [*adapter.next_order_ids(1), client.getReqId(), *adapter.next_order_ids(3), *adapter.next_order_ids(0)]
    assert ids == [41, 42, 43, 44, 45] and client.getReqId() == 46
    assert adapter.connected and adapter.connected == ib.isConnected()
    client._apiReady = False
    assert not adapter.connected and adapter.connected == ib.isConnected()


def test_a_reused_algo_params_tuple_still_routes() -> None:
    """The adapter remembers the last algo params tuple its check accepted (the order manager reuses one per
    priority): a repeat of that tuple takes the route, an equal tuple of unacceptable types does not."""
    ib, sent = _ib()
    try:
        adapter = IbOrderAdapter(ib, FakeClock())
        contract = Stock("AAPL", "SMART", "USD", conId=265598)
        adapter.register_contract(265598, "AAPL", contract)
        params = (("adaptivePriority", "Normal"),)
        legs = [
            BrokerOrder(k, "AAPL", 265598, Side.BUY, 1, OrderType.LMT, Decimal("1.00"), algo_strategy="Adaptive",
                        algo_params=params)
            for k in (1, 2, 3)
        ]  # fmt: skip
        for leg in legs:
            adapter.place_order(leg)
        # (the first of a shape makes its template through build_order; the next two take the route)
        assert adapter._pairs_ok is params and _wire(ib).direct_sends == 2
        odd = (("adaptivePriority", _Priority.NORMAL),)  # equal, but a str subclass: not `_str_pairs`
        assert odd == params
        adapter.place_order(BrokerOrder(4, "AAPL", 265598, Side.BUY, 1, OrderType.LMT, Decimal("1.00"),
                                        algo_strategy="Adaptive", algo_params=odd))  # fmt: skip
        assert adapter._pairs_ok is params and _wire(ib).direct_sends == 2  # the long way
        assert len(sent) == 4
    finally:
        ib.client.connState = Client.DISCONNECTED


class _Priority(StrEnum):
    NORMAL = "Normal"


def test_a_corked_brackets_contract_is_read_once_and_changes_between_brackets_are_seen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a corked group the routed legs share one read of the contract; a contract changed in place between
    two groups is read again (a new route or the long way): every message is still ib_async's bytes."""
    ib, sent = _ib()
    theirs, sent_theirs = _client(False)
    adapter = IbOrderAdapter(ib, FakeClock())
    contract = Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ", localSymbol="AAPL")
    adapter.register_contract(265598, "AAPL", contract)
    contract = adapter._contracts[265598]  # the adapter's own copy, changed in place below (as only a bug could)
    given_fields: list[tuple[Any, ...] | None] = []
    route_send = order_wire.DirectRoute.send

    def recorded(self: order_wire.DirectRoute, order_id: int, contract: Any, order: Any, fields: Any = None) -> bool:
        given_fields.append(fields)
        return route_send(self, order_id, contract, order, fields)

    monkeypatch.setattr(order_wire.DirectRoute, "send", recorded)

    def bracket(first_id: int) -> None:
        limit = Decimal("101.50")
        legs = [
            BrokerOrder(first_id, "AAPL", 265598, Side.BUY, 10, OrderType.LMT, limit, order_ref="r:entry",
                        algo_strategy="Adaptive", algo_params=(("adaptivePriority", "Normal"),), transmit=False),
            BrokerOrder(first_id + 1, "AAPL", 265598, Side.SELL, 10, OrderType.LMT, limit + 1, parent_id=first_id,
                        oca_group="r:oca", oca_type=2, order_ref="r:take_profit", transmit=False),
            BrokerOrder(first_id + 2, "AAPL", 265598, Side.SELL, 10, OrderType.STP, None, limit - 1,
                        parent_id=first_id, oca_group="r:oca", oca_type=2, order_ref="r:stop_loss"),
        ]  # fmt: skip
        adapter.cork()
        try:
            for leg in legs:
                adapter.place_order(leg)
        finally:
            adapter.uncork()
        for leg in legs:
            theirs.placeOrder(leg.order_id, contract, IbOrderAdapter.build_order(leg))

    try:
        bracket(1)  # makes the templates
        bracket(4)  # makes the routes
        given_fields.clear()
        bracket(7)  # the routes, one read
        assert len(given_fields) == 3 and given_fields[0] is given_fields[1] is given_fields[2] is not None
        contract.primaryExchange = "ARCA"  # in place, between two brackets
        bracket(10)
        bracket(13)
        contract.localSymbol = "AAPL2"
        bracket(16)
    finally:
        ib.client.connState = Client.DISCONNECTED
    assert sent == sent_theirs
    assert adapter._cork_read is None  # (nothing kept past the group)
