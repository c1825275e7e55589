"""The garbage collector's policy for the engine and the UI: no full collection at a moment Python picks.

CPython's cyclic collector stops every thread of the process while it runs. Its young generations are cheap;
a full collection walks every tracked object that survived two younger ones. Frozen once startup has built
its long-lived objects (`gc.freeze`: the collector no longer walks them), the processes still promoted
enough short-lived objects (Textual's render caches, quote views) that Python ran a full collection about
once a second in the UI, pausing it for up to 100-135 ms, and a few times a run in the engine (up to 54 ms):
the kill switch's slowest samples (`python -m bench ui` reports each process's pauses).

So, once started, `start` collects and freezes what exists, turns off the automatic full collection
(its generation-2 threshold is out of reach; the young generations keep Python's own thresholds), and then
every `FULL_EVERY_S` runs one full collection itself, on the loop, and freezes its survivors, so the next one
walks only what was promoted since: a pause of a few ms every half minute, not up to a hundred every
second. Garbage is still found: every cycle that became garbage since the last freeze is collected by the
next full collection. The price: an object frozen while alive that later becomes part of a garbage cycle
(a dialog or a toast alive at a freeze and closed afterwards) is never collected; that is a few kilobytes per
occurrence, bounded by what is alive at the freezes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

FULL_EVERY_S = 30.0
"""How often the full collection runs (see the module docstring)."""
NO_AUTOMATIC_FULL = 1 << 30
"""The generation-2 threshold that keeps Python from starting a full collection itself."""


def collect_and_freeze() -> float:
    """One full collection, then freeze the survivors; returns the seconds it took."""
    start = time.perf_counter()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - start


def start(loop: asyncio.AbstractEventLoop, every_s: float = FULL_EVERY_S) -> Periodic:
    """Apply the policy in this process and schedule its full collections on `loop`; `stop()` the result to
    give the process Python's own policy back (the loop stopping does not)."""
    return Periodic(loop, every_s)


class Periodic:
    """The policy in force: Python's automatic full collection off, ours every `every_s` on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, every_s: float) -> None:
        self._loop = loop
        self._every_s = every_s
        self.runs = 0
        self._thresholds = gc.get_threshold()
        collect_and_freeze()
        gc.set_threshold(self._thresholds[0], self._thresholds[1], NO_AUTOMATIC_FULL)
        self._next = loop.call_later(every_s, self._run)

    def _run(self) -> None:
        took = collect_and_freeze()
        self.runs += 1
        if took > 0.05:
            log.warning("a full garbage collection took %.0f ms", took * 1e3)
        self._next = self._loop.call_later(self._every_s, self._run)

    def stop(self) -> None:
        """No more of ours; Python's thresholds back, and everything frozen given back to its collector."""
        self._next.cancel()
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()
