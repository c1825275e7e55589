"""UI benchmark on the real workstation: keypress → HALTED drawn, the CPU of each process, what the UI costs the core.

The workstation is two processes since the UI left the engine's GIL (DESIGN §2), plus the gateway:

- the engine: `python -m omega_tui … --no-ui --exit-with-parent`, started by `launcher.EngineProcess` exactly
  as `omega-tui` starts it (here through `python -m bench.ui --probe-engine …`, which runs that same
  command line, `omega_tui.cli.main`, with read-only probes installed once the engine has started; they
  write one JSON line every 100 ms to a file: tick messages decoded, tick → decision samples, when the halt
  latched and when the global cancel went to ib_async, stamped with CLOCK_MONOTONIC, which every process on
  the machine shares);
- the UI: the real `OmegaApp` over `attach.SpawnedEngine` (`run_test`, 160×48 dashboard, `ui.refresh_hz`) in
  this process, which reads the engine's hot state from its state directory and sends commands on its direct
  channel to the engine (a socket pair, `core.control.ChannelClient`), as `omega-tui` does;
- the simulated IB Gateway, in its own process (`omega-tui sim-gateway`, `SimGatewayProcess`). In production
  it is the engine's child (sim mode); here this process starts it and the engine connects to it in gateway
  mode, so the benchmark can set and correct its rate (its stdin control lines): the market steps every
  `--tick-interval` s and, in burst mode, each step applies `burst` extra quote events to every streamed
  contract, chosen so that the tick messages (tickPrice + tickSize) reach `--rate` per second in total; the
  rate actually decoded by the engine's ib_async client is measured and reported (`ticks_per_s_*`).

The watchlist is every unexpired contract the simulator lists (18 fixed ones), then as many of its seeded
synthetic US stocks as it takes to reach `--instruments` (default 100); the one contract the simulated
account may not trade (CL) is streamed watch-only.

Phases, each a fresh engine process on a fresh state directory with its own gateway process (same seed and
rate): 1. headless (the engine alone, no UI attached); 2. UI; 3. headless again, so a drift in machine load
between phases is not credited to either side. `ui_vs_headless_latency_ratio` = the engine's tick → decision
p99 with the UI / headless (both headless windows pooled); the p50 ratio is given too.

Key → HALTED: from the kill-switch key's arrival in the terminal input thread (`--key-path driver`, the
default: a thread that sleeps until the chosen moment, then hands the key on as `OmegaDriver`'s input thread
does, which sends the Halt itself first; `--key-path pilot`: a Pilot `press` on the UI loop) to the first
frame whose terminal bytes, rendered as `App._display` renders them for a real driver
(`CompositorUpdate.render_segments`), carry the banner's "■ HALTED"; key → whole screen HALTED waits for the
quotes pane's "Quotes ■ HALTED" title too. Also reported: each stage of the halt (`STAGES`), the three
slowest halts stage by stage, and each process's garbage-collector pauses. Each halt is followed by a re-arm
(Resume); the next key comes once the re-armed panes are drawn, at a random phase over one refresh period,
so keys land at random moments of the steady state, not in the re-arm's repaint of every pane.

CPU: `ui_cpu_share` = this (UI) process's CPU seconds / (UI + engine process) during the UI streaming window,
from /proc (the UI process includes this benchmark's frame capture, as the old in-process figure did);
`*_cpu_core_fraction`: each process's CPU seconds per wall second (UI, engine, gateway).

    python -m bench ui [--rate 20000] [--instruments 100] [--seconds 10] [--halts 40]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
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
from omega_tui.core.types import Halt, Resume

MSGS_PER_QUOTE_EVENT = 4.0
"""Tick messages per simulated quote event (a changed bid or ask is a tickPrice + tickSize; trades add
more): only the first guess for the burst; the bench measures the real rate and corrects once."""
PROBE_PERIOD_S = 0.1
STAGES = (
    "action",
    "sent",
    "taken",
    "urgent",
    "latch_written",
    "journaled",
    "latched",
    "handled",
    "handed",
    "written",
    "answer",
    "cancel",
    "banner_updated",
    "banner",
    "screen",
)
"""Key → stage: the binding's action ran (UI); the Halt was written on the engine's channel (UI, the
kill switch's sender thread); the engine took the Halt (the thread reading the UI's direct channel); its
urgent handler started, wrote the latch to the state directory (fsynced), [sent the global cancel], journaled
the halt (written; the journal's group commit fsyncs it), published HALTED, returned (core loop); the answer
with its state was handed over (core loop) and sent (by the core loop itself when the socket takes it at
once, else by the channel's writer thread); the answer reached this process; the global cancel went to
ib_async; the banner was updated; the banner, then the whole screen, drawn HALTED."""
ENGINE_STAGES = ("taken", "urgent", "latch_written", "journaled", "latched", "handled", "handed", "written", "cancel")
"""The stages the engine's probe stamps (read from its file after each halt)."""
PROBE_FILE = "bench-probe.jsonl"


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


def _config(
    state_dir: Path, watchlist: list[dict[str, Any]], refresh_hz: float, port: int, client_id: int
) -> dict[str, Any]:
    return {
        # A client id per run: the previous run's connection may still be closing at the gateway.
        "ib": {
            "mode": "gateway",
            "port": port,
            "client_id": client_id,
            "max_market_data_lines": max(100, len(watchlist)),
        },
        "instruments": {"watchlist": watchlist},
        "market_data": {"warmup_bars": False},  # startup only; the streaming steady state is the same
        "state": {"dir": str(state_dir)},
        "ui": {"refresh_hz": refresh_hz},
        "logging": {"status_every_s": 0},
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def _write_toml(data: dict[str, Any], path: Path) -> Path:
    lines = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in table.items())
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------- engine side


class Probe:
    """Read-only instruments on the started engine (in the engine process): ticks decoded, halt, cancel."""

    def __init__(self, runtime: Any) -> None:
        from omega_tui.core.types import TradingState, TradingStateChanged

        self.runtime = runtime
        engines = runtime.engines
        self.window = engines.decision.core.metrics.tick_to_decision
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
            self.global_cancel_at = time.monotonic()
            return original_cancel(*args, **kwargs)

        ib.reqGlobalCancel = global_cancel
        # Stages of a Halt inside the engine: taken by a command endpoint (the UI's direct channel, or the
        # control queue), the urgent handler entered and returned (core loop), the answer handed over and sent.
        self.taken_at = self.urgent_at = self.handled_at = 0.0
        self.handed_at = self.written_at = 0.0
        self.latch_written_at = self.journaled_at = 0.0
        journal = engines.risk._journal
        original_record = journal.record

        def record(kind: str, **fields: Any) -> Any:
            try:
                return original_record(kind, **fields)
            finally:
                if kind == "halt":
                    self.journaled_at = time.monotonic()

        journal.record = record
        hot = engines.risk._hot
        original_write_through = hot.write_through

        def write_through(name: str, value: Any) -> None:
            try:
                original_write_through(name, value)
            finally:
                if name == "halt" and value is not None:
                    self.latch_written_at = time.monotonic()

        hot.write_through = write_through
        from omega_tui.core.control import ChannelServer, ControlEndpoint, ControlServer

        original_accept = ControlEndpoint._accept

        def accept(endpoint: ControlEndpoint, command_id: str, command: Any) -> None:
            if isinstance(command, Halt):
                self.taken_at = time.monotonic()
            original_accept(endpoint, command_id, command)

        ControlEndpoint._accept = accept  # type: ignore[method-assign,assignment]
        original_hand_over = ControlEndpoint._hand_over

        def hand_over(endpoint: ControlEndpoint, *args: Any) -> None:
            self.handed_at = time.monotonic()
            original_hand_over(endpoint, *args)

        ControlEndpoint._hand_over = hand_over  # type: ignore[method-assign,assignment]
        for server in (ControlServer, ChannelServer):

            def deliver(endpoint: Any, *args: Any, _original: Callable[..., None] = server._deliver) -> None:
                _original(endpoint, *args)
                self.written_at = time.monotonic()

            server._deliver = deliver  # type: ignore[method-assign,assignment]
        original_urgent = ChannelServer._hand_over_urgent

        def hand_over_urgent(endpoint: ChannelServer, *args: Any) -> None:
            sent = endpoint.sent_on_loop
            self.handed_at = time.monotonic()
            original_urgent(endpoint, *args)
            if endpoint.sent_on_loop != sent:  # sent by the loop itself (else `_deliver` stamps it)
                self.written_at = time.monotonic()

        ChannelServer._hand_over_urgent = hand_over_urgent  # type: ignore[method-assign]
        handler = runtime._urgent[Halt]

        def urgent(command: Any) -> Any:
            self.urgent_at = time.monotonic()
            try:
                return handler(command)
            finally:
                self.handled_at = time.monotonic()

        runtime._urgent[Halt] = urgent
        halted = TradingState.HALTED

        def state_changed(event: Any) -> None:
            if event.new is halted:
                self.latched_at = time.monotonic()

        runtime.bus.subscribe(TradingStateChanged, state_changed)
        self.gc_pauses = _GcPauses()  # the engine's collector pauses, from here to the end of its run

    def samples_since(self, total0: int) -> tuple[int, list[int]]:
        """(total now, the samples after `total0` still in the window) of tick → decision, in ns."""
        for _ in range(10):
            try:
                total, fifo = self.window.total, list(self.window._fifo)
                break
            except RuntimeError:  # mutated while copied (another thread): try again
                continue
        else:
            return total0, []
        n = total - total0
        return total, (fifo[len(fifo) - min(n, len(fifo)) :] if n > 0 else [])

    def run(self, path: Path, startup_errors: list[str]) -> None:
        """Write one JSON line every PROBE_PERIOD_S (a daemon thread of the engine process)."""
        total = self.window.total
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"t": time.monotonic(), "started": True, "errors": startup_errors}) + "\n")
            out.flush()
            while True:
                time.sleep(PROBE_PERIOD_S)
                total, new = self.samples_since(total)
                quotes = self.runtime.hot_state.quotes().copy()
                line = {
                    "t": time.monotonic(),
                    "ticks": self.ticks,
                    "new": new,
                    "quotes": len(quotes),
                    "seq": sum(q.seq for q in quotes.values()),
                    "latched": self.latched_at,
                    "latch_written": self.latch_written_at,
                    "journaled": self.journaled_at,
                    "taken": self.taken_at,
                    "urgent": self.urgent_at,
                    "handled": self.handled_at,
                    "handed": self.handed_at,
                    "written": self.written_at,
                    "cancel": self.global_cancel_at,
                    "gc": self.gc_pauses.counts(),
                }
                out.write(json.dumps(line) + "\n")
                out.flush()


