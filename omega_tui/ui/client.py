"""How the UI reaches an engine: the small `EngineClient` protocol and `LocalEngine`, the in-process one.

The app only ever reads immutable snapshot values and submits commands through this protocol, so the same
app can later drive an engine in another process (`omega-tui attach`, over the state directory) with a
second implementation of it.

`LocalEngine` runs `Runtime.run` in ONE Textual thread worker on its own asyncio loop, in the UI's process (the
snapshot and pilot tests use it: a deterministic state); `omega-tui` itself runs its engine as a child process
(`omega_tui.attach.SpawnedEngine`), so the engine does not share the UI's GIL. Stopping is
bounded: after `stop()` the worker returns within `stop_timeout_s` (+2 s to cancel what is left) even if a
component hangs, because a thread worker that never returns keeps `App.run()` from returning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from omega_tui.core.types import Command, CommandResult, Quote, TradingStateChanged
from omega_tui.ui.messages import TradingStateNoticed

if TYPE_CHECKING:
    from textual.app import App
    from textual.worker import Worker

    from omega_tui.config import Settings
    from omega_tui.core.runtime import Runtime

log = logging.getLogger(__name__)

ENGINE_WORKER_NAME = "omega-engine"
"""The Textual worker name the app watches in its `Worker.StateChanged` handler."""

UI_SWITCH_INTERVAL_S = 0.001
"""The GIL switch interval of the UI process (`launcher.run_workstation`); it was chosen when the UI and the
engine were two threads of one process. The UI process still has several threads (input, hot-state poller,
command senders): a command sender waits at most 1 ms, not 5, for a frame being rendered.

Python's default (5 ms) lets a busy thread keep the GIL for 5 ms after the other asked for it, so a tick
could wait a whole slice of rendering and a key a whole slice of tick processing; 1 ms bounds both waits.
On a loaded 2-CPU machine `python -m bench ui --switch-interval 0.005` measured no difference beyond run-to-run
noise either way (OS scheduling and GC pauses dominated), so this is a bound, not a measured speed-up.
"""


@dataclass(frozen=True, slots=True)
class EngineDescription:
    """Where the engine trades, for the status bar: mode SIM / PAPER / LIVE and the Gateway's address."""

    mode: str
    host: str
    port: int
    kind: str = "local"  # "local" (engine in this process) or "attached" (another process's engine)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def describe_settings(settings: Settings, kind: str = "local") -> EngineDescription:
    """Best guess before the broker connects; the connection section's `mode` replaces it once published."""
    if settings.ib.mode == "sim":
        return EngineDescription("SIM", "127.0.0.1", settings.sim.port, kind)
    # IB's conventional live ports (Gateway 4001, TWS 7496); anything else is presented as paper.
    mode = "LIVE" if settings.ib.port in (4001, 7496) else "PAPER"
    return EngineDescription(mode, settings.ib.host, settings.ib.port, kind)


@runtime_checkable
class EngineClient(Protocol):
    """What the app needs from an engine. Every method is called from the UI thread and must not block."""

    def describe(self) -> EngineDescription:
        """Mode and Gateway address, for the status bar."""
        ...

    def start(self, app: App[Any]) -> None:
        """Begin (run the engine or connect to it); may run workers on `app` and post messages to it."""
        ...

    def stop(self) -> None:
        """Ask the engine (or the connection) to stop; returns at once and is idempotent."""
        ...

    @property
    def stopped(self) -> bool:
        """True once the engine (or the connection) has fully stopped; the app may then exit."""
        ...

    def read(self, section: str) -> Any:
        """The section's latest published value (a views.py shape), or None; never mutate it."""
        ...

    def version(self, section: str) -> int:
        """Changes whenever the section is republished, so panes can skip unchanged sections."""
        ...

    def quotes(self) -> Mapping[str, Quote]:
        """A consistent copy of the latest quote per instrument key."""
        ...

    def submit(self, command: Command) -> concurrent.futures.Future[CommandResult]:
        """Send a command; the future resolves with the engine's answer (never raises for a refusal)."""
        ...


