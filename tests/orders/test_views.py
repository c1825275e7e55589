"""What the order manager publishes: order views, latency percentiles, coalesced hot-state writes."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from omega_tui.core.types import FillReceived, QuoteUpdated
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
