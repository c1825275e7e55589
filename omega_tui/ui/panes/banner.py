"""The trading-state banner: ACTIVE / REDUCING / HALTED with reason, who and when. Always visible."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from omega_tui.core.views import RiskView
from omega_tui.ui.format import clock_time

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

_GLYPH = {"ACTIVE": "●", "REDUCING": "◐", "HALTED": "■"}


class TradingBanner(Static):
    """One line that names the engine's trading state exactly as the risk section publishes it."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.state = "UNKNOWN"
        self._seen = -1
        self._pending = ""
        self.lost = ""

    def set_engine_lost(self, text: str) -> None:
        """The engine's process is gone: say so instead of its last published state (kept until exit)."""
        self.lost = text
        self.state = "GONE"
        self._set_state_class("-halted")
        self.update(Text(f" ✖ NO ENGINE · {text} · nothing is traded or managed by this UI"), layout=False)

    def poll(self, client: EngineClient, force: bool = False) -> bool:
        """Redraw when the risk section changed; returns whether it did."""
        version = client.version("risk")
        if (version == self._seen and not force) or self.lost:
            return False
        self._seen = version
        self.show(client.read("risk"))
        return True

    def set_pending(self, text: str) -> None:
        """Show that a command was sent (e.g. HALT) until the engine's state arrives; never the state itself."""
        self._pending = text
        self._seen = -1  # force the next poll to redraw with or without the note

    def _set_state_class(self, name: str) -> None:
        # Restyling is not free: change the class only when the state really changed.
        if not self.has_class(name):
            self.update_classes({c: c == name for c in ("-active", "-reducing", "-halted", "-unknown")})

    def show(self, risk: RiskView | None) -> None:
        if risk is None:
            self.state = "UNKNOWN"
            self._set_state_class("-unknown")
            self.update(
                Text(f" ? TRADING STATE UNKNOWN — waiting for the risk engine {self._pending}".rstrip()), layout=False
            )
            return
        state = str(risk.get("trading_state", "UNKNOWN"))
        self.state = state
        self._set_state_class(
            {"ACTIVE": "-active", "REDUCING": "-reducing", "HALTED": "-halted"}.get(state, "-unknown")
        )
        parts = [f" {_GLYPH.get(state, '?')} {state}"]
        if state != "ACTIVE" or risk.get("reason"):
            if risk.get("reason"):
                parts.append(str(risk["reason"]))
            if risk.get("source"):
                parts.append(f"by {risk['source']}")
            if risk.get("since_utc"):
                parts.append(f"since {clock_time(str(risk['since_utc']), with_ms=False)} UTC")
        if self._pending and state != "HALTED":
            parts.append(self._pending)
        elif state == "HALTED":
            self._pending = ""
        # One line, always: no relayout of the screen (a layout pass would sit in front of the HALTED frame).
        self.update(Text(" · ".join(parts)), layout=False)
