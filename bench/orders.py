"""Order manager latency: intent → placeOrder "written", and fill event → position and P&L updated.

"Wire" here is the moment the order manager hands the bracket's transmitting leg (the stop-loss, which makes
IB release the chain) to `OrderPort.place_order` of an in-process FakeBroker, i.e. the point where the real
ib_async adapter would encode and write it to the socket. It includes validation, bracket construction,
the submission queue and the journal's "submit" record (flushed, fsynced in the first run), but not
ib_async's encoding or the kernel's socket write.

"Fill → P&L" is `on_execution` (dedupe, journal "fill" record, position and average cost, state machine,
FillReceived on the bus, protection fitted to the new position) plus `day_pnl()` over every position, i.e.
what the risk engine reads next; measured with 48 working orders in the book (the risk limit is 50).

Both are measured twice: with the journal fsyncing as in production (`intent_to_wire_p99_us`, …) and without
fsync (`…_nofsync`), which isolates the order manager's own cost from the disk's.

Usage: python -m bench orders [--n N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from omega_tui.config import ExecutionSettings, Settings, StateSettings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.orders import OrderManager
from omega_tui.core.types import (
    BrokerOrder,
    ExecutionReport,
    InstrumentSpec,
    IntentSource,
    OrderIntent,
    Side,
    VerifiedInstrument,
)


class _TimedBroker:
    """An OrderPort that only timestamps each place_order (perf_counter_ns) as the "written to wire" moment."""

    def __init__(self) -> None:
        self._next = 1
        self.place_ns: list[int] = []

    def next_order_id(self) -> int:
        self._next += 1
        return self._next - 1

    def place_order(self, order: BrokerOrder) -> None:
        self.place_ns.append(time.perf_counter_ns())

    def cancel_order(self, order_id: int) -> None:
        pass

    def global_cancel(self) -> None:
        pass

    @property
    def connected(self) -> bool:
        return True


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _measure(n: int, fsync: bool) -> tuple[list[float], list[float], list[float]]:
    """(intent → first leg, intent → transmitting leg, fill → P&L) samples in microseconds."""
    with tempfile.TemporaryDirectory(prefix="omega-bench-orders-") as tmp:
        state = Path(tmp)
        clock = FakeClock()  # business time; moved 1 s per intent so the 45/s throttle never queues
        settings = Settings(
            execution=ExecutionSettings(orders_per_second=45, max_child_qty=10**9), state=StateSettings(dir=state)
        )
        hot = HotState(state)
        journal = Journal(state, clock, fsync=fsync)
        broker = _TimedBroker()
        manager = OrderManager(settings, clock, EventBus(), hot, journal, broker)
        inst = VerifiedInstrument(
            InstrumentSpec("AAPL", "AAPL"),
            265598,
            Decimal("0.01"),
            1,
            "SMART",
            "NASDAQ",
            "USD",
            "Apple",
            "",
            "",
            (),
            True,
        )
        manager.set_instruments({"AAPL": inst})

        # ---- intent → placeOrder (transmitting leg)
        to_wire: list[float] = []
        to_first_leg: list[float] = []
        for i in range(n + 200):
            intent = OrderIntent(
                intent_id=f"b{i}",
                key="AAPL",
                side=Side.BUY,
                quantity=100,
                limit_price=Decimal("190.05"),
                take_profit=Decimal("190.35"),
                stop_loss=Decimal("189.85"),
                source=IntentSource.STRATEGY,
                created_ns=0,
            )
            clock.advance(1.0)
            n0 = len(broker.place_ns)
            t0 = time.perf_counter_ns()
            manager.submit(intent)
            if i >= 200:  # warm-up excluded
                to_first_leg.append((broker.place_ns[n0] - t0) / 1000)
                to_wire.append((broker.place_ns[-1] - t0) / 1000)

        # ---- fill → position and P&L, in a realistic book: a fresh manager holding as many working orders as
        # the risk engine allows (16 brackets = 48 orders, max_open_orders is 50), not the 3,000 brackets the
        # first phase left working, which no engine would ever carry.
        journal.close()
        hot.close()
        hot = HotState(state / "fills")
        journal = Journal(state / "fills", clock, fsync=fsync)
        manager = OrderManager(settings, clock, EventBus(), hot, journal, broker)
        manager.set_instruments({"AAPL": inst})
        for i in range(16):
            clock.advance(1.0)
            manager.submit(
                OrderIntent(
                    f"w{i}", "AAPL", Side.BUY, 100, Decimal("180.00"), Decimal("180.30"), Decimal("179.80"),
                    IntentSource.STRATEGY, 0,
                )
            )  # fmt: skip
        buy = manager.submit(
            OrderIntent("fb", "AAPL", Side.BUY, 10**7, Decimal("190.00"), None, None, IntentSource.STRATEGY, 0)
        )[0]
        clock.advance(1.0)
        sell = manager.submit(
            OrderIntent("fs", "AAPL", Side.SELL, 10**7, Decimal("190.10"), None, None, IntentSource.STRATEGY, 0)
        )[0]
        when = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
        fill_us: list[float] = []
        cum = {buy: 0, sell: 0}
        for i in range(n + 200):
            oid, side = (buy, Side.BUY) if i % 2 == 0 else (sell, Side.SELL)
            price = Decimal("190.00") + Decimal(i % 7) / 100
            cum[oid] += 10
            report = ExecutionReport(
                f"x{i}", oid, 0, "AAPL", 265598, side, 10, price, cum[oid], price, when, clock.monotonic_ns()
            )
            t0 = time.perf_counter_ns()
            manager.on_execution(report)
            manager.day_pnl()
            t1 = time.perf_counter_ns()
            if i >= 200:
                fill_us.append((t1 - t0) / 1000)
        journal.close()
        hot.close()
    return to_first_leg, to_wire, fill_us


def main(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m bench orders")
    parser.add_argument("--n", type=int, default=3000, help="intents and fills to time (default 3000)")
    args = parser.parse_args(argv)
    wire = "FakeBroker.place_order of the bracket's transmitting leg (in-process; no ib_async encode, no socket)"
    print(f"intent -> wire, where wire = {wire}; n={args.n}")
    figures: dict[str, object] = {"wire": wire, "n": args.n}
    # Production journals fsync every "submit" and "fill" record (durable kinds) before acting; the disk's
    # fsync time then dominates. The run without fsync shows the order manager's own cost.
    for fsync, suffix in ((True, ""), (False, "_nofsync")):
        first, to_wire, fill_us = _measure(args.n, fsync)
        print(
            f"journal fsync {'on ' if fsync else 'off'}: intent -> first leg p50 {_pct(first, 0.5)} us; "
            f"-> transmitting leg p50 {_pct(to_wire, 0.5)} us p99 {_pct(to_wire, 0.99)} us (target p99 < 200 us); "
            f"fill -> position + day P&L p50 {_pct(fill_us, 0.5)} us p99 {_pct(fill_us, 0.99)} us "
            f"mean {statistics.fmean(fill_us):.1f} us (target p99 < 100 us)"
        )
        figures |= {
            f"intent_to_first_leg_p50_us{suffix}": _pct(first, 0.5),
            f"intent_to_wire_p50_us{suffix}": _pct(to_wire, 0.5),
            f"intent_to_wire_p99_us{suffix}": _pct(to_wire, 0.99),
            f"fill_to_pnl_p50_us{suffix}": _pct(fill_us, 0.5),
            f"fill_to_pnl_p99_us{suffix}": _pct(fill_us, 0.99),
        }
    return figures
