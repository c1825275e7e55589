"""Orders: every order with Omega's state and IB's raw status, bracket children under their parent, and the
selected order's path through the state machine with the latency between transitions and any anomalies."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from omega_tui.core.views import OrderView
from omega_tui.ui.format import DASH, Styles, clock_time, micros, price
from omega_tui.ui.panes.base import Column, Pane, Row, RowCells, StableTable

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

COLUMNS: list[Column] = [
    ("id", "Id", 7, "left"),
    ("sym", "Symbol", 7, "left"),
    ("role", "Role", 13, "left"),
    ("side", "Side", 5, "left"),
    ("state", "State", 17, "left"),
    ("fill", "Filled/Qty", 11, "right"),
    ("limit", "Limit", 10, "right"),
    ("avg", "AvgFill", 10, "right"),
    ("ib", "IB status", 14, "left"),
    ("type", "Type", 8, "left"),
    ("aux", "Aux", 10, "right"),
    ("rem", "Remain", 7, "right"),
]


def grouped(orders: list[OrderView]) -> list[tuple[OrderView, int]]:
    """Orders in display order with their depth: each parent followed by its children (by order id)."""
    by_id = {o["order_id"]: o for o in orders}
    children: dict[int, list[OrderView]] = {}
    roots: list[OrderView] = []
    for order in orders:
        parent = order.get("parent_id") or 0
        if parent and parent in by_id and parent != order["order_id"]:
            children.setdefault(parent, []).append(order)
        else:
            roots.append(order)
    out: list[tuple[OrderView, int]] = []

    def visit(order: OrderView, depth: int) -> None:
        out.append((order, depth))
        for child in sorted(children.get(order["order_id"], ()), key=lambda o: o["order_id"]):
            if depth < 4:  # a malformed parent cycle must not recurse forever
                visit(child, depth + 1)

    for root in sorted(roots, key=lambda o: o["order_id"]):
        visit(root, 0)
    return out


def state_style(state: str, styles: Styles) -> object:
    if state == "FILLED":
        return styles.success
    if state in ("REJECTED", "INACTIVE"):
        return styles.error + styles.bold
    if state in ("CANCELLED",):
        return styles.muted
    if state in ("PARTIALLY_FILLED", "PENDING_CANCEL"):
        return styles.accent
    return styles.primary


class OrdersPane(Pane):
    """Order table plus the selected order's state-machine path."""

    SECTIONS = ("orders",)
    TITLE = "Orders"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._orders: dict[str, OrderView] = {}
        self._styles: Styles | None = None
        # The core republishes an order's view only when the order changed, so an identical view object
        # (and depth and styles) reuses its cells: a busy day has hundreds of orders, few of them changing.
        self._row_cells = RowCells()
        self._detail_shown: tuple[OrderView | None, Styles | None] | None = None

    def compose(self) -> ComposeResult:
        yield StableTable(COLUMNS, id="orders-table")
        with VerticalScroll(id="order-detail-scroll"):
            yield Static("", id="order-detail", markup=False)

    @property
    def table(self) -> StableTable:
        return self.query_one(StableTable)

    def selected_order(self) -> OrderView | None:
        """The order under the cursor, as last published."""
        key = self.table.selected_key()
        return self._orders.get(key) if key is not None else None

    def update_view(self, client: EngineClient, styles: Styles) -> None:
        self._styles = styles
        orders: list[OrderView] = list(client.read("orders") or [])
        rows: list[Row] = []
        self._orders = {}
        working = 0
        row_cells = self._row_cells
        for order, depth in grouped(orders):
            key = str(order["order_id"])
            self._orders[key] = order
            cells = row_cells.cells(key, (order, depth), styles, partial(self._cells, order, depth, styles))
            rows.append((key, cells))
            if order["state"] not in ("FILLED", "CANCELLED", "REJECTED", "INACTIVE"):
                working += 1
        row_cells.end()
        self.table.sync(rows)
        self.set_subtitle(f"{working} working / {len(rows)}")
        self._show_detail()

    def _cells(self, o: OrderView, depth: int, styles: Styles) -> list[Text | str]:
        role = ("  " * (depth - 1) + "└ " if depth else "") + (o.get("role") or "")
        side_style = styles.bid if o["side"] == "BUY" else styles.ask
        anomalies = " ⚠" if o.get("anomalies") else ""
        return [
            Text(str(o["order_id"]) + anomalies, style=styles.warning if anomalies else ""),
            o["key"],
            Text(role, style=styles.muted if depth else ""),
            Text(o["side"], style=side_style),
            Text(o["state"], style=state_style(o["state"], styles)),  # type: ignore[arg-type]
            Text(f"{o['filled']}/{o['quantity']}", justify="right"),
            Text(price(o.get("limit_price")), justify="right"),
            Text(price(o.get("avg_fill_price")), justify="right"),
            o.get("ib_status") or DASH,
            o.get("order_type") or DASH,
            Text(price(o.get("aux_price")), justify="right"),
            Text(str(o["remaining"]), justify="right"),
        ]

    @on(StableTable.RowHighlighted)
    def _on_row(self, event: StableTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#order-detail", Static)
        order = self.selected_order()
        styles = self._styles
        if self._detail_shown is not None and self._detail_shown[0] is order and self._detail_shown[1] is styles:
            return  # the same published view: nothing to redraw (a redraw re-lays out the screen)
        self._detail_shown = (order, styles)
        if order is None or styles is None:
            detail.update(Text("No orders yet. Press n for a new order ticket.", style="italic"))
            return
        detail.update(render_path(order, styles))


def render_path(order: OrderView, styles: Styles) -> Group:
    """The order's path: one line per transition with its time and the latency since the previous one."""
    head = Text.assemble(
        (f"#{order['order_id']} ", styles.bold),
        f"{order['key']} {order.get('role', '')} {order['side']} {order['quantity']} {order.get('order_type', '')}",
        f" @ {price(order.get('limit_price'))}" if order.get("limit_price") else "",
        (f"  ref {order['order_ref']}" if order.get("order_ref") else "", styles.muted),
    )
    lines: list[Text] = [head]
    total_us = 0
    for step in order.get("transitions") or []:
        since = step.get("since_prev_us") or 0
        total_us += since
        lines.append(
            Text.assemble(
                "  ",
                (clock_time(step.get("at_utc", "")), styles.muted),
                "  ",
                (f"{step['state']:<16}", state_style(step["state"], styles)),  # type: ignore[arg-type]
                f" {step.get('ib_status') or '':<13}",
                (f" +{micros(since)}" if since else "", styles.accent),
            )
        )
    if len(lines) > 2:
        lines.append(Text(f"  total {micros(total_us)} from first to last transition", style=styles.muted))
    for anomaly in order.get("anomalies") or []:
        lines.append(Text(f"  ⚠ {anomaly}", style=styles.warning))
    return Group(*lines)
