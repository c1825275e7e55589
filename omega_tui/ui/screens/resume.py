"""Resume needs a typed confirmation; if the engine refuses (a limit still breached), its reason is shown."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from omega_tui.core.types import Resume
from omega_tui.ui.screens import SendCommand

CONFIRM_WORD = "RESUME"


class ResumeScreen(ModalScreen[bool]):
    """Type RESUME and press Enter to send Resume; dismisses True only when the engine accepted it."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="resume_cancel")]

    def __init__(self, send: SendCommand, *, source: str = "operator:ui") -> None:
        super().__init__()
        self._send = send
        self._source = source
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="resume-box", classes="dialog"):
            yield Static(Text("Resume trading"), classes="dialog-title")
            yield Static(
                Text(
                    f"Re-arms the risk engine after a halt. Type {CONFIRM_WORD} and press Enter; "
                    "the engine refuses while a limit is still breached."
                )
            )
            yield Input(placeholder=CONFIRM_WORD, id="resume-input", compact=True)
            yield Static("", id="resume-message", classes="field-error")
            yield Static(Text("Enter to send, Esc to cancel."), classes="dialog-keys")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#resume-input")
    async def _submitted(self, event: Input.Submitted) -> None:
        message = self.query_one("#resume-message", Static)
        if event.value.strip() != CONFIRM_WORD:
            message.set_classes("field-error")
            message.update(Text(f"Type {CONFIRM_WORD} exactly, in capitals, to resume; nothing was sent."))
            return
        if self.busy:
            return
        self.busy = True
        message.set_classes("field-info")
        message.update(Text("Sent; waiting for the risk engine…"))
        try:
            result = await self._send(Resume(source=self._source))
        finally:
            self.busy = False
        if result.ok:
            self.dismiss(True)
            return
        message.set_classes("field-error")
        message.update(Text(f"Refused: {result.message}"))

    def action_cancel(self) -> None:
        self.dismiss(False)
