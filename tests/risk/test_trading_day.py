"""The trading day: labels and boundaries, counters that reset at the configured time, persistence within a day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from omega_tui.core.positions import Position
from omega_tui.core.trading_day import TradingDay
from omega_tui.core.types import FillReceived, Side, TradingState
from tests.risk.conftest import Harness
from tests.risk.fakes import intent

NY = ZoneInfo("America/New_York")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("now", "reset", "label", "start"),
    [
        pytest.param(_utc(2026, 11, 26, 21, 59), time(17), date(2026, 11, 26), "2026-11-25T22:00", id="before-17ny"),
        pytest.param(_utc(2026, 11, 26, 22, 0), time(17), date(2026, 11, 27), "2026-11-26T22:00", id="at-17ny"),
        pytest.param(_utc(2026, 7, 1, 21, 0), time(17), date(2026, 7, 2), "2026-07-01T21:00", id="summer-edt"),
        pytest.param(_utc(2026, 11, 26, 4, 59), time(0), date(2026, 11, 25), "2026-11-25T05:00", id="midnight-before"),
        pytest.param(_utc(2026, 11, 26, 5, 0), time(0), date(2026, 11, 26), "2026-11-26T05:00", id="midnight-at"),
    ],
)
def test_trading_day_when_at_a_moment_then_label_and_start(now: datetime, reset: time, label: date, start: str) -> None:
    day = TradingDay.at(now, reset, NY)
    assert day.label == label
    assert day.start_utc.strftime("%Y-%m-%dT%H:%M") == start
    assert day.contains(now)
    assert (day.end_utc - day.start_utc).total_seconds() in (23 * 3600, 24 * 3600, 25 * 3600)


def test_trading_day_when_dst_ends_then_the_day_is_25_hours() -> None:
    day = TradingDay.at(datetime(2026, 11, 1, 12, tzinfo=UTC), time(0), NY)
    assert (day.end_utc - day.start_utc).total_seconds() == 25 * 3600


def _to_next_reset(h: Harness) -> None:
    span = h.engine._day_span
    h.clock.advance((span.end_utc - h.clock.now_utc()).total_seconds() + 0.001)


def test_day_when_reset_time_passes_then_counters_reset(h: Harness) -> None:
    assert h.engine.trading_day == "2026-11-26"
    h.engine.submit(intent())
    h.engine.submit(intent(quantity=10_000))
    assert (h.engine.orders_today, h.engine.denied_today) == (1, 1)
    h.clock.advance(3600)  # still the same day
    h.engine.tick()
    assert (h.engine.orders_today, h.engine.denied_today) == (1, 1)
    _to_next_reset(h)
    h.engine.tick()
    assert h.engine.trading_day == "2026-11-27"
    assert (h.engine.orders_today, h.engine.denied_today) == (0, 0)
    assert h.hot.get("risk")["trading_day"] == "2026-11-27"
    assert "risk_day_reset" in h.journal_kinds()


def test_day_when_reset_passes_then_yesterdays_loss_no_longer_blocks_resume(h: Harness) -> None:
    h.orders.pos["AAPL"] = Position("AAPL", realized=Decimal("-2500"))
    h.engine.halt("rule:max_daily_loss", "loss")
    assert not h.engine.resume("operator:key").ok
    _to_next_reset(h)
    h.engine.tick()
    assert h.engine.day_pnl() == 0
    assert h.engine.resume("operator:key").ok
    assert h.engine.trading_state is TradingState.ACTIVE


def test_day_when_restarted_within_the_day_then_counters_and_realised_pnl_persist(h: Harness) -> None:
    h.engine.submit(intent())
    h.engine.submit(intent(quantity=10_000))
    h.orders.pos["AAPL"] = Position("AAPL", realized=Decimal("-1500"), commissions=Decimal("20"))
    h.engine.tick()  # persists the dirty day
    # The process dies; the new order manager starts its own figures from zero.
    h.orders.pos.clear()
    engine = h.restart()
    assert (engine.orders_today, engine.denied_today) == (1, 1)
    assert engine.day_pnl() == Decimal("-1520")
    h.orders.pos["AAPL"] = Position("AAPL", realized=Decimal("-480"))
    assert engine.day_pnl() == Decimal("-2000")  # the earlier process's -1,520 plus this one's -480


def test_day_when_restarted_after_the_reset_then_counters_start_from_zero(h: Harness) -> None:
    h.engine.submit(intent())
    h.orders.pos["AAPL"] = Position("AAPL", realized=Decimal("-1500"))
    h.engine.tick()
    h.orders.pos.clear()
    _to_next_reset(h)
    engine = h.restart()
    assert engine.trading_day == "2026-11-27"
    assert (engine.orders_today, engine.day_pnl()) == (0, 0)


def test_day_when_order_manager_resets_its_day_then_the_risk_day_keeps_its_figures(h: Harness) -> None:
    position = Position("AAPL", realized=Decimal("-700"), commissions=Decimal("10"))
    h.orders.pos["AAPL"] = position
    assert h.engine.day_pnl() == Decimal("-710")
    position.reset_day()  # the order manager starts a new day of its own (earlier than ours)
    position.realized, position.commissions = Decimal("-100"), Decimal("1")
    assert h.engine.day_pnl() == Decimal("-811")


def test_day_when_losses_accumulate_across_a_restart_then_the_limit_still_halts(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness({"on_max_loss": "halt"})
    h.orders.pos["AAPL"] = Position("AAPL", realized=Decimal("-1500"))
    h.engine.tick()
    h.orders.pos.clear()
    engine = h.restart()
    h.orders.set_position("AAPL", 100, Decimal("100.00"))
    h.quote("AAPL", "94.99", "95.01")  # -500 unrealised on top of -1,500 carried
    engine._check_daily_loss()
    assert engine.trading_state is TradingState.HALTED
    assert engine.state_source == "rule:max_daily_loss"
    assert engine.check(intent(side=Side.BUY)).rule == "trading_state"


async def test_fills_write_the_risk_day_through_only_when_its_figures_moved_and_a_restart_keeps_them(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[dict[str, object]] = []
    write_through = h.hot.write_through

    def counted(name: str, value: dict[str, object]) -> None:
        writes.append(value)
        write_through(name, value)

    monkeypatch.setattr(h.hot, "write_through", counted)

    def fill(order_id: int, qty: int, price: str) -> None:  # commissions come later, in their own reports
        report = h.orders.fill(order_id, qty, Decimal(price), commission=Decimal(0))
        assert report is not None
        h.bus.publish(FillReceived(report))

    async with h.running():
        (entry,) = h.orders.submit(intent(side=Side.BUY, quantity=100, tp=None, sl=None))
        h.engine.tick()  # the submission moved the day's order count: persisted by the ticker
        writes.clear()
        fill(entry, 100, "100.00")  # opens: realised P&L and commissions as persisted, nothing to write
        assert writes == []
        (close,) = h.orders.submit(intent(side=Side.SELL, quantity=40, tp=None, sl=None, reduce_only=True))
        h.engine.tick()
        writes.clear()
        fill(close, 40, "101.00")  # closes 40: +40.00 realised, written through before the fill's step ends
        assert [w["realized"] for w in writes] == ["40.00"]
    engine = h.restart()
    assert engine.day_pnl() == Decimal("40.00") + engine.unrealized()
