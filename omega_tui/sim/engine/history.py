"""Historical bars consistent with the simulated price process."""

from __future__ import annotations

from dataclasses import dataclass

from omega_tui.sim.engine.contracts import ContractDB
from omega_tui.sim.engine.market import Market


class HistoryError(Exception):
    """A historical request IB would refuse: the wire sends error(reqId, code, text)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class SimBar:
    """One bar: `time` is the bar's start in epoch seconds (daily bars: 00:00 of the day, exchange time)."""

    time: float
    open: float
    high: float
    low: float
    close: float
    volume: int
    wap: float
    bar_count: int


class HistoryGenerator:
    """Bars for IB duration strings and bar sizes; deterministic under the seed."""

    def __init__(self, db: ContractDB, market: Market, seed: int = 0) -> None:
        raise NotImplementedError

    def bars(
        self,
        con_id: int,
        end_epoch: float | None,
        duration_str: str,
        bar_size: str,
        what_to_show: str = "TRADES",
        use_rth: bool = True,
    ) -> list[SimBar]:
        """Bars ending at `end_epoch` (None/0 = now); raises HistoryError for what IB would refuse."""
        raise NotImplementedError

    def head_timestamp(self, con_id: int, what_to_show: str = "TRADES", use_rth: bool = True) -> float:
        """Epoch of the earliest available data for a contract."""
        raise NotImplementedError
