"""UI benchmark on the real engine: keypress → HALTED drawn, UI CPU share, and what the UI costs the core.

The engine is the real one, built and run as `omega-tui` builds and runs it:

- The simulated IB Gateway runs in its own process, as in production (`launcher.gateway_for` starts
  `omega-tui sim-gateway` as a child process, as a real IB Gateway is a process of its own), and streams the
  watchlist. Its benchmark knobs set the rate: the market steps every `--tick-interval` s and, in burst mode
  (`--burst`, then `burst N` lines on its stdin), each step applies `burst` extra quote events to every
  streamed contract. `burst` is chosen so that the tick messages (tickPrice + tickSize, what IB
  sends and ib_async decodes) reach `--rate` per second in total; the rate actually decoded by the engine's
  ib_async client is measured and reported (`ticks_per_s_*`), as are the normalised quote updates per second.
- The watchlist is every unexpired contract the simulator lists (18 fixed ones: stocks, futures, options,
  FX), then as many of its seeded synthetic US stocks (`sim.extra_stocks`) as it takes to reach
  `--instruments` (default 100). The one contract the simulated account may not trade (CL) is streamed
  watch-only, as a trader would configure it.
- `build_runtime(settings)` wires every engine (broker session, order manager, risk, decision loop with its
  models, AI tasks). The GIL switch interval is the one `omega-tui` sets (`UI_SWITCH_INTERVAL_S`) for the
  whole process, and the garbage collector is frozen after startup in both phases, as both front ends do.

Phases, each a fresh runtime on a fresh state directory and its own embedded gateway (same seed and rate;
a run inherits no positions or orders from the one before, as each `omega-tui` run starts its own gateway):

1. headless: the runtime alone, on its own thread and loop (what `LocalEngine` runs), no app;
2. UI: the real `OmegaApp` over `LocalEngine(runtime)` (`run_test`, 160×48 dashboard, `ui.refresh_hz`);
3. headless again, so a drift in machine load between the phases is not credited to either side.

The core's own tick → decision latency is the decision engine's `metrics.tick_to_decision` (what it publishes
as `tick_to_decision_p50_us`/`p99_us` in the `scheduler` section); the bench reads the raw samples of each
window from that window (read-only). `ui_vs_headless_latency_ratio` = p99 with the UI / p99 headless
(both headless windows pooled); the p50 ratio is given too.

Key → HALTED: a Pilot `press` of the kill-switch key (driver → priority binding → `Halt` to the engine;
`--key-path driver` instead hands the key on from another thread as `OmegaDriver`'s input thread does, which
sends the Halt itself before the app sees the key)
to the first frame whose terminal bytes, rendered as a real driver would (to a null file, so writing to a tty
is not included), carry the banner's "■ HALTED"; key → whole screen HALTED waits for the quotes pane's
"Quotes ■ HALTED" title too. Also reported, from the engine side: key → halt latched (the risk engine's
`TradingStateChanged`, on the core thread) and key → global cancel handed to ib_async (`reqGlobalCancel`),
which must not depend on the UI at all. Between halts the bench sends `Resume` through the same client and
waits for "● ACTIVE" to be drawn, then a random phase against the refresh timer.

`ui_cpu_share`: the UI (main) thread's CPU seconds over the whole engine process's (engine, diskcache writer
included; the gateway is another process now) during the UI streaming window, from /proc;
`ui_cpu_core_fraction`: the UI thread's CPU seconds per wall second; `gateway_cpu_core_fraction`: the
simulated gateway process's.

    python -m bench ui [--rate 20000] [--instruments 100] [--seconds 10] [--halts 40]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from omega_tui.config import Settings
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import Resume, TradingState, TradingStateChanged
from omega_tui.ui.client import UI_SWITCH_INTERVAL_S

MSGS_PER_QUOTE_EVENT = 4.0
"""Tick messages per simulated quote event (a changed bid or ask is a tickPrice + tickSize; trades add
more): only the first guess for the burst; the bench measures the real rate and corrects once."""


# --------------------------------------------------------------------------------------------- set-up


def _extra_stocks(seed: int, limit: int) -> int:
    """Synthetic stocks the simulator needs besides its fixed unexpired contracts to list `limit` instruments."""
    from omega_tui.sim.engine.contracts import ContractDB

    db = ContractDB(seed)
    return max(0, limit - sum(1 for c in db.all() if not db.is_expired(c)))


def _watchlist(seed: int, limit: int, extra_stocks: int) -> list[dict[str, Any]]:
    """Every unexpired contract the simulator lists (up to `limit`), as watchlist entries that resolve uniquely."""
    from omega_tui.sim.engine.contracts import ContractDB

    db = ContractDB(seed, extra_stocks=extra_stocks)
    out: list[dict[str, Any]] = []
    for c in db.all():
        if db.is_expired(c) or len(out) >= limit:
            continue
        item: dict[str, Any] = {
            "key": c.local_symbol.replace(" ", "") if c.sec_type in ("OPT", "FUT", "CASH") else c.symbol,
            "symbol": c.symbol,
            "sec_type": c.sec_type,
            "exchange": c.exchange,
            "currency": c.currency,
        }
        if c.primary_exchange:
            item["primary_exchange"] = c.primary_exchange
        if c.sec_type in ("FUT", "OPT"):
            item["expiry"] = c.last_trade_date
            item["multiplier"] = c.multiplier
        if c.sec_type == "OPT":
            item["strike"] = c.strike
            item["right"] = c.right
        out.append(item)
    return out


def _settings(
    state_dir: Path,
    watchlist: list[dict[str, Any]],
    refresh_hz: float,
    client_id: int = 17,
    seed: int = 7,
    extra_stocks: int = 0,
) -> Settings:
    return Settings.model_validate(
        {
            # A client id per run: the previous run's connection may still be closing at the gateway.
            "ib": {"mode": "sim", "client_id": client_id, "max_market_data_lines": max(100, len(watchlist))},
            "sim": {"seed": seed, "extra_stocks": extra_stocks},
            "instruments": {"watchlist": watchlist},
            "market_data": {"warmup_bars": False},  # startup only; the streaming steady state is the same
            "state": {"dir": str(state_dir)},
            "ui": {"refresh_hz": refresh_hz},
            "logging": {"status_every_s": 0},
        }
    )


class Probe:
    """Read-only instruments on one started runtime: tick messages decoded, halt latched, global cancel sent."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        engines = runtime.engines
        self.decision = engines.decision
        self.ticks = 0
        self.latched_at = 0.0
        self.global_cancel_at = 0.0
        ib = engines.broker.ib
        decoder = ib.client.decoder
        for msg_id in (1, 2):  # tickPrice, tickSize: what ib_async decodes for the engine
            handler = decoder.handlers[msg_id]

            def counting(fields: list[str], _h: Callable[[list[str]], None] = handler) -> None:
                self.ticks += 1
                _h(fields)

            decoder.handlers[msg_id] = counting
        original_cancel = ib.reqGlobalCancel

        def global_cancel(*args: Any, **kwargs: Any) -> Any:
            self.global_cancel_at = time.perf_counter()
            return original_cancel(*args, **kwargs)

        ib.reqGlobalCancel = global_cancel
        runtime.bus.subscribe(TradingStateChanged, self._state_changed)

    def _state_changed(self, event: TradingStateChanged) -> None:
        if event.new is TradingState.HALTED:
            self.latched_at = time.perf_counter()

    def t2d_samples(self) -> tuple[int, list[int]]:
        """(total so far, the window's samples in ns) of the decision engine's tick → decision latency."""
        window = self.decision.core.metrics.tick_to_decision
        return window.total, list(window._fifo)

    def quotes_seq(self) -> int:
        return sum(q.seq for q in self.runtime.hot_state.quotes().copy().values())


