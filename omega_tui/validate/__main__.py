"""`python -m omega_tui.validate …` is `omega-tui validate …`."""

from __future__ import annotations

import sys

from omega_tui.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
