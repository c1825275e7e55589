"""The order adapter: BrokerOrder → ib_async Order, and IB's order messages → Omega's reports.

Messages are fed through ib_async's own decoder (the same path a socket read takes), so these tests check
the translation against what ib_async really parses.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from ib_async import IB

from omega_tui.core.broker.orders_adapter import IbOrderAdapter
from omega_tui.core.clock import FakeClock
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


class Sink:
    def __init__(self) -> None:
        self.events: list[object] = []

    def on_order_status(self, report: OrderStatusReport) -> None:
        self.events.append(report)

    def on_open_order(self, report: OpenOrderReport) -> None:
        self.events.append(report)

    def on_execution(self, report: ExecutionReport) -> None:
        self.events.append(report)

    def on_commission(self, report: CommissionReport) -> None:
        self.events.append(report)

    def on_broker_error(self, error: BrokerError) -> None:
        self.events.append(error)


@pytest.fixture
def wired(fake_clock: FakeClock) -> tuple[IB, IbOrderAdapter, Sink]:
    ib = IB()
    ib.client.decoder.serverVersion = 178
    ib.client.clientId = 17  # as after connectAsync(clientId=17): the messages below carry clientId 17
    adapter = IbOrderAdapter(ib, fake_clock)
    sink = Sink()
    adapter.set_order_events(sink)
    return ib, adapter, sink


def feed(ib: IB, *fields: object) -> None:
    ib.client.decoder.interpret([str(f) for f in fields])


def test_status_of_an_order_unknown_to_ib_async_is_still_delivered(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    ib, _, sink = wired
    # orderStatus: id, status, filled, remaining, avgFill, permId, parentId, lastFill, clientId, whyHeld, mktCap
    feed(ib, 3, 41, "Submitted", "30", "70", "190.05", 9001, 0, "190.05", 17, "", "0")
    (report,) = sink.events
    assert report == OrderStatusReport(
        order_id=41,
        status="Submitted",
        filled=30,
        remaining=70,
        avg_fill_price=Decimal("190.05"),
        perm_id=9001,
        parent_id=0,
        last_fill_price=Decimal("190.05"),
        recv_ns=report.recv_ns,  # type: ignore[attr-defined]
        why_held="",
    )


def test_status_of_another_api_clients_order_is_not_delivered(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    """Order ids are per client: client 5's order 41 is not ours, even if we also have an order 41."""
    ib, _, sink = wired
    feed(ib, 3, 41, "Submitted", "30", "70", "190.05", 9001, 0, "190.05", 5, "", "0")
    assert sink.events == []


