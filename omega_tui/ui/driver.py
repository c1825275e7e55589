"""A Linux driver that notices when its terminal disappears (an SSH drop), instead of spinning.

Textual 8's input thread treats an empty read (EOF) as "nothing this time" and selects again; at EOF the
descriptor is always readable, so it spins at 100% CPU forever. This copy of `run_input_thread` posts
`TerminalLost` on EOF (or on EIO, which a vanished pty gives) and stops reading; the app then shuts the
engine down by its normal exit path. SIGHUP is handled separately by the app (same message).
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder

from textual._parser import ParseError
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

from omega_tui.ui.messages import TerminalLost


class OmegaDriver(LinuxDriver):
    """LinuxDriver whose input thread ends, and tells the app, when the terminal is gone."""

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
                        self.process_message(event)
                for event in parser.tick():
                    self.process_message(event)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass
