"""The component lifecycle every engine follows: start, stop, status; failure surfaced, never swallowed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from omega_tui.core.clock import Clock
from omega_tui.core.types import ComponentState, ComponentStatusChanged

log = logging.getLogger(__name__)


class Component:
    """Base class for a named engine with an explicit lifecycle.

    Subclasses override `on_start` and `on_stop`; long-running work is started with `spawn`, whose task
    failure moves the component to FAILED and reports it instead of dying silently.
    """

    name = "component"

    def __init__(self, clock: Clock, on_status: Callable[[ComponentStatusChanged], None] | None = None) -> None:
        self.clock = clock
        self.state = ComponentState.STOPPED
        self.detail = ""
        self._on_status = on_status
        self._tasks: set[asyncio.Task[None]] = set()

    def set_status_listener(self, listener: Callable[[ComponentStatusChanged], None]) -> None:
        self._on_status = listener

    def set_state(self, state: ComponentState, detail: str = "") -> None:
        if state is self.state and detail == self.detail:
            return
        self.state, self.detail = state, detail
        if state is ComponentState.FAILED:
            log.error("component %s failed: %s", self.name, detail)
        else:
            log.info("component %s: %s %s", self.name, state.value, detail)
        if self._on_status is not None:
            self._on_status(ComponentStatusChanged(self.name, state, detail, self.clock.now_utc()))

    async def start(self) -> None:
        self.set_state(ComponentState.STARTING)
        try:
            await self.on_start()
        except Exception as exc:
            self.set_state(ComponentState.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        if self.state is ComponentState.STARTING:
            self.set_state(ComponentState.RUNNING)

    async def stop(self) -> None:
        if self.state is ComponentState.STOPPED:
            return
        failed = self.state is ComponentState.FAILED
        self.set_state(ComponentState.STOPPING)
        try:
            await self.on_stop()
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=2.0)
            self._tasks.clear()
            self.set_state(ComponentState.FAILED if failed else ComponentState.STOPPED, self.detail)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run a background coroutine owned by this component; its crash marks the component FAILED."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.set_state(ComponentState.FAILED, f"{task.get_name()}: {type(exc).__name__}: {exc}")

    async def on_start(self) -> None:
        """Acquire resources and start background tasks."""

    async def on_stop(self) -> None:
        """Release resources; background tasks are cancelled after this returns."""
