"""The journal: an append-only JSON-lines audit log of every decision and transition.

One record per order intent, risk decision, submission, order state change, fill, commission, halt,
re-arm and connection event, so a session can be rebuilt and audited afterwards. Files rotate per UTC day:
`journal-YYYYMMDD.jsonl`.

Durability. The rule is "written before the action it records is acknowledged"; three levels meet it:

- every record is written and flushed to the OS before `record` returns, so it survives a crash or a
  SIGKILL of the engine (the caller acts only after: the order manager journals a bracket's "submit" before
  its first byte goes to the broker, a fill before the position moves);
- kinds in `SYNC_KINDS` (halt, resume, trading-state changes, shutdown: rare, and the safety state an
  operator relies on) are also `fsync`ed before `record` returns, so they survive a power cut;
- kinds in `GROUP_SYNC_KINDS` (submissions, fills, cancel-all, flatten: the hot path) are `fsync`ed by a
  group commit on a background thread, and the order manager calls `wait_durable(seq)` before it processes
  the broker's first acknowledgement of an order (openOrder / orderStatus), so no acknowledgement is acted
  on while the record of what it acknowledges could still be lost.

Why not fsync a submission inline before the send: an fsync costs 0.1-10 ms on an ordinary disk, 10-100
times the whole intent-to-wire budget (200 us), and it buys nothing the broker cannot give back. Until the
broker acknowledges an order, a power cut that loses its "submit" record also loses the engine: recovery
then finds the order (if IB ever received it) among the broker's open orders and executions, adopts it, and
its `orderRef` ("intent:role") still links it to the intent. What must not happen is the engine acting on an
acknowledgement (a fill moving a position, a protective resize, a state the operator sees) that a restart
would not be able to explain from the journal; the group commit completing before the acknowledgement is
processed rules that out. The file is appended in order, so an fsync covers every earlier record, and a
torn tail after a power cut is always a suffix of the day, never a hole.

The group commit starts right after the step that wrote the record (the wake is posted with `call_soon`,
so the thread switch happens after the bracket is on the wire, not between its legs); records written while
an fsync is in flight share the next one. On the simulated gateway the acknowledgement can come back within
a millisecond, before the disk finishes; `wait_durable` then fsyncs inline (or waits for the fsync in flight)
off the submission path. Against IB, whose acknowledgements take milliseconds, it returns at once.
"""

from __future__ import annotations

import asyncio
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

    def __init__(self, directory: Path, clock: Clock, *, fsync: bool = True, group_sync_ms: float = 0.0) -> None:
        self.directory = Path(directory) / "journal"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._fsync = fsync
        self._file: IO[bytes] | None = None
        self._day: date | None = None
        self.seq = 0  # records written (and flushed to the OS)
        self.durable_seq = 0  # records known fsynced (all of them when fsync is off)
        self.group_syncs = 0
        self.inline_waits = 0  # `wait_durable` calls that had to fsync (or wait for one) themselves
        self._group_period_s = group_sync_ms / 1000.0  # extra coalescing delay; 0: sync as soon as woken
        self._sync_needed = threading.Event()
        self._wake_loop: asyncio.AbstractEventLoop | None = None  # a wake is posted on this loop
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
                    self.durable_seq = self.seq
            self._day = day
            self._file = open(self.directory / f"journal-{day:%Y%m%d}.jsonl", "ab")
        return self._file

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one record and flush it; returns the record as written (`seq` is its number)."""
        now = self._clock.now_utc()
        rec: dict[str, Any] = {"ts": now.isoformat(), "mono_ns": self._clock.monotonic_ns(), "kind": kind}
        rec.update(fields)
        line = orjson.dumps(rec, default=_default, option=_DUMPS_OPTIONS | orjson.OPT_APPEND_NEWLINE)
        f = self._open_for(now)
        f.write(line)
        f.flush()
        self.seq += 1  # counted once flushed: the syncer's fsync after reading `seq` covers it
        if not self._fsync:
            self.durable_seq = self.seq
        elif kind in SYNC_KINDS:
            with self._sync_lock:
                seq = self.seq
                os.fsync(f.fileno())
                self.durable_seq = max(self.durable_seq, seq)
        elif kind in GROUP_SYNC_KINDS:
            loop = asyncio._get_running_loop()
            if loop is None:
                self._request_group_sync()
            elif self._wake_loop is not loop:  # one wake per loop turn, posted on the loop running now
                self._wake_loop = loop
                loop.call_soon(self._request_group_sync)
        return rec

    def wait_durable(self, seq: int) -> None:
        """Return once record `seq` (and every earlier one) is fsynced: at once if it is, else fsync now."""
        if seq <= self.durable_seq:
            return
        self.inline_waits += 1
        self.sync()

    def _request_group_sync(self) -> None:
        self._wake_loop = None
        if self.durable_seq >= self.seq:
            return  # an inline sync got there first
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
            if self._group_period_s:
                self._closing.wait(self._group_period_s)  # let a burst of records share one fsync
            self._sync_needed.clear()
            self.sync()

    def sync(self) -> None:
        """fsync what has been written so far (the group commit and `wait_durable` call this)."""
        with self._sync_lock:
            f = self._file
            seq = self.seq
            if f is None or seq <= self.durable_seq:
                return
            try:
                os.fsync(f.fileno())
            except (OSError, ValueError):  # closed under us by a day rotation: it was synced there
                return
            self.group_syncs += 1
            self.durable_seq = max(self.durable_seq, seq)

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
                self.durable_seq = self.seq

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
