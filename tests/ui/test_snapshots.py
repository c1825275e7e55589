"""Snapshots of every pane at 80×24 and 160×48, each theme, HALTED, the ticket with errors, flatten confirm.

Data comes from FakeEngine.demo() (fixed views, frozen clock); quotes walk a fixed path so sparklines show.
Regenerate after an intended visual change with `pytest tests/ui/test_snapshots.py --snapshot-update` and
look at the SVGs under __snapshots__ before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from omega_tui.config import Settings
from omega_tui.ui.app import OmegaApp
from tests.ui.fake_engine import FakeEngine, frozen_now

COMPACT = (80, 24)
DASHBOARD = (160, 48)


def _app(theme: str = "omega-dark", engine: FakeEngine | None = None) -> OmegaApp:
    return OmegaApp(engine or FakeEngine.demo(), Settings(ui={"theme": theme}), now=frozen_now)


def _with_history(
    then: Callable[[Pilot[Any]], Awaitable[None]] | None = None,
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, OmegaApp) and isinstance(app.client, FakeEngine)
        await pilot.pause()  # the main screen mounts after run_before may start
        for _ in range(10):
            app.client.walk_quotes(1)
            app.refresh_panes()
        await pilot.pause()
        if then is not None:
            await then(pilot)
            await pilot.pause()

    return run_before


@pytest.mark.parametrize(
    "pane_key", ["1", "2", "3", "4", "5"], ids=["orders", "positions", "risk", "scheduler", "events"]
)
def test_compact_layout_shows_banner_quotes_and_the_selected_pane(snap_compare: Any, pane_key: str) -> None:
    assert snap_compare(_app(), press=[pane_key], terminal_size=COMPACT, run_before=_with_history())


@pytest.mark.parametrize("theme", ["omega-dark", "omega-light", "omega-contrast"])
def test_dashboard_shows_every_pane(snap_compare: Any, theme: str) -> None:
    assert snap_compare(_app(theme), terminal_size=DASHBOARD, run_before=_with_history())


@pytest.mark.parametrize("size", [COMPACT, DASHBOARD], ids=["80x24", "160x48"])
def test_halted_screen_is_unmistakable(snap_compare: Any, size: tuple[int, int]) -> None:
    engine = FakeEngine.demo()
    engine.set_trading_state("HALTED", "daily loss limit breached", "rule:max_daily_loss")
    assert snap_compare(_app(engine=engine), terminal_size=size, run_before=_with_history())


def test_order_ticket_with_field_errors(snap_compare: Any) -> None:
    async def fill_badly(pilot: Pilot[Any]) -> None:
        await pilot.press("n")
        await pilot.pause()
        screen = pilot.app.screen
        for field in screen.query(Input):
            field.cursor_blink = False  # a blinking cursor makes the snapshot depend on timing
        screen.query_one("#limit", Input).value = "189.505"
        screen.query_one("#tp_ticks", Input).value = "0"
        await pilot.press("ctrl+s")

    assert snap_compare(_app(), terminal_size=COMPACT, run_before=_with_history(fill_badly))


def test_flatten_confirmation(snap_compare: Any) -> None:
    assert snap_compare(_app(), press=["ctrl+f"], terminal_size=COMPACT, run_before=_with_history())


def test_help_screen(snap_compare: Any) -> None:
    assert snap_compare(_app(), press=["question_mark"], terminal_size=COMPACT, run_before=_with_history())
