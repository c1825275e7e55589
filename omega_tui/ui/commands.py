"""The command palette provider: every action of the workstation, searchable by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from omega_tui.ui.app import OmegaApp


class OmegaCommands(Provider):
    """Halt, flatten, resume, cancel, new order, themes, pane toggles and help, from `OmegaApp.palette_commands`."""

    @property
    def omega(self) -> OmegaApp:
        return cast("OmegaApp", self.app)

    async def discover(self) -> Hits:
        for name, help_text, callback in self.omega.palette_commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, callback in self.omega.palette_commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
