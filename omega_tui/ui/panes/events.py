"""The event log: order events, risk decisions, API errors and system notices, newest at the bottom."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import RichLog

from omega_tui.core.views import EventLine
from omega_tui.ui.format import Styles, clock_time
from omega_tui.ui.panes.base import Pane

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

MAX_LINES = 1000


def new_lines(previous_last: EventLine | None, lines: list[EventLine]) -> list[EventLine]:
    """The lines after the last one already shown; the published log is a sliding window of recent lines."""
    if previous_last is None:
        return list(lines)
    for index in range(len(lines) - 1, -1, -1):
        if lines[index] == previous_last:
            return list(lines[index + 1 :])
    return list(lines)  # the window moved past everything we had shown


class EventsPane(Pane):
    """A scrolling log fed from the `events` section."""

    SECTIONS = ("events",)
    TITLE = "Events"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._last: EventLine | None = None

    def compose(self) -> ComposeResult:
        yield RichLog(id="event-log", max_lines=MAX_LINES, wrap=False, markup=False, auto_scroll=True)

    def update_view(self, client: EngineClient, styles: Styles) -> None:
        lines: list[EventLine] = list(client.read("events") or [])
        log = self.query_one(RichLog)
        for line in new_lines(self._last, lines):
            log.write(self.format_line(line, styles))
        if lines:
            self._last = lines[-1]

    def write_local(self, level: str, kind: str, text: str, at_utc: str) -> None:
        """A line that originates in the UI (a command's answer), shown among the engine's."""
        styles = Styles(self.app.theme_variables)
        line = EventLine(at_utc=at_utc, level=level, kind=kind, text=text)
        self.query_one(RichLog).write(self.format_line(line, styles))

    @staticmethod
    def format_line(line: EventLine, styles: Styles) -> Text:
        level = line.get("level", "info")
        style = {"error": styles.error, "warn": styles.warning}.get(level, "")
        return Text.assemble(
            (clock_time(line.get("at_utc", "")), styles.muted),
            " ",
            (f"{line.get('kind', ''):<6}", styles.accent),
            " ",
            (line.get("text", ""), style),
        )
