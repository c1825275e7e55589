"""The manual order ticket: instrument, side, quantity, limit (prefilled from the quote), take-profit and
stop-loss distances in ticks, Adaptive priority. Field errors appear beside their field in one sentence; the
engine's decision (approved, or the risk engine's deny reason) is shown after submit.

Validation here is only about what was typed (a number, on the tick grid); every trading rule is the risk
engine's, which answers through the CommandResult.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from omega_tui.core.types import IntentSource, OrderIntent, PlaceOrder, Quote, Side
from omega_tui.ui.screens import SendCommand

PRIORITIES = ("Patient", "Normal", "Urgent")
FIELDS = ("instrument", "side", "quantity", "limit", "tp_ticks", "sl_ticks", "priority")


@dataclass(frozen=True)
class TicketContext:
    """What the ticket offers and prefills: tradable instruments, their tick sizes, quotes and defaults."""

    instruments: list[str]
    min_ticks: Mapping[str, Decimal]
    quotes: Mapping[str, Quote]
    take_profit_ticks: int = 30
    stop_loss_ticks: int = 20
    priority: str = "Normal"
    initial: str | None = None
    quantity: str = ""


@dataclass
class TicketForm:
    """The ticket's raw field values, as typed."""

    instrument: str = ""
    side: str = "BUY"
    quantity: str = ""
    limit: str = ""
    tp_ticks: str = ""
    sl_ticks: str = ""
    priority: str = "Normal"
    errors: dict[str, str] = field(default_factory=dict)


def prefill_limit(quote: Quote | None, side: str) -> str:
    """The passive touch for the side (bid to buy, ask to sell), else last; empty when there is no quote."""
    if quote is None:
        return ""
    touch = quote.bid if side == "BUY" else quote.ask
    value = touch if touch is not None else quote.last
    return "" if value is None else str(value)


def _positive_int(text: str) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value > 0 else None


def validate_ticket(form: TicketForm, ctx: TicketContext) -> tuple[OrderIntent | None, dict[str, str]]:
    """The intent the form describes, or one error sentence per bad field (keyed by field name)."""
    errors: dict[str, str] = {}
    key = form.instrument
    tick = ctx.min_ticks.get(key)
    if key not in ctx.instruments:
        errors["instrument"] = "Choose an instrument from the watchlist."
    elif tick is None or tick <= 0:
        errors["instrument"] = f"{key} has no verified tick size yet; wait for the startup check to finish."
    if form.side not in ("BUY", "SELL"):
        errors["side"] = "Side must be BUY or SELL."
    quantity = _positive_int(form.quantity)
    if quantity is None:
        errors["quantity"] = "Quantity must be a whole number above 0, e.g. 100."
    limit: Decimal | None = None
    try:
        limit = Decimal(form.limit.strip())
    except (InvalidOperation, ValueError):
        limit = None
    if limit is None or not limit.is_finite() or limit <= 0:
        errors["limit"] = "Limit must be a price above 0, e.g. 189.25."
        limit = None
    elif tick and tick > 0 and limit % tick != 0:
        errors["limit"] = f"Limit {limit} is not on {key}'s tick grid of {tick}."
    tp_ticks = _positive_int(form.tp_ticks)
    if tp_ticks is None:
        errors["tp_ticks"] = "Take-profit distance must be a whole number of ticks above 0."
    sl_ticks = _positive_int(form.sl_ticks)
    if sl_ticks is None:
        errors["sl_ticks"] = "Stop-loss distance must be a whole number of ticks above 0."
    if form.priority not in PRIORITIES:
        errors["priority"] = "Priority must be Patient, Normal or Urgent."
    if errors:
        return None, errors
    assert tick is not None and limit is not None and quantity and tp_ticks and sl_ticks
    side = Side(form.side)
    take_profit = limit + side.sign * tp_ticks * tick
    stop_loss = limit - side.sign * sl_ticks * tick
    if stop_loss <= 0 or take_profit <= 0:
        which = "sl_ticks" if stop_loss <= 0 else "tp_ticks"
        return None, {which: f"That distance puts the protective price at or below zero ({limit} ± ticks × {tick})."}
    intent = OrderIntent(
        intent_id="ui-" + uuid.uuid4().hex[:12],
        key=key,
        side=side,
        quantity=quantity,
        limit_price=limit,
        take_profit=take_profit,
        stop_loss=stop_loss,
        source=IntentSource.MANUAL,
        created_ns=time.monotonic_ns(),
        adaptive_priority=form.priority,
        reason="order ticket",
    )
    return intent, {}


