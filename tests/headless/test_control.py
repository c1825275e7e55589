"""Control commands from other processes against one running headless engine (the test driver, real gateway peer).

The engine is started once for the module; each test leaves it ACTIVE again.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omega_tui.core.control import ControlQueue
from omega_tui.core.hot_state import HotStateReader
from omega_tui.core.types import Command, Halt, Resume
from tests.headless.conftest import (
    Engine,
    eventually,
    journal_records,
    omega,
    start_engine,
    wait_state,
    working_orders,
)

CONTROL_BOUND_S = 0.100  # DESIGN: the engine applies a control command within 100 ms (typically)
CONTROL_STALL_S = 1.0
"""No single command may take this long: that is a broken poll or wait, not a busy machine. A latency figure
is a benchmark's job; one sample of ten over 100 ms on a loaded CI machine (162 ms seen) is not a failure."""
LATENCY_SAMPLES = 5


@pytest.fixture(scope="module")
def engine(workdir: Path, module_state_dir: Path, gateway: int) -> Iterator[Engine]:
    engine = start_engine(
        workdir,
        module_state_dir,
        "--mode",
        "gateway",
        "--set",
        f"ib.port={gateway}",
        "--set",
        "logging.status_every_s=1",
        driver=True,
    )
    try:
        yield engine
    finally:
        engine.kill()


def status_json(engine: Engine, workdir: Path) -> tuple[int, dict[str, Any]]:
    done = omega(workdir, engine.state_dir, "status", "--json")
    return done.returncode, json.loads(done.stdout)


