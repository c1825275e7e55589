"""The template `placeOrder` (core/broker/order_wire.py) writes byte-for-byte what ib_async 2.1's writes.

A client with Omega's encoders installed and a client with ib_async's own `Client.placeOrder` and
`Client.send` (no socket: connected by hand, `sendMsg` captured) place the same orders; the strings handed
to `sendMsg` must be equal, and so must the orders afterwards (ib_async's `placeOrder` writes on them). For
the orders Omega sends (`IbOrderAdapter.build_order` of random `BrokerOrder`s, every shape, server versions
157-178, random contracts) the template must also have been used; for anything else (random ib_async orders,
BAG and delta-neutral contracts, conditions, non-default fields, not connected, ib_async changing under us)
the result must still be ib_async's, through its own encoder.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ib_async import ComboLeg, Contract, DeltaNeutralContract, Order, Stock, TagValue
from ib_async.client import Client
from ib_async.order import PriceCondition
from ib_async.util import UNSET_DOUBLE
from ib_async.wrapper import Wrapper

from omega_tui.core.broker import order_wire, wire_send
from omega_tui.core.broker.orders_adapter import _ORDER_DEFAULTS, BUILT_ATTRS, IbOrderAdapter
from omega_tui.core.clock import FakeClock
from omega_tui.core.types import BrokerOrder, OrderType, Side
from tests.data.test_wire_send import contracts as any_contracts
from tests.data.test_wire_send import orders as any_orders
from tests.data.wire_fakes import FakeLoop

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VERSIONS = [157, 158, 160, 162, 166, 169, 170, 176, 177, 178]


def _client(ours: bool, version: int = 178) -> tuple[Client, list[str]]:
    client = Client(Wrapper(None))
    client.connState = Client.CONNECTED
    client._serverVersion = version
    sent: list[str] = []
    client.sendMsg = sent.append
    if ours:
        assert wire_send.install(client)
    return client, sent


def _wire(client: Client) -> order_wire.OrderWire:
    wire = order_wire.wire_of(client)
    assert wire is not None
    return wire


# Clients kept across examples, so templates are reused (and evicted) over many contracts and orders.
_SHARED: dict[int, tuple[Client, list[str]]] = {}


def _shared(version: int) -> tuple[Client, list[str]]:
    if version not in _SHARED:
        _SHARED[version] = _client(True, version)
    client, sent = _SHARED[version]
    sent.clear()
    return client, sent


def _same(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Equal dicts, a NaN equal to a NaN (a Decimal NaN price is a float NaN on both sides)."""
    return ours.keys() == theirs.keys() and all(
        ours[k] == theirs[k] or (ours[k] != ours[k] and theirs[k] != theirs[k]) for k in ours
    )


# ---------------------------------------------------------------- strategies