def test_status_before_any_fill_has_no_average_price(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    ib, _, sink = wired
    feed(ib, 3, 42, "PreSubmitted", "0", "100", "0", 9002, 41, "0", 17, "child", "0")
    (report,) = sink.events
    assert isinstance(report, OrderStatusReport)
    assert report.avg_fill_price is None and report.last_fill_price is None
    assert report.parent_id == 41 and report.why_held == "child"


def test_execution_of_an_order_placed_elsewhere_is_delivered_in_utc(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    ib, adapter, sink = wired
    from ib_async import Stock

    adapter.register_contract(265598, "AAPL", Stock("AAPL", "SMART", "USD", conId=265598))
    feed(
        ib, 11, -1, 55, 265598, "AAPL", "STK", "", "0.0", "", "", "SMART", "USD", "AAPL", "NMS",
        "0000e1a7.6a1b.01.01", "20261126 09:30:01 US/Eastern", "DU1234567", "NASDAQ", "BOT", "30", "190.05",
        9005, 17, 0, "30", "190.05", "omega:abc", "", "", "", 1, 0,
    )  # fmt: skip
    (report,) = sink.events
    assert isinstance(report, ExecutionReport)
    assert report.exec_id == "0000e1a7.6a1b.01.01" and report.key == "AAPL" and report.side is Side.BUY
    assert report.quantity == 30 and report.price == Decimal("190.05") and report.order_ref == "omega:abc"
    assert report.time_utc == datetime(2026, 11, 26, 14, 30, 1, tzinfo=UTC)


def test_commission_keeps_an_unset_realized_pnl_as_none(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    ib, _, sink = wired
    feed(ib, 59, 1, "0000e1a7.6a1b.01.01", "1.05", "USD", "1.7976931348623157E308", "1.7976931348623157E308", "")
    feed(ib, 59, 1, "0000e1a7.6a1b.01.02", "1.00", "USD", "-12.5", "", "")
    first, second = sink.events
    assert isinstance(first, CommissionReport) and isinstance(second, CommissionReport)
    assert first.commission == Decimal("1.05") and first.realized_pnl is None
    assert second.realized_pnl == Decimal("-12.5")


async def test_errors_carry_the_advanced_reject_and_skip_data_requests(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    ib, adapter, sink = wired
    seen: list[BrokerError] = []
    adapter.add_error_listener(seen.append)
    ib.wrapper.startReq(77)  # a pending data request (contract details, historical, what-if)
    feed(ib, 4, 2, 77, 200, "No security definition has been found for the request", "")
    feed(ib, 4, 2, 43, 201, "Order rejected - reason:no permission", '{"rejectCode": 1}')
    assert [e.code for e in seen] == [200, 201]
    (error,) = sink.events
    assert isinstance(error, BrokerError) and error.req_id == 43 and error.advanced == '{"rejectCode": 1}'


def test_what_if_answers_are_not_reported_as_orders(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    _, adapter, sink = wired
    from ib_async import Contract, Order, OrderState

    adapter._on_open_order(5, Contract(conId=1), Order(whatIf=True), OrderState())
    assert sink.events == []


def test_a_failing_sink_does_not_break_ib_async(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    ib, adapter, _ = wired

    class Broken(Sink):
        def on_order_status(self, report: OrderStatusReport) -> None:
            raise RuntimeError("boom")

    adapter.set_order_events(Broken())
    feed(ib, 3, 44, "Submitted", "0", "1", "0", 9009, 0, "0", 17, "", "0")
    assert adapter.sink_errors == 1


def test_bracket_child_order_carries_parent_oca_and_adaptive_params() -> None:
    order = BrokerOrder(
        order_id=12,
        key="AAPL",
        con_id=265598,
        action=Side.SELL,
        quantity=100,
        order_type=OrderType.STP_LMT,
        limit_price=Decimal("189.50"),
        aux_price=Decimal("189.60"),
        tif="GTC",
        parent_id=10,
        oca_group="omega-oca-10",
        oca_type=1,
        transmit=False,
        order_ref="omega:i1:sl",
        algo_strategy="Adaptive",
        algo_params=(("adaptivePriority", "Urgent"),),
        account="DU1234567",
    )
    ib_order = IbOrderAdapter.build_order(order)
    assert (ib_order.orderId, ib_order.action, ib_order.totalQuantity) == (12, "SELL", 100)
    assert ib_order.orderType == "STP LMT"
    assert (ib_order.lmtPrice, ib_order.auxPrice, ib_order.tif) == (189.5, 189.6, "GTC")
    assert (ib_order.parentId, ib_order.ocaGroup, ib_order.ocaType, ib_order.transmit) == (10, "omega-oca-10", 1, False)
    assert ib_order.orderRef == "omega:i1:sl" and ib_order.account == "DU1234567"
    assert ib_order.algoStrategy == "Adaptive"
    assert [(tv.tag, tv.value) for tv in ib_order.algoParams] == [("adaptivePriority", "Urgent")]


def test_placing_an_order_while_disconnected_raises(wired: tuple[IB, IbOrderAdapter, Sink]) -> None:
    _, adapter, _ = wired
    assert not adapter.connected
    order = BrokerOrder(order_id=1, key="AAPL", con_id=265598, action=Side.BUY, quantity=1, order_type=OrderType.LMT)
    with pytest.raises(ConnectionError):
        adapter.place_order(order)


async def test_place_writes_the_bytes_first_and_keeps_ib_asyncs_books_before_the_next_read(
    fake_clock: FakeClock,
) -> None:
    """The order is on the socket when place_order returns; ib_async's Trade exists before any reply is
    decoded (one Trade per order, updated by the gateway's openOrder/orderStatus, never a second one)."""
    import asyncio

    from omega_tui.sim import SimGateway

    gw = SimGateway(seed=7, clock="virtual")
    port = await gw.start_async()
    ib = IB()
    try:
        await ib.connectAsync("127.0.0.1", port, clientId=21, timeout=10)
        adapter = IbOrderAdapter(ib, fake_clock)
        sink = Sink()
        adapter.set_order_events(sink)
        transport = ib.client.conn.transport
        assert transport is not None
        written: list[bytes] = []
        raw = transport.write

        def spy(data: bytes) -> None:
            written.append(bytes(data))
            raw(data)

        transport.write = spy
        (oid,) = adapter.next_order_ids(1)
        order = BrokerOrder(
            order_id=oid, key="AAPL", con_id=265598, action=Side.BUY, quantity=5, order_type=OrderType.LMT,
            limit_price=Decimal("100.00"), order_ref="t1:entry",
        )  # fmt: skip
        adapter.place_order(order)
        assert written and b"t1:entry" in written[-1]  # on the wire already
        assert (ib.wrapper.clientId, oid) not in ib.wrapper.trades  # books kept on the next loop turn
        adapter.place_order(replace(order, quantity=7))  # a modification in the same step
        assert (ib.wrapper.clientId, oid) in ib.wrapper.trades  # settled first, so it is seen as a modification
        trade = ib.wrapper.trades[(ib.wrapper.clientId, oid)]
        assert len(written) == 2 and b"t1:entry" in written[-1]
        await asyncio.sleep(0)
        assert [e.message for e in trade.log] == ["", "Modify"]
        for _ in range(400):
            if any(isinstance(e, OrderStatusReport) for e in sink.events):
                break
            await asyncio.sleep(0.005)
        assert ib.wrapper.trades[(ib.wrapper.clientId, oid)] is trade
        assert trade.orderStatus.status in ("Submitted", "PreSubmitted")
        assert len([t for t in ib.wrapper.trades.values() if t.order.orderId == oid]) == 1
        adapter.cancel_order(oid)
    finally:
        ib.disconnect()
        await gw.stop_async()


@pytest.mark.parametrize("algo", [False, True])
def test_build_order_equals_the_order_ib_asyncs_constructor_makes(algo: bool) -> None:
    """The fast copy-of-defaults build gives exactly the Order the constructor would, with its own lists."""
    from ib_async import Order, TagValue

    order = BrokerOrder(
        order_id=31, key="AAPL", con_id=265598, action=Side.BUY, quantity=300, order_type=OrderType.LMT,
        limit_price=Decimal("190.05"), tif="DAY", parent_id=0, oca_group="g", oca_type=2, transmit=False,
        order_ref="i9:entry", algo_strategy="Adaptive" if algo else "",
        algo_params=(("adaptivePriority", "Normal"),) if algo else (),
    )  # fmt: skip
    reference = Order(
        orderId=31, action="BUY", totalQuantity=300.0, orderType="LMT", tif="DAY", parentId=0, ocaGroup="g",
        ocaType=2, transmit=False, orderRef="i9:entry", account="", whatIf=False, lmtPrice=190.05,
    )  # fmt: skip
    if algo:
        reference.algoStrategy = "Adaptive"
        reference.algoParams = [TagValue("adaptivePriority", "Normal")]
    built = IbOrderAdapter.build_order(order)
    assert vars(built) == vars(reference)  # (ib_async Orders compare by identity)
    other = IbOrderAdapter.build_order(order)
    for name in ("algoParams", "smartComboRoutingParams", "orderComboLegs", "orderMiscOptions", "conditions"):
        assert getattr(built, name) is not getattr(other, name)  # never shared between orders
    assert built.softDollarTier is not other.softDollarTier
