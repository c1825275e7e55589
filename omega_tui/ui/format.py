"""Presentation helpers: turn published values into display text. No trading decisions live here.

Money arrives as strings of Decimals (views.py) and prices as Decimals (Quote); both are shown exactly,
never through float. The only arithmetic is for display (change vs the previous close, % of a limit).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation

from rich.style import Style
from rich.text import Text
from textual.color import Color

SPARK_CHARS = "▁▂▃▄▅▆▇█"
DASH = "–"


def to_decimal(value: str | Decimal | int | float | None) -> Decimal | None:
    """A Decimal from a views.py money string (or None); bad text is shown as missing, not as zero."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def price(value: Decimal | str | None, places: int | None = None) -> str:
    """A price as published (its own number of decimals, at least 2), or a dash when missing."""
    d = to_decimal(value)
    if d is None:
        return DASH
    if places is None:
        exponent = d.as_tuple().exponent
        places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{d:,.{places}f}"


def money(value: Decimal | str | None, signed: bool = True) -> str:
    d = to_decimal(value)
    if d is None:
        return DASH
    return f"{d:+,.2f}" if signed else f"{d:,.2f}"


def qty(value: int | None, signed: bool = False) -> str:
    if value is None:
        return DASH
    return f"{value:+,d}" if signed else f"{value:,d}"


def compact_int(value: int | None) -> str:
    """Volume-like counts in at most 6 characters: 950, 12.3k, 4.56M."""
    if value is None:
        return DASH
    if value < 10_000:
        return f"{value:,d}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.2f}M"


def micros(us: float | None) -> str:
    """A latency in µs as µs, ms or s, 7 characters at most."""
    if us is None:
        return DASH
    if us < 1_000:
        return f"{us:.0f}µs"
    if us < 1_000_000:
        return f"{us / 1000:.1f}ms"
    return f"{us / 1_000_000:.2f}s"


def pct(fraction: float | None, places: int = 1) -> str:
    return DASH if fraction is None else f"{fraction * 100:.{places}f}%"


def clock_time(iso_utc: str, with_ms: bool = True) -> str:
    """HH:MM:SS(.mmm) UTC from an ISO-8601 string; the text itself if it does not parse."""
    try:
        at = datetime.fromisoformat(iso_utc)
    except ValueError:
        return iso_utc
    text = at.strftime("%H:%M:%S")
    return f"{text}.{at.microsecond // 1000:03d}" if with_ms else text


def sparkline(values: Sequence[Decimal | float], width: int) -> str:
    """The last `width` values as block characters scaled between their min and max (flat = middle)."""
    tail = [float(v) for v in list(values)[-width:]]
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    if high == low:
        return SPARK_CHARS[3] * len(tail)
    span = high - low
    top = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[round((v - low) / span * top)] for v in tail)


def bar(fraction: float, width: int) -> str:
    """A gauge bar of `width` cells filled to `fraction` (clamped to 0..1), in eighths."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    partial = " ▏▎▍▌▋▊▉"[part] if part else ""
    return ("█" * full + partial).ljust(width, "·")


class Styles:
    """Rich styles built from the current theme's variables, for table cells (which CSS cannot reach)."""

    def __init__(self, variables: dict[str, str]) -> None:
        def colour(name: str, fallback: str) -> Style:
            try:
                return Style(color=Color.parse(variables.get(name, fallback)).hex)
            except Exception:
                return Style(color=fallback)

        self.bid = colour("bid", "#3fb6ff")
        self.ask = colour("ask", "#ff8f6b")
        self.up = colour("pnl-up", "#3fb950")
        self.down = colour("pnl-down", "#f85149")
        self.halted = colour("halted", "#d7263d")
        self.warning = colour("warning", "#e3b341")
        self.error = colour("error", "#f85149")
        self.success = colour("success", "#3fb950")
        self.muted = colour("text-muted", "#8b949e")
        self.accent = colour("accent", "#d29922")
        self.primary = colour("primary", "#4c9aff")
        self.reverse = Style(reverse=True)
        self.bold = Style(bold=True)
        self.plain = Style.null()
        # Built once: level() runs for every gauge on every refresh (a Style sum is not free).
        self._levels = {"warn": self.warning, "breach": self.error + Style(bold=True, reverse=True)}

    def signed(self, text: str, value: Decimal | float | int | None) -> Text:
        """Text coloured up/down by sign, with ▲/▼ so the sign never depends on colour alone."""
        if value is None or value == 0:
            return Text(text, style=self.muted)
        up = value > 0
        return Text(("▲" if up else "▼") + text, style=self.up if up else self.down)

    def level(self, level: str) -> Style:
        """The style of a risk level as the engine classified it: ok, warn or breach."""
        return self._levels.get(level, self.success)
