"""Property: whatever duplicates, reorderings and omissions of orderStatus/openOrder the broker produces, an
order ends in the same state, with the same fills and position, as under IB's canonical sequence."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from omega_tui.config import ExecutionSettings, Settings, StateSettings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.orders import OrderManager
from omega_tui.core.types import (
    BrokerError,
    BrokerOrder,
    CommissionReport,
    ExecutionReport,
    OpenOrderReport,
    OrderState,
    OrderStatusReport,
    OrderType,
    Side,
)
from tests.fakes import FakeBroker
from tests.orders.conftest import instrument, intent

QTY = 10


@dataclass(frozen=True)
class Ev:
    kind: str  # "status", "open", "exec", "commission", "error"
    report: object
    essential: bool  # may not be omitted (executions, commissions, and the last carrier of the final state)


@dataclass
class Outcome:
    state: OrderState
    filled: int
    exec_ids: frozenset[str]
    position: tuple[int, Decimal, Decimal, Decimal]


_TMP = tempfile.TemporaryDirectory(prefix="omega-orders-property-")
_DIR = Path(_TMP.name)
# One hot state and journal for every example: opening a diskcache per example would dominate the run time.
_HOT = HotState(_DIR)
_JOURNAL = Journal(_DIR, FakeClock(), fsync=False)
_SETTINGS = Settings(execution=ExecutionSettings(), state=StateSettings(dir=_DIR))


def _run(events: list[Ev], side: Side) -> Outcome:
    clock = FakeClock()
    settings, hot, journal = _SETTINGS, _HOT, _JOURNAL
    broker = FakeBroker(clock)
    manager = OrderManager(settings, clock, EventBus(), hot, journal, broker)
    broker.attach(manager)
    manager.set_instruments({"AAPL": instrument("AAPL")})
    tp, sl = ("101.00", "99.00") if side is Side.BUY else ("99.00", "101.00")
    manager.submit(intent(QTY, side=side, tp=tp, sl=sl, intent_id="p"))
    handlers: dict[str, Callable[[object], None]] = {
        "status": manager.on_order_status,  # type: ignore[dict-item]
        "open": manager.on_open_order,  # type: ignore[dict-item]
        "exec": manager.on_execution,  # type: ignore[dict-item]
        "commission": manager.on_commission,  # type: ignore[dict-item]
        "error": manager.on_broker_error,  # type: ignore[dict-item]
    }
    for ev in events:
        clock.advance(ns=1000)
        handlers[ev.kind](ev.report)
    order = manager.order(1)
    assert order is not None
    pos = manager.positions()["AAPL"] if "AAPL" in manager.positions() else None
    position = (0, Decimal(0), Decimal(0), Decimal(0))
    if pos is not None:
        position = (pos.quantity, pos.avg_cost, pos.realized, pos.commissions)
    return Outcome(order.state, order.filled, frozenset(order.fills), position)


def canonical(side: Side, fills: list[tuple[int, Decimal]], ending: str) -> list[Ev]:
    """IB's usual order of callbacks for order 1 (wire spec §1.8)."""
    t = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
    order = BrokerOrder(1, "AAPL", 1004, side, QTY, OrderType.LMT, Decimal("100.00"), order_ref="p:entry")

    def status(name: str, cum: int, avg: Decimal | None, essential: bool = False) -> Ev:
        return Ev("status", OrderStatusReport(1, name, cum, QTY - cum, avg, 501, 0, None, 0), essential)

    def open_(name: str) -> Ev:
        return Ev("open", OpenOrderReport(order, name, 501, 17, 0), False)

    events = [open_("Submitted"), status("Submitted", 0, None)]
    cum, notional = 0, Decimal(0)
    for i, (qty, price) in enumerate(fills):
        cum += qty
        notional += qty * price
        avg = notional / cum
        exec_id = f"e{i}"
        ex = ExecutionReport(exec_id, 1, 501, "AAPL", 1004, side, qty, price, cum, avg, t, 0, "p:entry")
        name = "Filled" if cum == QTY else "Submitted"
        events += [
            Ev("exec", ex, True),
            status(name, cum, avg),
            open_(name),
            Ev("commission", CommissionReport(exec_id, Decimal("0.35") * qty, "USD", None, 0), True),
        ]
    if ending == "cancelled":
        events += [
            status("Cancelled", cum, None),
            Ev("error", BrokerError(1, 202, "Order Canceled - reason:", 0), False),
        ]
    return events


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Side, list[Ev], list[Ev]]:
    side = draw(st.sampled_from([Side.BUY, Side.SELL]))
    ending = draw(st.sampled_from(["working", "filled", "cancelled"]))
    if ending == "filled":
        sizes = draw(st.lists(st.integers(1, QTY), min_size=1, max_size=4).filter(lambda s: sum(s) <= QTY))
        sizes[-1] += QTY - sum(sizes)
    else:
        sizes = draw(st.lists(st.integers(1, 4), max_size=3).filter(lambda s: sum(s) < QTY))
    prices = [Decimal("100.00") + Decimal(draw(st.integers(-20, 20))) / 100 for _ in sizes]
    canon = canonical(side, list(zip(sizes, prices, strict=True)), ending)

    # Omissions: any orderStatus/openOrder/202 may go missing, except that the final state must still be
    # carried by something (an ack when there are no fills, a cancel report when it ends cancelled).
    carriers: list[int] = []
    if ending == "cancelled":
        carriers = [
            i for i, e in enumerate(canon) if e.kind == "error" or getattr(e.report, "status", "") == "Cancelled"
        ]
    elif not sizes:
        carriers = [0, 1]
    keep_one = draw(st.sampled_from(carriers)) if carriers else None
    mutated = [
        e for i, e in enumerate(canon) if e.essential or i == keep_one or not draw(st.booleans(), label=f"drop {i}")
    ]
    # Duplicates, then an arbitrary reordering.
    dupes = draw(st.lists(st.sampled_from(mutated), max_size=6))
    mutated = draw(st.permutations(mutated + dupes))
    return side, canon, mutated


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_events_duplicated_reordered_or_missing_then_same_outcome_as_canonical(
    scenario: tuple[Side, list[Ev], list[Ev]],
) -> None:
    side, canon, mutated = scenario
    expected = _run(canon, side)
    got = _run(mutated, side)
    assert got == expected


def test_canonical_sequences_end_where_ib_says() -> None:
    full = _run(canonical(Side.BUY, [(4, Decimal("100")), (6, Decimal("101"))], "filled"), Side.BUY)
    assert full.state is OrderState.FILLED and full.filled == 10
    assert full.position == (10, Decimal("100.6"), Decimal(0), Decimal("3.50"))
    cancelled = _run(canonical(Side.SELL, [(3, Decimal("100"))], "cancelled"), Side.SELL)
    assert cancelled.state is OrderState.CANCELLED and cancelled.filled == 3 and cancelled.position[0] == -3
    working = _run(canonical(Side.BUY, [], "working"), Side.BUY)
    assert working.state is OrderState.SUBMITTED and working.filled == 0
