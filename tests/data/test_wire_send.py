"""`wire_send` writes byte-for-byte what ib_async 2.1's `Client.send` writes.

Two `Client`s (no socket: connected state set by hand, `sendMsg` captured) receive the same calls, one with
ib_async's own `send`, one with `wire_send` installed; the strings handed to `sendMsg` must be equal. First
for random field tuples of every type `send` knows (and some it does not), then for real `placeOrder`,
`cancelOrder`, `reqMktData` and `reqGlobalCancel` calls over random orders and contracts.
"""

from __future__ import annotations

import enum
import math
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ib_async import (
    Bond,
    ComboLeg,
    Contract,
    DeltaNeutralContract,
    Forex,
    Future,
    Option,
    Order,
    Stock,
    TagValue,
)
from ib_async.client import Client
from ib_async.order import (
    ExecutionCondition,
    MarginCondition,
    PercentChangeCondition,
    PriceCondition,
    TimeCondition,
    VolumeCondition,
)
from ib_async.util import UNSET_DOUBLE, UNSET_INTEGER
from ib_async.wrapper import Wrapper

from omega_tui.config import Settings
from omega_tui.core.broker import BrokerSession, wire_send
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.types import ConnectionState
from omega_tui.sim.gateway import SimGateway
from tests.data.conftest import Harness, wait_until
from tests.data.wire_fakes import FakeLoop

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Color(enum.IntEnum):
    RED = 1


class _Side(str, enum.Enum):  # noqa: UP042 (str() of it is not its value: the fallback)
    BUY = "BUY"


class _MyStr(str):
    def __str__(self) -> str:
        return "my:" + super().__str__()


class _MyInt(int):
    pass


class _MyFloat(float):
    pass


class _Odd:
    def __str__(self) -> str:
        return "odd\0thing"


def _client(ours: bool, server_version: int = 178) -> tuple[Client, list[str]]:
    client = Client(Wrapper(None))
    client.connState = Client.CONNECTED
    client._serverVersion = server_version
    sent: list[str] = []
    client.sendMsg = sent.append
    if ours:
        assert wire_send.install(client)
    return client, sent


def _both(call: Any, server_version: int = 178) -> tuple[list[str], list[str]]:
    """`call(client)` on ib_async's encoder and on ours; what each handed to `sendMsg`."""
    theirs, sent_theirs = _client(False, server_version)
    ours, sent_ours = _client(True, server_version)
    call(theirs)
    call(ours)
    return sent_theirs, sent_ours


# ---------------------------------------------------------------- strategies

texts = st.text(max_size=12)
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([UNSET_DOUBLE, -UNSET_DOUBLE, math.inf, -math.inf, 0.0, -0.0, 190.05, 1e-7, 1e22]),
)
ints = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([UNSET_INTEGER, -UNSET_INTEGER, UNSET_INTEGER + 1, 0, -1]),
)
tag_values = st.lists(st.builds(TagValue, st.one_of(texts, ints), st.one_of(texts, ints, floats)), max_size=4)


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    kind = draw(st.sampled_from([Contract, Stock, Option, Future, Forex, Bond]))
    contract: Contract = kind()
    contract.conId = draw(ints)
    contract.symbol = draw(texts)
    contract.secType = draw(st.sampled_from(["STK", "OPT", "FUT", "CASH", "BOND", "BAG", ""]))
    contract.lastTradeDateOrContractMonth = draw(texts)
    contract.strike = draw(floats)
    contract.right = draw(st.sampled_from(["", "C", "P"]))
    contract.multiplier = draw(st.sampled_from(["", "100", "50"]))
    contract.exchange = draw(st.sampled_from(["SMART", "IBKRATS", "NASDAQ", ""]))
    contract.primaryExchange = draw(texts)
    contract.currency = draw(st.sampled_from(["USD", "EUR", ""]))
    contract.localSymbol = draw(texts)
    contract.tradingClass = draw(texts)
    contract.secIdType = draw(st.sampled_from(["", "ISIN", "CUSIP"]))
    contract.secId = draw(texts)
    if contract.secType == "BAG":
        contract.comboLegs = [
            ComboLeg(conId=draw(ints), ratio=draw(st.integers(1, 5)), action="BUY", exchange="SMART")
            for _ in range(draw(st.integers(0, 3)))
        ]
    if draw(st.booleans()):
        contract.deltaNeutralContract = DeltaNeutralContract(draw(ints), draw(floats), draw(floats))
    return contract


