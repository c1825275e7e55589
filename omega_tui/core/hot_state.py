"""The hot state: the latest value of everything, in memory, written behind to diskcache.

Hot-path reads and writes touch only Python dicts (no lock on reads or quote writes, a short uncontended
lock on section writes); a writer thread flushes what changed to diskcache every `state.flush_ms` in one
SQLite transaction, so other processes on the machine (`omega-tui status`, `attach`) see values at most
that old (plus the flush itself). All quotes go in one key, so a flush costs the same few SQLite
statements however many instruments ticked: each statement hands the GIL back and forth with the core
loop, which under a tick storm costs far more than pickling a few more quotes. Safety state (the halt
latch, the risk day) goes through `write_through`, which returns only once the value is on disk.

Key layout in the diskcache directory `<state.dir>/hot`:

    quotes               dict[str, Quote] latest normalized quote per instrument
    section:<name>       any picklable    one value per section, see SECTIONS
    meta:flush           (wall_ns, seq)   when the writer last flushed, for lag measurement
    meta:engine          dict             pid, host, start time, state dir of the running engine

and, written only by `write_through`, in the diskcache directories `<state.dir>/latch` (each write fsynced,
SQLite `synchronous=FULL`, before it returns: it survives a power cut) and `<state.dir>/safety` (written to
the OS before it returns, as `hot` is: it survives a crash of this process):

    latch:  halt         dict             the halt latch (`FSYNCED_SAFETY`)
    safety: risk_day     dict             the trading day's counters (written on fills that moved realised
                                          P&L, on the loop: no fsync there)

The safety values have databases of their own so that writing one never waits for the writer thread's
flush: a flush holds SQLite's write lock for its transaction, and a write that meets the lock sleeps in
SQLite's busy handler (1, 2, 5, 10 ms…), which put milliseconds of sleep on the kill switch's path. Earlier
versions kept them in `hot` as `safety:<name>`; a value found there is moved to its store when the engine's
hot state opens (see `_migrate_safety`), and readers fall back to it.

Values are pickled dataclasses from `omega_tui.core.types` or plain dicts/lists, so a reader needs only
`omega_tui.core`, never Textual.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import diskcache

from omega_tui.core.types import Quote

log = logging.getLogger(__name__)

FSYNCED_SAFETY = frozenset({"halt"})
"""Safety values kept in the `latch` store, whose every write is fsynced (SQLite synchronous=FULL)."""
FULL = 2
LEGACY_SAFETY_PREFIX = "safety:"
"""Where versions before the `safety` and `latch` stores kept safety values, in the `hot` database."""
_MISSING = object()


def _safety_store(name: str, latch: diskcache.Cache, safety: diskcache.Cache) -> diskcache.Cache:
    """Which store keeps the safety value `name` (see the module docstring)."""
    return latch if name in FSYNCED_SAFETY else safety


# Shapes of each section: omega_tui.core.views.
SECTIONS = (
    "connection",  # dict: state, detail, host, port, mode, since_utc
    "components",  # dict name -> (state, detail)
    "startup_report",  # list of dicts: instrument, con_id, min_tick, exchange, permission_ok, detail
    "orders",  # list of order views (dicts) for the UI and status
    "positions",  # dict key -> position view (dict)
    "pnl",  # dict: realized, unrealized, commissions, total, broker_* and agree flag
    "risk",  # dict: trading_state, reason, source, since_utc, limits used
    "scheduler",  # dict: per-model metrics, abstain rate, tick->decision latency
    "metrics",  # dict: counters (normalizer drops, bus errors, ...)
    "events",  # list: recent event log lines for the UI (bounded)
    "params",  # dict: versioned parameters published by background AI tasks
    "latency",  # LatencyView: order callback latencies
)


class HotState:
    """In-memory latest values with a write-behind copy in diskcache."""

    def __init__(self, directory: Path, flush_ms: int = 20) -> None:
        self.directory = Path(directory)
        self.flush_s = flush_ms / 1000.0
        self._cache = diskcache.Cache(str(self.directory / "hot"), eviction_policy="none", timeout=5)
        self._safety = diskcache.Cache(str(self.directory / "safety"), eviction_policy="none", timeout=5)
        # synchronous=FULL: each write is fsynced (the WAL) before it returns, so a latched halt survives a power
        # cut too, not only a crash of this process (NORMAL, as `hot` and `safety`, skips that fsync).
        self._latch = diskcache.Cache(
            str(self.directory / "latch"), eviction_policy="none", timeout=5, sqlite_synchronous=FULL
        )
        self._migrate_safety()
        self._quotes: dict[str, Quote] = {}
        self._sections: dict[str, Any] = {}
        self._versions: dict[str, int] = {}
        self._dirty: dict[str, Any] = {}
        self._quotes_dirty = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._flush_seq = 0
        self.flush_errors = 0

    # ------------------------------------------------------------------ hot path (core loop)

    def put_quote(self, quote: Quote) -> None:
        # No lock: a dict store and a flag are atomic under the GIL, and the writer copies the dict.
        self._quotes[quote.key] = quote
        self._quotes_dirty = True

    def quote(self, key: str) -> Quote | None:
        return self._quotes.get(key)

    def quotes(self) -> MappingProxyType[str, Quote]:
        """A read-only live view; copy it (`dict(...)`) to keep a consistent snapshot."""
        return MappingProxyType(self._quotes)

    def set(self, section: str, value: Any) -> None:
        """Replace a section's value. Values must be treated as immutable once published."""
        self._sections[section] = value
        self._versions[section] = self._versions.get(section, 0) + 1
        with self._lock:
            self._dirty["section:" + section] = value

    def get(self, section: str, default: Any = None) -> Any:
        return self._sections.get(section, default)

    def version(self, section: str) -> int:
        """Bumped on every `set`, so a reader can skip redrawing what did not change."""
        return self._versions.get(section, 0)

    # ------------------------------------------------------------------ durable safety state

    def write_through(self, name: str, value: Any) -> None:
        """Write a safety value to disk now (blocking; it is rare and must land before the action).

        Its own database (`latch` for `FSYNCED_SAFETY`, fsynced; else `safety`), which no other thread writes: no
        wait on the flush's lock."""
        self._sections["safety:" + name] = value
        self._store(name).set(name, value)

    def read_safety(self, name: str, default: Any = None) -> Any:
        return self._store(name).get(name, default)

    def _store(self, name: str) -> diskcache.Cache:
        return _safety_store(name, self._latch, self._safety)

    def _migrate_safety(self) -> None:
        """Move safety values an earlier version kept in `hot` (`safety:<name>`) to their stores, once.

        A value already in its store wins (it is newer); the old key is deleted only after the new one is written,
        so a crash in between leaves a copy in one place or both, never in none."""
        for key in list(self._cache.iterkeys()):
            if not (isinstance(key, str) and key.startswith(LEGACY_SAFETY_PREFIX)):
                continue
            name = key[len(LEGACY_SAFETY_PREFIX) :]
            value = self._cache.get(key, _MISSING)
            store = self._store(name)
            if value is not _MISSING and store.get(name, _MISSING) is _MISSING:
                store.set(name, value)
                log.info("moved the safety value %r to its own store in the state directory", name)
            self._cache.delete(key)

    # ------------------------------------------------------------------ writer thread

    def start(self) -> None:
        if self._writer is not None:
            return
        self._stop.clear()
        self._writer = threading.Thread(target=self._run_writer, name="hot-state-writer", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        """Flush what is pending and stop the writer; safe to call twice."""
        if self._writer is not None:
            self._stop.set()
            self._wake.set()
            self._writer.join(timeout=5)
            self._writer = None
        self.flush()

    def close(self) -> None:
        self.stop()
        self._cache.close()
        self._safety.close()
        self._latch.close()

    def flush(self) -> int:
        """Write every dirty key in one transaction; returns how many were written."""
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        if self._quotes_dirty:
            # Clear first: a quote put during the copy sets the flag again and is written next time.
            self._quotes_dirty = False
            dirty["quotes"] = dict(self._quotes)
        if not dirty:
            return 0
        self._flush_seq += 1
        try:
            with self._cache.transact():
                for key, value in dirty.items():
                    self._cache.set(key, value)
                self._cache.set("meta:flush", (time.time_ns(), self._flush_seq))
        except Exception:
            self.flush_errors += 1
            log.exception("hot state flush failed; %d keys will be retried", len(dirty))
            with self._lock:
                for key, value in dirty.items():
                    if key == "quotes":
                        self._quotes_dirty = True
                    else:
                        self._dirty.setdefault(key, value)
        return len(dirty)

    def _run_writer(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()

    def set_engine_info(self, info: dict[str, Any]) -> None:
        self._cache.set("meta:engine", info)


class HotStateReader:
    """Read-only access to a running engine's hot state from another process.

    Quotes are read again only when the engine has flushed since the last read (`meta:flush` is written in
    the same transaction as `quotes`, so an unchanged stamp means unchanged quotes): a reader polling every
    millisecond then costs one small row per poll, not an unpickling of every quote, and leaves the CPU to
    the engine on the same machine.
    """

    def __init__(self, directory: Path) -> None:
        self._cache = diskcache.Cache(str(Path(directory) / "hot"), timeout=5)
        self._safety = diskcache.Cache(str(Path(directory) / "safety"), timeout=5)
        self._latch = diskcache.Cache(str(Path(directory) / "latch"), timeout=5)
        self._quotes: dict[str, Quote] = {}
        self._quotes_stamp: Any = None  # the `meta:flush` value `_quotes` was read under

    def _fresh_quotes(self) -> dict[str, Quote]:
        # The stamp is read before the quotes: a flush in between only makes the next call read them again.
        stamp = self._cache.get("meta:flush")
        if stamp is None or stamp != self._quotes_stamp:
            value = self._cache.get("quotes")
            self._quotes = dict(value) if isinstance(value, dict) else {}
            self._quotes_stamp = stamp
        return self._quotes

    def quote(self, key: str) -> Quote | None:
        value = self._fresh_quotes().get(key)
        return value if isinstance(value, Quote) else None

    def quotes(self) -> dict[str, Quote]:
        return dict(self._fresh_quotes())

    def get(self, section: str, default: Any = None) -> Any:
        return self._cache.get("section:" + section, default)

    def safety(self, name: str, default: Any = None) -> Any:
        value = _safety_store(name, self._latch, self._safety).get(name, _MISSING)
        if value is _MISSING:  # an engine of an earlier version, not started since (see the module docstring)
            value = self._cache.get(LEGACY_SAFETY_PREFIX + name, default)
        return value

    def last_flush(self) -> tuple[int, int] | None:
        value = self._cache.get("meta:flush")
        return value if isinstance(value, tuple) else None

    def engine_info(self) -> dict[str, Any] | None:
        value = self._cache.get("meta:engine")
        return value if isinstance(value, dict) else None

    def close(self) -> None:
        self._cache.close()
        self._safety.close()
        self._latch.close()
