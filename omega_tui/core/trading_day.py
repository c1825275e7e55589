"""The trading day: which day a moment belongs to, given a reset time in a time zone.

A trading day starts at the most recent `reset` (a local wall time in `tz`) and ends at the next one. Its
label is the calendar date it mostly covers: the start date for a reset before noon (00:00 → that day), the
following date for a reset from noon on (17:00 New York is the futures convention: Monday's session starts
Sunday 17:00). DST is handled by `zoneinfo`; a reset time that does not exist on a spring-forward day is
taken as the instant `zoneinfo` maps it to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class TradingDay:
    """One trading day: its label, and the UTC instants it starts and ends (the next reset)."""

    label: date
    start_utc: datetime
    end_utc: datetime

    @classmethod
    def at(cls, now_utc: datetime, reset: time, tz: ZoneInfo) -> TradingDay:
        """The trading day `now_utc` (timezone-aware) falls in."""
        local = now_utc.astimezone(tz)
        start_date = local.date()
        start = datetime.combine(start_date, reset, tzinfo=tz)
        if start > local:
            start_date -= timedelta(days=1)
            start = datetime.combine(start_date, reset, tzinfo=tz)
        end = datetime.combine(start_date + timedelta(days=1), reset, tzinfo=tz)
        label = start_date + timedelta(days=1) if reset >= time(12, 0) else start_date
        return cls(label, start.astimezone(UTC), end.astimezone(UTC))

    def contains(self, now_utc: datetime) -> bool:
        return self.start_utc <= now_utc < self.end_utc
