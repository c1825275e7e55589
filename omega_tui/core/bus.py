"""A synchronous in-process event bus for the hot path.

Handlers run in subscription order, on the publisher's call stack, on the core loop: no queue, no task
switch, so the same events always produce the same decisions in the same order. A handler that raises is
logged and counted; it never stops the other handlers (one bad pane must not silence the risk engine).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[Any], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)
        self._any: list[Handler] = []
        self.handler_errors = 0

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        self._handlers[event_type].append(handler)

    def subscribe_all(self, handler: Handler) -> None:
        """Receive every event (the journal and the UI bridge use this)."""
        self._any.append(handler)

    def unsubscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        handlers = self._handlers.get(event_type)
        if handlers and handler in handlers:
            handlers.remove(handler)

    def publish(self, event: object) -> None:
        # (The handler call is written out in both loops, not a helper: one Python call less per handler on
        # every fill and quote.)
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except Exception:
                self._failed(handler, event)
        if self._any:
            for handler in self._any:
                try:
                    handler(event)
                except Exception:
                    self._failed(handler, event)

    def _failed(self, handler: Handler, event: object) -> None:
        self.handler_errors += 1
        log.exception("event handler %r failed on %s", handler, type(event).__name__)
