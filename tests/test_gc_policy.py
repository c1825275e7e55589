"""The garbage-collector policy: no automatic full collection, ours on the loop, garbage still found."""

from __future__ import annotations

import asyncio
import gc
import weakref

from omega_tui import gc_policy


class _Node:
    def __init__(self) -> None:
        self.other: object = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
    return weakref.ref(a)


async def _until(predicate: object, seconds: float = 2.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.01)
    return False


async def test_engine_policy_runs_full_collections_on_the_loop_and_frees_new_garbage_cycles() -> None:
    thresholds = gc.get_threshold()
    policy = gc_policy.start(asyncio.get_running_loop(), full_every_s=0.05)
    try:
        assert gc.get_threshold() == (thresholds[0], thresholds[1], gc_policy.NO_AUTOMATIC_FULL)
        assert gc.get_freeze_count() > 0  # what existed at the start is out of the collector's reach
        gone = _cycle()
        node = gone()
        for _ in range(3):  # survive the young generations: only a full collection can free it now
            gc.collect(1)
        del node
        gc.collect(1)
        assert gone() is not None
        assert await _until(lambda: gone() is None), "a cycle that became garbage was never collected"
        assert policy.runs >= 1
    finally:
        policy.stop()
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0  # Python's own policy is back


async def test_ui_policy_freezes_often_and_its_full_collection_frees_cycles_frozen_meanwhile() -> None:
    allowed = [False]
    policy = gc_policy.start(
        asyncio.get_running_loop(), full_every_s=0.2, freeze_every_s=0.02, may_pause=lambda: allowed[0]
    )
    try:
        holder = [_cycle()]
        node = holder[0]()
        assert await _until(lambda: policy.freezes >= 2)
        assert node is not None and gc.is_tracked(node)
        del node  # garbage now, but frozen: only a full collection that unfreezes first can free it
        gc.collect()
        assert holder[0]() is not None  # frozen: an ordinary collection does not see it
        await asyncio.sleep(0.3)
        assert policy.runs == 0  # due, but the app said not now (a kill switch's answer pending)
        allowed[0] = True
        assert await _until(lambda: holder[0]() is None), "the full collection did not free a frozen cycle"
        assert policy.runs >= 1
    finally:
        policy.stop()
