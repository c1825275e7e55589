"""`omega-tui --no-ui`: the same runtime as the workstation, under `asyncio.run`, for servers.

SIGINT, SIGTERM and SIGHUP all ask the runtime to stop; the runtime's components then stop in reverse
order (the shutdown policy for working orders is applied by the order manager and risk engine on stop).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from omega_tui.config import Settings
from omega_tui.core.runtime import Runtime
from omega_tui.core.wiring import build_runtime

log = logging.getLogger(__name__)


async def run_runtime(runtime: Runtime) -> int:
    """Run until a signal arrives; returns the runtime's exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await runtime.run(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)


def run_headless(settings: Settings) -> int:
    runtime = build_runtime(settings)
    code = asyncio.run(run_runtime(runtime))
    for line in runtime.startup_errors:
        print(f"omega-tui: startup failed: {line}", file=sys.stderr)
    return code
