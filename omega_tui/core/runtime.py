"""The runtime: builds the engines, runs their lifecycle on one asyncio loop, and takes commands.

Both front ends use it: the Textual app runs `Runtime.run` in a thread worker with its own loop, the
headless runner with `asyncio.run`. From any other thread, `submit(command)` is the only way in; it returns
a `concurrent.futures.Future` resolved with the `CommandResult` once the engine acted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from omega_tui.config import Settings
from omega_tui.core.broker.verify import StartupVerificationError
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import Clock, SystemClock
from omega_tui.core.component import Component
from omega_tui.core.control import ChannelServer, ControlEndpoint, ControlQueue, ControlServer, EngineLock
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.types import Command, CommandResult, ComponentState, ComponentStatusChanged
from omega_tui.core.views import ComponentView, EventLine

log = logging.getLogger(__name__)

CommandHandler = Callable[[Any], Awaitable[CommandResult]]
UrgentHandler = Callable[[Any], CommandResult]
EXIT_STARTUP = 3  # DESIGN §6: startup verification failed (contracts, permissions, connection)
EVENT_LOG_LINES = 200


class Runtime:
    """Owns the bus, hot state, journal and every component; one instance per engine process."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.bus = EventBus()
        self.hot_state = HotState(settings.state.dir, settings.state.flush_ms)
        self.journal = Journal(settings.state.dir, self.clock)
        self.components: list[Component] = []
        self._handlers: dict[type, CommandHandler] = {}
        self._urgent: dict[type, UrgentHandler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._events: list[EventLine] = []
        self.exit_code = 0
        self.mode = "SIM" if settings.ib.mode == "sim" else "GATEWAY"
        self.startup_errors: list[str] = []
        self.engines: Any = None  # set by wiring.build_runtime: handles to every engine
        self._shutdown_hooks: list[Callable[[], Awaitable[None]]] = []
        self._background: set[asyncio.Task[None]] = set()
        self.lock = EngineLock(settings.state.dir)
        self.control_channel: socket.socket | None = None
        """The workstation UI's direct command channel (its end of a socket pair), when the UI started this
        engine (`--control-fd`); commands from other processes come through the control queue."""
        self.bus.subscribe(ComponentStatusChanged, self._on_component_status)

    # ------------------------------------------------------------------ wiring

    def add(self, component: Component) -> Component:
        """Register a component; components start in the order added and stop in reverse."""
        component.set_status_listener(self.bus.publish)
        self.components.append(component)
        self._publish_components()
        return component

    def on_command(self, command_type: type, handler: CommandHandler) -> None:
        """Route one command type to the component that owns it (risk: Halt/Flatten/Resume, …)."""
        self._handlers[command_type] = handler

    def is_urgent(self, command: Command) -> bool:
        """True for a command run by a synchronous urgent handler, which publishes its effect before returning."""
        return type(command) in self._urgent

    def on_urgent_command(self, command_type: type, handler: UrgentHandler) -> None:
        """Route a command that must not wait behind other work (Halt) to a synchronous handler.

        `submit` from another thread runs it directly in the loop's next callback batch, one loop iteration
        sooner than a coroutine handler (which needs a callback to create its task, then a step of the task):
        under a burst of market data each iteration can carry milliseconds of decoding. The handler must have
        published its effect to the hot state when it returns: a control command's answer carries that state
        at once (`is_urgent`), not one loop iteration later.
        """
        self._urgent[command_type] = handler

    def on_shutdown(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` on the loop when the engine stops, before any component stops (the shutdown policy)."""
        self._shutdown_hooks.append(hook)

    def spawn_background(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run a one-off coroutine on the core loop; its failure is logged and shown, never lost."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())
                self.log_event("error", "system", f"{name} failed: {t.exception()}")

        task.add_done_callback(done)

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Start every component, wait until `stop` is set or `request_stop` is called, stop them all."""
        info = self.lock.acquire(self.mode)  # raises EngineAlreadyRunning before anything else is touched
        if self.lock.took_over is not None:
            log.warning("took over the state directory from a dead engine (%s)", self.lock.took_over.describe())
        self._loop = asyncio.get_running_loop()
        self._stop = stop or asyncio.Event()
        self.hot_state.set_engine_info(dict(info.__dict__, state_dir=str(self.settings.state.dir)))
        self.hot_state.start()
        # The risk section travels with every answer (as published once the command acted): a UI in another
        # process shows HALTED from the Halt's answer, not one hot-state flush and poll later.
        controls: list[ControlEndpoint] = [
            ControlServer(
                ControlQueue(self.settings.state.dir),
                self.submit,
                self._answer_state,
                self._loop.call_soon_threadsafe,
                acts_at_once=self.is_urgent,
            )
        ]
        if self.control_channel is not None:
            controls.append(
                ChannelServer(
                    self.control_channel,
                    self.submit,
                    self._answer_state,
                    self._loop.call_soon_threadsafe,
                    acts_at_once=self.is_urgent,
                )
            )
        started: list[Component] = []
        for control in controls:
            control.start()  # before the engines, so a halt works even during startup
        try:
            try:
                for component in self.components:
                    await component.start()
                    started.append(component)
            except StartupVerificationError as exc:
                self.startup_errors = list(exc.lines)
                self.exit_code = EXIT_STARTUP
                for line in exc.lines:
                    log.error("startup verification failed: %s", line)
                    self.log_event("error", "system", f"startup failed: {line}")
                self._journal_unmanaged_exit("startup verification failed", list(exc.lines))
                return self.exit_code
            except BaseException as exc:
                self._journal_unmanaged_exit(f"start failed: {type(exc).__name__}: {exc}", [])
                raise
            self.log_event("info", "system", "engine started")
            self._started.set()
            await self._stop.wait()
            for hook in self._shutdown_hooks:
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook failed")
        finally:
            self._started.set()
            for control in controls:
                control.stop()
            for task in list(self._background):
                task.cancel()
            for component in reversed(started):
                try:
                    await asyncio.wait_for(component.stop(), timeout=15)
                except Exception:
                    log.exception("component %s failed to stop cleanly", component.name)
            self.hot_state.stop()
            self.journal.close()
            self._loop = None
            self.lock.release()
        return self.exit_code

    def _answer_state(self) -> dict[str, Any]:
        """Sections sent with each control command's answer (called on the core loop; a dict read)."""
        return {"risk": self.hot_state.get("risk")}

    def _journal_unmanaged_exit(self, outcome: str, errors: list[str]) -> None:
        """Journal an exit before the shutdown policy could run: nobody checked the broker's working orders."""
        try:
            self.journal.record(
                "shutdown",
                policy=self.settings.shutdown.on_exit,
                outcome=f"{outcome}; the shutdown policy did not run and orders at the broker were not checked",
                errors=errors,
            )
        except Exception:
            log.exception("could not journal the failed start")

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block (from another thread) until the engine is running or has given up starting."""
        return self._started.wait(timeout)

    def request_stop(self, exit_code: int | None = None) -> None:
        """Ask the engine to stop; safe from any thread and idempotent."""
        if exit_code is not None:
            self.exit_code = exit_code
        loop, stop = self._loop, self._stop
        if loop is None or stop is None:
            return
        if _in_loop(loop):
            stop.set()
        else:
            loop.call_soon_threadsafe(stop.set)

    @property
    def running(self) -> bool:
        return self._loop is not None

    # ------------------------------------------------------------------ commands

    def submit(
        self, command: Command, on_done: Callable[[concurrent.futures.Future[CommandResult]], object] | None = None
    ) -> concurrent.futures.Future[CommandResult]:
        """Send a command from any thread; the future resolves when the owning engine has acted.

        `on_done` is added to the future before the command can run, so for an urgent command it runs on the
        core loop right after the handler (a control endpoint reads the state its answer carries there)."""
        loop = self._loop
        if loop is None:
            future: concurrent.futures.Future[CommandResult] = concurrent.futures.Future()
            future.set_result(self._result(False, "engine is not running"))
            if on_done is not None:
                future.add_done_callback(on_done)
            return future
        urgent = self._urgent.get(type(command))
        if urgent is not None:
            answer: concurrent.futures.Future[CommandResult] = concurrent.futures.Future()
            if on_done is not None:
                answer.add_done_callback(on_done)
            loop.call_soon_threadsafe(self._run_urgent, urgent, command, answer)
            return answer
        future = asyncio.run_coroutine_threadsafe(self.handle(command), loop)
        if on_done is not None:
            future.add_done_callback(on_done)
        return future

    def _run_urgent(
        self, handler: UrgentHandler, command: Command, answer: concurrent.futures.Future[CommandResult]
    ) -> None:
        if answer.set_running_or_notify_cancel():
            answer.set_result(self._call_urgent(handler, command))

    def _call_urgent(self, handler: UrgentHandler, command: Command) -> CommandResult:
        try:
            return handler(command)
        except Exception as exc:
            return self._failed(command, exc)

    async def handle(self, command: Command) -> CommandResult:
        """Run a command on the core loop (an urgent one through its synchronous handler)."""
        urgent = self._urgent.get(type(command))
        if urgent is not None:
            return self._call_urgent(urgent, command)
        handler = self._handlers.get(type(command))
        if handler is None:
            return self._result(False, f"{type(command).__name__} is not available in this engine")
        try:
            return await handler(command)
        except Exception as exc:
            return self._failed(command, exc)

    def _failed(self, command: Command, exc: Exception) -> CommandResult:
        log.exception("command %s failed", type(command).__name__)
        return self._result(False, f"{type(command).__name__} failed: {exc}")

    def _result(self, ok: bool, message: str) -> CommandResult:
        return CommandResult(uuid.uuid4().hex[:12], ok, message, self.clock.now_utc())

    # ------------------------------------------------------------------ status

    def component_states(self) -> dict[str, ComponentView]:
        return {c.name: ComponentView(state=c.state.value, detail=c.detail) for c in self.components}

    def _publish_components(self) -> None:
        self.hot_state.set("components", self.component_states())

    def _on_component_status(self, event: ComponentStatusChanged) -> None:
        self._publish_components()
        if event.state in (ComponentState.FAILED, ComponentState.DEGRADED):
            self.log_event("error", "system", f"{event.name}: {event.state.value} {event.detail}".strip())

    def log_event(self, level: str, kind: str, text: str, at: datetime | None = None) -> None:
        """Append a line to the bounded event log the UI shows."""
        stamp = (at or self.clock.now_utc()).isoformat(timespec="milliseconds")
        self._events = [
            *self._events[-(EVENT_LOG_LINES - 1) :],
            EventLine(at_utc=stamp, level=level, kind=kind, text=text),
        ]
        self.hot_state.set("events", self._events)


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