other_fields = st.one_of(
    st.decimals(allow_nan=False, places=4),
    st.just(_Color.RED),
    st.just(_Side.BUY),
    texts.map(_MyStr),
    ints.map(_MyInt),
    st.floats(allow_nan=False).map(_MyFloat),
    st.just(_Odd()),
    st.tuples(texts, ints),
)

fields = st.one_of(texts, floats, ints, st.booleans(), st.none(), tag_values, contracts(), other_fields)


# ---------------------------------------------------------------- random fields


@PROPERTY
@given(st.lists(fields, max_size=30), st.sampled_from([True, False, 1, 0, None]))
def test_same_message_for_random_fields(values: list[Any], make_empty: Any) -> None:
    theirs, ours = _both(lambda c: c.send(*values, makeEmpty=make_empty))
    assert ours == theirs
    assert wire_send.encode(tuple(values), bool(make_empty)) == (theirs[0] if theirs else "")


def test_each_rule_by_hand() -> None:
    """The rules spelled out, so a change in both encoders at once would still be noticed."""
    contract = Stock("AAPL", "SMART", "USD")
    contract.conId = 265598
    message = wire_send.encode(
        (
            3,
            UNSET_INTEGER,
            UNSET_DOUBLE,
            math.inf,
            True,
            False,
            None,
            "x",
            [TagValue("a", "1")],
            contract,
            Decimal("1.5"),
        )
    )
    assert message == "\0".join(
        [
            "3",
            "",
            "",
            "Infinite",
            "1",
            "0",
            "",
            "x",
            "a=1;",
            "265598\0AAPL\0STK\0\0" + "0.0\0\0\0SMART\0\0USD\0\0",
            "1.5",
            "",
        ]
    )
    assert wire_send.encode((UNSET_INTEGER, UNSET_DOUBLE), make_empty=False) == f"{UNSET_INTEGER}\0{UNSET_DOUBLE}\0"
    assert wire_send.encode(()) == ""


# ---------------------------------------------------------------- real requests


@st.composite
def orders(draw: st.DrawFn) -> Order:
    order_type = draw(st.sampled_from(["LMT", "STP", "STP LMT", "MKT", "VOL", "PEG BENCH", "PEG BEST", "PEG MID"]))
    order = Order(
        orderId=draw(st.integers(1, 10**6)),
        action=draw(st.sampled_from(["BUY", "SELL"])),
        totalQuantity=draw(floats),
        orderType=order_type,
        lmtPrice=draw(floats),
        auxPrice=draw(floats),
        tif=draw(st.sampled_from(["DAY", "GTC", ""])),
        ocaGroup=draw(texts),
        ocaType=draw(st.sampled_from([0, 1, 2, 3])),
        orderRef=draw(texts),
        transmit=draw(st.booleans()),
        parentId=draw(st.integers(0, 10**6)),
        account=draw(texts),
        volatility=draw(floats),
        scalePriceIncrement=draw(floats),
        hedgeType=draw(st.sampled_from(["", "D", "B"])),
        hedgeParam=draw(texts),
        deltaNeutralOrderType=draw(st.sampled_from(["", "LMT"])),
        whatIf=draw(st.booleans()),
        outsideRth=draw(st.booleans()),
        competeAgainstBestOffset=draw(st.sampled_from([UNSET_DOUBLE, math.inf, 0.02])),
        minTradeQty=draw(ints),
        cashQty=draw(floats),
    )
    if draw(st.booleans()):
        order.algoStrategy = "Adaptive"
        order.algoParams = [TagValue("adaptivePriority", draw(st.sampled_from(["Patient", "Normal", "Urgent"])))]
    order.orderMiscOptions = draw(tag_values)
    order.smartComboRoutingParams = draw(tag_values)
    conditions = [
        PriceCondition(isMore=draw(st.booleans()), price=draw(floats), conId=draw(ints), exch="SMART"),
        TimeCondition(time="20261126 15:59:00 US/Eastern"),
        MarginCondition(percent=draw(ints)),
        ExecutionCondition(secType="STK", exch="SMART", symbol="AAPL"),
        VolumeCondition(volume=draw(ints), conId=draw(ints), exch="SMART"),
        PercentChangeCondition(changePercent=draw(floats), conId=draw(ints), exch="SMART"),
    ]
    order.conditions = draw(st.lists(st.sampled_from(conditions), max_size=3))
    order.conditionsIgnoreRth = draw(st.booleans())
    order.conditionsCancelOrder = draw(st.booleans())
    return order


