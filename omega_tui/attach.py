"""The workstation UI over an engine in another process: `omega-tui` (its own engine child) and `omega-tui attach`.

`RemoteEngine` implements the UI's `EngineClient` protocol over the engine's state directory: a poller
thread reads the diskcache hot state after each engine flush (`state.flush_ms`) into an in-memory snapshot
(so the UI thread never waits on SQLite), and commands go through the control queue (`SpawnedEngine`: its
direct channel, below).

The kill switch: a Halt is sent on a thread of its own, never queued behind a slow command (on the direct
channel the calling thread, the terminal's input thread, writes it, and the sender thread only waits for
the answer). It lands on the engine's urgent Halt path, and the engine answers only once HALTED is latched,
with its risk section as published after the latch (`core.control.Answer`). That section is shown at once:
the banner says HALTED when the engine says so, not one flush + poll + refresh later. Until the engine's
own flushes have caught up with it, an older on-disk copy of that section does not replace it.

`SpawnedEngine` is `omega-tui`'s own engine: a child process (`launcher.EngineProcess`) started by the UI,
stopped when the UI quits; its exit is reported to the app (`EngineGone`). Its commands go through the
direct channel the UI shares with its child (`core.control.ChannelClient`): the engine takes a Halt the
moment it is written, not at its next poll of the control queue (the queue is the fallback if the channel
ever closes while the engine runs). `RemoteEngine` alone (`attach`) never stops the engine, and reports it
gone when the state directory's lock is no longer held.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import queue
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omega_tui.config import Settings
from omega_tui.core.control import Answer, ChannelClient, ControlQueue, engine_running
from omega_tui.core.hot_state import SECTIONS, HotStateReader
from omega_tui.core.types import Command, CommandResult, Halt, Quote
from omega_tui.ui.client import EngineDescription, describe_settings
from omega_tui.ui.messages import EngineGone

if TYPE_CHECKING:
    from omega_tui.launcher import EngineProcess

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 10.0
STOP_JOIN_S = 0.5  # the poller wakes every flush period; a read stuck on SQLite longer than this is abandoned
HALT_POLL_S = 0.002
"""How often the kill switch's sender looks for the engine's answer (a small SQLite read in this process)."""
HOLD_FLUSHES = 2
"""A section taken from an answer stands until the engine has flushed this many times since: the second
flush after the answer was read began after the command acted, so it carries (at least) that state."""
HOLD_MAX_S = 2.0
"""...or for this long at most (an engine restarted meanwhile counts its flushes from 1 again)."""
LIVENESS_S = 0.5
"""How often an attached UI checks that the engine still holds its state directory."""
STARTED_STATES = frozenset({"RUNNING", "DEGRADED", "FAILED"})


class RemoteEngine:
    """An engine in another process, seen through its state directory.

    `since_ns`: present nothing flushed before this wall time (`time.time_ns()`), i.e. nothing a previous
    engine left on disk; until the engine has started every component, a section still equal to what was
    on disk before it is held back too (it may be the previous engine's, not yet republished).
    """

    # Quitting an attached UI stops only this poller, never the engine; the app reads this to bound its wait.
    stop_timeout_s = 1.0
    kind = "attached"

    def __init__(
        self, settings: Settings, *, since_ns: int | None = None, channel: ChannelClient | None = None
    ) -> None:
        self.settings = settings
        self.state_dir: Path = settings.state.dir
        self._reader = HotStateReader(self.state_dir)
        self._queue = ControlQueue(self.state_dir)
        self._channel = channel
        self._lock = threading.Lock()
        self._sections: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self._quotes: dict[str, Quote] = {}
        self._flush: Any = None
        self._holds: dict[str, tuple[int, float]] = {}  # section -> (flush seq to reach, monotonic deadline)
        self._since_ns = since_ns
        self._baseline: dict[str, Any] | None = None
        if since_ns is not None:
            self._baseline = {s: self._reader.get(s) for s in SECTIONS}
            self._baseline["quotes"] = self._reader.quotes()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="attach-cmd")
        # The kill switch's own sender: one thread for the UI's life with its SQLite connections already open
        # (diskcache opens one per thread: a thread started per key paid that, ~1-2 ms idle and far more
        # while the UI thread holds the GIL), never behind a slow command in the pool.
        self._halts: queue.SimpleQueue[_HaltSent | None] = queue.SimpleQueue()
        self._halt_thread = threading.Thread(target=self._send_halts, name="attach-halt", daemon=True)
        self._halt_thread.start()
        # As often as the UI draws, not as often as the engine flushes: each read of a new flush unpickles every
        # quote, and reads the UI never draws cost its process CPU and the GIL its other threads (the kill
        # switch's) need. The kill switch's own state comes with the engine's answer, not from here.
        self._period_s = max(settings.state.flush_ms / 1000.0, 1.0 / settings.ui.refresh_hz, 0.02)
        self._app: Any = None
        self._gone = False
        self._seen_running = False
        self._next_liveness = 0.0
        self.poll()

    def describe(self) -> EngineDescription:
        conn = self.read("connection") or {}
        if not conn:
            guess = describe_settings(self.settings, self.kind)
            return EngineDescription(guess.mode, guess.host, guess.port, self.kind)
        return EngineDescription(
            str(conn.get("mode") or "?"), str(conn.get("host") or "?"), int(conn.get("port") or 0), self.kind
        )

    def start(self, app: Any) -> None:
        self._app = app
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="attach-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling (the engine keeps running); waits briefly so the app can exit at once."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=STOP_JOIN_S)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set() and (self._thread is None or not self._thread.is_alive())

    @property
    def gone(self) -> bool:
        """True once the engine was found gone (its process ended)."""
        return self._gone

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._halts.put(None)
        self._halt_thread.join(timeout=STOP_JOIN_S)
        self._reader.close()
        self._queue.close()
        if self._channel is not None:
            self._channel.close()

    # ------------------------------------------------------------------ reads

    def read(self, section: str) -> Any:
        return self._sections.get(section)

    def version(self, section: str) -> int:
        return self._versions.get(section, 0)

    def quotes(self) -> Mapping[str, Quote]:
        return dict(self._quotes)

    def poll(self) -> None:
        """Refresh the snapshot from disk if the engine flushed since the last poll (the poller calls this)."""
        flush = self._reader.last_flush()
        if flush is None or flush == self._flush:
            return
        if self._since_ns is not None and flush[0] < self._since_ns:
            return  # a previous engine's last flush: nothing of this engine's yet
        values = {section: self._reader.get(section) for section in SECTIONS}
        quotes = self._reader.quotes()
        baseline = self._baseline
        if baseline is not None:
            components = values.get("components") or {}
            if components and all(c.get("state") in STARTED_STATES for c in components.values()):
                self._baseline = baseline = None  # every component has published: all of it is this engine's
        now = time.monotonic()
        with self._lock:
            self._flush = flush
            for section, value in values.items():
                hold = self._holds.get(section)
                if hold is not None:
                    if flush[1] < hold[0] and now < hold[1]:
                        continue  # the engine's answer carried a newer value than this flush
                    del self._holds[section]
                if baseline is not None and value == baseline.get(section) and section != "components":
                    continue
                self._apply(section, value)
            if baseline is None or quotes != baseline.get("quotes"):
                self._quotes = quotes

    def _apply(self, section: str, value: Any) -> None:
        old = self._sections.get(section)
        if value != old:
            self._sections[section] = _reuse_equal(old, value)
            self._versions[section] = self._versions.get(section, 0) + 1

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.poll()
            except Exception:  # a torn read while the engine writes: the next poll gets it
                pass
            if not self._gone and time.monotonic() >= self._next_liveness:
                self._next_liveness = time.monotonic() + LIVENESS_S
                self._check_alive()

    # ------------------------------------------------------------------ liveness

    def _alive(self) -> bool:
        return engine_running(self.state_dir) is not None

    def _check_alive(self) -> None:
        alive = self._alive()
        if alive:
            self._seen_running = True
        elif self._seen_running:
            self._report_gone(None, [f"the engine on {self.state_dir} is no longer running"])

    def _report_gone(self, code: int | None, lines: list[str]) -> None:
        if self._gone:
            return
        self._gone = True
        log.error("engine gone (exit %s): %s", code, "; ".join(lines))
        if self._app is not None:
            self._app.post_message(EngineGone(code, lines))

    # ------------------------------------------------------------------ commands

    def submit(self, command: Command) -> concurrent.futures.Future[CommandResult]:
        if not isinstance(command, Halt):
            return self._pool.submit(self._send, command)
        # The kill switch never waits for a pool worker busy with a slow command. On our own engine's channel
        # it is written from the calling thread (the terminal's input thread): no thread hop before the
        # engine has it; the sender thread only waits for the answer.
        # The answer is acted on by the channel's reader thread the moment it arrives (`_halt_answered`): no
        # second thread has to wake (and wait for the GIL behind a frame being drawn) before the banner's turn.
        halt = _HaltSent(command, concurrent.futures.Future())
        channel = self._channel
        if channel is not None and not channel.closed and self._alive():
            halt.sent = channel.send(command)
            channel.on_answer(halt.sent, functools.partial(self._halt_answered, halt))
        self._halts.put(halt)
        return halt.future

    def _halt_answered(self, halt: _HaltSent, answer: Answer) -> None:
        """On the channel's reader thread: present the answer's state and resolve the kill switch's future."""
        if self._closed_under_a_live_engine(answer):
            halt.fall_back = True
        else:
            self._take_state(answer)
            _resolve(halt.future, answer.result)
        halt.settled.set()

    def _closed_under_a_live_engine(self, answer: Answer) -> bool:
        """The channel's own "closed" answer while the engine still runs: the command goes by the control queue."""
        if not answer.channel_closed or not self._alive():
            return False
        log.error("the engine's direct command channel closed while it runs; using the control queue")
        return True

    def _send_halts(self) -> None:
        """The kill switch's sender thread: the control queue when there is no channel (or it closed), and the
        bound on the channel's answer otherwise."""
        try:
            self._queue.warm()
        except Exception:
            log.exception("could not open the control queue for the kill switch (it is retried on the key)")
        while True:
            halt = self._halts.get()
            if halt is None:
                return
            if halt.sent is not None:
                if not halt.settled.wait(ACK_TIMEOUT_S):
                    channel = self._channel
                    if channel is not None:
                        channel.forget(halt.sent)
                    _resolve(halt.future, _no_answer(halt.sent))
                    continue
                if not halt.fall_back:
                    continue
            try:
                _resolve(halt.future, self._send(halt.command, HALT_POLL_S))
            except BaseException as exc:
                if not halt.future.done():
                    halt.future.set_exception(exc)

    def _send(self, command: Command, poll_s: float | None = None) -> CommandResult:
        """Send `command` and wait for the answer: on our engine child's direct channel while it is open, else
        through the control queue."""
        answer: Answer | None = None
        channel = self._channel
        if not self._alive():
            return CommandResult("", False, f"no running engine on {self.state_dir}", datetime.now(UTC))
        if channel is not None and not channel.closed:
            command_id = channel.send(command)
            answer = channel.wait_answer(command_id, ACK_TIMEOUT_S)
            if answer is not None and self._closed_under_a_live_engine(answer):
                answer = None
            elif answer is None:
                return _no_answer(command_id)
        if answer is None:
            command_id = self._queue.send(command)
            answer = self._queue.wait_answer(command_id, ACK_TIMEOUT_S, poll_s or 0.005)
        if answer is None:
            return _no_answer(command_id)
        self._take_state(answer)
        return answer.result

    def _take_state(self, answer: Answer) -> None:
        """Present the sections the engine sent with its answer now; older flushes may not replace them."""
        if not answer.state:
            return
        flush = self._reader.last_flush()
        hold = ((flush[1] if flush else 0) + HOLD_FLUSHES, time.monotonic() + HOLD_MAX_S)
        with self._lock:
            for section, value in answer.state.items():
                if value is None:
                    continue
                self._apply(section, value)
                self._holds[section] = hold


def _no_answer(command_id: str) -> CommandResult:
    return CommandResult(command_id, False, f"the engine did not answer within {ACK_TIMEOUT_S:g} s", datetime.now(UTC))


_ITEM_KEYS = ("order_id", "key", "name")


def _item_key(index: int, item: Any) -> Any:
    if isinstance(item, dict):
        for name in _ITEM_KEYS:
            if name in item:
                return (name, item[name])
    return index


def _reuse_equal(old: Any, new: Any) -> Any:
    """`new`, with the items (of a list or dict) equal to the previous value's replaced by those same objects.

    Every read from disk unpickles new objects; panes cache what they drew by identity (an order's row, the
    selected order's detail, whose redraw re-lays out the screen), as an in-process engine's unchanged
    views allow. Done here, on the poller thread, so the UI thread redraws only what changed.
    """
    if isinstance(new, list) and isinstance(old, list):
        before = {_item_key(i, item): item for i, item in enumerate(old)}
        out = []
        for i, item in enumerate(new):
            prior = before.get(_item_key(i, item))
            out.append(prior if prior is not None and prior == item else item)
        return out
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: (old[k] if k in old and old[k] == v else v) for k, v in new.items()}
    return new


