"""What every pane shares: version-skipping refresh and a DataTable that applies only differences."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual.containers import Vertical
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from omega_tui.ui.format import Styles

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

Row = tuple[str, Sequence[RenderableType]]
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


def _cell_key(value: Any) -> Hashable:
    # rich Text equality ignores the base style, so compare its parts explicitly.
    if isinstance(value, Text):
        return (value.plain, str(value.style), tuple((s.start, s.end, str(s.style)) for s in value.spans))
    if isinstance(value, str):
        return value
    return repr(value)


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

    def on_mount(self) -> None:
        header = self._pack([label for _, label, _, _ in self._column_spec])
        self.add_column(header, key=self.ROW_COLUMN, width=sum(width for _, _, width, _ in self._column_spec))

    def _pack(self, cells: Sequence[RenderableType]) -> Text:
        """One line of fixed-width columns; left-aligned columns after the first start with a space."""
        line = Text(no_wrap=True, overflow="crop")
        for index, cell in enumerate(cells):
            _, _, width, justify = self._column_spec[index]
            text = Text(cell) if isinstance(cell, str) else cell
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
