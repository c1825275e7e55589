"""UI benchmark: keypress → HALTED drawn, UI CPU share, and what the UI costs the core loop.

What is simulated (the real engine pipeline is wired by the integrator, so it is not used here):

- An engine thread with its own asyncio loop, like LocalEngine's, streams `--rate` ticks/s in total over
  `--instruments` instruments into a real `HotState` (in a temporary state dir, with its diskcache writer
  thread running): every 1 ms a batch of rate/1000 `Quote`s is built and `put_quote`d, then a stand-in for
  the per-tick core work runs (mid, spread, a limit check against a dict). The batch latency, from the time
  the batch was due to the end of its work, is the "tick-processing latency" of this core loop.
- On `Halt` the engine flips the `risk` section to HALTED (what the risk engine publishes) and answers the
  command's future, exactly through the `EngineClient` protocol the app uses.
- The app is the real `OmegaApp`, headless (`run_test`, 160×48 dashboard), refreshing at `ui.refresh_hz`.
  Each halt is a Pilot `press("ctrl+k")` (driver → priority binding → submit → engine → CommandAnswered).
  "Drawn" means the terminal bytes of a frame, rendered as a real driver would (to a null file, so writing
  to a tty is not included), carry it: the banner's "■ HALTED" for key → HALTED, and the quotes pane's
  "Quotes ■ HALTED" title (all panes are dressed in the same frame) for key → whole screen HALTED.
- The process uses the GIL switch interval `omega-tui` sets (`UI_SWITCH_INTERVAL_S`); `--switch-interval
  0.005` measures Python's default instead.

Figures: `key_to_halted_p50_ms` / `p99_ms` over `--halts` presses; `ui_vs_headless_latency_ratio`, the core
loop's tick-processing p99 with the UI running over the same loop without the app (measured half before and
half after the UI window, so a drift in machine load is not credited to either; p50 ratio given too);
`ui_cpu_share`, the UI (main) thread's CPU seconds over the whole process's during the streaming window, and
`ui_cpu_core_fraction`, the UI thread's CPU seconds per wall second (fraction of one core), both from /proc.
The engine is simulated (not `build_runtime` + SimGateway), so the ratio is for this stand-in core loop.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import io
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from omega_tui.config import Settings
from omega_tui.core.hot_state import HotState
from omega_tui.core.types import Command, CommandResult, Halt, Quote
from omega_tui.core.views import RiskView
from omega_tui.ui.client import UI_SWITCH_INTERVAL_S, EngineDescription


def _risk(state: str) -> RiskView:
    return {
        "trading_state": state,
        "reason": "operator halt from the UI" if state == "HALTED" else "",
        "source": "operator:key" if state == "HALTED" else "",
        "since_utc": datetime.now(UTC).isoformat(),
        "limits": [{"name": "daily_loss", "used": 120.0, "limit": 2000.0, "level": "ok"}],
        "denied_today": 0,
        "orders_today": 0,
        "trading_day": "bench",
    }


class StreamingEngine:
    """An EngineClient over a real HotState, fed by a tick generator on its own thread and loop."""

    def __init__(self, state_dir: Path, instruments: int, rate: int) -> None:
        self.hot = HotState(state_dir, flush_ms=20)
        self.keys = [f"I{i:03d}" for i in range(instruments)]
        self.rate = rate
        self.latencies_s: list[float] = []
        self.ticks = 0
        self.recording = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-engine", daemon=True)
        self.limits = {key: Decimal(1_000_000) for key in self.keys}

    # ------------------------------------------------------------------ engine thread

    def start_engine(self) -> None:
        self.hot.start()
        self.hot.set("risk", _risk("ACTIVE"))
        self.thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        per_batch = max(1, self.rate // 1000)
        period = per_batch / self.rate
        prices = {key: Decimal(100 + i) for i, key in enumerate(self.keys)}
        rng = random.Random(7)
        steps = [Decimal("0.01") * k for k in (-2, -1, 0, 1, 2)]
        n = 0
        due = time.perf_counter()
        while not self._stop.is_set():
            due += period
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # behind schedule: catch up, but let commands in
            for _ in range(per_batch):
                key = self.keys[n % len(self.keys)]
                n += 1
                mid = prices[key] = prices[key] + steps[rng.randrange(5)]
                quote = Quote(
                    key=key,
                    seq=n,
                    recv_ns=time.monotonic_ns(),
                    recv_utc=datetime.now(UTC),
                    bid=mid - Decimal("0.01"),
                    ask=mid + Decimal("0.01"),
                    last=mid,
                    bid_size=100,
                    ask_size=200,
                    volume=n,
                    close=Decimal(100),
                )
                self.hot.put_quote(quote)
                # Stand-in for the per-tick core work: derive, check against a limit.
                spread = quote.spread
                if spread is not None and quote.mid is not None and quote.mid * 100 > self.limits[key]:
                    raise RuntimeError("unreachable")
            self.ticks += per_batch
            if self.recording:
                self.latencies_s.append(time.perf_counter() - due)
        self._done.set()

    def stop_engine(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
        self.hot.close()

    def set_state(self, state: str) -> None:
        """Flip the risk section from the engine thread (used to re-arm between halts)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.hot.set, "risk", _risk(state))

    # ------------------------------------------------------------------ EngineClient

    def describe(self) -> EngineDescription:
        return EngineDescription("SIM", "127.0.0.1", 0, "local")

    def start(self, app: Any) -> None:
        """The engine thread is already running (started before the app, for the headless phase)."""

    def stop(self) -> None:
        """The bench stops the engine itself after the app has exited."""

    @property
    def stopped(self) -> bool:
        return True

    def read(self, section: str) -> Any:
        return self.hot.get(section)

    def version(self, section: str) -> int:
        return self.hot.version(section)

    def quotes(self) -> Mapping[str, Quote]:
        return self.hot.quotes().copy()

    def submit(self, command: Command) -> concurrent.futures.Future[CommandResult]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(self._handle(command), self._loop)

    async def _handle(self, command: Command) -> CommandResult:
        if isinstance(command, Halt):
            self.hot.set("risk", _risk("HALTED"))
            return CommandResult("bench", True, "trading halted", datetime.now(UTC))
        return CommandResult("bench", False, f"{type(command).__name__} not simulated", datetime.now(UTC))