class SpawnedEngine(RemoteEngine):
    """`omega-tui`'s own engine: the child process the UI started; quitting the UI stops it."""

    kind = "local"

    def __init__(self, settings: Settings, process: EngineProcess) -> None:
        self.process = process
        channel = ChannelClient(process.channel) if process.channel is not None else None
        super().__init__(settings, since_ns=process.started_ns, channel=channel)
        self.stop_timeout_s = settings.ui.engine_stop_timeout_s
        self._monitor: threading.Thread | None = None

    def start(self, app: Any) -> None:
        super().start(app)
        if self._monitor is None:
            self._monitor = threading.Thread(target=self._watch, name="engine-monitor", daemon=True)
            self._monitor.start()

    def _watch(self) -> None:
        code = self.process.wait()
        self._report_gone(code, self.process.failure_lines())

    def stop(self) -> None:
        """Ask the engine to stop (SIGTERM: its shutdown policy runs); the app exits once it has."""
        self.process.terminate()

    @property
    def stopped(self) -> bool:
        return not self.process.running()

    def close(self) -> None:
        super().stop()
        super().close()

    def _alive(self) -> bool:
        return self.process.running()

    def _check_alive(self) -> None:
        pass  # the monitor thread waits on the process itself


class _HaltSent:
    """One kill-switch command on its way: written on the channel (`sent`, its id) or to be sent by the queue."""

    def __init__(self, command: Command, future: concurrent.futures.Future[CommandResult]) -> None:
        self.command = command
        self.future = future
        self.sent: str | None = None
        self.settled = threading.Event()  # the channel's answer was acted on, or the channel closed (`fall_back`)
        self.fall_back = False


def _resolve(future: concurrent.futures.Future[CommandResult], result: CommandResult) -> None:
    """Set `result` unless the future is done already (an answer and a timeout may race)."""
    try:
        future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
