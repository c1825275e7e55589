"""Messages that reach the app from other threads (engine loop, input thread) via thread-safe post_message."""

from __future__ import annotations

from textual.message import Message

from omega_tui.core.types import Command, CommandResult


class TradingStateNoticed(Message):
    """The engine changed trading state; redraw the banner now rather than at the next timer tick.

    Only the latest of a burst matters, so a newer one replaces a pending one (`can_replace`).
    """

    def __init__(self, state: str) -> None:
        super().__init__()
        self.state = state

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TradingStateNoticed)


class CommandAnswered(Message):
    """The engine answered a command the app sent without waiting on it (halt, flatten, cancel)."""

    def __init__(self, command: Command, result: CommandResult) -> None:
        super().__init__()
        self.command = command
        self.result = result


class TerminalLost(Message):
    """The terminal went away (stdin at EOF or SIGHUP): exit gracefully instead of spinning."""


class EngineGone(Message):
    """The engine's process ended (or no longer holds its state directory) while the UI was showing it.

    `code`: its exit status when known (the UI's own engine child), else None; `lines`: what it said last
    (e.g. `omega-tui: startup failed: …`), for the screen and for the terminal after the UI has exited.
    """

    def __init__(self, code: int | None, lines: list[str]) -> None:
        super().__init__()
        self.code = code
        self.lines = lines
