"""Cancel, modify and cancel-all (global cancel, survivors re-cancelled, alert when one still survives)."""

from __future__ import annotations

from decimal import Decimal

from omega_tui.core.types import OrderState
from tests.fakes import FakeBroker
from tests.orders.conftest import RigFactory, intent


def test_cancel_working_order_then_pending_cancel_and_broker_asked(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    assert rig.manager.cancel(1, reason="operator")
    assert rig.broker.cancels == [1]
    assert rig.manager.order(1).state is OrderState.PENDING_CANCEL  # type: ignore[union-attr]
    assert rig.records("cancel")[0]["reason"] == "operator"
    rig.broker.cancelled(1)
    assert rig.manager.order(1).state is OrderState.CANCELLED  # type: ignore[union-attr]


def test_cancel_unknown_or_terminal_order_then_false_and_nothing_sent(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    rig.broker.fill(1, 10, Decimal("100"))
    assert not rig.manager.cancel(1)
    assert not rig.manager.cancel(999)
    assert rig.broker.cancels == []


def test_modify_working_order_then_resent_under_same_id(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10))
    rig.broker.ack(3)
    assert rig.manager.modify(3, aux_price=Decimal("99.50"))
    resent = rig.broker.placed[-1]
    assert resent.order_id == 3 and resent.aux_price == Decimal("99.50") and resent.transmit
    assert rig.manager.order(3).order.aux_price == Decimal("99.50")  # type: ignore[union-attr]
    assert not rig.manager.modify(3, quantity=0)


async def test_cancel_all_when_broker_cancels_everything_then_true(make_rig: RigFactory) -> None:
    rig = make_rig(broker=FakeBroker(auto_ack=True, auto_cancel=True), cancel_all_timeout_s=0.5)
    rig.manager.submit(intent(10))
    rig.manager.submit(intent(5, key="MSFT"))
    assert rig.manager.open_order_count() == 6

    assert await rig.manager.cancel_all("halt")

    assert rig.broker.global_cancels == 1
    assert rig.broker.cancels == []  # nothing needed a per-order cancel
    assert rig.manager.open_order_count() == 0
    assert all(rig.manager.order(i).state is OrderState.CANCELLED for i in range(1, 7))  # type: ignore[union-attr]


async def test_cancel_all_when_children_survive_global_cancel_then_re_cancels_each(make_rig: RigFactory) -> None:
    broker = FakeBroker(auto_ack=True)
    rig = make_rig(broker=broker, cancel_all_timeout_s=0.05)
    rig.manager.submit(intent(10))  # ids 1 (parent), 2 (TP), 3 (SL)

    def global_cancel() -> None:
        broker.global_cancels += 1
        broker.cancelled(1)  # the global cancel misses the bracket children

    broker.global_cancel = global_cancel  # type: ignore[method-assign]
    broker.auto_cancel = True  # per-order cancels work
    assert await rig.manager.cancel_all("flatten")
    assert sorted(broker.cancels) == [2, 3]
    assert rig.records("cancel_all_retry")[0]["survivors"] == [2, 3]
    assert rig.manager.alerts == []


async def test_cancel_all_when_an_order_survives_everything_then_alert_and_false(make_rig: RigFactory) -> None:
    broker = FakeBroker(auto_ack=True, auto_cancel=True)
    rig = make_rig(broker=broker, cancel_all_timeout_s=0.05)
    lines: list[tuple[str, str, str]] = []
    rig.manager.set_event_log(lambda level, kind, text: lines.append((level, kind, text)))
    rig.manager.submit(intent(10))
    broker.survivors = {3}

    assert not await rig.manager.cancel_all("max loss")

    assert broker.cancels == [3]
    assert rig.manager.order(3).state is OrderState.PENDING_CANCEL  # type: ignore[union-attr]
    assert len(rig.manager.alerts) == 1 and "3 AAPL stop_loss" in rig.manager.alerts[0]
    assert lines and lines[0][0] == "error" and "still working" in lines[0][2]
    assert rig.records("alert")


async def test_cancel_all_then_queued_slices_are_dropped_and_never_placed(make_rig: RigFactory) -> None:
    rig = make_rig(broker=FakeBroker(auto_ack=True, auto_cancel=True), max_child_qty=10, cancel_all_timeout_s=0.1)
    rig.manager.submit(intent(30))
    assert rig.manager.queued_count() == 6
    assert await rig.manager.cancel_all("halt")
    rig.clock.advance(10)
    rig.manager.pump()
    assert len(rig.broker.placed) == 3
    assert rig.manager.working_entry_qty("AAPL") == 0


async def test_cancel_all_without_alert_sink_then_alert_lands_in_hot_state_event_log(make_rig: RigFactory) -> None:
    broker = FakeBroker(auto_ack=True)
    rig = make_rig(broker=broker, cancel_all_timeout_s=0.02)
    rig.manager.submit(intent(10, tp=None, sl=None))
    assert not await rig.manager.cancel_all("test")
    (line,) = rig.hot.get("events")
    assert line["level"] == "error" and line["kind"] == "order"


def test_modify_refused_by_the_broker_then_order_stands_and_is_reconciled(make_rig: RigFactory) -> None:
    """A 103 for an id the broker already holds refuses a request on the order, not the order: e.g. resizing
    protection the broker has just filled. The order keeps its state; the broker says the truth."""
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    assert rig.manager.modify(1, limit_price=Decimal("100.01"))
    rig.broker.error(1, 103, "Duplicate order id")
    order = rig.manager.order(1)
    assert order is not None and order.state is OrderState.SUBMITTED
    notes = [r["text"] for r in rig.records("order_note") if r["order_id"] == 1]
    assert any(text.startswith("request refused: 103") for text in notes), notes


def test_duplicate_id_for_a_new_order_then_rejected(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.error(1, 103, "Duplicate order id")
    assert rig.manager.order(1).state is OrderState.REJECTED  # type: ignore[union-attr]
