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