class OrderTicket(ModalScreen[bool]):
    """The ticket; dismisses True once the engine approved the order, False when cancelled."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="ticket_cancel"),
        Binding("ctrl+s", "submit", "Submit", id="ticket_submit"),
    ]

    def __init__(self, ctx: TicketContext, send: SendCommand) -> None:
        super().__init__()
        self.ctx = ctx
        self._send = send
        self._limit_touched = False
        self._prefilling = False
        self.busy = False
        self.last_decision: str = ""

    def compose(self) -> ComposeResult:
        ctx = self.ctx
        first = ctx.initial if ctx.initial in ctx.instruments else (ctx.instruments[0] if ctx.instruments else None)
        with Vertical(id="ticket-box", classes="dialog"):
            yield Static(Text("New order (manual, bracket)"), classes="dialog-title")
            with Grid(id="ticket-grid"):
                yield Label("Instrument")
                yield Select(
                    [(k, k) for k in ctx.instruments],
                    value=first if first is not None else Select.NULL,
                    allow_blank=first is None,
                    compact=True,
                    id="instrument",
                )
                yield Static("", id="instrument-error", classes="field-error")
                yield Label("Side")
                yield Select(
                    [("BUY", "BUY"), ("SELL", "SELL")], value="BUY", allow_blank=False, compact=True, id="side"
                )
                yield Static("", id="side-error", classes="field-error")
                yield Label("Quantity")
                yield Input(ctx.quantity, type="integer", placeholder="e.g. 100", compact=True, id="quantity")
                yield Static("", id="quantity-error", classes="field-error")
                yield Label("Limit")
                yield Input(prefill_limit(ctx.quotes.get(first or ""), "BUY"), type="number", compact=True, id="limit")
                yield Static("", id="limit-error", classes="field-error")
                yield Label("Take-profit ticks")
                yield Input(str(ctx.take_profit_ticks), type="integer", compact=True, id="tp_ticks")
                yield Static("", id="tp_ticks-error", classes="field-error")
                yield Label("Stop-loss ticks")
                yield Input(str(ctx.stop_loss_ticks), type="integer", compact=True, id="sl_ticks")
                yield Static("", id="sl_ticks-error", classes="field-error")
                yield Label("Adaptive priority")
                yield Select(
                    [(p, p) for p in PRIORITIES],
                    value=ctx.priority if ctx.priority in PRIORITIES else "Normal",
                    allow_blank=False,
                    compact=True,
                    id="priority",
                )
                yield Static("", id="priority-error", classes="field-error")
            yield Static("", id="ticket-decision")
            with Horizontal(id="ticket-buttons"):
                yield Button("Submit (ctrl+s)", id="ticket-submit", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="ticket-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#quantity", Input).focus()

    # ------------------------------------------------------------------ form

    def form(self) -> TicketForm:
        def select_value(name: str) -> str:
            value = self.query_one(f"#{name}", Select).value
            return "" if value is Select.NULL or value is None else str(value)

        return TicketForm(
            instrument=select_value("instrument"),
            side=select_value("side"),
            quantity=self.query_one("#quantity", Input).value,
            limit=self.query_one("#limit", Input).value,
            tp_ticks=self.query_one("#tp_ticks", Input).value,
            sl_ticks=self.query_one("#sl_ticks", Input).value,
            priority=select_value("priority"),
        )

    def show_errors(self, errors: Mapping[str, str]) -> None:
        for name in FIELDS:
            self.query_one(f"#{name}-error", Static).update(Text(errors.get(name, "")))
            self.query_one(f"#{name}").set_class(name in errors, "-invalid-field")

    @on(Input.Changed, "#limit")
    def _limit_edited(self) -> None:
        if not self._prefilling:
            self._limit_touched = True

    @on(Select.Changed, "#instrument")
    @on(Select.Changed, "#side")
    def _reprefill(self) -> None:
        # Keep the prefill in step with instrument and side until the trader types a limit themselves.
        if self._limit_touched:
            return
        form = self.form()
        self._prefilling = True
        try:
            self.query_one("#limit", Input).value = prefill_limit(self.ctx.quotes.get(form.instrument), form.side)
        finally:
            self._prefilling = False

    # ------------------------------------------------------------------ submit

    @on(Button.Pressed, "#ticket-submit")
    @on(Input.Submitted)
    async def action_submit(self) -> None:
        if self.busy:
            return
        intent, errors = validate_ticket(self.form(), self.ctx)
        self.show_errors(errors)
        decision = self.query_one("#ticket-decision", Static)
        if intent is None:
            decision.set_classes("field-error")
            decision.update(Text("Fix the fields marked above; nothing was sent."))
            return
        self.busy = True
        decision.set_classes("field-info")
        decision.update(Text("Sent; waiting for the risk engine…"))
        try:
            result = await self._send(PlaceOrder(intent))
        finally:
            self.busy = False
        if result.ok:
            self.last_decision = f"Approved: {result.message}"
            decision.set_classes("field-ok")
            decision.update(Text(self.last_decision))
            self.app.notify(self.last_decision, title="Order ticket")
            self.dismiss(True)
        else:
            self.last_decision = f"Denied: {result.message}"
            decision.set_classes("field-error")
            decision.update(Text(self.last_decision))

    @on(Button.Pressed, "#ticket-cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