texts = st.text(max_size=16)  # any unicode (NUL and non-BMP included)
prices = st.integers(0, 10).flatmap(
    lambda places: st.decimals(
        min_value=Decimal("-1000000"), max_value=Decimal("10000000"), places=places, allow_nan=False
    )
) | st.sampled_from(  # what str() writes in other notations, and the values float() makes special
    [
        Decimal("1E+2"),
        Decimal("1e-7"),
        Decimal("-0.00"),
        Decimal("190.10"),
        Decimal("123456789012345678.9"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        Decimal("1.7976931348623157E+308"),
    ]
)
# Quantities: the usual ones, and some too large for a float to hold exactly (or for the compiled encoders'
# fast path, which falls back to the generic one beyond 10**15).
quantities = st.integers(0, 10**9) | st.integers(-(2**62), 2**62)


@st.composite
def broker_orders(draw: st.DrawFn) -> BrokerOrder:
    """What Omega sends: every order type, with or without prices, OCA, parent, algo, what-if, account."""
    algo = draw(st.sampled_from(["", "Adaptive", "Adaptive", "Twap"]))
    params: tuple[tuple[str, str], ...] = ()
    if algo == "Adaptive":
        params = (("adaptivePriority", draw(st.sampled_from(["Patient", "Normal", "Urgent"]))),)
    elif algo:
        params = tuple(draw(st.lists(st.tuples(texts, texts), max_size=3)))
    return BrokerOrder(
        order_id=draw(st.integers(1, 2**31 - 2)),
        key="K",
        con_id=draw(st.integers(1, 10**9)),
        action=draw(st.sampled_from(list(Side))),
        quantity=draw(quantities),
        order_type=draw(st.sampled_from(list(OrderType))),
        limit_price=draw(st.none() | prices),
        aux_price=draw(st.none() | prices),
        tif=draw(st.sampled_from(["DAY", "GTC", "IOC", "", "OPG"]) | texts),
        parent_id=draw(st.sampled_from([0, 0, 1]) | st.integers(0, 2**31 - 1)),
        oca_group=draw(st.sampled_from(["", "omega-oca-1"]) | texts),
        oca_type=draw(st.integers(0, 3)),
        transmit=draw(st.booleans()),
        order_ref=draw(texts),
        algo_strategy=algo,
        algo_params=params,
        what_if=draw(st.booleans()),
        account=draw(st.sampled_from(["", "DU1234567"]) | texts),
    )


@st.composite
def stock_contracts(draw: st.DrawFn) -> Contract:
    """Contracts Omega trades: a qualified stock (any exchange, ids, strike) or the bare conId fallback."""
    if draw(st.booleans()):
        return Contract(conId=draw(st.integers(0, 10**9)), exchange="SMART")
    contract = Stock(draw(texts), draw(st.sampled_from(["SMART", "IBKRATS", "NASDAQ", "ARCA"])), "USD")
    contract.conId = draw(st.integers(0, 2**40))
    contract.primaryExchange = draw(st.sampled_from(["", "NASDAQ", "NYSE"]))
    contract.localSymbol = draw(texts)
    contract.tradingClass = draw(texts)
    contract.strike = draw(st.sampled_from([0.0, -0.0, 1.5, UNSET_DOUBLE]))
    contract.secIdType = draw(st.sampled_from(["", "ISIN"]))
    contract.secId = draw(texts)
    return contract


# ---------------------------------------------------------------- Omega's orders: byte-identical, templated


@PROPERTY
@given(st.lists(broker_orders(), min_size=1, max_size=4), stock_contracts(), st.sampled_from(VERSIONS))
def test_omegas_orders_are_templated_and_byte_identical(
    orders: list[BrokerOrder], contract: Contract, version: int
) -> None:
    theirs, sent_theirs = _client(False, version)
    ours, sent_ours = _shared(version)
    wire = _wire(ours)
    before = wire.templated
    for order in orders:
        ib_theirs = IbOrderAdapter.build_order(order)
        ib_ours = IbOrderAdapter.build_order(order)
        theirs.placeOrder(order.order_id, contract, ib_theirs)
        order_wire.vouch(ib_ours, BUILT_ATTRS)
        ours.placeOrder(order.order_id, contract, ib_ours)
        assert _same(vars(ib_ours), vars(ib_theirs))  # what ib_async writes on the order (volatility) too
    assert sent_ours == sent_theirs
    assert wire.templated - before == len(orders)


@PROPERTY
@given(st.lists(broker_orders(), min_size=1, max_size=4), stock_contracts(), st.sampled_from(VERSIONS))
def test_unvouched_orders_are_checked_attribute_by_attribute(
    orders: list[BrokerOrder], contract: Contract, version: int
) -> None:
    theirs, sent_theirs = _client(False, version)
    ours, sent_ours = _client(True, version)
    for order in orders:
        theirs.placeOrder(order.order_id, contract, IbOrderAdapter.build_order(order))
        ours.placeOrder(order.order_id, contract, IbOrderAdapter.build_order(order))
    assert sent_ours == sent_theirs
    assert _wire(ours).templated == len(orders)


@PROPERTY
@given(broker_orders())
def test_build_order_changes_only_the_attributes_it_vouches_for(order: BrokerOrder) -> None:
    """`order_wire.vouch(order, BUILT_ATTRS)` promises every other attribute is a default Order's object."""
    built = vars(IbOrderAdapter.build_order(order))
    default = vars(Order())
    assert built.keys() == default.keys()
    changed = {name for name, value in built.items() if value is not default[name]}
    assert changed <= BUILT_ATTRS
    assert all(_ORDER_DEFAULTS[name] is default[name] for name in default.keys() - BUILT_ATTRS)


def test_a_bracket_by_hand() -> None:
    """The bracket Omega sends (Adaptive LMT parent, LMT take-profit, STP stop-loss), one template each."""
    contract = Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ", localSymbol="AAPL")
    legs = [
        BrokerOrder(7, "AAPL", 265598, Side.BUY, 100, OrderType.LMT, Decimal("190.05"), order_ref="i1:entry",
                    algo_strategy="Adaptive", algo_params=(("adaptivePriority", "Normal"),), transmit=False),
        BrokerOrder(8, "AAPL", 265598, Side.SELL, 100, OrderType.LMT, Decimal("190.35"), parent_id=7,
                    oca_group="i1:oca", oca_type=2, order_ref="i1:take_profit", transmit=False),
        BrokerOrder(9, "AAPL", 265598, Side.SELL, 100, OrderType.STP, None, Decimal("189.85"), parent_id=7,
                    oca_group="i1:oca", oca_type=2, order_ref="i1:stop_loss", transmit=True),
    ]  # fmt: skip
    theirs, sent_theirs = _client(False)
    ours, sent_ours = _client(True)
    for _ in range(2):
        for leg in legs:
            theirs.placeOrder(leg.order_id, contract, IbOrderAdapter.build_order(leg))
            ib_order = IbOrderAdapter.build_order(leg)
            order_wire.vouch(ib_order, BUILT_ATTRS)
            ours.placeOrder(leg.order_id, contract, ib_order)
    assert sent_ours == sent_theirs
    assert "\0i1:stop_loss\0" in sent_ours[-1] and "\0adaptivePriority\0Normal\0" in sent_ours[0]
    wire = _wire(ours)
    assert (wire.templated, wire.fallbacks) == (6, 0)
    assert len(wire._templates) == 3  # one per shape, reused the second time


def test_the_adapter_sends_through_the_template_and_keeps_ib_asyncs_books(fake_clock: FakeClock) -> None:
    from ib_async import IB

    ib = IB()
    ib.client.connState = Client.CONNECTED
    ib.client._serverVersion = 178
    sent: list[str] = []
    ib.client.sendMsg = sent.append
    wire_send.install(ib.client)
    adapter = IbOrderAdapter(ib, fake_clock)
    order = BrokerOrder(5, "AAPL", 265598, Side.BUY, 10, OrderType.LMT, Decimal("101.5"), order_ref="r:entry")
    adapter.place_order(order)  # no running loop: ib_async's books are kept at once
    theirs, sent_theirs = _client(False)
    reference = IbOrderAdapter.build_order(order)
    theirs.placeOrder(5, Contract(conId=265598, exchange="SMART"), reference)
    assert sent == sent_theirs
    assert _wire(ib.client).templated == 1
    trade = ib.wrapper.trades[(ib.wrapper.clientId, 5)]
    assert trade.order.volatility is None  # as ib_async's placeOrder leaves it
    assert _same(vars(trade.order), {**vars(reference), "clientId": trade.order.clientId})
    assert order_wire._vouched is order_wire._NOBODY  # consumed
    ib.client.connState = Client.DISCONNECTED


# ---------------------------------------------------------------- anything else: still ib_async's message


@PROPERTY
@given(any_contracts(), any_orders(), st.sampled_from(VERSIONS))
def test_any_order_gives_ib_asyncs_message_or_error(contract: Contract, order: Order, version: int) -> None:
    theirs, sent_theirs = _client(False, version)
    ours, sent_ours = _shared(version)
    mine = Order.__new__(Order)
    mine.__dict__ = dict(vars(order))
    outcomes: list[type[Exception] | None] = []
    for client, ib_order in ((theirs, order), (ours, mine)):
        try:
            client.placeOrder(ib_order.orderId, contract, ib_order)
            outcomes.append(None)
        except Exception as exc:
            outcomes.append(type(exc))
    assert outcomes[0] == outcomes[1]
    assert sent_ours == sent_theirs
    assert vars(mine).keys() == vars(order).keys()
    assert all(vars(mine)[k] is vars(order)[k] or vars(mine)[k] == vars(order)[k] for k in vars(order))


hole_values = st.one_of(
    texts,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([UNSET_DOUBLE, math.inf, -0.0, 2**31 - 1, 0, True, False, None]),
    st.integers(-(2**63), 2**63),
    st.decimals(allow_nan=False, places=6),
    st.booleans(),
)


@st.composite
def templatable_orders(draw: st.DrawFn) -> Order:
    """Default orders with any value of any type in every per-order field, of any order type and algo."""
    order = Order()
    for name in order_wire.ORDER_HOLES:
        if name not in ("orderMiscOptions", "softDollarTier"):
            setattr(order, name, draw(hole_values))
    order.orderMiscOptions = draw(st.lists(st.builds(TagValue, texts, texts), max_size=2))
    order.softDollarTier.name = draw(texts)
    order.softDollarTier.val = draw(texts)
    order.orderType = draw(st.sampled_from(["LMT", "STP", "STP LMT", "MKT", "TRAIL", "VOL", "PEG BEST", "PEG MID"]))
    order.algoStrategy = draw(st.sampled_from(["", "Adaptive", "Vwap"]))
    order.algoParams = draw(st.lists(st.builds(TagValue, texts, texts), max_size=3))
    return order


@PROPERTY
@given(st.lists(templatable_orders(), min_size=1, max_size=3), any_contracts(), st.sampled_from(VERSIONS))
def test_any_value_in_the_per_order_fields_is_templated_and_byte_identical(
    orders: list[Order], contract: Contract, version: int
) -> None:
    theirs, sent_theirs = _client(False, version)
    ours, sent_ours = _shared(version)
    wire = _wire(ours)
    before = wire.templated
    for order in orders:
        mine = Order.__new__(Order)
        mine.__dict__ = dict(vars(order))
        theirs.placeOrder(3, contract, order)
        ours.placeOrder(3, contract, mine)
        assert mine.volatility is order.volatility
    assert sent_ours == sent_theirs
    if contract.secType != "BAG" and not contract.deltaNeutralContract:
        assert wire.templated - before == len(orders)


def _default_order(**changes: Any) -> Order:
    order = IbOrderAdapter.build_order(
        BrokerOrder(3, "AAPL", 265598, Side.BUY, 10, OrderType.LMT, Decimal("100"), order_ref="x")
    )
    for name, value in changes.items():
        setattr(order, name, value)
    return order


@pytest.mark.parametrize(
    ("contract", "changes"),
    [
        (Stock("AAPL", "SMART", "USD", conId=1), {"outsideRth": True}),  # a field Omega never sets
        (Stock("AAPL", "SMART", "USD", conId=1), {"minQty": 2**31 - 1 + 0}),  # equal, but another object
        (Stock("AAPL", "SMART", "USD", conId=1), {"goodTillDate": "20261231 23:59:59"}),
        (Stock("AAPL", "SMART", "USD", conId=1), {"orderType": "VOL", "volatility": 0.2}),
        (Stock("AAPL", "SMART", "USD", conId=1), {"conditions": [PriceCondition(price=1.0, conId=1)]}),
        (Stock("AAPL", "SMART", "USD", conId=1), {"algoParams": [TagValue("a", 1)], "algoStrategy": "X"}),
        (
            Contract(secType="BAG", symbol="AAPL", exchange="SMART", comboLegs=[ComboLeg(conId=1, ratio=1)]),
            {},
        ),
        (Stock("AAPL", "SMART", "USD", deltaNeutralContract=DeltaNeutralContract(1, 0.5, 100.0)), {}),
    ],
)
def test_what_a_template_cannot_represent_falls_back(contract: Contract, changes: dict[str, Any]) -> None:
    theirs, sent_theirs = _client(False)
    ours, sent_ours = _client(True)
    wire = _wire(ours)
    ours.placeOrder(3, contract, _default_order())  # a template for the default shape exists first
    theirs.placeOrder(3, contract, _default_order())
    ours.placeOrder(3, contract, _default_order(**changes))
    theirs.placeOrder(3, contract, _default_order(**changes))
    assert sent_ours == sent_theirs
    assert wire.fallbacks >= 1


def test_a_vouch_for_another_order_or_covering_a_constant_is_not_taken() -> None:
    ours, sent_ours = _client(True)
    theirs, sent_theirs = _client(False)
    contract = Stock("AAPL", "SMART", "USD", conId=1)
    wire = _wire(ours)
    order_wire.vouch(_default_order(), BUILT_ATTRS)  # about another object: ignored
    mine = _default_order(outsideRth=True)
    ours.placeOrder(3, contract, mine)
    order_wire.vouch(mine, BUILT_ATTRS | {"outsideRth"})  # says outsideRth changed: it is a constant here
    ours.placeOrder(3, contract, mine)
    for _ in range(2):
        theirs.placeOrder(3, contract, _default_order(outsideRth=True))
    assert sent_ours == sent_theirs
    assert (wire.templated, wire.fallbacks) == (0, 2)


def test_not_connected_raises_like_ib_async_and_sends_nothing() -> None:
    ours, sent = _client(True)
    ours.connState = Client.DISCONNECTED
    order = _default_order()
    with pytest.raises(ConnectionError, match="Not connected"):
        ours.placeOrder(3, Stock("AAPL", "SMART", "USD"), order)
    assert sent == [] and order.volatility is None  # ib_async writes before it finds out


def test_a_placeorder_that_branches_on_a_per_order_value_is_never_templated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Were ib_async to use a value the template treats as a hole (not only place it), no template is made."""
    original = Client.placeOrder

    def branching(self: Any, order_id: Any, contract: Any, order: Any) -> None:
        if order.transmit:  # e.g. a future ib_async that skips a field for transmitted orders
            order.orderRef = order.orderRef
        original(self, order_id, contract, order)

    monkeypatch.setattr(Client, "placeOrder", branching)
    ours, sent_ours = _client(True)
    theirs, sent_theirs = _client(False)
    for transmit in (True, False):
        ours.placeOrder(3, Stock("AAPL", "SMART", "USD"), _default_order(transmit=transmit))
        theirs.placeOrder(3, Stock("AAPL", "SMART", "USD"), _default_order(transmit=transmit))
    assert sent_ours == sent_theirs
    assert (_wire(ours).templated, _wire(ours).fallbacks) == (0, 2)


def test_a_template_that_differs_from_ib_async_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, sent_ours = _client(True)
    theirs, sent_theirs = _client(False)
    monkeypatch.setattr(order_wire, "encode", lambda fields, make_empty=True: "not what the template renders")
    ours.placeOrder(3, Stock("AAPL", "SMART", "USD"), _default_order())
    theirs.placeOrder(3, Stock("AAPL", "SMART", "USD"), _default_order())
    assert sent_ours == sent_theirs
    assert _wire(ours).fallbacks == 1


def test_a_contract_changed_in_place_gets_its_new_fields() -> None:
    ours, sent_ours = _client(True)
    theirs, sent_theirs = _client(False)
    contract = Stock("AAPL", "SMART", "USD", conId=1)
    for change in ({}, {"primaryExchange": "NASDAQ"}, {"exchange": "IBKRATS"}, {"strike": -0.0}, {"conId": 2}):
        for name, value in change.items():
            setattr(contract, name, value)
        ours.placeOrder(3, contract, _default_order())
        theirs.placeOrder(3, contract, _default_order())
    assert sent_ours == sent_theirs
    assert _wire(ours).templated == 5


# ---------------------------------------------------------------- installation and ib_async's send path


def test_install_is_idempotent_and_comes_with_wire_send() -> None:
    client, _ = _client(False)
    assert not order_wire.installed(client)
    assert wire_send.install(client)
    assert order_wire.installed(client) and wire_send.installed(client)
    wire = _wire(client)
    assert not wire_send.install(client) and not order_wire.install(client)
    assert _wire(client) is wire
    del client.__dict__["placeOrder"]
    assert not wire_send.installed(client)
    assert wire_send.install(client) and order_wire.installed(client)
    assert Client.placeOrder is not wire.place_order


def test_throttling_path_is_ib_async_s() -> None:
    """Messages still go through `Client.sendMsg`: its request throttle queues what exceeds MaxRequests."""
    client = Client(Wrapper(None))
    client.connState = Client.CONNECTED
    client._serverVersion = 178
    wire_send.install(client)
    written: list[bytes] = []
    client.conn.sendMsg = written.append
    client.MaxRequests = 2
    theirs, sent_theirs = _client(False)
    with FakeLoop().installed() as loop:
        for order_id in (1, 2, 3):
            client.placeOrder(order_id, Stock("AAPL", "SMART", "USD"), _default_order())
            theirs.placeOrder(order_id, Stock("AAPL", "SMART", "USD"), _default_order())
    assert written == [client._prefix(m.encode()) for m in sent_theirs[:2]]
    assert list(client._msgQ) == [sent_theirs[2]]  # the third waits for the throttle
    assert loop.scheduled and client._isThrottling
    assert _wire(client).templated == 3


def test_special_values_in_holes() -> None:
    """UNSET and infinite prices, huge ids and quantities, NUL and non-BMP text in the per-order fields."""
    ours, sent_ours = _client(True)
    theirs, sent_theirs = _client(False)
    contract = Stock("AAPL", "SMART", "USD", conId=1)
    cases: list[dict[str, Any]] = [
        {"lmtPrice": UNSET_DOUBLE, "auxPrice": math.inf},
        {"lmtPrice": -0.0, "totalQuantity": 1e22},
        {"parentId": 2**31 - 1, "ocaType": 2**31 - 1},
        {"orderRef": "a\0b\U0001f600", "account": "é", "tif": ""},
        {"lmtPrice": Decimal("1.23456789"), "totalQuantity": Decimal("10")},
        {"action": None, "orderMiscOptions": [TagValue("k", "v")]},
    ]
    for case in cases:
        ours.placeOrder(3, contract, _default_order(**case))
        theirs.placeOrder(3, contract, _default_order(**case))
    assert sent_ours == sent_theirs
    assert _wire(ours).templated == len(cases)
