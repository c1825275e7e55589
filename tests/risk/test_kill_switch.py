"""Kill switches and limits that halt: the latched, persisted halt; resume; flatten; loss, position and API limits."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from omega_tui.core.hot_state import HotStateReader
from omega_tui.core.types import (
    ApiErrorReceived,
    BrokerError,
    ConnectionChanged,
    ConnectionState,
    ExecutionReport,
    FillCorrected,
    Flatten,
    Halt,
    IntentSource,
    Resume,
    Side,
    TradingState,
    TradingStateChanged,
)
from tests.risk.conftest import Harness
from tests.risk.fakes import intent

# ------------------------------------------------------------------------------------------------ halt


async def test_halt_when_called_then_latched_persisted_journaled_and_cancels_all(h: Harness) -> None:
    result = h.engine.halt("operator:key", "too fast")
    assert result.ok
    assert h.engine.trading_state is TradingState.HALTED
    latch = h.hot.read_safety("halt")
    assert (latch["source"], latch["reason"]) == ("operator:key", "too fast")
    assert HotStateReader(h.state_dir).safety("halt") == latch  # on disk, visible to another process
    assert "halt" in h.journal_kinds()
    changes = [e for e in h.events if isinstance(e, TradingStateChanged)]
    assert [(c.old, c.new, c.source) for c in changes] == [(TradingState.ACTIVE, TradingState.HALTED, "operator:key")]
    await asyncio.sleep(0)
    assert h.orders.cancel_all_calls == ["halt: too fast"]
    assert h.hot.get("risk")["trading_state"] == "HALTED"  # published right after the cancel-all started


async def test_halt_publishes_the_state_with_the_last_gauges_and_the_ticker_the_full_view(h: Harness) -> None:
    h.engine.publish_view()
    before = h.hot.get("risk")
    h.engine.halt("operator:key", "now")
    halted = h.hot.get("risk")
    assert (halted["trading_state"], halted["source"], halted["reason"]) == ("HALTED", "operator:key", "now")
    assert halted["limits"] == before["limits"]  # gauges as last published, not recomputed on the halt's path
    assert before["trading_state"] == "ACTIVE"  # the published view was not changed in place
    h.engine.tick()
    assert h.hot.get("risk") == h.engine.view()  # the next tick publishes the whole view


async def test_halt_when_latch_written_then_before_the_cancel_all_runs(h: Harness) -> None:
    seen: list[Any] = []
    h.orders.on_cancel_all = lambda: seen.append(HotStateReader(h.state_dir).safety("halt"))
    h.engine.halt("operator:key", "x")
    await asyncio.sleep(0)
    assert seen and seen[0]["reason"] == "x"


async def test_halt_when_called_twice_then_keeps_the_first_story(h: Harness) -> None:
    h.engine.halt("operator:key", "first")
    second = h.engine.halt("control:halt", "second")
    assert second.ok and "first" in second.message
    assert (h.engine.state_source, h.engine.state_reason) == ("operator:key", "first")
    assert h.hot.read_safety("halt")["reason"] == "first"
    await asyncio.sleep(0)
    assert len(h.orders.cancel_all_calls) == 1  # the second came while the first was in flight
    h.engine.halt("control:halt", "third")
    await asyncio.sleep(0)
    assert len(h.orders.cancel_all_calls) == 2  # a later halt retries the cancel-all


def test_halt_when_restarted_then_new_engine_starts_halted_with_original_story(h: Harness) -> None:
    h.engine.halt("control:halt", "desk says stop")
    since = h.engine.state_since
    engine = h.restart()
    assert engine.trading_state is TradingState.HALTED
    assert (engine.state_source, engine.state_reason, engine.state_since) == ("control:halt", "desk says stop", since)
    assert not engine.check(intent()).approved


def test_resume_when_restarted_after_resume_then_new_engine_is_active(h: Harness) -> None:
    h.engine.halt("control:halt", "x")
    assert h.engine.resume("operator:key").ok
    assert h.restart().trading_state is TradingState.ACTIVE


@pytest.mark.parametrize("source", ["rule:max_daily_loss", "api_error:1100", "connection:down", "strategy"])
def test_resume_when_not_an_operator_then_refused(h: Harness, source: str) -> None:
    h.engine.halt("operator:key", "x")
    result = h.engine.resume(source)
    assert not result.ok and "operator" in result.message
    assert h.engine.trading_state is TradingState.HALTED


def test_resume_when_halted_then_active_and_journaled(h: Harness) -> None:
    h.engine.halt("operator:key", "x")
    result = h.engine.resume("operator:key")
    assert result.ok
    assert h.engine.trading_state is TradingState.ACTIVE
    assert h.hot.read_safety("halt") is None
    assert "resume" in h.journal_kinds()
    assert h.engine.submit(intent()).approved


def test_resume_when_position_still_beyond_limit_then_reducing(h: Harness) -> None:
    h.orders.set_position("AAPL", 1500, Decimal("100"))
    h.engine.halt("operator:key", "x")
    result = h.engine.resume("operator:key")
    assert result.ok and "REDUCING" in result.message
    assert h.engine.trading_state is TradingState.REDUCING
    assert not h.engine.resume("operator:key").ok  # still beyond: REDUCING cannot become ACTIVE


# ----------------------------------------------------------------------------------------- daily loss


def _loss_setup(h: Harness) -> None:
    h.engine.set_instruments(dict(h.engine._instruments))
    h.orders.set_position("AAPL", 1000, Decimal("100.00"))


@pytest.mark.parametrize(
    ("bid", "ask", "halted"),
    [
        pytest.param("98.01", "98.03", False, id="loss-1980-below-limit"),
        pytest.param("97.99", "98.01", True, id="loss-2000-at-limit"),
        pytest.param("90.00", "90.02", True, id="deep-loss"),
    ],
)
async def test_daily_loss_when_limit_reached_then_halts(
    make_harness: Callable[..., Harness], bid: str, ask: str, halted: bool
) -> None:
    h = make_harness({"on_max_loss": "halt"})
    await h.engine.start()
    try:
        _loss_setup(h)
        h.tick("AAPL", bid, ask)
        assert (h.engine.trading_state is TradingState.HALTED) is halted
        if halted:
            assert h.engine.state_source == "rule:max_daily_loss"
            await asyncio.sleep(0)
            assert h.orders.cancel_all_calls
            assert h.orders.submitted == []  # "halt" policy: no flatten
    finally:
        await h.engine.stop()


async def test_daily_loss_when_commissions_tip_it_then_halts(make_harness: Callable[..., Harness]) -> None:
    h = make_harness({"on_max_loss": "halt", "max_daily_loss": 100.0})
    await h.engine.start()
    try:
        ids = h.orders.submit(intent(quantity=10, tp=None, sl=None))
        h.orders.pos["AAPL"] = h.orders.pos.get("AAPL") or __import__(
            "omega_tui.core.positions"
        ).core.positions.Position("AAPL")
        for _ in range(9):
            h.orders.pos["AAPL"].add_commission(Decimal("11"))
        h.fill(ids[0], 10, "100.00")  # commission 1 more: 100 in total, at the limit
        assert h.engine.trading_state is TradingState.HALTED
    finally:
        await h.engine.stop()


async def test_daily_loss_when_breached_then_halts_and_flattens(h: Harness) -> None:
    await h.engine.start()
    try:
        _loss_setup(h)
        h.tick("AAPL", "97.00", "97.02")  # -3,000
        assert h.engine.trading_state is TradingState.HALTED
        for _ in range(5):
            await asyncio.sleep(0)
        assert h.orders.cancel_all_calls
        flatten = [i for i, _ in h.orders.submitted]
        assert len(flatten) == 1
        order = flatten[0]
        assert (order.side, order.quantity, order.reduce_only, order.source) == (
            Side.SELL,
            1000,
            True,
            IntentSource.FLATTEN,
        )
        assert order.limit_price == Decimal("96.95")  # bid - 5 ticks
        h.fill(max(h.orders.orders), 1000, "96.95")
        task = h.engine._flatten_task
        assert task is not None
        result = await asyncio.wait_for(task, 5)
        assert result.ok
        assert h.orders.position_qty("AAPL") == 0
        assert h.engine.trading_state is TradingState.HALTED  # flat, but still halted
        refused = h.engine.resume("operator:key")
        assert not refused.ok and "daily loss" in refused.message
    finally:
        await h.engine.stop()


# --------------------------------------------------------------------------------------------- flatten


async def test_flatten_when_positions_open_then_halts_cancels_and_closes_each(h: Harness) -> None:
    async with h.running():
        h.orders.set_position("AAPL", 300, Decimal("100"))
        h.orders.set_position("ES", -2, Decimal("5000"))
        entry = h.orders.submit(intent(quantity=5))

        def fill_everything() -> None:
            for order in h.orders.working():
                if order.role == "flatten":
                    h.fill(order.order_id, order.remaining)

        h.sleep_hook = fill_everything
        result = await h.engine.handle(Flatten("operator:key", "end of day"))
        assert result.ok, result.message
        assert h.engine.trading_state is TradingState.HALTED
        assert h.orders.cancel_all_calls and all(h.orders.orders[i].done for i in entry)
        sent = {i.key: i for i, _ in h.orders.submitted if i.source is IntentSource.FLATTEN}
        assert (sent["AAPL"].side, sent["AAPL"].quantity, sent["AAPL"].limit_price) == (
            Side.SELL,
            300,
            Decimal("99.94"),
        )
        assert (sent["ES"].side, sent["ES"].quantity, sent["ES"].limit_price) == (Side.BUY, 2, Decimal("5001.50"))
        assert all(state is TradingState.HALTED for _, state in h.orders.submitted[1:])
        assert h.orders.position_qty("AAPL") == h.orders.position_qty("ES") == 0


async def test_flatten_when_partly_filled_then_reprices_the_rest_at_the_new_touch(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness(execution={"flatten_reprice_s": 1.0, "flatten_timeout_s": 30.0})
    async with h.running():
        h.orders.set_position("AAPL", 100, Decimal("100"))
        state = {"round": 0}

        def market() -> None:
            state["round"] += 1
            working = h.orders.working("AAPL", "flatten")
            if state["round"] == 2 and working:
                h.fill(working[0].order_id, 40)  # a partial fill, then the market runs away
                h.quote("AAPL", "99.00", "99.02")
            elif h.clock.monotonic_ns() > 3_000_000_000 and working:
                h.fill(working[0].order_id, working[0].remaining)
            h.quote("AAPL", *(("99.00", "99.02") if state["round"] >= 2 else ("99.99", "100.01")))

        h.sleep_hook = market
        result = await h.engine.flatten("operator:key", "test")
        assert result.ok, result.message
        sent = [i for i, _ in h.orders.submitted]
        assert [(i.quantity, i.limit_price) for i in sent] == [(100, Decimal("99.94")), (60, Decimal("98.95"))]
        assert h.orders.cancelled  # the first was cancelled before the second went out
        assert h.orders.position_qty("AAPL") == 0


async def test_flatten_when_nothing_fills_then_times_out_with_a_loud_alert(
    make_harness: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    h = make_harness(execution={"flatten_reprice_s": 2.0, "flatten_timeout_s": 10.0})
    async with h.running():
        h.orders.set_position("AAPL", 100, Decimal("100"))
        h.sleep_hook = lambda: h.quote("AAPL", "99.99", "100.01")
        result = await h.engine.flatten("operator:key", "test")
        assert not result.ok
        assert result.details["remaining"] == {"AAPL": 100}
        assert "FLATTEN INCOMPLETE" in caplog.text
        assert any(r["kind"] == "alert" and "FLATTEN INCOMPLETE" in r["text"] for r in h.journal.read())
        assert any("FLATTEN INCOMPLETE" in line["text"] for line in h.hot.get("events"))
        # Repriced (cancel, then resend) about every 2 s, never two closing orders at once.
        assert 3 <= len(h.orders.submitted) <= 6
        assert len(h.orders.working("AAPL", "flatten")) <= 1


async def test_flatten_when_cancel_all_unconfirmed_then_alerts_and_still_closes(h: Harness) -> None:
    async with h.running():
        h.orders.cancel_all_result = False
        h.orders.set_position("AAPL", 10, Decimal("100"))
        h.sleep_hook = lambda: [h.fill(o.order_id, o.remaining) for o in h.orders.working("AAPL", "flatten")]
        result = await h.engine.flatten("operator:key", "x")
        assert result.ok
        assert any(r["kind"] == "alert" and "not every order" in r["text"] for r in h.journal.read())


async def test_flatten_when_resumed_during_it_then_resume_refused(h: Harness) -> None:
    async with h.running():
        h.orders.set_position("AAPL", 10, Decimal("100"))
        answers: list[bool] = []
        h.sleep_hook = lambda: answers.append(h.engine.resume("operator:key").ok)
        task = asyncio.ensure_future(h.engine.flatten("operator:key", "x"))
        for _ in range(20):
            await asyncio.sleep(0)
        h.orders.fill(max(h.orders.orders), 10)
        await asyncio.wait_for(task, 5)
        assert answers and not any(answers)


# ------------------------------------------------------------------------------------- position limit


async def test_position_when_beyond_limit_after_fill_then_reducing_and_back_when_within(h: Harness) -> None:
    await h.engine.start()
    try:
        h.orders.set_position("AAPL", 990, Decimal("100"))
        # An order the engine never saw (another client) fills beyond the limit.
        outside = h.orders.submit(intent(quantity=30, tp=None, sl=None))
        h.fill(outside[0], 30)
        assert h.engine.trading_state is TradingState.REDUCING
        assert h.engine.state_source == "rule:max_position_qty"
        assert not h.engine.check(intent(quantity=1)).approved
        close = h.engine.submit(intent(side=Side.SELL, quantity=50, reduce_only=True))
        assert close.approved
        h.fill(max(h.orders.orders), 50)
        assert h.engine.trading_state is TradingState.ACTIVE
    finally:
        await h.engine.stop()


# ------------------------------------------------------------------------------------------ API errors


@pytest.mark.parametrize("code", [1100, 2110, 504, 326, 100])
async def test_api_error_when_critical_then_halts_and_disconnects(h: Harness, code: int) -> None:
    await h.engine.start()
    try:
        h.bus.publish(ApiErrorReceived(BrokerError(-1, code, "bad things", 0)))
        assert h.engine.trading_state is TradingState.HALTED
        assert h.engine.state_source == f"api_error:{code}"
        assert h.disconnects and str(code) in h.disconnects[0]
        assert h.hot.read_safety("halt")["source"] == f"api_error:{code}"
    finally:
        await h.engine.stop()


@pytest.mark.parametrize(("codes", "code", "halts"), [([1100], 2104, False), ([1100, 10197], 10197, True)])
async def test_api_error_when_code_listed_in_config_then_halts_else_ignored(
    make_harness: Callable[..., Harness], codes: list[int], code: int, halts: bool
) -> None:
    h = make_harness({"critical_error_codes": codes})
    await h.engine.start()
    try:
        h.bus.publish(ApiErrorReceived(BrokerError(-1, code, "x", 0)))
        assert (h.engine.trading_state is TradingState.HALTED) is halts
        assert bool(h.disconnects) is halts
    finally:
        await h.engine.stop()


def _conn(h: Harness, state: ConnectionState) -> None:
    h.bus.publish(ConnectionChanged(state, "test", h.clock.now_utc()))


async def test_connection_when_lost_then_halts_and_stays_halted_after_reconnect(h: Harness) -> None:
    await h.engine.start()
    try:
        _conn(h, ConnectionState.DOWN)  # before the first connection: not a loss
        assert h.engine.trading_state is TradingState.ACTIVE
        _conn(h, ConnectionState.UP)
        h.orders.cancel_all_result = False  # the cancel cannot get through while down
        _conn(h, ConnectionState.DOWN)
        assert h.engine.trading_state is TradingState.HALTED
        assert h.engine.state_source == "connection:down"
        await asyncio.sleep(0)
        h.orders.cancel_all_result = True
        _conn(h, ConnectionState.CONNECTING)
        _conn(h, ConnectionState.UP)
        await asyncio.sleep(0)
        assert h.engine.trading_state is TradingState.HALTED
        assert len(h.orders.cancel_all_calls) == 2  # retried on reconnection
        _conn(h, ConnectionState.UP)
        await asyncio.sleep(0)
        assert len(h.orders.cancel_all_calls) == 2  # confirmed once: not again
    finally:
        await h.engine.stop()


# ---------------------------------------------------------------------------------------- dispatcher


async def test_handle_when_commands_arrive_then_routes_halt_resume(h: Harness) -> None:
    assert (await h.engine.handle(Halt("operator:key", "h"))).ok
    assert h.engine.trading_state is TradingState.HALTED
    assert (await h.engine.handle(Resume("operator:key"))).ok
    assert h.engine.trading_state is TradingState.ACTIVE


# ------------------------------------------------------------------------------------------ the view


def test_view_when_published_then_has_every_gauge_and_levels(make_harness: Callable[..., Harness]) -> None:
    h = make_harness({"warn_pct": 80.0})
    h.orders.set_position("AAPL", 850, Decimal("100"))
    h.orders.set_position("ES", 6, Decimal("5000"))
    h.engine.publish_view()
    view = h.hot.get("risk")
    gauges = {g["name"]: g for g in view["limits"]}
    assert {"daily_loss", "position_qty:AAPL", "position_notional:AAPL", "order_rate_1s", "order_rate_1m"} <= set(
        gauges
    )
    assert gauges["position_qty:AAPL"]["level"] == "warn"
    assert gauges["position_qty:ES"]["level"] == "breach"
    assert gauges["open_orders"]["level"] == "ok"
    assert view["trading_state"] == "ACTIVE"


async def test_view_when_quotes_stream_then_published_coalesced_not_per_tick(h: Harness) -> None:
    h.orders.set_position("AAPL", 10, Decimal("100"))
    await h.engine.start()
    try:
        before = h.hot.version("risk")
        for i in range(200):
            h.tick("AAPL", f"{99 + i / 1000:.2f}", f"{99.02 + i / 1000:.2f}")
        assert h.hot.version("risk") == before
        h.engine.tick()
        assert h.hot.version("risk") == before + 1
    finally:
        await h.engine.stop()


# ----------------------------------------------------------------------------------------- re-protection


def test_resume_when_positions_open_then_order_manager_protects_them_after_the_state_change(h: Harness) -> None:
    h.orders.set_position("AAPL", 100, Decimal("100"))
    h.orders.state_probe = lambda: h.engine.trading_state
    h.engine.halt("operator:key", "x")
    assert h.orders.protect_calls == []  # nothing is placed while HALTED
    result = h.engine.resume("operator:key")
    assert result.ok and "1 positions re-protected" in result.message
    assert h.orders.protect_calls == [("resume by operator:key", TradingState.ACTIVE)]
    assert "protect_positions" in h.journal_kinds()


def test_resume_into_reducing_then_positions_are_protected_too(h: Harness) -> None:
    h.orders.set_position("AAPL", 1500, Decimal("100"))
    h.engine.halt("operator:key", "x")
    assert h.engine.resume("operator:key").ok
    assert h.engine.trading_state is TradingState.REDUCING
    assert len(h.orders.protect_calls) == 1


def test_resume_refused_then_nothing_is_protected(h: Harness) -> None:
    h.orders.set_position("AAPL", 100, Decimal("100"))
    h.engine.halt("operator:key", "x")
    assert not h.engine.resume("strategy").ok
    assert h.orders.protect_calls == []


async def test_halt_with_open_positions_then_event_log_warns_they_are_unprotected(h: Harness) -> None:
    lines: list[tuple[str, str, str]] = []
    h.engine.set_event_log(lambda level, kind, text: lines.append((level, kind, text)))
    h.orders.set_position("AAPL", 100, Decimal("100"))
    h.engine.halt("operator:key", "x")
    for _ in range(5):
        await asyncio.sleep(0)
    assert any(level == "warn" and "1 positions unprotected while HALTED" in text for level, _k, text in lines)


# ----------------------------------------------------------------------------------- execution corrections


def _correct(h: Harness, report: ExecutionReport, quantity: int) -> None:
    """IB corrects `report` to `quantity`: the broker-side position moves by the difference, no new fill."""
    delta = quantity - report.quantity
    position = h.orders.pos[report.key]
    position.apply_fill(report.side if delta > 0 else report.side.opposite, abs(delta), report.price)
    corrected = dataclasses.replace(report, exec_id=report.exec_id + ".02", quantity=quantity)
    h.bus.publish(FillCorrected(corrected, report))


async def test_fill_correction_when_position_grows_beyond_limit_then_reducing(h: Harness) -> None:
    await h.engine.start()
    try:
        h.orders.set_position("AAPL", 990, Decimal("100"))
        outside = h.orders.submit(intent(quantity=30, tp=None, sl=None))
        report = h.fill(outside[0], 5)
        assert report is not None
        assert h.engine.trading_state is TradingState.ACTIVE
        _correct(h, report, 30)  # 990 + 30: beyond the 1,000 limit without any new fill
        assert h.engine.trading_state is TradingState.REDUCING
        assert h.engine.state_source == "rule:max_position_qty"
    finally:
        await h.engine.stop()


@pytest.mark.parametrize(("filled", "corrected", "left"), [(20, 50, 0), (20, 10, -40), (50, 20, 0)])
async def test_fill_correction_of_a_closing_order_then_its_remaining_follows(
    h: Harness, filled: int, corrected: int, left: int
) -> None:
    await h.engine.start()
    try:
        h.orders.set_position("AAPL", 100, Decimal("100"))
        close = h.engine.submit(intent(side=Side.SELL, quantity=50, reduce_only=True))
        assert close.approved
        report = h.fill(max(h.orders.orders), filled)
        assert report is not None
        _correct(h, report, corrected)
        # A closing order already done (50 of 50) is not tracked again when corrected down: it is filled.
        assert h.engine.closing_qty("AAPL") == left
    finally:
        await h.engine.stop()
