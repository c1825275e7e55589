"""The journal: append-only, readable after a torn write, and durable at the level each kind needs."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

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


def test_sync_kinds_are_written_and_fsynced_inline_after_the_queue_ahead_of_them(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    journal = Journal(state_dir, FakeClock())
    monkeypatch.setattr(journal, "_wake_writer", lambda: None)  # the writer never gets to it
    journal.record("submit", order_id=1)
    journal.record("order_state", order_id=1)
    assert journal.written_seq == 0 and calls == []
    journal.record("shutdown", reason="test")
    assert journal.written_seq == journal.durable_seq == 3 and len(calls) == 1
    lines = journal.files()[0].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["submit", "order_state", "shutdown"]  # seq order
    journal.close()


def test_write_kinds_are_written_inline_and_fsynced_by_the_group_commit(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A halt's record is in the file (a crash cannot lose it) when `record` returns, with no fsync in front
    of the kill switch's answer (the halt latch is the durable state); the writer fsyncs it right after."""
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    journal = Journal(state_dir, FakeClock())
    wakes: list[int] = []
    real_wake = journal._wake_writer
    monkeypatch.setattr(journal, "_wake_writer", lambda: wakes.append(1))
    journal.record("submit", order_id=1)
    journal.record("halt", reason="test")
    assert journal.written_seq == 2 and journal.durable_seq == 0 and calls == []
    lines = journal.files()[0].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["submit", "halt"]  # the queue ahead went first
    assert wakes  # the group commit was asked for
    real_wake()
    for _ in range(500):
        if journal.durable_seq == 2:
            break
        time.sleep(0.01)
    assert journal.durable_seq == 2 and len(calls) == 1
    journal.close()


