"""Orders, executions, commissions and the events the matching engine hands to the wire layer."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

# IB's raw order statuses, as orderStatus carries them.
PENDING_SUBMIT = "PendingSubmit"
PRE_SUBMITTED = "PreSubmitted"
SUBMITTED = "Submitted"
FILLED = "Filled"
CANCELLED = "Cancelled"
INACTIVE = "Inactive"
WORKING_STATUSES = frozenset({PENDING_SUBMIT, PRE_SUBMITTED, SUBMITTED})
DONE_STATUSES = frozenset({FILLED, CANCELLED, INACTIVE})

ORDER_TYPES = frozenset({"LMT", "MKT", "STP", "STP LMT", "TRAIL"})
TIFS = frozenset({"DAY", "GTC", "IOC"})


@dataclass(slots=True)
class SimOrder:
    """An order as the gateway holds it: the request fields (echoed in openOrder) and the live state.

    The caller (wire layer) fills the request fields from placeOrder; `place` owns the state fields
    (status, filled, remaining, avg_fill_price, last_fill_price, why_held, perm_id when 0). `extras` is a free
    dict where the wire may stash any placeOrder field it wants echoed but the engine ignores.
    """

    client_id: int
    order_id: int
    con_id: int
    action: str  # "BUY" / "SELL"
    total_qty: int
    order_type: str = "LMT"  # LMT, MKT, STP, STP LMT, TRAIL
    lmt_price: float | None = None  # None = unset (IB's UNSET_DOUBLE)
    aux_price: float | None = None  # stop price for STP/STP LMT, trailing amount for TRAIL
    tif: str = "DAY"
    account: str = ""
    perm_id: int = 0
    parent_id: int = 0
    oca_group: str = ""
    oca_type: int = 0
    transmit: bool = True
    order_ref: str = ""
    algo_strategy: str = ""
    algo_params: list[tuple[str, str]] = field(default_factory=list)
    what_if: bool = False
    trailing_percent: float | None = None
    trail_stop_price: float | None = None
    outside_rth: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    # -- state, owned by the engine --
    status: str = PENDING_SUBMIT
    filled: int = 0
    remaining: int = 0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    why_held: str = ""
    mkt_cap_price: float = 0.0
    parent_perm_id: int = 0
    placed_time: float = 0.0
    completed_time: float = 0.0
    completed_status: str = ""
    warning_text: str = ""
    triggered: bool = False  # a STP / STP LMT / TRAIL whose stop has been touched
    active_after: float = 0.0  # Adaptive orders do not match before this virtual time

    @property
    def key(self) -> tuple[int, int]:
        """(client_id, order_id): the identity IB uses for an order on one connection."""
        return (self.client_id, self.order_id)

    @property
    def is_buy(self) -> bool:
        """True for BUY orders."""
        return self.action == "BUY"

    @property
    def is_working(self) -> bool:
        """True while the order can still fill or be cancelled."""
        return self.status in WORKING_STATUSES

    @property
    def is_done(self) -> bool:
        """True once Filled, Cancelled or Inactive."""
        return self.status in DONE_STATUSES

    def snapshot(self) -> SimOrder:
        """A copy frozen at this moment, so an event still says what was true when it was emitted."""
        clone = copy.copy(self)
        clone.algo_params = list(self.algo_params)
        clone.extras = dict(self.extras)
        return clone


@dataclass(frozen=True, slots=True)
class SimExecution:
    """One fill, with everything execDetails carries (contract fields come from the ContractDB by con_id)."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    con_id: int
    time: float  # epoch seconds (virtual)
    account: str
    exchange: str
    side: str  # "BOT" / "SLD"
    shares: int
    price: float
    cum_qty: int
    avg_price: float
    order_ref: str = ""
    liquidation: int = 0
    last_liquidity: int = 1  # 1 added, 2 removed (IB's convention); marketable fills remove liquidity

    @property
    def signed_shares(self) -> int:
        """+shares for BOT, -shares for SLD."""
        return self.shares if self.side == "BOT" else -self.shares