# --------------------------------------------------------------------------------------------- helpers


def _thread_cpu_s(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process, from /proc."""
    try:
        text = Path(f"/proc/self/task/{native_id}/stat").read_text()
    except OSError:
        return float("nan")
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _measure(engine: StreamingEngine, seconds: float) -> list[float]:
    engine.latencies_s = []
    engine.recording = True
    await asyncio.sleep(seconds)
    engine.recording = False
    return list(engine.latencies_s)


async def _headless_window(engine: StreamingEngine, seconds: float, label: str) -> tuple[list[float], float]:
    """One window of the engine loop with no app: its batch latencies and tick rate."""
    ticks0, wall0 = engine.ticks, time.perf_counter()
    latencies = await _measure(engine, seconds)
    rate = (engine.ticks - ticks0) / (time.perf_counter() - wall0)
    print(
        f"headless ({label}): {len(latencies)} batches, p50 {_percentile(latencies, 50) * 1e3:.3f} ms "
        f"p99 {_percentile(latencies, 99) * 1e3:.3f} ms, {rate:,.0f} ticks/s"
    )
    return latencies, rate


async def _run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from rich.console import Console

    from omega_tui.ui.app import OmegaApp
    from omega_tui.ui.panes.base import Pane

    sys.setswitchinterval(args.switch_interval)
    with tempfile.TemporaryDirectory(prefix="omega-bench-ui-") as tmp:
        engine = StreamingEngine(Path(tmp), args.instruments, args.rate)
        engine.start_engine()
        await asyncio.sleep(0.5)  # warm up

        # The headless baseline is the same engine loop in the same process with no app; it is measured
        # before and after the UI window so a change in machine load is not credited to either side.
        headless, headless_rate = await _headless_window(engine, args.seconds / 2, "before")

        settings = Settings(state={"dir": tmp}, ui={"refresh_hz": args.refresh_hz})
        app = OmegaApp(engine, settings, freeze_gc=True)  # as `omega-tui` runs it (launcher.run_ui)
        sink = io.StringIO()
        # "Drawn" = the terminal bytes of a frame carry it: the banner's "■ HALTED" (key → banner), and the
        # quotes pane's HALTED title once every pane is dressed (key → whole screen).
        seen: dict[str, float] = {}
        wanted: dict[str, asyncio.Event] = {"banner": asyncio.Event(), "screen": asyncio.Event()}
        active_drawn = asyncio.Event()
        original_display = app._display
        console = Console(file=sink, width=160, force_terminal=True, color_system="truecolor", legacy_windows=False)

        def display(screen: Any, renderable: Any) -> None:
            original_display(screen, renderable)
            if renderable is None:
                return
            console.print(renderable, end="")  # produce the terminal bytes as a real driver would
            frame = sink.getvalue()
            sink.seek(0)
            sink.truncate()
            now = time.perf_counter()
            if "■ HALTED" in frame and "banner" not in seen:
                seen["banner"] = now
                wanted["banner"].set()
            if "Quotes ■ HALTED" in frame and "screen" not in seen:
                seen["screen"] = now
                wanted["screen"].set()
            if "● ACTIVE" in frame:
                active_drawn.set()

        app._display = display  # type: ignore[method-assign]
        ui_thread = threading.main_thread().native_id
        key_to_banner: list[float] = []
        key_to_screen: list[float] = []
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await asyncio.sleep(0.5)
            cpu_ui0, cpu_all0, wall0 = _thread_cpu_s(ui_thread), time.process_time(), time.perf_counter()
            ticks0 = engine.ticks
            with_ui = await _measure(engine, args.seconds)
            wall = time.perf_counter() - wall0
            cpu_ui = _thread_cpu_s(ui_thread) - cpu_ui0
            cpu_all = time.process_time() - cpu_all0
            ui_rate = (engine.ticks - ticks0) / wall
            print(
                f"with UI:  {len(with_ui)} batches, p50 {_percentile(with_ui, 50) * 1e3:.3f} ms "
                f"p99 {_percentile(with_ui, 99) * 1e3:.3f} ms, {ui_rate:,.0f} ticks/s; "
                f"UI thread {cpu_ui:.2f} s of {cpu_all:.2f} s process CPU in {wall:.1f} s"
            )

            rng = random.Random(11)
            for _ in range(args.halts):
                seen.clear()
                for event in wanted.values():
                    event.clear()
                t0 = time.perf_counter()
                press = asyncio.create_task(pilot.press("ctrl+k"))  # the real key path: driver → bindings
                await asyncio.wait_for(wanted["banner"].wait(), 10)
                await asyncio.wait_for(wanted["screen"].wait(), 10)
                await press
                key_to_banner.append(seen["banner"] - t0)
                key_to_screen.append(seen["screen"] - t0)
                active_drawn.clear()
                engine.set_state("ACTIVE")
                await asyncio.wait_for(active_drawn.wait(), 10)
                await eventually_true(lambda: not any("HALTED" in str(p.border_title) for p in app.main.query(Pane)))
                # A random phase against the refresh timer, so the figure is not one lucky alignment.
                await asyncio.sleep(rng.uniform(0.05, 0.15))
            app.exit()
        after, after_rate = await _headless_window(engine, args.seconds / 2, "after")
        headless += after
        headless_rate = (headless_rate + after_rate) / 2
        engine.stop_engine()

    p99_ratio = _percentile(with_ui, 99) / _percentile(headless, 99)
    p50_ratio = _percentile(with_ui, 50) / _percentile(headless, 50)
    figures = {
        "key_to_halted_p50_ms": round(statistics.median(key_to_banner) * 1e3, 2),
        "key_to_halted_p99_ms": round(_percentile(key_to_banner, 99) * 1e3, 2),
        "key_to_halted_max_ms": round(max(key_to_banner) * 1e3, 2),
        "key_to_screen_halted_p50_ms": round(statistics.median(key_to_screen) * 1e3, 2),
        "key_to_screen_halted_p99_ms": round(_percentile(key_to_screen, 99) * 1e3, 2),
        "halts": len(key_to_banner),
        "ui_vs_headless_latency_ratio": round(p99_ratio, 2),
        "ui_vs_headless_latency_ratio_p50": round(p50_ratio, 2),
        "core_tick_latency_headless_p50_ms": round(_percentile(headless, 50) * 1e3, 3),
        "core_tick_latency_headless_p99_ms": round(_percentile(headless, 99) * 1e3, 3),
        "core_tick_latency_with_ui_p50_ms": round(_percentile(with_ui, 50) * 1e3, 3),
        "core_tick_latency_with_ui_p99_ms": round(_percentile(with_ui, 99) * 1e3, 3),
        "ticks_per_s_headless": round(headless_rate),
        "ticks_per_s_with_ui": round(ui_rate),
        "ui_cpu_share": round(cpu_ui / cpu_all, 3) if cpu_all else None,
        "ui_cpu_share_means": "UI (main) thread CPU seconds / whole process CPU seconds, streaming window",
        "ui_cpu_core_fraction": round(cpu_ui / wall, 3),
        "switch_interval_s": args.switch_interval,
        "instruments": args.instruments,
        "target_ticks_per_s": args.rate,
        "refresh_hz": args.refresh_hz,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "simulated": "engine = tick generator + HotState + Halt→risk flip on its own thread/loop; "
        "latency ratio measured on that core loop, not the real engine pipeline",
    }
    return figures


async def eventually_true(predicate: Any, seconds: float = 10.0) -> None:
    """Wait (polling every 10 ms) until `predicate()` holds; raise TimeoutError after `seconds`."""
    deadline = time.perf_counter() + seconds
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def main(argv: list[str]) -> dict[str, Any]:
    """Run the UI benchmark; returns the figures (the runner prints them as the last JSON line)."""
    parser = argparse.ArgumentParser(prog="python -m bench ui")
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--rate", type=int, default=20_000, help="ticks per second, all instruments together")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each latency window")
    parser.add_argument("--halts", type=int, default=40, help="keypress → HALTED samples")
    parser.add_argument("--refresh-hz", type=float, default=Settings().ui.refresh_hz)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=UI_SWITCH_INTERVAL_S,
        help="sys.setswitchinterval for the run (default: what `omega-tui` sets; Python's own is 0.005)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(_run_bench(args))
