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


async def test_group_commit_is_woken_after_the_step_not_inside_it(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loop, a burst of hot-path records costs no fsync and no thread wake until the step ends."""
    import asyncio

    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    journal = Journal(state_dir, FakeClock())
    for i in range(5):
        journal.record("submit", order_id=i)
    assert calls == [] and journal._syncer is None  # nothing happened inside the step
    assert journal.seq == 5 and journal.durable_seq == 0
    for _ in range(2500):  # bounded: 5 s
        if journal.durable_seq == 5:
            break
        await asyncio.sleep(0.002)
    assert journal.durable_seq == 5
    assert 1 <= len(calls) <= 2  # one group commit covers the burst (a second at most, if it raced)
    journal.close()


def test_wait_durable_fsyncs_inline_only_when_the_record_is_not_yet_durable(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    journal = Journal(state_dir, FakeClock())
    journal.record("intent", intent_id="i1")  # flushed, never fsynced by itself
    seq = journal.seq
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    journal.wait_durable(seq)
    assert len(calls) == 1 and journal.durable_seq >= seq and journal.inline_waits == 1
    journal.wait_durable(seq)  # already durable: free
    assert len(calls) == 1 and journal.inline_waits == 1
    journal.close()


def test_without_fsync_every_record_counts_as_durable(state_dir: Path) -> None:
    journal = Journal(state_dir, FakeClock(), fsync=False)
    journal.record("submit", order_id=1)
    journal.wait_durable(journal.seq)
    assert journal.durable_seq == journal.seq == 1 and journal.inline_waits == 0
    journal.close()
