"""`resume --yes` is refused while a limit stays breached: a daily loss limit of one cent, lost by a round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.headless.conftest import Engine, eventually, omega, start_engine, wait_state


@pytest.fixture(scope="module")
def engine(workdir: Path, module_state_dir: Path, gateway: int) -> Iterator[Engine]:
    engine = start_engine(
        workdir,
        module_state_dir,
        "--mode",
        "gateway",
        "--set",
        f"ib.port={gateway}",
        "--set",
        "risk.max_daily_loss=0.01",
        "--set",
        "risk.on_max_loss=halt",
        driver=True,
    )
    try:
        yield engine
    finally:
        engine.kill()


def test_resume_yes_is_refused_while_the_daily_loss_limit_stays_breached(engine: Engine, workdir: Path) -> None:
    answer = engine.request("take MSFT")
    assert answer["ok"], answer
    eventually(lambda: engine.report()["positions"].get("MSFT", {}).get("quantity"), 10, "MSFT position opened")
    # A round trip through the spread with two commissions is a certain loss beyond one cent.
    done = omega(workdir, engine.state_dir, "flatten", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    halted = wait_state(engine.state_dir, "HALTED")
    loss = next(limit for limit in halted["limits"] if limit["name"] == "daily_loss")
    assert loss["level"] == "breach"

    done = omega(workdir, engine.state_dir, "resume", "--yes")
    assert done.returncode == 1
    assert done.stdout.startswith("resume: refused: the day's P&L")
    assert "daily loss limit" in done.stdout

    status = omega(workdir, engine.state_dir, "status")
    assert status.returncode == 1
    assert engine.report()["trading_state"] == "HALTED"
