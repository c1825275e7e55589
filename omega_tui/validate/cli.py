"""`omega-tui validate [--minutes N] [--out DIR]`: run the validation day and print its checklist."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime
from pathlib import Path

from omega_tui.config import Settings
from omega_tui.logs import setup_logging
from omega_tui.validate.runner import EXIT_STARTUP, EXIT_USAGE, ValidationOptions, run_validation


def default_out_dir() -> Path:
    return Path(f"./validation-{datetime.now().astimezone().date().isoformat()}")


def cmd_validate(settings: Settings, minutes: float, out: str | None, speed: float) -> int:
    """Run the day; print ✓/✗ per check and the report's path. Exit 0 only when every check passed."""
    if minutes <= 0:
        print("omega-tui validate: --minutes must be a positive number of session minutes", file=sys.stderr)
        return EXIT_USAGE
    if speed <= 0:
        print("omega-tui validate: --speed must be positive", file=sys.stderr)
        return EXIT_USAGE
    out_dir = Path(out) if out else default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(out_dir, settings.logging.level, log_name="validate.log")
    logging.getLogger("ib_async").setLevel(logging.WARNING)  # its INFO logs every message of a whole day
    options = ValidationOptions(minutes=minutes, out_dir=out_dir, speed=speed)
    mode = f"simulated gateway, ×{speed:g}" if settings.ib.mode == "sim" else "paper account, real time"
    print(f"omega-tui validate: {minutes:g} session minutes ({mode}); report in {out_dir}", flush=True)
    outcome = asyncio.run(run_validation(settings, options))
    if outcome.report is None:
        for line in outcome.errors:
            print(f"omega-tui validate: startup failed: {line}", file=sys.stderr)
        return EXIT_STARTUP
    for line in outcome.report.console_lines():
        print(line)
    print(f"report: {outcome.paths['html'].resolve()}  (also report.md, report.json)")
    return outcome.exit_code
