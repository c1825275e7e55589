"""Streaming into the hot state, read from a second process; bar warm-up with pacing; a real fill's reports."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal

from omega_tui.core.clock import FakeClock
from omega_tui.core.throttle import Backoff, HistoricalPacer
from omega_tui.core.types import (
    BrokerOrder,
    CommissionReport,
    ExecutionReport,
    OpenOrderReport,
    OrderStatusReport,
    OrderType,
    Side,
)
from omega_tui.sim.gateway import SimGateway
from tests.data.conftest import Harness, wait_until
from tests.data.test_orders_adapter import Sink
from tests.data.test_pacing import FakeTime

READER = """
import json, sys
from pathlib import Path
from omega_tui.core.hot_state import HotStateReader
reader = HotStateReader(Path(sys.argv[1]))
quote = reader.quote("AAPL")
print(json.dumps({
    "seq": quote.seq if quote else None,
    "bid": str(quote.bid) if quote else None,
    "connection": reader.get("connection"),
    "report": [row["instrument"] for row in reader.get("startup_report", [])],
    "textual_loaded": "textual" in sys.modules,
}))
reader.close()
"""


async def test_hot_state_is_readable_from_another_process(make_session: Callable[..., Harness]) -> None:
    h = make_session()
    await h.session.start()
    await wait_until(lambda: h.hot_state.quote("AAPL") is not None, "an AAPL quote")
    h.hot_state.flush()
    mine = h.hot_state.quote("AAPL")
    assert mine is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", READER, str(h.state_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen["seq"] is not None and seen["seq"] >= mine.seq  # the engine only moves forward
    assert Decimal(seen["bid"]) > 0
    assert seen["connection"]["state"] == "UP" and seen["connection"]["port"] == h.session.port
    assert seen["report"] == ["AAPL", "MSFT", "SPY"]
    assert not seen["textual_loaded"]


async def test_startup_warms_up_recent_bars_for_every_instrument(make_session: Callable[..., Harness]) -> None:
    h = make_session(market_data={"warmup_bars": True, "warmup_duration": "1800 S", "warmup_bar_size": "1 min"})
    await h.session.start()
    await asyncio.wait_for(h.session.bars_ready.wait(), 20)
    for key in ("AAPL", "MSFT", "SPY"):
        bars = h.session.bars.bars(key)
        assert 25 <= len(bars) <= 32, (key, len(bars))
        assert all(a.start_utc < b.start_utc for a, b in itertools.pairwise(bars))
        assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in bars)
    assert len(h.session.pacer.sent_log) == 3


async def test_a_162_from_the_gateway_is_retried_after_backoff(
    gateway: SimGateway, make_session: Callable[..., Harness]
) -> None:
    h = make_session()
    await h.session.start()
    # The pacer's time is a fake clock: the 15 s identical-request rule and the backoff take no real time.
    clock = FakeClock()
    fake = FakeTime(clock)
    h.session.pacer = HistoricalPacer(clock, fake.sleep, backoff=Backoff(2.0, 60.0))
    gateway.faults.pacing_violation(count=1)
    aapl = h.session.verified[0]
    bars = await asyncio.wait_for(h.session.fetch_bars(aapl), 30)
    assert len(bars) >= 25
    pacer = h.session.pacer
    assert pacer.violations == 1 and pacer.retries == 1 and len(pacer.sent_log) == 2
    assert pacer.sent_log[1][0] - pacer.sent_log[0][0] >= 15 * 10**9
    assert any(e.error.code == 162 for e in h.rec.errors)


async def test_order_adapter_translates_a_real_fill_into_reports(make_session: Callable[..., Harness]) -> None:
    h = make_session()
    sink = Sink()
    h.session.orders.set_order_events(sink)
    await h.session.start()
    await wait_until(lambda: (q := h.hot_state.quote("AAPL")) is not None and q.ask is not None, "an AAPL ask")
    quote = h.hot_state.quote("AAPL")
    assert quote is not None and quote.ask is not None
    adapter = h.session.orders
    (order_id,) = adapter.next_order_ids(1)
    adapter.place_order(
        BrokerOrder(
            order_id=order_id,
            key="AAPL",
            con_id=265598,
            action=Side.BUY,
            quantity=10,
            order_type=OrderType.LMT,
            limit_price=quote.ask + Decimal("1.00"),  # marketable
            order_ref="omega:test-fill",
            algo_strategy="Adaptive",
            algo_params=(("adaptivePriority", "Urgent"),),
        )
    )

    def kinds() -> set[type]:
        return {type(e) for e in sink.events}

    await wait_until(lambda: CommissionReport in kinds(), "a commission report")
    await wait_until(
        lambda: any(isinstance(e, OrderStatusReport) and e.status == "Filled" for e in sink.events), "Filled"
    )
    fills = [e for e in sink.events if isinstance(e, ExecutionReport)]
    assert sum(f.quantity for f in fills) == 10
    fill = fills[-1]
    assert fill.order_id == order_id and fill.key == "AAPL" and fill.side is Side.BUY and fill.cum_qty == 10
    assert fill.order_ref == "omega:test-fill" and fill.price <= quote.ask + Decimal("1.00")
    assert fill.time_utc.tzinfo is not None
    commissions = [e for e in sink.events if isinstance(e, CommissionReport)]
    assert {c.exec_id for c in commissions} <= {f.exec_id for f in fills} and commissions[0].commission > 0
    opens = [e for e in sink.events if isinstance(e, OpenOrderReport)]
    assert opens and opens[0].order.order_id == order_id and opens[0].order.algo_strategy == "Adaptive"
    assert opens[0].order.algo_params == (("adaptivePriority", "Urgent"),)
    filled = [e for e in sink.events if isinstance(e, OrderStatusReport) and e.status == "Filled"][-1]
    assert filled.filled == 10 and filled.remaining == 0 and filled.avg_fill_price is not None
    # The first report of the order (an ack) precedes its first fill.
    first_fill = sink.events.index(fills[0])
    assert any(isinstance(e, OrderStatusReport | OpenOrderReport) for e in sink.events[:first_fill])
