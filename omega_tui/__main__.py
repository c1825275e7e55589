"""`python -m omega_tui` is `omega-tui`."""

from __future__ import annotations

import sys

from omega_tui.cli import main

sys.exit(main())
