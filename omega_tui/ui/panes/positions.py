"""Positions and P&L: quantity, average cost, mark, unrealised, realised, commissions, the day's total, and
whether Omega's figures agree with the broker's (as the order manager published it)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult

from omega_tui.core.views import PnLView, PositionView
from omega_tui.ui.format import DASH, Styles, money, price, qty, to_decimal
from omega_tui.ui.panes.base import Column, Pane, Row, RowCells, StableTable, TextLines

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

COLUMNS: list[Column] = [
    ("sym", "Symbol", 7, "left"),
    ("qty", "Qty", 7, "right"),
    ("mark", "Mark", 11, "right"),
    ("unreal", "Unreal", 12, "right"),
    ("real", "Realised", 11, "right"),
    ("agree", "IB", 4, "left"),
    ("avg", "AvgCost", 11, "right"),
    ("comm", "Comm", 8, "right"),
    ("broker", "IB qty", 7, "right"),
]


def agree_text(agrees: bool, styles: Styles) -> Text:
    """✓ when Omega matches the broker, a loud ✗ when it does not (never colour alone)."""
    return Text("✓", style=styles.success) if agrees else Text("✗", style=styles.error + styles.reverse)


class PositionsPane(Pane):
    """Per-instrument positions and the day's P&L summary."""

    SECTIONS = ("positions", "pnl")
    TITLE = "Positions & P&L"

    def compose(self) -> ComposeResult:
        yield TextLines(id="pnl-summary")
        yield StableTable(COLUMNS, id="positions-table")

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        # Each position's last cells, reused while the position is equal (the table then skips the row).
        self._row_cells = RowCells()

    def update_view(self, client: EngineClient, styles: Styles) -> None:
        positions: dict[str, PositionView] = dict(client.read("positions") or {})
        row_cells = self._row_cells
        rows: list[Row] = [
            (key, row_cells.cells(key, positions[key], styles, partial(self._cells, positions[key], styles)))
            for key in sorted(positions)
        ]
        row_cells.end()
        self.query_one(StableTable).sync(rows)
        self.query_one("#pnl-summary", TextLines).show(self._summary(client.read("pnl"), styles))

    def _cells(self, p: PositionView, styles: Styles) -> list[Text | str]:
        def signed(value: str | None) -> Text:
            text = styles.signed(money(value), to_decimal(value))
            text.justify = "right"
            return text

        broker_qty = p.get("broker_quantity")
        return [
            p["key"],
            Text(qty(p["quantity"], signed=True)),
            Text(price(p.get("mark"))),
            signed(p.get("unrealized")),
            signed(p.get("realized")),
            agree_text(bool(p.get("agrees")), styles),
            Text(price(p.get("avg_cost"))),
            Text(money(p.get("commissions"), signed=False)),
            Text(qty(broker_qty, signed=True) if broker_qty is not None else DASH),
        ]

    def _summary(self, pnl: PnLView | None, styles: Styles) -> Text:
        if pnl is None:
            return Text("Day P&L: waiting for the order manager", style=styles.muted)
        total = to_decimal(pnl.get("total"))
        parts: list[Text | str | tuple[str, object]] = [
            "Day ",
            styles.signed(money(pnl.get("total")), total),
            ("  real ", styles.muted),
            money(pnl.get("realized")),
            ("  unreal ", styles.muted),
            money(pnl.get("unrealized")),
            ("  comm ", styles.muted),
            money(pnl.get("commissions"), signed=False),
            ("  IB ", styles.muted),
            money(pnl.get("broker_daily")) if pnl.get("broker_daily") is not None else DASH,
            " ",
            agree_text(bool(pnl.get("agrees")), styles),
            "" if pnl.get("agrees") else Text(" figures disagree with the broker", style=styles.error),
        ]
        return Text.assemble(*parts)  # type: ignore[arg-type]
