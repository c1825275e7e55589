"""Real processes for the headless tests: the simulated gateway, headless engines, and the control CLI.

Every process a test starts is killed in a `finally` (or a fixture's teardown) and every wait is bounded.
Engines run with `cwd` set to an empty directory (no `./config.toml`) and without `OMEGA_*` variables, so
only the flags a test passes configure them.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omega_tui.control import status_report

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("driver.py")
START_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 30.0


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("OMEGA_")}


def omega(cwd: Path, state_dir: Path, *args: str, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """Run one `omega-tui` command (a separate process) on `state_dir` and wait for it."""
    return subprocess.run(
        [sys.executable, "-m", "omega_tui", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=clean_env(),
        check=False,
    )


def eventually(predicate: Callable[[], Any], seconds: float, what: str, period: float = 0.05) -> Any:
    """Poll until `predicate()` is truthy; return its value, or fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(period)


def journal_records(state_dir: Path, kind: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted((state_dir / "journal").glob("journal-*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if record.get("kind") == kind:
                out.append(record)
    return out


class Proc:
    """A child process whose stdout lines are read by a thread, so every read can be bounded."""

    def __init__(self, argv: list[str], cwd: Path, stderr_path: Path, *, stdin: bool = False) -> None:
        self.stderr_path = stderr_path
        self._stderr = open(stderr_path, "w", encoding="utf-8")  # a file: a full pipe would block the child
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=clean_env(),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, name=f"stdout-{self.proc.pid}", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def next_line(self, timeout: float) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            tail = self.tail()
            raise AssertionError(f"no output from pid {self.pid} within {timeout:g} s; stderr:\n{tail}") from None

    def tail(self, n: int = 15) -> str:
        self._stderr.flush()
        return "\n".join(self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])

    def stderr_lines(self) -> list[str]:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL and reap; a no-op when it already exited."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._stderr.close()


class Engine(Proc):
    """A headless engine: `omega-tui --no-ui`, or the test driver (the same engine that also places orders)."""

    def __init__(self, cwd: Path, state_dir: Path, *args: str, driver: bool = False) -> None:
        self.state_dir = state_dir
        self.driver = driver
        if driver:
            argv = [sys.executable, str(DRIVER), "--state-dir", str(state_dir), *args]
        else:
            argv = [sys.executable, "-m", "omega_tui", "--state-dir", str(state_dir), "--no-ui", *args]
        n = len(list(cwd.glob("engine-*.stderr")))
        super().__init__(argv, cwd, cwd / f"engine-{n}.stderr", stdin=driver)

    def report(self) -> dict[str, Any]:
        return status_report(self.state_dir)

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        """Block until this process holds the state directory, is connected and has published its risk state."""

        def ready() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited with {self.proc.returncode}; stderr:\n{self.tail()}")
            report = self.report()
            engine = report["engine"] or {}
            if (
                engine.get("pid") == self.pid
                and report["connection"].get("state") == "UP"
                and report["trading_state"] in ("ACTIVE", "REDUCING", "HALTED")
                and report["components"]
                and all(c.get("state") == "RUNNING" for c in report["components"].values())
            ):
                return report
            return None

        report: dict[str, Any] = eventually(ready, timeout, f"engine pid {self.pid} ready", period=0.1)
        return report

    def request(self, text: str, timeout: float = 20.0) -> dict[str, Any]:
        """Ask the driver to place an order (`rest KEY` / `take KEY`); returns its JSON answer."""
        assert self.driver and self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.next_line(timeout)
            if line.startswith("{") and "cmd" in line:
                answer: dict[str, Any] = json.loads(line)
                return answer

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        self.send_signal(signum)
        return self.wait(timeout)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty working directory (no config.toml) for the module's processes."""
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(scope="module")
def module_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state")
    path.chmod(0o700)
    return path


@pytest.fixture(scope="module")
def gateway(workdir: Path) -> Iterator[int]:
    """`omega-tui sim-gateway` as its own process on 127.0.0.1; yields its port.

    Engines that must survive a SIGKILL with their orders still at the broker need a gateway that is not
    embedded in them, like a real IB Gateway.
    """
    proc = Proc(
        [sys.executable, "-m", "omega_tui", "sim-gateway", "--host", "127.0.0.1", "--port", "0"],
        workdir,
        workdir / "gateway.stderr",
    )
    try:
        line = proc.next_line(20)
        assert line.startswith("sim-gateway listening on 127.0.0.1:"), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.kill()


def start_engine(cwd: Path, state_dir: Path, *args: str, driver: bool = False) -> Engine:
    """Start an engine and wait until it is ready; kills it if it never gets there."""
    engine = Engine(cwd, state_dir, *args, driver=driver)
    try:
        engine.wait_ready()
        if driver:
            assert engine.next_line(10) == '{"event": "started"}'
    except BaseException:
        engine.kill()
        raise
    return engine


def working_orders(report: dict[str, Any]) -> list[dict[str, Any]]:
    return list(report["open_orders"])


def position_qty(report: dict[str, Any], key: str) -> int:
    return int((report["positions"].get(key) or {}).get("quantity") or 0)


def wait_state(state_dir: Path, state: str, seconds: float = 10.0) -> dict[str, Any]:
    result: dict[str, Any] = eventually(
        lambda: (r := status_report(state_dir))["trading_state"] == state and r, seconds, f"trading state {state}"
    )
    return result
