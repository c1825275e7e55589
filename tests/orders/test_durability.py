"""The journal rule on the order path: no broker event about an order is acted on before the record of its
submission is durable; the loop never blocks for it (events are held and released by the journal's writer)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from omega_tui.core.journal import Journal
from omega_tui.core.types import BrokerOrder, OrderState, OrderStateChanged
from tests.fakes import FakeBroker
from tests.orders.conftest import Rig, RigFactory, intent

D = Decimal


def fsynced(rig: Rig, monkeypatch: pytest.MonkeyPatch, *, writer_runs: bool = True) -> Journal:
    """Give the rig's manager a journal with fsync on, as in production (the rig's own has fsync off)."""
    journal = Journal(rig.state_dir / "fsynced", rig.clock)
    rig.manager.journal = journal
    if not writer_runs:
        monkeypatch.setattr(journal, "_wake_writer", lambda: None)  # the writer has not run yet
    return journal


async def until(predicate: object, timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.002)):  # bounded
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not reached")


async def test_first_ack_is_held_until_the_submit_record_is_durable_then_processed_in_order(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig()
    journal = fsynced(rig, monkeypatch)
    seen: list[tuple[OrderState, int]] = []  # (new state, durable_seq when the manager acted)
    rig.bus.subscribe(OrderStateChanged, lambda e: seen.append((e.new, journal.durable_seq)))
    parent, _tp, _sl = rig.manager.submit(intent(100))
    submit_seq = journal.seq
    order = rig.manager.order(parent)
    assert order is not None and order.journal_seq == submit_seq
    assert journal.written_seq < submit_seq  # still queued: the send did not wait for the file
    seen.clear()
    # The broker answers within the same step, before the writer could run: nothing is acted on.
    rig.broker.ack(parent)  # openOrder + orderStatus(Submitted)
    ex = rig.broker.execution(parent, 40, D("100.00"))
    rig.manager.on_execution(ex)
    rig.broker.status(parent, "Submitted")  # a late status: queued behind the fill, so it stays stale
    assert order.state is OrderState.PENDING_SUBMIT and order.ack_ns == 0 and seen == []
    assert rig.manager.position_qty("AAPL") == 0 and rig.manager.held_events == 1
    await until(lambda: order.ack_ns != 0)
    assert journal.durable_seq >= submit_seq
    assert [s for s, _ in seen] == [OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED]  # arrival order
    assert all(durable >= submit_seq for _, durable in seen)
    assert rig.manager.position_qty("AAPL") == 40 and order.filled == 40
    # Later events of the order pass straight through.
    rig.broker.fill(parent, 60, D("100.00"))
    assert order.state is OrderState.FILLED and rig.manager.held_events == 1
    journal.close()


async def test_an_execution_before_any_ack_is_held_and_other_orders_are_not(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig()
    journal = fsynced(rig, monkeypatch, writer_runs=False)
    first, *_ = rig.manager.submit(intent(100, tp=None, sl=None))
    second, *_ = rig.manager.submit(intent(50, tp=None, sl=None))
    rig.manager.on_execution(rig.broker.execution(first, 100, D("100.00")))
    rig.broker.ack(second)
    assert rig.manager.position_qty("AAPL") == 0 and journal.durable_seq == 0
    assert rig.manager.order(second).state is OrderState.PENDING_SUBMIT  # type: ignore[union-attr]
    await asyncio.sleep(0.01)
    assert rig.manager.position_qty("AAPL") == 0  # no writer, no durability: still held, the loop free
    journal.sync()  # the writer's batch, done here: fsynced, the held events are released on the loop
    await until(lambda: rig.manager.position_qty("AAPL") == 100)
    assert rig.manager.order(second).state is OrderState.SUBMITTED  # type: ignore[union-attr]
    assert journal.inline_waits == 0
    journal.close()


def test_without_a_running_loop_the_first_ack_fsyncs_inline(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig()
    journal = fsynced(rig, monkeypatch, writer_runs=False)
    parent, _tp, _sl = rig.manager.submit(intent(100))
    assert journal.durable_seq < journal.seq
    rig.broker.ack(parent)
    order = rig.manager.order(parent)
    assert order is not None and order.state is OrderState.SUBMITTED
    assert journal.inline_waits == 1 and journal.durable_seq >= order.journal_seq
    assert rig.manager.held_events == 0
    journal.close()


async def test_reconcile_first_processes_the_events_the_journal_held(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig()
    journal = fsynced(rig, monkeypatch)
    rig.manager.set_snapshot_source(rig.broker)
    parent, *_ = rig.manager.submit(intent(10, tp=None, sl=None))
    ex = rig.broker.execution(parent, 10, D("100.00"))
    rig.manager.on_execution(ex)  # held
    rig.broker.snapshot_executions = [ex]
    rig.broker.snapshot_open_orders = []  # filled: no longer open at the broker
    await rig.manager.reconcile_now("test")
    order = rig.manager.order(parent)
    assert order is not None and order.state is OrderState.FILLED and rig.manager.position_qty("AAPL") == 10
    journal.close()


class _AnsweringBroker(FakeBroker):
    """Answers inside place_order, before the manager has booked or journaled the group being sent: an
    entry of 100 is rejected as it arrives, an entry of 10 filled as it arrives (execDetails first)."""

    def place_order(self, order: BrokerOrder) -> None:
        super().place_order(order)
        if order.order_ref.endswith(":entry") and order.quantity == 100:
            self.reject(order.order_id)
        elif order.order_ref.endswith(":entry") and order.quantity == 10:
            self.fill(order.order_id, 10, D("100.00"))


@pytest.mark.parametrize("with_loop", [False, True])
async def test_answers_inside_place_order_wait_for_the_submit_record_then_apply_in_order(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch, with_loop: bool
) -> None:
    rig = make_rig(broker=_AnsweringBroker())
    journal = fsynced(rig, monkeypatch) if with_loop else rig.journal
    seen: list[tuple[int, OrderState, list[str]]] = []

    def kinds() -> list[str]:
        return [r["kind"] for r in journal.read()]

    rig.bus.subscribe(OrderStateChanged, lambda e: seen.append((e.order_id, e.new, kinds())))
    parent, tp, sl = rig.manager.submit(intent(100))
    (single,) = rig.manager.submit(intent(10, tp=None, sl=None))
    order, filled = rig.manager.order(parent), rig.manager.order(single)
    assert order is not None and filled is not None
    if with_loop:
        assert order.state is OrderState.PENDING_SUBMIT and rig.manager.position_qty("AAPL") == 0  # held
        await until(lambda: order.state is OrderState.REJECTED and filled.state is OrderState.FILLED)
    assert order.state is OrderState.REJECTED and filled.state is OrderState.FILLED
    assert rig.manager.position_qty("AAPL") == 10
    assert seen and all("submit" in kinds for _oid, _state, kinds in seen)  # the record existed before any change
    assert [(oid, state) for oid, state, _ in seen][:3] == [(o, OrderState.PENDING_SUBMIT) for o in (parent, tp, sl)]
    written = kinds()
    assert written.index("fill") > written.index("submit", written.index("submit") + 1)  # the 10: submit, then fill
    journal.close()
