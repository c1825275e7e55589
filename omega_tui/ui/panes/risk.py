"""Risk gauges: each limit the risk engine publishes, used against its limit, styled at warn and breach.

The level (ok / warn / breach) comes from the engine; the UI only draws it."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult

from omega_tui.core.views import LimitView, RiskView
from omega_tui.ui.format import Styles, bar
from omega_tui.ui.panes.base import Cell, Column, Pane, Row, RowCells, StableTable, TextLines

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


GAUGE_COLUMNS: list[Column] = [
    ("label", "Limit", 21, "left"),
    ("bar", "Used", GAUGE_WIDTH + 1, "left"),
    ("amount", "Amount", 12, "right"),
    ("pct", "%", 6, "right"),
]
"""Fixed widths (each after the first includes the one-cell gap), so a gauge update never re-lays out."""


def gauge_rows(risk: RiskView, styles: Styles, row_cells: RowCells | None = None) -> list[Row]:
    """One row per published limit, keyed by the limit's name.

    `row_cells` (the pane's, kept between refreshes) gives a limit equal to the one its cells were built from
    the very same cells back, which the table skips without comparing a cell (two gauges per instrument; most
    do not move between two refreshes)."""
    rows: list[Row] = []
    for limit in risk.get("limits") or []:
        name = str(limit.get("name", "?"))
        if row_cells is None:
            rows.append((name, gauge_row(limit, styles)))
        else:
            rows.append((name, row_cells.cells(name, limit, styles, partial(gauge_row, limit, styles))))
    if row_cells is not None:
        row_cells.end()
    return rows


def gauge_row(limit: LimitView, styles: Styles) -> list[Cell]:
    level = limit.get("level", "ok")
    used, cap = float(limit.get("used", 0.0)), float(limit.get("limit", 0.0))
    fraction = used / cap if cap else 0.0
    style = styles.level(level)
    text_style = style if level != "ok" else styles.plain
    marker = {"warn": " !", "breach": " ✖"}.get(level, "")
    return [
        (limit_label(limit.get("name", "?")) + marker, text_style),
        (bar(fraction, GAUGE_WIDTH), style),
        (f"{_amount(used)}/{_amount(cap)}", text_style),
        (f"{fraction * 100:.0f}%", style),
    ]


class RiskPane(Pane):
    """Gauges for every published limit, plus the day's order and denial counts."""

    SECTIONS = ("risk",)
    TITLE = "Risk"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._row_cells = RowCells()

    def compose(self) -> ComposeResult:
        yield TextLines(id="risk-counts")
        # One or two gauges per instrument (may be long): a table that scrolls and repaints only changed rows.
        yield StableTable(GAUGE_COLUMNS, id="risk-gauges", show_header=False, show_cursor=False)

    def update_view(self, client: EngineClient, styles: Styles) -> None:
        risk: RiskView | None = client.read("risk")
        counts = self.query_one("#risk-counts", TextLines)
        gauges = self.query_one("#risk-gauges", StableTable)
        if risk is None:
            counts.show(Text("waiting for the risk engine", style=styles.muted))
            gauges.sync([])
            self.set_class(False, "-warn")
            self.set_class(False, "-breach")
            return
        levels = {limit.get("level") for limit in risk.get("limits") or []}
        self.set_class("breach" in levels, "-breach")
        self.set_class("warn" in levels and "breach" not in levels, "-warn")
        counts.show(
            Text.assemble(
                ("orders today ", styles.muted),
                str(risk.get("orders_today", 0)),
                ("  denied ", styles.muted),
                (str(risk.get("denied_today", 0)), styles.warning if risk.get("denied_today") else ""),
                ("  day ", styles.muted),
                str(risk.get("trading_day", "")),
            )
        )
        gauges.sync(gauge_rows(risk, styles, self._row_cells))