def resume(engine: Engine, workdir: Path) -> None:
    done = omega(workdir, engine.state_dir, "resume", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_state(engine.state_dir, "ACTIVE")


def test_status_json_has_every_documented_key_with_its_type_and_exits_0_when_active_and_connected(
    engine: Engine, workdir: Path
) -> None:
    code, report = status_json(engine, workdir)
    assert code == 0
    expected: dict[str, type | tuple[type, ...]] = {
        "running": bool,
        "engine": dict,
        "state_dir": str,
        "trading_state": str,
        "reason": str,
        "source": str,
        "since_utc": str,
        "connection": dict,
        "positions": dict,
        "pnl": dict,
        "open_orders": list,
        "limits": list,
        "components": dict,
        "last_flush_ns": int,
    }
    assert set(report) == set(expected)
    for key, kind in expected.items():
        assert isinstance(report[key], kind), f"{key}: {type(report[key]).__name__}"
    assert report["running"] is True and report["trading_state"] == "ACTIVE"
    assert report["engine"]["pid"] == engine.pid and report["engine"]["mode"] == "GATEWAY"
    assert report["state_dir"] == str(engine.state_dir)
    assert report["connection"]["state"] == "UP" and report["connection"]["host"] == "127.0.0.1"
    assert isinstance(report["connection"]["port"], int)
    assert {"realized", "unrealized", "total"} <= set(report["pnl"])
    for limit in report["limits"]:
        assert set(limit) == {"name", "used", "limit", "level"}
        assert isinstance(limit["used"], float) and isinstance(limit["limit"], float)
        assert limit["level"] in ("ok", "warn", "breach")
    assert "daily_loss" in {limit["name"] for limit in report["limits"]}
    assert {"broker", "orders", "risk"} <= set(report["components"])
    assert all(c["state"] == "RUNNING" for c in report["components"].values())


def test_halt_cancels_working_orders_and_status_then_exits_1(engine: Engine, workdir: Path) -> None:
    answer = engine.request("rest AAPL")
    assert answer["ok"], answer
    placed = eventually(lambda: working_orders(engine.report()), 10, "bracket working")
    assert {o["role"] for o in placed} >= {"entry"}

    done = omega(workdir, engine.state_dir, "halt", "--reason", "from the halt test")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("halt: done: halted: from the halt test")

    eventually(lambda: not working_orders(engine.report()), 10, "every order cancelled after the halt")
    code, report = status_json(engine, workdir)
    assert code == 1
    assert report["trading_state"] == "HALTED" and report["reason"] == "from the halt test"
    assert report["source"] == "control:halt"
    assert any(r["reason"] == "from the halt test" for r in journal_records(engine.state_dir, "halt"))
    resume(engine, workdir)


def _applied_after(state_dir: Path, queue: ControlQueue, command: Command, state: str) -> float:
    """Seconds from putting `command` on the control queue to `state` in what `status` reads."""
    reader = HotStateReader(state_dir)
    try:
        started = time.perf_counter()
        queue.send(command)
        while (reader.get("risk") or {}).get("trading_state") != state:
            if time.perf_counter() - started > 5:
                raise AssertionError(f"{type(command).__name__} not applied within 5 s")
            time.sleep(0.001)
        return time.perf_counter() - started
    finally:
        reader.close()


def test_halt_and_resume_from_another_process_are_applied_within_milliseconds(
    engine: Engine, record_property: Any
) -> None:
    queue = ControlQueue(engine.state_dir)
    halts, resumes = [], []
    try:
        for i in range(LATENCY_SAMPLES):
            halts.append(_applied_after(engine.state_dir, queue, Halt("control:halt", f"latency {i}"), "HALTED"))
            resumes.append(_applied_after(engine.state_dir, queue, Resume("control:resume"), "ACTIVE"))
    finally:
        queue.close()
    ms = {name: [round(s * 1000, 1) for s in v] for name, v in (("halt", halts), ("resume", resumes))}
    record_property("control_latency_ms", ms)
    print(f"control latency ms: {ms}; halt median {statistics.median(ms['halt'])}")
    assert statistics.median(halts) < CONTROL_BOUND_S, ms
    assert statistics.median(resumes) < CONTROL_BOUND_S, ms
    assert max(halts + resumes) < CONTROL_STALL_S, ms


def test_flatten_yes_ends_flat(engine: Engine, workdir: Path) -> None:
    answer = engine.request("take MSFT")
    assert answer["ok"], answer
    eventually(lambda: engine.report()["positions"].get("MSFT", {}).get("quantity"), 10, "MSFT position opened")

    done = omega(workdir, engine.state_dir, "flatten", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "flat" in done.stdout
    report = eventually(
        lambda: (
            (r := engine.report())["trading_state"] == "HALTED"
            and not any(p.get("quantity") for p in r["positions"].values())
            and not working_orders(r)
            and r
        ),
        10,
        "flat after flatten",
    )
    assert report["source"] == "control:flatten"
    resume(engine, workdir)


def test_flatten_and_resume_without_yes_are_refused_as_bad_usage(engine: Engine, workdir: Path) -> None:
    for verb in ("flatten", "resume"):
        done = omega(workdir, engine.state_dir, verb)
        assert done.returncode == 2 and "--yes" in done.stderr
    assert engine.report()["trading_state"] == "ACTIVE"


def test_second_engine_on_the_same_state_dir_is_refused_naming_the_running_one(engine: Engine, workdir: Path) -> None:
    done = omega(workdir, engine.state_dir, "--no-ui", "--mode", "gateway", "--set", "ib.port=1")
    assert done.returncode == 2
    assert f"already running on {engine.state_dir} (pid {engine.pid} on " in done.stderr
    assert "Traceback" not in done.stderr
    assert engine.report()["engine"]["pid"] == engine.pid


def test_headless_logs_json_lines_on_stderr_with_a_periodic_status_summary(engine: Engine) -> None:
    def summaries() -> list[dict[str, Any]]:
        lines = engine.stderr_lines()[:-1]  # the last line may still be being written
        return [r for r in map(json.loads, lines) if r["msg"].startswith("status: ")]

    # The engine is shared by the module: lines written before this test may describe an earlier test's halt,
    # so wait for a summary written during this one (the engine is ACTIVE again by then).
    before = len(summaries())
    found = eventually(lambda: summaries()[before:], 10, "a status summary line written during this test")
    assert set(found[-1]) >= {"ts", "level", "logger", "msg"}
    assert found[-1]["msg"].startswith("status: trading ACTIVE | connection UP | positions ")
    log_file = engine.state_dir / "logs" / "omega.log"
    assert "status: trading" in log_file.read_text(encoding="utf-8")


async def test_the_ui_kill_switch_through_the_control_queue_halts_cancels_and_shows_halted_from_the_answer(
    engine: Engine, workdir: Path
) -> None:
    """The workstation's UI is another process than its engine: ctrl+k goes through the control queue to the
    engine's urgent Halt, which cancels the working orders; the banner shows HALTED from the engine's answer
    (its risk section as published after the latch), not from a later poll of the hot state."""
    from omega_tui.attach import RemoteEngine
    from omega_tui.config import Settings
    from omega_tui.ui.app import OmegaApp

    answer = engine.request("rest AAPL")
    assert answer["ok"], answer
    eventually(lambda: working_orders(engine.report()), 10, "bracket working")

    client = RemoteEngine(Settings(state={"dir": str(engine.state_dir)}))
    assert (client.read("risk") or {}).get("trading_state") == "ACTIVE"
    client.poll = lambda: None  # type: ignore[method-assign]  # no hot-state polls: only the answer can say HALTED
    app = OmegaApp(client, client.settings, watch_hangup=False)
    try:
        async with app.run_test(size=(120, 36)) as pilot:
            banner = app.main.query_one("#banner")
            await pilot.pause()
            assert banner.state == "ACTIVE"  # type: ignore[attr-defined]
            started = time.monotonic()
            await pilot.press("ctrl+k")
            while banner.state != "HALTED":  # type: ignore[attr-defined]
                assert time.monotonic() - started < 5, "the banner never showed the engine's HALTED"
                await asyncio.sleep(0.01)
            shown_after = time.monotonic() - started
            while app.last_result is None:
                assert time.monotonic() - started < 5, "the answer was never recorded"
                await asyncio.sleep(0.01)
            assert app.last_result.ok, app.last_result
            risk = client.read("risk")
            assert (risk["trading_state"], risk["source"]) == ("HALTED", "operator:key")
            print(f"key → banner HALTED from the engine's answer: {shown_after * 1000:.0f} ms")
    finally:
        client.close()
    eventually(lambda: not working_orders(engine.report()), 10, "every order cancelled after the UI's halt")
    assert any(r["source"] == "operator:key" for r in journal_records(engine.state_dir, "halt"))
    resume(engine, workdir)
