"""Risk gauges: each limit the risk engine publishes, used against its limit, styled at warn and breach.

The level (ok / warn / breach) comes from the engine; the UI only draws it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from omega_tui.core.views import LimitView, RiskView
from omega_tui.ui.format import Styles, bar
from omega_tui.ui.panes.base import Pane

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

GAUGE_WIDTH = 16
_LABELS = {
    "daily_loss": "Daily loss",
    "order_rate_1s": "Orders/s",
    "order_rate_1m": "Orders/min",
    "open_orders": "Open orders",
    "position_qty": "Pos qty",
    "position_notional": "Pos notional",
}


def limit_label(name: str) -> str:
    """'position_qty:AAPL' → 'Pos qty AAPL'; unknown names are shown as published."""
    base, _, instrument = name.partition(":")
    label = _LABELS.get(base, base.replace("_", " "))
    return f"{label} {instrument}".strip()


def _amount(value: float) -> str:
    if abs(value) >= 100_000:
        return f"{value / 1000:,.0f}k"
    return f"{value:,.0f}" if abs(value) >= 100 or value == int(value) else f"{value:,.2f}"


def render_gauges(risk: RiskView, styles: Styles) -> Table:
    table = Table.grid(padding=(0, 1))
    table.add_column(width=21, no_wrap=True)
    table.add_column(width=GAUGE_WIDTH, no_wrap=True)
    table.add_column(width=11, justify="right", no_wrap=True)
    table.add_column(width=5, justify="right", no_wrap=True)
    for limit in risk.get("limits") or []:
        table.add_row(*gauge_row(limit, styles))
    return table


def gauge_row(limit: LimitView, styles: Styles) -> tuple[Text, Text, Text, Text]:
    level = limit.get("level", "ok")
    used, cap = float(limit.get("used", 0.0)), float(limit.get("limit", 0.0))
    fraction = used / cap if cap else 0.0
    style = styles.level(level)
    marker = {"warn": " !", "breach": " ✖"}.get(level, "")
    return (
        Text(limit_label(limit.get("name", "?")) + marker, style=style if level != "ok" else ""),
        Text(bar(fraction, GAUGE_WIDTH), style=style),
        Text(f"{_amount(used)}/{_amount(cap)}", style=style if level != "ok" else ""),
        Text(f"{fraction * 100:.0f}%", style=style),
    )


class RiskPane(Pane):
    """Gauges for every published limit, plus the day's order and denial counts."""

    SECTIONS = ("risk",)
    TITLE = "Risk"

    def compose(self) -> ComposeResult:
        yield Static("", id="risk-counts", markup=False)
        with VerticalScroll(id="risk-gauges-scroll"):  # one or two gauges per instrument: may be long
            yield Static("", id="risk-gauges", markup=False)

    def update_view(self, client: EngineClient, styles: Styles) -> None:
        risk: RiskView | None = client.read("risk")
        counts = self.query_one("#risk-counts", Static)
        gauges = self.query_one("#risk-gauges", Static)
        if risk is None:
            counts.update(Text("waiting for the risk engine", style=styles.muted))
            gauges.update("")
            self.set_class(False, "-warn")
            self.set_class(False, "-breach")
            return
        levels = {limit.get("level") for limit in risk.get("limits") or []}
        self.set_class("breach" in levels, "-breach")
        self.set_class("warn" in levels and "breach" not in levels, "-warn")
        counts.update(
            Text.assemble(
                ("orders today ", styles.muted),
                str(risk.get("orders_today", 0)),
                ("  denied ", styles.muted),
                (str(risk.get("denied_today", 0)), styles.warning if risk.get("denied_today") else ""),
                ("  day ", styles.muted),
                str(risk.get("trading_day", "")),
            )
        )
        gauges.update(render_gauges(risk, styles))
