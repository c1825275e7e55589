"""What every pane shares: version-skipping refresh and a DataTable that applies only differences."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist, RowKey

from omega_tui.ui.format import Styles

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

Cell = RenderableType | tuple[str, Style]
"""A table cell: a Text / str, or (plain text, style), the cheap form for cells rebuilt on every refresh."""

Row = tuple[str, Sequence[Cell]]
Column = tuple[str, str, int, str]
"""(key, label, width, "left" | "right"); the width includes one cell of slack that separates columns."""


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


class StableTable(DataTable[RenderableType]):
    """A DataTable fed the full desired content on each refresh; it changes only the rows that differ.

    Columns have fixed widths and rows stable keys, so a burst of updates never re-lays out the table and
    the cursor stays on the same row. Rows are rebuilt only when the set or order of keys changes in a way
    appending and removing cannot express (a rare, structural event, not a per-tick one).

    Each row is packed into ONE cell of fixed-width columns: DataTable renders every cell through Rich's
    layout machinery, so one cell per row instead of ten makes a refresh of a busy watchlist ~10× cheaper.
    """

    ROW_COLUMN = "row"

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, cell_padding=0)
        self._column_spec = list(columns)
        self._order: list[str] = []
        self._cells: dict[str, list[Hashable]] = {}
        self._header_styles: dict[tuple[object, str], Style] = {}

    def on_mount(self) -> None:
        header = self._pack([label for _, label, _, _ in self._column_spec])
        self.add_column(header, key=self.ROW_COLUMN, width=sum(width for _, _, width, _ in self._column_spec))

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

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> list[list[Segment]]:
        """DataTable's cell rendering without Rich's layout pipeline, for our one-line packed rows.

        DataTable renders every cell through Padding + Styled + Console.render_lines (wrapping, measuring),
        which dominated the UI thread's time with a streaming watchlist. A packed row is already one line of
        exactly the column's width, so its segments are produced directly, with the same pre/post styles and
        the same cache key as DataTable uses (Textual 8.2's `_render_cell`, whose styling it reproduces).
        """
        if row_index < -1 or column_index != 0 or self.fixed_columns or self.fixed_rows:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        column_key = self._column_locations.get_key(0)
        row_key = self._header_row_key if row_index == -1 else self._row_locations.get_key(row_index)
        if column_key is None or row_key is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cell = self.ordered_columns[0].label if row_index == -1 else self._data[row_key].get(column_key)
        if not isinstance(cell, Text) or "\n" in cell.plain:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        cache_key = (
            row_key,
            column_key,
            base_style,
            cursor,
            hover,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached = self._cell_render_cache.get(cache_key)
        if cached is not None:
            return cached
        component_style, post_style = self._get_styles_to_render_cell(
            row_index == -1,
            False,
            False,
            hover,
            cursor,
            self.show_cursor,
            self._show_hover_cursor,
            self.cursor_foreground_priority == "css",
            self.cursor_background_priority == "css",
        )
        pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
        segments = Segment.adjust_line_length(list(cell.render(self.app.console)), width)
        line = list(Segment.apply_style(segments, style=pre_style, post_style=post_style))
        lines = [line]
        self._cell_render_cache[cache_key] = lines
        return lines

    def _render_line_in_row(
        self,
        row_key: RowKey,
        line_no: int,
        base_style: Style,
        cursor_location: Coordinate,
        hover_location: Coordinate,
    ) -> tuple[list[list[Segment]], list[list[Segment]]]:
        """DataTable's row rendering for our shape (one packed column, row cursor, no labels, no zebra).

        DataTable recomputes the header's component style and other per-table constants for every line it
        renders, and every `update_cell` invalidates its caches; with a streaming watchlist that was most of
        a frame. This produces the same segments (Textual 8.2's `_render_line_in_row` for this shape) with
        the header style looked up once per theme and focus state.
        """
        if (
            self.fixed_columns
            or self.fixed_rows
            or self.zebra_stripes
            or self.cursor_type != "row"
            or (self._labelled_row_exists and self.show_row_labels)
            or len(self.ordered_columns) != 1
        ):
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        cache_key = (
            row_key,
            line_no,
            base_style,
            cursor_location,
            hover_location,
            self.cursor_type,
            self.show_cursor,
            self._show_hover_cursor,
            self._update_count,
            self._pseudo_class_state,
        )
        cached = self._row_render_cache.get(cache_key)
        if cached is not None:
            return cached
        style_key = (self._pseudo_class_state, self.app.theme)
        header_style = self._header_styles.get(style_key)
        if header_style is None:
            header_style = self._header_styles[style_key] = self.get_component_styles("datatable--header").rich_style
        located = None if row_key is self._header_row_key else self._row_locations.get(row_key)
        row_index = -1 if located is None else located
        row_style = header_style if row_index == -1 else base_style
        cursor = self.show_cursor and cursor_location.row == row_index
        hover = hover_location.row == row_index
        column = self.ordered_columns[0]
        table_width = column.get_render_width(self)
        cell_line = self._render_cell(row_index, 0, row_style, table_width, cursor=cursor, hover=hover)[line_no]
        extend_style, _ = self._get_styles_to_render_cell(
            row_index == -1,
            False,
            False,
            hover,
            cursor_location.row == row_index,
            self.show_cursor,
            self._show_hover_cursor,
            False,
            False,
        )
        extend_style = (
            row_style + extend_style + Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
        )
        remaining = max(0, self.size.width - table_width)
        row_pair: tuple[list[list[Segment]], list[list[Segment]]] = (
            [],
            [cell_line, [Segment(" " * remaining, extend_style)]],
        )
        self._row_render_cache[cache_key] = row_pair
        return row_pair

    @property
    def row_order(self) -> list[str]:
        return list(self._order)

    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self._order:
            return None
        row = min(max(self.cursor_row, 0), len(self._order) - 1)
        return self._order[row]

    def visible_range(self, margin: int = 2) -> range:
        """Indices of the rows on screen (plus a margin), so callers can skip building off-screen cells."""
        top = int(self.scroll_offset.y)
        height = max(self.size.height - 1, 1)  # minus the header
        return range(max(top - margin, 0), min(top + height + margin, len(self._order)))

    def update_rows(self, rows: Sequence[Row]) -> None:
        """Update existing rows whose cells changed (no adding, removing or reordering)."""
        for key, cells in rows:
            seen = self._cells.get(key)
            if seen is None:
                continue
            keys = [_cell_key(c) for c in cells]
            if keys != seen:
                self._cells[key] = keys
                self.update_cell(key, self.ROW_COLUMN, self._pack(cells))

    def sync(self, rows: Sequence[Row]) -> None:
        """Make the table show exactly `rows` (key, cells), in that order."""
        keys = [key for key, _ in rows]
        if keys != self._order:
            wanted = set(keys)
            for gone in [k for k in self._order if k not in wanted]:
                try:
                    self.remove_row(gone)
                except RowDoesNotExist:
                    pass
                self._cells.pop(gone, None)
            self._order = [k for k in self._order if k in wanted]
            if keys[: len(self._order)] == self._order:
                for key, cells in rows[len(self._order) :]:
                    self.add_row(self._pack(cells), key=key)
                    self._cells[key] = [_cell_key(c) for c in cells]
                self._order = keys
            else:
                self._rebuild(rows)
        self.update_rows(rows)

    def _rebuild(self, rows: Sequence[Row]) -> None:
        selected = self.selected_key()
        self.clear()
        self._cells.clear()
        for key, cells in rows:
            self.add_row(self._pack(cells), key=key)
            self._cells[key] = [_cell_key(c) for c in cells]
        self._order = [key for key, _ in rows]
        if selected in self._order:
            self.move_cursor(row=self._order.index(selected), animate=False)
