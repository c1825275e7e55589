"""Fault injection: a Python API on `SimGateway.faults`, and TOML scenario files that script it in time.

Every method is safe to call from any thread (it runs on the gateway's loop) and is what a real
Gateway would show a client: IB's error codes and texts, dropped sockets, withheld end markers.

A scenario file is a list of steps at virtual-time offsets (seconds after the gateway started):

    [[step]]
    at = 12.5
    action = "connectivity_lost"

    [[step]]
    at = 15
    action = "connectivity_restored"
    data_lost = true

`action` names a method of `Faults`; the other keys are its keyword arguments.
"""

from __future__ import annotations

import inspect
import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from omega_tui.sim.engine import CANCELLED, ExecutionCorrected, SimOrder
from omega_tui.sim.render import completed_order_values
from omega_tui.sim.wire import OUT_BY_NAME

if TYPE_CHECKING:
    from omega_tui.sim.gateway import SimGateway
    from omega_tui.sim.server import SimServer

log = logging.getLogger("omega_tui.sim.faults")
T = TypeVar("T")

TEXT_1100 = "Connectivity between IB and Trader Workstation has been lost."
TEXT_1101 = "Connectivity between IB and Trader Workstation has been restored - data lost."
TEXT_1102 = "Connectivity between IB and Trader Workstation has been restored - data maintained."
TEXT_2110 = "Connectivity between TWS and server is broken. It will be restored automatically."
FARMS = {
    "market": (2103, 2104, "Market data farm connection is {}:usfarm"),
    "hmds": (2105, 2106, "HMDS data farm connection is {}:ushmds"),
}


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the step."""


class Faults:
    """What can go wrong with a Gateway, on demand."""

    def __init__(self, gateway: SimGateway) -> None:
        self._gw = gateway

    @property
    def _server(self) -> SimServer:
        return self._gw.server

    def _run(self, fn: Callable[[], T]) -> T:
        return self._gw.call(fn)

    # ---- connectivity ---------------------------------------------------------------------------

    def connectivity_lost(self) -> None:
        """Error 1100 to every client; market data stops until connectivity is restored."""

        def act() -> None:
            self._server.faults.connectivity_lost = True
            self._server.broadcast_error(1100, TEXT_1100)

        self._run(act)

    def connectivity_restored(self, data_lost: bool = False) -> None:
        """1101 (market-data subscriptions dropped, as IB does) or 1102 (kept); data flows again."""

        def act() -> None:
            server = self._server
            server.faults.connectivity_lost = False
            if data_lost:
                for s in list(server.sessions.values()):
                    n = s.drop_market_data()
                    log.info("fault 1101: dropped %d market-data lines of clientId %s", n, s.client_id)
                server.broadcast_error(1101, TEXT_1101)
            else:
                server.broadcast_error(1102, TEXT_1102)
                for s in list(server.sessions.values()):
                    for sub in list(s.mkt.values()):
                        server.send_quote(sub, server.market.quote(sub.con_id), full=True)

        self._run(act)

    def farm_broken(self, farm: str = "market") -> None:
        """2103 (market data) or 2105 (HMDS) to every client."""
        broken, _, text = self._farm(farm)
        self._run(lambda: self._server.broadcast_error(broken, text.format("broken")))

    def farm_ok(self, farm: str = "market") -> None:
        """2104 (market data) or 2106 (HMDS) to every client."""
        _, ok, text = self._farm(farm)
        self._run(lambda: self._server.broadcast_error(ok, text.format("OK")))

    def farm_blip(self, farm: str = "market") -> None:
        """A farm goes down and comes back at once: 2103→2104 or 2105→2106."""
        self.farm_broken(farm)
        self.farm_ok(farm)

    @staticmethod
    def _farm(farm: str) -> tuple[int, int, str]:
        try:
            return FARMS[farm]
        except KeyError:
            raise ValueError(f"farm must be one of {sorted(FARMS)}, not {farm!r}") from None

    def server_connection_broken(self) -> None:
        """2110: TWS lost its server; IB restores it by itself."""
        self._run(lambda: self._server.broadcast_error(2110, TEXT_2110))

    def drop_connections(self, refuse_for: float = 0.0) -> None:
        """A Gateway restart: every socket closes; new connections are refused for `refuse_for` wall seconds."""
        self._run(lambda: self._server.drop_all(refuse_for))

    # ---- protocol misbehaviour ------------------------------------------------------------------

    def stall(self, message: str, count: int = 1) -> None:
        """Withhold the next `count` messages named `message` (e.g. "execDetailsEnd"); -1 = until cleared."""
        if message not in OUT_BY_NAME:
            raise ValueError(f"unknown message {message!r}; one of: {', '.join(sorted(OUT_BY_NAME))}")

        def act() -> None:
            self._server.faults.stalled[message] = count

        self._run(act)

    def delay(self, message: str, seconds: float, count: int = 1) -> None:
        """Hold the next `count` messages named `message` back for `seconds` of virtual time (a slow end marker)."""
        if message not in OUT_BY_NAME:
            raise ValueError(f"unknown message {message!r}; one of: {', '.join(sorted(OUT_BY_NAME))}")
        if seconds < 0 or count < 1:
            raise ValueError("delay needs seconds >= 0 and count >= 1")

        def act() -> None:
            self._server.faults.delayed[message] = (count, seconds)

        self._run(act)

    def clear_stalls(self) -> None:
        """Stop withholding and delaying messages (already delayed ones still arrive)."""

        def act() -> None:
            self._server.faults.stalled.clear()
            self._server.faults.delayed.clear()

        self._run(act)

    def duplicate_order_status(self, count: int = 1) -> None:
        """The next `count` orderStatus messages are each sent twice."""

        def act() -> None:
            self._server.faults.duplicate_status = count

        self._run(act)

    def exec_before_open(self, count: int = 1) -> None:
        """The next `count` batches with a fill send its execDetails before anything else (even openOrder)."""

        def act() -> None:
            self._server.faults.exec_before_open = count

        self._run(act)

    def unsolicited_completed_order(self, client_id: int | None = None) -> None:
        """A completedOrder nobody asked for (ib_async #128), to one client or all."""

        def act() -> None:
            server = self._server
            done = server.exchange.completed_orders()
            if done:
                order = done[-1]
            else:
                c0 = server.db.all()[0]
                order = SimOrder(
                    client_id=client_id or 0,
                    order_id=0,
                    con_id=c0.con_id,
                    action="BUY",
                    total_qty=1,
                    order_type="LMT",
                    lmt_price=c0.start_price,
                    account=server.account,
                    perm_id=999_999,
                    status=CANCELLED,
                    completed_status="Cancelled by Trader",
                )
            c = server.db.get(order.con_id)
            assert c is not None
            for s in list(server.sessions.values()):
                if client_id is None or s.client_id == client_id:
                    s.send("completedOrder", completed_order_values(order, c))

        self._run(act)

    def message_rate_exceeded(self, client_id: int | None = None) -> None:
        """Error 100 as if the client had sent more than 50 messages in a second."""

        def act() -> None:
            server = self._server
            for s in list(server.sessions.values()):
                if client_id is None or s.client_id == client_id:
                    s.error(-1, 100, f"Max rate of messages per second has been exceeded:max={server.rate_limit}")

        self._run(act)

    def pacing_violation(self, count: int = 1) -> None:
        """The next `count` historical-data requests get error 162 (pacing violation)."""

        def act() -> None:
            self._server.faults.pacing_violations = count

        self._run(act)

    # ---- the engine's hooks ---------------------------------------------------------------------

    def reject_next_order(self, reason: str = "Simulated rejection") -> None:
        """The next new order is rejected with 201 and `reason`."""
        self._run(lambda: self._server.exchange.reject_next(reason))

    def fill_after_cancel(self, times: int = 1) -> None:
        """The next `times` cancels of a working order first yield one more fill, then Cancelled (0 disarms)."""
        self._run(lambda: self._server.exchange.set_fill_after_cancel(times))

    def correct_execution(self, exec_id: str = "", shares: int | None = None, price: float | None = None) -> str:
        """IB's execution correction: re-send execution `exec_id` ("" = the last one) with the last suffix of its
        execId one higher and the corrected `shares` / `price`, replacing it; returns the new execId."""

        def act() -> str:
            server = self._server
            events = server.exchange.correct_execution(exec_id, shares, price)
            server.dispatch(events)
            new = next((e for e in events if isinstance(e, ExecutionCorrected)), None)
            return new.execution.exec_id if new is not None else ""

        return self._run(act)

    def misreport_commission(self, factor: float) -> None:
        """Commission reports carry the true commission × `factor`."""
        self._run(lambda: self._server.exchange.misreport_commission(factor))

    def shock(self, symbol: str, pct: float) -> None:
        """Move a contract's book by `pct` percent at once (by symbol, or a conId as text)."""

        def act() -> None:
            server = self._server
            found = [c for c in server.db.all() if c.symbol == symbol or str(c.con_id) == symbol]
            if not found:
                raise ValueError(f"no contract {symbol!r} in the simulated gateway")
            server.market.shock(found[0].con_id, pct)

        self._run(act)


ACTIONS = frozenset(name for name, fn in inspect.getmembers(Faults, inspect.isfunction) if not name.startswith("_"))


@dataclass(frozen=True)
class Step:
    """One scripted action at a virtual-time offset."""

    at: float
    action: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """Fault steps in time order; `schedule` hands them to a gateway's clock."""

    steps: tuple[Step, ...]
    source: str = "<scenario>"

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read and validate a TOML scenario file; ScenarioError names the file and step at fault."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except OSError as e:
            raise ScenarioError(f"{p}: cannot read scenario file ({e.strerror})") from None
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError(f"{p}: not valid TOML ({e})") from None
        return cls.from_dict(data, str(p))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<scenario>") -> Scenario:
        """A scenario from parsed TOML (`{"step": [{"at": …, "action": …, …}, …]}`)."""
        raw = data.get("step", [])
        if not isinstance(raw, list):
            raise ScenarioError(f"{source}: 'step' must be an array of tables ([[step]])")
        steps: list[Step] = []
        for i, item in enumerate(raw, 1):
            where = f"{source}: step {i}"
            if not isinstance(item, dict):
                raise ScenarioError(f"{where}: must be a table")
            item = dict(item)
            at = item.pop("at", None)
            action = item.pop("action", None)
            if not isinstance(at, int | float) or isinstance(at, bool) or at < 0:
                raise ScenarioError(f"{where}: 'at' must be a number of seconds >= 0")
            if action not in ACTIONS:
                raise ScenarioError(f"{where}: unknown action {action!r}; one of: {', '.join(sorted(ACTIONS))}")
            try:
                inspect.signature(getattr(Faults, action)).bind(None, **item)
            except TypeError as e:
                raise ScenarioError(f"{where}: bad arguments for {action}: {e}") from None
            steps.append(Step(float(at), action, item))
        steps.sort(key=lambda s: s.at)
        return cls(tuple(steps), source)

    def schedule(self, faults: Faults, server: SimServer) -> None:
        """Queue every step on the server's virtual clock, relative to its start."""
        for step in self.steps:
            method = getattr(faults, step.action)
            kwargs = dict(step.kwargs)

            def fire(method: Callable[..., None] = method, kwargs: dict[str, Any] = kwargs, step: Step = step) -> None:
                log.info("scenario %s: t+%.3fs %s %s", self.source, step.at, step.action, kwargs or "")
                method(**kwargs)

            server.call_at(server.start_time + step.at, fire)
