"""A bracket's three placeOrder messages in ONE socket write, by the three short ways of issue #5.

- `wire_send.send_msgs(client, msgs)` against `wire_send.send_msg` called once per message on a twin client:
  when it takes the messages, the one write is the concatenation of the per-message writes, and the request
  times, the connection's counters and the DEBUG log lines are the same; otherwise it returns False with
  nothing done, in exactly the cases its docstring lists.
- `IbOrderAdapter.place_group(orders)` against `cork`, `place_order` per leg and `uncork` on a twin adapter:
  the same single write, the same ib_async books after a loop turn, the same counters; False with nothing
  written when a leg has no route yet, is a modification, or the contract/connection/cork say no.
- `IbOrderAdapter.group_sender(...)` / `GroupSender`: learned from a bracket, `send(ids, values)` writes the
  bytes the usual way writes for the same legs and `sent(orders)` leaves the same books; it declines (False,
  nothing written) once what its encoder baked in no longer holds.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ib_async import Contract, Stock
from ib_async.client import Client
from ib_async.wrapper import Wrapper

from omega_tui.core.broker import order_wire, wire_send
from omega_tui.core.broker.orders_adapter import GroupSender, IbOrderAdapter
from omega_tui.core.clock import FakeClock
from omega_tui.core.orders import _BRACKET_VARIABLE
from omega_tui.core.types import BrokerOrder, OrderType, Side
from tests.data.test_order_direct import _bracket, _fields, _ib, _reference_bytes, _Transport
from tests.data.test_order_wire import PROPERTY, _same, prices, quantities, stock_contracts
from tests.data.test_wire_send import _Log
from tests.data.wire_fakes import FakeLoop

# Each example of B and C sends up to seven brackets through two adapters: fewer examples than PROPERTY's,
# for the suite's time (~3 s each instead of ~10).
BRACKETS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- A. send_msgs == send_msg per message

_MESSAGES = st.sampled_from(["1\0x\0", "4\0" + "9" * 40 + "\0", "é\0\U0001f600\0", "3\x001\0"])
# What keeps `send_msgs` from taking the messages (None: nothing does, as far as the setup goes).
_SPOILERS = [None, None, None, "throttling", "queued", "wrapped", "not_installed", "corked", "no_loop", "empty"]


def _socket_client(limit: int, debug: bool, times: Sequence[float]) -> tuple[Client, _Transport, _Log]:
    """A connected client with Omega's `send_msg` and a transport (the connection's own `sendMsg` writes)."""
    client = Client(Wrapper(None))
    client.connState = Client.CONNECTED
    client._serverVersion = 178
    assert wire_send.install(client)
    transport = _Transport()
    client.conn.transport = transport
    client.MaxRequests = limit
    client._timeQ.extend(times)
    log = _Log(debug)
    client._logger = log
    return client, transport, log


def _state(client: Client, transport: _Transport, log: _Log) -> tuple[Any, ...]:
    conn = client.conn
    return (
        list(transport.writes),
        list(client._timeQ),
        list(client._msgQ),
        client._isThrottling,
        conn.numBytesSent,
        conn.numMsgSent,
        list(log.lines),
    )


@PROPERTY
@given(
    st.sampled_from([0, 3, 45]),
    st.booleans(),
    st.lists(st.sampled_from([0.0, 0.25, 0.999, 1.0, 1.001, 2.0, 7.5]), max_size=6),  # ages of earlier requests
    st.lists(_MESSAGES, max_size=5),
    st.sampled_from(_SPOILERS),
)
def test_send_msgs_is_send_msg_per_message(
    limit: int, debug: bool, ages: list[float], msgs: list[str], spoiler: str | None
) -> None:
    now = 1000.0
    times = [now - age for age in sorted(ages, reverse=True)]
    ours, transport, log = _socket_client(limit, debug, times)
    theirs, their_transport, their_log = _socket_client(limit, debug, times)
    if spoiler == "empty":
        msgs = [*msgs[:2], "", *msgs[2:]]
    elif spoiler == "throttling":
        ours._isThrottling = True
    elif spoiler == "queued":
        ours._msgQ.append("9\0")
    elif spoiler == "wrapped":  # e.g. a benchmark's timer around Omega's send_msg
        inner = ours.sendMsg
        ours.sendMsg = functools.wraps(inner)(lambda msg: inner(msg))
    elif spoiler == "not_installed":
        del ours.__dict__["sendMsg"]  # ib_async's own Client.sendMsg
    elif spoiler == "corked":
        ours.conn.sendMsg = [].append  # what `IbOrderAdapter.cork` puts on the connection
    before = _state(ours, transport, log)
    live = [t for t in times if now - t <= Client.RequestsInterval]
    room = not limit or len(live) + len(msgs) <= limit
    expected = spoiler is None and bool(msgs) and room
    loop = FakeLoop(now=now)
    if spoiler == "no_loop":
        taken = wire_send.send_msgs(ours, msgs)  # (no running loop here: asyncio.get_running_loop raises)
    else:
        with loop.installed():
            taken = wire_send.send_msgs(ours, msgs)
            if taken:
                for msg in msgs:
                    theirs.sendMsg(msg)
    assert taken is expected
    event(f"send_msgs took them: {taken}")
    if taken:
        writes, *rest = _state(ours, transport, log)
        their_writes, *their_rest = _state(theirs, their_transport, their_log)
        assert writes == [b"".join(their_writes)] and len(their_writes) == len(msgs)
        assert rest == their_rest  # times (the one loop.time()), queue, throttle, counters, log lines
        assert list(ours._timeQ) == live + [now] * len(msgs)
        assert ours.conn.numMsgSent == len(msgs) and ours.conn.numBytesSent == len(writes[0])
        assert not loop.scheduled
    elif spoiler is None and msgs:  # no room: the expired request times may be dropped, nothing else moves
        state = _state(ours, transport, log)
        assert state[1] in (before[1], live)
        assert state[:1] + state[2:] == before[:1] + before[2:]
    else:
        assert _state(ours, transport, log) == before


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1).map(lambda t: t + "\0"), max_size=5))
def test_frame_is_ib_asyncs_framing_and_unframe_reads_it_back(msgs: list[str]) -> None:
    """`frame` (what a group sender's encoder returns too) is each message as `Connection.sendMsg` gets it from
    ib_async's `Client.sendMsg`: UTF-8, after its 4-byte big-endian length; `unframe` reverses it."""
    data = wire_send.frame(msgs)
    assert data == b"".join(struct.pack(">I", len(m.encode())) + m.encode() for m in msgs)
    assert wire_send.unframe(data) == msgs


def test_send_msgs_without_room_leaves_the_request_times_alone() -> None:
    ours, transport, _ = _socket_client(3, False, [990.0, 999.5, 999.9])  # 990.0 expired at 1000.0
    before = list(ours._timeQ)
    with FakeLoop(now=1000.0).installed():
        assert not wire_send.send_msgs(ours, ["1\0", "2\0"])  # one expired, two live: no room for two
    assert transport.writes == [] and list(ours._timeQ) == before


def test_send_msgs_without_a_transport_counts_nothing_but_the_requests() -> None:
    """As `Connection.sendMsg`: nothing written or counted without a transport; the throttle still counts."""
    ours, _, _ = _socket_client(45, False, [])
    theirs, _, _ = _socket_client(45, False, [])
    ours.conn.transport = theirs.conn.transport = None
    with FakeLoop(now=5.0).installed():
        assert wire_send.send_msgs(ours, ["1\0", "2\0"])
        theirs.sendMsg("1\0")
        theirs.sendMsg("2\0")
    assert list(ours._timeQ) == list(theirs._timeQ) == [5.0, 5.0]
    assert ours.conn.numMsgSent == theirs.conn.numMsgSent == 0


# ---------------------------------------------------------------- brackets

_CON_ID = 265598
_PRIORITIES = ["Patient", "Normal", "Urgent"]


def _ticks(draw: st.DrawFn) -> Decimal:
    return Decimal(draw(st.integers(1, 10**7))).scaleb(-2)  # on the 0.01 grid


@st.composite
def bracket_values(draw: st.DrawFn) -> dict[str, Any]:
    """What varies between brackets: quantity, prices, refs, OCA group, side, Adaptive priority."""
    return {
        "side": draw(st.sampled_from(list(Side))),
        "priority": draw(st.sampled_from(_PRIORITIES)),
        "qty": draw(st.integers(1, 10**6)),
        "limit": _ticks(draw),
        "tp": _ticks(draw),
        "sl": _ticks(draw),
        "ref": draw(st.text(max_size=8)),
        "oca": draw(st.text(max_size=8)),
        "gap": draw(st.integers(3, 50)),
    }


def _legs(base: int, v: dict[str, Any], con_id: int = _CON_ID) -> list[BrokerOrder]:
    """A bracket as `OrderManager._build_groups` makes one (entry Adaptive, take-profit, stop-loss)."""
    side: Side = v["side"]
    exit_side = Side.SELL if side is Side.BUY else Side.BUY
    ref, qty = v["ref"], v["qty"]
    return [
        BrokerOrder(base, "AAPL", con_id, side, qty, OrderType.LMT, v["limit"], order_ref=f"{ref}:entry",
                    algo_strategy="Adaptive", algo_params=(("adaptivePriority", v["priority"]),), transmit=False),
        BrokerOrder(base + 1, "AAPL", con_id, exit_side, qty, OrderType.LMT, v["tp"], parent_id=base,
                    oca_group=v["oca"], oca_type=2, order_ref=f"{ref}:take_profit", transmit=False),
        BrokerOrder(base + 2, "AAPL", con_id, exit_side, qty, OrderType.STP, None, v["sl"], parent_id=base,
                    oca_group=v["oca"], oca_type=2, order_ref=f"{ref}:stop_loss", transmit=True),
    ]  # fmt: skip


def _route_keys(legs: Sequence[BrokerOrder]) -> list[tuple[Any, ...]]:
    return [(o.order_type.value, o.algo_strategy, o.algo_params, o.con_id) for o in legs]


class _Side:
    """An adapter on an `IB` with a transport, no capture: what reaches the socket, in writes."""

    def __init__(self, contract: Contract, max_requests: int = 0) -> None:
        self.ib, _ = _ib(capture=False)
        self.ib.client.MaxRequests = max_requests
        self.transport = _Transport()
        self.ib.client.conn.transport = self.transport
        self.adapter = IbOrderAdapter(self.ib, FakeClock())
        self.adapter.register_contract(_CON_ID, "AAPL", contract)

    def usual(self, legs: Sequence[BrokerOrder]) -> None:
        """What `OrderManager._place_group` does when `place_group` declines."""
        self.adapter.cork()
        try:
            for leg in legs:
                self.adapter.place_order(leg)
        finally:
            self.adapter.uncork()

    def counters(self) -> tuple[Any, ...]:
        wire = order_wire.wire_of(self.ib.client)
        assert wire is not None
        conn = self.ib.client.conn
        return (
            conn.numBytesSent,
            conn.numMsgSent,
            len(self.ib.client._timeQ),
            wire.templated,
            wire.direct_sends,
            wire.direct_generic,
            wire.fallbacks,
        )

    def books(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        trades = self.ib.wrapper.trades
        out = []
        for oid in ids:
            trade = trades[(self.ib.wrapper.clientId, oid)]
            assert trade.contract is self.adapter._contracts[_CON_ID]
            out.append(vars(trade.order))
        return out

    def close(self) -> None:
        self.ib.client.conn.transport = None
        self.ib.client.connState = Client.DISCONNECTED  # (IB.__del__ would try to disconnect)


def _same_books(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> bool:
    return len(ours) == len(theirs) and all(_same(a, b) for a, b in zip(ours, theirs, strict=True))


def _run(body: Callable[[], Any]) -> None:
    """Run an async test body on a fresh event loop (hypothesis examples are synchronous)."""
    asyncio.run(body())


# ---------------------------------------------------------------- B. place_group == cork + place_order x3 + uncork


@BRACKETS
@given(stock_contracts(), st.lists(bracket_values(), min_size=1, max_size=7), st.integers(1, 10**6))
def test_place_group_is_the_corked_legs(contract: Contract, brackets: list[dict[str, Any]], first_id: int) -> None:
    ours, theirs = _Side(contract), _Side(contract)

    async def body() -> None:
        sent: dict[tuple[Any, ...], int] = {}  # route key -> brackets sent the usual way with it
        base = first_id
        for v in brackets:
            legs = _legs(base, v)
            ids = [o.order_id for o in legs]
            keys = _route_keys(legs)
            known = min(sent.get(k, 0) for k in keys)
            before = len(ours.transport.writes)
            taken = ours.adapter.place_group(legs)
            event(f"place_group took a bracket: {taken}")
            # The first bracket of a shape (sent the usual way) makes its legs' templates, the second their
            # routes: from the third on, place_group takes it.
            assert taken is (known >= 2)
            if not taken:
                assert len(ours.transport.writes) == before
                ours.usual(legs)
                for k in keys:
                    sent[k] = sent.get(k, 0) + 1
            theirs.usual(legs)
            assert ours.transport.writes[before:] == theirs.transport.writes[before:]
            assert ours.transport.writes[-1] == b"".join(_reference_bytes(legs, contract))
            assert ours.counters() == theirs.counters()
            await asyncio.sleep(0)  # ib_async's books follow on the next loop turn
            assert _same_books(ours.books(ids), theirs.books(ids))
            base += v["gap"]
        assert ours.transport.writes == theirs.transport.writes
        assert len(ours.transport.writes) == len(brackets)
        assert not ours.adapter._unbooked and not ours.adapter._unbooked_ids

    try:
        _run(body)
    finally:
        ours.close()
        theirs.close()


def _ready_side(contract: Contract | None = None) -> tuple[_Side, list[BrokerOrder]]:
    """An adapter whose bracket shape has routes (two brackets sent the usual way); the second's legs."""
    contract = contract or Stock("AAPL", "SMART", "USD", conId=_CON_ID, primaryExchange="NASDAQ", localSymbol="AAPL")
    side = _Side(contract)
    side.usual(_bracket(10))
    side.usual(_bracket(20))
    return side, _bracket(20)


def _declines(side: _Side, call: Callable[[], bool]) -> None:
    writes, counters = list(side.transport.writes), side.counters()
    unbooked = list(side.adapter._unbooked)
    assert call() is False
    assert side.transport.writes == writes and side.counters() == counters
    assert side.adapter._unbooked == unbooked


async def test_place_group_declines_with_nothing_written() -> None:
    side, _ = _ready_side()
    try:
        assert side.adapter.place_group(_bracket(30))  # the short way is open
        await asyncio.sleep(0)
        # A modification: ids already in ib_async's books (kept, or deferred in this same step).
        _declines(side, lambda: side.adapter.place_group(_bracket(30)))
        assert side.adapter.place_group(_bracket(40))
        _declines(side, lambda: side.adapter.place_group([*_bracket(50)[:2], _bracket(40)[2]]))  # deferred
        await asyncio.sleep(0)
        # An unregistered contract (the same shape, another conId).
        other = [BrokerOrder(**{**_fields(o), "con_id": 4242}) for o in _bracket(60)]
        _declines(side, lambda: side.adapter.place_group(other))
        # Corked.
        side.adapter.cork()
        _declines(side, lambda: side.adapter.place_group(_bracket(70)))
        side.adapter.uncork()
        # Not connected.
        side.ib.client.connState = Client.DISCONNECTED
        _declines(side, lambda: side.adapter.place_group(_bracket(80)))
        side.ib.client.connState = Client.CONNECTED
        # Nothing, and ib_async's throttle busy.
        _declines(side, lambda: side.adapter.place_group([]))
        side.ib.client._isThrottling = True
        _declines(side, lambda: side.adapter.place_group(_bracket(90)))
        side.ib.client._isThrottling = False
        assert side.adapter.place_group(_bracket(100))  # and open again
        await asyncio.sleep(0)
    finally:
        side.close()


def test_place_group_without_a_running_loop_declines() -> None:
    side, _ = _ready_side()
    try:
        _declines(side, lambda: side.adapter.place_group(_bracket(30)))
    finally:
        side.close()


# ---------------------------------------------------------------- C. group_sender / GroupSender

_VARIABLE = _BRACKET_VARIABLE


def _values(legs: Sequence[BrokerOrder]) -> tuple[Any, ...]:
    return tuple(getattr(o, name) for o, names in zip(legs, _VARIABLE, strict=True) for name in names)


def _like(probe: Sequence[BrokerOrder], base: int, v: dict[str, Any]) -> list[BrokerOrder]:
    """A bracket of `probe`'s shape: new ids, and `v`'s quantity, prices, refs and OCA group."""
    legs = _legs(base, {**v, "side": probe[0].action, "priority": probe[0].algo_params[0][1]})
    return legs


@st.composite
def odd_values(draw: st.DrawFn) -> dict[str, Any]:
    """`bracket_values`, some with any Decimal price (NaN, infinities, other notations, none) or quantity (up to
    beyond the compiled encoders' fast path, where `send` declines and the usual way's generic encoder runs)."""
    values = draw(bracket_values())
    if draw(st.booleans()):
        values.update(
            qty=draw(quantities), limit=draw(prices), tp=draw(st.none() | prices), sl=draw(st.none() | prices)
        )
    return values


@BRACKETS
@given(
    stock_contracts(),
    bracket_values(),
    st.lists(odd_values(), min_size=1, max_size=6),
    st.integers(1, 10**6),
)
def test_group_sender_writes_the_usual_bytes_and_books(
    contract: Contract, learn: dict[str, Any], later: list[dict[str, Any]], first_id: int
) -> None:
    ours, theirs = _Side(contract), _Side(contract)

    async def body() -> None:
        base = first_id
        probe: list[BrokerOrder] = []
        for _ in range(2):  # the templates, then the routes
            probe = _legs(base, learn)
            ours.usual(probe)
            theirs.usual(probe)
            base += learn["gap"]
        sender = ours.adapter.group_sender(probe, _VARIABLE)
        assert isinstance(sender, GroupSender)
        await asyncio.sleep(0)
        for v in later:
            legs = _like(probe, base, v)
            ids = [o.order_id for o in legs]
            before = (list(ours.transport.writes), ours.counters())
            taken = sender.send(ids, _values(legs))
            event(f"GroupSender.send took a bracket: {taken}")
            assert taken is (abs(v["qty"]) < 10**15)  # (beyond: the compiled encoders' fast path declines)
            if taken:
                sender.sent(legs)
            else:
                assert (ours.transport.writes, ours.counters()) == before
                ours.usual(legs)
            theirs.usual(legs)
            assert ours.transport.writes == theirs.transport.writes
            assert ours.transport.writes[-1] == b"".join(_reference_bytes(legs, contract))
            assert ours.counters() == theirs.counters()
            await asyncio.sleep(0)
            assert _same_books(ours.books(ids), theirs.books(ids))
            base += v["gap"]

    try:
        _run(body)
    finally:
        ours.close()
        theirs.close()


async def test_group_sender_declines_with_nothing_written() -> None:
    contract = Stock("AAPL", "SMART", "USD", conId=_CON_ID, primaryExchange="NASDAQ", localSymbol="AAPL")
    side, probe = _ready_side(contract)
    try:
        sender = side.adapter.group_sender(probe, _VARIABLE)
        assert sender is not None
        client = side.ib.client

        def send(base: int, change: Callable[[list[Any]], None] | None = None) -> bool:
            legs = _bracket(base)
            values = list(_values(legs))
            if change is not None:
                change(values)
            return sender.send([o.order_id for o in legs], values)

        assert send(30)
        sender.sent(_bracket(30))
        await asyncio.sleep(0)
        # An id already known: in ib_async's books, or sent in this step (deferred).
        _declines(side, lambda: send(30))
        assert send(40)
        sender.sent(_bracket(40))
        _declines(side, lambda: sender.send([50, 51, 42], _values(_bracket(50))))
        await asyncio.sleep(0)
        # A value of another type than the spec's.
        _declines(side, lambda: send(60, lambda vs: vs.__setitem__(1, 190.05)))  # a float price
        _declines(side, lambda: send(60, lambda vs: vs.__setitem__(0, "100")))  # a str quantity
        _declines(side, lambda: send(60, lambda vs: vs.__setitem__(2, None)))  # no order ref
        # Disconnected; ib_async throttling; corked.
        client.connState = Client.DISCONNECTED
        _declines(side, lambda: send(60))
        client.connState = Client.CONNECTED
        client._isThrottling = True
        _declines(side, lambda: send(60))
        client._isThrottling = False
        side.adapter.cork()
        _declines(side, lambda: send(60))
        side.adapter.uncork()
        assert send(60)  # open again
        sender.sent(_bracket(60))
        await asyncio.sleep(0)
        # The templates dropped.
        wire = order_wire.wire_of(client)
        assert wire is not None
        wire.generation += 1
        _declines(side, lambda: send(70))
        wire.generation -= 1
        assert send(70)
        sender.sent(_bracket(70))
        await asyncio.sleep(0)
        # The caller's contract changed in place: nothing changes here (the adapter trades its own copy). A
        # contract registered again (even the same one) makes the sender decline: its routes were for the copy.
        contract.primaryExchange = "ARCA"
        assert send(80)
        assert sender.sent(_bracket(80))
        await asyncio.sleep(0)
        side.adapter.register_contract(_CON_ID, "AAPL", contract)
        _declines(side, lambda: send(90))
    finally:
        side.close()


class _ExchangeByProperty(Stock):
    """A contract whose `primaryExchange` is a property: its instance dict does not say what reading it gives."""

    @property  # type: ignore[override]
    def primaryExchange(self) -> str:
        return self.__dict__.get("_exchange", "NASDAQ")

    @primaryExchange.setter
    def primaryExchange(self, value: str) -> None:
        self.__dict__["_exchange"] = value


async def test_group_sender_checks_its_contract_after_the_write(caplog: pytest.LogCaptureFixture) -> None:
    """The adapter's own contract copy changed in place (which only a bug could do): the sender still writes
    the group as the contract was registered, `sent` books it and says False (logged), and every later
    `send` declines. The contract is read through its attributes as the routes' encoders read it (a property
    included); an attribute deleted counts as a change."""
    plain = Stock("AAPL", "SMART", "USD", conId=_CON_ID, primaryExchange="NASDAQ", localSymbol="AAPL")
    odd = _ExchangeByProperty("AAPL", "SMART", "USD", conId=_CON_ID, localSymbol="AAPL")
    for registered, changes in ((plain, ("exchange", "deleted")), (odd, ("exchange",))):
        for change in changes:
            side, probe = _ready_side(registered)
            try:
                sender = side.adapter.group_sender(probe, _VARIABLE)
                assert sender is not None
                legs = _bracket(30)
                assert sender.send([o.order_id for o in legs], _values(legs))
                assert sender.sent(legs)
                await asyncio.sleep(0)
                contract = side.adapter._contracts[_CON_ID]
                as_registered = copy.deepcopy(contract)
                if change == "exchange":
                    contract.primaryExchange = "ARCA"
                else:
                    del contract.__dict__["localSymbol"]
                legs = _bracket(40)
                count = len(side.transport.writes)
                assert sender.send([o.order_id for o in legs], _values(legs))  # (checked after the write)
                assert side.transport.writes[count:] == [b"".join(_reference_bytes(legs, as_registered))]
                with caplog.at_level(logging.ERROR):
                    assert not sender.sent(legs)
                assert "group sender is retired" in caplog.text
                await asyncio.sleep(0)
                assert (side.ib.wrapper.clientId, 42) in side.ib.wrapper.trades  # booked all the same
                legs = _bracket(50)
                _declines(side, lambda legs=legs, sender=sender: sender.send([o.order_id for o in legs], _values(legs)))
                caplog.clear()
            finally:
                side.close()


def test_group_sender_is_none_without_a_short_way() -> None:
    contract = Stock("AAPL", "SMART", "USD", conId=_CON_ID, primaryExchange="NASDAQ", localSymbol="AAPL")
    fresh = _Side(contract)
    side, probe = _ready_side()
    try:
        assert fresh.adapter.group_sender(probe, _VARIABLE) is None  # no routes
        fresh.usual(_bracket(10))
        assert fresh.adapter.group_sender(_bracket(10), _VARIABLE) is None  # templates only
        mixed = [*probe[:2], BrokerOrder(**{**_fields(probe[2]), "con_id": 4242})]
        assert side.adapter.group_sender(mixed, _VARIABLE) is None  # legs of different conIds
        other = [BrokerOrder(**{**_fields(o), "con_id": 4242}) for o in probe]
        assert side.adapter.group_sender(other, _VARIABLE) is None  # an unregistered contract
        assert side.adapter.group_sender([], []) is None
        assert side.adapter.group_sender(probe, _VARIABLE) is not None
    finally:
        fresh.close()
        side.close()


def test_a_group_sender_send_is_one_write() -> None:
    """By hand: the sender's write is the usual bracket's bytes, in one `transport.write`."""
    side, probe = _ready_side()
    try:

        async def body() -> None:
            sender = side.adapter.group_sender(probe, _VARIABLE)
            assert sender is not None
            count = len(side.transport.writes)
            legs = _bracket(30)
            assert sender.send([30, 31, 32], _values(legs))
            sender.sent(legs)
            contract = side.adapter._contracts[_CON_ID]
            assert side.transport.writes[count:] == [b"".join(_reference_bytes(legs, contract))]
            await asyncio.sleep(0)
            assert (side.ib.wrapper.clientId, 32) in side.ib.wrapper.trades

        _run(body)
    finally:
        side.close()


def test_a_group_encoder_that_differs_from_the_routes_is_refused_once_and_for_all(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    side, probe = _ready_side()
    compiled: list[int] = []
    real = order_wire.compile_group

    def off_by_one(*args: Any) -> Any:
        render = real(*args)
        compiled.append(1)
        assert render is not None

        def other(ids: Sequence[int], chunk: str, values: Sequence[Any]) -> bytes:
            data = render(ids, chunk, values)
            assert data is not None
            return bytes(data.replace(b"i1:", b"i2:"))

        return other

    monkeypatch.setattr(order_wire, "compile_group", off_by_one)
    try:
        with caplog.at_level("ERROR"):
            assert side.adapter.group_sender(probe, _VARIABLE) is None
        assert compiled == [1] and any("differs" in r.getMessage() for r in caplog.records)
        assert side.adapter.group_sender(probe, _VARIABLE) is None and compiled == [1]  # not compiled again
        monkeypatch.setattr(order_wire, "compile_group", real)
        assert side.adapter.group_sender(probe, _VARIABLE) is None  # (refused for these routes)
    finally:
        side.close()
