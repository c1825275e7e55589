"""The status bar: connection state with the Gateway's host:port, mode SIM / PAPER / LIVE clearly marked,
and each component's status."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from omega_tui.core.views import ComponentView, ConnectionView
from omega_tui.ui.format import Styles

if TYPE_CHECKING:
    from omega_tui.ui.client import EngineClient

_COMPONENT_GLYPH = {"RUNNING": "●", "STARTING": "◌", "DEGRADED": "◐", "FAILED": "✖", "STOPPING": "◌", "STOPPED": "○"}


class StatusBar(Static):
    """One line: mode badge, address, connection state, then one glyph per component."""

    SECTIONS = ("connection", "components")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self._seen: tuple[int, ...] | None = None
        self.engine_error = ""

    def poll(self, client: EngineClient, styles: Styles, force: bool = False) -> bool:
        versions = tuple(client.version(s) for s in self.SECTIONS)
        if versions == self._seen and not force:
            return False
        self._seen = versions
        self.update(self.render_status(client, styles), layout=False)  # one line, always
        return True

    def render_status(self, client: EngineClient, styles: Styles) -> Text:
        described = client.describe()
        conn: ConnectionView | None = client.read("connection")
        mode = (conn["mode"] if conn else "") or described.mode
        host = (conn["host"] if conn else "") or described.host
        port = (conn["port"] if conn else 0) or described.port
        state = (conn["state"] if conn else "") or "DOWN"
        mode_style = {"LIVE": styles.error, "PAPER": styles.warning}.get(mode, styles.primary)
        state_style = {"UP": styles.success, "DEGRADED": styles.warning, "CONNECTING": styles.accent}.get(
            state, styles.error
        )
        self.set_class(mode == "LIVE", "-live")
        parts: list[Text | str | tuple[str, object]] = [
            (f" {mode} ", mode_style + styles.reverse + styles.bold),
            " ",
            f"{host}:{port}",
            " ",
            (state, state_style + styles.bold),
        ]
        if described.kind != "local":
            parts.append((" attached", styles.muted))
        if conn is not None and conn.get("account"):
            parts.append((f" {conn['account']}", styles.muted))
        if conn is not None and conn.get("detail") and state != "UP":
            parts.append((f" ({conn['detail']})", styles.muted))
        components: dict[str, ComponentView] = client.read("components") or {}
        if components:
            parts.append(("  │ ", styles.muted))
        for name, view in components.items():
            cstate = view.get("state", "?")
            glyph = _COMPONENT_GLYPH.get(cstate, "?")
            cstyle = {"RUNNING": styles.success, "DEGRADED": styles.warning, "FAILED": styles.error}.get(
                cstate, styles.muted
            )
            parts.append((f"{glyph}", cstyle))
            parts.append((f"{name} ", cstyle if cstate in ("FAILED", "DEGRADED") else styles.muted))
        if self.engine_error:
            parts.append((f" ENGINE: {self.engine_error}", styles.error + styles.reverse))
        return Text.assemble(*parts, no_wrap=True, overflow="ellipsis")  # type: ignore[arg-type]
