"""The journal: an append-only JSON-lines audit log of every decision and transition.

One record per order intent, risk decision, submission, order state change, fill, commission, halt,
re-arm and connection event, so a session can be rebuilt and audited afterwards. Files rotate per UTC day:
`journal-YYYYMMDD.jsonl`.

Durability, in three levels:
- every record is written and flushed to the OS before `record` returns, so it survives a crash or a
  SIGKILL of the engine (the caller acts only after);
- kinds in `SYNC_KINDS` (halt, resume, trading-state changes, shutdown: rare, and the safety state an
  operator relies on) are also `fsync`ed before `record` returns, so they survive a power cut;
- kinds in `GROUP_SYNC_KINDS` (submissions, fills: the hot path) are `fsync`ed by a background thread that
  coalesces them, within `group_sync_ms`. An inline fsync costs milliseconds on an ordinary disk, far more
  than the whole tick-to-order budget; the price is that a power cut (not a crash) may lose the last few
  milliseconds of them, which recovery then takes from the broker's own executions and open orders.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, Any

import orjson

from omega_tui.core.clock import Clock

SYNC_KINDS = frozenset({"halt", "resume", "trading_state", "shutdown"})
GROUP_SYNC_KINDS = frozenset({"submit", "fill", "cancel_all", "flatten"})


def _default(value: object) -> object:
    # orjson handles str/int/float/bool/None, dict, list, tuple, datetime, enums and dataclasses itself.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"cannot journal a {type(value).__name__}")


_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS


class Journal:
    """Append-only JSON lines under `<state.dir>/journal/`."""

    def __init__(self, directory: Path, clock: Clock, *, fsync: bool = True, group_sync_ms: float = 5.0) -> None:
        self.directory = Path(directory) / "journal"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._fsync = fsync
        self._file: IO[bytes] | None = None
        self._day: date | None = None
        self.seq = 0
        self.group_syncs = 0
        self._group_period_s = group_sync_ms / 1000.0
        self._sync_needed = threading.Event()
        self._closing = threading.Event()
        self._sync_lock = threading.Lock()  # fsync vs. close/rotate of the same descriptor
        self._syncer: threading.Thread | None = None

    def _open_for(self, now: datetime) -> IO[bytes]:
        day = now.date()
        if self._file is None or day != self._day:
            if self._file is not None:
                with self._sync_lock:
                    self._file.flush()
                    if self._fsync:
                        os.fsync(self._file.fileno())
                    self._file.close()
            self._day = day
            self._file = open(self.directory / f"journal-{day:%Y%m%d}.jsonl", "ab")
        return self._file

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one record and flush it; returns the record as written."""
        now = self._clock.now_utc()
        self.seq += 1
        rec: dict[str, Any] = {"ts": now.isoformat(), "mono_ns": self._clock.monotonic_ns(), "kind": kind}
        rec.update(fields)
        line = orjson.dumps(rec, default=_default, option=_DUMPS_OPTIONS | orjson.OPT_APPEND_NEWLINE)
        f = self._open_for(now)
        f.write(line)
        f.flush()
        if self._fsync:
            if kind in SYNC_KINDS:
                os.fsync(f.fileno())
            elif kind in GROUP_SYNC_KINDS:
                self._request_group_sync()
        return rec

    def _request_group_sync(self) -> None:
        if self._syncer is None:
            self._closing.clear()
            self._syncer = threading.Thread(target=self._run_syncer, name="journal-fsync", daemon=True)
            self._syncer.start()
        self._sync_needed.set()

    def _run_syncer(self) -> None:
        while not self._closing.is_set():
            self._sync_needed.wait()
            if self._closing.is_set():
                break
            self._closing.wait(self._group_period_s)  # let a burst of records share one fsync
            self._sync_needed.clear()
            self.sync()

    def sync(self) -> None:
        """fsync what has been written so far (the group-commit thread calls this)."""
        with self._sync_lock:
            f = self._file
            if f is None:
                return
            try:
                os.fsync(f.fileno())
                self.group_syncs += 1
            except (OSError, ValueError):  # closed under us by a day rotation: it was synced there
                return

    def close(self) -> None:
        self._closing.set()
        self._sync_needed.set()
        if self._syncer is not None:
            self._syncer.join(timeout=5)
            self._syncer = None
        if self._file is not None:
            with self._sync_lock:
                self._file.flush()
                if self._fsync:
                    os.fsync(self._file.fileno())
                self._file.close()
                self._file = None

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("journal-*.jsonl"))

    def read(self, since_day: str = "") -> Iterator[dict[str, Any]]:
        """Every record, oldest first; a torn last line (crash mid-write) is skipped, not fatal."""
        for path in self.files():
            if since_day and path.stem.removeprefix("journal-") < since_day:
                continue
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue
