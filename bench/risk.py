"""Risk benchmark: the pre-trade check's latency, and Halt → cancels written under a streaming market.

`python -m bench risk [--checks N] [--trials N] [--orders N] [--rate TICKS_PER_S]`

1. `check_p99_us`: `RiskEngine.check` over many intents (mostly the full approval path, which runs every
   rule, plus denials), each timed on its own.
2. `halt_to_cancels_p99_ms`: with N working orders at the broker and quotes published into the bus at the
   given rate by a task on the same loop, the time from `RiskEngine.halt()` (which first writes the latch to
   disk and fsyncs the journal) until the order manager hands the global cancel to the broker port (IB's
   `reqGlobalCancel`, one message that cancels every order, bracket children included). Uses the real
   `OrderManager` with `tests.fakes.FakeBroker` when both import, else the risk tests' fake order manager;
   the output says which.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from omega_tui.config import ExecutionSettings, RiskSettings, Settings, StateSettings
from omega_tui.core.bus import EventBus
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.risk import RiskEngine
from omega_tui.core.types import (
    InstrumentSpec,
    IntentSource,
    OrderIntent,
    Quote,
    QuoteUpdated,
    Side,
    VerifiedInstrument,
)

KEYS = ("AAPL", "MSFT", "SPY")


class OffsetClock:
    """The system clock plus an offset the setup can jump forward (to place orders past the client throttle)."""

    def __init__(self) -> None:
        self.offset_ns = 0

    def monotonic_ns(self) -> int:
        return time.monotonic_ns() + self.offset_ns

    def now_utc(self) -> datetime:
        return datetime.now(UTC) + timedelta(microseconds=self.offset_ns // 1000)


def _instrument(key: str) -> VerifiedInstrument:
    return VerifiedInstrument(
        spec=InstrumentSpec(key=key, symbol=key),
        con_id=1000 + KEYS.index(key),
        min_tick=Decimal("0.01"),
        multiplier=1,
        exchange="SMART",
        primary_exchange="NASDAQ",
        currency="USD",
        long_name=key,
        time_zone="US/Eastern",
        trading_hours="",
        order_types=("LMT",),
        permission_ok=True,
    )


def _quote(clock: OffsetClock, key: str, seq: int, mid: Decimal) -> Quote:
    return Quote(
        key=key,
        seq=seq,
        recv_ns=clock.monotonic_ns(),
        recv_utc=clock.now_utc(),
        bid=mid - Decimal("0.01"),
        ask=mid + Decimal("0.01"),
        last=mid,
        bid_size=100,
        ask_size=100,
    )


_ids = itertools.count(1)


def _intent(key: str, side: Side, qty: int, limit: str, *, bracket: bool = True) -> OrderIntent:
    lim = Decimal(limit)
    tp, sl = (lim + 1, lim - 1) if side is Side.BUY else (lim - 1, lim + 1)
    return OrderIntent(
        intent_id=f"bench-{next(_ids)}",
        key=key,
        side=side,
        quantity=qty,
        limit_price=lim,
        take_profit=tp if bracket else None,
        stop_loss=sl if bracket else None,
        source=IntentSource.STRATEGY,
        created_ns=0,
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _build(state_dir: Path, clock: OffsetClock) -> tuple[RiskEngine, Any, Any, EventBus, HotState, Journal, str]:
    settings = Settings(
        state=StateSettings(dir=state_dir),
        risk=RiskSettings(
            require_bracket=False,
            max_open_orders=10_000,
            max_orders_per_second=100_000.0,
            max_orders_per_minute=1_000_000.0,
            max_position_qty=1_000_000,
            max_position_notional=1e12,
            max_order_notional=1e9,
        ),
        execution=ExecutionSettings(cancel_all_timeout_s=0.05, orders_per_second=45.0),
    )
    bus = EventBus()
    hot = HotState(state_dir)
    journal = Journal(state_dir, clock)
    instruments = {k: _instrument(k) for k in KEYS}
    try:
        from omega_tui.core.orders import OrderManager
        from tests.fakes import FakeBroker

        broker: Any = FakeBroker(clock, auto_ack=True)
        orders: Any = OrderManager(settings, clock, bus, hot, journal, broker)
        broker.attach(orders)
        orders.set_instruments(instruments)
        which = "real OrderManager + tests.fakes.FakeBroker"
    except ImportError:
        from tests.risk.fakes import FakeOrders

        broker = None
        orders = FakeOrders(clock)
        which = "fake order manager (tests.risk.fakes.FakeOrders)"
    risk = RiskEngine(settings, clock, bus, hot, journal, orders)
    risk.set_instruments(instruments)
    return risk, orders, broker, bus, hot, journal, which


def bench_check(risk: RiskEngine, n: int) -> dict[str, float]:
    """Time `check` alone over a mix of intents; most take the full approval path."""
    intents = []
    for i in range(256):
        key = KEYS[i % 3]
        side = Side.BUY if i % 2 else Side.SELL
        if i % 8 == 7:
            intents.append(_intent(key, side, 10_000_000, "100.00"))  # denied: fat finger
        elif i % 8 == 6:
            intents.append(_intent(key, side, 10, "150.00"))  # denied: price collar
        else:
            intents.append(_intent(key, side, 1 + i % 50, f"{100 + (i % 5 - 2) / 100:.2f}"))
    for it in intents * 4:  # warm up
        risk.check(it)
    samples: list[float] = []
    approved = 0
    perf = time.perf_counter_ns
    for i in range(n):
        it = intents[i % len(intents)]
        t0 = perf()
        decision = risk.check(it)
        samples.append((perf() - t0) / 1000.0)
        approved += decision.approved
    return {
        "check_p50_us": round(_pct(samples, 0.50), 2),
        "check_p99_us": round(_pct(samples, 0.99), 2),
        "check_max_us": round(max(samples), 2),
        "check_n": n,
        "check_approved_share": round(approved / n, 3),
    }


async def _stream(clock: OffsetClock, hot: HotState, bus: EventBus, rate: float, stop: asyncio.Event) -> int:
    """Publish quotes into the bus at `rate` per second (in 1 ms batches, catching up if the loop lags)."""
    seq = 0
    mids = {k: Decimal("100.00") for k in KEYS}
    start = time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - start) * rate)
        while seq < due:
            key = KEYS[seq % 3]
            mids[key] += Decimal("0.01") if seq % 7 < 3 else Decimal("-0.01")
            q = _quote(clock, key, seq, mids[key])
            hot.put_quote(q)
            bus.publish(QuoteUpdated(q))
            seq += 1
        await asyncio.sleep(0.001)
    return seq


async def bench_halt(n_orders: int, trials: int, rate: float, checks: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="omega-bench-risk-") as tmp:
        state_dir = Path(tmp) / "state"
        state_dir.mkdir(mode=0o700)
        clock = OffsetClock()
        risk, orders, broker, bus, hot, journal, which = _build(state_dir, clock)
        for k in KEYS:
            hot.put_quote(_quote(clock, k, 0, Decimal("100.00")))
        check = bench_check(risk, checks)

        if hasattr(orders, "start"):
            await orders.start()
        await risk.start()
        # Working orders: 100 single limit entries, placed past the client-side throttle by jumping the clock.
        for i in range(n_orders):
            key = KEYS[i % 3]
            hot.put_quote(_quote(clock, key, 0, Decimal("100.00")))
            decision = risk.submit(_intent(key, Side.BUY, 1, "99.90", bracket=False))
            if not decision.approved:
                raise RuntimeError(f"setup order denied: {decision.reason}")
            clock.offset_ns += 1_000_000_000
            if hasattr(orders, "pump"):
                orders.pump()
        working = orders.open_order_count()

        loaded = bench_check(risk, 50_000)  # the same, with the working orders the order manager scans
        cancel_at: list[int] = []
        cancelled = asyncio.Event()
        if broker is not None:
            original = broker.global_cancel

            def global_cancel() -> None:
                cancel_at.append(time.perf_counter_ns())
                cancelled.set()
                original()

            broker.global_cancel = global_cancel
        else:
            original_all = orders.cancel_all

            async def cancel_all(reason: str) -> bool:
                cancel_at.append(time.perf_counter_ns())
                cancelled.set()
                result: bool = await original_all(reason)
                return result

            orders.cancel_all = cancel_all

        stop = asyncio.Event()
        streamer = asyncio.create_task(_stream(clock, hot, bus, rate, stop))
        await asyncio.sleep(0.2)  # the market is streaming
        samples: list[float] = []
        stream_start = time.perf_counter()
        for _ in range(trials):
            before = len(cancel_at)
            cancelled.clear()
            t0 = time.perf_counter_ns()
            risk.halt("bench:halt", "benchmark halt")
            await cancelled.wait()
            samples.append((cancel_at[before] - t0) / 1e6)
            task = risk._cancel_task
            if task is not None:
                await task
            result = risk.resume("operator:bench")
            if not result.ok:
                raise RuntimeError(result.message)
            await asyncio.sleep(0.02)
        stop.set()
        ticks = await streamer
        elapsed = time.perf_counter() - stream_start + 0.2
        await risk.stop()
        if hasattr(orders, "stop"):
            await orders.stop()
        journal.close()
        hot.close()
    return {
        **check,
        "check_p99_us_with_working_orders": loaded["check_p99_us"],
        "check_p50_us_with_working_orders": loaded["check_p50_us"],
        "halt_to_cancels_p50_ms": round(statistics.median(samples), 3),
        "halt_to_cancels_p99_ms": round(_pct(samples, 0.99), 3),
        "halt_to_cancels_max_ms": round(max(samples), 3),
        "halt_trials": trials,
        "working_orders": working,
        "quotes_per_s": round(ticks / elapsed),
        "order_manager": which,
    }


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench risk")
    parser.add_argument("--checks", type=int, default=200_000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20_000.0)
    args = parser.parse_args(argv)
    figures = asyncio.run(bench_halt(args.orders, args.trials, args.rate, args.checks))
    print(
        f"check p50 {figures['check_p50_us']} us, p99 {figures['check_p99_us']} us (target < 50 us); "
        f"halt -> global cancel p50 {figures['halt_to_cancels_p50_ms']} ms, "
        f"p99 {figures['halt_to_cancels_p99_ms']} ms (target < 10 ms) with {figures['working_orders']} working "
        f"orders and {figures['quotes_per_s']} quotes/s; {figures['order_manager']}"
    )
    return figures