@dataclass(frozen=True, slots=True)
class SimCommission:
    """A commissionReport: `realized_pnl` is None when the fill opened or added (IB sends UNSET_DOUBLE)."""

    exec_id: str
    commission: float
    currency: str
    realized_pnl: float | None = None
    yield_: float | None = None
    yield_redemption_date: int = 0


# -- events ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderAccepted:
    """A new order went live, or a live order was modified: send openOrder then orderStatus.

    `order` is a snapshot (status PreSubmitted or Submitted). `modified` tells a modification from a new order.
    """

    order: SimOrder
    modified: bool = False


@dataclass(frozen=True, slots=True)
class OrderStatusChanged:
    """A working order's status or fields changed without a fill (bracket child activated, OCA reduction,
    trail stop moved): send orderStatus, and openOrder too (IB does when the order's fields change)."""

    order: SimOrder


@dataclass(frozen=True, slots=True)
class OrderFilled:
    """One execution: send execDetails(reqId -1), orderStatus, openOrder, commissionReport in that order.

    `order` is the snapshot right after this fill (status Submitted while remaining > 0, else Filled);
    `commission` is what the report says (see Exchange.misreport_commission; the ledger used the true one).
    """

    order: SimOrder
    execution: SimExecution
    commission: SimCommission


@dataclass(frozen=True, slots=True)
class ExecutionCorrected:
    """IB corrected an execution: send execDetails(reqId -1) with the new version (same execId base, last
    suffix one higher, corrected shares/price), then its commissionReport. `replaces` is the old execId."""

    order: SimOrder
    execution: SimExecution
    commission: SimCommission
    replaces: str


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """An order was refused: send error(orderId, code, text) (201 rejects, 103 duplicate id, …).

    A rejected new order ends Inactive (no orderStatus is needed: ib_async cancels the trade on 201).
    A rejected *modification* leaves the original working: `still_working` is then True.
    """

    order: SimOrder
    code: int
    text: str
    still_working: bool = False


@dataclass(frozen=True, slots=True)
class OrderCancelled:
    """An order ended cancelled: send orderStatus(Cancelled) then error(orderId, code, text)."""

    order: SimOrder
    code: int = 202
    text: str = "Order Canceled - reason:"


@dataclass(frozen=True, slots=True)
class CancelRejected:
    """A cancel named no working order: send error(order_id, code, text), e.g. 10147."""

    client_id: int
    order_id: int
    code: int
    text: str


@dataclass(frozen=True, slots=True)
class WhatIfResult:
    """The answer to a what-if order: an openOrder with whatIf=1, margins as strings, commission estimate.

    Margin fields are decimal strings in the account's base currency; commission values are floats in
    `commission_currency` (None = unknown, which the wire sends as UNSET_DOUBLE).
    """

    order: SimOrder
    init_margin_before: str
    maint_margin_before: str
    equity_with_loan_before: str
    init_margin_change: str
    maint_margin_change: str
    equity_with_loan_change: str
    init_margin_after: str
    maint_margin_after: str
    equity_with_loan_after: str
    commission: float | None
    min_commission: float | None
    max_commission: float | None
    commission_currency: str
    warning_text: str = ""


@dataclass(frozen=True, slots=True)
class PositionChanged:
    """A fill changed this position: send position (61) / portfolioValue (7) to subscribers."""

    account: str
    con_id: int


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """A fill changed the account's values: send accountValue (6) / account summary / PnL to subscribers."""

    account: str


SimEvent = (
    OrderAccepted
    | OrderStatusChanged
    | OrderFilled
    | ExecutionCorrected
    | OrderRejected
    | OrderCancelled
    | CancelRejected
    | WhatIfResult
    | PositionChanged
    | AccountChanged
)
