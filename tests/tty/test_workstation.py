"""`omega-tui` is two processes: the UI (this terminal) and the engine (its child, with the simulated gateway as
the engine's child). The engine never outlives the UI, its death is shown, a startup failure exits 3.

Each test runs the real `omega-tui` in a pseudo-terminal with a fresh state directory; every process it
starts is found through /proc and checked gone (or killed) at the end, and every wait is bounded.
"""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omega_tui.control import status_report
from omega_tui.core.control import engine_running

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc and ptys")

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")
GONE_WITHIN_S = 30.0


class Terminal:
    """`omega-tui` on a pseudo-terminal; `screen` accumulates what it drew, escape sequences removed."""

    def __init__(self, state_dir: Path, *args: str) -> None:
        master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMEGA_", "TMUX"))}
        env.update(TERM="xterm-256color", COLUMNS="100", LINES="30")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "omega_tui", "--state-dir", str(state_dir), "--set", "scheduler.models=[]", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            cwd=state_dir.parent,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.master: int | None = master
        self.raw = b""

    @property
    def text(self) -> str:
        return ANSI.sub(b"", self.raw).decode(errors="replace")

    def pump(self, timeout: float = 0.1) -> None:
        if self.master is None:
            time.sleep(timeout)
            return
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the UI closed its side
                chunk = b""
            if chunk:
                self.raw += chunk
            else:
                os.close(self.master)
                self.master = None

    def wait_for(self, predicate: Callable[[], object], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {seconds:g} s; the terminal showed:\n{self.text[-3000:]}")
            self.pump()

    def send(self, data: bytes) -> None:
        assert self.master is not None
        os.write(self.master, data)

    def exit_code(self, seconds: float) -> int:
        self.wait_for(lambda: self.proc.poll() is not None, seconds, "the UI to exit")
        while self.master is not None:  # what it printed after giving the terminal back
            self.pump()
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.master is not None:
            os.close(self.master)
            self.master = None


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pids: list[int], seconds: float = GONE_WITHIN_S) -> None:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            left = [pid for pid in pids if alive(pid)]
            for pid in left:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"processes {left} outlived the workstation UI (killed now)")
        time.sleep(0.1)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    try:
        yield started
    finally:
        for terminal in started:
            terminal.close()


def start_streaming(state_dir: Path, terminals: list[Terminal]) -> tuple[Terminal, int, int]:
    """`omega-tui` up and streaming; returns it, its engine's pid and the engine's gateway pid."""
    terminal = Terminal(state_dir)
    terminals.append(terminal)
    terminal.wait_for(lambda: "ACTIVE" in terminal.text and "AAPL" in terminal.text, 60, "ACTIVE with quotes")

    def started() -> bool:
        components = status_report(state_dir)["components"]
        return bool(components) and all(c.get("state") == "RUNNING" for c in components.values())

    terminal.wait_for(started, 60, "every engine component running")
    holder = engine_running(state_dir)
    assert holder is not None and holder.pid != terminal.proc.pid, "the engine is not a process of its own"
    assert children_of(terminal.proc.pid) == [holder.pid], "the engine is not the UI's child"
    gateways = children_of(holder.pid)
    assert len(gateways) == 1, f"the engine should have its simulated gateway as only child: {gateways}"
    return terminal, holder.pid, gateways[0]


def test_the_engine_and_its_gateway_die_with_the_ui_even_on_sigkill(state_dir: Path, terminals: list[Terminal]) -> None:
    terminal, engine, gateway = start_streaming(state_dir, terminals)
    os.kill(terminal.proc.pid, signal.SIGKILL)
    terminal.proc.wait(10)
    wait_gone([engine, gateway])
    # A graceful stop (its shutdown policy ran), not a kill: the engine's parent-death signal is SIGTERM.
    log = (state_dir / "logs" / "omega.log").read_text(encoding="utf-8")
    tail = "\n".join(log.splitlines()[-40:])
    assert "received SIGTERM, stopping" in log or "stdin closed" in log, tail
    assert "shutdown policy cancel" in log, tail
    assert engine_running(state_dir) is None


def test_ctrl_q_stops_the_engine_and_exits_0(state_dir: Path, terminals: list[Terminal]) -> None:
    terminal, engine, gateway = start_streaming(state_dir, terminals)
    terminal.send(b"\x11")  # ctrl+q
    assert terminal.exit_code(60) == 0, terminal.text[-2000:]
    wait_gone([engine, gateway], 5)  # the UI exits only once its engine has stopped
    assert "the engine stopped" not in terminal.text.lower()  # nothing alarming printed on a normal quit


def test_a_dead_engine_is_shown_unmistakably(state_dir: Path, terminals: list[Terminal]) -> None:
    terminal, engine, gateway = start_streaming(state_dir, terminals)
    os.kill(engine, signal.SIGKILL)
    terminal.wait_for(lambda: "NO ENGINE" in terminal.text, 10, "the banner saying the engine is gone")
    terminal.wait_for(lambda: "ENGINE GONE" in terminal.text, 10, "the notification")
    wait_gone([gateway])  # the engine's own child follows it
    terminal.send(b"\x11")
    code = terminal.exit_code(30)
    assert code == 1, terminal.text[-2000:]
    assert "omega-tui: the engine exited with status -9" in terminal.text


def test_a_startup_failure_is_shown_and_the_ui_exits_3(state_dir: Path, terminals: list[Terminal]) -> None:
    terminal = Terminal(state_dir, "--set", 'instruments.watchlist=[{key="NOPE", symbol="NOPE", sec_type="STK"}]')
    terminals.append(terminal)
    code = terminal.exit_code(60)
    assert code == 3, terminal.text[-2000:]
    # Printed once the terminal is given back: the engine's own startup-failure line, naming the instrument.
    assert re.search(r"omega-tui: startup failed: NOPE .*no such contract", terminal.text), terminal.text[-2000:]
    assert engine_running(state_dir) is None
    assert not children_of(terminal.proc.pid)


def test_an_ssh_drop_stops_the_ui_and_its_engine(state_dir: Path, terminals: list[Terminal]) -> None:
    """SIGHUP reaches the UI only (the engine runs in its own session); the UI stops the engine gracefully."""
    terminal, engine, gateway = start_streaming(state_dir, terminals)
    os.kill(terminal.proc.pid, signal.SIGHUP)
    terminal.exit_code(60)
    wait_gone([engine, gateway], 5)
    log = (state_dir / "logs" / "omega.log").read_text(encoding="utf-8")
    assert "received SIGTERM, stopping" in log and "shutdown policy cancel" in log, log[-3000:]
