"""Safety values (the halt latch, the risk day): their own store, never waiting for the hot state's flush."""

from __future__ import annotations

import threading
from pathlib import Path

import diskcache

from omega_tui.core.hot_state import LEGACY_SAFETY_PREFIX, HotState, HotStateReader


def test_a_safety_write_does_not_wait_for_a_flush_holding_the_hot_state_lock(tmp_path: Path) -> None:
    hot = HotState(tmp_path)
    held, release = threading.Event(), threading.Event()

    def flush_in_progress() -> None:  # as the writer thread holds SQLite's write lock for its transaction
        with hot._cache.transact():
            hot._cache.set("quotes", {})
            held.set()
            release.wait(10)

    holder = threading.Thread(target=flush_in_progress)
    holder.start()
    try:
        assert held.wait(10)
        written = threading.Event()

        def latch() -> None:
            hot.write_through("halt", {"source": "test", "reason": "r", "at_utc": "t"})
            written.set()

        writer = threading.Thread(target=latch)
        writer.start()
        # With the latch in the same database it would sit in SQLite's busy handler until the release.
        assert written.wait(10), "the latch waited for the flush's transaction"
        assert not release.is_set()
        writer.join(10)
    finally:
        release.set()
        holder.join(10)
    assert hot.read_safety("halt")["source"] == "test"
    hot.close()


def test_a_latch_kept_by_an_earlier_version_in_the_hot_store_is_moved_and_still_halts(tmp_path: Path) -> None:
    old = diskcache.Cache(str(tmp_path / "hot"))
    old.set(LEGACY_SAFETY_PREFIX + "halt", {"source": "operator", "reason": "old", "at_utc": "t"})
    old.set(LEGACY_SAFETY_PREFIX + "risk_day", {"day": "2026-11-26"})
    old.set("section:risk", {"trading_state": "HALTED"})
    old.close()
    reader = HotStateReader(tmp_path)  # e.g. `omega-tui status` before the engine started again
    assert reader.safety("halt")["reason"] == "old"
    reader.close()

    hot = HotState(tmp_path)
    assert hot.read_safety("halt")["reason"] == "old"
    assert hot.read_safety("risk_day") == {"day": "2026-11-26"}
    assert LEGACY_SAFETY_PREFIX + "halt" not in hot._cache  # moved, not copied: a later re-arm is not undone
    assert hot._cache.get("section:risk") == {"trading_state": "HALTED"}  # nothing else touched
    hot.write_through("halt", None)  # re-armed
    hot.close()

    again = HotState(tmp_path)
    assert again.read_safety("halt") is None
    again.close()
    reader = HotStateReader(tmp_path)
    assert reader.safety("halt", "absent") is None
    reader.close()


def test_a_newer_value_in_the_safety_store_wins_over_a_leftover_old_one(tmp_path: Path) -> None:
    hot = HotState(tmp_path)
    hot.write_through("halt", None)
    hot._cache.set(LEGACY_SAFETY_PREFIX + "halt", {"source": "stale", "reason": "r", "at_utc": "t"})
    hot.close()
    again = HotState(tmp_path)
    assert again.read_safety("halt") is None
    assert LEGACY_SAFETY_PREFIX + "halt" not in again._cache
    again.close()


def test_the_latch_is_fsynced_on_every_write_and_the_risk_day_is_not(tmp_path: Path) -> None:
    """synchronous=FULL for the latch: a latched halt survives a power cut, not only a crash of the engine. The
    risk day, written on the loop after fills, is not fsynced there (it survives a crash of the process)."""
    hot = HotState(tmp_path)
    hot.write_through("halt", {"source": "test", "reason": "r", "at_utc": "t"})
    hot.write_through("risk_day", {"day": "x"})
    assert hot._latch._sql("PRAGMA synchronous").fetchall() == [(2,)]
    assert hot._safety._sql("PRAGMA synchronous").fetchall() == [(1,)]
    reader = HotStateReader(tmp_path)  # a reader opening the stores later does not change them
    assert reader.safety("halt")["source"] == "test" and reader.safety("risk_day") == {"day": "x"}
    reader.close()
    hot.close()
    again = HotState(tmp_path)
    assert again._latch._sql("PRAGMA synchronous").fetchall() == [(2,)]
    assert again.read_safety("halt")["source"] == "test" and again.read_safety("risk_day") == {"day": "x"}
    again.close()
