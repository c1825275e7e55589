"""A tiny engine process for the crash test: `python -m tests.risk.halt_process STATE_DIR halt|show [REASON]`.

`halt` builds a risk engine over STATE_DIR, halts it, prints one JSON line and then waits to be killed;
`show` builds a new engine over the same directory and prints its trading state as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from omega_tui.config import Settings, StateSettings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import SystemClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.risk import RiskEngine
from tests.risk.fakes import FakeOrders


async def main(state_dir: Path, mode: str, reason: str) -> None:
    clock = SystemClock()
    hot = HotState(state_dir)
    engine = RiskEngine(
        Settings(state=StateSettings(dir=state_dir)),
        clock,
        EventBus(),
        hot,
        Journal(state_dir, clock),
        FakeOrders(clock),
    )
    if mode == "halt":
        engine.halt("control:halt", reason)
    print(
        json.dumps(
            {
                "state": engine.trading_state.value,
                "source": engine.state_source,
                "reason": engine.state_reason,
                "since": engine.state_since,
            }
        ),
        flush=True,
    )
    if mode == "halt":
        await asyncio.sleep(3600)  # killed long before this


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
