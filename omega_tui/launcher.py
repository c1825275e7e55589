"""Starting an engine: the embedded simulated gateway (sim mode), then the runtime under a front end.

This lives outside `core/` because it may start the simulator, which core must never import.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from omega_tui.config import Settings

if TYPE_CHECKING:
    from omega_tui.sim.process import SimGatewayProcess

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STARTUP = 3
EXIT_NO_ENGINE = 4


def embedded_gateway(settings: Settings, **bench: Any) -> SimGatewayProcess:
    """The simulated gateway process sim mode runs (not started); `bench`: benchmark knobs (tick_interval, burst)."""
    from omega_tui.sim.process import SimGatewayProcess

    return SimGatewayProcess(
        seed=settings.sim.seed,
        speed=settings.sim.speed,
        port=settings.sim.port,
        scenario=settings.sim.scenario,
        account=settings.ib.account or "DU1234567",
        max_lines=settings.ib.max_market_data_lines,
        extra_stocks=settings.sim.extra_stocks,
        log_level=logging.getLevelName(logging.getLogger("omega_tui.sim").getEffectiveLevel()),
        **bench,
    )


@contextmanager
def gateway_for(settings: Settings, gateway: SimGatewayProcess | None = None) -> Iterator[Settings]:
    """Yield settings pointing at the gateway to use; in sim mode, run the simulated gateway meanwhile.

    The simulated gateway is a child process (`omega_tui.sim.process`), as a real IB Gateway is a process of
    its own: it takes none of the engine's GIL, and it ends with this block, or with this process however
    it ends. `gateway` is one made by `embedded_gateway` (with benchmark knobs), else it is made here.
    Raises `SimProcessError` (naming what failed) when it cannot start.
    """
    if settings.ib.mode != "sim":
        yield settings
        return
    gateway = gateway or embedded_gateway(settings)
    gateway.start()
    try:
        log.info("embedded simulated IB Gateway listening on 127.0.0.1:%d", gateway.port)
        log.info("embedded simulated IB Gateway runs as process %s", gateway.pid)
        ib = settings.ib.model_copy(update={"host": "127.0.0.1", "port": gateway.port})
        yield settings.model_copy(update={"ib": ib})
    finally:
        gateway.stop()


def run_ui(settings: Settings) -> int:
    """Run the workstation: the runtime in a thread worker of the Textual app (DESIGN §2)."""
    from omega_tui.core.wiring import build_runtime
    from omega_tui.ui.app import OmegaApp
    from omega_tui.ui.client import UI_SWITCH_INTERVAL_S, LocalEngine

    # The UI and the engine share this process's GIL: hand it over every 1 ms, not 5 (see the constant).
    sys.setswitchinterval(UI_SWITCH_INTERVAL_S)
    runtime = build_runtime(settings)
    app = OmegaApp(LocalEngine(runtime), settings, freeze_gc=True)
    app.run()
    for line in runtime.startup_errors:
        print(f"omega-tui: startup failed: {line}", file=sys.stderr)
    return runtime.exit_code


def run_attached(settings: Settings) -> int:
    """The workstation over an engine running in another process on the same state directory."""
    from omega_tui.attach import RemoteEngine
    from omega_tui.core.control import engine_running
    from omega_tui.logs import setup_logging
    from omega_tui.ui.app import OmegaApp

    if engine_running(settings.state.dir) is None:
        print(f"omega-tui: no running engine found on {settings.state.dir}", file=sys.stderr)
        return EXIT_NO_ENGINE
    setup_logging(settings.state.dir, settings.logging.level, log_name="attach.log")
    client = RemoteEngine(settings)
    try:
        OmegaApp(client, settings).run()
    finally:
        client.close()
    return EXIT_OK
