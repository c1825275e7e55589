"""Single instance per state directory, stale-lock takeover, and the cross-process command queue."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from omega_tui.config import Settings
from omega_tui.core.control import ControlQueue, EngineAlreadyRunning, EngineLock, engine_running
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import CommandResult, Halt, Resume

HOLD_LOCK = """
import sys, time
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
