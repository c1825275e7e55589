"""LocalEngine: the real Runtime in one thread worker with its own loop; crash shown, stop bounded."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from omega_tui.config import Settings
from omega_tui.core.clock import FakeClock
from omega_tui.core.component import Component
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import CommandResult, Halt, TradingState, TradingStateChanged
from omega_tui.ui.app import OmegaApp
from omega_tui.ui.client import EngineClient, LocalEngine
from omega_tui.ui.panes.banner import TradingBanner
from omega_tui.ui.panes.status import StatusBar
from tests.ui.fake_engine import demo_risk, eventually, frozen_now, panes_dressed_halted


class RiskStandIn(Component):
    """Publishes a risk section and latches HALTED on Halt, on the core loop, like the risk engine does."""

    name = "risk"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.clock)
        self.runtime = runtime
        self.thread: threading.Thread | None = None

    async def on_start(self) -> None:
        self.thread = threading.current_thread()
        self.runtime.hot_state.set("risk", demo_risk())
        self.runtime.on_command(Halt, self.halt)

    async def halt(self, command: Halt) -> CommandResult:
        risk = dict(demo_risk(), trading_state="HALTED", reason=command.reason, source=command.source)
        self.runtime.hot_state.set("risk", risk)
        self.runtime.bus.publish(
            TradingStateChanged(TradingState.ACTIVE, TradingState.HALTED, command.source, command.reason, frozen_now())
        )
        return CommandResult("h1", True, "halted", frozen_now())


class FailsToStart(Component):
    name = "broker"

    async def on_start(self) -> None:
        raise ConnectionRefusedError("127.0.0.1:4002 refused the connection")


class NeverStops(Component):
    name = "stubborn"

    async def on_stop(self) -> None:
        await asyncio.sleep(3600)


def _runtime(tmp_path: Path) -> Runtime:
    settings = Settings(state={"dir": str(tmp_path / "state")})
    return Runtime(settings, FakeClock())


def test_local_engine_satisfies_the_client_protocol(tmp_path: Path) -> None:
    assert isinstance(LocalEngine(_runtime(tmp_path)), EngineClient)


async def test_engine_runs_in_its_own_thread_and_halt_reaches_it_and_the_banner(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    risk = runtime.add(RiskStandIn(runtime))
    assert isinstance(risk, RiskStandIn)
    client = LocalEngine(runtime)
    app = OmegaApp(client, runtime.settings, now=frozen_now)
    async with app.run_test(size=(100, 30)) as pilot:
        await asyncio.to_thread(runtime.wait_started, 10)
        assert risk.thread is not None and risk.thread is not threading.main_thread()
        await eventually(lambda: app.main.query_one(TradingBanner).state == "ACTIVE")
        await pilot.press("ctrl+k")
        await eventually(lambda: app.main.query_one(TradingBanner).state == "HALTED")
        await eventually(lambda: panes_dressed_halted(app), 5)
        await pilot.press("ctrl+q")
        await eventually(lambda: client.stopped)
    assert not runtime.running


async def test_engine_that_fails_to_start_is_shown_as_an_error_not_a_dead_app(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    runtime.add(FailsToStart(runtime.clock))
    client = LocalEngine(runtime)
    app = OmegaApp(client, runtime.settings, now=frozen_now)
    async with app.run_test(size=(100, 30)) as pilot:
        await eventually(lambda: client.stopped)
        await pilot.pause()
        status = app.main.query_one(StatusBar)
        assert "ConnectionRefusedError" in status.engine_error
        assert any(n.title == "ENGINE FAILED" for n in app._notifications)
        await pilot.press("1")  # still responsive
        assert [p.id for p in app.visible_panes()] == ["quotes", "orders"]


async def test_quit_is_bounded_even_when_a_component_never_stops(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    runtime.add(NeverStops(runtime.clock))
    client = LocalEngine(runtime, stop_timeout_s=0.5)
    app = OmegaApp(client, runtime.settings, now=frozen_now)
    started = time.monotonic()
    async with app.run_test(size=(100, 30)) as pilot:
        await asyncio.to_thread(runtime.wait_started, 10)
        await pilot.press("ctrl+q")
        await eventually(lambda: client.stopped, 8)
    assert time.monotonic() - started < 8
    assert client.join(0)


async def test_stop_before_the_loop_exists_is_honoured(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path)
    client = LocalEngine(runtime)
    client.stop()
    assert await asyncio.to_thread(client._run_engine) == 0
    assert client.stopped
