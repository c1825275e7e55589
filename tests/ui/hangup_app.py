"""Runs the real app (real driver) over the demo FakeEngine; used by test_hangup in a pseudo-terminal."""

from __future__ import annotations

import sys

from omega_tui.config import Settings
from omega_tui.ui.app import OmegaApp
from tests.ui.fake_engine import FakeEngine, frozen_now

if __name__ == "__main__":
    app = OmegaApp(FakeEngine.demo(), Settings(), now=frozen_now)
    if "--unpatched" in sys.argv:  # for checking that the test detects Textual's own behaviour
        from textual.drivers.linux_driver import LinuxDriver

        app.driver_class = LinuxDriver
        app._watch_hangup = False
    code = app.run()
    print("omega-ui-exited", code, file=sys.stderr)
    sys.exit(0)