def probe_engine_main(argv: list[str]) -> int:
    """`python -m bench.ui --probe-engine OMEGA-OPTIONS…`: `omega_tui.cli.main(OPTIONS)` with the probe."""
    import omega_tui.headless as headless
    from omega_tui.cli import main as omega_main

    path = Path(os.environ["OMEGA_BENCH_PROBE"])
    build = headless.build_runtime  # type: ignore[attr-defined]

    def build_with_probe(settings: Settings) -> Any:
        runtime = build(settings)

        def attach() -> None:
            runtime.wait_started()
            interval = os.environ.get("OMEGA_BENCH_ENGINE_SWITCH_INTERVAL")
            if interval:  # --engine-switch-interval: an A/B of the engine's GIL switch interval
                sys.setswitchinterval(float(interval))
            if runtime.startup_errors:
                path.write_text(json.dumps({"t": time.monotonic(), "errors": runtime.startup_errors}) + "\n")
                return
            Probe(runtime).run(path, [])

        threading.Thread(target=attach, name="bench-probe", daemon=True).start()
        return runtime

    headless.build_runtime = build_with_probe  # type: ignore[attr-defined,assignment]
    return omega_main(argv)


# --------------------------------------------------------------------------------------------- bench side


class ProbeReader:
    """Tails the engine's probe file: every line so far, and the latest counters."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = ""
        self.lines: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as f:
                f.seek(self._offset)
                data = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            return self.lines
        data = self._partial + data
        *complete, self._partial = data.split("\n")
        self.lines.extend(json.loads(line) for line in complete if line)
        return self.lines

    @property
    def last(self) -> dict[str, Any]:
        counters = [line for line in self.read() if "ticks" in line]
        return counters[-1] if counters else {}

    def errors(self) -> list[str] | None:
        for line in self.read():
            if "errors" in line:
                return list(line["errors"])
        return None


class Phase:
    """One phase's processes: the gateway (this process's child) and the engine (the product's child process)."""

    def __init__(self, args: argparse.Namespace, tmp: Path, run: int) -> None:
        from omega_tui.launcher import EngineProcess
        from omega_tui.sim.process import SimGatewayProcess

        self.args = args
        self.state_dir = tmp / f"run-{run}"
        self.state_dir.mkdir(mode=0o700)
        self.gateway = SimGatewayProcess(
            seed=args.seed,
            max_lines=max(100, len(args.watchlist)),
            extra_stocks=args.extra_stocks,
            tick_interval=args.tick_interval,
            burst=args.burst,
            log_level="WARNING",
        )
        self.gateway.start()  # on the main thread: PR_SET_PDEATHSIG follows the thread that started it
        data = _config(self.state_dir, args.watchlist, args.refresh_hz, self.gateway.port, 17 + run)
        self.settings = Settings.model_validate(data)
        config = _write_toml(data, tmp / f"config-{run}.toml")
        self.probe = ProbeReader(self.state_dir / PROBE_FILE)
        os.environ["OMEGA_BENCH_PROBE"] = str(self.probe.path)
        if args.engine_switch_interval:
            os.environ["OMEGA_BENCH_ENGINE_SWITCH_INTERVAL"] = repr(args.engine_switch_interval)
        from omega_tui.launcher import engine_argv

        argv = engine_argv(["--config", str(config)])
        # The product's command line, run by this module with the probe installed (same interpreter, options).
        argv[1:3] = ["-m", "bench.ui", "--probe-engine"]
        self.engine = EngineProcess(argv, cwd=str(Path(__file__).resolve().parents[1]))
        self.engine.start()

    async def wait_streaming(self, seconds: float = 120.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            errors = self.probe.errors()
            if errors:
                raise NotTradable.from_lines(errors)
            if errors is not None and self.probe.last.get("quotes", 0) >= len(self.args.watchlist):
                return
            if not self.engine.running():
                raise RuntimeError(f"the engine exited ({self.engine.returncode}): {self.engine.failure_lines()}")
            if time.monotonic() > deadline:
                have = self.probe.last.get("quotes", 0)
                if errors is not None and have:
                    print(f"warning: only {have} of {len(self.args.watchlist)} instruments have quotes; going on")
                    return
                log = self.state_dir / "logs" / "omega.log"
                tail = log.read_text(errors="replace").splitlines()[-30:] if log.exists() else []
                print("\n".join(["--- last lines of the engine log:", *tail]), file=sys.stderr)
                raise TimeoutError("timed out waiting for the engine to stream")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        try:
            self.engine.stop(60.0)
        finally:
            self.gateway.stop()


class NotTradable(RuntimeError):
    """The startup check refused instruments the simulated account may not trade (keys in `keys`)."""

    def __init__(self, keys: list[str], lines: list[str]) -> None:
        super().__init__("; ".join(lines))
        self.keys = keys

    @classmethod
    def from_lines(cls, lines: list[str]) -> Exception:
        refused = [line.split(" ", 1)[0] for line in lines if "may not trade it" in line]
        if len(refused) == len(lines):
            return cls(refused, lines)
        return RuntimeError("the engine did not start: " + "; ".join(lines))


async def _window(phase: Phase, seconds: float) -> dict[str, Any]:
    """One streaming window: tick → decision samples, tick messages and quote updates per second, CPU."""
    first = phase.probe.last
    engine_cpu0 = _process_cpu_s(phase.engine.pid or 0)
    gateway_cpu0 = _process_cpu_s(phase.gateway.pid or 0)
    ui_cpu0, wall0 = time.process_time(), time.monotonic()
    threads0 = _threads_cpu_s()
    await asyncio.sleep(seconds)
    threads = {name: cpu - threads0.get(name, 0.0) for name, cpu in _threads_cpu_s().items()}
    wall = time.monotonic() - wall0
    engine_cpu = _process_cpu_s(phase.engine.pid or 0) - engine_cpu0
    gateway_cpu = _process_cpu_s(phase.gateway.pid or 0) - gateway_cpu0
    ui_cpu = time.process_time() - ui_cpu0
    await asyncio.sleep(PROBE_PERIOD_S * 2)  # the probe line covering the window's end
    lines = [line for line in phase.probe.read() if "ticks" in line and first["t"] < line["t"] <= wall0 + wall]
    last = lines[-1] if lines else first
    span = (last["t"] - first["t"]) or float("nan")
    return {
        "t2d_ns": [ns for line in lines for ns in line["new"]],
        "ticks_per_s": (last["ticks"] - first["ticks"]) / span,
        "quotes_per_s": (last["seq"] - first["seq"]) / span,
        "wall": wall,
        "engine_core_fraction": engine_cpu / wall,
        "gateway_core_fraction": gateway_cpu / wall,
        "ui_core_fraction": ui_cpu / wall,
        "cpu_engine": engine_cpu,
        "cpu_ui": ui_cpu,
        "threads_core_fraction": {name: round(cpu / wall, 3) for name, cpu in threads.items() if cpu > 0},
    }


def _print_window(label: str, r: dict[str, Any]) -> None:
    t2d = r["t2d_ns"]
    print(
        f"{label}: {len(t2d)} decisions, tick→decision p50 {_percentile(t2d, 50) / 1e3:,.0f} µs "
        f"p99 {_percentile(t2d, 99) / 1e3:,.0f} µs; {r['ticks_per_s']:,.0f} tick msgs/s, "
        f"{r['quotes_per_s']:,.0f} quote updates/s; CPU cores: engine {r['engine_core_fraction']:.2f}, "
        f"gateway {r['gateway_core_fraction']:.2f}, this process {r['ui_core_fraction']:.2f}"
    )


async def _calibrate(phase: Phase, args: argparse.Namespace) -> None:
    """Correct the market step from what the engine really decodes (up to 3 times, until within 5%), then
    keep it for every phase."""
    for _ in range(3):
        first = phase.probe.last
        await asyncio.sleep(2.0)
        last = phase.probe.last
        rate = (last["ticks"] - first["ticks"]) / ((last["t"] - first["t"]) or float("nan"))
        step = args.tick_interval
        corrected = min(0.5, max(0.002, round(step * rate / args.rate, 4))) if rate > 0 else step
        if abs(rate / args.rate - 1) < 0.05 or corrected == step:
            print(f"burst {args.burst}, step {step} s: {rate:,.0f} tick msgs/s decoded; keeping it")
            break
        print(f"burst {args.burst}, step {step} s: {rate:,.0f} tick msgs/s decoded; step {corrected} s from now on")
        args.tick_interval = corrected
        phase.gateway.set_tick_interval(corrected)
        await asyncio.sleep(1.0)


async def _headless_phase(phase: Phase, args: argparse.Namespace, label: str) -> dict[str, Any]:
    """The engine process alone: nothing attached to it."""
    await phase.wait_streaming()
    await asyncio.sleep(args.warmup)
    if args.calibrate:
        await _calibrate(phase, args)
        args.calibrate = False
    result = await _window(phase, args.seconds / 2)
    _print_window(f"headless ({label})", result)
    return result


async def _ui_phase(phase: Phase, args: argparse.Namespace) -> dict[str, Any]:
    from rich.console import Console
    from textual._compositor import CompositorUpdate

    from omega_tui.attach import SpawnedEngine
    from omega_tui.ui.app import OmegaApp
    from omega_tui.ui.panes.base import Pane

    settings = phase.settings
    client = SpawnedEngine(settings, phase.engine)
    app = OmegaApp(client, settings, freeze_gc=True)  # as `omega-tui` runs it (launcher.run_workstation)
    sink = io.StringIO()
    seen: dict[str, float] = {}
    wanted: dict[str, asyncio.Event] = {"banner": asyncio.Event(), "screen": asyncio.Event()}
    active_drawn = asyncio.Event()
    rearm_drawn = asyncio.Event()
    original_display = app._display
    console = Console(file=sink, width=160, force_terminal=True, color_system="truecolor", legacy_windows=False)

    def display(screen: Any, renderable: Any) -> None:
        original_display(screen, renderable)
        if renderable is None:
            return
        if isinstance(renderable, CompositorUpdate):
            # The terminal bytes, produced as `App._display` produces them for a real driver (`run_test`'s
            # headless driver skips that).
            frame = renderable.render_segments(console)
        else:
            console.print(renderable, end="")
            frame = sink.getvalue()
            sink.seek(0)
            sink.truncate()
        now = time.monotonic()
        if "■ HALTED" in frame and "banner" not in seen:
            seen["banner"] = now
            wanted["banner"].set()
        if "Quotes ■ HALTED" in frame and "screen" not in seen:
            seen["screen"] = now
            wanted["screen"].set()
        if "● ACTIVE" in frame:
            active_drawn.set()
        if "Quotes" in frame and "■ HALTED" not in frame:
            rearm_drawn.set()  # the panes' borders drawn again without HALTED (after a re-arm)

    app._display = display  # type: ignore[method-assign]

    original_halt = app.action_halt

    def action_halt() -> None:
        seen.setdefault("action", time.monotonic())
        original_halt()

    app.action_halt = action_halt  # type: ignore[method-assign]
    channel = client._channel
    if channel is not None:
        original_send = channel.send

        def send(command: Any) -> str:
            command_id = original_send(command)
            if isinstance(command, Halt):
                seen.setdefault("sent", time.monotonic())
            return command_id

        channel.send = send  # type: ignore[method-assign]
    original_take = client._take_state

    def take_state(answer: Any) -> None:
        seen.setdefault("answer", time.monotonic())
        original_take(answer)

    client._take_state = take_state  # type: ignore[method-assign]

    def watch_banner() -> None:
        """Stamp the first poll that turns the banner HALTED, from either path (key answer or timer tick)."""
        banner = app._banner
        if banner is None or getattr(banner, "_bench_watched", False):
            return
        original_poll = banner.poll

        def poll(*a: Any, **kw: Any) -> Any:
            result = original_poll(*a, **kw)
            if banner.state == "HALTED":
                seen.setdefault("banner_updated", time.monotonic())
            return result

        banner.poll = poll  # type: ignore[method-assign]
        banner._bench_watched = True  # type: ignore[attr-defined]

    stages = STAGES
    out: dict[str, Any] = {stage: [] for stage in stages}
    keyboard = _InputThread(app)
    gc_pauses = _GcPauses()
    async with app.run_test(size=(160, 48)) as pilot:
        await phase.wait_streaming()
        await asyncio.sleep(args.warmup)
        await _wait(lambda: active_drawn.is_set() and len(client.quotes()) >= len(args.watchlist), 30, "ACTIVE drawn")
        watch_banner()
        profiler = _Profiler(args.profile, "steady")
        window = await _window(phase, args.seconds)
        profiler.stop()
        _print_window("with UI", window)
        print(f"this (UI) process's threads, CPU cores: {window['threads_core_fraction']}")
        out["window"] = window

        rng = random.Random(11)
        gc_pauses.reset()
        profiler = _Profiler(args.profile, "halts")
        for _ in range(args.halts):
            seen.clear()
            for event in wanted.values():
                event.clear()
            if args.key_path == "pilot":
                t0 = time.monotonic()
                press = asyncio.create_task(pilot.press("ctrl+k"))  # driver.send_message → bindings → action
            else:
                # The key arrives at t0, in the terminal input thread's hands (sleeping until then, as that
                # thread sits in select): its wake-up and its wait for the GIL count, the UI loop's work does not
                # delay the key (it does not, in the product).
                t0 = time.monotonic() + KEY_LEAD_S
                press = asyncio.wrap_future(keyboard.press_at(t0, "ctrl+k"))
            await asyncio.wait_for(wanted["banner"].wait(), 10)
            await asyncio.wait_for(wanted["screen"].wait(), 10)
            await press
            cancelled_after: Callable[[], bool] = functools.partial(_cancel_after, phase.probe, t0)
            await _wait(cancelled_after, 10, "the global cancel")
            last = phase.probe.last
            for stage in ENGINE_STAGES:
                seen[stage] = last[stage]
            for stage in stages:
                out[stage].append(seen.get(stage, float("nan")) - t0)
            await asyncio.sleep(0.3)  # let the cancel-all settle before re-arming
            active_drawn.clear()
            rearm_drawn.clear()
            answer = await asyncio.wrap_future(client.submit(Resume(source="bench", reason="bench re-arm")))
            if not answer.ok:
                raise RuntimeError(f"resume refused: {answer.message}")
            await asyncio.wait_for(active_drawn.wait(), 10)
            await _wait(
                lambda: not any("HALTED" in str(p.border_title) for p in app.main.query(Pane)), 10, "panes re-armed"
            )
            # The re-armed panes drawn (a repaint of every pane, a measurement artifact: in use a halt does not
            # follow a re-arm within a frame), then a random phase over one refresh period against the refresh
            # timer and the engine's flushes: the key lands at a random moment of the steady state.
            await asyncio.wait_for(rearm_drawn.wait(), 10)
            await asyncio.sleep(rng.uniform(0.05, 0.15))
        profiler.stop()
        gc_pauses.stop()
        print(f"this (UI) process's garbage collections during the halts: {gc_pauses.summary()}")
        engine_gc = phase.probe.last.get("gc")
        if engine_gc:
            print(f"the engine's garbage collections (whole run): {_gc_summary(engine_gc)}")
        await pilot.press("ctrl+q")
        await _wait(lambda: client.stopped, 60, "the engine to stop")
    client.close()
    return out


class _GcPauses:
    """The collector's pauses in this process (every thread stops for them), per generation."""

    def __init__(self) -> None:
        import gc

        self._gc = gc
        self._started = 0.0
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def stop(self) -> None:
        if self._callback in self._gc.callbacks:
            self._gc.callbacks.remove(self._callback)

    def reset(self) -> None:
        for pauses in self.pauses.values():
            pauses.clear()

    def counts(self) -> dict[str, list[float]]:
        """{generation: [collections, longest pause in ms]}."""
        return {str(g): [len(p), round(max(p, default=0.0) * 1e3, 1)] for g, p in self.pauses.items()}

    def summary(self) -> str:
        full = ", ".join(f"{pause * 1e3:.0f}" for pause in self.pauses[2])
        return f"{_gc_summary(self.counts())}; each full one, ms: [{full}]"


def _gc_summary(counts: dict[str, list[float]]) -> str:
    return "; ".join(f"gen{g} {int(n)} (max {ms:.1f} ms)" for g, (n, ms) in counts.items())


def _cancel_after(probe: ProbeReader, t0: float) -> bool:
    return bool(probe.last.get("cancel", 0) > t0)


async def _wait(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


KEY_LEAD_S = 0.02
"""The UI loop asks for a key this far ahead; the input thread presses it at that moment."""


class _InputThread:
    """A stand-in for OmegaDriver's input thread: presses a key at a given monotonic time."""

    def __init__(self, app: Any) -> None:
        import concurrent.futures
        import queue

        self.app = app
        self._requests: queue.SimpleQueue[tuple[float, str, concurrent.futures.Future[None]]] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="bench-input", daemon=True).start()

    def press_at(self, at: float, key: str) -> Any:
        import concurrent.futures

        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._requests.put((at, key, done))
        return done

    def _run(self) -> None:
        while True:
            at, key, done = self._requests.get()
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                _input_thread_key(self.app, key)
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(None)


def _input_thread_key(app: Any, key: str) -> None:
    """`--key-path driver`: what OmegaDriver's input thread does with a parsed key, from another thread."""
    from textual import events

    from omega_tui.ui.driver import kill_switch

    event = events.Key(key, None)
    event.set_sender(app)
    kill_switch(app, event)  # OmegaDriver.dispatch_input: the Halt goes to the engine from this thread
    app._driver.send_message(event)  # then the key goes to the app as process_message hands it on


# --------------------------------------------------------------------------------------------- helpers


def _process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of another process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan")
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        print(f"profile of the UI thread ({self.name}): {out / f'ui-{self.name}.txt'}")


def _engine_switch_interval() -> float:
    from omega_tui.headless import ENGINE_SWITCH_INTERVAL_S

    return ENGINE_SWITCH_INTERVAL_S


def _threads_cpu_s() -> dict[str, float]:
    """CPU seconds of each thread of this process by name (threads of one name summed), from /proc."""
    out: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            text = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        name = thread.name.split("_")[0].rstrip("-0123456789") or thread.name
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _percentile(values: list[float] | list[int], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[index])


def _ms(values: list[float], q: float) -> float:
    return round(_percentile([v for v in values if v == v], q) * 1e3, 2)


async def _run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from omega_tui.logs import setup_logging
    from omega_tui.ui.client import UI_SWITCH_INTERVAL_S

    sys.setswitchinterval(UI_SWITCH_INTERVAL_S)  # what launcher.run_workstation sets for the UI process
    args.extra_stocks = _extra_stocks(args.seed, args.instruments)
    args.watchlist = _watchlist(args.seed, args.instruments, args.extra_stocks)
    if args.tick_interval is None:  # one burst event per step per instrument gives the rate
        args.tick_interval = round(len(args.watchlist) * MSGS_PER_QUOTE_EVENT / args.rate, 4)
    args.burst = max(1, math.ceil(args.rate * args.tick_interval / (len(args.watchlist) * MSGS_PER_QUOTE_EVENT)))
    runs = iter(range(100))

    async def on_processes(tmp: Path, body: Callable[[Phase], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """Run one phase on a fresh engine process, state directory and gateway process."""
        phase = Phase(args, tmp, next(runs))
        try:
            return await body(phase)
        finally:
            await asyncio.to_thread(phase.stop)

    with tempfile.TemporaryDirectory(prefix="omega-bench-ui-") as name:
        tmp = Path(name)
        setup_logging(tmp, "INFO", log_name="ui.log")  # as run_workstation does: this process's log file
        logging.getLogger("ib_async").setLevel(logging.WARNING)
        args.calibrate = True
        try:
            before = await on_processes(tmp, lambda phase: _headless_phase(phase, args, "before"))
        except NotTradable as refused:
            print(f"watch only (no trading permission at the simulated account): {', '.join(refused.keys)}")
            for item in args.watchlist:
                if item["key"] in refused.keys:
                    item["watch_only"] = True
            before = await on_processes(tmp, lambda phase: _headless_phase(phase, args, "before"))
        ui = await on_processes(tmp, lambda phase: _ui_phase(phase, args))
        after = await on_processes(tmp, lambda phase: _headless_phase(phase, args, "after"))

    headless = before["t2d_ns"] + after["t2d_ns"]
    window = ui["window"]
    with_ui = window["t2d_ns"]
    banner = ui["banner"]
    print("key → stage, ms (p50 / p99 / max):")
    for stage in STAGES:
        values = [v for v in ui[stage] if v == v]
        if values:
            print(f"  {stage:15} {_ms(values, 50):8.1f} {_ms(values, 99):8.1f} {max(values) * 1e3:8.1f}")
    slowest = sorted(range(len(banner)), key=lambda i: banner[i], reverse=True)[:3]
    print("the slowest halts, key → stage in ms:")
    for i in slowest:
        print("  " + " ".join(f"{stage} {ui[stage][i] * 1e3:.1f}" for stage in STAGES if ui[stage][i] == ui[stage][i]))
    headless_rate = (before["ticks_per_s"] + after["ticks_per_s"]) / 2
    cpu_both = window["cpu_ui"] + window["cpu_engine"]
    return {
        "key_to_halted_p50_ms": round(statistics.median(banner) * 1e3, 2),
        "key_to_halted_p99_ms": _ms(banner, 99),
        "key_to_halted_max_ms": round(max(banner) * 1e3, 2),
        "key_to_screen_halted_p50_ms": _ms(ui["screen"], 50),
        "key_to_screen_halted_p99_ms": _ms(ui["screen"], 99),
        "key_to_action_p99_ms": _ms(ui["action"], 99),
        "key_to_answer_p50_ms": _ms(ui["answer"], 50),
        "key_to_answer_p99_ms": _ms(ui["answer"], 99),
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
        "quote_updates_per_s_headless": round((before["quotes_per_s"] + after["quotes_per_s"]) / 2),
        "quote_updates_per_s_with_ui": round(window["quotes_per_s"]),
        "ticks_mean": "tick messages (tickPrice + tickSize) decoded by the engine's ib_async client",
        "ui_cpu_share": round(window["cpu_ui"] / cpu_both, 3) if cpu_both else None,
        "ui_cpu_share_means": "UI process CPU seconds / (UI process + engine process), UI streaming window",
        "ui_cpu_core_fraction": round(window["ui_core_fraction"], 3),
        "engine_cpu_core_fraction_with_ui": round(window["engine_core_fraction"], 3),
        "engine_cpu_core_fraction_headless": round(
            (before["engine_core_fraction"] + after["engine_core_fraction"]) / 2, 3
        ),
        "gateway_cpu_core_fraction_with_ui": round(window["gateway_core_fraction"], 3),
        "gateway_cpu_core_fraction_headless": round(
            (before["gateway_core_fraction"] + after["gateway_core_fraction"]) / 2, 3
        ),
        "engine": "real, two processes: `omega-tui --no-ui --exit-with-parent` (EngineProcess) + OmegaApp over "
        "SpawnedEngine; the simulated gateway in a third process",
        "instruments_requested": args.instruments,
        "instruments_streamed": len(args.watchlist),
        "instruments_synthetic": args.extra_stocks,
        "sim_burst": args.burst,
        "sim_tick_interval_s": args.tick_interval,
        "target_ticks_per_s": args.rate,
        "refresh_hz": args.refresh_hz,
        "engine_switch_interval_s": args.engine_switch_interval or _engine_switch_interval(),
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
        default="driver",
        help="pilot: Pilot.press on the UI loop; driver: the key from another thread as OmegaDriver's input "
        "thread hands it on (the kill switch sent from that thread first)",
    )
    parser.add_argument("--refresh-hz", type=float, default=Settings().ui.refresh_hz)
    parser.add_argument("--profile", metavar="DIR", help="pyinstrument the UI thread (needs pyinstrument)")
    parser.add_argument(
        "--engine-switch-interval",
        type=float,
        help="the engine process's GIL switch interval, for an A/B (default: the engine's own, "
        "headless.ENGINE_SWITCH_INTERVAL_S)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(_run_bench(args))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe-engine"]:
        sys.exit(probe_engine_main(sys.argv[2:]))
    print("run `python -m bench ui`", file=sys.stderr)
    sys.exit(2)
