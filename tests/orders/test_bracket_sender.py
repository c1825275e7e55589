"""`OrderManager` sends the second and later full brackets of one shape through the broker port's `GroupSender`.

The first bracket of a shape goes the usual way (`_place_group`: `place_group`, else cork / `place_order` x3 /
uncork) and teaches the manager the shape (`_learn_bracket`); later ones are sent from the intent's values
before their legs exist (`_send_bracket`). Whatever way a bracket takes, what the manager and the broker
end up with must be the same: the same sequence of intents, run once with the short ways on and once with them
off (`FakeBroker.group_sends = False`, or a real `IbOrderAdapter` whose `place_group` / `group_sender` decline),
gives the same ids, placed orders, socket writes, journal records, states and bus events.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ib_async import IB, Stock

from omega_tui.core.broker import order_wire
from omega_tui.core.broker.orders_adapter import GroupSender, IbOrderAdapter
from omega_tui.core.clock import FakeClock
from omega_tui.core.orders import _BRACKET_VARIABLE, PROTECT_PREFIX, OrderManager
from omega_tui.core.ports import OrderPort
from omega_tui.core.types import BrokerOrder, OrderIntent, OrderState, OrderStateChanged, OrderType, Side
from tests.data.test_order_direct import _ib, _reference_bytes, _Transport
from tests.data.test_order_wire import _same
from tests.fakes import FakeBroker
from tests.orders.conftest import Rig, build_rig, instrument, intent

D = Decimal
SOME = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def _rig(broker: OrderPort | None = None, *, group_sends: bool = True, **execution: Any) -> Iterator[Rig]:
    """A manager on its own state directory (two rigs of one test are two engines, not a restart)."""
    with tempfile.TemporaryDirectory(prefix="omega-sender-") as tmp:
        clock = FakeClock()
        execution.setdefault("orders_per_second", 45)
        port = broker if broker is not None else FakeBroker(clock)
        if isinstance(port, FakeBroker):
            port.clock = clock
            port.group_sends = group_sends
        rig = build_rig(Path(tmp), port, clock, **execution)
        try:
            yield rig
        finally:
            rig.journal.close()
            rig.hot.close()


def _fake(rig: Rig) -> FakeBroker:
    assert isinstance(rig.broker, FakeBroker)
    return rig.broker


def _shape(rig: Rig, it: OrderIntent) -> tuple[Any, ...]:
    shape = rig.manager._bracket_shape(it)
    assert shape is not None
    return shape


def _values(orders: Sequence[BrokerOrder]) -> tuple[Any, ...]:
    return tuple(getattr(o, name) for o, names in zip(orders, _BRACKET_VARIABLE, strict=True) for name in names)


def _states(rig: Rig, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    out = []
    for oid in ids:
        mo = rig.manager.order(oid)
        assert mo is not None
        out.append((mo.order, mo.role, mo.intent_id, mo.state, mo.journal_seq, [t[0] for t in mo.transitions]))
    return out


# ---------------------------------------------------------------- the same run, with and without the sender

_KINDS = ["bracket"] * 6 + ["no_exit", "sliced", "protect"]


@st.composite
def intents(draw: st.DrawFn) -> list[OrderIntent]:
    out = []
    for n in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(_KINDS))
        side = draw(st.sampled_from(list(Side)))
        limit = D("100.00") + D(draw(st.integers(-300, 300))).scaleb(-2)
        up, down = (D(draw(st.integers(1, 90))).scaleb(-2) for _ in range(2))
        tp, sl = (limit + up, limit - down) if side is Side.BUY else (limit - up, limit + down)
        exits = kind != "no_exit"
        out.append(
            intent(
                draw(st.integers(201, 500)) if kind == "sliced" else draw(st.integers(1, 200)),
                key=draw(st.sampled_from(["AAPL", "AAPL", "MSFT"])),
                side=side,
                limit=str(limit),
                tp=str(tp) if exits else None,
                sl=str(sl) if exits else None,
                priority=draw(st.sampled_from(["Patient", "Normal", "Normal", "Urgent"])),
                intent_id=f"{PROTECT_PREFIX}s{n}" if kind == "protect" else f"s{n}",
            )
        )
    return out


def _drive(rig: Rig, sequence: Sequence[OrderIntent]) -> tuple[list[list[int]], list[list[int]]]:
    """Submit each intent (a second apart, the queue pumped first); the ids each submit returned, and the ids
    of the brackets that should have gone through a sender (a shape learned from an earlier bracket, sent at
    once, nothing queued)."""
    learned: set[tuple[Any, ...]] = set()
    returned: list[list[int]] = []
    expected: list[list[int]] = []
    for it in sequence:
        rig.clock.advance(1.0)
        rig.manager.pump()
        shape = (it.key, it.side, it.adaptive_priority)
        eligible = (
            it.take_profit is not None and it.quantity <= 200 and not it.intent_id.startswith(PROTECT_PREFIX)
        ) and rig.manager.queued_count() == 0
        ids = rig.manager.submit(it)
        returned.append(ids)
        if eligible and len(ids) == 3:
            if shape in learned:
                expected.append(ids)
            learned.add(shape)
    rig.clock.advance(60.0)
    rig.manager.pump()
    return returned, expected


@SOME
@given(intents())
def test_brackets_through_the_sender_end_as_the_usual_way(sequence: list[OrderIntent]) -> None:
    with _rig(group_sends=True) as on, _rig(group_sends=False) as off:
        ids_on, expected = _drive(on, sequence)
        ids_off, _ = _drive(off, sequence)
        event(f"brackets through a sender: {min(len(expected), 3)}{'+' if len(expected) > 3 else ''}")
        assert ids_on == ids_off
        broker_on, broker_off = _fake(on), _fake(off)
        # Through the sender: exactly the second and later brackets of a shape sent at once, with their legs' values.
        assert [ids for ids, _ in broker_on.group_sent] == expected
        by_id = {o.order_id: o for o in broker_on.placed}
        for ids, values in broker_on.group_sent:
            assert values == _values([by_id[oid] for oid in ids])
        assert broker_off.group_sent == [] and not any(off.manager._senders.values())
        # The same orders, in the same writes; the same journal, states and bus events.
        assert broker_on.placed == broker_off.placed
        writes = [[o.order_id for o in w] for w in broker_on.writes]
        assert writes == [[o.order_id for o in w] for w in broker_off.writes]
        assert all(ids in writes for ids in expected)  # each bracket the sender sent: one write of its legs
        assert list(on.journal.read()) == list(off.journal.read())
        every = [oid for ids in ids_on for oid in ids] + [o.order_id for o in broker_on.placed]
        assert _states(on, every) == _states(off, every)
        assert on.events == off.events
        for ids in expected:
            assert all(on.manager.order(oid).state is OrderState.PENDING_SUBMIT for oid in ids)  # type: ignore[union-attr]


def test_the_second_bracket_of_a_shape_takes_the_sender() -> None:
    with _rig() as rig:
        broker = _fake(rig)
        first = rig.manager.submit(intent(10, intent_id="a1"))
        assert broker.group_sent == [] and [[o.order_id for o in w] for w in broker.writes] == [first]
        second = rig.manager.submit(intent(20, limit="100.50", tp="101.00", sl="99.50", intent_id="a2"))
        assert [ids for ids, _ in broker.group_sent] == [second]
        assert broker.group_sent[0][1] == (
            20, D("100.50"), "a2:entry",
            20, D("101.00"), "a2:oca", "a2:take_profit",
            20, D("99.50"), "a2:oca", "a2:stop_loss",
        )  # fmt: skip
        assert [[o.order_id for o in w] for w in broker.writes] == [first, second]
        (record,) = [r for r in rig.records("submit") if r["intent_id"] == "a2"]
        assert [leg["order"]["order_id"] for leg in record["legs"]] == second
        assert record["intent"]["intent_id"] == "a2"
        changed = [e for e in rig.events if isinstance(e, OrderStateChanged) and e.order_id in second]
        assert [(e.order_id, e.new) for e in changed] == [(oid, OrderState.PENDING_SUBMIT) for oid in second]
        # Another side, priority or instrument is another shape: learned first, the usual way.
        third = rig.manager.submit(intent(10, priority="Urgent", intent_id="a3"))
        assert len(broker.group_sent) == 1
        rig.manager.submit(intent(10, priority="Urgent", intent_id="a4"))
        assert len(broker.group_sent) == 2 and third not in [ids for ids, _ in broker.group_sent]


def test_no_garbage_collection_starts_before_a_learned_bracket_is_sent() -> None:
    """The cyclic collector waits from the intent until the sender has written the bracket (the window of
    `python -m bench orders`), even if the window allocates past the collector's threshold; it is on again
    after, and stays off if it was off before."""
    starts: list[str] = []
    where = ["outside"]

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            starts.append(where[0])

    with _rig() as rig:
        broker = _fake(rig)
        rig.manager.submit(intent(10, intent_id="g1"))
        (shape,) = rig.manager._senders
        learned = rig.manager._senders[shape]
        assert learned is not None
        sender = learned[0]
        real_send = sender.send

        def allocating_send(ids: Sequence[int], values: Sequence[object]) -> bool:
            where[0] = "window"
            garbage = [[k] for k in range(5 * gc.get_threshold()[0])]  # well past generation 0's threshold
            del garbage
            try:
                return real_send(ids, values)
            finally:
                where[0] = "outside"

        sender.send = allocating_send  # type: ignore[method-assign]
        gc.callbacks.append(watch)
        try:
            assert gc.isenabled()
            rig.manager.submit(intent(10, intent_id="g2"))
            assert "window" not in starts and gc.isenabled()
            gc.disable()
            rig.manager.submit(intent(10, intent_id="g3"))
            assert not gc.isenabled()  # (left as it was)
        finally:
            gc.enable()
            gc.callbacks.remove(watch)
        assert len(broker.group_sent) == 2


# ---------------------------------------------------------------- the real adapter on a running loop


def _adapter_port(decline: bool) -> tuple[IbOrderAdapter, IB, _Transport]:
    ib, _ = _ib(capture=False)
    ib.client.MaxRequests = 0
    ib.client._apiReady = True
    ib.client._reqIdSeq = 100
    transport = _Transport()
    ib.client.conn.transport = transport
    adapter = IbOrderAdapter(ib, FakeClock())
    for inst in (instrument("AAPL"), instrument("MSFT")):
        contract = Stock(inst.spec.symbol, "SMART", "USD", conId=inst.con_id, primaryExchange="NASDAQ")
        adapter.register_contract(inst.con_id, inst.key, contract)
    if decline:  # the usual way only: cork, place_order per leg, uncork
        adapter.place_group = lambda orders: False  # type: ignore[method-assign]
        adapter.group_sender = lambda orders, variable: None  # type: ignore[method-assign]
    return adapter, ib, transport


async def test_the_real_adapter_sends_learned_brackets_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    sends: list[list[int]] = []
    real_send = GroupSender.send

    def counted(self: GroupSender, ids: Sequence[int], values: Sequence[Any]) -> bool:
        taken = real_send(self, ids, values)
        if taken:
            sends.append(list(ids))
        return taken

    monkeypatch.setattr(GroupSender, "send", counted)
    ours, ib, transport = _adapter_port(False)
    theirs, their_ib, their_transport = _adapter_port(True)
    sequence = [
        intent(10, intent_id="r1"),
        intent(20, limit="100.10", tp="100.50", sl="99.10", intent_id="r2"),
        intent(30, limit="99.90", tp="101.90", sl="98.00", intent_id="r3"),
        intent(5, key="MSFT", side=Side.SELL, tp="99.00", sl="101.00", intent_id="r4"),
        intent(40, limit="100.01", tp="100.02", sl="100.00", intent_id="r5"),
        intent(7, key="MSFT", side=Side.SELL, limit="100.30", tp="99.00", sl="101.00", intent_id="r6"),
        intent(50, intent_id="r7"),
    ]
    try:
        with _rig(ours) as on, _rig(theirs) as off:
            for it in sequence:
                count = len(transport.writes)
                ids = on.manager.submit(it)
                assert ids == off.manager.submit(it) and len(ids) == 3
                legs = [on.manager.order(oid).order for oid in ids]  # type: ignore[union-attr]
                contract = ours._contracts[legs[0].con_id]
                assert transport.writes[count:] == [b"".join(_reference_bytes(legs, contract))]  # one write
                assert transport.writes == their_transport.writes
                await asyncio.sleep(0)  # ib_async's books
                for oid in ids:
                    mine = ib.wrapper.trades[(ib.wrapper.clientId, oid)]
                    other = their_ib.wrapper.trades[(their_ib.wrapper.clientId, oid)]
                    assert _same(vars(mine.order), vars(other.order)) and mine.contract is contract
            # The first bracket of a shape makes its templates, the second its routes (and the sender): the
            # third and later AAPL brackets go through the sender; MSFT's first finds the templates (they do not
            # depend on the contract) and makes its routes, so its second goes through its sender.
            assert [s[0] for s in sends] == _entry_ids(on, ("r3", "r5", "r6", "r7"))
            wire, their_wire = order_wire.wire_of(ib.client), order_wire.wire_of(their_ib.client)
            assert wire is not None and their_wire is not None
            assert (wire.templated, wire.direct_sends) == (their_wire.templated, their_wire.direct_sends)
            conn, their_conn = ib.client.conn, their_ib.client.conn
            assert (conn.numBytesSent, conn.numMsgSent) == (their_conn.numBytesSent, their_conn.numMsgSent)
            assert conn.numMsgSent == 3 * len(sequence) and len(transport.writes) == len(sequence)
            assert list(on.journal.read()) == list(off.journal.read())
            assert on.events == off.events
    finally:
        for port_ib in (ib, their_ib):
            port_ib.client.conn.transport = None
            port_ib.client._apiReady = False
            port_ib.client.connState = port_ib.client.DISCONNECTED


def _entry_ids(rig: Rig, intent_ids: Sequence[str]) -> list[int]:
    """The entry ids of the named intents' brackets, from the journal's submit records."""
    entries = {r["intent_id"]: r["legs"][0]["order"]["order_id"] for r in rig.records("submit")}
    return [entries[iid] for iid in intent_ids]


# ---------------------------------------------------------------- declines, raises, mismatches


def test_a_sender_that_declines_leaves_the_bracket_to_the_usual_way_and_is_learned_again() -> None:
    with _rig() as rig:
        broker = _fake(rig)
        rig.manager.submit(intent(10, intent_id="d1"))
        rig.manager.submit(intent(10, intent_id="d2"))
        shape = _shape(rig, intent(10, intent_id="dx"))
        assert len(broker.group_sent) == 1 and rig.manager._senders.get(shape) is not None
        broker.group_sends = False  # the sender declines (and so does place_group)
        ids = rig.manager.submit(intent(10, intent_id="d3"))
        assert len(ids) == 3 and len(broker.group_sent) == 1
        assert [o.order_id for o in broker.writes[-1]] == ids  # still one write
        assert [o.order_id for o in broker.placed[-3:]] == ids
        assert all(rig.manager.order(oid).state is OrderState.PENDING_SUBMIT for oid in ids)  # type: ignore[union-attr]
        assert shape not in rig.manager._senders
        (record,) = [r for r in rig.records("submit") if r["intent_id"] == "d3"]
        assert [leg["order"]["order_id"] for leg in record["legs"]] == ids
        broker.group_sends = True
        rig.manager.submit(intent(10, intent_id="d4"))  # the usual way, and learned again
        assert len(broker.group_sent) == 1 and rig.manager._senders.get(shape) is not None
        again = rig.manager.submit(intent(10, intent_id="d5"))
        assert [ids for ids, _ in broker.group_sent][-1] == again


class _RaisingSender:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.raising = False

    def send(self, ids: Sequence[int], values: Sequence[Any]) -> bool:
        if self.raising:
            raise ConnectionError("socket gone")
        taken: bool = self.inner.send(ids, values)
        return taken

    def sent(self, orders: Sequence[BrokerOrder]) -> bool:
        fresh: bool = self.inner.sent(orders)
        return fresh


class _RaisingBroker(FakeBroker):
    def __init__(self) -> None:
        super().__init__()
        self.senders: list[_RaisingSender] = []

    def group_sender(self, orders: Sequence[BrokerOrder], variable: Sequence[Sequence[str]]) -> Any:
        inner = super().group_sender(orders, variable)
        if inner is None:
            return None
        sender = _RaisingSender(inner)
        self.senders.append(sender)
        return sender


def test_a_sender_that_raises_sends_nothing_and_journals_the_legs_as_new() -> None:
    broker = _RaisingBroker()
    with _rig(broker) as rig:
        rig.manager.submit(intent(10, intent_id="x1"))
        (sender,) = broker.senders
        sender.raising = True
        placed, writes, events = len(broker.placed), len(broker.writes), len(rig.events)
        with pytest.raises(ConnectionError, match="socket gone"):
            rig.manager.submit(intent(10, intent_id="x2"))
        assert len(broker.placed) == placed and len(broker.writes) == writes and broker.group_sent == []
        (record,) = [r for r in rig.records("submit") if r["intent_id"] == "x2"]
        ids = [leg["order"]["order_id"] for leg in record["legs"]]
        assert len(ids) == 3 and record["intent"]["intent_id"] == "x2"
        for oid in ids:
            mo = rig.manager.order(oid)
            assert mo is not None and mo.state is OrderState.NEW and mo.intent_id == "x2"
        assert not [e for e in rig.events[events:] if isinstance(e, OrderStateChanged)]
        assert rig.manager._placing == ()
        sender.raising = False
        later = rig.manager.submit(intent(10, intent_id="x3"))  # the next one goes out
        assert [ids for ids, _ in broker.group_sent] == [later]


def _learned(rig: Rig, prefix: str) -> tuple[FakeBroker, tuple[Any, ...]]:
    """The rig's fake broker, ready to answer a reconcile, once a first bracket (`{prefix}1`) taught the manager
    its shape; and that shape, which has a sender."""
    broker = _fake(rig)
    rig.manager.set_snapshot_source(broker)
    rig.manager.submit(intent(10, intent_id=f"{prefix}1"))
    shape = _shape(rig, intent(10, intent_id=f"{prefix}x"))
    assert rig.manager._senders.get(shape) is not None
    return broker, shape


async def test_values_that_differ_from_the_legs_are_sent_then_the_shape_dropped_and_reconciled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with _rig() as rig:
        broker, shape = _learned(rig, "m")
        real = OrderManager._bracket_values

        def other_ref(it: OrderIntent) -> tuple[Any, ...]:
            values = list(real(it))
            values[2] = "someone-else:entry"
            return tuple(values)

        monkeypatch.setattr(OrderManager, "_bracket_values", staticmethod(other_ref))
        with caplog.at_level(logging.ERROR, logger="omega_tui.core.orders"):
            ids = rig.manager.submit(intent(10, intent_id="m2"))
        assert [i for i, _ in broker.group_sent] == [ids]  # sent (with the other value)
        assert [o.order_id for o in broker.placed[-3:]] == ids and broker.placed[-3].order_ref == "m2:entry"
        assert any("m2" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
        assert rig.manager._senders[shape] is None
        assert rig.manager._reconcile_handle is not None  # a reconcile is scheduled
        rig.manager.submit(intent(10, intent_id="m3"))
        rig.manager.submit(intent(10, intent_id="m4"))
        assert len(broker.group_sent) == 1 and rig.manager._senders[shape] is None  # not used again
        rig.manager._reconcile_handle.cancel()


async def test_a_sender_stale_after_the_write_is_dropped_relearned_and_reconciled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`GroupSender.sent` says False (the port found, after the write, that what it encoded once no longer
    holds): the bracket is booked as sent, the error logged, a reconcile scheduled, and the shape learned again
    from the next bracket the usual way."""
    with _rig() as rig:
        broker, shape = _learned(rig, "s")
        broker.group_sender_stale = True
        with caplog.at_level(logging.ERROR, logger="omega_tui.core.orders"):
            ids = rig.manager.submit(intent(10, intent_id="s2"))
        assert [i for i, _ in broker.group_sent] == [ids]
        assert [o.order_id for o in broker.placed[-3:]] == ids
        assert all(rig.manager.order(oid).state is OrderState.PENDING_SUBMIT for oid in ids)  # type: ignore[union-attr]
        assert any("s2" in r.getMessage() and "stale" in r.getMessage() for r in caplog.records)
        assert shape not in rig.manager._senders
        assert rig.manager._reconcile_handle is not None
        rig.manager._reconcile_handle.cancel()
        broker.group_sender_stale = False
        rig.manager.submit(intent(10, intent_id="s3"))  # the usual way, and learned again
        assert len(broker.group_sent) == 1 and rig.manager._senders.get(shape) is not None
        again = rig.manager.submit(intent(10, intent_id="s4"))
        assert [i for i, _ in broker.group_sent][-1] == again