GATEWAY_PID: list[int] = []
"""The running simulated gateway's process id (set while a phase runs)."""


async def _window(probe: Probe, seconds: float) -> dict[str, Any]:
    """Measure one streaming window: tick → decision samples, tick messages and quote updates per second."""
    total0, _ = probe.t2d_samples()
    gateway_cpu0 = _process_cpu_s(GATEWAY_PID[0]) if GATEWAY_PID else float("nan")
    ticks0, seq0, wall0 = probe.ticks, probe.quotes_seq(), time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - wall0
    gateway_cpu = (_process_cpu_s(GATEWAY_PID[0]) if GATEWAY_PID else float("nan")) - gateway_cpu0
    total1, fifo = probe.t2d_samples()
    n = total1 - total0
    if n > len(fifo):
        print(f"warning: {n} decisions in the window but only the last {len(fifo)} are kept", file=sys.stderr)
    samples = fifo[len(fifo) - min(n, len(fifo)) :] if n > 0 else []
    return {
        "t2d_ns": samples,
        "ticks_per_s": (probe.ticks - ticks0) / wall,
        "quotes_per_s": (probe.quotes_seq() - seq0) / wall,
        "wall": wall,
        "gateway_core_fraction": gateway_cpu / wall,
    }


LOG_FILE: list[Path] = []
"""The log file every phase writes to (set once logging is set up), shown when the bench gives up."""


