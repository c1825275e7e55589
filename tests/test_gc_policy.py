"""The garbage-collector policy: no automatic full collection, ours on the loop, garbage still found."""

from __future__ import annotations

import asyncio
import gc
import weakref

from omega_tui import gc_policy


class _Node:
    def __init__(self) -> None:
        self.other: object = None


async def test_full_collections_run_on_the_loop_and_still_free_new_garbage_cycles() -> None:
    thresholds = gc.get_threshold()
    policy = gc_policy.start(asyncio.get_running_loop(), every_s=0.05)
    try:
        assert gc.get_threshold() == (thresholds[0], thresholds[1], gc_policy.NO_AUTOMATIC_FULL)
        assert gc.get_freeze_count() > 0  # what existed at the start is out of the collector's reach
        a, b = _Node(), _Node()
        a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
        gone = weakref.ref(a)
        for _ in range(3):  # survive the young generations: only a full collection can free it now
            gc.collect(1)
        del a, b
        for _ in range(100):
            if gone() is None:
                break
            await asyncio.sleep(0.01)
        assert gone() is None, "a cycle that became garbage after a freeze was never collected"
        assert policy.runs >= 1
    finally:
        policy.stop()
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0  # Python's own policy is back
