"""`omega-tui attach`: the workstation UI over a running `omega-tui --no-ui` (embedded simulated gateway).

The attached app is driven by Textual's Pilot in this process; the engine is a separate process and is
checked with `omega-tui status --json`, a third process.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from omega_tui.attach import RemoteEngine
from omega_tui.config import Settings
from omega_tui.ui.app import OmegaApp
from omega_tui.ui.panes.banner import TradingBanner
from omega_tui.ui.panes.quotes import QuotesPane
from omega_tui.ui.panes.status import StatusBar
from tests.headless.conftest import Engine, omega, start_engine

WATCHLIST = ["AAPL", "MSFT", "SPY"]


@pytest.fixture(scope="module")
def engine(workdir: Path, module_state_dir: Path) -> Iterator[Engine]:
    engine = start_engine(workdir, module_state_dir)
    try:
        yield engine
    finally:
        engine.kill()


async def until(predicate: Callable[[], object], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {seconds:g} s")


async def test_attached_ui_shows_the_engine_state_and_its_ctrl_k_halts_the_headless_engine(
    engine: Engine, workdir: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    settings = Settings(state={"dir": str(engine.state_dir)})
    client = RemoteEngine(settings)
    app = OmegaApp(client, settings, watch_hangup=False)
    port = engine.report()["connection"]["port"]
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            banner = app.main.query_one(TradingBanner)
            await until(lambda: banner.state == "ACTIVE")
            await until(lambda: app.main.query_one(QuotesPane).table.row_order == WATCHLIST)
            status = str(app.main.query_one(StatusBar).render_status(client, app.styles_for_cells))
            assert f"SIM  127.0.0.1:{port} UP attached" in status
            print(f"attached and showing the engine after {time.monotonic() - started:.1f} s")
            (tmp_path / "attached.svg").write_text(app.export_screenshot(), encoding="utf-8")

            await pilot.press("ctrl+k")
            done = await asyncio.to_thread(omega, workdir, engine.state_dir, "status", "--json")
            report = json.loads(done.stdout)
            for _ in range(20):  # the halt is applied within 100 ms; allow a loaded machine a little more
                if report["trading_state"] == "HALTED":
                    break
                await asyncio.sleep(0.1)
                done = await asyncio.to_thread(omega, workdir, engine.state_dir, "status", "--json")
                report = json.loads(done.stdout)
            assert done.returncode == 1
            assert (report["trading_state"], report["source"]) == ("HALTED", "operator:key")
            await until(lambda: banner.state == "HALTED")
            await pilot.press("ctrl+q")
            await until(lambda: app.return_code is not None, 3)  # the attached UI exits at once
    finally:
        client.close()
    # Quitting an attached UI leaves the headless engine running (and halted).
    assert engine.proc.poll() is None
    assert engine.report()["engine"]["pid"] == engine.pid
