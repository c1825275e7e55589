"""Scheduler and latency: per-model selection share, latency p50/p99 against its bound, deadline
satisfaction, timely accuracy, abstain rate; tick → decision and order callback latencies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult

from omega_tui.core.views import LatencyView, ModelMetricsView, SchedulerView
from omega_tui.ui.format import Styles, micros, pct
from omega_tui.ui.panes.base import Column, Pane, Row, StableTable, TextLines

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

COLUMNS: list[Column] = [
    ("model", "Model", 14, "left"),
    ("share", "Share", 6, "right"),
    ("p50", "p50", 8, "right"),
    ("p99", "p99", 8, "right"),
    ("bound", "Bound", 8, "right"),
    ("deadline", "InTime", 7, "right"),
    ("timely", "TimelyAcc", 10, "right"),
    ("raw", "RawAcc", 7, "right"),
    ("samples", "N", 7, "right"),
]


class SchedulerPane(Pane):
    """The TIP-Search scheduler's metrics and the order path's latencies."""

    SECTIONS = ("scheduler", "latency")
    TITLE = "Scheduler & latency"

    def compose(self) -> ComposeResult:
        yield TextLines(id="scheduler-summary")
        yield StableTable(COLUMNS, id="scheduler-table")
        yield TextLines(id="latency-summary")

    def update_view(self, client: EngineClient, styles: Styles) -> None:
        sched: SchedulerView | None = client.read("scheduler")
        latency: LatencyView | None = client.read("latency")
        summary = self.query_one("#scheduler-summary", TextLines)
        if sched is None:
            summary.show(Text("waiting for the scheduler", style=styles.muted))
            self.query_one(StableTable).sync([])
        else:
            summary.show(
                Text.assemble(
                    ("decisions ", styles.muted),
                    f"{sched.get('decisions', 0):,d}",
                    ("  abstain ", styles.muted),
                    pct(sched.get("abstain_rate")),
                    ("  deadline ", styles.muted),
                    f"{sched.get('deadline_ms', 0):g}ms",
                    *self._deadlines(sched, styles),
                    ("  tick→decision ", styles.muted),
                    f"p50 {micros(sched.get('tick_to_decision_p50_us'))} ",
                    f"p99 {micros(sched.get('tick_to_decision_p99_us'))}",
                    ("  params v", styles.muted),
                    str(sched.get("params_version", 0)),
                )
            )
            rows: list[Row] = [(m["name"], self._cells(m, styles)) for m in sched.get("models") or []]
            self.query_one(StableTable).sync(rows)
        self.query_one("#latency-summary", TextLines).show(self._latency(latency, styles))

    def _deadlines(self, sched: SchedulerView, styles: Styles) -> list[tuple[str, Style | str] | str]:
        """Deadlines met against the target miss rate, and the headroom the scheduler keeps to meet it."""
        met = sched.get("deadline_satisfaction")
        if met is None:
            return []
        target = 1.0 - sched.get("miss_target", 0.0)
        parts: list[tuple[str, Style | str] | str] = [
            ("  met ", styles.muted),
            (pct(met), styles.warning if met < target else ""),  # below 1 - miss_target: in warning style
        ]
        headroom = sched.get("headroom_us")
        if headroom is not None:
            parts += [("  headroom ", styles.muted), micros(headroom)]
        return parts

    def _cells(self, m: ModelMetricsView, styles: Styles) -> list[Text | str]:
        over = m.get("latency_p99_us", 0.0) > m.get("bound_us", 0.0) > 0
        return [
            m["name"],
            Text(pct(m.get("selection_share"), 0), justify="right"),
            Text(micros(m.get("latency_p50_us")), justify="right"),
            Text(micros(m.get("latency_p99_us")), justify="right", style=styles.warning if over else ""),
            Text(micros(m.get("bound_us")), justify="right"),
            Text(pct(m.get("deadline_satisfaction"), 0), justify="right"),
            Text(pct(m.get("timely_accuracy")), justify="right"),
            Text(pct(m.get("raw_accuracy"), 0), justify="right"),
            Text(f"{m.get('samples', 0):,d}", justify="right"),
        ]

    def _latency(self, latency: LatencyView | None, styles: Styles) -> Text:
        if latency is None:
            return Text("order latencies: no orders yet", style=styles.muted)
        return Text.assemble(
            ("submit→ack ", styles.muted),
            f"{micros(latency['submit_to_ack_p50_us'])}/{micros(latency['submit_to_ack_p99_us'])}",
            ("  submit→fill ", styles.muted),
            f"{micros(latency['submit_to_fill_p50_us'])}/{micros(latency['submit_to_fill_p99_us'])}",
            ("  fill→comm ", styles.muted),
            f"{micros(latency['fill_to_commission_p50_us'])}/{micros(latency['fill_to_commission_p99_us'])}",
            (f"  (p50/p99, n={latency.get('samples', 0)})", styles.muted),
        )