server_versions = st.sampled_from([157, 160, 166, 170, 176, 178])


@PROPERTY
@given(contracts(), orders(), server_versions)
def test_same_place_order(contract: Contract, order: Order, version: int) -> None:
    theirs, ours = _both(lambda c: c.placeOrder(order.orderId, contract, order), version)
    assert len(theirs) == 1
    assert ours == theirs


@PROPERTY
@given(st.integers(1, 2**31), texts, server_versions)
def test_same_cancel_order(order_id: int, manual_time: str, version: int) -> None:
    theirs, ours = _both(lambda c: c.cancelOrder(order_id, manual_time), version)
    assert ours == theirs


@PROPERTY
@given(st.integers(1, 2**31), contracts(), texts, st.booleans(), st.booleans(), tag_values)
def test_same_req_mkt_data(
    req_id: int, contract: Contract, ticks: str, snapshot: bool, regulatory: bool, options: list[TagValue]
) -> None:
    theirs, ours = _both(lambda c: c.reqMktData(req_id, contract, ticks, snapshot, regulatory, options))
    assert ours == theirs


def test_same_global_cancel() -> None:
    theirs, ours = _both(lambda c: c.reqGlobalCancel())
    assert ours == theirs == ["58\x001\x00"]


# ---------------------------------------------------------------- installation and ib_async's send path


def test_install_is_idempotent_and_per_instance() -> None:
    client, _ = _client(True)
    assert wire_send.installed(client)
    assert not wire_send.install(client)
    other, _ = _client(False)
    assert not wire_send.installed(other)
    assert Client.send is not wire_send.wire_send


def test_not_connected_raises_like_ib_async() -> None:
    client, sent = _client(True)
    client.connState = Client.DISCONNECTED
    with pytest.raises(ConnectionError, match="Not connected"):
        client.reqGlobalCancel()
    assert sent == []


def test_throttling_path_is_ib_async_s() -> None:
    """Messages still go through `Client.sendMsg`: its request throttle queues what exceeds MaxRequests."""
    client = Client(Wrapper(None))
    client.connState = Client.CONNECTED
    client._serverVersion = 178
    wire_send.install(client)
    written: list[bytes] = []
    client.conn.sendMsg = written.append
    client.MaxRequests = 2
    with FakeLoop().installed() as loop:
        for order_id in (1, 2, 3):
            client.cancelOrder(order_id)
    assert len(written) == 2 and written[0] == client._prefix(b"4\x001\x001\x00\x00")
    assert list(client._msgQ) == ["4\x001\x003\x00\x00"]  # the third waits for the throttle
    assert loop.scheduled and client._isThrottling


def test_broker_session_installs_it() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        hot = HotState(Path(tmp))
        try:
            session = BrokerSession(Settings(), FakeClock(), EventBus(), hot)
            assert wire_send.installed(session.ib.client)
        finally:
            hot.close()


