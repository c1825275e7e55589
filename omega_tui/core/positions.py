"""Positions and P&L from fills: quantity, average cost, realised, unrealised, commissions, exact in Decimal.

The average-cost method, as IB's portfolio uses it: buying into a long (or selling into a short) blends the
price into the average; reducing realises `(price - avg_cost) * closed * multiplier` (sign-adjusted) and keeps
the average; a fill through zero closes the old position and opens the rest at the fill price. Unlike IB's
`avgCost`, Omega's `avg_cost` and `realized` exclude commissions, which are kept apart in `commissions`, so
the net figure is `realized + unrealized - commissions` (IB folds commissions into cost and realised P&L; the
net figure is the same, which is why reconciliation compares net figures).

To stay exact, a position keeps its cost basis (sum of price * quantity of what is open) rather than the
average: a full close realises `proceeds - basis` with no division; only a partial close divides.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from omega_tui.core.types import Side

ZERO = Decimal(0)
CENT = Decimal("0.01")


@dataclass(slots=True)
class Position:
    """One instrument's position. Mutated only by the order manager; callers read it."""

    key: str
    multiplier: int = 1
    quantity: int = 0  # signed: > 0 long, < 0 short
    cost_basis: Decimal = ZERO  # sum of price * |qty| of the open quantity (positive)
    realized: Decimal = ZERO
    commissions: Decimal = ZERO
    fills: int = 0
    # The broker's own figures (portfolio / reqPnLSingle), for reconciliation; None until it reports.
    broker_quantity: int | None = None
    broker_avg_cost: Decimal | None = None
    broker_unrealized: Decimal | None = None
    broker_realized: Decimal | None = None
    agrees: bool = True

    @property
    def avg_cost(self) -> Decimal:
        """Average price of the open quantity (0 when flat), commissions excluded."""
        if self.quantity == 0:
            return ZERO
        return self.cost_basis / abs(self.quantity)

    def unrealized(self, mark: Decimal | None) -> Decimal:
        """P&L of the open quantity at `mark`; 0 when flat or when there is no mark."""
        if self.quantity == 0 or mark is None:
            return ZERO
        value = mark * abs(self.quantity)
        pnl = value - self.cost_basis if self.quantity > 0 else self.cost_basis - value
        return pnl * self.multiplier

    def net(self, mark: Decimal | None) -> Decimal:
        """Realised + unrealised - commissions."""
        return self.realized + self.unrealized(mark) - self.commissions

    def apply_fill(self, side: Side, quantity: int, price: Decimal) -> Decimal:
        """Book one fill; returns the P&L it realised (before commissions)."""
        if quantity <= 0:
            raise ValueError(f"a fill needs a positive quantity, got {quantity}")
        self.fills += 1
        signed = side.sign * quantity
        if self.quantity == 0 or (self.quantity > 0) == (signed > 0):
            self.quantity += signed
            self.cost_basis += price * quantity
            return ZERO
        held = abs(self.quantity)
        closed = min(held, quantity)
        # A full close releases the whole basis exactly; a partial one releases its share.
        released = self.cost_basis if closed == held else self.cost_basis * closed / held
        proceeds = price * closed
        pnl = (proceeds - released) if self.quantity > 0 else (released - proceeds)
        pnl *= self.multiplier
        self.realized += pnl
        self.cost_basis -= released
        self.quantity += signed
        opened = quantity - closed
        if opened:
            self.cost_basis = price * opened
        elif self.quantity == 0:
            self.cost_basis = ZERO
        return pnl

    def add_commission(self, amount: Decimal) -> None:
        self.commissions += amount

    def reset_day(self) -> None:
        """Start a new trading day: realised P&L and commissions go to zero, the open position stays."""
        self.realized = ZERO
        self.commissions = ZERO
        self.fills = 0


def differs(ours: Decimal, theirs: Decimal | None) -> bool:
    """True when the broker's figure is known and more than one cent away from ours."""
    return theirs is not None and abs(ours - theirs) > CENT
