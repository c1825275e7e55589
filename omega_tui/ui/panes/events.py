"""The event log: order events, risk decisions, API errors and system notices, newest at the bottom."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from omega_tui.core.views import EventLine
from omega_tui.ui.format import Styles, clock_time
from omega_tui.ui.panes.base import Pane, stepped_height

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


class EventLog(ScrollView, can_focus=True):
    """A bounded log of one-line entries, newest at the bottom (a Line API widget).

    Textual's RichLog sets a new virtual size on every line, and every virtual size change re-lays out the
    whole screen (a full repaint of every pane); here the scrollable height grows in steps while the log
    fills and stays put once it holds `max_lines`, and a new line repaints only this widget.
    """

    def __init__(self, *, id: str | None = None, max_lines: int = 1000) -> None:
        super().__init__(id=id)
        self.max_lines = max_lines
        self.lines: deque[Text] = deque(maxlen=max_lines)
        self._segments: dict[int, list[Segment]] = {}  # by id() of the Text, rendered once
        self._width = 0
        self._base_style: Style | None = None

    def write(self, line: Text) -> None:
        """Append a line; follow the end if the view was at the end."""
        at_end = self.scroll_offset.y >= self.max_scroll_y
        if len(self.lines) == self.max_lines:
            self._segments.pop(id(self.lines[0]), None)
        self.lines.append(line)
        self._width = max(self._width, cell_len(line.plain))
        self._resize_virtual()
        if at_end:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def _resize_virtual(self) -> None:
        size = Size(self._width, stepped_height(len(self.lines), self.size.height))
        if size != self.virtual_size:
            self.virtual_size = size

    def on_resize(self) -> None:
        self._resize_virtual()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None
        self._segments.clear()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        base = self._base_style
        if base is None:
            base = self._base_style = self.rich_style
        width = self.size.width
        index = int(self.scroll_offset.y) + y
        if index >= len(self.lines):
            return Strip.blank(width, base)
        line = self.lines[index]
        segments = self._segments.get(id(line))
        if segments is None:
            segments = self._segments[id(line)] = list(Segment.apply_style(line.render(self.app.console), base))
        strip = Strip(segments, cell_len(line.plain))
        scroll_x = int(self.scroll_offset.x)
        if scroll_x:
            strip = strip.crop(scroll_x, scroll_x + width)
        return strip.extend_cell_length(width, base).crop(0, width)


class EventsPane(Pane):
    """A scrolling log fed from the `events` section."""

    SECTIONS = ("events",)
    TITLE = "Events"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._last: EventLine | None = None

    def compose(self) -> ComposeResult:
        yield EventLog(id="event-log", max_lines=MAX_LINES)

    def update_view(self, client: EngineClient, styles: Styles) -> None:
        lines: list[EventLine] = list(client.read("events") or [])
        log = self.query_one(EventLog)
        for line in new_lines(self._last, lines):
            log.write(self.format_line(line, styles))
        if lines:
            self._last = lines[-1]

    def write_local(self, level: str, kind: str, text: str, at_utc: str) -> None:
        """A line that originates in the UI (a command's answer), shown among the engine's."""
        styles = Styles(self.app.theme_variables)
        line = EventLine(at_utc=at_utc, level=level, kind=kind, text=text)
        self.query_one(EventLog).write(self.format_line(line, styles))

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
