"""What every pane shares: version-skipping refresh and a line-based table that repaints only changed rows."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from omega_tui.ui.format import Styles

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

Cell = RenderableType | tuple[str, Style]
"""A table cell: a Text / str, or (plain text, style), the cheap form for cells rebuilt on every refresh."""

Row = tuple[str, Sequence[Cell]]
VIRTUAL_STEP = 8
"""Rows by which a table taller than its viewport grows its scrollable height (see StableTable)."""
Column = tuple[str, str, int, str]
"""(key, label, width, "left" | "right"); the width includes one cell of slack that separates columns."""


class RowCells:
    """Each row's last cells, given back while the row's source is unchanged, so the table skips the row.

    A row whose source (a published view: an order, a position, a limit) is the same object, or equal to the
    one its cells were built from, with the same styles, gets the very same cells object back, which
    `StableTable.sync` skips without comparing a cell. Call `cells` for every row of a refresh, then `end`:
    rows not asked for in that refresh are forgotten."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[object, Styles, Sequence[Cell]]] = {}
        self._next: dict[str, tuple[object, Styles, Sequence[Cell]]] = {}

    def cells(self, key: str, source: object, styles: Styles, build: Callable[[], Sequence[Cell]]) -> Sequence[Cell]:
        hit = self._last.get(key)
        if hit is not None and hit[1] is styles and (hit[0] is source or hit[0] == source):
            self._next[key] = hit
            return hit[2]
        cells = build()
        self._next[key] = (source, styles, cells)
        return cells

    def end(self) -> None:
        self._last, self._next = self._next, {}

    def __contains__(self, key: object) -> bool:
        return key in self._last


class Pane(Vertical):
    """A bordered pane that redraws from the client only when one of its sections changed."""

    SECTIONS: ClassVar[tuple[str, ...]] = ()
    TITLE: ClassVar[str] = ""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._seen: tuple[int, ...] | None = None
        self.border_title = self.TITLE

    def poll(self, client: EngineClient, styles: Styles, force: bool = False) -> bool:
        """Redraw if a section changed (or `force`); returns whether it redrew. Call inside batch_update()."""
        versions = tuple(client.version(s) for s in self.SECTIONS)
        if not force and versions == self._seen and self.SECTIONS:
            return False
        self._seen = versions
        self.update_view(client, styles)
        return True

    def update_view(self, client: EngineClient, styles: Styles) -> None:
        """Read the sections and update the widgets; implemented by each pane."""
        raise NotImplementedError

    def set_subtitle(self, text: str) -> None:
        """Set the border subtitle only if it changed: assigning it repaints the whole pane, even to the same text."""
        if self.border_subtitle != text:
            self.border_subtitle = text

    def set_trading_mark(self, mark: str) -> None:
        """Put the trading state in the pane's title (e.g. "■ HALTED"), so it never relies on colour alone."""
        title = f"{self.TITLE} {mark}" if mark else self.TITLE
        if self.border_title != title:
            self.border_title = title


