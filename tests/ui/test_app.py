"""App behaviour: layout by size, pane switching, palette commands, refresh skipping, exit paths."""

from __future__ import annotations

from collections.abc import Callable

from textual.command import CommandPalette

from omega_tui.ui.app import OmegaApp
from omega_tui.ui.messages import TerminalLost
from omega_tui.ui.panes.base import StableTable
from omega_tui.ui.panes.events import new_lines
from tests.ui.fake_engine import FakeEngine, demo_events, eventually


async def test_layout_is_compact_below_160x48_and_a_dashboard_from_it(make_app: Callable[..., OmegaApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.main.has_class("-compact")
        assert [p.id for p in app.visible_panes()] == ["quotes", "orders"]
        assert app.main.query_one("#banner").region.height == 1
        assert app.main.query_one("#quotes").region.height >= 6
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        assert app.main.has_class("-dashboard")
        assert {p.id for p in app.visible_panes()} == {"quotes", "orders", "positions", "risk", "scheduler", "events"}
        assert all(p.region.height > 0 for p in app.visible_panes())


async def test_pane_keys_switch_the_pane_under_the_quotes(make_app: Callable[..., OmegaApp]) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        assert [p.id for p in app.visible_panes()] == ["quotes", "risk"]
        assert app.main.query_one("#risk").region.height > 0
        assert app.main.query_one("#orders").region.height == 0


async def test_palette_lists_every_action_and_runs_halt(engine: FakeEngine, make_app: Callable[..., OmegaApp]) -> None:
    app = make_app()
    names = [name for name, _, _ in app.palette_commands()]
    for wanted in ("Halt trading (kill switch)", "Flatten everything", "Resume trading", "Cancel all orders"):
        assert wanted in names
    assert {"Theme: omega-dark", "Theme: omega-light", "Theme: omega-contrast"} <= set(names)
    assert {"Toggle pane: Orders", "Toggle pane: Events"} <= set(names)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"Halt trading", "enter")
        await pilot.pause()
        await pilot.pause(0.2)
        assert [type(c).__name__ for c in engine.submitted] == ["Halt"]


async def test_palette_theme_command_switches_theme(make_app: Callable[..., OmegaApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)):
        dict((n, cb) for n, _, cb in app.palette_commands())["Theme: omega-contrast"]()
        assert app.theme == "omega-contrast"


async def test_help_lists_every_binding_with_its_id_and_remapped_keys(make_app: Callable[..., OmegaApp]) -> None:
    app = make_app(keymap={"flatten": "ctrl+f,f11"})
    rows = {binding_id: keys for keys, _, binding_id in app.help_rows()}
    assert {"halt", "flatten", "resume", "new_order", "cancel_order", "cancel_all", "help", "quit"} <= set(rows)
    assert rows["flatten"] == "^f, f11"


async def test_unknown_keymap_id_is_reported(make_app: Callable[..., OmegaApp]) -> None:
    app = make_app(keymap={"hlt": "f12"})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert any("ui.keymap: unknown binding id 'hlt' ignored" in n.message for n in app._notifications)


async def test_unchanged_sections_are_not_redrawn_and_quote_rows_keep_their_keys(
    engine: FakeEngine, make_app: Callable[..., OmegaApp]
) -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        orders = app.main.query_one("#orders")
        assert orders.poll(engine, app.styles_for_cells) is False  # same version: skipped
        engine.set("orders", engine.read("orders"))
        assert orders.poll(engine, app.styles_for_cells) is True
        table = app.main.query_one("#quotes-table", StableTable)
        rows_before = dict(table.rows)
        engine.walk_quotes(3)
        app.refresh_panes()
        assert dict(table.rows).keys() == rows_before.keys()
        assert table.row_order == ["AAPL", "ES", "MSFT", "NVDA", "SPY", "VIX"]


def test_event_log_appends_only_lines_it_has_not_shown() -> None:
    lines = demo_events()
    assert new_lines(None, lines[:3]) == lines[:3]
    assert new_lines(lines[2], lines) == lines[3:]
    assert new_lines(lines[-1], lines) == []


async def test_terminal_lost_stops_the_engine_and_exits(engine: FakeEngine, make_app: Callable[..., OmegaApp]) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.post_message(TerminalLost())
        await eventually(lambda: app._exit, 5)
        await pilot.pause()
    assert engine.stop_requested


def test_risk_gauges_reuse_the_cells_of_limits_that_did_not_move() -> None:
    import copy

    from omega_tui.ui.format import Styles
    from omega_tui.ui.panes.base import RowCells
    from omega_tui.ui.panes.risk import gauge_rows
    from tests.ui.fake_engine import demo_risk

    styles = Styles({})
    built = RowCells()
    risk = demo_risk()
    first = dict(gauge_rows(risk, styles, built))
    moved = copy.deepcopy(risk)  # equal values in new objects, as a read from another process gives them
    moved["limits"][1]["used"] = 400.0
    del moved["limits"][4]
    second = dict(gauge_rows(moved, styles, built))
    assert second["daily_loss"] is first["daily_loss"]  # equal: the very same cells, skipped by the table
    assert second["position_qty:AAPL"] is not first["position_qty:AAPL"]
    assert second["position_qty:AAPL"][2][0] == "400/1,000"
    assert "order_rate_1s" not in built  # a limit no longer published is forgotten
    other = Styles({"error": "magenta"})  # a theme switch rebuilds every row
    assert dict(gauge_rows(moved, other, built))["daily_loss"] is not first["daily_loss"]
    assert gauge_rows(moved, styles) == gauge_rows(moved, styles, RowCells())
