"""What the order manager publishes: order views, latency percentiles, coalesced hot-state writes."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from omega_tui.core.orders import TERMINAL_KEPT
from omega_tui.core.types import FillReceived, OrderState, QuoteUpdated
from tests.orders.conftest import RigFactory, intent, quote


def test_callbacks_then_latency_percentiles_measured_from_submit(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.clock.advance(0.002)
    rig.broker.ack(1)
    rig.clock.advance(0.010)
    ex = rig.broker.execution(1, 10, Decimal("100"))
    rig.manager.on_execution(ex)
    rig.clock.advance(0.003)
    rig.manager.on_commission(rig.broker.commission_report(ex.exec_id))
    view = rig.manager.latency_view()
    assert view["submit_to_ack_p99_us"] == 2000.0
    assert view["submit_to_fill_p50_us"] == 12000.0
    assert view["fill_to_commission_p99_us"] == 3000.0
    assert view["samples"] == 3


def test_publish_then_order_view_has_transitions_and_ib_status(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, intent_id="v"))
    rig.broker.ack(1, "Submitted")
    rig.broker.fill(1, 4, Decimal("100.00"))
    rig.manager.publish()
    views = {v["order_id"]: v for v in rig.hot.get("orders")}
    parent = views[1]
    assert parent["state"] == "PARTIALLY_FILLED" and parent["ib_status"] == "Submitted"
    assert (parent["filled"], parent["remaining"], parent["avg_fill_price"]) == (4, 6, "100.00")
    assert [t["state"] for t in parent["transitions"]] == ["PENDING_SUBMIT", "SUBMITTED", "PARTIALLY_FILLED"]
    assert views[2]["role"] == "take_profit" and views[2]["parent_id"] == 1
    assert set(rig.hot.get("latency")) >= {"submit_to_ack_p50_us", "samples"}
    assert any(isinstance(e, FillReceived) for e in rig.events)


async def test_many_changes_in_one_loop_turn_then_one_publication(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10))
    rig.broker.ack(1)
    for _ in range(10):
        rig.broker.fill(1, 1, Decimal("100.00"))
    before = rig.hot.version("orders")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert rig.hot.version("orders") == before + 1


async def test_quotes_move_then_pnl_republished_at_most_every_interval(make_rig: RigFactory) -> None:
    rig = make_rig(pnl_publish_ms=50)
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    rig.broker.fill(1, 10, Decimal("100.00"))
    await asyncio.sleep(0)
    base = rig.hot.version("pnl")
    for i in range(30):
        q = quote("AAPL", f"{100 + i / 100:.2f}", f"{100.02 + i / 100:.2f}", rig.clock, seq=i)
        rig.hot.put_quote(q)
        rig.bus.publish(QuoteUpdated(q))
    await asyncio.sleep(0)
    assert rig.hot.version("pnl") == base  # throttled, not per tick
    await asyncio.sleep(0.08)
    assert rig.hot.version("pnl") == base + 1
    assert rig.hot.get("pnl")["unrealized"] == str((Decimal("100.30") - Decimal("100.00")) * 10)


def _all_order_views(manager: object) -> list[object]:
    """The published views as the whole day computes them (the bounded `_order_views` must agree)."""
    book = manager._orders  # type: ignore[attr-defined]
    working = [o for o in book.values() if o.state.is_working]
    done = sorted((o for o in book.values() if not o.state.is_working), key=lambda o: o.last_ns)
    shown = sorted(working + done[-TERMINAL_KEPT:], key=lambda o: o.order_id)
    return [manager._view(o) for o in shown]  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_many_finished_orders_then_views_are_the_working_and_the_most_recently_finished(
    make_rig: RigFactory, seed: int
) -> None:
    """More finished orders than are shown, finishing out of id order and many at the same instant (ties go
    to the order known later), some cancelled then filled (they finish again): the same rows as a full scan."""
    rng = random.Random(seed)
    rig = make_rig()
    ids: list[int] = []
    for _ in range(TERMINAL_KEPT + 150):
        rig.clock.advance(0.1)  # the submission queue's rate lets each through at once
        ids += rig.manager.submit(intent(10, tp=None, sl=None))
    assert len(ids) == TERMINAL_KEPT + 150
    for oid in ids:
        rig.broker.ack(oid)
    rng.shuffle(ids)
    for k, oid in enumerate(ids[: TERMINAL_KEPT + 100]):
        if rng.random() < 0.3:
            rig.clock.advance(0.001)  # otherwise finished at the same instant as the one before
        if k % 3 == 0:
            rig.broker.fill(oid, 10, Decimal("100.00"))
        else:
            rig.broker.cancelled(oid)
    for oid in ids[:40:4]:  # cancelled earlier, then late fills that complete them: they finish again now
        o = rig.manager.order(oid)
        if o is not None and o.state is OrderState.CANCELLED:
            rig.broker.fill(oid, 10, Decimal("100.00"))
            assert o.state is OrderState.FILLED
    views = rig.manager._order_views()
    assert views == _all_order_views(rig.manager)
    assert len(views) == 50 + TERMINAL_KEPT


async def test_a_fill_has_one_end_of_step_callback_that_records_it_then_publishes_the_views(
    make_rig: RigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fill's journal record and the views' publication wait for the end of the step in ONE loop callback
    (`Journal.after_step`), the record numbered first; the position and P&L are right at once."""
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    rig.broker.fill(1, 4, Decimal("100.00"), commission=None)  # (the first one changes the order's state too)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    published: list[tuple[int, list[str]]] = []
    publish = rig.manager.publish

    def publish_and_look() -> None:
        published.append((rig.journal.seq, [r["kind"] for r in rig.journal.read()][-1:]))
        publish()

    monkeypatch.setattr(rig.manager, "publish", publish_and_look)
    seq, version = rig.journal.seq, rig.hot.version("positions")
    rig.broker.fill(1, 3, Decimal("100.00"), commission=None, emit_status=False, emit_open_order=False)
    assert rig.manager.position_qty("AAPL") == 7 and rig.manager.day_pnl() == (0, 0, 0)  # at once
    assert rig.journal.seq == seq and rig.hot.version("positions") == version  # the rest after the step
    # one end-of-step callback scheduled, carrying the record and the publication
    assert rig.journal._step_loop is asyncio.get_running_loop()
    assert [d[0] for d in rig.journal._deferred] == ["fill"] and rig.journal._after == [rig.manager._publish_scheduled]
    await asyncio.sleep(0)
    assert published == [(seq + 1, ["fill"])]  # the fill recorded, then the views published
    assert rig.hot.version("positions") == version + 1 and rig.hot.get("positions")["AAPL"]["quantity"] == 7
