"""Starting an engine: the embedded simulated gateway (sim mode), then the runtime under a front end.

This lives outside `core/` because it may start the simulator, which core must never import.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from omega_tui.config import Settings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STARTUP = 3
EXIT_NO_ENGINE = 4


@contextmanager
def gateway_for(settings: Settings) -> Iterator[Settings]:
    """Yield settings pointing at the gateway to use; in sim mode, run the embedded simulator meanwhile."""
    if settings.ib.mode != "sim":
        yield settings
        return
    from omega_tui.sim import SimGateway

    gateway: Any = SimGateway(
        seed=settings.sim.seed,
        speed=settings.sim.speed,
        host="127.0.0.1",
        port=settings.sim.port,
        scenario=settings.sim.scenario,
        account=settings.ib.account or "DU1234567",
        max_lines=settings.ib.max_market_data_lines,
    )
    gateway.start()
    log.info("embedded simulated IB Gateway listening on 127.0.0.1:%d", gateway.port)
    try:
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