async def test_hot_path_kinds_do_no_file_io_in_the_step_and_are_group_committed_after_it(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a loop, a burst of hot-path records costs no write, no fsync and no thread wake until the step ends."""
    import asyncio

    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real_fsync(fd))
    journal = Journal(state_dir, FakeClock())
    for i in range(5):
        journal.record("submit" if i % 2 == 0 else "fill", order_id=i)
    assert calls == [] and journal._writer is None  # nothing happened inside the step
    assert journal.seq == 5 and journal.written_seq == 0 and journal.durable_seq == 0
    assert journal.files() == []  # not even opened
    for _ in range(2500):  # bounded: 5 s
        if journal.durable_seq == 5:
            break
        await asyncio.sleep(0.002)
    assert journal.durable_seq == journal.written_seq == 5
    assert 1 <= len(calls) <= 2  # one group commit covers the burst (a second at most, if it raced)
    lines = journal.files()[0].read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["order_id"] for line in lines] == [0, 1, 2, 3, 4]
    journal.close()


async def test_when_durable_calls_back_on_the_loop_once_the_writer_fsynced(state_dir: Path) -> None:
    import asyncio
    import threading

    journal = Journal(state_dir, FakeClock())
    journal.record("intent", intent_id="i1")  # not a group-sync kind: only a waiter makes it fsynced
    seq = journal.seq
    loop_thread = threading.get_ident()
    called: list[tuple[int, int]] = []
    assert journal.when_durable(seq, lambda: called.append((journal.durable_seq, threading.get_ident()))) is False
    for _ in range(2500):  # bounded: 5 s
        if called:
            break
        await asyncio.sleep(0.002)
    assert called and called[0][0] >= seq and called[0][1] == loop_thread
    assert journal.when_durable(seq, lambda: called.append((0, 0))) is True  # durable now: no callback
    assert journal.inline_waits == 0
    journal.close()


async def test_read_and_close_see_every_queued_record_and_days_rotate_in_order(state_dir: Path) -> None:
    clock = FakeClock()
    journal = Journal(state_dir, clock)
    journal.record("submit", order_id=1)
    clock.advance(86_400)
    journal.record("fill", exec_id="e1")
    assert [r["kind"] for r in journal.read()] == ["submit", "fill"]  # read writes the queue first
    assert len(journal.files()) == 2
    journal.record("commission", exec_id="e1")
    journal.close()
    assert [r["kind"] for r in Journal(state_dir, FakeClock()).read()] == ["submit", "fill", "commission"]
    assert journal.durable_seq == journal.written_seq == 3


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


async def test_a_write_error_keeps_the_records_queued_and_the_writer_retries(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    journal = Journal(state_dir, FakeClock())
    real_fsync = os.fsync
    failures = [0]

    def failing_fsync(fd: int) -> None:
        if failures[0] < 2:
            failures[0] += 1
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr("omega_tui.core.journal.WRITE_RETRY_S", 0.01)
    journal.record("submit", order_id=1)
    for _ in range(2500):  # bounded: 5 s
        if journal.durable_seq == 1:
            break
        await asyncio.sleep(0.002)
    assert journal.durable_seq == 1 and journal.write_errors == 2
    journal.close()
    assert [r["kind"] for r in Journal(state_dir, FakeClock()).read()] == ["submit"]  # written once


async def test_record_soon_is_numbered_after_the_step_in_order_and_with_the_time_of_the_call(state_dir: Path) -> None:
    import asyncio

    clock = FakeClock()
    journal = Journal(state_dir, clock)
    journal.record("submit", order_id=1)
    box = {"qty": 10}
    journal.record_soon("fill", lambda: {"exec_id": "e1", "qty": box["qty"]})
    stamped = clock.monotonic_ns()
    clock.advance(1.0)
    journal.record_soon("fill", lambda: {"exec_id": "e2"})
    assert journal.seq == 1  # not numbered yet: nothing serialised in this step
    await asyncio.sleep(0)  # the step ends: numbered and queued, in the order recorded
    assert journal.seq == 3
    journal.record_soon("commission", lambda: {"exec_id": "e2"})
    journal.record("modify", order_id=1)  # a plain record numbers the deferred ones first: file order = event order
    assert journal.seq == 5
    journal.record_soon("fill", lambda: {"exec_id": "e3"})
    assert journal.drain() == 6
    records = list(journal.read())
    assert [(r["kind"], r.get("exec_id")) for r in records] == [
        ("submit", None),
        ("fill", "e1"),
        ("fill", "e2"),
        ("commission", "e2"),
        ("modify", None),
        ("fill", "e3"),
    ]
    assert records[1]["mono_ns"] == stamped and records[1]["qty"] == 10
    assert records[2]["mono_ns"] == stamped + 1_000_000_000
    journal.close()


async def test_record_soon_is_flushed_by_read_close_and_when_durable_and_survives_a_failing_builder(
    state_dir: Path,
) -> None:
    journal = Journal(state_dir, FakeClock())
    journal.record_soon("fill", lambda: {"exec_id": "e1"})
    assert [r["kind"] for r in journal.read()] == ["fill"]  # read() sees it without waiting for the step
    journal.record_soon("fill", lambda: {"exec_id": "e2"})
    assert journal.when_durable(2, lambda: None) is False  # numbered first, then waited for (not "unknown")
    journal.record_soon("fill", lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    journal.record_soon("fill", lambda: {"exec_id": "e4"})
    journal.close()
    records = list(Journal(state_dir, FakeClock()).read())
    assert [r.get("exec_id") for r in records] == ["e1", "e2", None, "e4"]
    assert records[2]["error"] == "fields could not be built"


def test_record_soon_without_a_loop_records_at_once(state_dir: Path) -> None:
    journal = Journal(state_dir, FakeClock(), fsync=False)
    journal.record_soon("fill", lambda: {"exec_id": "e1"})
    assert journal.seq == 1
    journal.close()


async def test_after_step_runs_once_after_the_steps_deferred_records_in_one_loop_callback(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    clock = FakeClock()
    journal = Journal(state_dir, clock, fsync=False)
    seen: list[tuple[str, int]] = []
    scheduled: list[object] = []
    schedule = journal._schedule_end_step

    def counting_schedule(loop: asyncio.AbstractEventLoop) -> None:
        scheduled.append(loop)
        schedule(loop)

    monkeypatch.setattr(journal, "_schedule_end_step", counting_schedule)
    journal.record_soon("fill", lambda: {"exec_id": "e1"})
    assert journal.after_step(lambda: seen.append(("first", journal.seq))) is True

    def failing() -> None:
        raise RuntimeError("a bug in one callback")

    assert journal.after_step(failing) is True  # logged; the others still run
    journal.after_step(lambda: seen.append(("second", journal.seq)))
    journal.record_soon("fill", lambda: {"exec_id": "e2"})
    assert len(scheduled) == 1  # one loop callback for all of it
    monkeypatch.undo()
    assert seen == [] and journal.seq == 0
    await asyncio.sleep(0)
    assert seen == [("first", 2), ("second", 2)]  # after both records were numbered
    await asyncio.sleep(0)
    assert seen == [("first", 2), ("second", 2)]  # once
    journal.after_step(lambda: seen.append(("next step", journal.seq)))
    await asyncio.sleep(0)
    assert seen[-1] == ("next step", 2)
    journal.close()


def test_after_step_without_a_loop_schedules_nothing(state_dir: Path) -> None:
    journal = Journal(state_dir, FakeClock(), fsync=False)
    assert journal.after_step(lambda: None) is False
    journal.close()


async def test_record_soon_stamps_the_utc_time_of_the_call(state_dir: Path) -> None:
    import asyncio

    clock = FakeClock()
    journal = Journal(state_dir, clock, fsync=False)
    at = clock.now_utc()
    journal.record_soon("fill", lambda: {"exec_id": "e1"})
    clock.advance(0.25)  # time passes before the step ends: the stamp is still the call's
    await asyncio.sleep(0)
    (record,) = list(journal.read())
    assert record["ts"] == at.isoformat()
    journal.close()


@pytest.mark.parametrize("debug", [False, True])
def test_the_end_of_step_callback_serves_every_step_and_every_loop(state_dir: Path, debug: bool) -> None:
    """One reused Handle per loop on asyncio's loops, `call_soon` in debug mode: either way each step's deferred
    records are numbered once, after it, in order, and a journal outliving its loop works on the next one."""
    import asyncio

    journal = Journal(state_dir, FakeClock(), fsync=False)
    call_soon_ends: list[int] = []

    async def steps(first: int) -> None:
        loop = asyncio.get_running_loop()
        call_soon = loop.call_soon

        def counting_call_soon(callback: Any, *args: Any, **kwargs: Any) -> asyncio.Handle:
            if getattr(callback, "__name__", "") == "_end_step":
                call_soon_ends.append(first)
            return call_soon(callback, *args, **kwargs)

        loop.call_soon = counting_call_soon  # type: ignore[method-assign,assignment]
        for i in range(first, first + 3):
            seq = journal.seq
            journal.record_soon("fill", lambda i=i: {"exec_id": f"e{i}"})
            journal.record_soon("commission", lambda i=i: {"exec_id": f"e{i}"})
            assert journal.seq == seq  # not numbered within the step
            await asyncio.sleep(0)
            assert journal.seq == seq + 2  # numbered after it

    asyncio.run(steps(1), debug=debug)
    journal.record_soon("fill", lambda: {"exec_id": "between"})  # no loop: at once
    asyncio.run(steps(4), debug=debug)
    ids = [(r["kind"], r.get("exec_id")) for r in journal.read()]
    assert ids[:6] == [("fill", "e1"), ("commission", "e1"), ("fill", "e2"), ("commission", "e2"), ("fill", "e3"),
                       ("commission", "e3")]  # fmt: skip
    assert ids[6] == ("fill", "between") and len(ids) == 13 and ids[-1] == ("commission", "e6")
    assert call_soon_ends == ([1, 1, 1, 4, 4, 4] if debug else [])
    journal.close()
