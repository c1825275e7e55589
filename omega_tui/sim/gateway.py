"""`SimGateway`: the embeddable simulated IB Gateway (its own thread and loop, or the caller's loop).

    with SimGateway(seed=7) as gw:          # thread mode: start() returns once listening
        ib.connectAsync("127.0.0.1", gw.port, clientId=1)

    gw = SimGateway(clock="virtual")        # tests: time only moves when told to
    await gw.start_async()                   # runs on the caller's loop
    await gw.advance_async(2.0)              # two virtual seconds of market, matching, P&L pushes
    await gw.stop_async()

Callers must know: in thread mode every public method is safe to call from any thread (calls are
marshalled onto the gateway's loop, with a bounded wait); `speed` scales the market's event rates;
`extra_stocks=N` lists N seeded synthetic US stocks besides the fixed contracts (load tests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from omega_tui.sim.engine import SimClock
from omega_tui.sim.faults import Faults, Scenario
from omega_tui.sim.server import SimServer, check_loopback

log = logging.getLogger("omega_tui.sim.gateway")

T = TypeVar("T")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0


class SimGateway:
    """A simulated IB Gateway on loopback; see the module docstring for the two ways to run it."""

    def __init__(
        self,
        seed: int = 7,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        scenario: str | Path | Scenario | None = None,
        account: str = "DU1234567",
        max_lines: int = 100,
        clock: Literal["real", "virtual"] | SimClock = "real",
        *,
        tick_interval: float = 0.05,
        rate_limit: int = 50,
        max_connections: int = 32,
        extra_stocks: int = 0,
    ) -> None:
        self.host = check_loopback(host)
        self.requested_port = port
        if isinstance(clock, SimClock):
            self.clock = clock
        elif clock == "virtual":
            self.clock = SimClock()
        elif clock == "real":
            self.clock = SimClock.realtime(1.0)
        else:
            raise ValueError(f"clock must be 'real', 'virtual' or a SimClock, not {clock!r}")
        self.server = SimServer(
            clock=self.clock,
            seed=seed,
            speed=speed,
            account=account,
            max_lines=max_lines,
            tick_interval=tick_interval,
            rate_limit=rate_limit,
            max_connections=max_connections,
            extra_stocks=extra_stocks,
        )
        self.faults = Faults(self)
        self._scenario = Scenario.load(scenario) if isinstance(scenario, str | Path) else scenario
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def port(self) -> int:
        """The bound port (valid after start)."""
        return self.server.port

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the gateway runs on (None before start)."""
        return self._loop

    # ---- caller's loop --------------------------------------------------------------------------

    async def start_async(self) -> int:
        """Listen on the running loop; returns the port."""
        self._loop = asyncio.get_running_loop()
        port = await self.server.start(self.host, self.requested_port)
        if self._scenario is not None:
            self._scenario.schedule(self.faults, self.server)
        return port

    async def stop_async(self) -> None:
        """Close every connection and stop listening."""
        await self.server.stop()

    async def advance_async(self, seconds: float, step: float | None = None) -> None:
        """Virtual mode: move time forward `seconds` in steps of `step` (default the tick interval)."""
        self.call(lambda: self._advance(seconds, step))
        await asyncio.sleep(0)

    def _advance(self, seconds: float, step: float | None) -> None:
        step = step or self.server.tick_interval
        end = self.clock.now() + seconds
        while True:
            now = self.clock.now()
            if now >= end - 1e-9:
                break
            self.clock.advance(min(step, end - now))
            self.server.advance_to(self.clock.now())

    # ---- own thread -----------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT) -> int:
        """Run the gateway in its own thread and loop; returns the port once listening."""
        if self._thread is not None:
            raise RuntimeError("the simulated gateway is already running")
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="sim-gateway", daemon=True)
        self._thread.start()
        try:
            return ready.result(timeout)
        except BaseException:
            self.stop()
            raise

    def _run(self, ready: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        async def main() -> None:
            self._stopped = asyncio.Event()
            try:
                port = await self.start_async()
            except BaseException as e:
                ready.set_exception(e)
                return
            ready.set_result(port)
            await self._stopped.wait()
            await self.stop_async()

        try:
            loop.run_until_complete(main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close every connection and join the gateway's thread."""
        thread = self._thread
        if thread is None:
            return
        loop = self._loop
        if loop is not None and self._stopped is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stopped.set)
        thread.join(timeout)
        if thread.is_alive():
            log.error("sim gateway thread did not stop within %.1fs", timeout)
        self._thread = None

    def __enter__(self) -> SimGateway:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def advance(self, seconds: float, step: float | None = None) -> None:
        """Virtual mode: move time forward (blocking; from any thread)."""
        self.call(lambda: self._advance(seconds, step))

    # ---- marshalling ----------------------------------------------------------------------------

    def call(self, fn: Callable[[], T], timeout: float = CALL_TIMEOUT) -> T:
        """Run `fn` on the gateway's loop and return its result (directly when already on that loop)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the simulated gateway is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def run_in_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`call` with arguments."""
        return self.call(lambda: fn(*args))
