"""The matching engine: order validation, transmit chains, brackets/OCA, fills by displayed size, cancels."""

from __future__ import annotations

from omega_tui.sim.engine.clock import SimClock
from omega_tui.sim.engine.commission import CommissionModel
from omega_tui.sim.engine.contracts import ContractDB
from omega_tui.sim.engine.events import SimEvent, SimExecution, SimOrder, WhatIfResult
from omega_tui.sim.engine.ledger import Ledger
from omega_tui.sim.engine.market import Market


class Exchange:
    """Matches orders of every client against the Market's quotes and books fills in the Ledger.

    Every public method returns the events it caused, in the order the wire must send them.
    """

    def __init__(self, db: ContractDB, market: Market, ledger: Ledger, clock: SimClock, seed: int = 0,
                 commission_model: CommissionModel | None = None) -> None:
        raise NotImplementedError

    def place(self, order: SimOrder) -> list[SimEvent]:
        """A placeOrder: new order, modification (same client_id+order_id, still working), or held leg."""
        raise NotImplementedError

    def cancel(self, client_id: int, order_id: int) -> list[SimEvent]:
        """A cancelOrder; cancelling a parent cancels its children."""
        raise NotImplementedError

    def global_cancel(self) -> list[SimEvent]:
        """reqGlobalCancel: every working or held order of every client."""
        raise NotImplementedError

    def on_market(self, con_id: int) -> list[SimEvent]:
        """Call after each quote change of `con_id`: marks the ledger and matches resting orders."""
        raise NotImplementedError

    def what_if(self, order: SimOrder) -> SimEvent:
        """Margin and commission for `order` as if it filled; nothing is stored. OrderRejected if not allowed."""
        raise NotImplementedError

    # -- fault hooks --
    def reject_next(self, reason: str) -> None:
        """The next new order is rejected with 201 and `reason`."""
        raise NotImplementedError

    def set_fill_after_cancel(self, enabled: bool = True) -> None:
        """While enabled, a cancel of an order with a remainder yields one more fill before Cancelled."""
        raise NotImplementedError

    def misreport_commission(self, factor: float) -> None:
        """Commission reports carry true commission × `factor` (1.0 = honest); the ledger keeps the truth."""
        raise NotImplementedError

    # -- queries --
    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        """Working (transmitted) orders, of one client or all; snapshots."""
        raise NotImplementedError

    def completed_orders(self) -> list[SimOrder]:
        """Finished orders (Filled, Cancelled, Inactive) in completion order; snapshots."""
        raise NotImplementedError

    def executions(self, client_id: int = 0, acct: str = "", time: str = "", symbol: str = "", sec_type: str = "",
                   exchange: str = "", side: str = "") -> list[SimExecution]:
        """Executions matching an IB ExecutionFilter (empty/0 = any)."""
        raise NotImplementedError

    def commission_of(self, exec_id: str) -> object:
        """The (reported) commission of an execution, for re-sending commissionReports with executions."""
        raise NotImplementedError

    def next_perm_id(self) -> int:
        """A fresh permId."""
        raise NotImplementedError

    def _unused(self) -> WhatIfResult:
        raise NotImplementedError
