"""The kill switch: halt and flatten reach the engine from every focus state, including inside an Input,
over dialogs and with the command palette open; flatten needs y; resume needs RESUME and shows refusals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual import events
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input, Static

from omega_tui.core.types import Flatten, Halt, Resume
from omega_tui.ui.app import OmegaApp
from omega_tui.ui.driver import kill_switch
from omega_tui.ui.panes.banner import TradingBanner
from omega_tui.ui.panes.base import Pane
from omega_tui.ui.screens.confirm import ConfirmScreen
from omega_tui.ui.screens.help import HelpScreen
from omega_tui.ui.screens.resume import ResumeScreen
from omega_tui.ui.screens.ticket import OrderTicket
from tests.ui.fake_engine import FakeEngine, eventually, panes_dressed_halted

FocusSetup = Callable[[Pilot[int]], Awaitable[None]]


async def _quotes_table(pilot: Pilot[int]) -> None:
    pilot.app.main.query_one("#quotes-table").focus()


async def _orders_table(pilot: Pilot[int]) -> None:
    await pilot.press("1")
    pilot.app.main.query_one("#orders-table").focus()


async def _nothing_focused(pilot: Pilot[int]) -> None:
    pilot.app.set_focus(None)


async def _ticket_input(pilot: Pilot[int]) -> None:
    await pilot.press("n")
    await pilot.pause()
    assert isinstance(pilot.app.screen, OrderTicket)
    assert isinstance(pilot.app.focused, Input)
    await pilot.press("1", "2")  # typing in the Input: ctrl+k/ctrl+f are also Input's own keys


async def _resume_dialog_input(pilot: Pilot[int]) -> None:
    await pilot.press("ctrl+r")
    await pilot.pause()
    assert isinstance(pilot.app.screen, ResumeScreen)
    assert isinstance(pilot.app.focused, Input)


async def _cancel_all_dialog(pilot: Pilot[int]) -> None:
    await pilot.press("X")
    await pilot.pause()
    assert isinstance(pilot.app.screen, ConfirmScreen)


async def _help_screen(pilot: Pilot[int]) -> None:
    await pilot.press("question_mark")
    await pilot.pause()
    assert isinstance(pilot.app.screen, HelpScreen)


async def _command_palette(pilot: Pilot[int]) -> None:
    await pilot.press("ctrl+p")
    await pilot.pause()
    assert isinstance(pilot.app.screen, CommandPalette)
    await pilot.press("h", "a")  # the palette's Input has focus and is being typed in


FOCUS_STATES: dict[str, FocusSetup] = {
    "quotes_table": _quotes_table,
    "orders_table": _orders_table,
    "nothing_focused": _nothing_focused,
    "order_ticket_input": _ticket_input,
    "resume_dialog_input": _resume_dialog_input,
    "cancel_all_dialog": _cancel_all_dialog,
    "help_screen": _help_screen,
    "command_palette": _command_palette,
}


@pytest.mark.parametrize("focus", list(FOCUS_STATES))
async def test_kill_switch_from_any_focus_state_halts_at_once_and_flattens_after_y(
    focus: str, engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await FOCUS_STATES[focus](pilot)
        screen_before = app.screen
        assert not engine.submitted

        await pilot.press("ctrl+k")
        await pilot.pause()
        assert engine.submitted == [Halt(source="operator:key", reason="operator halt from the UI")]
        assert app.main.query_one(TradingBanner).state == "HALTED"
        await eventually(lambda: panes_dressed_halted(app), 5)
        assert app.screen is screen_before, "halting must not disturb what the operator was doing"

        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.screen.id == "flatten-confirm"
        assert len(engine.submitted) == 1, "flatten must not be sent before y"
        await pilot.press("y")
        await pilot.pause()
        assert engine.submitted[1:] == [Flatten(source="operator:key")]
        assert app.screen is screen_before


@pytest.mark.parametrize("answer", ["n", "escape"])
async def test_flatten_refused_with_n_or_escape_sends_nothing(
    answer: str, engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press(answer)
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert engine.submitted == []
        assert app.main.query_one(TradingBanner).state == "ACTIVE"


async def test_flatten_pressed_twice_opens_one_confirmation(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+f", "ctrl+f")
        await pilot.pause()
        assert sum(isinstance(s, ConfirmScreen) for s in app.screen_stack) == 1


async def test_halt_keys_follow_the_keymap(engine: FakeEngine, make_app: Callable[..., OmegaApp]) -> None:
    app = make_app(keymap={"halt": "f12"})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert engine.submitted == []
        await pilot.press("f12")
        await pilot.pause()
        assert [type(c) for c in engine.submitted] == [Halt]


async def test_halt_refused_by_the_engine_is_shown_and_the_banner_stays_truthful(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    engine.answers[Halt] = engine.result(False, "engine is not running")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert app.main.query_one(TradingBanner).state == "ACTIVE"  # the UI never invents HALTED
        messages = [n.message for n in app._notifications]
        assert any("HALT refused: engine is not running" in m for m in messages)


async def test_resume_requires_the_typed_word(engine: FakeEngine, make_app: Callable[..., OmegaApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press("r", "e", "s", "u", "m", "e", "enter")
        await pilot.pause()
        assert engine.submitted == []
        text = str(app.screen.query_one("#resume-message", Static).content)
        assert "Type RESUME exactly" in text


async def test_resume_refused_by_the_engine_shows_its_reason_and_stays_open(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    engine.set_trading_state("HALTED", "daily loss limit breached", "rule:max_daily_loss")
    engine.answers[Resume] = engine.result(False, "daily_loss still breached: -2,140.00 of -2,000.00")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press(*"RESUME", "enter")
        await pilot.pause()
        assert engine.submitted == [Resume(source="operator:ui")]
        assert isinstance(app.screen, ResumeScreen)
        text = str(app.screen.query_one("#resume-message", Static).content)
        assert text == "Refused: daily_loss still breached: -2,140.00 of -2,000.00"
        assert app.main.query_one(TradingBanner).state == "HALTED"


async def test_resume_accepted_closes_the_dialog_and_the_banner_follows_the_engine(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    engine.set_trading_state("HALTED", "operator halt", "operator:key")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await eventually(lambda: panes_dressed_halted(app), 5)
        await pilot.press("ctrl+r")
        await pilot.pause()
        await pilot.press(*"RESUME", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, ResumeScreen)
        app.refresh_panes()
        assert app.main.query_one(TradingBanner).state == "ACTIVE"
        await eventually(lambda: not any("HALTED" in str(p.border_title) for p in app.main.query(Pane)), 5)


def test_driver_sends_the_halt_from_its_input_thread_without_the_ui(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    # No event loop, no screen: the driver's input thread alone gets the Halt to the engine.
    app = make_app(keymap={"halt": "ctrl+k,f12"})
    assert app.kill_switch_keys == {"ctrl+k", "f12"}
    assert kill_switch(app, events.Key("a", "a")) is False
    assert kill_switch(app, events.Key("ctrl+f", None)) is False, "flatten still asks y in the app"
    assert engine.submitted == []
    assert kill_switch(app, events.Key("f12", None)) is True
    assert engine.submitted == [Halt(source="operator:key", reason="operator halt from the UI")]


async def test_key_already_sent_by_the_driver_is_not_sent_twice(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        assert kill_switch(app, events.Key("ctrl+k", None))  # what OmegaDriver does before handing the key on
        await pilot.press("ctrl+k")
        await pilot.pause()
        assert engine.submitted == [Halt(source="operator:key", reason="operator halt from the UI")]
        await eventually(lambda: app.main.query_one(TradingBanner).state == "HALTED", 5)
        await pilot.press("ctrl+k")  # a later press with no driver in front of it sends again (idempotent)
        await pilot.pause()
        assert len(engine.submitted) == 2