class TextLines(Static):
    """A Static for short text that is set on every refresh: it repaints only when the text changed, and
    re-lays out only when its number of lines changed (`Static.update` re-lays out the whole screen each time,
    which for a pane refreshed at 10 Hz was most of a frame)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self._shown: Hashable = None
        self._lines = -1

    def show(self, text: Text | str) -> None:
        key = _cell_key(text)
        if key == self._shown:
            return
        self._shown = key
        # Re-lay out only if the height changes: count the lines as they will be wrapped at this width.
        width = self.content_region.width
        content = text if isinstance(text, Text) else Text(text)
        lines = len(content.wrap(self.app.console, width)) if width > 0 else -1
        self.update(text, layout=lines != self._lines or lines < 0)
        self._lines = lines


def stepped_height(lines: int, viewport: int) -> int:
    """The scrollable height for `lines` lines in a `viewport` lines high.

    A new virtual size re-lays out the whole screen. While the lines fit, exactly `lines`; beyond the
    viewport, `lines` rounded up to VIRTUAL_STEP, so a table or log that keeps growing (the day's orders and
    events) re-lays out the screen once per step instead of on every new line.
    """
    if lines <= viewport or viewport <= 0:
        return lines
    return -(-lines // VIRTUAL_STEP) * VIRTUAL_STEP


def _cell_key(value: Any) -> Hashable:
    # rich Text equality ignores the base style, so compare its parts explicitly.
    if isinstance(value, (str, tuple)):
        return value  # (str, Style) pairs are hashable and compare by value
    if isinstance(value, Text):
        return (value.plain, str(value.style), tuple((s.start, s.end, str(s.style)) for s in value.spans))
    return repr(value)


def _append_fitted(line: Text, plain: str, style: Style | None, width: int, right: bool, pad_styled: bool) -> None:
    """Append `plain` cropped or padded to `width` cells, aligned right or left.

    `pad_styled` says whether the padding carries the cell's style, as it does when a Text with a base style
    is aligned (Text.align pads inside the base style), so both forms of a cell render alike.
    """
    length = cell_len(plain)
    if length > width:
        plain, length = set_cell_size(plain, width), width
    pad = " " * (width - length)
    if pad_styled:
        line.append(pad + plain if right else plain + pad, style)
        return
    if right and pad:
        line.append(pad)
    line.append(plain, style)
    if not right and pad:
        line.append(pad)


class StableTable(ScrollView, can_focus=True):
    """A table fed the full desired content on each refresh; it repaints only the rows that changed.

    A Line API widget (`render_line`): each row is packed into ONE line of fixed-width columns and rendered to
    segments once per change of its content; a changed row repaints only its own line of the screen, and an
    unchanged table costs nothing. (Textual's DataTable invalidated every rendered row on any cell update and
    re-laid out its cells through Rich's layout machinery, which was most of a frame with a streaming
    watchlist.) Columns have fixed widths and rows stable keys, so a burst of updates never re-lays out the
    screen and the cursor stays on the same row; the header stays on top while the rows scroll.

    The component classes keep DataTable's names, so the stylesheet and the themes style it the same way.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {"datatable--header", "datatable--cursor"}

    DEFAULT_CSS = """
    StableTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .datatable--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .datatable--header { background-tint: $foreground 5%; }
        }
        & > .datatable--header { text-style: bold; background: $panel; color: $foreground; }
        &:ansi > .datatable--header { background: ansi_bright_blue; color: ansi_default; }
        & > .datatable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    class RowHighlighted(Message):
        """The cursor moved to another row (or the row under it was replaced)."""

        def __init__(self, table: StableTable, key: str | None) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> StableTable:
            return self.table

    def __init__(
        self, columns: Sequence[Column], *, id: str | None = None, show_header: bool = True, show_cursor: bool = True
    ) -> None:
        super().__init__(id=id)
        self._column_spec = list(columns)
        self.table_width = sum(width for _, _, width, _ in self._column_spec)
        self.show_header = show_header
        self.show_cursor = show_cursor
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, list[Hashable]] = {}
        self._texts: dict[str, Text] = {}
        self._last_rows: dict[str, Sequence[Cell]] = {}  # the cells object each row was last given
        self._base_style: Style | None = None
        self._segments: dict[str, list[Segment]] = {}  # rendered once per change of the row
        self._header = self._pack([label for _, label, _, _ in self._column_spec])
        self._header_segments: list[Segment] | None = None
        self._cursor = 0
        self._highlighted: str | None = None

    # ------------------------------------------------------------------ content

    def _pack(self, cells: Sequence[Cell]) -> Text:
        """One line of fixed-width columns; left-aligned columns after the first start with a space."""
        line = Text(no_wrap=True, overflow="crop")
        for index, cell in enumerate(cells):
            _, _, width, justify = self._column_spec[index]
            if isinstance(cell, tuple) or isinstance(cell, str):
                # Fast path (every quote cell, every refresh): string padding, no intermediate Text.
                plain, style = cell if isinstance(cell, tuple) else (cell, None)
                right = justify == "right"
                if not right and index > 0:
                    line.append(" ")  # the separating space never carries the cell's style
                    _append_fitted(line, plain, style, width - 1, right, pad_styled=False)
                else:
                    _append_fitted(line, plain, style, width, right, pad_styled=True)
                continue
            text = cell
            if not isinstance(text, Text):
                text = Text(str(cell))
            if justify != "right" and index > 0:
                text = Text(" ") + text
            else:
                text = text.copy()
            text.truncate(width, overflow="crop")
            text.align("right" if justify == "right" else "left", width)
            line.append_text(text)
        return line

    @property
    def row_order(self) -> list[str]:
        return list(self._order)

    @property
    def rows(self) -> Mapping[str, Text]:
        """The packed line of every row, by key."""
        return dict(self._texts)

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self._order:
            return None
        return self._order[min(max(self._cursor, 0), len(self._order) - 1)]

    @property
    def _header_height(self) -> int:
        return 1 if self.show_header else 0

    def visible_range(self, margin: int = 2) -> range:
        """Indices of the rows on screen (plus a margin), so callers can skip building off-screen cells."""
        top = int(self.scroll_offset.y)
        height = max(self.size.height - self._header_height, 1)
        return range(max(top - margin, 0), min(top + height + margin, len(self._order)))

    def update_rows(self, rows: Sequence[Row]) -> None:
        """Update existing rows whose cells changed (no adding, removing or reordering); repaint only those."""
        last = self._last_rows
        changed: list[Region] = []
        for key, cells in rows:
            seen = self._cells.get(key)
            if seen is None or last.get(key) is cells:
                continue  # not a row of this table, or the very same cells object as last time
            last[key] = cells
            keys = [_cell_key(c) for c in cells]
            if keys != seen:
                self._cells[key] = keys
                self._texts[key] = self._pack(cells)
                self._segments.pop(key, None)
                region = self._row_region(self._index[key])
                if region is not None:
                    changed.append(region)
        if changed:
            self.refresh(*changed)  # one refresh for every changed line (each call clears the widget's caches)

    def sync(self, rows: Sequence[Row]) -> None:
        """Make the table show exactly `rows` (key, cells), in that order."""
        keys = [key for key, _ in rows]
        if keys != self._order:
            selected = self.selected_key()
            wanted = set(keys)
            for gone in [k for k in self._order if k not in wanted]:
                self._cells.pop(gone, None)
                self._last_rows.pop(gone, None)
                self._texts.pop(gone, None)
                self._segments.pop(gone, None)
            for key, cells in rows:
                if key not in self._cells:
                    self._cells[key] = [_cell_key(c) for c in cells]
                    self._texts[key] = self._pack(cells)
            self._order = keys
            self._index = {key: i for i, key in enumerate(keys)}
            self._set_virtual_height(len(keys) + self._header_height)
            if selected in self._index:
                self._cursor = self._index[selected]
            self._cursor = min(max(self._cursor, 0), max(len(keys) - 1, 0))
            self.refresh()
            self._highlight()
        self.update_rows(rows)

    def _set_virtual_height(self, height: int) -> None:
        """A new virtual size re-lays out the screen; a growing table (the day's orders) changes it in steps."""
        height = stepped_height(height, self.size.height)
        if self.virtual_size != Size(self.table_width, height):
            self.virtual_size = Size(self.table_width, height)

    def on_resize(self) -> None:
        self._set_virtual_height(len(self._order) + self._header_height)

    # ------------------------------------------------------------------ cursor

    def move_cursor(self, *, row: int, animate: bool = False) -> None:
        """Put the cursor on row `row` (clamped) and scroll it into view."""
        if not self._order:
            return
        row = min(max(row, 0), len(self._order) - 1)
        if row != self._cursor:
            old, self._cursor = self._cursor, row
            self._refresh_row(old)
            self._refresh_row(row)
        self._scroll_to_cursor(animate)
        self._highlight()

    def _scroll_to_cursor(self, animate: bool) -> None:
        height = max(self.size.height - self._header_height, 1)
        top = int(self.scroll_offset.y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=animate)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=animate)

    def _highlight(self) -> None:
        key = self.selected_key()
        if key != self._highlighted:
            self._highlighted = key
            self.post_message(self.RowHighlighted(self, key))

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self._cursor + 1)

    def action_page_up(self) -> None:
        self.move_cursor(row=self._cursor - max(self.size.height - self._header_height, 1))

    def action_page_down(self) -> None:
        self.move_cursor(row=self._cursor + max(self.size.height - self._header_height, 1))

    def action_first(self) -> None:
        self.move_cursor(row=0)

    def action_last(self) -> None:
        self.move_cursor(row=len(self._order) - 1)

    def on_click(self, event: events.Click) -> None:
        row = int(self.scroll_offset.y) + event.y - self._header_height
        if event.y >= self._header_height and 0 <= row < len(self._order):
            self.move_cursor(row=row)

    def on_focus(self) -> None:
        self._refresh_row(self._cursor)  # the cursor's look depends on focus

    def on_blur(self) -> None:
        self._refresh_row(self._cursor)

    # ------------------------------------------------------------------ rendering

    def _refresh_row(self, index: int) -> None:
        """Repaint the one screen line of row `index`, if it is on screen."""
        region = self._row_region(index)
        if region is not None:
            self.refresh(region)

    def _row_region(self, index: int) -> Region | None:
        """The screen line of row `index` (in the widget's coordinates), or None when it is off screen."""
        y = index - int(self.scroll_offset.y) + self._header_height
        return Region(0, y, self.size.width, 1) if self._header_height <= y < self.size.height else None

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._header_segments = None
        self._base_style = None
        self._segments.clear()  # theme or focus changed: render the rows again
        self.refresh()

    def _render_text(self, text: Text, base: Style) -> list[Segment]:
        segments = Segment.adjust_line_length(list(text.render(self.app.console)), self.table_width)
        return list(Segment.apply_style(segments, base))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self._base_style
        if base is None:  # DOMNode.rich_style walks the ancestors: once per style change, not per line
            base = self._base_style = self.rich_style
        if y < self._header_height:
            header = self.get_component_rich_style("datatable--header")
            if self._header_segments is None:
                self._header_segments = self._render_text(self._header, base + header)
            return Strip(self._header_segments, self.table_width).extend_cell_length(width, base + header)
        index = int(self.scroll_offset.y) + y - self._header_height
        if index >= len(self._order):
            return Strip.blank(width, base)
        key = self._order[index]
        segments = self._segments.get(key)
        if segments is None:
            segments = self._segments[key] = self._render_text(self._texts[key], base)
        if self.show_cursor and index == self._cursor:
            cursor = self.get_component_rich_style("datatable--cursor")
            return Strip(list(Segment.apply_style(segments, post_style=cursor)), self.table_width).extend_cell_length(
                width, base + cursor
            )
        return Strip(segments, self.table_width).extend_cell_length(width, base)
