"""The journal: an append-only JSON-lines audit log of every decision and transition.

One record per order intent, risk decision, submission, order state change, fill, commission, halt,
re-arm and connection event, so a session can be rebuilt and audited afterwards. `record` writes and
flushes before it returns (the caller acts only after), and `fsync`s records whose kind is in
`DURABLE_KINDS`, which must survive a power cut. Files rotate per UTC day: `journal-YYYYMMDD.jsonl`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, Any

from omega_tui.core.clock import Clock

DURABLE_KINDS = frozenset({"halt", "resume", "trading_state", "submit", "fill", "cancel_all", "shutdown"})


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot journal a {type(value).__name__}")


class Journal:
    """Append-only JSON lines under `<state.dir>/journal/`."""

    def __init__(self, directory: Path, clock: Clock, *, fsync: bool = True) -> None:
        self.directory = Path(directory) / "journal"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._fsync = fsync
        self._file: IO[str] | None = None
        self._day = ""
        self.seq = 0

    def _open_for(self, now: datetime) -> IO[str]:
        day = now.strftime("%Y%m%d")
        if self._file is None or day != self._day:
            if self._file is not None:
                self._file.close()
            self._day = day
            self._file = open(self.directory / f"journal-{day}.jsonl", "a", encoding="utf-8")
        return self._file

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one record and flush it; returns the record as written."""
        now = self._clock.now_utc()
        self.seq += 1
        rec: dict[str, Any] = {"ts": now.isoformat(), "mono_ns": self._clock.monotonic_ns(), "kind": kind}
        rec.update(fields)
        line = json.dumps(rec, default=_default, separators=(",", ":"))
        f = self._open_for(now)
        f.write(line + "\n")
        f.flush()
        if self._fsync and kind in DURABLE_KINDS:
            os.fsync(f.fileno())
        return rec

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("journal-*.jsonl"))

    def read(self, since_day: str = "") -> Iterator[dict[str, Any]]:
        """Every record, oldest first; a torn last line (crash mid-write) is skipped, not fatal."""
        for path in self.files():
            if since_day and path.stem.removeprefix("journal-") < since_day:
                continue
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue
