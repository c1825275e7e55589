"""Help: every key binding as currently mapped (after `[ui.keymap]`), and what the quote markers mean."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from omega_tui.ui.panes.quotes import MARKERS


class HelpScreen(ModalScreen[None]):
    """A scrollable list of (keys, action, binding id) rows built by the app from its live bindings."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", id="help_close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self._rows = rows

    def compose(self) -> ComposeResult:
        keys = Table(title=Text('Keys (remap by id in [ui.keymap], e.g. halt = "ctrl+k,f12")'), expand=True)
        keys.add_column("Keys", no_wrap=True)
        keys.add_column("Action")
        keys.add_column("Binding id", no_wrap=True)
        for key, description, binding_id in self._rows:
            keys.add_row(key, description, binding_id)
        markers = Table(title="Quote markers", expand=True)
        markers.add_column("Flg", no_wrap=True)
        markers.add_column("Meaning")
        for _, letter, meaning in MARKERS:
            markers.add_row(letter, meaning)
        with VerticalScroll(id="help-box", classes="dialog"):
            yield Static(Text("Omega TUI — help (Esc to close)"), classes="dialog-title")
            yield Static(keys)
            yield Static(markers)
            yield Static(
                Text(
                    "Kill switch: halt and flatten work from anywhere, including inside inputs, dialogs and "
                    "the command palette. Halt needs no confirmation; flatten asks for y; resume asks you to "
                    "type RESUME."
                )
            )

    def action_close(self) -> None:
        self.dismiss(None)