def test_values_that_differ_when_learning_keep_the_usual_way(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = OrderManager._bracket_values
    monkeypatch.setattr(OrderManager, "_bracket_values", staticmethod(lambda it: (*real(it)[:-1], "other")))
    with _rig() as rig:
        broker = _fake(rig)
        with caplog.at_level(logging.ERROR, logger="omega_tui.core.orders"):
            for n in range(3):
                assert len(rig.manager.submit(intent(10, intent_id=f"l{n}"))) == 3
        assert broker.group_sent == []
        assert rig.manager._senders[_shape(rig, intent(10, intent_id="lx"))] is None
        assert any("l0" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- never a sender


def _position(rig: Rig, qty: int) -> None:
    broker = _fake(rig)
    (oid,) = rig.manager.submit(intent(qty, tp=None, sl=None, intent_id="pos"))
    broker.ack(oid)
    broker.fill(oid, qty, D("100.00"))
    assert rig.manager.position_qty("AAPL") == qty


@pytest.mark.parametrize("kind", ["reduce_only", "market", "sliced", "no_exit", "protect"])
def test_intents_that_are_not_a_full_bracket_never_use_a_sender(kind: str) -> None:
    with _rig(allow_market_orders=True) as rig:
        broker = _fake(rig)
        if kind == "reduce_only":
            _position(rig, 100)
        rig.manager.submit(intent(10, intent_id="learn"))  # a learned shape: AAPL, BUY, Normal
        for n in range(3):
            rig.clock.advance(5.0)
            rig.manager.pump()
            it = {
                "reduce_only": intent(10, side=Side.SELL, tp="99.00", sl="101.00", reduce_only=True, intent_id=f"k{n}"),
                "market": intent(10, limit=None, order_type=OrderType.MKT, intent_id=f"k{n}"),
                "sliced": intent(450, intent_id=f"k{n}"),
                "no_exit": intent(10, tp=None, sl=None, intent_id=f"k{n}"),
                "protect": intent(10, intent_id=f"{PROTECT_PREFIX}k{n}"),
            }[kind]
            assert rig.manager._bracket_shape(it) is None
            try:
                rig.manager.submit(it)
            except Exception as exc:  # (a refusal is fine: it was not sent by a sender either)
                assert kind in ("reduce_only", "market"), exc
        rig.clock.advance(60.0)
        rig.manager.pump()
        assert broker.group_sent == []
        assert len(rig.manager._senders) == 1


def test_new_instruments_forget_the_learned_shapes() -> None:
    """A shape's sender was made for its instrument's conId: `set_instruments` drops it, and the next bracket
    goes the usual way with the new conId (and teaches the shape again)."""
    with _rig() as rig:
        broker = _fake(rig)
        rig.manager.submit(intent(10, intent_id="n1"))
        rig.manager.submit(intent(10, intent_id="n2"))
        assert len(broker.group_sent) == 1
        moved = replace(instrument("AAPL"), con_id=777)
        rig.manager.set_instruments({"AAPL": moved, "MSFT": instrument("MSFT")})
        ids = rig.manager.submit(intent(10, intent_id="n3"))
        assert len(broker.group_sent) == 1 and {o.con_id for o in broker.placed[-3:]} == {777}
        assert [o.order_id for o in broker.writes[-1]] == ids
        again = rig.manager.submit(intent(10, intent_id="n4"))
        assert [i for i, _ in broker.group_sent] == [broker.group_sent[0][0], again]
        assert {o.con_id for o in broker.placed[-3:]} == {777}
        assert rig.manager._senders[_shape(rig, intent(10, intent_id="nx"))] is not None
