"""RemoteEngine's snapshot of another process's hot state: what it presents, and when (no processes here: the
engine side is a HotState written in this test, flushed by hand)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from omega_tui.attach import RemoteEngine
from omega_tui.config import Settings
from omega_tui.core.control import Answer
from omega_tui.core.hot_state import HotState
from omega_tui.core.types import CommandResult

ACTIVE = {"trading_state": "ACTIVE", "reason": ""}
HALTED = {"trading_state": "HALTED", "reason": "operator halt", "source": "operator:key"}


def _engine(tmp_path: Path) -> tuple[HotState, Settings]:
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    return HotState(state_dir), Settings(state={"dir": str(state_dir)})


def _publish(hot: HotState, **sections: object) -> None:
    for name, value in sections.items():
        hot.set(name, value)
    hot.flush()


def test_the_state_an_answer_carries_is_shown_at_once_and_not_replaced_by_an_older_flush(tmp_path: Path) -> None:
    hot, settings = _engine(tmp_path)
    _publish(hot, risk=ACTIVE)
    client = RemoteEngine(settings)
    try:
        assert client.read("risk") == ACTIVE
        version = client.version("risk")
        client._take_state(Answer(CommandResult("h", True, "halted", datetime.now(UTC)), {"risk": HALTED}))
        assert client.read("risk") == HALTED and client.version("risk") > version
        # The flush in flight when the answer arrived still carries the state from before the halt.
        _publish(hot, risk=ACTIVE)
        client.poll()
        assert client.read("risk") == HALTED
        # The next flush began after the command acted: from here on the disk is the engine's latest word.
        _publish(hot, risk=HALTED)
        client.poll()
        assert client.read("risk") == HALTED
        _publish(hot, risk=ACTIVE)  # e.g. resumed from another terminal
        client.poll()
        assert client.read("risk") == ACTIVE
    finally:
        client.close()
        hot.close()


def test_a_spawned_engine_is_not_shown_the_previous_engines_state(tmp_path: Path) -> None:
    hot, settings = _engine(tmp_path)
    _publish(hot, risk=ACTIVE, positions={"AAPL": {"quantity": 10}}, components={"risk": {"state": "RUNNING"}})
    since = time.time_ns()
    client = RemoteEngine(settings, since_ns=since)
    try:
        assert client.read("risk") is None and client.read("positions") is None  # left by the last engine
        # The new engine's first flush: its components are starting; what it has not republished is hidden.
        _publish(hot, components={"risk": {"state": "STARTING"}})
        client.poll()
        assert client.read("components") == {"risk": {"state": "STARTING"}}
        assert client.read("risk") is None and client.read("positions") is None
        _publish(hot, risk=HALTED)  # a changed section is the new engine's
        client.poll()
        assert client.read("risk") == HALTED and client.read("positions") is None
        # Every component started: each has published, so what equals the old value is the new engine's too.
        _publish(hot, components={"risk": {"state": "RUNNING"}})
        client.poll()
        assert client.read("positions") == {"AAPL": {"quantity": 10}}
    finally:
        client.close()
        hot.close()


def test_unchanged_items_keep_their_identity_across_polls(tmp_path: Path) -> None:
    """Panes cache rows by identity (the orders pane, its detail): an order that did not change between two
    flushes is the same object, as with an in-process engine."""
    hot, settings = _engine(tmp_path)
    first = {"order_id": 1, "state": "SUBMITTED"}
    _publish(hot, orders=[first], positions={"AAPL": {"quantity": 1}})
    client = RemoteEngine(settings)
    try:
        kept = client.read("orders")[0]
        position = client.read("positions")["AAPL"]
        _publish(
            hot,
            orders=[{"order_id": 2, "state": "SUBMITTED"}, first],
            positions={"AAPL": {"quantity": 1}, "MSFT": {"quantity": 2}},
        )
        client.poll()
        orders = client.read("orders")
        assert [o["order_id"] for o in orders] == [2, 1]
        assert orders[1] is kept and client.read("positions")["AAPL"] is position
        _publish(hot, orders=[{"order_id": 2, "state": "SUBMITTED"}, {"order_id": 1, "state": "FILLED"}])
        client.poll()
        assert client.read("orders")[1] is not kept and client.read("orders")[1]["state"] == "FILLED"
    finally:
        client.close()
        hot.close()
