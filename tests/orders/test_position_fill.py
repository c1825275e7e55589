"""`Position.fill` (the order manager's one call per execution, which `apply_fill` now calls too) books a fill
exactly as the average-cost rules did before it: `_reference` below is that earlier `apply_fill`, kept here as the
specification, and `opening_qty` (unchanged) gives the opened quantity."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from omega_tui.core.positions import Position
from omega_tui.core.types import Side


def _reference(pos: Position, side: Side, quantity: int, price: Decimal) -> Decimal:
    """`Position.apply_fill` before `fill` existed (positions.py at 9990836)."""
    pos.fills += 1
    signed = side.sign * quantity
    if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
        pos.quantity += signed
        pos.cost_basis += price * quantity
        return Decimal(0)
    held = abs(pos.quantity)
    closed = min(held, quantity)
    released = pos.cost_basis if closed == held else pos.cost_basis * closed / held
    fees = pos.open_commissions if closed == held else pos.open_commissions * closed / held
    pos.open_commissions -= fees
    pos.closed_commissions += fees
    proceeds = price * closed
    pnl = (proceeds - released) if pos.quantity > 0 else (released - proceeds)
    pnl *= pos.multiplier
    pos.realized += pnl
    pos.cost_basis -= released
    pos.quantity += signed
    opened = quantity - closed
    if opened:
        pos.cost_basis = price * opened
    elif pos.quantity == 0:
        pos.cost_basis = Decimal(0)
    return pnl


_DECIMALS = ("cost_basis", "realized", "commissions", "open_commissions", "closed_commissions")
_FILLS = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 500),
        st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2),
        st.decimals(min_value=Decimal("0"), max_value=Decimal("5"), places=4),  # a commission now and then
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 1, 2, 100]), _FILLS)  # (1: the common case, where `fill` skips `pnl *= 1`)
def test_fill_books_as_the_reference_and_returns_what_opened(
    multiplier: int, fills: list[tuple[Side, int, Decimal, Decimal]]
) -> None:
    ours, theirs = Position("K", multiplier), Position("K", multiplier)
    for side, qty, price, fee in fills:
        expected_open = theirs.opening_qty(side, qty)
        expected_pnl = _reference(theirs, side, qty, price)
        if len(fills) % 2:  # both entry points
            opened, pnl = ours.fill(side, qty, price)
        else:
            opened, pnl = expected_open, ours.apply_fill(side, qty, price)
        assert (opened, pnl) == (expected_open, expected_pnl)
        assert str(pnl) == str(expected_pnl)  # the same Decimal, exponent included
        share = Decimal(opened) / qty
        ours.add_commission(fee, share)
        theirs.add_commission(fee, share)
        assert ours == theirs
        assert [str(getattr(ours, f)) for f in _DECIMALS] == [str(getattr(theirs, f)) for f in _DECIMALS]


def test_a_fill_needs_a_positive_quantity() -> None:
    import pytest

    with pytest.raises(ValueError, match="positive quantity"):
        Position("K").fill(Side.BUY, 0, Decimal("1"))
