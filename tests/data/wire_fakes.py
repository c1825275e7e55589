"""A fake event loop for ib_async's request throttle (`Client.sendMsg`), shared by the wire tests.

`Client.sendMsg` asks `ib_async.client.getLoop()` for the time and schedules its wake-up with `call_at`;
`wire_send.send_msg` asks `asyncio.get_running_loop()` (its `_running_loop`). `FakeLoop.installed()` makes
both return this loop, whose clock the test sets and whose `call_at`s are only recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ib_async.client as ib_client

from omega_tui.core.broker import wire_send


class FakeLoop:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.scheduled: list[tuple[float, Any, tuple[Any, ...]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any) -> None:
        self.scheduled.append((when, callback, args))

    @contextmanager
    def installed(self) -> Iterator[FakeLoop]:
        """ib_async's `getLoop` and wire_send's running loop are this loop meanwhile."""
        get_loop, running = ib_client.getLoop, wire_send._running_loop
        ib_client.getLoop = lambda: self
        wire_send._running_loop = lambda: self  # type: ignore[assignment,return-value]
        try:
            yield self
        finally:
            ib_client.getLoop, wire_send._running_loop = get_loop, running
