"""The submission queue: the rate limit, brackets never split across a wait, backoff on pacing errors."""

from __future__ import annotations

from omega_tui.core.types import OrderState
from tests.orders.conftest import RigFactory, intent


def test_submissions_beyond_the_rate_then_queued_and_placed_as_tokens_return(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=6)
    assert len(rig.manager.submit(intent(10))) == 3
    assert len(rig.manager.submit(intent(10))) == 3
    assert rig.manager.submit(intent(10, intent_id="late")) == []  # bucket empty: queued
    assert rig.manager.queued_count() == 3
    assert rig.records("intent")[0]["intent"]["intent_id"] == "late"  # journaled before it waits
    wait = rig.manager.pump()
    assert wait is not None and 0.49 < wait <= 0.5
    rig.clock.advance(0.25)
    rig.manager.pump()
    assert len(rig.broker.placed) == 6  # 1.5 tokens: a bracket is never split across a wait
    rig.clock.advance(0.25)
    assert rig.manager.pump() is None
    assert len(rig.broker.placed) == 9
    times = rig.broker.place_times_ns[6:]
    assert len(set(times)) == 1  # the three legs went back-to-back


def test_rate_below_three_per_second_then_brackets_still_placed_whole(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=1)
    assert len(rig.manager.submit(intent(10))) == 3
    assert rig.manager.submit(intent(10)) == []
    rig.clock.advance(2.9)
    rig.manager.pump()
    assert len(rig.broker.placed) == 3
    rig.clock.advance(0.1)
    rig.manager.pump()
    assert len(rig.broker.placed) == 6


def test_pacing_error_then_queue_pauses_for_the_backoff(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45, pacing_backoff_initial_s=1.0)
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.error(-1, 100, "Max rate of messages per second has been exceeded.")
    assert rig.manager.submit(intent(10, tp=None, sl=None)) == []
    rig.clock.advance(0.49)  # the first pause is between 0.5 and 1.0 s (half fixed, half jitter)
    rig.manager.pump()
    assert len(rig.broker.placed) == 1
    rig.clock.advance(0.52)
    rig.manager.pump()
    assert len(rig.broker.placed) == 2
    assert rig.records("pacing")[0]["code"] == 100


def test_pacing_text_on_our_order_then_treated_as_pacing(make_rig: RigFactory) -> None:
    rig = make_rig(orders_per_second=45)
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    rig.broker.error(1, 162, "pacing violation")
    assert rig.records("pacing")
    assert rig.manager.order(1).state is OrderState.SUBMITTED  # type: ignore[union-attr]


def test_queue_while_disconnected_then_held_until_reconnected(make_rig: RigFactory) -> None:
    rig = make_rig(max_child_qty=10, slice_interval_ms=100)
    rig.manager.submit(intent(20))
    rig.broker.is_connected = False
    rig.clock.advance(1)
    rig.manager.pump()
    assert len(rig.broker.placed) == 3
    rig.broker.is_connected = True
    rig.manager.pump()
    assert len(rig.broker.placed) == 6


async def test_started_manager_then_its_task_drains_the_queue(make_rig: RigFactory) -> None:
    import asyncio

    rig = make_rig(max_child_qty=10, slice_interval_ms=1)
    await rig.manager.start()
    try:
        rig.manager.submit(intent(20))
        rig.clock.advance(0.01)
        rig.manager._wake_queue()
        for _ in range(50):
            await asyncio.sleep(0)
            if len(rig.broker.placed) == 6:
                break
        assert len(rig.broker.placed) == 6
    finally:
        await rig.manager.stop()