async def _wait(predicate: Callable[[], bool], seconds: float, what: str, quiet: bool = False) -> None:
    deadline = time.perf_counter() + seconds
    while not predicate():
        if time.perf_counter() > deadline:
            for path in LOG_FILE if not quiet else []:
                lines = path.read_text(errors="replace").splitlines()[-40:]
                print("\n".join(["--- last lines of the engine log:", *lines]), file=sys.stderr)
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _wait_streaming(runtime: Runtime, instruments: int, seconds: float = 30.0) -> None:
    """Until every instrument has a quote; after `seconds`, go on with what streams (and say so)."""
    try:
        await _wait(lambda: len(runtime.hot_state.quotes()) >= instruments, seconds, "", quiet=True)
    except TimeoutError:
        have = len(runtime.hot_state.quotes())
        if not have:
            raise
        print(f"warning: only {have} of {instruments} instruments have quotes after {seconds:g} s; going on")


class NotTradable(RuntimeError):
    """The startup check refused instruments the simulated account may not trade (keys in `keys`)."""

    def __init__(self, keys: list[str], lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.keys = keys


def _check_started(runtime: Runtime) -> None:
    lines = runtime.startup_errors
    if not lines:
        return
    refused = [line.split(" ", 1)[0] for line in lines if "may not trade it" in line]
    if len(refused) == len(lines):
        raise NotTradable(refused, lines)
    raise RuntimeError("the engine did not start: " + "; ".join(lines))


# --------------------------------------------------------------------------------------------- phases


async def _headless_phase(settings: Settings, args: argparse.Namespace, label: str) -> dict[str, Any]:
    """The runtime alone on its own thread and loop (what LocalEngine runs), no app."""
    from omega_tui.core.wiring import build_runtime

    runtime = build_runtime(settings)
    box: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        box["stop"] = (loop, stop)
        try:
            box["code"] = loop.run_until_complete(runtime.run(stop))
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"bench-engine-{label}", daemon=True)
    thread.start()
    try:
        await _wait(lambda: runtime.wait_started(0), 120, "the engine to start")
        _check_started(runtime)
        gc.freeze()  # as the headless front end does once started
        await _wait_streaming(runtime, args.streamed)
        probe = Probe(runtime)
        await asyncio.sleep(args.warmup)
        if args.calibrate is not None:
            await args.calibrate(probe)
            args.calibrate = None
        result = await _window(probe, args.seconds / 2)
    finally:
        if "stop" in box:
            loop, stop = box["stop"]
            if not loop.is_closed():
                loop.call_soon_threadsafe(stop.set)
        await asyncio.to_thread(thread.join, 60)
    _print_window(f"headless ({label})", result)
    return result


