"""The garbage collector's policy for the engine and the UI: no full collection at a moment Python picks.

CPython's cyclic collector stops every thread of the process while it runs (3.11 has no incremental mode).
Its young generations are cheap; a full collection walks every tracked object that survived two young
ones and is not frozen (`gc.freeze`). Frozen once after startup only, the processes kept promoting
short-lived objects (the UI: ~16,000 a second, Textual's render caches: strips, their caches, segments) and
Python ran a full collection about once a second in the UI, pausing it for up to 100-135 ms, and a few
times a run in the engine (up to 54 ms): the kill switch's slowest samples (`python -m bench ui` reports each
process's pauses). A full collection's pause grows with what was promoted since the last freeze.

So `start` collects and freezes what exists, turns Python's automatic full collection off (the generation-2
threshold is out of reach; the young generations keep Python's thresholds), and then:

- every `full_every_s`, runs one full collection itself, on the loop: `gc.unfreeze()` first when
  `freeze_every_s` is set (so the frozen objects are examined too), then collect, then freeze the
  survivors;
- every `freeze_every_s` (when set), freezes what was promoted since (a constant-time list move): the
  automatic young collections then never walk it, and nothing unfrozen piles up for a full collection to
  walk. A cycle that becomes garbage after a freeze waits for the next full collection: the memory it holds
  until then is the price of not pausing.

The engine promotes little: it collects every 30 s (pauses of tens of ms at most). The UI promotes a lot: it
freezes every second and collects every 10 minutes (one pause of a few hundred ms, when nothing is
pending on the kill switch: a halt is never waiting on it, `OmegaApp` skips it while a key's answer is due).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

ENGINE_FULL_EVERY_S = 30.0
UI_FULL_EVERY_S = 600.0
UI_FREEZE_EVERY_S = 1.0
NO_AUTOMATIC_FULL = 1 << 30
"""The generation-2 threshold that keeps Python from starting a full collection itself."""


def collect_and_freeze(unfreeze: bool = False) -> float:
    """One full collection (of the frozen objects too with `unfreeze`), then freeze the survivors; returns the
    seconds it took."""
    start = time.perf_counter()
    if unfreeze:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - start


def start(
    loop: asyncio.AbstractEventLoop,
    full_every_s: float = ENGINE_FULL_EVERY_S,
    freeze_every_s: float = 0.0,
    may_pause: Callable[[], bool] = lambda: True,
) -> Periodic:
    """Apply the policy in this process, its collections scheduled on `loop`; `stop()` the result to give the
    process Python's own policy back (the loop stopping does not). A full collection due while `may_pause()`
    is False waits for the next freeze period (or a second)."""
    return Periodic(loop, full_every_s, freeze_every_s, may_pause)


class Periodic:
    """The policy in force: Python's automatic full collection off, ours on the loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        full_every_s: float,
        freeze_every_s: float,
        may_pause: Callable[[], bool],
    ) -> None:
        self._loop = loop
        self._full_every_s = full_every_s
        self._freeze_every_s = freeze_every_s
        self._may_pause = may_pause
        self.runs = 0
        self.freezes = 0
        self._thresholds = gc.get_threshold()
        collect_and_freeze()
        gc.set_threshold(self._thresholds[0], self._thresholds[1], NO_AUTOMATIC_FULL)
        self._full_due = loop.time() + full_every_s
        self._next = loop.call_later(self._period(), self._run)

    def _period(self) -> float:
        return min(self._freeze_every_s or self._full_every_s, self._full_every_s)

    def _run(self) -> None:
        if self._loop.time() >= self._full_due and self._may_pause():
            took = collect_and_freeze(unfreeze=bool(self._freeze_every_s))
            self.runs += 1
            self._full_due = self._loop.time() + self._full_every_s
            if took > 0.05:
                log.info("a full garbage collection took %.0f ms", took * 1e3)
        elif self._freeze_every_s:
            gc.freeze()
            self.freezes += 1
        delay = self._period() if self._freeze_every_s or self._loop.time() < self._full_due else 1.0
        self._next = self._loop.call_later(delay, self._run)

    def stop(self) -> None:
        """No more of ours; Python's thresholds back, and everything frozen given back to its collector."""
        self._next.cancel()
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()
