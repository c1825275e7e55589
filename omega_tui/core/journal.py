"""The journal: an append-only JSON-lines audit log of every decision and transition.

One record per order intent, risk decision, submission, order state change, fill, commission, halt,
re-arm and connection event, so a session can be rebuilt and audited afterwards. Files rotate per UTC day:
`journal-YYYYMMDD.jsonl`.

Who writes. `record` numbers and serialises the record (orjson) on the caller's thread (the core loop) and,
for every kind but `SYNC_KINDS` and `WRITE_KINDS`, appends the bytes to an in-memory queue and returns at
once: no file I/O on the loop. A writer thread writes the queue to the file in `seq` order, in batches,
flushes them to the OS (`written_seq`) and, when the batch holds a kind of `GROUP_SYNC_KINDS` (submissions,
fills, cancel-all, flatten) or someone waits for durability, fsyncs them (`durable_seq`): a group commit. The
writer is woken after the step that queued the records (`call_soon`, so the thread switch never falls between
a bracket's legs). Why: a write to a page under writeback waits for it (ext4 stable pages), so an append on
the loop while the group commit's fsync runs took 1-4 ms, twenty times the intent-to-wire budget (200 us).

`SYNC_KINDS` (shutdown) are written and fsynced inline before `record` returns, after the queue ahead of
them is written, so the file's order is always `seq` order. `WRITE_KINDS` (halt, resume, trading-state
changes: rare, and the story an operator relies on) are written inline the same way, before `record`
returns (a crash of this process cannot lose them), and fsynced by the writer's group commit right after:
the state they record is durable already, in the hot state's latch store (the halt latch, fsynced before
the halt cancels anything), and a second fsync inline would sit in front of the kill switch's answer.
`flush()`, `read()`, a day rotation and `close()` write the queue first too: whatever reads the journal
(replay, the validation runner, tests) sees every record recorded before.

Durability. The rule is "written before the action it records is acknowledged":

- the order manager does not act on any broker event about an order (openOrder, orderStatus, an execution
  before any acknowledgement, an error) while the "submit" record of that order is not durable (it records
  it right after the bracket's transmitting leg is sent, in the same step of the loop, so an event arriving
  within `place_order` finds it not even recorded yet, and waits the same way): it holds
  the event, asks `when_durable(seq, callback)`, and processes the held events of that order, in arrival
  order and ahead of any that arrive meanwhile, once the writer reports the record fsynced (the callback
  comes through `loop.call_soon_threadsafe`; the loop never blocks). Against IB, whose acknowledgements take
  milliseconds, the record is durable long before and nothing is held; the simulated gateway can answer
  within the group commit. `wait_durable(seq)` (fsync inline) remains for callers without a loop;
- `SYNC_KINDS` survive a power cut once `record` returns; `WRITE_KINDS` survive a crash of the process once
  `record` returns, and a power cut a group commit later;
- every other record reaches the file within the writer's next batch (microseconds to a few ms later).

The trade-off, in one place: a SIGKILL or power cut between `record` and the writer's write loses the
records still queued (a window of a few hundred microseconds, longer while an fsync is in flight). For a
"submit" this means an order may have reached the broker with no record of it: the broker had not
acknowledged it, or had but we had not acted on it (events are held until the record is durable). Recovery
(`OrderManager.recover`) then finds the order among the broker's open orders or the day's executions,
adopts it, and its `orderRef` ("intent:role") still links it to its intent. A lost "fill" comes back the
same way from the broker's executions of the day, a lost "order_state" from its open orders; a lost
"cancel" or "modify" was sent to a broker that then reports the order's true state at reconciliation.
What cannot happen is the engine acting on an acknowledgement of an order (a fill moving a position, a
protective resize, a state the operator sees) that a restart could not explain from the journal or the
broker. Why not fsync (or even write) a submission inline before the send: an fsync costs 0.1-10 ms, a
write behind one up to 4 ms, and neither buys anything the broker cannot give back. The file is appended
in order, so an fsync covers every earlier record, and a torn tail after a crash is always a suffix of the
day, never a hole.

If the writer cannot write (disk full, I/O error), it logs, keeps the records queued and retries; records
that never become durable keep their orders' events held, which is the safe side.

Deferred serialisation. `record_soon(kind, build)` is `record` for a record nothing needs numbered at once
(a fill: its position and P&L, the bus and the risk engine come first): it keeps the time (`monotonic_ns`; the
UTC stamp is derived from it when the record is built, `now_utc() - (monotonic_ns() - then)`, so the call
reads one clock, not two) and a function that builds the fields, and numbers and serialises them in a loop
callback after the current step (`_end_step`, scheduled as `call_soon` would), i.e. before the loop handles
any further I/O. Durability is
unchanged: the writer is only ever woken after the step that queued a record (above), so a record never
reached the file sooner. The file stays in `seq` order and in the order things happened: `record` (and
everything that writes, reads or waits: `flush`, `sync`, `read`, `when_durable`, `wait_durable`, `close`,
`drain`) first numbers the deferred ones. `seq` does not count a deferred record until then; `drain()` numbers
them now and returns `seq`. Without a running loop, `record_soon` records at once.

`after_step(callback)` runs other work that can wait for the end of the step (the order manager's views) in
that same loop callback, after the deferred records: a fill schedules ONE callback, not one per kind of
deferred work (each `call_soon` is five Python calls and a Handle, on the path a fill must get through).

`record` is called from one thread (the core loop); the queue is a deque (append and popleft are atomic).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, is_dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, Any

import orjson

from omega_tui.core.clock import Clock

log = logging.getLogger(__name__)

SYNC_KINDS = frozenset({"shutdown"})
WRITE_KINDS = frozenset({"halt", "resume", "trading_state"})
GROUP_SYNC_KINDS = frozenset({"submit", "fill", "cancel_all", "flatten"})
_INLINE_KINDS = SYNC_KINDS | WRITE_KINDS  # never deferred by `record_soon`
WRITE_RETRY_S = 0.1


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


_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_APPEND_NEWLINE

DurableCallback = Callable[[], None]
FieldsBuilder = Callable[..., dict[str, Any]]


class Journal:
    """Append-only JSON lines under `<state.dir>/journal/`, written by a background writer (see above)."""

    def __init__(self, directory: Path, clock: Clock, *, fsync: bool = True, group_sync_ms: float = 0.0) -> None:
        self.directory = Path(directory) / "journal"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._fsync = fsync
        self._file: IO[bytes] | None = None
        self._day: date | None = None
        self.seq = 0  # records numbered (recorded); the last one's number
        self.written_seq = 0  # records written and flushed to the OS (always a prefix of `seq`)
        self.durable_seq = 0  # records known fsynced (all recorded ones when fsync is off)
        self.group_syncs = 0
        self.inline_waits = 0  # `wait_durable` calls that had to write and fsync themselves
        self.write_errors = 0
        self._group_period_s = group_sync_ms / 1000.0  # extra coalescing delay; 0: write as soon as woken
        # (seq, day, line): recorded, not yet written. Appended by the loop, popped under `_io_lock`.
        self._pending: deque[tuple[int, date, bytes]] = deque()
        self._sync_upto = 0  # highest seq someone needs fsynced (a GROUP_SYNC kind, a waiter)
        self._io_lock = threading.Lock()  # the file: writes, fsync, rotation, close
        self._waiters_lock = threading.Lock()
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, DurableCallback]] = []
        self._work = threading.Event()
        self._wake_loop: asyncio.AbstractEventLoop | None = None  # a wake is posted on this loop
        self._closing = False
        self._writer: threading.Thread | None = None
        # record_soon: (kind, fields builder, its arguments, monotonic_ns), numbered by `drain` (loop thread only);
        # `after_step` callbacks; the loop whose end-of-step callback (`_end_step`) is scheduled, if any.
        self._deferred: list[tuple[str, FieldsBuilder, tuple[Any, ...], int]] = []
        self._after: list[Callable[[], None]] = []
        self._step_loop: asyncio.AbstractEventLoop | None = None
        # `_schedule_end_step`: the loop it last scheduled on, the reused Handle and the append of that loop's
        # ready queue.
        self._ready_loop: asyncio.AbstractEventLoop | None = None
        self._ready_handle: asyncio.Handle | None = None
        self._ready_append: Callable[[asyncio.Handle | None], None] | None = None

    # ------------------------------------------------------------------ recording (the loop)

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Number and serialise one record; queue it for the writer (or, for `SYNC_KINDS`, write and fsync it
        now; for `WRITE_KINDS`, write it now). Returns the record; `self.seq` is its number right after the call."""
        if self._deferred:
            self.drain()
        return self._record(kind, fields, self._clock.now_utc(), self._clock.monotonic_ns())

    def record_soon(self, kind: str, build: FieldsBuilder, *args: Any) -> None:
        """Record `kind` with the fields `build(*args)` returns, numbered and serialised after this step of the
        loop (see "Deferred serialisation" above), stamped with the time of this call. `build` must not depend
        on state that changes meanwhile (pass it immutable data; `args` spare the caller a closure)."""
        loop = asyncio._get_running_loop()
        if loop is None or kind in _INLINE_KINDS or self._closing:
            self.record(kind, **build(*args))
            return
        if self._step_loop is not loop:
            if self._ready_loop is loop and self._ready_append is not None:  # (`_schedule_end_step`'s usual case)
                self._step_loop = loop
                self._ready_append(self._ready_handle)
            else:
                self._schedule_end_step(loop)
        self._deferred.append((kind, build, args, self._clock.monotonic_ns()))

    def after_step(self, callback: Callable[[], None]) -> bool:
        """Run `callback` once after this step of the loop, in the one callback that serialises the deferred
        records (after them; callbacks in the order given). False, and nothing scheduled, without a running
        loop. A callback that raises is logged; the others still run."""
        loop = asyncio._get_running_loop()
        if loop is None:
            return False
        if self._step_loop is not loop:
            self._schedule_end_step(loop)
        self._after.append(callback)
        return True

    def _schedule_end_step(self, loop: asyncio.AbstractEventLoop) -> None:
        """`loop.call_soon(self._end_step)`, cheaper. It is scheduled at most once at a time (`_step_loop` says
        on which loop until it runs), so one Handle per loop serves every step: on asyncio's own loops (not in
        debug mode) it is appended to the loop's ready queue (`BaseEventLoop._ready`, a deque: a private name,
        unchanged since asyncio's first release), exactly where `call_soon` would put a new one. `call_soon`
        is five Python calls, a Handle and a context copy: ~4.8k instructions, 15% of a fill's whole window
        (on_execution + day_pnl under callgrind). Any other loop (no deque `_ready`, debug mode) gets
        `call_soon`."""
        self._step_loop = loop
        if self._ready_loop is not loop:
            self._ready_loop = loop
            ready = getattr(loop, "_ready", None)
            if isinstance(loop, asyncio.BaseEventLoop) and isinstance(ready, deque) and not loop.get_debug():
                self._ready_handle = asyncio.Handle(self._end_step, (), loop)
                self._ready_append = ready.append
            else:
                self._ready_handle = self._ready_append = None
        if self._ready_append is not None:
            self._ready_append(self._ready_handle)
        else:
            loop.call_soon(self._end_step)

    def _end_step(self) -> None:
        self._step_loop = None
        if self._deferred:
            self.drain()
        while self._after:
            callbacks, self._after = self._after, []
            for callback in callbacks:
                try:
                    callback()
                except Exception:
                    log.exception("journal: an after-step callback failed")

    def drain(self) -> int:
        """Number and serialise the records `record_soon` deferred (in order); returns `seq`."""
        clock = self._clock
        while self._deferred:
            batch, self._deferred = self._deferred, []
            now, now_ns = clock.now_utc(), clock.monotonic_ns()
            for kind, build, args, mono_ns in batch:
                try:
                    fields = build(*args)
                except Exception:  # a bug in one builder must not lose the records behind it
                    log.exception("journal: cannot build a deferred %s record", kind)
                    fields = {"error": "fields could not be built"}
                at = now - timedelta(microseconds=(now_ns - mono_ns) // 1000) if now_ns != mono_ns else now
                self._record(kind, fields, at, mono_ns)
        return self.seq

    def _record(self, kind: str, fields: dict[str, Any], now: datetime, mono_ns: int) -> dict[str, Any]:
        rec: dict[str, Any] = {"ts": now.isoformat(), "mono_ns": mono_ns, "kind": kind}
        rec.update(fields)
        line = orjson.dumps(rec, default=_default, option=_DUMPS_OPTIONS)
        self.seq = seq = self.seq + 1
        inline_sync = kind in SYNC_KINDS or self._closing
        if inline_sync or kind in WRITE_KINDS:
            with self._io_lock:
                self._write_pending_locked()
                self._write_locked(now.date(), line)
                self.written_seq = seq
                if self._fsync and inline_sync:
                    self._fsync_locked()
            if not self._fsync:
                self.durable_seq = seq
            elif not inline_sync:
                self._sync_upto = seq  # the group commit fsyncs it
                self._wake_writer_soon()
            self._notify_waiters()
            return rec
        self._pending.append((seq, now.date(), line))
        if not self._fsync:
            self.durable_seq = seq  # nothing is promised beyond the writer's write
        elif kind in GROUP_SYNC_KINDS:
            self._sync_upto = seq
        self._wake_writer_soon()
        return rec

    def _wake_writer_soon(self) -> None:
        loop = asyncio._get_running_loop()
        if loop is None:
            self._wake_writer()
        elif self._wake_loop is not loop:  # one wake per loop turn, posted on the loop running now
            self._wake_loop = loop
            loop.call_soon(self._wake_writer)

    def _wake_writer(self) -> None:
        self._wake_loop = None
        if self._closing:
            return  # closed: records are written inline
        if self._writer is None:
            self._writer = threading.Thread(target=self._run_writer, name="journal-writer", daemon=True)
            self._writer.start()
        self._work.set()

    # ------------------------------------------------------------------ durability

    def when_durable(self, seq: int, callback: DurableCallback) -> bool:
        """True if record `seq` is durable now (the callback is not called). Otherwise False, and `callback`
        runs on the running loop (`call_soon_threadsafe`) once the writer has fsynced `seq`. Without a running
        loop this waits inline (`wait_durable`) and returns True."""
        if self._deferred:
            self.drain()
        if seq <= self.durable_seq:
            return True
        loop = asyncio._get_running_loop()
        if loop is None:
            self.wait_durable(seq)
            return True
        with self._waiters_lock:
            self._waiters.append((seq, loop, callback))
        if seq <= self.durable_seq:  # the writer got there between the check and the registration
            self._notify_waiters()
        if self._sync_upto < seq:
            self._sync_upto = seq
        self._wake_writer_soon()
        return False

    def wait_durable(self, seq: int) -> None:
        """Return once record `seq` (and every earlier one) is fsynced: at once if it is, else write and fsync
        now on this thread (blocking: for callers without a loop; the order manager uses `when_durable`)."""
        if self._deferred:
            self.drain()
        if seq <= self.durable_seq:
            return
        self.inline_waits += 1
        self.sync()

    def sync(self) -> None:
        """Write the queue and fsync it now, on this thread."""
        if self._deferred:
            self.drain()
        with self._io_lock:
            self._write_pending_locked()
            if self._fsync:
                self._fsync_locked()
        self._notify_waiters()

    def flush(self) -> None:
        """Write the queue to the file now (no fsync), on this thread: a reader then sees every record."""
        if self._deferred:
            self.drain()
        with self._io_lock:
            self._write_pending_locked()

    def _notify_waiters(self) -> None:
        durable = self.durable_seq
        with self._waiters_lock:
            if not self._waiters:
                return
            ready = [w for w in self._waiters if w[0] <= durable]
            if not ready:
                return
            self._waiters = [w for w in self._waiters if w[0] > durable]
        ready.sort(key=lambda w: w[0])
        for _seq, loop, callback in ready:
            try:
                loop.call_soon_threadsafe(callback)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    # ------------------------------------------------------------------ the writer thread

    def _run_writer(self) -> None:
        while True:
            self._work.wait()
            if self._group_period_s and not self._closing:
                time.sleep(self._group_period_s)  # let a burst of records share one fsync
            self._work.clear()
            try:
                with self._io_lock:
                    self._write_pending_locked()
                    if self._fsync and self._sync_upto > self.durable_seq and self.written_seq > self.durable_seq:
                        self._fsync_locked()
            except Exception:  # (OSError mostly): the thread must survive it, the records stay queued
                self.write_errors += 1
                log.exception("journal writer: cannot write %s; retrying", self.directory)
                self._work.set()
                time.sleep(WRITE_RETRY_S)
                continue
            self._notify_waiters()
            if self._closing and not self._pending:
                return

    def _write_pending_locked(self) -> None:
        """Write every queued record, in order, one write per day's run of lines (caller holds `_io_lock`)."""
        pending = self._pending
        if not pending:
            return
        batch: list[tuple[int, date, bytes]] = []
        while pending:
            batch.append(pending.popleft())
        start = 0
        try:
            while start < len(batch):
                day = batch[start][1]
                end = start + 1
                while end < len(batch) and batch[end][1] == day:
                    end += 1
                self._write_locked(day, b"".join(item[2] for item in batch[start:end]))
                self.written_seq = batch[end - 1][0]
                start = end
        except BaseException:
            pending.extendleft(reversed(batch[start:]))  # not written: keep them first in line
            raise

    def _write_locked(self, day: date, data: bytes) -> None:
        f = self._file
        if f is None or day != self._day:
            if f is not None:  # day rotation: the old file is complete and durable before it is left
                f.flush()
                if self._fsync:
                    os.fsync(f.fileno())
                    self.durable_seq = max(self.durable_seq, self.written_seq)
                f.close()
                self._file = None
            self._day = day
            f = self._file = open(self.directory / f"journal-{day:%Y%m%d}.jsonl", "ab")
        f.write(data)
        f.flush()

    def _fsync_locked(self) -> None:
        f = self._file
        written = self.written_seq
        if f is None or written <= self.durable_seq:
            return
        os.fsync(f.fileno())
        self.group_syncs += 1
        self.durable_seq = max(self.durable_seq, written)

    # ------------------------------------------------------------------ closing and reading

    def close(self) -> None:
        """Write and fsync everything queued, stop the writer, close the file. Recording after `close`
        writes inline (a late shutdown record still lands)."""
        if self._deferred:
            self.drain()
        self._closing = True
        writer = self._writer
        if writer is not None:
            self._work.set()
            writer.join(timeout=5)
            self._writer = None
        with self._io_lock:
            self._write_pending_locked()
            if self._file is not None:
                self._file.flush()
                if self._fsync:
                    os.fsync(self._file.fileno())
                self._file.close()
                self._file = None
            self.durable_seq = max(self.durable_seq, self.written_seq)
        self._notify_waiters()

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("journal-*.jsonl"))

    def read(self, since_day: str = "") -> Iterator[dict[str, Any]]:
        """Every record, oldest first (the queue is written first); a torn last line (crash mid-write) is
        skipped, not fatal."""
        self.flush()
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
