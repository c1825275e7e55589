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

One exception to "no home-made IPC", for the kill switch's sake: the workstation's own engine (the UI's
child process) also takes commands on a Unix socket pair inherited from the UI (`ChannelServer`,
`ChannelClient`). The queue's 5 ms poll and SQLite's locks, with three busy processes on two cores, put
key → HALTED at p99 90-160 ms; a thread blocked on the socket takes the command the moment it is written.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import logging
import os
import pickle
import queue as queue_module
import socket
import struct
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
    # True only on the UI's own answer for a command its closed channel can no longer carry (`ChannelClient`),
    # whatever an engine's message says.
    channel_closed: bool = False


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


Submit = Callable[[Command, Callable[[Future[CommandResult]], object]], Future[CommandResult]]
"""`Runtime.submit(command, on_done)`: `on_done` is added to the future before the command can run."""


class ControlEndpoint:
    """What every command endpoint of the engine shares: a taken command goes to `Runtime.submit`; its answer
    is handed over in memory (no I/O on the loop that resolved it) and delivered by the endpoint's own thread.

    `state()`, when given, is called on the core loop once a command has acted (after the callbacks the
    command queued there, e.g. the risk engine publishing its view after a halt) and its sections travel
    with the answer; `call_on_loop(fn, *args)` schedules onto that loop from another thread (for a command
    resolved before its callback was added); `acts_at_once(command)`: the command's handler published its
    effect before returning (the urgent Halt), so its answer leaves at once.
    """

    def __init__(
        self,
        submit: Submit,
        state: Callable[[], Mapping[str, Any]] | None = None,
        call_on_loop: Callable[..., object] | None = None,
        acts_at_once: Callable[[Command], bool] | None = None,
    ) -> None:
        self._submit = submit
        self._acts_at_once = acts_at_once
        self._state = state
        self._call_on_loop = call_on_loop
        self._done: queue_module.SimpleQueue[tuple[str, CommandResult, Mapping[str, Any] | None] | None] = (
            queue_module.SimpleQueue()
        )
        self.handled = 0

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop taking commands; answers already handed over are still delivered."""
        raise NotImplementedError

    def _accept(self, command_id: str, command: Any) -> None:
        """Hand one taken command to the runtime (on the endpoint's thread)."""
        at_once = self._acts_at_once is not None and self._acts_at_once(command)
        self._submit(command, functools.partial(self._resolved, command_id, at_once))
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
            self._hand_over_urgent(command_id, result)
        elif loop is not None:
            # After what the command queued on this loop (call_soon is FIFO), so the sections show its effect.
            loop.call_soon(self._hand_over, command_id, result, True)
        elif self._call_on_loop is not None:
            # Resolved before the callback was added (this is the endpoint's thread): read the state on the
            # loop all the same, behind what the command queued there.
            try:
                self._call_on_loop(self._hand_over, command_id, result, True)
            except RuntimeError:  # the loop is closed: no state to send
                self._hand_over(command_id, result, False)
        else:
            self._hand_over(command_id, result, True)

    def _hand_over(self, command_id: str, result: CommandResult, with_state: bool) -> None:
        self._done.put((command_id, result, self._read_state(command_id) if with_state else None))
        self._answers_ready()

    def _read_state(self, command_id: str) -> Mapping[str, Any] | None:
        """The sections sent with an answer (on the core loop), or None (none configured, or unreadable)."""
        if self._state is None:
            return None
        try:
            return self._state()
        except Exception:
            log.exception("could not read the state to send with the answer to %s", command_id)
            return None

    def _hand_over_urgent(self, command_id: str, result: CommandResult) -> None:
        """`_hand_over` with the state, for an urgent command's answer (on the core loop); an endpoint that can
        send it at once without blocking does so (`ChannelServer`)."""
        self._hand_over(command_id, result, True)

    def _answers_ready(self) -> None:
        """Called by `_hand_over` (any thread) after queueing an answer."""

    def _deliver(self, command_id: str, result: CommandResult, state: Mapping[str, Any] | None) -> None:
        raise NotImplementedError

    def _deliver_ready(self, block: bool) -> bool:
        """Deliver the answers handed over so far; with `block`, wait for one first. False at the stop sentinel."""
        while True:
            try:
                item = self._done.get(block)
            except queue_module.Empty:
                return True
            if item is None:
                return False
            block = False
            command_id, result, state = item
            try:
                self._deliver(command_id, result, state)
            except Exception:
                log.exception("could not deliver the answer to control command %s", command_id)


class ControlServer(ControlEndpoint):
    """Drains the control queue in its own thread, submits each command to the runtime, writes the answers.

    Only the control thread touches SQLite: the loop hands results over in memory (`ControlEndpoint`).
    """

    def __init__(
        self,
        queue: ControlQueue,
        submit: Submit,
        state: Callable[[], Mapping[str, Any]] | None = None,
        call_on_loop: Callable[..., object] | None = None,
        poll_s: float = POLL_S,
        acts_at_once: Callable[[Command], bool] | None = None,
    ) -> None:
        super().__init__(submit, state, call_on_loop, acts_at_once)
        self._queue = queue
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

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
        self._deliver_ready(False)  # answers resolved while stopping still reach whoever waits

    def _run(self) -> None:
        while not self._stop.is_set():
            self._deliver_ready(False)
            item = self._queue.take()
            if item is None:
                self._wake.wait(self._poll_s)
                self._wake.clear()
                continue
            command_id, _sent_at, command = item
            self._accept(command_id, command)

    def _answers_ready(self) -> None:
        self._wake.set()

    def _deliver(self, command_id: str, result: CommandResult, state: Mapping[str, Any] | None) -> None:
        self._queue.answer(command_id, result, state)


# ---------------------------------------------------------------------------- the workstation's direct channel

FRAME_HEADER = struct.Struct("!I")
MAX_FRAME_BYTES = 64 * 1024 * 1024


def send_frame(sock: socket.socket, obj: Any) -> None:
    """One pickled object, length-prefixed (the caller serialises concurrent senders)."""
    sock.sendall(encode_frame(obj))


def encode_frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME_HEADER.pack(len(data)) + data


def recv_frame(sock: socket.socket) -> Any:
    """The next object; raises EOFError when the peer closed the channel."""
    (size,) = FRAME_HEADER.unpack(_recv_exactly(sock, FRAME_HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise ValueError(f"a control frame of {size} bytes is over the {MAX_FRAME_BYTES} allowed")
    return pickle.loads(_recv_exactly(sock, size))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the control channel was closed")
        chunks += chunk
    return bytes(chunks)


class ChannelServer(ControlEndpoint):
    """The engine's end of the workstation UI's direct command channel (`launcher.EngineProcess`).

    The UI that started this engine as its child holds the other end of a Unix socket pair (the engine gets
    its end as `--control-fd`). A reader thread blocks on it, so a command (the kill switch) is taken the
    moment it is written, with no poll period and no SQLite on either side; a writer thread sends the
    answers (`ControlEndpoint` hands them over in memory). An urgent command's answer is sent by the core
    loop itself when that cannot block (nothing queued before it; a non-blocking send): waking the writer
    thread would put a GIL hand-over, milliseconds on a busy engine, before the kill switch's banner;
    whatever the socket does not take at once is left to the writer thread. Frames are length-prefixed
    pickles between a parent and its own child. The diskcache control queue (`ControlServer`) stays for
    every other process (`omega-tui halt`, `attach`). A frame that cannot be read ends the channel: the UI
    sees it closed and sends through the control queue instead.
    """

    def __init__(
        self,
        sock: socket.socket,
        submit: Submit,
        state: Callable[[], Mapping[str, Any]] | None = None,
        call_on_loop: Callable[..., object] | None = None,
        acts_at_once: Callable[[Command], bool] | None = None,
    ) -> None:
        super().__init__(submit, state, call_on_loop, acts_at_once)
        self._sock = sock
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._send_lock = threading.Lock()  # one frame at a time on the socket, and `_rest` with it
        self._rest = b""  # the part of a frame the loop sent that the socket did not take (the writer sends it)
        self.sent_on_loop = 0

    def start(self) -> None:
        self._reader = threading.Thread(target=self._read, name="control-channel", daemon=True)
        self._writer = threading.Thread(target=self._write, name="control-channel-answers", daemon=True)
        self._writer.start()
        self._reader.start()

    def stop(self) -> None:
        """Stop taking commands; answers already handed over are still sent."""
        try:
            self._sock.shutdown(socket.SHUT_RD)  # wakes the reader blocked in recv
        except OSError:
            pass
        if self._reader is not None:
            self._reader.join(timeout=5)
        self._done.put(None)
        if self._writer is not None:
            self._writer.join(timeout=5)
        self._sock.close()

    def _read(self) -> None:
        while True:
            try:
                item = recv_frame(self._sock)
            except (EOFError, OSError):
                return
            except Exception:
                log.exception("unreadable frame on the UI's control channel; closing it (the UI falls back)")
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if not (isinstance(item, tuple) and len(item) == 3):
                log.error("ignored a malformed command on the UI's control channel: %r", item)
                continue
            command_id, _sent_at, command = item
            self._accept(command_id, command)

    def _write(self) -> None:
        while self._deliver_ready(True):
            pass

    def _hand_over_urgent(self, command_id: str, result: CommandResult) -> None:
        """On the core loop: send the answer now if that cannot block, else hand it to the writer thread."""
        if not self._send_lock.acquire(blocking=False):  # the writer is sending: queue behind it
            self._hand_over(command_id, result, True)
            return
        try:
            if not self._done.empty() or self._rest:  # answers before this one are still to go: keep the order
                self._hand_over(command_id, result, True)
                return
            frame = encode_frame(_answer_frame(command_id, result, self._read_state(command_id)))
            try:
                sent = self._sock.send(frame, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                log.warning("could not send the answer to %s on the UI's control channel: %s", command_id, exc)
                return
            if sent:
                self.sent_on_loop += 1
            if sent < len(frame):
                self._rest = frame[sent:]
                self._done.put(("", result, None))  # wakes the writer, which sends `_rest` first (see `_deliver`)
        finally:
            self._send_lock.release()

    def _deliver(self, command_id: str, result: CommandResult, state: Mapping[str, Any] | None) -> None:
        try:
            with self._send_lock:
                if self._rest:
                    rest, self._rest = self._rest, b""
                    self._sock.sendall(rest)
                if command_id:  # "" only wakes this thread for `_rest`
                    send_frame(self._sock, _answer_frame(command_id, result, state))
        except OSError as exc:
            log.warning("could not send the answer to %s on the UI's control channel: %s", command_id, exc)


CHANNEL_CLOSED = "the engine's command channel is closed (the engine stopped)"


class ChannelClient:
    """The UI's end of its engine child's direct command channel: the `ControlQueue` client methods over the
    socket. A reader thread files the answers; a closed channel answers every waiting command at once."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._send_lock = threading.Lock()
        self._answers: dict[str, Answer] = {}
        self._callbacks: dict[str, Callable[[Answer], object]] = {}  # `on_answer`: called on the reader thread
        self._abandoned: set[str] = set()  # commands whose wait timed out: their late answers are dropped
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="engine-channel", daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def warm(self) -> None:
        """Nothing to open: the socket is connected."""

    def send(self, command: Command) -> str:
        command_id = uuid.uuid4().hex[:12]
        try:
            with self._send_lock:
                send_frame(self._sock, (command_id, time.time(), command))
        except OSError as exc:
            log.warning("the engine's command channel is closed (%s)", exc)
            self._close()
        return command_id

    def wait_answer(self, command_id: str, timeout_s: float, poll_s: float = POLL_S) -> Answer | None:
        """The engine's answer; an answer saying so when the channel closed first; None after `timeout_s`."""
        with self._cond:
            self._cond.wait_for(lambda: command_id in self._answers or self._closed, timeout_s)
            answer = self._answers.pop(command_id, None)
            if answer is None and not self._closed:
                self._abandoned.add(command_id)
        if answer is None and self._closed:
            return _closed_answer(command_id)
        return answer

    def on_answer(self, command_id: str, callback: Callable[[Answer], object]) -> None:
        """Call `callback(answer)` on the reader thread the moment the answer arrives (on this thread, at once, if
        it is here already; with the closed-channel answer if the channel closes first). The kill switch's path:
        no other thread has to wake before the answer is acted on. `forget` it if the wait is given up."""
        with self._cond:
            answer = self._answers.pop(command_id, None)
            if answer is None and not self._closed:
                self._callbacks[command_id] = callback
                return
        callback(answer if answer is not None else _closed_answer(command_id))

    def forget(self, command_id: str) -> None:
        """Give up an `on_answer`: its callback is not called, a late answer is dropped."""
        with self._cond:
            if self._callbacks.pop(command_id, None) is not None:
                self._abandoned.add(command_id)

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(timeout=2)
        self._sock.close()

    def _read(self) -> None:
        while True:
            try:
                command_id, answer = recv_frame(self._sock)
            except (EOFError, OSError):
                break
            except Exception:
                log.exception("unreadable answer on the engine's command channel; closing it")
                break
            with self._cond:
                if command_id in self._abandoned:
                    self._abandoned.discard(command_id)
                    continue
                callback = self._callbacks.pop(command_id, None)
                if callback is None:
                    self._answers[command_id] = answer
                    self._cond.notify_all()
                    continue
            _call(callback, answer)
        self._close()

    def _close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            callbacks, self._callbacks = self._callbacks, {}
        for command_id, callback in callbacks.items():
            _call(callback, _closed_answer(command_id))


def _answer_frame(command_id: str, result: CommandResult, state: Mapping[str, Any] | None) -> tuple[str, Answer]:
    """What the engine sends on the UI's channel for one answer."""
    return command_id, Answer(result, dict(state) if state is not None else None)


def _closed_answer(command_id: str) -> Answer:
    return Answer(CommandResult(command_id, False, CHANNEL_CLOSED, datetime.now(UTC)), channel_closed=True)


def _call(callback: Callable[[Answer], object], answer: Answer) -> None:
    try:
        callback(answer)
    except Exception:  # the reader thread must go on reading
        log.exception("an answer's callback failed")
