"""Modal screens: confirmations, the resume dialog, the order ticket, help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from omega_tui.core.types import Command, CommandResult

SendCommand = Callable[[Command], Awaitable[CommandResult]]
"""How a screen sends a command: the app's `send`, which waits (bounded) for the engine's answer."""
