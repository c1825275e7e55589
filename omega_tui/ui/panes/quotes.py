"""The watchlist: bid, ask, last, change vs previous close, spread, sizes, volume, a sparkline, markers."""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult

from omega_tui.core.types import Quote, QuoteFlag
from omega_tui.ui.format import DASH, Styles, compact_int, pct, price, sparkline
from omega_tui.ui.panes.base import Cell, Column, Pane, StableTable

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

SPARK_WIDTH = 9

COLUMNS: list[Column] = [
    ("sym", "Symbol", 7, "left"),
    ("flag", "Flg", 4, "left"),
    ("bid", "Bid", 10, "right"),
    ("ask", "Ask", 10, "right"),
    ("last", "Last", 10, "right"),
    ("chg", "Chg", 8, "right"),
    ("chg_pct", "Chg%", 8, "right"),
    ("spark", "Trend", SPARK_WIDTH + 1, "left"),
    ("spread", "Sprd", 7, "right"),
    ("size", "BidSz×AskSz", 12, "right"),
    ("vol", "Volume", 7, "right"),
]

MARKERS = (
    (QuoteFlag.CROSSED, "X", "crossed (bid above ask)"),
    (QuoteFlag.LOCKED, "=", "locked (bid equals ask)"),
    (QuoteFlag.STALE, "S", "stale (no update lately, or the data farm is down)"),
    (QuoteFlag.DELAYED, "D", "delayed or frozen market data"),
    (QuoteFlag.REJECTED_PRICE, "!", "the last update carried a price the normalizer refused"),
)
"""Quote markers, in display order, with the meaning the help screen lists."""


def flag_text(quote: Quote, styles: Styles) -> Text:
    """The marker letters of a quote, styled by how bad the worst one is."""
    flags = quote.flags
    if quote.market_data_type in (2, 3, 4):
        flags |= QuoteFlag.DELAYED
    letters = "".join(letter for flag, letter, _ in MARKERS if flags & flag)
    if not letters:
        return Text("")
    if flags & (QuoteFlag.CROSSED | QuoteFlag.REJECTED_PRICE):
        style = styles.error + styles.reverse
    elif flags & QuoteFlag.STALE:
        style = styles.warning + styles.reverse
    else:
        style = styles.accent
    return Text(letters[:3], style=style)


class QuotesPane(Pane):
    """The watchlist table; always visible, at every terminal size."""

    TITLE = "Quotes"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._mids: dict[str, deque[Decimal]] = {}
        self._last_seq: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield StableTable(COLUMNS, id="quotes-table")

    @property
    def table(self) -> StableTable:
        return self.query_one(StableTable)

    def poll(self, client: EngineClient, styles: Styles, force: bool = False) -> bool:
        # Quotes carry their own sequence numbers; there is no section version to compare.
        self.update_view(client, styles, force)
        return True

    def update_view(self, client: EngineClient, styles: Styles, force: bool = False) -> None:
        quotes = client.quotes()
        keys = sorted(quotes)
        for key in keys:
            quote = quotes[key]
            if self._last_seq.get(key) != quote.seq:
                self._last_seq[key] = quote.seq
                mid = quote.mid if quote.mid is not None else quote.last
                if mid is not None:
                    self._mids.setdefault(key, deque(maxlen=SPARK_WIDTH)).append(mid)
        table = self.table
        if keys == table.row_order and not force:
            # Every instrument ticks between two refreshes: build and compare only the rows on screen;
            # off-screen rows catch up when scrolled into view (their cached cells differ then).
            window = table.visible_range()
            table.update_rows([(keys[i], self._cells(quotes[keys[i]], styles)) for i in window])
        else:
            table.sync([(key, self._cells(quotes[key], styles)) for key in keys])
        self.set_subtitle(f"{len(keys)} instruments")

    def _cells(self, q: Quote, styles: Styles) -> list[Cell]:
        # (text, style) pairs, not Text: every on-screen row is rebuilt on every refresh while quotes stream.
        reference = q.last if q.last is not None else q.mid
        change = None if reference is None or q.close is None else reference - q.close
        change_pct = None if change is None or not q.close else float(change / q.close)
        stale = q.stale
        sizes = f"{compact_int(q.bid_size)}×{compact_int(q.ask_size)}" if q.bid_size or q.ask_size else DASH
        flags = flag_text(q, styles)
        return [
            (q.key, styles.muted if stale else styles.plain),
            (flags.plain, flags.style if isinstance(flags.style, Style) else styles.plain),
            (price(q.bid), styles.muted if stale else styles.bid),
            (price(q.ask), styles.muted if stale else styles.ask),
            (price(q.last), styles.plain),
            _signed(styles, price(abs(change)) if change is not None else DASH, change),
            _signed(styles, pct(abs(change_pct), 2) if change_pct is not None else DASH, change_pct),
            (sparkline(self._mids.get(q.key, ()), SPARK_WIDTH), styles.accent),
            (price(q.spread) if q.spread is not None else DASH, styles.plain),
            (sizes, styles.plain),
            (compact_int(q.volume), styles.plain),
        ]


def _signed(styles: Styles, text: str, value: Decimal | float | None) -> tuple[str, Style]:
    """`Styles.signed` as a (text, style) cell."""
    signed = styles.signed(text, value)
    return signed.plain, signed.style if isinstance(signed.style, Style) else styles.plain
