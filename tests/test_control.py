"""Single instance per state directory, stale-lock takeover, and the cross-process command queue."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from omega_tui.config import Settings
from omega_tui.core.control import (
    ChannelClient,
    ChannelServer,
    ControlQueue,
    EngineAlreadyRunning,
    EngineLock,
    engine_running,
    recv_frame,
)
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import CommandResult, Halt, Resume

HOLD_LOCK = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
from omega_tui.core.control import EngineLock
lock = EngineLock(Path(sys.argv[1]))
lock.acquire("SIM")
print("locked", flush=True)
time.sleep(60)
"""


def test_second_engine_on_same_state_dir_is_refused_naming_the_first(state_dir: Path) -> None:
    first = EngineLock(state_dir)
    first.acquire("SIM")
    try:
        with pytest.raises(EngineAlreadyRunning, match=f"pid {os.getpid()}"):
            EngineLock(state_dir).acquire("SIM")
        assert engine_running(state_dir) is not None
    finally:
        first.release()
    assert engine_running(state_dir) is None


def test_lock_left_by_a_killed_engine_is_taken_over(state_dir: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(state_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        assert engine_running(state_dir) is not None
        with pytest.raises(EngineAlreadyRunning):
            EngineLock(state_dir).acquire("SIM")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    lock = EngineLock(state_dir)
    lock.acquire("SIM")
    try:
        assert lock.took_over is not None and lock.took_over.pid == proc.pid
    finally:
        lock.release()


async def test_control_command_reaches_the_runtime_handler_and_is_answered(state_dir: Path) -> None:
    settings = Settings(state={"dir": state_dir})
    runtime = Runtime(settings)
    seen: list[Halt] = []

    async def on_halt(command: Halt) -> CommandResult:
        seen.append(command)
        return CommandResult("x", True, "halted", runtime.clock.now_utc())

    runtime.on_command(Halt, on_halt)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(asyncio.to_thread(runtime.wait_started, 5), 10)
        queue = ControlQueue(state_dir)
        started = time.monotonic()
        command_id = await asyncio.to_thread(queue.send, Halt(source="control:halt", reason="test"))
        result = await asyncio.to_thread(queue.wait_result, command_id, 5.0)
        elapsed = time.monotonic() - started
        queue.close()
        assert result is not None and result.ok and result.message == "halted"
        assert seen == [Halt(source="control:halt", reason="test")]
        assert elapsed < 5.0
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_command_without_an_owner_is_refused_not_dropped(state_dir: Path) -> None:
    runtime = Runtime(Settings(state={"dir": state_dir}))
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(asyncio.to_thread(runtime.wait_started, 5), 10)
        result = await asyncio.wrap_future(runtime.submit(Halt(source="test")))
        assert not result.ok and "not available" in result.message
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_urgent_command_runs_before_work_already_waiting_on_the_loop(state_dir: Path) -> None:
    """A Halt submitted from another thread runs in the loop's next callback batch: ahead of a coroutine
    command submitted just before it, which needs one more iteration to start."""
    runtime = Runtime(Settings(state={"dir": state_dir}))
    order: list[str] = []

    async def slow_lane(command: Resume) -> CommandResult:
        order.append("resume")
        return CommandResult("r", True, "resumed", runtime.clock.now_utc())

    def on_halt(command: Halt) -> CommandResult:
        order.append("halt")
        if command.reason == "boom":
            raise RuntimeError("disk on fire")
        return CommandResult("h", True, "halted", runtime.clock.now_utc())

    runtime.on_command(Resume, slow_lane)
    runtime.on_urgent_command(Halt, on_halt)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await asyncio.wait_for(asyncio.to_thread(runtime.wait_started, 5), 10)

        gate = threading.Event()

        def from_another_thread() -> tuple[CommandResult, CommandResult, CommandResult]:
            # The loop is held in `gate.wait` meanwhile, so all three land in the same callback batch.
            resumed = runtime.submit(Resume(source="test"))
            halted = runtime.submit(Halt(source="test", reason="now"))
            failed = runtime.submit(Halt(source="test", reason="boom"))
            gate.set()
            return resumed.result(5), halted.result(5), failed.result(5)

        loop = asyncio.get_running_loop()
        loop.call_soon(gate.wait, 5)  # first, so the halts are queued behind no task step of the resume
        answers = loop.run_in_executor(None, from_another_thread)
        resumed, halted, failed = await asyncio.wait_for(answers, 10)
        assert resumed.ok and halted.ok and halted.message == "halted"
        assert not failed.ok and "disk on fire" in failed.message  # an exception is an answer, not a hang
        assert order == ["halt", "halt", "resume"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_answer_carries_the_state_published_after_the_command_acted_and_is_written_off_the_loop(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An urgent handler (the risk engine's halt) publishes its view before it returns: the answer's risk
    section is that view, read at once rather than after the callbacks queued behind the halt (under load a
    batch of ticks), and the SQLite write of the answer does not run on the core loop."""
    runtime = Runtime(Settings(state={"dir": state_dir}))
    runtime.hot_state.set("risk", {"trading_state": "ACTIVE"})

    def on_halt(command: Halt) -> CommandResult:
        runtime.hot_state.set("risk", {"trading_state": "HALTED"})
        # Work queued behind the halt on the loop: the answer does not wait for it.
        asyncio.get_running_loop().call_soon(runtime.hot_state.set, "risk", {"trading_state": "LATER"})
        return CommandResult("h", True, "halted", runtime.clock.now_utc())

    runtime.on_urgent_command(Halt, on_halt)
    writers: list[str] = []
    original = ControlQueue.answer

    def answer(self: ControlQueue, *args: object, **kwargs: object) -> None:
        writers.append(threading.current_thread().name)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ControlQueue, "answer", answer)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    queue = ControlQueue(state_dir)
    try:
        await asyncio.wait_for(asyncio.to_thread(runtime.wait_started, 5), 10)
        command_id = await asyncio.to_thread(queue.send, Halt(source="control:halt", reason="test"))
        got = await asyncio.to_thread(queue.wait_answer, command_id, 5.0)
        assert got is not None and got.result.ok and got.result.message == "halted"
        assert got.state == {"risk": {"trading_state": "HALTED"}}
        assert writers == ["control-server"], writers
        # The plain result API still answers (the CLI's `halt` uses it).
        command_id = await asyncio.to_thread(queue.send, Halt(source="control:halt", reason="again"))
        result = await asyncio.to_thread(queue.wait_result, command_id, 5.0)
        assert result is not None and result.ok
    finally:
        queue.close()
        stop.set()
        await asyncio.wait_for(task, 20)


def test_answer_state_is_read_on_the_loop_even_when_the_command_resolved_before_its_callback_was_added(
    state_dir: Path,
) -> None:
    """A coroutine command gets the control thread's done-callback after `run_coroutine_threadsafe` returns;
    the loop may have run it by then. The state must still be read on the loop, behind the publication the
    command queued there."""
    from concurrent.futures import Future

    from omega_tui.core.control import ControlServer

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    risk = {"trading_state": "ACTIVE"}

    gate = threading.Event()
    threading.Timer(0.3, gate.set).start()  # the loop is busy with other work this long before publishing

    def halt_on_loop(answer: Future[CommandResult]) -> None:
        # Latch, then publish in a later callback (as the risk engine defers its view).
        loop.call_soon(gate.wait, 5)
        loop.call_soon(risk.update, {"trading_state": "HALTED"})
        answer.set_result(CommandResult("h", True, "halted", datetime.now(UTC)))

    def submit(command: object, on_done: Callable[[Future[CommandResult]], object]) -> Future[CommandResult]:
        answer: Future[CommandResult] = Future()
        loop.call_soon_threadsafe(halt_on_loop, answer)
        answer.result(5)  # resolved before the server's callback is added: the race, made certain
        answer.add_done_callback(on_done)
        return answer

    queue = ControlQueue(state_dir)
    server = ControlServer(queue, submit, lambda: {"risk": dict(risk)}, loop.call_soon_threadsafe)
    server.start()
    client = ControlQueue(state_dir)
    try:
        command_id = client.send(Halt(source="test", reason="race"))
        got = client.wait_answer(command_id, 5.0)
        assert got is not None and got.result.ok
        assert got.state == {"risk": {"trading_state": "HALTED"}}
    finally:
        server.stop()
        client.close()
        queue.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_polling_an_empty_queue_does_not_take_the_write_lock(state_dir: Path) -> None:
    """The engine polls every 5 ms: an empty queue must be seen without SQLite's write lock, or a client's send
    (the kill switch) meets a held lock and SQLite's busy back-off. Here another connection holds the write
    lock: the poll must still answer at once (before the fix it waited for the lock)."""
    import sqlite3

    queue = ControlQueue(state_dir)
    queue.warm()
    writer = sqlite3.connect(str(state_dir / "control" / "queue" / "cache.db"), isolation_level=None, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    try:
        out: list[object] = []
        poll = threading.Thread(target=lambda: out.append(queue.take()), daemon=True)
        poll.start()
        poll.join(5)
        assert not poll.is_alive() and out == [None]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    command_id = queue.send(Halt(source="control:halt", reason="test"))
    taken = queue.take()
    assert taken is not None and taken[0] == command_id
    queue.close()


# ------------------------------------------------------------------ the workstation UI's direct channel


async def test_the_ui_channel_takes_a_halt_sent_before_the_engine_started_and_answers_with_state(
    state_dir: Path,
) -> None:
    """The UI's own engine child takes commands on the socket pair it inherited: no poll, no SQLite. A Halt
    written while the engine is still starting waits in the socket and is acted on once the engine runs."""
    import socket

    from omega_tui.core.control import ChannelClient

    runtime = Runtime(Settings(state={"dir": state_dir}))
    runtime.hot_state.set("risk", {"trading_state": "ACTIVE"})
    threads: list[str] = []

    def on_halt(command: Halt) -> CommandResult:
        threads.append(threading.current_thread().name)
        runtime.hot_state.set("risk", {"trading_state": "HALTED", "reason": command.reason})
        return CommandResult("h", True, "halted", runtime.clock.now_utc())

    runtime.on_urgent_command(Halt, on_halt)
    ui_end, engine_end = socket.socketpair()
    runtime.control_channel = engine_end
    client = ChannelClient(ui_end)
    early = client.send(Halt(source="key", reason="before start"))
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        got = await asyncio.to_thread(client.wait_answer, early, 10.0)
        assert got is not None and got.result.ok and got.result.message == "halted"
        assert got.state == {"risk": {"trading_state": "HALTED", "reason": "before start"}}
        assert threads == [threading.current_thread().name]  # the urgent handler ran on the core loop
        later = await asyncio.to_thread(client.send, Resume(source="key"))
        refused = await asyncio.to_thread(client.wait_answer, later, 10.0)
        assert refused is not None and not refused.result.ok and "not available" in refused.result.message
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
    # The engine stopped: its end is closed, so a command now is answered at once, saying so.
    late = client.send(Halt(source="key"))
    closed = client.wait_answer(late, 10.0)
    assert closed is not None and not closed.result.ok and "channel is closed" in closed.result.message
    client.close()


def _halting_runtime(state_dir: Path) -> tuple[Settings, Runtime, list[str]]:
    """A runtime whose urgent Halt handler records each halt's reason (the list returned)."""
    settings = Settings(state={"dir": state_dir})
    runtime = Runtime(settings)
    halts: list[str] = []

    def on_halt(command: Halt) -> CommandResult:
        halts.append(command.reason)
        return CommandResult("h", True, "halted", runtime.clock.now_utc())

    runtime.on_urgent_command(Halt, on_halt)
    return settings, runtime, halts


async def test_an_unreadable_frame_closes_the_channel_and_the_ui_falls_back_to_the_control_queue(
    state_dir: Path,
) -> None:
    import socket

    from omega_tui.attach import RemoteEngine
    from omega_tui.core.control import FRAME_HEADER, ChannelClient

    settings, runtime, halts = _halting_runtime(state_dir)
    ui_end, engine_end = socket.socketpair()
    runtime.control_channel = engine_end
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    client = ChannelClient(ui_end)
    remote = RemoteEngine(settings, channel=client)
    try:
        await asyncio.wait_for(asyncio.to_thread(runtime.wait_started, 5), 10)
        ui_end.sendall(FRAME_HEADER.pack(5) + b"junk!")  # not a pickle: the engine drops the channel
        await asyncio.wait_for(asyncio.to_thread(_wait_closed, client), 10)
        result = await asyncio.wait_for(asyncio.wrap_future(remote.submit(Halt(source="key", reason="x"))), 15)
        assert result.ok and result.message == "halted"
        assert halts == ["x"]  # through the control queue, once
    finally:
        remote.close()
        stop.set()
        await asyncio.wait_for(task, 20)


def _wait_closed(client: ChannelClient) -> None:
    for _ in range(1000):
        if client.closed:
            return
        time.sleep(0.01)
    raise AssertionError("the channel did not close")


def test_an_answer_that_comes_after_its_wait_timed_out_is_dropped_not_kept() -> None:
    import socket

    from omega_tui.core.control import Answer, recv_frame, send_frame

    ui_end, engine_end = socket.socketpair()
    client = ChannelClient(ui_end)
    try:
        late = client.send(Halt(source="key"))
        assert client.wait_answer(late, 0.05) is None  # the engine is slow: the UI gave up on this one
        got_id, _, _ = recv_frame(engine_end)
        send_frame(engine_end, (got_id, Answer(CommandResult(got_id, True, "halted", datetime.now(UTC)))))
        prompt = client.send(Resume(source="key"))
        got_id, _, _ = recv_frame(engine_end)
        send_frame(engine_end, (got_id, Answer(CommandResult(got_id, True, "resumed", datetime.now(UTC)))))
        answer = client.wait_answer(prompt, 5.0)
        assert answer is not None and answer.result.message == "resumed"
        assert client._answers == {} and client._abandoned == set()
    finally:
        client.close()
        engine_end.close()


def _channel_pair(state: Callable[[], dict[str, object]]) -> tuple[object, ChannelServer]:
    import socket

    ui_end, engine_end = socket.socketpair()
    server = ChannelServer(engine_end, submit=lambda *_: None, state=state, acts_at_once=lambda _c: True)
    server.start()
    return ui_end, server


def test_an_urgent_answer_is_sent_by_the_loop_itself_when_nothing_is_queued_before_it() -> None:
    ui_end, server = _channel_pair(lambda: {"risk": {"trading_state": "HALTED"}})
    client = ChannelClient(ui_end)  # type: ignore[arg-type]
    try:
        now = datetime.now(UTC)
        server._hand_over_urgent("h1", CommandResult("h1", True, "halted", now))
        assert server.sent_on_loop == 1  # no hand-over to the writer thread
        got = client.wait_answer("h1", 5.0)
        assert got is not None and got.result.message == "halted"
        assert got.state == {"risk": {"trading_state": "HALTED"}}
    finally:
        server.stop()
        client.close()


def test_an_urgent_answer_the_socket_takes_only_in_part_is_finished_by_the_writer_in_order() -> None:
    """The loop never blocks on a UI that is not reading: the rest of the frame waits for the writer thread,
    and the answers after it follow it, whole and in order."""
    big = "x" * (4 << 20)  # more than any socket buffer takes at once
    ui_end, server = _channel_pair(lambda: {"risk": {"reason": big}})
    now = datetime.now(UTC)
    done = threading.Event()

    def urgent() -> None:
        server._hand_over_urgent("h1", CommandResult("h1", True, "halted", now))
        server._hand_over("r2", CommandResult("r2", True, "resumed", now), False)
        done.set()

    threading.Thread(target=urgent).start()
    try:
        assert done.wait(5), "the loop blocked on a full socket"
        assert server.sent_on_loop == 1  # a part went at once; the writer thread carries the rest
        first = recv_frame(ui_end)  # type: ignore[arg-type]
        second = recv_frame(ui_end)  # type: ignore[arg-type]
        assert first[0] == "h1" and first[1].state == {"risk": {"reason": big}}
        assert second[0] == "r2" and second[1].result.message == "resumed"
    finally:
        server.stop()
        ui_end.close()  # type: ignore[attr-defined]


def test_an_urgent_answer_queues_behind_answers_not_yet_sent() -> None:
    ui_end, server = _channel_pair(lambda: {})
    now = datetime.now(UTC)
    try:
        with server._send_lock:  # the writer is busy sending an earlier answer
            server._hand_over("r1", CommandResult("r1", True, "first", now), False)
            server._hand_over_urgent("h2", CommandResult("h2", True, "second", now))
        assert server.sent_on_loop == 0
        assert [recv_frame(ui_end)[0] for _ in range(2)] == ["r1", "h2"]  # type: ignore[arg-type]
    finally:
        server.stop()
        ui_end.close()  # type: ignore[attr-defined]


def test_on_answer_calls_back_on_the_reader_thread_at_once_or_with_the_closed_answer() -> None:
    import socket

    from omega_tui.core.control import CHANNEL_CLOSED, Answer, send_frame

    ui_end, engine_end = socket.socketpair()
    client = ChannelClient(ui_end)
    now = datetime.now(UTC)
    got: dict[str, tuple[str, str]] = {}
    closed: dict[str, bool] = {}
    called = threading.Event()

    def callback(command_id: str) -> Callable[[Answer], None]:
        def record(answer: Answer) -> None:
            got[command_id] = (threading.current_thread().name, answer.result.message)
            closed[command_id] = answer.channel_closed
            called.set()

        return record

    try:
        first = client.send(Halt(source="key"))
        assert recv_frame(engine_end)[0] == first
        client.on_answer(first, callback(first))
        send_frame(engine_end, (first, Answer(CommandResult(first, True, "halted", now))))
        assert called.wait(5)
        assert got[first] == ("engine-channel", "halted")  # acted on by the reader, no other thread woken
        early = "early"
        send_frame(engine_end, (early, Answer(CommandResult(early, True, "here", now))))
        for _ in range(500):
            if early in client._answers:
                break
            time.sleep(0.01)
        client.on_answer(early, callback(early))  # already here: called at once, on this thread
        assert got[early] == (threading.current_thread().name, "here")
        # An engine's answer that happens to carry the closed channel's words is still the engine's.
        alike = "alike"
        client.on_answer(alike, callback(alike))
        called.clear()
        send_frame(engine_end, (alike, Answer(CommandResult(alike, False, CHANNEL_CLOSED, now))))
        assert called.wait(5)
        assert got[alike][1] == CHANNEL_CLOSED and not closed[alike]
        client.on_answer("dropped", callback("dropped"))
        client.forget("dropped")
        send_frame(engine_end, ("dropped", Answer(CommandResult("dropped", True, "late", now))))
        client.on_answer("pending", callback("pending"))
        called.clear()
        engine_end.close()  # the engine's end goes away: a waiting callback hears it at once
        assert called.wait(5)
        assert got["pending"][1] == CHANNEL_CLOSED and closed["pending"]
        assert not closed[first] and not closed[early]
        assert "dropped" not in got and "dropped" not in client._answers
    finally:
        client.close()


async def test_a_halt_whose_channel_closes_before_the_answer_is_sent_again_through_the_control_queue(
    state_dir: Path,
) -> None:
    import socket

    from omega_tui.attach import RemoteEngine

    settings, runtime, halts = _halting_runtime(state_dir)
    ui_end, engine_end = socket.socketpair()  # the engine's end stays with the test: the runtime never reads it
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    remote = RemoteEngine(settings, channel=ChannelClient(ui_end))
    try:
        await asyncio.wait_for(asyncio.to_thread(runtime.wait_started, 5), 10)
        future = remote.submit(Halt(source="key", reason="x"))
        frame = await asyncio.wait_for(asyncio.to_thread(recv_frame, engine_end), 10)
        assert isinstance(frame[2], Halt)  # written on the channel first…
        engine_end.close()  # …which closes before any answer
        result = await asyncio.wait_for(asyncio.wrap_future(future), 15)
        assert result.ok and result.message == "halted"
        assert halts == ["x"]  # acted on once, through the control queue
    finally:
        remote.close()
        stop.set()
        await asyncio.wait_for(task, 20)
