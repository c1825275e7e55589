"""Logging: always to a rotating file in the state directory; to stderr as JSON lines in --no-ui mode.

Never to stdout while the UI runs (it would corrupt the screen).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path

LOG_FILE = "omega.log"


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg (+ exc when there is a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def log_path(state_dir: Path, name: str = LOG_FILE) -> Path:
    return state_dir / "logs" / name


def setup_logging(state_dir: Path, level: str = "INFO", *, stderr_json: bool = False, log_name: str = LOG_FILE) -> Path:
    """Configure the root logger; returns the log file's path. Safe to call more than once."""
    path = log_path(state_dir, log_name)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_omega", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=20_000_000, backupCount=5, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    file_handler._omega = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    if stderr_json:
        err = logging.StreamHandler(sys.stderr)
        err.setFormatter(JsonLineFormatter())
        err._omega = True  # type: ignore[attr-defined]
        root.addHandler(err)
    # ib_async logs every message at DEBUG; keep its INFO chatter out of our file unless asked.
    logging.getLogger("ib_async").setLevel(max(logging.INFO, logging.getLevelName(level)))
    return path