def _print_window(label: str, r: dict[str, Any]) -> None:
    t2d = r["t2d_ns"]
    print(
        f"{label}: {len(t2d)} decisions, tick→decision p50 {_percentile(t2d, 50) / 1e3:,.0f} µs "
        f"p99 {_percentile(t2d, 99) / 1e3:,.0f} µs; {r['ticks_per_s']:,.0f} tick msgs/s, "
        f"{r['quotes_per_s']:,.0f} quote updates/s; gateway process {r['gateway_core_fraction']:.2f} core"
    )


async def _ui_phase(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from rich.console import Console

    from omega_tui.core.wiring import build_runtime
    from omega_tui.ui.app import OmegaApp
    from omega_tui.ui.client import LocalEngine
    from omega_tui.ui.panes.base import Pane

    runtime = build_runtime(settings)
    client = LocalEngine(runtime)
    app = OmegaApp(client, settings, freeze_gc=True)  # as `omega-tui` runs it (launcher.run_ui)
    sink = io.StringIO()
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

    # Stage stamps on the UI thread: the binding's action ran; the banner was first updated to HALTED.
    original_halt = app.action_halt

    def action_halt() -> None:
        seen.setdefault("action", time.perf_counter())
        original_halt()

    def watch_banner() -> None:
        """Stamp the first poll that turns the banner HALTED, from either path (key answer or timer tick)."""
        banner = app._banner
        if banner is None or getattr(banner, "_bench_watched", False):
            return
        original_poll = banner.poll

        def poll(*a: Any, **kw: Any) -> Any:
            result = original_poll(*a, **kw)
            if banner.state == "HALTED":
                seen.setdefault("banner_updated", time.perf_counter())
            return result

        banner.poll = poll  # type: ignore[method-assign]
        banner._bench_watched = True  # type: ignore[attr-defined]

    app.action_halt = action_halt  # type: ignore[method-assign]
    ui_thread = threading.main_thread().native_id or 0
    stages = ("action", "latched", "cancel", "banner_updated", "banner", "screen")
    out: dict[str, Any] = {stage: [] for stage in stages}
    async with app.run_test(size=(160, 48)) as pilot:
        await _wait(lambda: runtime.wait_started(0), 60, "the engine to start")
        _check_started(runtime)
        await _wait_streaming(runtime, args.streamed)
        probe = Probe(runtime)
        await asyncio.sleep(args.warmup)
        await _wait(lambda: active_drawn.is_set(), 10, "ACTIVE drawn")
        watch_banner()
        profiler = _Profiler(args.profile, "steady")
        cpu_ui0, cpu_all0 = _thread_cpu_s(ui_thread), time.process_time()
        window = await _window(probe, args.seconds)
        cpu_ui = _thread_cpu_s(ui_thread) - cpu_ui0
        cpu_all = time.process_time() - cpu_all0
        profiler.stop()
        window.update(cpu_ui=cpu_ui, cpu_all=cpu_all)
        _print_window("with UI", window)
        print(f"UI thread {cpu_ui:.2f} s of {cpu_all:.2f} s process CPU in {window['wall']:.1f} s")
        out["window"] = window

        rng = random.Random(11)
        profiler = _Profiler(args.profile, "halts")
        for _ in range(args.halts):
            seen.clear()
            for event in wanted.values():
                event.clear()
            probe.latched_at = probe.global_cancel_at = 0.0
            t0 = time.perf_counter()
            if args.key_path == "pilot":
                press = asyncio.create_task(pilot.press("ctrl+k"))  # driver.send_message → bindings → action
            else:
                press = asyncio.create_task(asyncio.to_thread(_input_thread_key, app, "ctrl+k"))
            await asyncio.wait_for(wanted["banner"].wait(), 10)
            await asyncio.wait_for(wanted["screen"].wait(), 10)
            await press
            await _wait(lambda: probe.global_cancel_at > 0, 10, "the global cancel")
            seen["latched"], seen["cancel"] = probe.latched_at, probe.global_cancel_at
            for stage in stages:
                out[stage].append(seen[stage] - t0)
            await asyncio.sleep(0.3)  # let the cancel-all settle before re-arming
            active_drawn.clear()
            answer = await asyncio.wrap_future(client.submit(Resume(source="bench", reason="bench re-arm")))
            if not answer.ok:
                raise RuntimeError(f"resume refused: {answer.message}")
            await asyncio.wait_for(active_drawn.wait(), 10)
            await _wait(
                lambda: not any("HALTED" in str(p.border_title) for p in app.main.query(Pane)), 10, "panes re-armed"
            )
            # A random phase against the refresh timer, so the figure is not one lucky alignment.
            await asyncio.sleep(rng.uniform(0.05, 0.15))
        profiler.stop()
        await pilot.press("ctrl+q")
        await _wait(lambda: client.stopped, 60, "the engine to stop")
    return out


# --------------------------------------------------------------------------------------------- helpers


def _input_thread_key(app: Any, key: str) -> None:
    """`--key-path driver`: what OmegaDriver's input thread does with a parsed key, from another thread."""
    from textual import events

    from omega_tui.ui.driver import kill_switch

    event = events.Key(key, None)
    event.set_sender(app)
    kill_switch(app, event)  # OmegaDriver.dispatch_input: the Halt goes to the engine from this thread
    app._driver.send_message(event)  # then the key goes to the app as process_message hands it on


class _Profiler:
    """`--profile DIR`: pyinstrument on the UI thread (only), written as DIR/ui-NAME.txt and .pyisession."""

    def __init__(self, directory: str | None, name: str) -> None:
        self.directory, self.name, self.profiler = directory, name, None
        if directory:
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.0005, async_mode="disabled")
            self.profiler.start()

    def stop(self) -> None:
        if self.profiler is None or self.directory is None:
            return
        self.profiler.stop()
        out = Path(self.directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"ui-{self.name}.txt").write_text(self.profiler.output_text(unicode=True, show_all=False))
        if self.profiler.last_session is not None:
            self.profiler.last_session.save(str(out / f"ui-{self.name}.pyisession"))
        print(f"profile of the UI thread ({self.name}): {out / f'ui-{self.name}.txt'}")


