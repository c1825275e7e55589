"""The simulated account: positions, average cost, realised/unrealised P&L, cash, margin, account values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from omega_tui.sim.engine.contracts import ContractDB
from omega_tui.sim.engine.events import SimCommission, SimExecution

# Fixed conversion into the USD base currency: the account's books do not float with the FX quotes.
FX_TO_USD: dict[str, float] = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}


@dataclass(frozen=True, slots=True)
class SimPosition:
    """One position: `avg_cost` follows IB: average price × multiplier, commissions included."""

    account: str
    con_id: int
    quantity: int
    avg_cost: float


@dataclass(frozen=True, slots=True)
class PortfolioRow:
    """Everything updatePortfolio (portfolioValue, msg 7) needs for one contract, in the contract currency."""

    account: str
    con_id: int
    position: int
    market_price: float
    market_value: float
    average_cost: float
    unrealized_pnl: float
    realized_pnl: float


class Ledger:
    """Positions and cash of one account, updated by fills and marks (see module docs for conventions)."""

    def __init__(self, db: ContractDB, account: str = "DU1234567", starting_cash: float = 1_000_000.0) -> None:
        raise NotImplementedError

    def apply_fill(self, execution: SimExecution, commission: SimCommission) -> float | None:
        """Book one execution and its (true) commission; returns the fill's realised P&L or None if it opened."""
        raise NotImplementedError

    def mark(self, con_id: int, price: float) -> None:
        """Set the price positions in `con_id` are valued at."""
        raise NotImplementedError

    def positions(self) -> list[SimPosition]:
        """Every position ever held today (quantity 0 once closed, as IB reports them until the next day)."""
        raise NotImplementedError

    def portfolio(self) -> list[PortfolioRow]:
        """Rows for updatePortfolio, one per position."""
        raise NotImplementedError

    def account_values(self) -> list[tuple[str, str, str]]:
        """(key, value, currency) rows for accountValue (msg 6), values as strings, BASE and per currency."""
        raise NotImplementedError

    def account_summary(self, tags: Iterable[str] | str = "") -> list[tuple[str, str, str]]:
        """(tag, value, currency) rows for the requested account-summary tags (all known tags if empty)."""
        raise NotImplementedError

    def pnl(self) -> tuple[float, float, float]:
        """(daily, unrealized, realized) P&L of the account in USD."""
        raise NotImplementedError

    def pnl_single(self, con_id: int) -> tuple[int, float, float, float, float]:
        """(position, daily, unrealized, realized, value) for one contract, in the contract currency."""
        raise NotImplementedError
