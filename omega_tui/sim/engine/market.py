"""A deterministic, seeded price process per contract: quotes, trades, day statistics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from omega_tui.sim.engine.clock import SimClock
from omega_tui.sim.engine.contracts import ContractDB


@dataclass(frozen=True, slots=True)
class SimQuote:
    """Top of book and day statistics for one contract; prices sit on the contract's tick grid.

    `seq` increases on every change of this contract's quote. `close` is the previous session's close.
    """

    con_id: int
    bid: float
    ask: float
    bid_size: int
    ask_size: int
    last: float
    last_size: int
    volume: int
    open: float
    high: float
    low: float
    close: float
    time: float
    seq: int


class Market:
    """Quotes for every contract of `db`, advanced by `step(now)`; same seed + same steps = same quotes."""

    def __init__(self, db: ContractDB, clock: SimClock, seed: int = 0, speed: float = 1.0) -> None:
        raise NotImplementedError

    def step(self, now: float | None = None) -> list[int]:
        """Advance the market to virtual time `now` (default clock.now()); returns changed con_ids, once each."""
        raise NotImplementedError

    def quote(self, con_id: int) -> SimQuote:
        """The current quote of a contract (KeyError for an unknown con_id)."""
        raise NotImplementedError

    def set_burst(self, events_per_step: int, con_ids: Iterable[int] | None = None) -> None:
        """Benchmark mode: every step applies `events_per_step` extra events to each of `con_ids` (all if None)."""
        raise NotImplementedError

    def shock(self, con_id: int, pct: float) -> None:
        """Move a contract's whole book by `pct` percent now (e.g. -5.0); the next step reports it changed."""
        raise NotImplementedError
