"""`omega-tui --no-ui`: the same runtime as the workstation, under `asyncio.run`, for servers.

SIGINT, SIGTERM and SIGHUP all ask the runtime to stop. Stopping runs the `[shutdown] on_exit` policy first
(cancel, flatten or leave working orders; bounded by `shutdown.confirm_timeout_s`; journaled as a
`kind: "shutdown"` record whatever happened), then the components stop in reverse order. A second signal
while stopping does not cut the policy short: it is bounded anyway, and only SIGKILL skips it.

Logs go to `<state.dir>/logs/omega.log` and, as JSON lines, to stderr; every `logging.status_every_s` one
INFO line summarises the engine (`status: trading ACTIVE | connection UP | …`). Exit codes (DESIGN §6): 0
stopped cleanly, 2 another engine holds the state directory (or bad config), 3 startup verification failed.

The workstation (`omega-tui` without `--no-ui`) runs this same engine as its child process with the hidden
`--exit-with-parent` flag (`launcher.EngineProcess`): logs go to the file only (the parent's terminal is the
UI's), and the engine stops gracefully (shutdown policy included) when its parent dies (PR_SET_PDEATHSIG →
SIGTERM) or when its stdin reaches EOF (the parent closed the pipe, or died any way at all).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys

from omega_tui import gc_policy
from omega_tui.config import Settings
from omega_tui.control import summary_line
from omega_tui.core.control import EngineAlreadyRunning
from omega_tui.core.runtime import Runtime
from omega_tui.core.wiring import build_runtime
from omega_tui.launcher import EXIT_USAGE
from omega_tui.lifetime import watch_stdin

log = logging.getLogger(__name__)

EXIT_ALREADY_RUNNING = EXIT_USAGE  # DESIGN §6 "bad usage": the state directory is taken; nothing was touched
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
ENGINE_SWITCH_INTERVAL_S = 0.001
"""The engine process's GIL switch interval (Python's default is 5 ms).

The core loop is busy most of the time under a tick storm, and the engine's other threads (the control
server, the hot-state and journal writers) hand the GIL back to it at every SQLite call: each return waits
until the loop is made to yield, up to one switch interval. A control command (the kill switch from the
workstation's UI process, `omega-tui halt`) crosses about a dozen such handoffs between the control queue
and its answer; at 5 ms each they dominated its latency. 1 ms bounds each wait; the loop does the same work.
Set for the whole process by its entry point (`cli.run_engine`), not by `run_headless`.
"""


async def log_status_every(runtime: Runtime, period_s: float) -> None:
    """Log the one-line summary every `period_s` while the engine runs (reads the in-memory hot state)."""
    while True:
        await asyncio.sleep(period_s)
        if runtime.running:
            log.info("status: %s", summary_line(runtime.hot_state.get))


def _stop_at_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> int | None:
    """Set `stop` when stdin reaches EOF (the parent closed the pipe or died); returns the watched fd."""

    def on_eof() -> None:
        if not stop.is_set():
            log.info("stdin closed (the workstation UI stopped or ended); stopping")
            stop.set()

    return watch_stdin(loop, on_eof)


async def run_runtime(runtime: Runtime, *, exit_with_parent: bool = False) -> int:
    """Run until a stop signal arrives (or, with `exit_with_parent`, stdin's EOF); returns the exit code."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("received %s while stopping; the shutdown policy is bounded and still running", name)
            return
        log.info("received %s, stopping (shutdown policy: %s)", name, runtime.settings.shutdown.on_exit)
        stop.set()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, on_signal, signum)
    stdin_fd = _stop_at_stdin_eof(loop, stop) if exit_with_parent else None
    period = runtime.settings.logging.status_every_s
    summary = asyncio.create_task(log_status_every(runtime, period), name="status-summary") if period > 0 else None
    freezer = asyncio.create_task(_gc_policy_after_start(runtime), name="gc-policy")
    try:
        return await runtime.run(stop)
    finally:
        freezer.cancel()
        if summary is not None:
            summary.cancel()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        if stdin_fd is not None:
            loop.remove_reader(stdin_fd)


def freeze_startup_heap() -> None:
    """The first step of the engine's garbage-collector policy (`gc_policy`), once startup has built its
    long-lived objects: collect what startup left behind, then freeze the survivors out of the collector's
    reach (full collections over them held the GIL for 50-190 ms). For what runs without the policy's loop:
    the validation runner and the data_path benchmark (whose automatic full collections stay on, so its
    figures are, if anything, pessimistic)."""
    gc_policy.collect_and_freeze()


async def _gc_policy_after_start(runtime: Runtime) -> None:
    """Once started, the garbage-collector policy (`gc_policy`) for as long as the runtime runs."""
    if not await asyncio.to_thread(runtime.wait_started, 120):
        return
    policy = gc_policy.start(asyncio.get_running_loop())
    try:
        await asyncio.Event().wait()  # until cancelled when the runtime returns
    finally:
        policy.stop()


def run_headless(settings: Settings, *, exit_with_parent: bool = False, control_fd: int | None = None) -> int:
    """Build the runtime and run it headless; returns the process exit code. `control_fd`: the workstation
    UI's end of its direct command channel (a socket this process inherited)."""
    channel = None
    if control_fd is not None:
        try:
            channel = socket.socket(fileno=control_fd)
        except OSError as exc:
            print(f"omega-tui: --control-fd {control_fd} is not a socket this process holds: {exc}", file=sys.stderr)
            return EXIT_USAGE
    runtime = build_runtime(settings)
    runtime.control_channel = channel
    try:
        code = asyncio.run(run_runtime(runtime, exit_with_parent=exit_with_parent))
    except EngineAlreadyRunning as exc:
        print(f"omega-tui: {exc}", file=sys.stderr)
        return EXIT_ALREADY_RUNNING
    for line in runtime.startup_errors:
        print(f"omega-tui: startup failed: {line}", file=sys.stderr)
    return code