def _process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu_s(native_id: int) -> float:
    """CPU seconds (user + system) of one thread of this process, from /proc."""
    try:
        text = Path(f"/proc/self/task/{native_id}/stat").read_text()
    except OSError:
        return float("nan")
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float] | list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[index])


def _ms(values: list[float], q: float) -> float:
    return round(_percentile(values, q) * 1e3, 2)


async def _run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from omega_tui.launcher import embedded_gateway, gateway_for
    from omega_tui.logs import setup_logging
    from omega_tui.sim.process import SimGatewayProcess

    sys.setswitchinterval(args.switch_interval)  # what launcher.run_ui sets for the whole process
    extra_stocks = _extra_stocks(args.seed, args.instruments)
    watchlist = _watchlist(args.seed, args.instruments, extra_stocks)
    args.streamed = len(watchlist)
    if args.tick_interval is None:  # one burst event per step per instrument gives the rate
        args.tick_interval = round(len(watchlist) * MSGS_PER_QUOTE_EVENT / args.rate, 4)
    burst = max(1, math.ceil(args.rate * args.tick_interval / (len(watchlist) * MSGS_PER_QUOTE_EVENT)))
    current: list[SimGatewayProcess] = []

    async def on_gateway(phase: Callable[[Settings], Awaitable[dict[str, Any]]], tmp: Path) -> dict[str, Any]:
        """Run one phase on its own embedded gateway (as each `omega-tui` run starts one), on a fresh state
        directory: a run inherits no positions, orders, latch or journal from the one before (the engine's
        recovery would otherwise protect the previous run's positions in a burst of orders)."""
        run = next(runs)
        settings = _settings(tmp / f"run-{run}", watchlist, args.refresh_hz, 17 + run, args.seed, extra_stocks)
        gateway = embedded_gateway(settings, tick_interval=args.tick_interval, burst=burst)
        # Started on this (the main) thread: the child's PR_SET_PDEATHSIG follows the thread that started it.
        with gateway_for(settings, gateway) as effective:
            current[:] = [gateway]
            GATEWAY_PID[:] = [gateway.pid or 0]
            try:
                return await phase(effective)
            finally:
                current.clear()
                GATEWAY_PID.clear()

    async def calibrate(probe: Probe) -> None:
        """Correct the market step from what the engine really decodes (up to 3 times, until within 5%), then
        keep it for every phase."""
        for _ in range(3):
            ticks0, wall0 = probe.ticks, time.perf_counter()
            await asyncio.sleep(2.0)
            rate = (probe.ticks - ticks0) / (time.perf_counter() - wall0)
            step = args.tick_interval
            corrected = min(0.5, max(0.002, round(step * rate / args.rate, 4))) if rate > 0 else step
            if abs(rate / args.rate - 1) < 0.05 or corrected == step or not current:
                print(f"burst {burst}, step {step} s: {rate:,.0f} tick msgs/s decoded; keeping it")
                break
            print(f"burst {burst}, step {step} s: {rate:,.0f} tick msgs/s decoded; step {corrected} s from now on")
            args.tick_interval = corrected
            current[0].set_tick_interval(corrected)
            await asyncio.sleep(1.0)

    def headless_phase(label: str) -> Callable[[Settings], Awaitable[dict[str, Any]]]:
        return lambda settings: _headless_phase(settings, args, label)

    runs = iter(range(100))
    with tempfile.TemporaryDirectory(prefix="omega-bench-ui-") as name:
        tmp = Path(name)
        LOG_FILE[:] = [setup_logging(tmp, "INFO")]  # as the CLI does: a log file in the state directory
        logging.getLogger("ib_async").setLevel(logging.WARNING)  # not its periodic portfolio lines
        args.calibrate = calibrate
        try:
            before = await on_gateway(headless_phase("before"), tmp)
        except NotTradable as refused:
            # Stream them anyway, display only (as a trader would configure them), and start again.
            print(f"watch only (no trading permission at the simulated account): {', '.join(refused.keys)}")
            for item in watchlist:
                if item["key"] in refused.keys:
                    item["watch_only"] = True
            before = await on_gateway(headless_phase("before"), tmp)
        ui = await on_gateway(lambda settings: _ui_phase(settings, args), tmp)
        after = await on_gateway(headless_phase("after"), tmp)

    headless = before["t2d_ns"] + after["t2d_ns"]
    window = ui["window"]
    with_ui = window["t2d_ns"]
    banner = ui["banner"]
    print("key → stage, ms (p50 / p99 / max):")
    for stage in ("action", "latched", "cancel", "banner_updated", "banner", "screen"):
        values = ui[stage]
        print(f"  {stage:15} {_ms(values, 50):8.1f} {_ms(values, 99):8.1f} {max(values) * 1e3:8.1f}")
    headless_rate = (before["ticks_per_s"] + after["ticks_per_s"]) / 2
    return {
        "key_to_halted_p50_ms": round(statistics.median(banner) * 1e3, 2),
        "key_to_halted_p99_ms": _ms(banner, 99),
        "key_to_halted_max_ms": round(max(banner) * 1e3, 2),
        "key_to_screen_halted_p50_ms": _ms(ui["screen"], 50),
        "key_to_screen_halted_p99_ms": _ms(ui["screen"], 99),
        "key_to_action_p99_ms": _ms(ui["action"], 99),
        "key_to_halt_latched_p50_ms": _ms(ui["latched"], 50),
        "key_to_halt_latched_p99_ms": _ms(ui["latched"], 99),
        "key_to_global_cancel_p50_ms": _ms(ui["cancel"], 50),
        "key_to_global_cancel_p99_ms": _ms(ui["cancel"], 99),
        "key_to_banner_updated_p99_ms": _ms(ui["banner_updated"], 99),
        "halts": len(banner),
        "key_path": args.key_path,
        "ui_vs_headless_latency_ratio": round(_percentile(with_ui, 99) / _percentile(headless, 99), 2),
        "ui_vs_headless_latency_ratio_p50": round(_percentile(with_ui, 50) / _percentile(headless, 50), 2),
        "tick_to_decision_headless_p50_us": round(_percentile(headless, 50) / 1e3, 1),
        "tick_to_decision_headless_p99_us": round(_percentile(headless, 99) / 1e3, 1),
        "tick_to_decision_with_ui_p50_us": round(_percentile(with_ui, 50) / 1e3, 1),
        "tick_to_decision_with_ui_p99_us": round(_percentile(with_ui, 99) / 1e3, 1),
        "decisions_headless": len(headless),
        "decisions_with_ui": len(with_ui),
        "ticks_per_s_headless": round(headless_rate),
        "ticks_per_s_with_ui": round(window["ticks_per_s"]),
        "quote_updates_per_s_with_ui": round(window["quotes_per_s"]),
        "ticks_mean": "tick messages (tickPrice + tickSize) decoded by the engine's ib_async client",
        "ui_cpu_share": round(window["cpu_ui"] / window["cpu_all"], 3) if window["cpu_all"] else None,
        "ui_cpu_share_means": "UI (main) thread CPU seconds / engine process CPU seconds, UI streaming window",
        "ui_cpu_core_fraction": round(window["cpu_ui"] / window["wall"], 3),
        "engine_process_cpu_core_fraction_with_ui": round(window["cpu_all"] / window["wall"], 3),
        "gateway_cpu_core_fraction_with_ui": round(window["gateway_core_fraction"], 3),
        "gateway_cpu_core_fraction_headless": round(
            (before["gateway_core_fraction"] + after["gateway_core_fraction"]) / 2, 3
        ),
        "engine": "real: build_runtime + LocalEngine + OmegaApp; the simulated gateway in its own process",
        "instruments_requested": args.instruments,
        "instruments_streamed": len(watchlist),
        "instruments_synthetic": extra_stocks,
        "sim_burst": burst,
        "sim_tick_interval_s": args.tick_interval,
        "target_ticks_per_s": args.rate,
        "switch_interval_s": args.switch_interval,
        "refresh_hz": args.refresh_hz,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> dict[str, Any]:
    """Run the UI benchmark; returns the figures (the runner prints them as the last JSON line)."""
    parser = argparse.ArgumentParser(prog="python -m bench ui")
    parser.add_argument("--instruments", type=int, default=100, help="instruments to stream")
    parser.add_argument("--rate", type=int, default=20_000, help="tick messages per second, all instruments")
    parser.add_argument(
        "--tick-interval", type=float, help="simulated market step (s); default: what gives --rate with burst 1"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="UI latency window; each headless one is half")
    parser.add_argument("--warmup", type=float, default=2.0, help="streaming before each window (s)")
    parser.add_argument("--halts", type=int, default=40, help="keypress → HALTED samples")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--key-path",
        choices=("pilot", "driver"),
        default="pilot",
        help="pilot: Pilot.press on the UI loop; driver: the key from another thread as OmegaDriver's input "
        "thread hands it on (the kill switch sent from that thread first)",
    )
    parser.add_argument("--profile", metavar="DIR", help="pyinstrument the UI thread (needs pyinstrument)")
    parser.add_argument("--refresh-hz", type=float, default=Settings().ui.refresh_hz)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=UI_SWITCH_INTERVAL_S,
        help="sys.setswitchinterval for the run (default: what `omega-tui` sets; Python's own is 0.005)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(_run_bench(args))
