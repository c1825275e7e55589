"""The Omega workstation app: panes over an `EngineClient`, keyboard kill switch, order ticket, themes.

Construct and run (`launcher.run_workstation` does this; the engine is a child process):

    process = EngineProcess(engine_argv(options)); process.start()
    app = OmegaApp(SpawnedEngine(settings, process), settings)
    app.run()                                          # returns once the engine has stopped (bounded)

Tests run it over `LocalEngine(runtime)` (the engine in a thread of this process) or a fake engine.

The app reads published snapshots on a timer (`ui.refresh_hz`), skipping sections whose version did not
change, and flushes every table change of one tick inside one `batch_update()`. It sends commands and shows
the engine's answers; it never decides anything about trading.

Exit: ctrl+q, SIGHUP or a lost terminal ask the engine to stop and exit once it has (or after
`ui.engine_stop_timeout_s` + 3 s at most); a second ctrl+q exits at once (the launcher still waits, bounded,
for the engine process, then kills it). An engine that ends on its own is shown (`EngineGone`): the UI exits
with its status if it never started (2, 3), else says NO ENGINE until the operator quits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.command import CommandPalette
from textual.containers import Container
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState

from omega_tui import gc_policy
from omega_tui.config import Settings
from omega_tui.core.types import CancelAll, CancelOrder, Command, CommandResult, Flatten, Halt
from omega_tui.ui.client import ENGINE_WORKER_NAME, EngineClient
from omega_tui.ui.commands import OmegaCommands
from omega_tui.ui.format import Styles
from omega_tui.ui.messages import CommandAnswered, EngineGone, TerminalLost, TradingStateNoticed
from omega_tui.ui.panes.banner import TradingBanner
from omega_tui.ui.panes.base import Pane
from omega_tui.ui.panes.events import EventsPane
from omega_tui.ui.panes.orders import OrdersPane
from omega_tui.ui.panes.positions import PositionsPane
from omega_tui.ui.panes.quotes import QuotesPane
from omega_tui.ui.panes.risk import RiskPane
from omega_tui.ui.panes.scheduler import SchedulerPane
from omega_tui.ui.panes.status import StatusBar
from omega_tui.ui.screens.confirm import ConfirmScreen
from omega_tui.ui.screens.help import HelpScreen
from omega_tui.ui.screens.resume import ResumeScreen
from omega_tui.ui.screens.ticket import OrderTicket, TicketContext
from omega_tui.ui.themes import (
    BUNDLED_THEMES_DIR,
    DEFAULT_THEME,
    THEME_VARIABLE_DEFAULTS,
    load_theme_files,
)

DASHBOARD_MIN = (160, 48)
"""Width and height from which every pane is shown at once; below it, quotes plus one selected pane."""

BANNER_FIRST_S = 0.3
"""How long at most the pane refresh waits for a kill-switch answer to be drawn first (see refresh_panes)."""

HALT_DEDUP_S = 2.0
"""A kill-switch key's binding sends no second Halt if the driver's input thread sent one this recently."""

ENGINE_REFUSED_CODES = (2, 3)
"""Engine exit statuses that mean it never ran (DESIGN §6: 2 refused, e.g. the state directory is taken; 3
startup verification failed): the UI exits with the same status instead of showing a dead engine."""

COMMAND_TIMEOUT_S = 10.0
"""How long the UI waits for the engine's answer to a command before saying it got none."""

SECONDARY_PANES: tuple[tuple[str, str], ...] = (
    ("orders", "Orders"),
    ("positions", "Positions"),
    ("risk", "Risk"),
    ("scheduler", "Scheduler"),
    ("events", "Events"),
)

_PANES = Binding.Group("Panes", compact=True)

OPERATOR = "operator:ui"
"""The `source` every UI command carries, so the journal says a person at this terminal did it."""


