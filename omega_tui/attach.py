"""`omega-tui attach`: the full workstation UI over an engine running in another process.

`RemoteEngine` implements the UI's `EngineClient` protocol over the engine's state directory: a poller
thread reads the diskcache hot state every `state.flush_ms` into an in-memory snapshot (so the UI thread
never waits on SQLite), and commands go through the control queue; the kill switch therefore works from
an attached UI exactly as from the engine's own.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omega_tui.config import Settings
from omega_tui.core.control import ControlQueue, engine_running
from omega_tui.core.hot_state import SECTIONS, HotStateReader
from omega_tui.core.types import Command, CommandResult, Quote
from omega_tui.ui.client import EngineDescription

ACK_TIMEOUT_S = 10.0
STOP_JOIN_S = 0.5  # the poller wakes every flush period; a read stuck on SQLite longer than this is abandoned


class RemoteEngine:
    """An engine in another process, seen through its state directory."""

    # Quitting an attached UI stops only this poller, never the engine; the app reads this to bound its wait.
    stop_timeout_s = 1.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir: Path = settings.state.dir
        self._reader = HotStateReader(self.state_dir)
        self._queue = ControlQueue(self.state_dir)
        self._sections: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self._quotes: dict[str, Quote] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="attach-cmd")
        self._period_s = max(settings.state.flush_ms / 1000.0, 0.02)
        self.poll()

    def describe(self) -> EngineDescription:
        conn = self._sections.get("connection") or {}
        return EngineDescription(
            str(conn.get("mode") or "?"), str(conn.get("host") or "?"), int(conn.get("port") or 0), "attached"
        )

    def start(self, app: Any) -> None:
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

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._reader.close()
        self._queue.close()

    # ------------------------------------------------------------------ reads

    def read(self, section: str) -> Any:
        return self._sections.get(section)

    def version(self, section: str) -> int:
        return self._versions.get(section, 0)

    def quotes(self) -> Mapping[str, Quote]:
        return dict(self._quotes)

    def poll(self) -> None:
        """Refresh the snapshot from disk once (the poller thread calls this every flush period)."""
        for section in (*SECTIONS, "components"):
            value = self._reader.get(section)
            if value != self._sections.get(section):
                self._sections[section] = value
                self._versions[section] = self._versions.get(section, 0) + 1
        self._quotes = self._reader.quotes()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.poll()
            except Exception:  # a torn read while the engine writes: the next poll gets it
                continue

    # ------------------------------------------------------------------ commands

    def submit(self, command: Command) -> concurrent.futures.Future[CommandResult]:
        return self._pool.submit(self._send, command)

    def _send(self, command: Command) -> CommandResult:
        if engine_running(self.state_dir) is None:
            return CommandResult("", False, f"no running engine on {self.state_dir}", datetime.now(UTC))
        command_id = self._queue.send(command)
        result = self._queue.wait_result(command_id, ACK_TIMEOUT_S)
        if result is None:
            return CommandResult(
                command_id, False, f"the engine did not answer within {ACK_TIMEOUT_S:g} s", datetime.now(UTC)
            )
        return result
