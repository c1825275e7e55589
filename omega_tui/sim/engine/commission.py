"""The simulated broker's commission schedule (IB-tiered-like, deterministic)."""

from __future__ import annotations

from dataclasses import dataclass

from omega_tui.sim.engine.contracts import SimContract


@dataclass(frozen=True, slots=True)
class CommissionModel:
    """Commission in the contract's currency for one execution.

    Stocks: `stk_per_share` per share, at least `stk_min`, at most `stk_max_pct` of the trade value (the cap
    wins over the minimum, as IB's does). Futures and options: a flat amount per contract. FX: `fx_bps` basis
    points of the notional, at least `fx_min` (in the quote currency).
    """

    stk_per_share: float = 0.005
    stk_min: float = 1.00
    stk_max_pct: float = 0.01
    fut_per_contract: float = 0.85
    opt_per_contract: float = 0.65
    fx_bps: float = 0.2
    fx_min: float = 2.00

    def commission(self, contract: SimContract, quantity: int, price: float) -> float:
        """Commission for `quantity` (unsigned) at `price`, rounded to cents."""
        quantity = abs(quantity)
        if quantity == 0:
            return 0.0
        if contract.sec_type == "STK":
            value = quantity * price
            fee = max(self.stk_min, quantity * self.stk_per_share)
            return round(min(fee, value * self.stk_max_pct), 2)
        if contract.sec_type == "FUT":
            return round(quantity * self.fut_per_contract, 2)
        if contract.sec_type == "OPT":
            return round(quantity * self.opt_per_contract, 2)
        if contract.sec_type == "CASH":
            return round(max(self.fx_min, quantity * price * self.fx_bps / 10_000), 2)
        raise ValueError(f"no commission schedule for security type {contract.sec_type!r}")

    def bounds(self, contract: SimContract, quantity: int, price: float) -> tuple[float, float]:
        """(min, max) commission for a what-if; the simulator fills at one schedule, so both equal the estimate."""
        whole = self.commission(contract, quantity, price)
        return whole, whole
