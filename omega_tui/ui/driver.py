"""A Linux driver that sends the kill switch itself, and notices when its terminal disappears (an SSH drop).

Kill switch: the input thread parses the keys; a kill-switch key (the `halt` binding, after `[ui.keymap]`)
is sent to the engine from this thread (`OmegaApp.halt_now`) before the key is handed to the app, so halting
never waits for the UI thread (a long frame, a slow handler). The app's binding still runs and shows it.

Textual 8's input thread treats an empty read (EOF) as "nothing this time" and selects again; at EOF the
descriptor is always readable, so it spins at 100% CPU forever. This copy of `run_input_thread` posts
`TerminalLost` on EOF (or on EIO, which a vanished pty gives) and stops reading; the app then shuts the
engine down by its normal exit path. SIGHUP is handled separately by the app (same message).
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder
from typing import Any

from textual import events
from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

from omega_tui.ui.messages import TerminalLost


class OmegaDriver(LinuxDriver):
    """LinuxDriver whose input thread sends the kill switch itself and ends, telling the app, at EOF."""

    def dispatch_input(self, event: Message) -> None:
        """Hand a parsed input event to the app; a kill-switch key is first sent to the engine from here."""
        kill_switch(self._app, event)
        self.process_message(event)

    def run_input_thread(self) -> None:
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        fileno = self.fileno
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        try:
            while not self.exit_event.is_set():
                for _key, mask in selector.select(0.1):
                    if not mask & selectors.EVENT_READ:
                        continue
                    try:
                        data = os.read(fileno, 1024 * 4)
                    except OSError:  # EIO: the pty's other side is gone
                        data = b""
                    if not data:
                        self._app.post_message(TerminalLost())
                        return
                    for event in parser.feed(decode(data)):
                        self.dispatch_input(event)
                for event in parser.tick():
                    self.dispatch_input(event)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass


def kill_switch(app: Any, event: Message) -> bool:
    """If `event` is a kill-switch key of `app` (an OmegaApp), send the Halt now, from this thread."""
    keys = getattr(app, "kill_switch_keys", None)
    if not keys or not isinstance(event, events.Key) or event.key not in keys:
        return False
    try:
        app.halt_now()
    except Exception:  # never lose the key: the app's binding sends the Halt then
        return False
    return True
