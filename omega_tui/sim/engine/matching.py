"""The matching engine: order validation, transmit chains, brackets/OCA, fills by displayed size, cancels.

Fills happen only at prices the current quote allows: a buy takes the ask (a sell the bid) when its limit
reaches it, never more than the displayed size minus what earlier fills already took from that same quote
(the displayed size refreshes when the quote changes). A remainder rests and fills on later quotes, so partial
fills follow the available size. Stops (STP, STP LMT, TRAIL) trigger on the touch: a buy stop when the ask
reaches the stop price, a sell stop when the bid does (IB's "double bid/ask" method).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable
from dataclasses import replace
from zoneinfo import ZoneInfo

from omega_tui.sim.engine.clock import SimClock
from omega_tui.sim.engine.commission import CommissionModel
from omega_tui.sim.engine.contracts import ContractDB, SimContract
from omega_tui.sim.engine.events import (
    CANCELLED,
    FILLED,
    INACTIVE,
    ORDER_TYPES,
    PRE_SUBMITTED,
    SUBMITTED,
    TIFS,
    AccountChanged,
    CancelRejected,
    ExecutionCorrected,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatusChanged,
    PositionChanged,
    SimCommission,
    SimEvent,
    SimExecution,
    SimOrder,
    WhatIfResult,
)
from omega_tui.sim.engine.ledger import Ledger
from omega_tui.sim.engine.market import Market, SimQuote

REJECT_PREFIX = "Order rejected - reason:"
NO_PERMISSION_TEXT = REJECT_PREFIX + "The account has no trading permissions for this contract."
BAD_TICK_TEXT = REJECT_PREFIX + "The price does not conform to the minimum price variation for this contract."
UNKNOWN_CONTRACT_TEXT = REJECT_PREFIX + "No security definition has been found for the request"
BAD_QUANTITY_TEXT = REJECT_PREFIX + "The order quantity must be greater than zero."
DUPLICATE_ID_TEXT = "Duplicate order id"
CANCEL_TEXT = "Order Canceled - reason:"
# Adaptive orders wait this long (virtual seconds, uniform) before they may match, by adaptivePriority.
ADAPTIVE_DELAY = {"Urgent": (0.1, 0.5), "Normal": (0.3, 1.5), "Patient": (1.0, 4.0)}


class Exchange:
    """Matches orders of every client against the Market's quotes and books fills in the Ledger.

    Every public method returns the events it caused, in the order the wire must send them. Orders are
    keyed by (client_id, order_id). The engine does not advance the market: call `on_market(con_id)` for each
    con_id that `Market.step` reports.
    """

    def __init__(
        self,
        db: ContractDB,
        market: Market,
        ledger: Ledger,
        clock: SimClock,
        seed: int = 0,
        commission_model: CommissionModel | None = None,
    ) -> None:
        self.db = db
        self.market = market
        self.ledger = ledger
        self.clock = clock
        self.commission_model = commission_model or CommissionModel()
        self._rng = random.Random(seed * 31 + 7)
        self._perm_id = 1_000_000_000 + self._rng.randrange(100_000_000)
        self._exec_prefix = f"{self._rng.getrandbits(32):08x}"
        self._exec_counter = self._rng.getrandbits(24) << 8
        self._orders: dict[tuple[int, int], SimOrder] = {}
        self._held: dict[tuple[int, int], SimOrder] = {}
        self._working: dict[tuple[int, int], SimOrder] = {}
        self._completed: list[SimOrder] = []
        self._executions: list[SimExecution] = []
        self._reported: dict[str, SimCommission] = {}
        self._taken: dict[tuple[int, str], tuple[int, int]] = {}  # (con_id, side) -> (quote seq, qty taken)
        self._reject_next: str | None = None
        self._fill_after_cancel = 0
        self._commission_factor = 1.0

    # -- orders ------------------------------------------------------------------------------------------------

    def place(self, order: SimOrder) -> list[SimEvent]:
        """A placeOrder: new order, modification (same client_id+order_id, still working), or held leg.

        transmit=False legs are validated and held without events; the first transmit=True order linked to them
        (as parent, child or OCA sibling) releases the whole chain. A what_if order is answered by `what_if`.
        An id already used by a finished order gets 103. The caller's object is not kept: the engine stores a
        copy, so later mutations by the caller have no effect.
        """
        if order.what_if:
            return [self.what_if(order)]
        order = order.snapshot()
        order.account = order.account or self.ledger.account
        existing = self._orders.get(order.key)
        if existing is not None:
            if existing.is_done:
                return [OrderRejected(order, 103, DUPLICATE_ID_TEXT)]
            return self._modify(existing, order)
        if self._reject_next is not None:
            reason, self._reject_next = self._reject_next, None
            return self._reject_new(order, 201, REJECT_PREFIX + reason)
        problem = self._validate(order)
        if problem is not None:
            return self._reject_new(order, *problem)
        order.perm_id = order.perm_id or self.next_perm_id()
        order.filled = 0
        order.remaining = order.total_qty
        order.avg_fill_price = order.last_fill_price = 0.0
        order.placed_time = self.clock.now()
        order.triggered = False
        parent = self._orders.get((order.client_id, order.parent_id)) if order.parent_id else None
        order.parent_perm_id = parent.perm_id if parent is not None else 0
        self._orders[order.key] = order
        if not order.transmit:
            self._held[order.key] = order
            return []
        return self._release(order)

    def cancel(self, client_id: int, order_id: int) -> list[SimEvent]:
        """A cancelOrder: 202 + Cancelled, for the order and its children; 10147/10148 when it cannot be done.

        With the fill-after-cancel fault armed, an order with a remainder first gets one more fill.
        """
        order = self._orders.get((client_id, order_id))
        if order is None:
            return [
                CancelRejected(
                    client_id, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found."
                )
            ]
        if order.is_done:
            return [
                CancelRejected(
                    client_id,
                    order_id,
                    10148,
                    f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {order.status}.",
                )
            ]
        events: list[SimEvent] = []
        if self._fill_after_cancel and order.key in self._working and order.remaining > 0:
            self._fill_after_cancel -= 1
            events += self._late_fill(order)
        if not order.is_done:
            events += self._cancel_tree(order)
        return events

    def global_cancel(self) -> list[SimEvent]:
        """reqGlobalCancel: every working or held order of every client (parents before their children)."""
        events: list[SimEvent] = []
        pending = sorted(
            [*self._working.values(), *self._held.values()],
            key=lambda o: (o.parent_id != 0, o.placed_time, o.client_id, o.order_id),
        )
        for order in pending:
            if not order.is_done:
                events += self._cancel_tree(order)
        return events

    def on_market(self, con_id: int) -> list[SimEvent]:
        """Call after each quote change of `con_id`: marks the ledger at the mid and matches resting orders."""
        quote = self.market.quote(con_id)
        self.ledger.mark(con_id, quote.mid)
        events: list[SimEvent] = []
        for order in self._priority([o for o in self._working.values() if o.con_id == con_id], quote):
            if order.status == SUBMITTED:
                events += self._match(order)
        return events

    def what_if(self, order: SimOrder) -> SimEvent:
        """Margin and commission for `order` as if it filled now; nothing is stored. OrderRejected if not allowed."""
        order = order.snapshot()
        order.account = order.account or self.ledger.account
        problem = self._validate(order)
        if problem is not None:
            order.status = INACTIVE
            return OrderRejected(order, *problem)
        contract = self._contract(order)
        quote = self.market.quote(order.con_id)
        price = self._reference_price(order, quote)
        commission = self.commission_model.commission(contract, order.total_qty, price)
        low, high = self.commission_model.bounds(contract, order.total_qty, price)
        signed = order.total_qty if order.is_buy else -order.total_qty
        before = self.ledger.totals()
        after = self.ledger.totals((order.con_id, signed, price, commission))
        order.status = PRE_SUBMITTED
        order.remaining = order.total_qty
        warning = ""
        if after.available_funds < 0:
            warning = "The order would exceed the available funds of the account."
        return WhatIfResult(
            order=order,
            init_margin_before=f"{before.init_margin:.2f}",
            maint_margin_before=f"{before.maint_margin:.2f}",
            equity_with_loan_before=f"{before.equity_with_loan:.2f}",
            init_margin_change=f"{after.init_margin - before.init_margin:.2f}",
            maint_margin_change=f"{after.maint_margin - before.maint_margin:.2f}",
            equity_with_loan_change=f"{after.equity_with_loan - before.equity_with_loan:.2f}",
            init_margin_after=f"{after.init_margin:.2f}",
            maint_margin_after=f"{after.maint_margin:.2f}",
            equity_with_loan_after=f"{after.equity_with_loan:.2f}",
            commission=commission,
            min_commission=low,
            max_commission=high,
            commission_currency=contract.currency,
            warning_text=warning,
        )

    # -- fault hooks ---------------------------------------------------------------------------------------

    def reject_next(self, reason: str) -> None:
        """The next new order is rejected with 201 "Order rejected - reason:<reason>"."""
        self._reject_next = reason

    def set_fill_after_cancel(self, times: int = 1) -> None:
        """The next `times` cancels of an order with a remainder each yield one more fill before Cancelled."""
        self._fill_after_cancel = max(0, times)

    def correct_execution(
        self, exec_id: str = "", shares: int | None = None, price: float | None = None
    ) -> list[SimEvent]:
        """Correct an execution as IB does: a new execDetails with the same execId base and the last suffix one
        higher (`….01.01` → `….01.02`) that replaces the earlier one (its shares and/or price); "" is the last
        execution. The ledger books the difference (the old execution reversed, the new one booked, the
        commission unchanged); `executions()` then lists the corrected version in place of the old one, as a
        client connecting afterwards would see it. The order's own figures are left as they were."""
        if not self._executions:
            raise ValueError("no execution to correct")
        index = len(self._executions) - 1
        if exec_id:
            index = next((i for i, ex in enumerate(self._executions) if ex.exec_id == exec_id), -1)
            if index < 0:
                raise ValueError(f"no execution {exec_id!r} to correct")
        old = self._executions[index]
        base, _, suffix = old.exec_id.rpartition(".")
        new_shares = old.shares if shares is None else shares
        new_price = old.price if price is None else price
        if new_shares <= 0:
            raise ValueError("a corrected execution needs a positive quantity")
        cum = old.cum_qty - old.shares + new_shares
        notional = old.avg_price * old.cum_qty - old.price * old.shares + new_price * new_shares
        avg = notional / cum
        new = replace(
            old,
            exec_id=f"{base}.{int(suffix, 16) + 1:0{len(suffix)}x}",
            shares=new_shares,
            price=new_price,
            cum_qty=cum,
            avg_price=avg,
            time=self.clock.now(),
        )
        reversal = replace(old, side="SLD" if old.side == "BOT" else "BOT")
        self.ledger.apply_fill(reversal, SimCommission(old.exec_id, 0.0, ""))
        realized = self.ledger.apply_fill(new, SimCommission(new.exec_id, 0.0, ""))
        old_report = self._reported.get(old.exec_id)
        reported = SimCommission(
            new.exec_id,
            old_report.commission if old_report is not None else 0.0,
            old_report.currency if old_report is not None else self._contract_currency(old.con_id),
            realized_pnl=realized,
        )
        self._executions[index] = new
        self._reported[new.exec_id] = reported
        order = self._orders.get((old.client_id, old.order_id))
        events: list[SimEvent] = []
        if order is not None:
            events.append(ExecutionCorrected(order.snapshot(), new, reported, old.exec_id))
        events += [PositionChanged(old.account, old.con_id), AccountChanged(old.account)]
        return events

    def _contract_currency(self, con_id: int) -> str:
        contract = self.db.get(con_id)
        return contract.currency if contract is not None else "USD"

    def misreport_commission(self, factor: float) -> None:
        """Commission reports carry true commission × `factor` (1.0 = honest); the ledger keeps the truth."""
        self._commission_factor = factor

    # -- queries -------------------------------------------------------------------------------------------

    def order(self, client_id: int, order_id: int) -> SimOrder | None:
        """A snapshot of any order the engine knows (held, working or done), or None."""
        order = self._orders.get((client_id, order_id))
        return order.snapshot() if order is not None else None

    def open_orders(self, client_id: int | None = None) -> list[SimOrder]:
        """Working (transmitted, not done) orders of one client or of all, in placement order; snapshots."""
        return [o.snapshot() for o in self._working.values() if client_id is None or o.client_id == client_id]

    def held_orders(self, client_id: int | None = None) -> list[SimOrder]:
        """Untransmitted (transmit=False) orders waiting for their chain; snapshots."""
        return [o.snapshot() for o in self._held.values() if client_id is None or o.client_id == client_id]

    def completed_orders(self) -> list[SimOrder]:
        """Filled and cancelled orders in completion order; snapshots (rejected orders are not kept)."""
        return [o.snapshot() for o in self._completed]

    def executions(
        self,
        client_id: int = 0,
        acct: str = "",
        time: str = "",
        symbol: str = "",
        sec_type: str = "",
        exchange: str = "",
        side: str = "",
    ) -> list[SimExecution]:
        """Executions matching an IB ExecutionFilter (empty/0 = any; time "YYYYMMDD HH:MM:SS [TZ]", UTC if no TZ;
        side "BUY"/"SELL")."""
        since = _parse_filter_time(time) if time else None
        want_side = {"BUY": "BOT", "SELL": "SLD"}.get(side.upper(), side.upper())
        out = []
        for ex in self._executions:
            contract = self.db.get(ex.con_id)
            if client_id and ex.client_id != client_id:
                continue
            if acct and ex.account != acct:
                continue
            if since is not None and ex.time < since:
                continue
            if symbol and (contract is None or contract.symbol.upper() != symbol.upper()):
                continue
            if sec_type and (contract is None or contract.sec_type != sec_type.upper()):
                continue
            if exchange and ex.exchange.upper() != exchange.upper():
                continue
            if want_side and ex.side != want_side:
                continue
            out.append(ex)
        return out

    def commission_of(self, exec_id: str) -> SimCommission | None:
        """The commission report sent for an execution (as reported, i.e. after any misreport factor)."""
        return self._reported.get(exec_id)

    def next_perm_id(self) -> int:
        """A fresh permId."""
        self._perm_id += 1
        return self._perm_id

    # -- validation ----------------------------------------------------------------------------------------

    def _validate(self, order: SimOrder) -> tuple[int, str] | None:
        """(code, text) of IB's reject for this order, or None when it may go live."""
        contract = self.db.get(order.con_id)
        if contract is None:
            return 201, UNKNOWN_CONTRACT_TEXT
        if not contract.tradable:
            return 201, NO_PERMISSION_TEXT
        if order.action not in ("BUY", "SELL"):
            return 201, REJECT_PREFIX + f"Invalid action {order.action!r}: allowed are BUY and SELL."
        if order.total_qty <= 0:
            return 201, BAD_QUANTITY_TEXT
        if contract.size_increment > 0 and order.total_qty % max(1, round(contract.size_increment)):
            return 201, REJECT_PREFIX + "The order size is not a multiple of the size increment."
        if order.order_type not in ORDER_TYPES:
            return 201, REJECT_PREFIX + f"Unsupported order type {order.order_type!r}."
        if order.order_type.replace(" ", "") not in contract.order_types.split(","):
            return 201, REJECT_PREFIX + f"Order type {order.order_type} is not allowed for this contract."
        if order.tif not in TIFS:
            return 201, REJECT_PREFIX + f"Unsupported time in force {order.tif!r}."
        if order.order_type in ("LMT", "STP LMT"):
            if order.lmt_price is None or order.lmt_price <= 0:
                return 201, REJECT_PREFIX + "A limit price is required for this order type."
            if not contract.on_tick_grid(order.lmt_price):
                return 201, BAD_TICK_TEXT
        if order.order_type in ("STP", "STP LMT"):
            if order.aux_price is None or order.aux_price <= 0:
                return 201, REJECT_PREFIX + "A stop price is required for this order type."
            if not contract.on_tick_grid(order.aux_price):
                return 201, BAD_TICK_TEXT
        if order.order_type == "TRAIL":
            amount_ok = order.aux_price is not None and order.aux_price > 0
            percent_ok = order.trailing_percent is not None and order.trailing_percent > 0
            if not (amount_ok or percent_ok):
                return 201, REJECT_PREFIX + "A trailing amount or trailing percent is required."
            if amount_ok and order.aux_price is not None and not contract.on_tick_grid(order.aux_price):
                return 201, BAD_TICK_TEXT
            if order.trail_stop_price is not None and not contract.on_tick_grid(order.trail_stop_price):
                return 201, BAD_TICK_TEXT
        if order.parent_id:
            parent = self._orders.get((order.client_id, order.parent_id))
            if parent is None or parent.status in (CANCELLED, INACTIVE):
                return 201, REJECT_PREFIX + f"Parent order {order.parent_id} is not found or not active."
        return None

    def _reject_new(self, order: SimOrder, code: int, text: str) -> list[SimEvent]:
        order.status = INACTIVE
        order.remaining = 0
        # a rejected id is used up: placing it again is a duplicate (IB's 103 after rejects)
        self._orders[order.key] = order
        return [OrderRejected(order.snapshot(), code, text)]

    # -- life cycle ----------------------------------------------------------------------------------------

    def _release(self, trigger: SimOrder) -> list[SimEvent]:
        """Make `trigger` and every held order linked to it live, parents first, then match them."""
        chain = {trigger.key: trigger}
        root = trigger.parent_id or trigger.order_id
        for held in list(self._held.values()):
            if held.client_id != trigger.client_id:
                continue
            linked = held.order_id == root or held.parent_id == root or held.parent_id == trigger.order_id
            if trigger.oca_group and held.oca_group == trigger.oca_group:
                linked = True
            if linked:
                chain[held.key] = held
        events: list[SimEvent] = []
        released = sorted(chain.values(), key=lambda o: (o.parent_id != 0, o.order_id))
        for order in released:
            self._held.pop(order.key, None)
            order.transmit = True
            parent = self._orders.get((order.client_id, order.parent_id)) if order.parent_id else None
            if parent is not None and parent.status != FILLED:
                order.status = PRE_SUBMITTED
                order.why_held = "child"
            else:
                order.status = SUBMITTED
                order.why_held = ""
            if order.algo_strategy == "Adaptive":
                order.active_after = self.clock.now() + self._adaptive_delay(order)
            self._working[order.key] = order
            events.append(OrderAccepted(order.snapshot()))
        for order in released:
            if order.status == SUBMITTED:
                events += self._match(order)
                events += self._expire_ioc(order)
        return events

    def _modify(self, live: SimOrder, new: SimOrder) -> list[SimEvent]:
        """Apply a placeOrder for a live or held order id: new price/quantity/fields, then re-match."""
        if new.con_id != live.con_id or new.action != live.action:
            return [
                OrderRejected(
                    live.snapshot(),
                    201,
                    REJECT_PREFIX + "A modification may not change the contract or the side.",
                    still_working=live.key in self._working,
                )
            ]
        if new.total_qty <= live.filled:
            return [
                OrderRejected(
                    live.snapshot(),
                    201,
                    REJECT_PREFIX + "The new quantity is not larger than the quantity already filled.",
                    still_working=live.key in self._working,
                )
            ]
        probe = new.snapshot()
        probe.parent_id = live.parent_id
        problem = self._validate(probe)
        if problem is not None:
            return [OrderRejected(live.snapshot(), *problem, still_working=live.key in self._working)]
        stop_moved = new.aux_price != live.aux_price or new.order_type != live.order_type
        for name in (
            "total_qty",
            "order_type",
            "lmt_price",
            "aux_price",
            "tif",
            "oca_group",
            "oca_type",
            "order_ref",
            "algo_strategy",
            "algo_params",
            "trailing_percent",
            "trail_stop_price",
            "outside_rth",
            "extras",
        ):
            setattr(live, name, getattr(new, name))
        live.remaining = live.total_qty - live.filled
        if stop_moved:
            live.triggered = False
        if live.key in self._held:
            if not new.transmit:
                return []
            return self._release(live)
        events: list[SimEvent] = [OrderAccepted(live.snapshot(), modified=True)]
        if live.status == SUBMITTED:
            events += self._match(live)
            events += self._expire_ioc(live)
        return events

    def _expire_ioc(self, order: SimOrder) -> list[SimEvent]:
        """IOC: whatever did not fill at once is cancelled."""
        if order.tif == "IOC" and order.status == SUBMITTED and order.remaining > 0:
            return self._finish_cancel(order)
        return []

    def _cancel_tree(self, order: SimOrder) -> list[SimEvent]:
        """Cancel an order and, recursively, its not-yet-done children."""
        events = self._finish_cancel(order)
        for child in [*self._working.values(), *self._held.values()]:
            if child.client_id == order.client_id and child.parent_id == order.order_id and not child.is_done:
                events += self._cancel_tree(child)
        return events

    def _finish_cancel(self, order: SimOrder) -> list[SimEvent]:
        self._working.pop(order.key, None)
        self._held.pop(order.key, None)
        order.status = CANCELLED
        order.why_held = ""
        self._complete(order)
        return [OrderCancelled(order.snapshot(), 202, CANCEL_TEXT)]

    def _complete(self, order: SimOrder) -> None:
        order.completed_time = self.clock.now()
        order.completed_status = order.status
        self._completed.append(order)

    # -- matching ------------------------------------------------------------------------------------------

    def _priority(self, orders: list[SimOrder], quote: SimQuote) -> list[SimOrder]:
        """Best-priced first (market-like before limits), then time priority."""

        def key(o: SimOrder) -> tuple[int, float, float]:
            limit = self._limit_for(o, quote)
            if limit is None:
                return (0, 0.0, o.placed_time)
            return (1, -limit if o.is_buy else limit, o.placed_time)

        return sorted(orders, key=key)

    @staticmethod
    def _limit_for(order: SimOrder, quote: SimQuote) -> float | None:
        """The effective limit (None = market) of an order once triggered."""
        del quote
        if order.order_type in ("LMT", "STP LMT"):
            return order.lmt_price
        return None

    def _match(self, order: SimOrder) -> list[SimEvent]:
        """Fill what the current quote allows for one submitted order."""
        if order.status != SUBMITTED or order.remaining <= 0:
            return []
        now = self.clock.now()
        if order.active_after and now < order.active_after:
            return []
        quote = self.market.quote(order.con_id)
        if order.order_type in ("STP", "STP LMT", "TRAIL") and not order.triggered:
            if order.order_type == "TRAIL":
                self._trail(order, quote)
            if not self._stop_touched(order, quote):
                return []
            order.triggered = True
        limit = self._limit_for(order, quote)
        if order.is_buy:
            price, side, size = quote.ask, "ask", quote.ask_size
            if limit is not None and price > limit + 1e-9:
                return []
        else:
            price, side, size = quote.bid, "bid", quote.bid_size
            if limit is not None and price < limit - 1e-9:
                return []
        seq, taken = self._taken.get((order.con_id, side), (-1, 0))
        available = size - (taken if seq == quote.seq else 0)
        qty = min(order.remaining, available)
        if qty <= 0:
            return []
        self._taken[(order.con_id, side)] = (quote.seq, (taken if seq == quote.seq else 0) + qty)
        return self._fill(order, qty, price, liquidity=2)

    def _stop_touched(self, order: SimOrder, quote: SimQuote) -> bool:
        stop = order.trail_stop_price if order.order_type == "TRAIL" else order.aux_price
        if stop is None:
            return False
        return quote.ask >= stop - 1e-9 if order.is_buy else quote.bid <= stop + 1e-9

    def _trail(self, order: SimOrder, quote: SimQuote) -> None:
        """Move a TRAIL order's stop with the favourable extreme of the touch (never against the order)."""
        contract = self._contract(order)
        reference = quote.ask if order.is_buy else quote.bid
        if order.trailing_percent is not None and order.trailing_percent > 0:
            amount = reference * order.trailing_percent / 100
        else:
            amount = order.aux_price or 0.0
        ticks = (reference + amount if order.is_buy else reference - amount) / contract.min_tick
        # round away from the market so the stop is never tighter than asked
        candidate = round(
            (math.ceil(ticks - 1e-9) if order.is_buy else math.floor(ticks + 1e-9)) * contract.min_tick, 10
        )
        current = order.trail_stop_price
        if current is None:
            order.trail_stop_price = candidate
        elif order.is_buy:
            order.trail_stop_price = min(current, candidate)
        else:
            order.trail_stop_price = max(current, candidate)

    def _fill(self, order: SimOrder, qty: int, price: float, liquidity: int) -> list[SimEvent]:
        """Book one execution of `qty` at `price`, then apply what it causes (children, OCA, brackets)."""
        contract = self._contract(order)
        previous = order.filled
        order.filled += qty
        order.remaining -= qty
        order.avg_fill_price = (order.avg_fill_price * previous + price * qty) / order.filled
        order.last_fill_price = price
        now = self.clock.now()
        self._exec_counter += 1
        execution = SimExecution(
            exec_id=f"{self._exec_prefix}.{self._exec_counter:08x}.01.01",
            order_id=order.order_id,
            client_id=order.client_id,
            perm_id=order.perm_id,
            con_id=order.con_id,
            time=now,
            account=order.account,
            exchange=contract.primary_exchange or contract.exchange,
            side="BOT" if order.is_buy else "SLD",
            shares=qty,
            price=price,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            order_ref=order.order_ref,
            last_liquidity=liquidity,
        )
        true_fee = self.commission_model.commission(contract, qty, price)
        realized = self.ledger.apply_fill(execution, SimCommission(execution.exec_id, true_fee, contract.currency))
        reported = SimCommission(
            execution.exec_id, round(true_fee * self._commission_factor, 2), contract.currency, realized_pnl=realized
        )
        self._executions.append(execution)
        self._reported[execution.exec_id] = reported
        if order.remaining == 0:
            order.status = FILLED
            self._working.pop(order.key, None)
            self._complete(order)
        events: list[SimEvent] = [
            OrderFilled(order.snapshot(), execution, reported),
            PositionChanged(order.account, order.con_id),
            AccountChanged(order.account),
        ]
        events += self._after_fill(order, qty)
        return events

    def _after_fill(self, order: SimOrder, qty: int) -> list[SimEvent]:
        events: list[SimEvent] = []
        # explicit OCA group: type 1 cancels the others on any fill; 2 and 3 ("proportionately reduced", with and
        # without overfill block: one order of the group routed at a time, which a simulated book does not
        # need) reduce each of the others by the fill's share of this order's size before it: equal-sized
        # legs by the filled quantity, a leg at zero is cancelled
        if order.oca_group:
            before = order.remaining + qty
            for other in self._live_others(order, lambda o: o.oca_group == order.oca_group):
                if order.oca_type in (2, 3):
                    cut = qty if other.remaining == before else max(1, round(qty * other.remaining / before))
                    events += self._reduce(other, cut)
                else:
                    events += self._cancel_tree(other)
        # bracket children are an implicit OCA group: a partial fill reduces the siblings, a full fill cancels them
        if order.parent_id:
            for other in self._live_others(order, lambda o: o.parent_id == order.parent_id and not o.oca_group):
                events += self._cancel_tree(other) if order.status == FILLED else self._reduce(other, qty)
        # children of a completely filled parent become active
        if order.status == FILLED:
            children = [
                o
                for o in self._working.values()
                if o.client_id == order.client_id and o.parent_id == order.order_id and o.status == PRE_SUBMITTED
            ]
            for child in children:
                child.status = SUBMITTED
                child.why_held = ""
                events.append(OrderStatusChanged(child.snapshot()))
            for child in children:
                events += self._match(child)
        return events

    def _live_others(self, order: SimOrder, predicate: Callable[[SimOrder], bool]) -> list[SimOrder]:
        return [
            o
            for o in [*self._working.values(), *self._held.values()]
            if o.key != order.key and o.client_id == order.client_id and not o.is_done and predicate(o)
        ]

    def _reduce(self, order: SimOrder, qty: int) -> list[SimEvent]:
        order.total_qty -= qty
        order.remaining = order.total_qty - order.filled
        if order.remaining <= 0:
            order.total_qty = order.filled
            order.remaining = 0
            return self._cancel_tree(order)
        return [OrderStatusChanged(order.snapshot())]

    def _late_fill(self, order: SimOrder) -> list[SimEvent]:
        """The fill-after-cancel fault: half the remainder (at least 1) fills at a price the quote allows."""
        quote = self.market.quote(order.con_id)
        qty = max(1, order.remaining // 2)
        limit = order.lmt_price if order.order_type in ("LMT", "STP LMT") else None
        if order.is_buy:
            price = quote.ask if limit is None else min(limit, quote.ask)
        else:
            price = quote.bid if limit is None else max(limit, quote.bid)
        return self._fill(order, qty, price, liquidity=1)

    def _reference_price(self, order: SimOrder, quote: SimQuote) -> float:
        if order.order_type in ("LMT", "STP LMT") and order.lmt_price is not None:
            return order.lmt_price
        if order.order_type == "STP" and order.aux_price is not None:
            return order.aux_price
        return quote.ask if order.is_buy else quote.bid

    def _adaptive_delay(self, order: SimOrder) -> float:
        priority = dict(order.algo_params).get("adaptivePriority", "Normal")
        low, high = ADAPTIVE_DELAY.get(priority, ADAPTIVE_DELAY["Normal"])
        return self._rng.uniform(low, high)

    def _contract(self, order: SimOrder) -> SimContract:
        contract = self.db.get(order.con_id)
        if contract is None:
            raise KeyError(f"unknown conId {order.con_id}")
        return contract


def _parse_filter_time(text: str) -> float:
    """An ExecutionFilter time ("YYYYMMDD HH:MM:SS", "YYYYMMDD-HH:MM:SS", optional trailing zone) as epoch."""
    parts = text.replace("-", " ").split()
    zone = ZoneInfo(parts[2]) if len(parts) > 2 else dt.UTC
    return dt.datetime.strptime(" ".join(parts[:2]), "%Y%m%d %H:%M:%S").replace(tzinfo=zone).timestamp()
