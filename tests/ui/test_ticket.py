"""The order ticket: field validation in one sentence per field, the intent it sends, the engine's decision."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from textual.widgets import Input, Static

from omega_tui.core.types import CancelOrder, IntentSource, PlaceOrder, Side
from omega_tui.ui.app import OmegaApp
from omega_tui.ui.screens.ticket import OrderTicket, TicketContext, TicketForm, prefill_limit, validate_ticket
from tests.ui.fake_engine import FakeEngine

CTX = TicketContext(
    instruments=["AAPL", "ES"],
    min_ticks={"AAPL": Decimal("0.01"), "ES": Decimal("0.25")},
    quotes={},
)


def form(**kw: str) -> TicketForm:
    values = {"instrument": "AAPL", "side": "BUY", "quantity": "100", "limit": "189.50", "tp_ticks": "30"}
    values |= {"sl_ticks": "20", "priority": "Normal"}
    values.update(kw)
    return TicketForm(**values)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("instrument", "TSLA", "Choose an instrument from the watchlist."),
        ("quantity", "", "Quantity must be a whole number above 0, e.g. 100."),
        ("quantity", "0", "Quantity must be a whole number above 0, e.g. 100."),
        ("limit", "", "Limit must be a price above 0, e.g. 189.25."),
        ("limit", "-1", "Limit must be a price above 0, e.g. 189.25."),
        ("limit", "189.505", "Limit 189.505 is not on AAPL's tick grid of 0.01."),
        ("tp_ticks", "0", "Take-profit distance must be a whole number of ticks above 0."),
        ("sl_ticks", "x", "Stop-loss distance must be a whole number of ticks above 0."),
        ("priority", "Fast", "Priority must be Patient, Normal or Urgent."),
    ],
)
def test_validate_ticket_reports_one_sentence_for_the_bad_field(field: str, value: str, error: str) -> None:
    intent, errors = validate_ticket(form(**{field: value}), CTX)
    assert intent is None
    assert errors == {field: error}


def test_validate_ticket_without_a_verified_tick_size_says_to_wait() -> None:
    ctx = TicketContext(instruments=["AAPL"], min_ticks={}, quotes={})
    _, errors = validate_ticket(form(), ctx)
    assert errors["instrument"] == "AAPL has no verified tick size yet; wait for the startup check to finish."


@pytest.mark.parametrize(
    ("side", "limit", "take_profit", "stop_loss"),
    [("BUY", "6000.00", "6007.50", "5995.00"), ("SELL", "6000.00", "5992.50", "6005.00")],
)
def test_validate_ticket_turns_tick_distances_into_bracket_prices_on_the_grid(
    side: str, limit: str, take_profit: str, stop_loss: str
) -> None:
    intent, errors = validate_ticket(
        form(instrument="ES", side=side, quantity="2", limit=limit, tp_ticks="30", sl_ticks="20"), CTX
    )
    assert errors == {}
    assert intent is not None
    assert (intent.key, intent.side, intent.quantity) == ("ES", Side(side), 2)
    assert intent.limit_price == Decimal(limit)
    assert intent.take_profit == Decimal(take_profit)
    assert intent.stop_loss == Decimal(stop_loss)
    assert intent.source is IntentSource.MANUAL
    assert intent.has_bracket


def test_prefill_limit_uses_the_passive_touch_for_the_side(engine: FakeEngine) -> None:
    quote = engine.quotes()["AAPL"]
    assert prefill_limit(quote, "BUY") == "189.52"
    assert prefill_limit(quote, "SELL") == "189.54"
    assert prefill_limit(None, "BUY") == ""


async def _open_ticket(app: OmegaApp, pilot) -> OrderTicket:  # type: ignore[no-untyped-def]
    await pilot.press("n")
    await pilot.pause()
    assert isinstance(app.screen, OrderTicket)
    return app.screen


async def test_ticket_with_bad_fields_shows_errors_beside_them_and_sends_nothing(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        ticket = await _open_ticket(app, pilot)
        assert ticket.query_one("#limit", Input).value == "189.52"  # prefilled from AAPL's bid
        ticket.query_one("#limit", Input).value = "189.505"
        ticket.query_one("#tp_ticks", Input).value = ""
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert engine.submitted == []
        assert str(ticket.query_one("#quantity-error", Static).content).startswith("Quantity must be")
        assert str(ticket.query_one("#limit-error", Static).content) == (
            "Limit 189.505 is not on AAPL's tick grid of 0.01."
        )
        assert str(ticket.query_one("#tp_ticks-error", Static).content).startswith("Take-profit distance")
        assert str(ticket.query_one("#sl_ticks-error", Static).content) == ""


async def test_ticket_submit_sends_a_manual_bracket_and_shows_the_deny_reason(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    engine.answers[PlaceOrder] = engine.result(False, "price_collar: 189.52 is 2.4% from mid 185.08 (max 2.0%)")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        ticket = await _open_ticket(app, pilot)
        await pilot.press("5", "0", "enter")
        await pilot.pause()
        assert len(engine.submitted) == 1
        command = engine.submitted[0]
        assert isinstance(command, PlaceOrder)
        assert command.intent.source is IntentSource.MANUAL
        assert (command.intent.key, command.intent.quantity) == ("AAPL", 50)
        assert command.intent.take_profit == Decimal("189.82")
        assert command.intent.stop_loss == Decimal("189.32")
        assert app.screen is ticket, "a denied ticket stays open so it can be fixed"
        decision = str(ticket.query_one("#ticket-decision", Static).content)
        assert decision == "Denied: price_collar: 189.52 is 2.4% from mid 185.08 (max 2.0%)"


async def test_ticket_approved_closes_and_reports_the_decision(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    engine.answers[PlaceOrder] = engine.result(True, "order 1006 submitted")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await _open_ticket(app, pilot)
        await pilot.press("1", "0", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, OrderTicket)
        assert any("Approved: order 1006 submitted" in n.message for n in app._notifications)


async def test_c_cancels_the_order_selected_in_the_orders_pane(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("1")
        app.main.query_one("#orders-table").focus()
        await pilot.press("down")  # 1001 (filled entry) → 1002 (its take-profit child)
        await pilot.press("c")
        await pilot.pause()
        assert engine.submitted == [CancelOrder(order_id=1002, source="operator:ui")]


async def test_c_on_a_terminal_order_sends_nothing(engine: FakeEngine, make_app: Callable[..., OmegaApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.main.query_one("#orders-table").focus()
        await pilot.press("c")  # the cursor is on 1001, which is FILLED
        await pilot.pause()
        assert engine.submitted == []
