"""Control of a running engine from other processes on the same machine, through its state directory.

Two pieces, both on diskcache (process-safe; no home-made IPC, DESIGN §3):

- `EngineLock`: an exclusive `flock` on `<state.dir>/engine.lock`, held for the engine's lifetime. The
  kernel drops it when the process dies, even by SIGKILL, so a stale lock can always be taken over; the
  file's content names the holder for error messages.
- `ControlQueue`: commands go into a diskcache `Deque` (`<state.dir>/control/queue`), results come back in
  a diskcache `Cache` keyed by command id. The engine side (`ControlServer`) drains the queue from its own
  thread and hands each command to `Runtime.submit`, so a control command is applied within milliseconds
  and never waits on SQLite on the core loop: the answer is written by the control thread too, never by
  the loop that resolved it. An answer may carry hot-state sections as the engine published them once the
  command had acted (`Answer.state`, e.g. the risk section after a Halt latched), so a UI in another
  process can show the engine's new state without waiting for the next hot-state flush.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import logging
import os
import queue as queue_module
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import diskcache

from omega_tui.core.types import Command, CommandResult

log = logging.getLogger(__name__)

LOCK_FILE = "engine.lock"
POLL_S = 0.005


@dataclass(frozen=True)
class Answer:
    """What the engine writes back for one command: its result and, optionally, hot-state sections as
    published right after the command acted (read on the core loop, after the command's own follow-ups)."""

    result: CommandResult
    state: Mapping[str, Any] | None = None


class EngineAlreadyRunning(Exception):
    """Another engine holds the state directory's lock."""


@dataclass(frozen=True)
class EngineInfo:
    pid: int
    host: str
    started_utc: str
    mode: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, {self.mode}, started {self.started_utc}"


class EngineLock:
    """The single-instance lock of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / LOCK_FILE
        self._file: IO[str] | None = None
        self.took_over: EngineInfo | None = None

    def acquire(self, mode: str) -> EngineInfo:
        """Take the lock or raise EngineAlreadyRunning naming the holder; records a stale takeover."""
        f = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(self.path)
            f.close()
            raise EngineAlreadyRunning(already_running(self.path.parent, holder)) from None
        self.took_over = read_holder(self.path)  # readable only if a previous holder died without cleanup
        info = EngineInfo(os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat(timespec="seconds"), mode)
        f.seek(0)
        f.truncate()
        f.write(json.dumps(info.__dict__))
        f.flush()
        self._file = f
        return info

    def release(self) -> None:
        if self._file is None:
            return
        self._file.seek(0)
        self._file.truncate()
        self._file.flush()
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None


def already_running(state_dir: Path, holder: EngineInfo | None) -> str:
    """The refusal a second engine on `state_dir` prints, naming the running one."""
    who = holder.describe() if holder else "another process"
    return (
        f"an engine is already running on {state_dir} ({who}); stop it first, or use "
        f"`omega-tui attach` / `omega-tui status` to work with it"
    )


def read_holder(path: Path) -> EngineInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    try:
        return EngineInfo(int(data["pid"]), str(data["host"]), str(data["started_utc"]), str(data["mode"]))
    except (KeyError, ValueError, TypeError):
        return None


def engine_running(state_dir: Path) -> EngineInfo | None:
    """The running engine's info, or None when nobody holds the lock (no engine, or it died)."""
    path = Path(state_dir) / LOCK_FILE
    if not path.exists():
        return None
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return read_holder(path) or EngineInfo(0, "?", "?", "?")
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return None


class ControlQueue:
    """Both ends of the command queue of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        base = Path(state_dir) / "control"
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._queue = diskcache.Deque(directory=str(base / "queue"))
        self._results = diskcache.Cache(str(base / "results"), timeout=5)

    # ---------------------------------------------------------------- client side

    def warm(self) -> None:
        """Open this thread's SQLite connections now (diskcache opens them per thread, on first use)."""
        len(self._queue)
        self._results.get("")

    def send(self, command: Command) -> str:
        command_id = uuid.uuid4().hex[:12]
        self._queue.append((command_id, time.time(), command))
        return command_id

    def wait_result(self, command_id: str, timeout_s: float) -> CommandResult | None:
        """Poll for the engine's answer; None when it did not answer in time."""
        answer = self.wait_answer(command_id, timeout_s)
        return answer.result if answer is not None else None

    def wait_answer(self, command_id: str, timeout_s: float, poll_s: float = POLL_S) -> Answer | None:
        """Poll for the engine's answer with the state it published after acting; None when it did not answer."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self._results.get(command_id)
            if isinstance(value, Answer | CommandResult):
                self._results.delete(command_id)
                return value if isinstance(value, Answer) else Answer(value)
            if time.monotonic() >= deadline:
                return None
            time.sleep(poll_s)

    # ---------------------------------------------------------------- engine side

    def take(self) -> tuple[str, float, Any] | None:
        """The oldest command, or None. An empty queue is seen with a read: popping takes SQLite's write lock
        (BEGIN IMMEDIATE), and taking it on every 5 ms poll made a client's `send` (the kill switch) meet a
        held lock and SQLite's busy back-off (sleeps of 1, 2, 5 … 100 ms) whenever this thread, lock held,
        waited for the GIL or a CPU."""
        if not len(self._queue):
            return None
        try:
            item = self._queue.popleft()
        except IndexError:
            return None
        return item if isinstance(item, tuple) and len(item) == 3 else None

    def answer(self, command_id: str, result: CommandResult, state: Mapping[str, Any] | None = None) -> None:
        self._results.set(command_id, Answer(result, dict(state) if state is not None else None), expire=300)

    def clear(self) -> None:
        """Drop commands left from a previous engine: they were never acknowledged, so nobody waits."""
        self._queue.clear()

    def close(self) -> None:
        self._results.close()


class ControlServer:
    """Drains the control queue in its own thread, submits each command to the runtime, writes the answers.

    `state()`, when given, is called on the core loop once a command has acted (after the callbacks the
    command queued there, e.g. the risk engine publishing its view after a halt) and its sections travel
    with the answer; `call_on_loop(fn, *args)` schedules onto that loop from another thread (for a command
    resolved before its callback was added). Only the control thread touches SQLite: the loop hands results
    over in memory.
    """

    def __init__(
        self,
        queue: ControlQueue,
        submit: Callable[[Command], Future[CommandResult]],
        state: Callable[[], Mapping[str, Any]] | None = None,
        call_on_loop: Callable[..., object] | None = None,
        poll_s: float = POLL_S,
        acts_at_once: Callable[[Command], bool] | None = None,
    ) -> None:
        self._queue = queue
        self._submit = submit
        self._acts_at_once = acts_at_once
        self._state = state
        self._call_on_loop = call_on_loop
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._done: queue_module.SimpleQueue[tuple[str, CommandResult, Mapping[str, Any] | None]] = (
            queue_module.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self.handled = 0

    def start(self) -> None:
        self._queue.clear()
        self._thread = threading.Thread(target=self._run, name="control-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._write_answers()  # answers resolved while stopping still reach whoever waits

    def _run(self) -> None:
        while not self._stop.is_set():
            self._write_answers()
            item = self._queue.take()
            if item is None:
                self._wake.wait(self._poll_s)
                self._wake.clear()
                continue
            command_id, _sent_at, command = item
            at_once = self._acts_at_once is not None and self._acts_at_once(command)
            future = self._submit(command)
            future.add_done_callback(functools.partial(self._resolved, command_id, at_once))
            self.handled += 1

    def _resolved(self, command_id: str, at_once: bool, future: Future[CommandResult]) -> None:
        """On whichever thread resolved the command (normally the core loop): hand the answer over, no I/O."""
        try:
            result = future.result()
        except Exception as exc:
            result = CommandResult(command_id, False, f"command failed: {exc}", datetime.now(UTC))
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._state is None:
            self._hand_over(command_id, result, False)
        elif loop is not None and at_once:
            # A command whose handler published its effect before returning (the urgent Halt): its state is
            # current now, and waiting for the rest of this loop iteration (a batch of ticks) would delay the
            # answer the kill switch's banner is drawn from.
            self._hand_over(command_id, result, True)
        elif loop is not None:
            # After what the command queued on this loop (call_soon is FIFO), so the sections show its effect.
            loop.call_soon(self._hand_over, command_id, result, True)
        elif self._call_on_loop is not None:
            # Resolved before the callback was added (this is the control thread): read the state on the loop
            # all the same, behind what the command queued there.
            try:
                self._call_on_loop(self._hand_over, command_id, result, True)
            except RuntimeError:  # the loop is closed: no state to send
                self._hand_over(command_id, result, False)
        else:
            self._hand_over(command_id, result, True)

    def _hand_over(self, command_id: str, result: CommandResult, with_state: bool) -> None:
        state: Mapping[str, Any] | None = None
        if with_state and self._state is not None:
            try:
                state = self._state()
            except Exception:
                log.exception("could not read the state to send with the answer to %s", command_id)
        self._done.put((command_id, result, state))
        self._wake.set()

    def _write_answers(self) -> None:
        while True:
            try:
                command_id, result, state = self._done.get_nowait()
            except queue_module.Empty:
                return
            try:
                self._queue.answer(command_id, result, state)
            except Exception:
                log.exception("could not write the answer to control command %s", command_id)
