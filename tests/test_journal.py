"""The journal: append-only, readable after a torn write, and durable at the level each kind needs."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

import pytest

from omega_tui.core.clock import FakeClock
from omega_tui.core.journal import Journal
from omega_tui.core.types import Side


def test_records_are_readable_in_order_with_exact_values(state_dir: Path) -> None:
    journal = Journal(state_dir, FakeClock())
    journal.record("intent", intent_id="i1", price=Decimal("190.01"), side=Side.BUY)
    journal.record("fill", exec_id="e1", qty=100)
    journal.close()
    records = list(Journal(state_dir, FakeClock()).read())
    assert [r["kind"] for r in records] == ["intent", "fill"]
    assert records[0]["price"] == "190.01" and records[0]["side"] == "BUY"


def test_a_torn_last_line_is_skipped_not_fatal(state_dir: Path) -> None:
    journal = Journal(state_dir, FakeClock())
    journal.record("submit", order_id=1)
    journal.close()
    with open(journal.files()[0], "a", encoding="utf-8") as f:
        f.write('{"kind": "fill", "exec_')  # the engine died mid-write
    assert [r["kind"] for r in Journal(state_dir, FakeClock()).read()] == ["submit"]


@pytest.mark.parametrize(("kind", "inline"), [("halt", True), ("resume", True), ("submit", False), ("fill", False)])
def test_safety_kinds_fsync_inline_and_hot_path_kinds_are_group_synced(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, kind: str, inline: bool
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    journal = Journal(state_dir, FakeClock(), group_sync_ms=1)
    journal.record(kind, x=1)
    assert bool(calls) is inline
    if not inline:
        deadline = time.monotonic() + 5
        while journal.group_syncs == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert journal.group_syncs >= 1
    journal.close()