class MainScreen(Screen[None]):
    """The dashboard. Classes: -dashboard / -compact (layout by size).

    `trading_look` is the trading state the panes are dressed for (HALTED: every pane's border shouts). It is
    not a class on the screen: a screen class re-evaluates the CSS of every widget, which took 150-500 ms on
    a loaded machine and sat in front of the next frame; inline styles on the six panes cost one repaint each.
    """

    trading_look = "ACTIVE"

    def compose(self) -> ComposeResult:
        yield TradingBanner(id="banner")
        yield StatusBar(id="status")
        with Container(id="body"):
            # Grid order: quotes, risk / orders, positions / events, scheduler (two dashboard columns).
            yield QuotesPane(id="quotes")
            yield RiskPane(id="risk", classes="secondary")
            yield OrdersPane(id="orders", classes="secondary")
            yield PositionsPane(id="positions", classes="secondary")
            yield EventsPane(id="events", classes="secondary")
            yield SchedulerPane(id="scheduler", classes="secondary")
        yield Static("", id="pane-bar", markup=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        app = self.app
        if isinstance(app, OmegaApp):
            app.main_mounted()

    def on_resize(self) -> None:
        app = self.app
        if isinstance(app, OmegaApp):
            app.relayout()

    def _on_timer_update(self) -> None:
        """Textual's screen update tick; no frame is started while a kill-switch key waits for its answer.

        A frame of the panes takes tens of ms on a busy machine (most of the screen when quotes stream); one
        started between the key and the engine's answer sits in front of the HALTED banner. The update
        timer keeps running meanwhile (Textual pauses it only once it draws), so the held frame goes out on
        the first tick after the answer (`OmegaApp._command_answered` ends the hold) or after the bound.
        """
        app = self.app
        if isinstance(app, OmegaApp) and time.monotonic() < app.frames_held_until:
            return
        super()._on_timer_update()


class OmegaApp(App[int]):
    """The workstation. `client` is the engine (LocalEngine or a remote one); `settings` the frozen config."""

    CSS_PATH = "omega.tcss"
    TITLE = "Omega TUI"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {OmegaCommands}

    BINDINGS: ClassVar[list[BindingType]] = [
        # Kill switch: priority bindings are checked from the App down before any focused widget,
        # screen or modal (an Input's own ctrl+k/ctrl+f, a dialog, the command palette).
        Binding("ctrl+k", "halt", "HALT", priority=True, id="halt"),
        Binding("ctrl+f", "flatten", "FLATTEN", priority=True, id="flatten"),
        Binding("ctrl+r", "resume", "Resume", id="resume"),
        Binding("n", "new_order", "New order", id="new_order"),
        Binding("c", "cancel_order", "Cancel order", id="cancel_order"),
        Binding("X", "cancel_all", "Cancel all", id="cancel_all"),
        Binding("question_mark,f1", "help", "Help", id="help"),
        Binding("ctrl+p", "command_palette", "Palette", priority=True, id="command_palette"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        Binding("1", "show_pane('orders')", "Orders", group=_PANES, id="pane_orders"),
        Binding("2", "show_pane('positions')", "Positions", group=_PANES, id="pane_positions"),
        Binding("3", "show_pane('risk')", "Risk", group=_PANES, id="pane_risk"),
        Binding("4", "show_pane('scheduler')", "Scheduler", group=_PANES, id="pane_scheduler"),
        Binding("5", "show_pane('events')", "Events", group=_PANES, id="pane_events"),
    ]

    def __init__(
        self,
        client: EngineClient,
        settings: Settings,
        *,
        now: Callable[[], datetime] | None = None,
        watch_hangup: bool = True,
        freeze_gc: bool = False,
    ) -> None:
        driver_class = None
        if sys.platform != "win32":
            from omega_tui.ui.driver import OmegaDriver

            driver_class = OmegaDriver
        super().__init__(driver_class=driver_class)
        self.client = client
        self.settings = settings
        self._now = now or (lambda: datetime.now(UTC))
        self._watch_hangup = watch_hangup
        self._freeze_gc = freeze_gc
        self._gc_policy: gc_policy.Periodic | None = None
        self._startup_notes: list[tuple[str, str]] = []  # (severity, message) shown once mounted
        self._selected_pane = "orders"
        self._hidden: set[str] = set()
        self._quitting = False
        self._styles: Styles | None = None
        # Widgets the refresh timer touches on every tick, looked up once (query() walks the whole DOM).
        self._banner: TradingBanner | None = None
        self._status: StatusBar | None = None
        self._pane_map: dict[str, Pane] = {}
        # While a kill-switch command is in flight, the timer skips the panes so the frame that carries the
        # engine's answer (the banner) is not also rendering a screenful of quote rows; bounded in time.
        self._banner_first_until = 0.0
        # From a kill-switch key read by the driver's input thread until the engine answers (bounded), the
        # main screen starts no frame (MainScreen._on_timer_update), so the UI thread is free for the answer.
        self.frames_held_until = 0.0
        # The terminal driver's input thread sends a Halt itself when it reads a kill-switch key (halt_now),
        # so the kill switch never waits for this thread; the binding then only shows it (see action_halt).
        self.kill_switch_keys: frozenset[str] = frozenset({"ctrl+k"})
        self._halt_sent_at = 0.0
        self.last_result: CommandResult | None = None
        self._load_themes()
        self._apply_keymap()

    # ------------------------------------------------------------------ themes and keys

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def _load_themes(self) -> None:
        loaded = load_theme_files([BUNDLED_THEMES_DIR, self.settings.ui.themes_dir])
        for error in loaded.errors:
            self._startup_notes.append(("warning", error))
        for theme in loaded.themes.values():
            self.register_theme(theme)
        wanted = self.settings.ui.theme
        if wanted in self.available_themes:
            self.theme = wanted
        else:
            fallback = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
            self._startup_notes.append(
                ("warning", f"ui.theme = {wanted!r} is not a valid theme; using {fallback} instead.")
            )
            self.theme = fallback

    def _apply_keymap(self) -> None:
        known = {b.id for b in self.BINDINGS if isinstance(b, Binding) and b.id}
        keymap = {}
        for binding_id, keys in self.settings.ui.keymap.items():
            if binding_id in known:
                keymap[binding_id] = keys
            else:
                ids = ", ".join(sorted(known))
                self._startup_notes.append(
                    ("warning", f"ui.keymap: unknown binding id {binding_id!r} ignored; the ids are {ids}.")
                )
        self.set_keymap(keymap)
        halt_keys = keymap.get("halt") or next(
            b.key for b in self.BINDINGS if isinstance(b, Binding) and b.id == "halt"
        )
        self.kill_switch_keys = frozenset(key.strip() for key in halt_keys.split(","))

    def watch_theme(self, theme: str) -> None:
        self._styles = None  # table cell styles are rebuilt from the new theme's variables
        main = self._main
        if main is not None and main.is_mounted:
            self.refresh_panes(force=True)
            if self._banner is not None:
                self._dress_panes(main, self._banner.state, force=True)  # inline colours come from the theme

    @property
    def styles_for_cells(self) -> Styles:
        if self._styles is None:
            self._styles = Styles(self.theme_variables)
        return self._styles

    # ------------------------------------------------------------------ layout

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen(id="main")

    @property
    def _main(self) -> MainScreen | None:
        stack = self.screen_stack
        screen = stack[0] if stack else None
        return screen if isinstance(screen, MainScreen) else None

    @property
    def main(self) -> MainScreen:
        screen = self._main
        assert screen is not None, "the main screen is not mounted yet"
        return screen

    def _panes(self) -> dict[str, Pane]:
        return self._pane_map

    def main_mounted(self) -> None:
        """Called by MainScreen once its panes exist: first draw, the refresh timer, then the engine."""
        main = self.main
        self._banner = main.query_one(TradingBanner)
        self._status = main.query_one(StatusBar)
        self._pane_map = {pane.id or "": pane for pane in main.query(Pane)}
        for severity, message in self._startup_notes:
            self.notify(message, severity=severity, timeout=10)  # type: ignore[arg-type]
        self.relayout()
        self.refresh_panes(force=True)
        self.main.query_one("#quotes-table").focus()
        self.set_interval(1.0 / self.settings.ui.refresh_hz, self.refresh_panes, name="pane-refresh")
        if self._watch_hangup and not self.is_headless and hasattr(signal, "SIGHUP"):
            try:
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hangup)
            except (NotImplementedError, RuntimeError):
                pass
        if self._freeze_gc:
            # Everything built so far (widgets, stylesheet, modules) lives as long as the app: frozen, and from
            # then on no full collection at a moment Python picks (they paused the UI, the kill switch's input
            # thread included, for up to 135 ms about once a second): see `gc_policy`.
            self._gc_policy = gc_policy.start(
                asyncio.get_running_loop(),
                full_every_s=gc_policy.UI_FULL_EVERY_S,
                freeze_every_s=gc_policy.UI_FREEZE_EVERY_S,
                may_pause=lambda: time.monotonic() >= self._banner_first_until,
            )
        self.client.start(self)

    def relayout(self) -> None:
        """Choose compact or dashboard for the current size and show the selected / un-hidden panes."""
        main = self._main
        if main is None:
            return
        width, height = self.size
        dashboard = width >= DASHBOARD_MIN[0] and height >= DASHBOARD_MIN[1]
        main.set_class(dashboard, "-dashboard")
        main.set_class(not dashboard, "-compact")
        for pane in main.query(Pane):  # empty until the screen has composed
            pane.set_class(pane.id == self._selected_pane, "-selected")
            pane.set_class(pane.id in self._hidden, "-off")
        if main.query("#pane-bar"):
            self._draw_pane_bar()

    def _draw_pane_bar(self) -> None:
        parts = []
        for name, label in SECONDARY_PANES:
            key = self.keys_for(f"pane_{name}").split(",")[0]
            parts.append(f"[{key} {label}]" if name == self._selected_pane else f" {key} {label} ")
        self.main.query_one("#pane-bar", Static).update(" ".join(parts))

    def visible_panes(self) -> list[Pane]:
        """Panes currently on screen (hidden ones are refreshed when shown)."""
        dashboard = self.main.has_class("-dashboard")
        out = []
        for name, pane in self._pane_map.items():
            if name == "quotes":
                out.append(pane)
            elif dashboard and name not in self._hidden:
                out.append(pane)
            elif not dashboard and name == self._selected_pane:
                out.append(pane)
        return out

    # ------------------------------------------------------------------ refresh

    def refresh_panes(self, force: bool = False) -> None:
        """One timer tick: poll the banner, status bar and visible panes; all changes land in one batch."""
        main = self._main
        banner, status = self._banner, self._status
        if main is None or not main.is_mounted or banner is None or status is None or not banner.is_attached:
            return  # not composed yet, or the screen is being torn down on exit
        styles = self.styles_for_cells
        before = banner.state
        drawn = banner.poll(self.client, force) and banner.state != before and self._draw_banner_now(main, banner)
        self._sync_screen_state(main, banner.state, drawn)  # a new trading state went out first, on its own
        if not force and time.monotonic() < self._banner_first_until:
            return
        with self.batch_update():
            status.poll(self.client, styles, force)
            for pane in self.visible_panes():
                if not force and time.monotonic() < self._banner_first_until:
                    # A kill-switch key came in (the driver's input thread) while this tick was polling: the
                    # panes left wait for a later tick, so the engine's answer finds the UI thread free.
                    break
                pane.poll(self.client, styles, force)

    def refresh_banner(self) -> None:
        """Redraw only the trading state (the kill-switch path does not wait for the next timer tick).

        A change of state is put on the terminal at once, in a frame of its own (`_draw_banner_now`).
        """
        main, banner = self._main, self._banner
        if main is None or banner is None or not banner.is_attached:
            return
        before = banner.state
        drawn = banner.poll(self.client) and banner.state != before and self._draw_banner_now(main, banner)
        self._sync_screen_state(main, banner.state, drawn)

    def _draw_banner_now(self, main: MainScreen, banner: TradingBanner) -> bool:
        """Write the banner's line to the terminal now, in a frame that carries nothing else.

        Textual draws a change on the screen's next update tick (up to 1/MAX_FPS later, after hops through
        the banner's and the screen's message queues), and that frame carries every widget still waiting to
        be drawn: the panes the last refresh changed (a hundred quote rows), tens of ms of rendering in front
        of the HALTED line. Here only the banner's own region (one line) is rendered and displayed; what the
        other widgets changed stays queued for the screen's next frame, which also repaints the banner (no
        change there). A layout may be pending (a toast comes or goes, a pane grew): the banner's line does not
        move with it (one line, docked first, full width), so the current map still places it; the map is
        only wrong for another size of screen (a resize lays out at once, so that is a brief window).
        Skipped, leaving the ordinary path, for a map of another size, when another screen is on top (a
        dialog: the banner is under it) or a batch is open (nothing may be shown). Returns whether it drew.
        """
        return self._draw_now(main, {banner}, on_error=banner.refresh)  # never lose the banner

    def _draw_panes_now(self, main: MainScreen) -> bool:
        """Write the newly dressed panes to the terminal now, in a frame of their own (after the banner's).

        The screen's next frame would carry them too, but after its update tick and with whatever else is
        pending (a layout: tens of ms). Only the panes' own regions are drawn (their children's current lines
        inside them); skipped, leaving that frame, when the banner's conditions fail or a layout is pending
        (the panes may be about to move). Returns whether it drew."""
        if main._layout_required:
            return False
        # Only the panes on screen (a hidden one handed to the compositor would invalidate its whole map).
        visible = main._compositor.visible_widgets
        panes: set[Widget] = {pane for pane in self._pane_map.values() if pane in visible}
        return bool(panes) and self._draw_now(main, panes)

    def _draw_now(self, main: MainScreen, widgets: set[Widget], on_error: Callable[[], object] | None = None) -> bool:
        """Render and display only `widgets`' regions of `main` now (see `_draw_banner_now`); False, leaving the
        screen's own frame to draw them, when that is not possible (`on_error` runs if rendering failed)."""
        if self._batch_count or self.screen is not main or not main.is_current:
            return False
        compositor = main._compositor
        if compositor.size != main.outer_size or not widgets.issubset(compositor.visible_widgets.keys()):
            return False
        try:
            compositor.update_widgets(widgets)
            update = compositor.render_update(screen_stack=self._background_screens)
        except Exception:
            if on_error is not None:
                on_error()
            return False
        self._display(main, update)
        return True

    def _sync_screen_state(self, main: MainScreen, state: str, banner_drawn: bool = False) -> None:
        """Dress the panes for the trading state, right after the banner has been drawn.

        The banner (one widget) is painted first; the panes' borders follow after that frame. When the banner
        has just been written in a frame of its own (`banner_drawn`), the panes are dressed now and drawn in a
        frame of their own (`_draw_panes_now`); otherwise after the frame that carries the banner.
        """
        look = state if state in ("HALTED", "REDUCING", "GONE") else "ACTIVE"
        if main.trading_look != look:
            main.trading_look = look
            if banner_drawn:
                self._dress_panes(main, look)
                self._draw_panes_now(main)
            else:
                self.call_after_refresh(self._dress_panes, main, look)

    def _dress_panes(self, main: MainScreen, look: str, force: bool = False) -> None:
        """Inline border styles on the panes for HALTED (heavy, $halted) or REDUCING (round, $warning).

        Inline styles change only the six pane widgets (a repaint each; the tables inside keep their
        rendered lines); the stylesheet's own pane borders come back when the inline rules are cleared.
        """
        if main.trading_look != look and not force:
            return  # the state moved on before this ran
        look = main.trading_look
        variables = self.theme_variables
        for pane in self._pane_map.values():
            if look in ("HALTED", "GONE"):
                colour = variables.get("halted", "red")
                pane.styles.border = ("heavy", colour)
                pane.styles.border_title_color = colour
                pane.set_trading_mark("■ HALTED" if look == "HALTED" else "✖ NO ENGINE")
            elif look == "REDUCING":
                pane.styles.border = ("round", variables.get("warning", "yellow"))
                pane.styles.clear_rule("border_title_color")
                pane.set_trading_mark("◐ REDUCING")
            else:
                pane.styles.clear_rule("border")
                pane.styles.clear_rule("border_title_color")
                pane.set_trading_mark("")
                pane.refresh()  # clearing an inline rule does not repaint by itself

    @on(TradingStateNoticed)
    def _trading_state_noticed(self) -> None:
        self.refresh_banner()

    # ------------------------------------------------------------------ commands

    def submit_nowait(self, command: Command, pending: str = "") -> concurrent.futures.Future[CommandResult]:
        """Send a command now; its answer arrives later as CommandAnswered (shown and logged)."""
        if pending and self._banner is not None:
            self._banner_first_until = time.monotonic() + BANNER_FIRST_S
            self._banner.set_pending(pending)
            self.refresh_banner()
        return self._submit_answered(command)

    def _submit_answered(self, command: Command) -> concurrent.futures.Future[CommandResult]:
        """Submit (from any thread); the answer is posted back as CommandAnswered (post_message is thread-safe)."""
        future = self.client.submit(command)

        def answered(done: concurrent.futures.Future[CommandResult]) -> None:
            try:
                result = done.result()
            except Exception as exc:  # the client itself failed: still tell the operator
                result = CommandResult("", False, f"{type(exc).__name__}: {exc}", self._now())
            self.post_message(CommandAnswered(command, result))

        future.add_done_callback(answered)
        return future

    async def send(self, command: Command) -> CommandResult:
        """Send a command and wait (bounded) for the engine's answer; used by dialogs that show it."""
        future = self.client.submit(command)
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), COMMAND_TIMEOUT_S)
        except TimeoutError:
            result = CommandResult("", False, f"no answer from the engine within {COMMAND_TIMEOUT_S:g} s", self._now())
        except Exception as exc:
            result = CommandResult("", False, f"{type(exc).__name__}: {exc}", self._now())
        self._record(command, result)
        return result

    @on(CommandAnswered)
    def _command_answered(self, message: CommandAnswered) -> None:
        self.frames_held_until = 0.0
        if not message.result.ok and self._banner is not None:
            self._banner.set_pending("")
        self.refresh_banner()
        self.call_after_refresh(self._panes_may_refresh)
        # The log line and the toast come after the frame that carries the banner: a toast mounts a widget
        # (a layout and a full repaint) and would otherwise hold the HALTED banner back by tens of ms.
        self.call_after_refresh(self._announce_answer, message.command, message.result)

    def _panes_may_refresh(self) -> None:
        self._banner_first_until = 0.0

    def _announce_answer(self, command: Command, result: CommandResult) -> None:
        self._record(command, result)
        name = type(command).__name__.upper()
        if result.ok:
            self.notify(f"{name}: {result.message or 'done'}", title="Engine", timeout=4)
        else:
            self.notify(f"{name} refused: {result.message}", title="Engine", severity="error", timeout=10)

    def _record(self, command: Command, result: CommandResult) -> None:
        self.last_result = result
        verdict = "ok" if result.ok else "REFUSED"
        text = f"{type(command).__name__} {verdict}: {result.message}".rstrip(": ")
        try:
            events = self.main.query_one(EventsPane)
        except Exception:
            return
        events.write_local("info" if result.ok else "error", "ui", text, self._now().isoformat())

    # ------------------------------------------------------------------ actions

    def halt_now(self) -> None:
        """Send the Halt from any thread (the driver's input thread calls this on a kill-switch key).

        The command goes straight to the engine (`EngineClient.submit` is thread-safe); its answer comes back
        as CommandAnswered like any other. The key event still reaches the app afterwards, and action_halt
        then only shows the pending note instead of sending a second Halt.
        """
        self._halt_sent_at = now = time.monotonic()
        # From here until the answer is drawn the refresh timer skips the panes, so the UI thread is free to
        # draw the banner as soon as the engine answers (a float store: safe from the input thread).
        self._banner_first_until = now + BANNER_FIRST_S
        self.frames_held_until = now + BANNER_FIRST_S
        self._submit_answered(Halt(source="operator:key", reason="operator halt from the UI"))

    def action_halt(self) -> None:
        """HALT at once, no confirmation (halting is the safe direction)."""
        if time.monotonic() - self._halt_sent_at < HALT_DEDUP_S:
            # The driver already sent it from its input thread: show it, do not send it twice.
            self._halt_sent_at = 0.0
            if self._banner is not None:
                self._banner_first_until = time.monotonic() + BANNER_FIRST_S
                self._banner.set_pending("HALT sent…")
                self.refresh_banner()
            return
        self.submit_nowait(Halt(source="operator:key", reason="operator halt from the UI"), pending="HALT sent…")

    def action_flatten(self) -> None:
        """Ask for y, then halt, cancel everything (bracket children included) and close every position."""
        if any(isinstance(s, ConfirmScreen) and s.id == "flatten-confirm" for s in self.screen_stack):
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.submit_nowait(Flatten(source="operator:key"), pending="FLATTEN sent…")
            else:
                self.notify("Flatten cancelled; nothing was sent.", timeout=3)

        self.push_screen(
            ConfirmScreen(
                "FLATTEN everything?",
                "Halts trading, cancels every order including bracket children, and closes every position "
                "with marketable limit orders.",
                id="flatten-confirm",
            ),
            confirmed,
        )

    def action_resume(self) -> None:
        """Open the typed confirmation; the dialog shows the engine's refusal if a limit is still breached."""
        self.push_screen(ResumeScreen(self.send, source=OPERATOR))

    def action_new_order(self) -> None:
        self.push_screen(OrderTicket(self.ticket_context(), self.send))

    def action_cancel_order(self) -> None:
        """Cancel the order selected in the Orders pane."""
        order = self.main.query_one(OrdersPane).selected_order()
        if order is None:
            self.notify("Select an order in the Orders pane (key 1) first.", severity="warning", timeout=4)
            return
        if order["state"] in ("FILLED", "CANCELLED", "REJECTED", "INACTIVE"):
            self.notify(f"Order {order['order_id']} is already {order['state']}.", severity="warning", timeout=4)
            return
        self.submit_nowait(CancelOrder(order_id=order["order_id"], source=OPERATOR))

    def action_cancel_all(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.submit_nowait(CancelAll(source=OPERATOR))

        self.push_screen(
            ConfirmScreen(
                "Cancel ALL orders?",
                "Cancels every working order, including the protective bracket legs of open positions.",
                id="cancel-all-confirm",
            ),
            confirmed,
        )

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.help_rows()))

    def action_show_pane(self, name: str) -> None:
        """Compact layout: show this pane under the quotes. Dashboard: make sure it is not hidden."""
        self._selected_pane = name
        self._hidden.discard(name)
        self.relayout()
        self.refresh_panes(force=True)

    def action_toggle_pane(self, name: str) -> None:
        """Hide or show a pane of the dashboard (in the compact layout this selects it)."""
        if self.main.has_class("-compact"):
            self.action_show_pane(name)
            return
        if name in self._hidden:
            self._hidden.discard(name)
        else:
            self._hidden.add(name)
        self.relayout()
        self.refresh_panes(force=True)

    def action_switch_theme(self, name: str) -> None:
        self.theme = name

    async def action_quit(self) -> None:
        """Stop the engine, then exit; a second quit exits without waiting."""
        if self._quitting or self.client.stopped:
            self.exit(0)
            return
        self._quitting = True
        self.client.stop()
        self.notify("Stopping the engine… (ctrl+q again to exit now)", timeout=30)
        bound = float(getattr(self.client, "stop_timeout_s", self.settings.ui.engine_stop_timeout_s)) + 3.0
        self.set_timer(bound, lambda: self.exit(0))
        if self.client.stopped:
            self.exit(0)

    def _hangup(self) -> None:
        self.post_message(TerminalLost())

    @on(TerminalLost)
    async def _terminal_lost(self) -> None:
        await self.action_quit()

    def on_unmount(self) -> None:
        self.client.stop()  # every exit path, not only ctrl+q
        if self._gc_policy is not None:
            self._gc_policy.stop()
            self._gc_policy = None

    @on(EngineGone)
    def _engine_gone(self, message: EngineGone) -> None:
        """The engine's process ended: exit if we asked for it or it never started, else say so unmistakably."""
        code = message.code
        if self._quitting:
            self.exit(code or 0)
            return
        if code in ENGINE_REFUSED_CODES:
            # It never ran (startup failed, or the state directory is taken): the launcher prints its lines
            # once the terminal is given back, and exits with the same code.
            self.exit(code)
            return
        said = "; ".join(message.lines)
        what = f"the engine process exited (status {code})" if code is not None else "the engine is gone"
        text = f"{what}: {said}" if said else what
        if self._banner is not None:
            self._banner.set_engine_lost(what)
        main = self._main
        if main is not None and self._banner is not None:
            self._sync_screen_state(main, self._banner.state)
        if self._status is not None:
            self._status.engine_error = what
        self.refresh_panes(force=True)
        self.notify(
            f"{text}. Nothing is being traded or managed from this screen, and working orders at the broker "
            "are not watched; check the log, then restart omega-tui (a halt stays latched).",
            title="ENGINE GONE",
            severity="error",
            timeout=3600,
        )

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        """Turns a crashed engine into a visible error instead of a dead app; exits once it stopped on quit."""
        worker = event.worker
        if worker.name != ENGINE_WORKER_NAME:
            return
        if event.state is WorkerState.ERROR:
            error = worker.error
            text = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
            try:
                self.main.query_one(StatusBar).engine_error = text
                self.refresh_panes(force=True)
            except Exception:
                pass
            self.notify(
                f"The engine stopped with an error: {text}. Nothing is being traded or managed; "
                "check the log and restart.",
                title="ENGINE FAILED",
                severity="error",
                timeout=3600,
            )
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED) and self._quitting:
            self.exit(0)
        elif event.state is WorkerState.SUCCESS and not self._quitting:
            self.notify("The engine stopped.", severity="warning", timeout=3600)

    # ------------------------------------------------------------------ help, palette, ticket

    def keys_for(self, binding_id: str) -> str:
        """The keys bound to a binding id, as displayed (after `[ui.keymap]`), comma separated."""
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.id == binding_id:
                keys = self._keymap.get(binding_id, binding.key)
                return ",".join(self.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
        return ""

    def help_rows(self) -> list[tuple[str, str, str]]:
        """(keys, description, id) for every app binding, with the keys as currently mapped."""
        rows = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.id:
                rows.append((self.keys_for(binding.id).replace(",", ", "), binding.description, binding.id))
        return rows

    def palette_commands(self) -> Iterable[tuple[str, str, Callable[[], Any]]]:
        """Every action as (name, help, callback) for the command palette provider."""
        yield "Halt trading (kill switch)", "Latch HALTED and cancel every working order", self.action_halt
        yield "Flatten everything", "Halt, cancel all orders and close every position (asks y)", self.action_flatten
        yield "Resume trading", "Re-arm after a halt (type RESUME)", self.action_resume
        yield "Cancel all orders", "Cancel every working order (asks y)", self.action_cancel_all
        yield "Cancel selected order", "Cancel the order selected in the Orders pane", self.action_cancel_order
        yield "New order ticket", "Manual bracket order", self.action_new_order
        yield "Help: keys", "Every key binding and the quote markers", self.action_help
        for name, label in SECONDARY_PANES:
            yield f"Toggle pane: {label}", f"Show or hide the {label} pane", _bind(self.action_toggle_pane, name)
        for theme in sorted(self.available_themes):
            if theme.startswith("omega-"):
                yield f"Theme: {theme}", "Switch the colour theme", _bind(self.action_switch_theme, theme)

    def ticket_context(self) -> TicketContext:
        """Instruments, tick sizes and quotes for the ticket, from the engine's published startup report."""
        quotes = self.client.quotes()
        report = self.client.read("startup_report") or []
        min_ticks: dict[str, Decimal] = {}
        tradable: list[str] = []
        for row in report:
            try:
                min_ticks[row["instrument"]] = Decimal(str(row["min_tick"]))
            except (KeyError, InvalidOperation, ValueError):
                continue
            if row.get("permission_ok") and not row.get("watch_only"):
                tradable.append(row["instrument"])
        if not report:  # before the startup check, offer the configured watchlist (the ticket says why it waits)
            tradable = [spec.key for spec in self.settings.instrument_specs if not spec.watch_only]
        selected = self.main.query_one(QuotesPane).table.selected_key()
        return TicketContext(
            instruments=tradable,
            min_ticks=min_ticks,
            quotes=quotes,
            take_profit_ticks=self.settings.signals.take_profit_ticks,
            stop_loss_ticks=self.settings.signals.stop_loss_ticks,
            priority=self.settings.execution.adaptive_priority,
            initial=selected,
        )

    def is_palette_open(self) -> bool:
        return any(isinstance(s, CommandPalette) for s in self.screen_stack)


def _bind(action: Callable[[str], Any], arg: str) -> Callable[[], Any]:
    def run() -> Any:
        return action(arg)

    return run
