"""A yes/no confirmation answered with `y` (anything else refuses): used by flatten and cancel-all."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True on `y`, False on `n` or escape; the kill-switch keys still work over it."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm_no"),
    ]

    def __init__(self, title: str, body: str, *, danger: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self._title = title
        self._body = body
        self._danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog -danger" if self._danger else "dialog"):
            yield Static(Text(self._title), id="confirm-title", classes="dialog-title")
            yield Static(Text(self._body), id="confirm-body")
            yield Static(Text("Press y to confirm, n or Esc to cancel."), id="confirm-keys", classes="dialog-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
