"""Starting an engine: the embedded simulated gateway (sim mode), then the runtime under a front end.

The workstation (`run_workstation`) is two processes: the engine (`omega-tui --no-ui`, started here as a
child, `EngineProcess`) and the UI in this process over the engine's state directory (`attach.SpawnedEngine`).
The embedded simulated gateway is a child of the engine process. This lives outside `core/` because it may
start the simulator, which core must never import.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from omega_tui.config import Settings
from omega_tui.logs import log_path

if TYPE_CHECKING:
    from omega_tui.sim.process import SimGatewayProcess

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STARTUP = 3
EXIT_NO_ENGINE = 4
UI_LOG = "ui.log"


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


ENGINE_LOGGER = "omega_tui.engine"


class EngineProcess:
    """The workstation's engine: `omega-tui --no-ui --exit-with-parent` (same options) as a child process.

    - It never outlives the UI: it asks Linux for SIGTERM when its parent dies (PR_SET_PDEATHSIG follows the
      thread that started it: start it from the main thread) and stops when its stdin reaches EOF (which the
      kernel gives for a parent that dies any way at all); both are the engine's graceful stop, shutdown
      policy included. `stop()` sends SIGTERM, waits, then kills.
    - It runs in its own session: the terminal (the UI's) is not its controlling terminal, so a hangup reaches
      the UI, which stops the engine; its stdout is /dev/null and it logs to its log file only.
    - Its stderr (only what it prints when it ends, e.g. `omega-tui: startup failed: …`, or a traceback) is
      relayed into this process's log (logger `omega_tui.engine`) and kept for `failure_lines()`.
    - It inherits one end of a Unix socket pair (`--control-fd`), the UI's direct command channel
      (`core.control.ChannelServer`); `channel` is this process's end, for `ChannelClient`.
    """

    def __init__(self, argv: list[str], *, cwd: str | None = None) -> None:
        self.argv = argv
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_ns = 0
        self._stderr: deque[str] = deque(maxlen=40)
        self._relay: threading.Thread | None = None
        self.channel: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Spawn the engine (from the main thread); raises OSError if it cannot be started at all."""
        if self.proc is not None:
            raise RuntimeError("the engine process is already running")
        self.started_ns = time.time_ns()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [*self.argv, "--control-fd", str(theirs.fileno())],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                close_fds=True,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                cwd=self.cwd,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the child has its copy: the engine's exit alone closes the channel
        self.channel = ours
        log.info("engine process %d started: %s", self.proc.pid, " ".join(self.argv[1:]))
        self._relay = threading.Thread(target=self._relay_stderr, name="engine-stderr", daemon=True)
        self._relay.start()

    def _relay_stderr(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        engine_log = logging.getLogger(ENGINE_LOGGER)
        for raw in proc.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            if text:
                self._stderr.append(text)
                engine_log.warning("engine %d said: %s", proc.pid, text)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def wait(self, timeout: float | None = None) -> int:
        """Block until the engine has exited (and its last words are read); returns its exit status."""
        assert self.proc is not None
        code = self.proc.wait(timeout)
        if self._relay is not None:
            self._relay.join(2.0)
        return code

    def terminate(self) -> None:
        """Ask the engine to stop gracefully (SIGTERM); returns at once and is idempotent."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float) -> int:
        """SIGTERM, wait up to `timeout` for its shutdown policy, then SIGKILL; returns its exit status."""
        proc = self.proc
        if proc is None:
            return 0
        self.terminate()
        try:
            code = self.wait(timeout)
        except subprocess.TimeoutExpired:
            log.error("the engine process %d did not stop within %.1f s; killing it", proc.pid, timeout)
            proc.kill()
            code = self.wait(10.0)
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if proc.stderr is not None:
            proc.stderr.close()
        if self.channel is not None:
            self.channel.close()
        return code

    def failure_lines(self) -> list[str]:
        """What the engine printed when it ended: its `omega-tui: …` lines, else its last stderr lines."""
        said = list(self._stderr)
        ours = [line for line in said if line.startswith("omega-tui: ")]
        return ours or said[-10:]


def engine_argv(options: list[str]) -> list[str]:
    """The command line of the workstation's engine child: the same options, headless, tied to this process."""
    return [sys.executable, "-m", "omega_tui", *options, "--no-ui", "--exit-with-parent"]


def run_workstation(settings: Settings, options: list[str]) -> int:
    """Run the workstation: the engine as a child process, the UI in this one over its state directory.

    The engine and the UI no longer share a GIL (DESIGN §2): ticks, risk checks and the kill switch do not
    wait behind rendering. `options` are the command-line options the engine child gets (config, --set,
    --state-dir, --mode), so it loads exactly these settings. Returns the engine's exit status (0 stopped
    cleanly, 2 refused, 3 startup failed; 1 for any other failure); its last lines are printed to stderr
    once the UI has given the terminal back.
    """
    from omega_tui.attach import SpawnedEngine
    from omega_tui.logs import setup_logging
    from omega_tui.ui.app import OmegaApp
    from omega_tui.ui.client import UI_SWITCH_INTERVAL_S

    setup_logging(settings.state.dir, settings.logging.level, log_name=UI_LOG)
    # The UI's own threads (poller, command senders, input) hand the GIL over every 1 ms, not 5.
    sys.setswitchinterval(UI_SWITCH_INTERVAL_S)
    process = EngineProcess(engine_argv(options))
    try:
        process.start()  # on the main thread: the child's PR_SET_PDEATHSIG follows the thread that started it
    except OSError as exc:
        print(f"omega-tui: startup failed: could not start the engine process: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    client = SpawnedEngine(settings, process)
    try:
        OmegaApp(client, settings, freeze_gc=True).run()
    finally:
        client.close()
        if process.running():
            print(f"omega-tui: waiting for the engine (pid {process.pid}) to stop…", file=sys.stderr)
        code = process.stop(settings.ui.engine_stop_timeout_s)
    if code != EXIT_OK:
        for line in process.failure_lines():
            print(line if line.startswith("omega-tui: ") else f"omega-tui: engine: {line}", file=sys.stderr)
        if code not in (EXIT_USAGE, EXIT_STARTUP):
            print(
                f"omega-tui: the engine exited with status {code}; see {log_path(settings.state.dir)}", file=sys.stderr
            )
            return 1
    return code


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