class EngineStopTimeout(RuntimeError):
    """The engine did not stop within its bound and was abandoned."""


class LocalEngine:
    """The engine in this process: `Runtime.run` in one thread worker with its own loop."""

    def __init__(self, runtime: Runtime, *, stop_timeout_s: float | None = None) -> None:
        self.runtime = runtime
        self.stop_timeout_s = stop_timeout_s or runtime.settings.ui.engine_stop_timeout_s
        self._app: App[Any] | None = None
        self._stop_requested = threading.Event()
        self._done = threading.Event()
        self._loop_stop: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._description = describe_settings(runtime.settings)
        self.worker: Worker[int] | None = None

    # ------------------------------------------------------------------ lifecycle

    def describe(self) -> EngineDescription:
        return self._description

    def start(self, app: App[Any]) -> None:
        """Run the engine in a thread worker of `app`; its failure reaches the app as Worker.StateChanged."""
        if self.worker is not None:
            return
        self._app = app
        # Called on the core loop; post_message is thread-safe, and the message coalesces bursts.
        self.runtime.bus.subscribe(TradingStateChanged, self._trading_state_changed)
        self.worker = app.run_worker(
            self._run_engine, name=ENGINE_WORKER_NAME, group="engine", thread=True, exit_on_error=False
        )

    def _trading_state_changed(self, event: TradingStateChanged) -> None:
        if self._app is not None:
            self._app.post_message(TradingStateNoticed(event.new.value))

    def stop(self) -> None:
        """Request a stop from any thread; a stop before the loop exists is honoured when it starts."""
        self._stop_requested.set()
        target = self._loop_stop
        if target is not None:
            loop, event = target
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop already closed: the engine has finished
                pass

    @property
    def stopped(self) -> bool:
        return self._done.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Block until the engine thread has finished (for tests and the CLI); True if it has."""
        return self._done.wait(timeout)

    def _run_engine(self) -> int:
        """The thread worker: a private loop we close ourselves, so nothing left on it can block exit."""
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(self._main())
        finally:
            try:
                _cancel_leftovers(loop, timeout=2.0)
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                self._done.set()

    async def _main(self) -> int:
        stop = asyncio.Event()
        # Publish the loop before checking the flag: stop() sets the flag first, so one of us sees the other.
        self._loop_stop = (asyncio.get_running_loop(), stop)
        if self._stop_requested.is_set():
            stop.set()
        engine = asyncio.ensure_future(self.runtime.run(stop))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({engine, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not engine.done():
                done, _ = await asyncio.wait({engine}, timeout=self.stop_timeout_s)
                if not done:
                    engine.cancel()
                    await asyncio.wait({engine}, timeout=2.0)
                    raise EngineStopTimeout(f"the engine did not stop within {self.stop_timeout_s:g} s")
            return engine.result()
        finally:
            stopper.cancel()
            self._loop_stop = None

    # ------------------------------------------------------------------ reads (UI thread)

    def read(self, section: str) -> Any:
        return self.runtime.hot_state.get(section)

    def version(self, section: str) -> int:
        return self.runtime.hot_state.version(section)

    def quotes(self) -> Mapping[str, Quote]:
        # mappingproxy.copy() copies the underlying dict in one step under the GIL, so a quote written by
        # the core thread mid-copy cannot raise "dictionary changed size during iteration".
        return self.runtime.hot_state.quotes().copy()

    # ------------------------------------------------------------------ commands

    def submit(self, command: Command) -> concurrent.futures.Future[CommandResult]:
        return self.runtime.submit(command)


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, timeout: float) -> None:
    """Cancel tasks still on the loop and give them `timeout` seconds; ones that refuse are left behind."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    loop.run_until_complete(asyncio.wait(pending, timeout=timeout))
    stubborn = [t.get_name() for t in pending if not t.done()]
    if stubborn:
        log.warning("engine tasks ignored cancellation and were abandoned: %s", ", ".join(stubborn))
