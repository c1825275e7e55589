"""A new trading state goes to the terminal at once, in a frame that carries only the banner's line; what the
panes changed meanwhile is not lost; the dressed panes follow in a frame of their own."""

from __future__ import annotations

import concurrent.futures
import io
from collections.abc import Callable
from typing import Any

from rich.console import Console

from omega_tui.core.types import Command, CommandResult, Halt
from omega_tui.ui.app import OmegaApp
from omega_tui.ui.panes.banner import TradingBanner
from omega_tui.ui.screens.help import HelpScreen
from tests.ui.fake_engine import FakeEngine, eventually, panes_dressed_halted

SIZE = (100, 30)


def _capture(app: OmegaApp) -> list[tuple[str, Any]]:
    """Record every frame the app hands to its driver, as the terminal text a real driver would write."""
    frames: list[tuple[str, Any]] = []
    original = app._display
    sink = io.StringIO()
    console = Console(file=sink, width=SIZE[0], force_terminal=True, color_system="truecolor", legacy_windows=False)

    def display(screen: Any, renderable: Any) -> None:
        original(screen, renderable)
        if renderable is None:
            return
        console.print(renderable, end="")
        frames.append((sink.getvalue(), renderable))
        sink.seek(0)
        sink.truncate()

    app._display = display  # type: ignore[method-assign]
    return frames


def _lines(renderable: Any) -> set[int]:
    return {y for y, _, _ in getattr(renderable, "spans", [])}


async def test_halted_banner_is_drawn_in_its_own_frame_before_pending_pane_changes(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        frames = _capture(app)
        banner = app.main.query_one(TradingBanner)
        banner_y = banner.region.y
        engine.walk_quotes(3)
        app.refresh_panes()  # quote rows changed, not yet drawn (the screen draws them on its next tick)
        engine.set_trading_state("HALTED", "operator halt from the UI", "operator:key")
        frames.clear()

        app.refresh_banner()  # what the Halt's answer does on the UI thread

        assert len(frames) == 2, "the banner, then the dressed panes, are on the terminal when refresh_banner returns"
        text, renderable = frames[0]
        assert "■ HALTED" in text
        assert _lines(renderable) == {banner_y}, "the first frame carries the banner's line only"
        assert panes_dressed_halted(app)
        panes_text, panes_frame = frames[1]
        assert "Quotes ■ HALTED" in panes_text and banner_y not in _lines(panes_frame)
        # The quote rows changed before the answer are still drawn (in the panes' frame or the screen's next one).
        quotes_y = app.main.query_one("#quotes-table").region.y
        await eventually(lambda: any(_lines(r) - {banner_y} and max(_lines(r)) > quotes_y for _, r in frames[1:]), 5)


async def test_panes_are_left_to_the_screens_own_frame_when_a_layout_is_pending(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        frames = _capture(app)
        app.main.refresh(layout=True)  # e.g. a pane was toggled: the panes may be about to move
        engine.set_trading_state("HALTED", "operator halt from the UI", "operator:key")

        app.refresh_banner()

        assert len(frames) == 1 and "Quotes ■ HALTED" not in frames[0][0], "only the banner went out of turn"
        assert panes_dressed_halted(app)
        await eventually(lambda: any("Quotes ■ HALTED" in text for text, _ in frames[1:]), 5)


async def test_banner_under_a_dialog_is_left_to_the_screens_own_frame(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        frames = _capture(app)
        engine.set_trading_state("HALTED", "operator halt from the UI", "operator:key")

        app.refresh_banner()

        assert frames == [], "no frame of the main screen is drawn over the dialog"
        assert app.main.query_one(TradingBanner).state == "HALTED"


async def test_unchanged_state_draws_nothing_out_of_turn(engine: FakeEngine, make_app: Callable[..., OmegaApp]) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        frames = _capture(app)
        engine.set_trading_state("ACTIVE", "", "")  # a new version of the risk section, same state

        app.refresh_banner()

        assert frames == []


async def test_a_kill_switch_key_during_a_refresh_leaves_the_remaining_panes_for_a_later_tick(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:  # the dashboard: every pane is polled
        await pilot.pause()
        panes = app.visible_panes()
        assert len(panes) > 2
        polled: list[str] = []
        for pane in panes:
            original = pane.poll

            def poll(*a: Any, _name: str = pane.id or "", _poll: Any = original, **kw: Any) -> bool:
                polled.append(_name)
                if _name == panes[0].id:
                    app.halt_now()  # the driver's input thread reads ctrl+k while this tick is polling
                return bool(_poll(*a, **kw))

            pane.poll = poll  # type: ignore[method-assign]
        app.refresh_panes()
        assert polled == [panes[0].id], "no pane is polled once the key is in"
        assert engine.submitted, "the Halt itself went out at once"
        await eventually(lambda: app.main.query_one(TradingBanner).state == "HALTED", 5)


async def test_no_frame_starts_between_a_driver_kill_switch_key_and_the_answer(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        pending: list[concurrent.futures.Future[CommandResult]] = []
        answer_now = engine.submit

        def submit(command: Command) -> concurrent.futures.Future[CommandResult]:
            future: concurrent.futures.Future[CommandResult] = concurrent.futures.Future()
            pending.append(future)
            return future

        engine.submit = submit  # type: ignore[method-assign]
        frames = _capture(app)
        app.halt_now()  # the driver's input thread read ctrl+k; the engine has not answered yet
        app.main.query_one("#pane-bar").refresh()  # something on the screen wants a frame
        await pilot.pause(0.1)
        assert frames == [], "the UI thread starts no frame while the Halt's answer is awaited"

        pending[0].set_result(answer_now(Halt(source="operator:key", reason="operator halt")).result())
        await eventually(lambda: any("■ HALTED" in text for text, _ in frames), 5)
        assert "■ HALTED" in frames[0][0], "the answer's banner is the first frame"
        await eventually(lambda: len(frames) > 1, 5)  # the held frame follows


async def test_the_frame_hold_is_bounded_when_no_answer_comes(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        engine.submit = lambda command: concurrent.futures.Future()  # type: ignore[method-assign,assignment]
        frames = _capture(app)
        app.halt_now()
        app.main.query_one("#pane-bar").refresh()
        await eventually(lambda: bool(frames), 5)
        assert app.main.query_one(TradingBanner).state != "HALTED", "nothing invented without the engine's answer"


async def test_a_pending_layout_does_not_hold_the_banner_back(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        frames = _capture(app)
        app.main.refresh(layout=True)  # e.g. a toast came or went: the screen lays out on its next tick
        assert app.main._layout_required
        engine.set_trading_state("HALTED", "operator halt from the UI", "operator:key")

        app.refresh_banner()

        assert len(frames) == 1 and "■ HALTED" in frames[0][0]
        assert _lines(frames[0][1]) == {app.main.query_one(TradingBanner).region.y}