async def test_installed_again_after_a_reconnect_even_on_a_fresh_client(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    """The session re-checks at every connect: a client that lost it (as a rebuilt one would) gets it back,
    and the requests after the reconnect (resubscriptions) go out through it and are understood."""
    h = make_session()
    await h.session.start()
    client = h.session.ib.client
    assert wire_send.installed(client)
    await wait_until(lambda: h.hot_state.quote("AAPL") is not None, "quotes")
    del client.__dict__["send"]  # back to ib_async's own Client.send, as on a freshly built client
    assert not wire_send.installed(client)
    gateway.faults.drop_connections()
    await wait_until(lambda: h.session.connection_state is ConnectionState.DOWN, "DOWN")
    stale = h.hot_state.quote("AAPL")
    assert stale is not None
    await wait_until(lambda: h.session.connection_state is ConnectionState.UP, "UP again")
    assert wire_send.installed(h.session.ib.client)
    await wait_until(lambda: _fresh(h, "AAPL", stale.seq), "a fresh AAPL quote after the reconnect")


def _fresh(h: Harness, key: str, seq: int) -> bool:
    quote = h.hot_state.quote(key)
    return quote is not None and quote.seq > seq and not quote.stale


class _Log:
    """A client's `_logger`: what it was asked to log at DEBUG."""

    def __init__(self, debug: bool) -> None:
        self.debug_on = debug
        self.lines: list[tuple[Any, ...]] = []

    def isEnabledFor(self, level: int) -> bool:
        return self.debug_on

    def debug(self, *args: Any) -> None:
        self.lines.append(args)


def _throttled_client(ours: bool, limit: int, debug: bool) -> tuple[Client, list[bytes], list[str], _Log]:
    client = Client(Wrapper(None))
    client.connState = Client.CONNECTED
    client._serverVersion = 178
    if ours:
        client.sendMsg = wire_send.send_msg.__get__(client)
    written: list[bytes] = []
    client.conn.sendMsg = written.append
    client.MaxRequests = limit
    events: list[str] = []
    client.throttleStart += lambda: events.append("start")
    client.throttleEnd += lambda: events.append("end")
    log = _Log(debug)
    client._logger = log
    return client, written, events, log


_STEP = st.tuples(
    st.sampled_from([0.0, 0.0, 0.01, 0.3, 1.0, 2.0, 2.5]),  # seconds the loop's clock moves first
    st.one_of(st.none(), st.sampled_from(["", "1\0x\0", "4\0" + "9" * 40 + "\0", "é\0\U0001f600\0"])),
)


@PROPERTY
@given(st.sampled_from([0, 1, 2, 3, 45]), st.booleans(), st.lists(_STEP, max_size=40))
def test_send_msg_is_client_send_msg(limit: int, debug: bool, steps: list[tuple[float, str | None]]) -> None:
    """`send_msg` keeps ib_async's throttle bookkeeping: driven with the same sequence of messages, clock moves
    and throttle wake-ups (a None step fires the due `call_at`s), both write the same bytes and leave the same
    request times, queue, throttle state, scheduled wake-ups, throttle events and log lines after every step."""
    theirs = _throttled_client(False, limit, debug)
    ours = _throttled_client(True, limit, debug)
    loop = FakeLoop(now=1000.0)
    with loop.installed():
        for dt, msg in steps:
            loop.now += dt
            for client, *_ in (theirs, ours):
                if msg is None:  # the throttle's own wake-ups that are due, for this client
                    due = [s for s in loop.scheduled if s[1].__self__ is client and s[0] <= loop.now]
                    for s in due:
                        loop.scheduled.remove(s)
                        s[1](*s[2])
                else:
                    client.sendMsg(msg)
            (c1, w1, e1, l1), (c2, w2, e2, l2) = theirs, ours
            assert w2 == w1 and e2 == e1 and l2.lines == l1.lines
            assert list(c2._timeQ) == list(c1._timeQ) and list(c2._msgQ) == list(c1._msgQ)
            assert c2._isThrottling == c1._isThrottling
            mine = [(when, args) for when, cb, args in loop.scheduled if cb.__self__ is c2]
            assert mine == [(when, args) for when, cb, args in loop.scheduled if cb.__self__ is c1]
    assert wire_send.send_msg.__name__ == "send_msg"


def test_send_msg_without_a_running_loop_is_ib_async_s() -> None:
    """No running loop: ib_async's own `Client.sendMsg` (its `getLoop` finds or makes one)."""
    client, written, _, _ = _throttled_client(True, 45, False)
    client.sendMsg("1\0")
    assert written == [b"\0\0\0\x021\0"] and len(client._timeQ) == 1


def test_install_puts_send_msg_unless_the_instance_has_one() -> None:
    client = Client(Wrapper(None))
    assert wire_send.install(client)
    assert client.sendMsg.__func__ is wire_send.send_msg
    assert wire_send.installed(client) and not wire_send.install(client)
    captured: list[str] = []
    other = Client(Wrapper(None))
    other.sendMsg = captured.append
    wire_send.install(other)
    assert other.sendMsg == captured.append  # a capture (or a benchmark's timer) is left in place
