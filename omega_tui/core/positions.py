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
_BUY = Side.BUY
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
    open_commissions: Decimal = ZERO  # IB folds these into avgCost (see the module docstring)
    closed_commissions: Decimal = ZERO  # IB charges these against realised P&L (today)
    # The broker's own figures (portfolio / reqPnLSingle), for reconciliation; None until it reports.
    broker_quantity: int | None = None
    broker_avg_cost: Decimal | None = None
    broker_unrealized: Decimal | None = None
    broker_realized: Decimal | None = None
    broker_mark: Decimal | None = None  # the broker's marketPrice of its last portfolio row
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

    @property
    def ib_avg_cost(self) -> Decimal:
        """IB's per-unit average cost: `avg_cost` with the open quantity's commissions folded in."""
        if self.quantity == 0:
            return ZERO
        sign = 1 if self.quantity > 0 else -1
        return self.avg_cost + sign * self.open_commissions / (abs(self.quantity) * self.multiplier)

    def ib_unrealized(self, mark: Decimal | None) -> Decimal:
        """IB's unrealised P&L at `mark` (the open quantity's commissions are inside its cost)."""
        if self.quantity == 0 or mark is None:
            return ZERO
        return self.unrealized(mark) - self.open_commissions

    @property
    def ib_realized(self) -> Decimal:
        """IB's realised P&L today: closing commissions and the closed share of opening ones deducted."""
        return self.realized - self.closed_commissions

    def opening_qty(self, side: Side, quantity: int) -> int:
        """How much of a fill of `quantity` on `side` would open (or add to) the position, before booking it."""
        signed = side.sign * quantity
        if self.quantity == 0 or (self.quantity > 0) == (signed > 0):
            return quantity
        return max(quantity - abs(self.quantity), 0)

    def net(self, mark: Decimal | None) -> Decimal:
        """Realised + unrealised - commissions."""
        return self.realized + self.unrealized(mark) - self.commissions

    def apply_fill(self, side: Side, quantity: int, price: Decimal) -> Decimal:
        """Book one fill; returns the P&L it realised (before commissions)."""
        return self.fill(side, quantity, price)[1]

    def fill(self, side: Side, quantity: int, price: Decimal) -> tuple[int, Decimal]:
        """Book one fill; returns (`opening_qty(side, quantity)` before it, the P&L it realised before
        commissions): the order manager's one call per execution (on the fill → P&L path: each Decimal
        operation here is a few hundred instructions, so none is done whose result is thrown away)."""
        if quantity <= 0:
            raise ValueError(f"a fill needs a positive quantity, got {quantity}")
        self.fills += 1
        position = self.quantity
        buy = side is _BUY
        if position == 0 or (position > 0) is buy:
            self.quantity = position + quantity if buy else position - quantity
            self.cost_basis += price * quantity
            return quantity, ZERO
        held = position if position > 0 else -position
        if quantity >= held:
            # A full close releases the whole basis exactly (and what is left of the fill opens the other side).
            closed = held
            released = self.cost_basis
            fees = self.open_commissions
        else:  # a partial one releases its share
            closed = quantity
            released = self.cost_basis * closed / held
            fees = self.open_commissions * closed / held
        self.open_commissions -= fees
        self.closed_commissions += fees
        proceeds = price * closed
        pnl = (proceeds - released) if position > 0 else (released - proceeds)
        if self.multiplier != 1:  # (x * 1 is x, exponent included)
            pnl *= self.multiplier
        self.realized += pnl
        self.quantity = position + quantity if buy else position - quantity
        opened = quantity - closed
        if opened:
            self.cost_basis = price * opened
        elif closed == held:
            self.cost_basis = ZERO
        else:
            self.cost_basis -= released
        return opened, pnl

    def add_commission(self, amount: Decimal, opened_share: Decimal = ZERO) -> None:
        """Book a fill's commission; `opened_share` is the fraction of that fill that opened the position."""
        self.commissions += amount
        folded = amount * opened_share if self.quantity != 0 else ZERO
        self.open_commissions += folded
        self.closed_commissions += amount - folded

    def reset_day(self) -> None:
        """Start a new trading day: realised P&L and commissions go to zero, the open position stays."""
        self.realized = ZERO
        self.commissions = ZERO
        self.closed_commissions = ZERO
        self.fills = 0


def differs(ours: Decimal, theirs: Decimal | None) -> bool:
    """True when the broker's figure is known and more than one cent away from ours."""
    return theirs is not None and abs(ours - theirs) > CENT
