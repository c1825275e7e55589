"""The simulated IB Gateway as a child process: how an engine runs its embedded gateway (`launcher.gateway_for`).

A real IB Gateway is a process of its own, so the simulator is too: it does not take the engine's GIL (the
market, the engine and the UI were three busy threads of one process before). The child is
`python -m omega_tui.sim.cli --port 0 --exit-with-parent ...` (the `omega-tui sim-gateway` command):

- the port comes from its readiness line (`sim-gateway listening on 127.0.0.1:PORT`) on stdout;
- it never outlives the engine: it asks Linux for SIGTERM when its parent dies (PR_SET_PDEATHSIG; Linux
  sends it when the *thread* that started the child ends, so start it from a thread that lives as long as
  the gateway should, e.g. the main thread), and it exits when its stdin pipe closes (which the kernel does
  for a parent that dies any way at all); `stop()` closes stdin, sends SIGTERM, waits, then kills;
- it runs in its own session, so the terminal's SIGINT/SIGHUP reach the engine only: the engine's
  shutdown policy (cancel or flatten at the broker) still has its gateway while it runs;
- its log records (stderr) are relayed into this process's logging under their own logger names, so they
  land in the engine's log as the in-thread gateway's did.

A failed start raises `SimProcessError` naming what failed (the command, the exit status, its last words).
"""

from __future__ import annotations

import logging
import os
import re
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType

log = logging.getLogger("omega_tui.sim.process")

READY_PREFIX = "sim-gateway listening on "
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
_LEVELS["CRITICAL"] = logging.CRITICAL
_RECORD = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$")


class SimProcessError(RuntimeError):
    """The simulated gateway's process did not start (or not as expected)."""


class SimGatewayProcess:
    """`omega-tui sim-gateway` as a child process tied to this one; `start()` returns once it listens."""

    def __init__(
        self,
        seed: int = 7,
        speed: float = 1.0,
        port: int = 0,
        scenario: str | Path | None = None,
        account: str = "DU1234567",
        max_lines: int = 100,
        *,
        extra_stocks: int = 0,
        tick_interval: float | None = None,
        burst: int = 0,
        rate_limit: int = 50,
        log_level: str = "INFO",
    ) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.argv = [
            sys.executable,
            "-m",
            "omega_tui.sim.cli",
            "--exit-with-parent",
            "--host",
            self.host,
            "--port",
            str(port),
            "--seed",
            str(seed),
            "--speed",
            repr(float(speed)),
            "--account",
            account,
            "--max-lines",
            str(max_lines),
            "--extra-stocks",
            str(extra_stocks),
            "--burst",
            str(burst),
            "--rate-limit",
            str(int(rate_limit)),
            "--log-level",
            log_level,
        ]
        if scenario is not None:
            self.argv += ["--scenario", str(scenario)]
        if tick_interval is not None:
            self.argv += ["--tick-interval", repr(float(tick_interval))]
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._relay: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id (None before start)."""
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout: float = START_TIMEOUT) -> int:
        """Start the child and wait for its readiness line; returns the port. Raises SimProcessError."""
        if self.proc is not None:
            raise RuntimeError("the simulated gateway process is already running")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                start_new_session=True,
            )
        except OSError as e:
            raise SimProcessError(f"could not start the simulated IB Gateway process ({self.argv[0]}): {e}") from e
        self._relay = threading.Thread(target=self._relay_stderr, name="sim-gateway-log", daemon=True)
        self._relay.start()
        try:
            line = self._read_ready(timeout)
            if not line.startswith(READY_PREFIX):
                raise SimProcessError(f"unexpected first line {line!r}")
            self.port = int(line.rsplit(":", 1)[1])
        except (SimProcessError, ValueError) as e:
            message = self._failure(str(e))
            self.stop()
            raise SimProcessError(message) from None
        except BaseException:
            self.stop()
            raise
        return self.port

    def _read_ready(self, timeout: float) -> str:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SimProcessError(f"no readiness line within {timeout:g} s")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise SimProcessError("it exited before listening")
                buf += chunk
        return buf.split(b"\n", 1)[0].decode(errors="replace").strip()

    def _failure(self, what: str) -> str:
        proc = self.proc
        status = ""
        if proc is not None:
            try:
                code = proc.wait(1.0)
                status = f", exit status {code}"
            except subprocess.TimeoutExpired:
                status = ""
        if self._relay is not None:
            self._relay.join(1.0)
        said = " | ".join(self._stderr_tail)
        return (
            f"the embedded simulated IB Gateway process failed to start: {what}{status}"
            + (f"; it said: {said}" if said else "")
            + f" (command: {' '.join(self.argv[1:])})"
        )

    def _relay_stderr(self) -> None:
        """The child's log records into this process's logging (and the last lines kept for errors)."""
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        level, name = logging.WARNING, "omega_tui.sim"
        for raw in proc.stderr:
            text = raw.decode(errors="replace").rstrip("\n")
            if not text:
                continue
            self._stderr_tail.append(text)
            m = _RECORD.match(text)
            if m:
                level, name, text = _LEVELS[m.group(1)], m.group(2), m.group(3)
            elif text.startswith("sim-gateway: "):
                level, name = logging.ERROR, "omega_tui.sim.cli"
            logging.getLogger(name).log(level, "%s", text)

    def set_burst(self, events_per_step: int) -> None:
        """Benchmark mode: `events_per_step` extra quote events per step to every streamed contract."""
        self._control(f"burst {int(events_per_step)}")

    def set_tick_interval(self, seconds: float) -> None:
        """Benchmark mode: step the market every `seconds` wall seconds from now on."""
        self._control(f"tick_interval {float(seconds)!r}")

    def _control(self, line: str) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("the simulated gateway process is not running")
        proc.stdin.write(f"{line}\n".encode())
        proc.stdin.flush()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close its stdin, SIGTERM it, wait up to `timeout`, then SIGKILL it; idempotent."""
        proc = self.proc
        if proc is None:
            return
        if proc.stdin is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("the simulated gateway process %d did not stop within %.1fs; killing it", proc.pid, timeout)
                proc.kill()
                proc.wait(timeout)
        if self._relay is not None:
            self._relay.join(timeout)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self.proc = None

    def __enter__(self) -> SimGatewayProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
