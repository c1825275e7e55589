"""Probes: intents the validation sends on purpose, and what each must show.

Risk probes must be denied by one named rule (`RiskDecision.rule`) and never reach the broker. The scripted
probes make things happen that a short day might not: a partial fill (a thin book in the simulated market),
a marketable round trip (submit → first fill latency), and a daily-loss breach (an adverse shock in the
simulated market, or a lowered limit on a paper account) that must halt, and flatten when configured.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from omega_tui.core.types import (
    Halt,
    IntentSource,
    OrderIntent,
    OrderType,
    Resume,
    RiskDecision,
    Side,
    TradingState,
)

if TYPE_CHECKING:
    from omega_tui.validate.runner import Session

OPERATOR = "operator:validation"
_seq = itertools.count(1)


@dataclass
class ProbeResult:
    """One risk probe: what it was, which rule had to deny it, what happened."""

    name: str
    expected_rule: str
    intent_ids: list[str] = field(default_factory=list)
    decision: RiskDecision | None = None
    reached_broker: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def passed(self) -> bool:
        d = self.decision
        return (
            not self.error
            and d is not None
            and not d.approved
            and d.rule == self.expected_rule
            and not self.reached_broker
        )

    def detail(self) -> str:
        if self.error:
            return self.error
        d = self.decision
        if d is None:
            return "no decision"
        verdict = f"denied by {d.rule}" if not d.approved else "APPROVED"
        reached = (
            f"; reached the broker: {', '.join(self.reached_broker)}" if self.reached_broker else "; never reached"
        )
        return f"expected {self.expected_rule}: {verdict} ({d.reason}){reached}"


def floor_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_FLOOR) * tick


def ceil_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_CEILING) * tick


def make_intent(
    key: str,
    side: Side,
    qty: int,
    limit: Decimal | None,
    tick: Decimal,
    *,
    tag: str,
    bracket: bool = True,
    order_type: OrderType = OrderType.LMT,
    reduce_only: bool = False,
    sl_ticks: int = 20,
    tp_ticks: int = 30,
    priority: str = "Normal",
) -> OrderIntent:
    """A validation intent; with a bracket, the legs sit `tp_ticks`/`sl_ticks` either side of the reference."""
    ref = limit
    tp = sl = None
    if bracket and ref is not None:
        sign = side.sign
        tp = ref + sign * tick * tp_ticks
        sl = ref - sign * tick * sl_ticks
    return OrderIntent(
        intent_id=f"val-{tag}-{next(_seq)}",
        key=key,
        side=side,
        quantity=qty,
        limit_price=limit,
        take_profit=tp,
        stop_loss=sl,
        source=IntentSource.VALIDATION,
        created_ns=time.monotonic_ns(),
        order_type=order_type,
        reduce_only=reduce_only,
        adaptive_priority=priority,
        reason=f"validation probe: {tag}",
    )


class RiskProbes:
    """The deliberate violations of checklist §6, each denied by the right rule and never sent."""

    def __init__(self, session: Session) -> None:
        self.s = session

    # ---------------------------------------------------------------------------------------- helpers

    def _exposure(self, key: str) -> tuple[Side, int]:
        """The side a probe on `key` must take so it opens exposure, and the exposure already that way."""
        orders, risk = self.s.orders, self.s.risk
        position, working = orders.position_qty(key), orders.working_entry_qty(key)
        closing = risk.closing_qty(key)
        if position:
            side = Side.BUY if position > 0 else Side.SELL
        else:
            side = Side.SELL if working < 0 else Side.BUY
        sign = side.sign
        base = position + (working if working * sign > 0 else 0) + (closing if closing * sign > 0 else 0)
        return side, abs(base)

    def _passive(self, key: str, side: Side, frac_of_collar: float = 0.6) -> Decimal:
        """A limit inside the collar but far enough from the touch that it rests."""
        q = self.s.quote(key)
        tick = self.s.tick(key)
        mid = (q.bid + q.ask) / 2 if q.bid is not None and q.ask is not None else Decimal(0)
        off = mid * Decimal(str(self.s.settings.risk.price_collar_pct * frac_of_collar / 100))
        return floor_tick(mid - off, tick) if side is Side.BUY else ceil_tick(mid + off, tick)

    def _submit(self, intent: OrderIntent) -> RiskDecision:
        return self.s.risk.submit(intent)

    async def _cancel_intents(self, intent_ids: list[str]) -> None:
        """Cancel what approved staging intents placed and wait (bounded) until it is all terminal."""
        orders = self.s.orders
        for iid in intent_ids:
            for o in orders.orders_for_intent(iid):
                if o.state.is_working and o.order.parent_id == 0:
                    orders.cancel(o.order_id, reason="validation: staging order withdrawn")
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if all(not o.state.is_working for iid in intent_ids for o in orders.orders_for_intent(iid)):
                return
            await asyncio.sleep(0.02)

    def _pick(self, feasible: Callable[[str], bool]) -> str | None:
        keys = [k for k, v in self.s.orders.instruments.items() if v.tradable and self.s.quote_ok(k)]
        flat = [k for k in keys if not self.s.orders.position_qty(k) and not self.s.orders.working_entry_qty(k)]
        for k in flat + [k for k in keys if k not in flat]:
            if feasible(k):
                return k
        return None

    # ---------------------------------------------------------------------------------------- probes

    async def run(self) -> list[ProbeResult]:
        """Every risk probe, with the strategy paused; trading is left ACTIVE again at the end."""
        results: list[ProbeResult] = []
        r = self.s.settings.risk
        async with self.s.strategy_paused():
            await pick_flat(self.s, 3.0)
            await rate_headroom(self.s, int(r.max_orders_per_second))
        async with self.s.strategy_paused(), self.s.market_paused():
            results.append(self._simple("outside the price collar", "price_collar", self._collar))
            results.append(self._simple("without a bracket", "bracket_required", self._no_bracket))
            results.append(self._simple("a market order", "market_orders", self._market))
            results.append(self._notional())
            results.append(await self._position_size())
            await asyncio.sleep(1.0 / max(r.max_orders_per_second, 0.1) * 1.2 + 0.25)  # the 1 s bucket refills
            results.append(await self._order_rate())
            results.append(await self._halted())
            await asyncio.sleep(0.3)  # anything wrongly sent has reached the broker by now
            for res in results:
                res.reached_broker = await self.s.reached_broker(res.intent_ids)
        return results

    def _simple(self, name: str, rule: str, build: Callable[[str, Side], OrderIntent]) -> ProbeResult:
        res = ProbeResult(name, rule)
        key = self._pick(lambda k: True)
        if key is None:
            res.error = "no instrument with a usable quote to probe"
            return res
        side, _ = self._exposure(key)
        intent = build(key, side)
        res.intent_ids.append(intent.intent_id)
        res.decision = self._submit(intent)
        return res

    def _collar(self, key: str, side: Side) -> OrderIntent:
        limit = self._passive(key, side, frac_of_collar=2.0)
        return make_intent(key, side, 1, limit, self.s.tick(key), tag="collar")

    def _no_bracket(self, key: str, side: Side) -> OrderIntent:
        return make_intent(key, side, 1, self._passive(key, side), self.s.tick(key), tag="nobracket", bracket=False)

    def _market(self, key: str, side: Side) -> OrderIntent:
        tick = self.s.tick(key)
        ref = self._passive(key, side, frac_of_collar=0.0)
        intent = make_intent(key, side, 1, ref, tick, tag="market")
        return dataclasses.replace(intent, limit_price=None, order_type=OrderType.MKT)

    def _notional(self) -> ProbeResult:
        r = self.s.settings.risk
        res = ProbeResult("over the order notional", "max_order_notional")

        def qty_for(k: str) -> int:
            price = self._passive(k, self._exposure(k)[0])
            return int(Decimal(str(r.max_order_notional)) / price) + 1 if price > 0 else 0

        key = self._pick(lambda k: 0 < qty_for(k) <= r.max_order_qty)
        if key is None:
            res.error = (
                f"cannot be exercised: max_order_qty {r.max_order_qty} × any price stays under "
                f"max_order_notional {r.max_order_notional:g}"
            )
            return res
        side, _ = self._exposure(key)
        intent = make_intent(key, side, qty_for(key), self._passive(key, side), self.s.tick(key), tag="notional")
        res.intent_ids.append(intent.intent_id)
        res.decision = self._submit(intent)
        return res

    def _position_plan(self, key: str) -> tuple[list[int], int] | None:
        """Staging quantities that bring exposure just under the position limit, and the probe quantity."""
        r = self.s.settings.risk
        side, exposure = self._exposure(key)
        price = self._passive(key, side)
        if price <= 0:
            return None
        limit = r.per_instrument_max_qty.get(key, r.max_position_qty)
        per_order = min(r.max_order_qty, int(Decimal(str(r.max_order_notional)) / price))
        notional_cap = int(Decimal(str(r.max_position_notional)) / price)
        if per_order <= 0:
            return None
        stages: list[int] = []
        while limit - exposure >= per_order:
            step = min(per_order, limit - exposure)
            if exposure + step > notional_cap or len(stages) >= 6:
                return None
            stages.append(step)
            exposure += step
        probe = limit - exposure + 1
        if probe > per_order:
            return None
        return stages, probe

    async def _position_size(self) -> ProbeResult:
        res = ProbeResult("over the position size", "max_position_qty")
        key = self._pick(lambda k: self._position_plan(k) is not None)
        if key is None:
            res.error = "cannot be exercised with these limits (the notional limits bind before the quantity limit)"
            return res
        plan = self._position_plan(key)
        assert plan is not None
        stages, probe_qty = plan
        side, _ = self._exposure(key)
        staged: list[str] = []
        try:
            for qty in stages:
                intent = make_intent(key, side, qty, self._passive(key, side), self.s.tick(key), tag="stage")
                decision = self._submit(intent)
                staged.append(intent.intent_id)
                if not decision.approved:
                    res.error = f"staging order of {qty} {key} was denied by {decision.rule}: {decision.reason}"
                    return res
            intent = make_intent(key, side, probe_qty, self._passive(key, side), self.s.tick(key), tag="position")
            res.intent_ids.append(intent.intent_id)
            res.decision = self._submit(intent)
        finally:
            await self._cancel_intents(staged)
        return res

    async def _order_rate(self) -> ProbeResult:
        res = ProbeResult("over the order rate", "order_rate")
        key = self._pick(lambda k: True)
        if key is None:
            res.error = "no instrument with a usable quote to probe"
            return res
        side, _ = self._exposure(key)
        approved: list[str] = []
        limit = int(self.s.settings.risk.max_orders_per_second) + 3
        try:
            for _ in range(limit):
                intent = make_intent(key, side, 1, self._passive(key, side), self.s.tick(key), tag="rate")
                decision = self._submit(intent)
                if decision.approved:
                    approved.append(intent.intent_id)
                    continue
                res.intent_ids.append(intent.intent_id)
                res.decision = decision
                break
            else:
                res.error = f"{limit} orders in a burst were all approved"
        finally:
            await self._cancel_intents(approved)
        return res

    async def _halted(self) -> ProbeResult:
        res = ProbeResult("while halted", "trading_state")
        await self.s.runtime.handle(Halt(OPERATOR, "validation probe: orders must be denied while halted"))
        try:
            key = self._pick(lambda k: True)
            if key is None:
                res.error = "no instrument with a usable quote to probe"
                return res
            side, _ = self._exposure(key)
            intent = make_intent(key, side, 1, self._passive(key, side), self.s.tick(key), tag="halted")
            res.intent_ids.append(intent.intent_id)
            res.decision = self._submit(intent)
        finally:
            await self.s.resume("validation probe while halted done")
        return res


# -------------------------------------------------------------------------------------------- scripted


@dataclass
class ScriptedOutcome:
    """What a scripted probe (partial fill, round trip, daily loss) observed."""

    name: str
    ok: bool
    detail: str
    intent_ids: list[str] = field(default_factory=list)


async def wait_for(predicate: Callable[[], bool], within_s: float, step: float = 0.02) -> bool:
    """Poll `predicate` until true or `within_s` wall seconds; returns its last value."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


# Validation's own marketable orders go this far through the touch (inside the collar), so the market cannot
# move away from them before they reach the book; the latency check counts such orders as marketable.
THROUGH_PCT = Decimal("0.3")


def through(price: Decimal, side: Side, tick: Decimal) -> Decimal:
    """A limit `THROUGH_PCT` % through `price` on `side`'s aggressive side, on the tick grid."""
    off = price * THROUGH_PCT / 100
    return ceil_tick(price + off, tick) if side is Side.BUY else floor_tick(price - off, tick)


def probe_side(s: Session, key: str) -> tuple[Side, int] | None:
    """The side a probe on `key` takes so it adds to what is there (never opposing a working entry), and the
    exposure already that way as the risk engine counts it (position + working + closing); None if unusable."""
    if not (s.orders.instruments[key].tradable and s.quote_ok(key)):
        return None
    position, working = s.orders.position_qty(key), s.orders.working_entry_qty(key)
    closing = s.risk.closing_qty(key)
    if position:
        side = Side.BUY if position > 0 else Side.SELL
    else:
        side = Side.SELL if working < 0 else Side.BUY
    sign = side.sign
    if working * sign < 0:
        return None
    base = position + (working if working * sign > 0 else 0) + (closing if closing * sign > 0 else 0)
    return side, abs(base)


async def pick(s: Session, prefer_flat_s: float = 2.0) -> tuple[str, Side, int] | None:
    """An instrument to probe: a flat one if one turns up within `prefer_flat_s`, else any usable one."""
    key = await pick_flat(s, prefer_flat_s)
    keys = ([key] if key else []) + sorted(s.orders.instruments)
    for k in keys:
        found = probe_side(s, k)
        if found is not None:
            return k, found[0], found[1]
    return None


def is_flat(s: Session, key: str) -> bool:
    """No position and no working order of any kind on `key` (a probe there only meets its own orders)."""
    return (
        s.quote_ok(key)
        and s.orders.position_qty(key) == 0
        and not any(o["key"] == key for o in s.orders.working_orders())
    )


async def pick_flat(s: Session, within_s: float = 10.0) -> str | None:
    """A tradable instrument that is flat; with the strategy paused, open positions close on their brackets."""
    keys = sorted(k for k, v in s.orders.instruments.items() if v.tradable)
    found: list[str] = []

    def any_flat() -> bool:
        found[:] = [k for k in keys if is_flat(s, k)]
        return bool(found)

    await wait_for(any_flat, within_s, step=0.02)
    return found[0] if found else None


async def rate_headroom(s: Session, n: int, within_s: float = 3.0) -> bool:
    """Wait until the risk engine's order-rate buckets can take `n` more orders (probes must not trip them)."""

    def free() -> bool:
        for gauge in s.risk.view()["limits"]:
            if gauge["name"].startswith("order_rate") and gauge["limit"] - gauge["used"] < n:
                return False
        return True

    return await wait_for(free, within_s, step=0.05)


async def close_position(s: Session, key: str, tag: str, qty: int | None = None) -> str | None:
    """A reduce-only marketable close of `qty` (default all) of what `key` holds; its intent id (None if flat)."""
    held = s.orders.position_qty(key)
    if held == 0:
        return None
    qty = held if qty is None else (qty if held > 0 else -qty)
    q = s.quote(key)
    tick = s.tick(key)
    side = Side.SELL if qty > 0 else Side.BUY
    touch = q.bid if side is Side.SELL else q.ask
    assert touch is not None
    limit = through(touch, side, tick)
    intent = make_intent(key, side, abs(qty), limit, tick, tag=tag, bracket=False, reduce_only=True, priority="Urgent")
    decision = s.risk.submit(intent)
    return intent.intent_id if decision.approved else None


async def cancel_children_and_wait(s: Session, intent_id: str, within_s: float = 5.0) -> None:
    for o in s.orders.orders_for_intent(intent_id):
        if o.state.is_working:
            s.orders.cancel(o.order_id, reason="validation: probe leg withdrawn")
    await wait_for(lambda: all(not o.state.is_working for o in s.orders.orders_for_intent(intent_id)), within_s)


async def round_trip(s: Session) -> ScriptedOutcome:
    """One unit marketable, then closed reduce-only marketable: two submit → first fill samples.

    On an instrument that holds a position the unit goes the position's way, so the close only undoes it.
    """
    async with s.strategy_paused():
        found = await pick(s, 1.0)
        if found is None:
            return ScriptedOutcome("round trip", False, "no usable instrument")
        key, side, _ = found
        await rate_headroom(s, 2)
        q = s.quote(key)
        tick = s.tick(key)
        touch = q.ask if side is Side.BUY else q.bid
        assert touch is not None
        before = s.orders.position_qty(key)
        entry = make_intent(key, side, 1, through(touch, side, tick), tick, tag="roundtrip", priority="Urgent")
        decision = s.risk.submit(entry)
        if not decision.approved:
            return ScriptedOutcome("round trip", False, f"entry denied by {decision.rule}", [entry.intent_id])
        filled = await wait_for(lambda: s.orders.position_qty(key) != before, 2.0)
        await cancel_children_and_wait(s, entry.intent_id)
        mine = sum(o.filled for o in s.orders.orders_for_intent(entry.intent_id) if o.order.parent_id == 0)
        close_id = await close_position(s, key, "roundtrip-close", mine) if mine else None
        ids = [entry.intent_id] + ([close_id] if close_id else [])
        back = await wait_for(lambda: s.orders.position_qty(key) == before, 2.0)
        if close_id:
            await cancel_children_and_wait(s, close_id)
        return ScriptedOutcome("round trip", filled and back, f"{key}: filled={filled} undone={back}", ids)


async def partial_fill(
    s: Session, thin_book: Callable[[str, Decimal, Side], Awaitable[bool]] | None
) -> ScriptedOutcome:
    """An entry resting 30 ticks behind the touch; a thin book then shows one lot at its limit: it fills in part."""
    r = s.settings.risk
    if thin_book is None:
        return ScriptedOutcome("partial fill", False, "a partial fill can only be scripted in the simulated market")
    async with s.strategy_paused():
        found = await pick(s)
        if found is None:
            return ScriptedOutcome("partial fill", False, "no usable instrument to script a partial fill on")
        key, side, exposure = found
        q = s.quote(key)
        tick = s.tick(key)
        assert q.bid is not None and q.ask is not None
        # Rests: the market is unlikely to come 30 ticks its way by itself meanwhile (at 10, one CI run in
        # about seven saw the accelerated market reach the limit first and fill the whole order at once).
        limit = q.bid - tick * 30 if side is Side.BUY else q.ask + tick * 30
        # Not sliced (a slice is its own order), and more than the one lot the thin book will show.
        qty = min(
            s.settings.execution.max_child_qty,
            300,
            r.max_order_qty,
            r.per_instrument_max_qty.get(key, r.max_position_qty) - exposure,
            int(Decimal(str(r.max_order_notional)) / limit) - 1,
            int(Decimal(str(r.max_position_notional)) / limit) - exposure - 1,
        )
        if qty < 2:
            return ScriptedOutcome("partial fill", False, f"the limits leave no room for a partial fill on {key}")
        await rate_headroom(s, 2)
        entry = make_intent(key, side, qty, limit, tick, tag="partial", sl_ticks=40, tp_ticks=60)
        decision = s.risk.submit(entry)
        if not decision.approved:
            return ScriptedOutcome("partial fill", False, f"entry denied by {decision.rule}", [entry.intent_id])
        parent = [o for o in s.orders.orders_for_intent(entry.intent_id) if o.order.parent_id == 0]
        await wait_for(lambda: all(o.state.value == "SUBMITTED" for o in parent), 2.0)
        before = s.orders.position_qty(key)
        thinned = await thin_book(key, limit, side)
        await wait_for(lambda: any(o.filled > 0 for o in parent), 2.0)
        await asyncio.sleep(0.1)
        filled = sum(o.filled for o in parent)
        await cancel_children_and_wait(s, entry.intent_id)
        close_id = await close_position(s, key, "partial-close", filled) if filled else None
        await wait_for(lambda: s.orders.position_qty(key) == before - side.sign * filled, 5.0)
        if close_id:
            await cancel_children_and_wait(s, close_id)
        ids = [entry.intent_id] + ([close_id] if close_id else [])
        executions = sum(len(o.fills) for o in parent)
        partial_seen = executions > 1 or any(
            state.value == "PARTIALLY_FILLED" for o in parent for state, *_ in o.transitions
        )
        ok = thinned and partial_seen
        return ScriptedOutcome(
            "partial fill",
            ok,
            f"{key}: one lot shown at the limit; {filled} of {qty} filled in {executions} executions"
            + (", through PARTIALLY_FILLED" if partial_seen else ", no partial state seen"),
            ids,
        )


async def daily_loss(
    s: Session, shock: Callable[[str, float], Awaitable[None]] | None, lower_limit: Callable[[], None] | None
) -> ScriptedOutcome:
    """Hold a position, then move the market against it (sim) or lower the limit (paper): HALTED (+ flat)."""
    r = s.settings.risk
    name = "daily-loss breach"
    async with s.strategy_paused():
        await pick_flat(s, 2.0)
        await rate_headroom(s, 2)
        # The probe adds to whatever the instrument holds, in the same direction (a flat one buys).
        best: tuple[Decimal, str, int, Side] | None = None
        for key in sorted(s.orders.instruments):
            found = probe_side(s, key)
            if found is None:
                continue
            side, held_before = found
            q = s.quote(key)
            touch = q.ask if side is Side.BUY else q.bid
            assert touch is not None
            price = touch * Decimal("1.01")  # the marketable limit is a little through the touch
            qty = min(
                r.max_order_qty,
                s.settings.execution.max_child_qty,
                r.per_instrument_max_qty.get(key, r.max_position_qty) - held_before,
                int(Decimal(str(r.max_order_notional)) * Decimal("0.95") / price),
                int(Decimal(str(r.max_position_notional)) * Decimal("0.95") / price) - held_before,
            )
            exposure = (held_before + qty) * touch
            if qty > 0 and (best is None or exposure > best[0]):
                best = (exposure, key, qty, side)
        if best is None:
            return ScriptedOutcome(name, False, "no instrument can hold a position under the limits")
        _, key, qty, side = best
        q = s.quote(key)
        tick = s.tick(key)
        touch = q.ask if side is Side.BUY else q.bid
        assert touch is not None
        limit = through(touch, side, tick)
        before = s.orders.position_qty(key)
        # The stop sits far beyond the shock so the position is still open when the limit trips: the
        # flatten, not the bracket, must close it.
        entry = make_intent(
            key, side, qty, limit, tick, tag="dailyloss", sl_ticks=int(limit * 30 / 100 / tick), priority="Urgent"
        )
        decision = s.risk.submit(entry)
        if not decision.approved:
            return ScriptedOutcome(
                name, False, f"entry denied by {decision.rule}: {decision.reason}", [entry.intent_id]
            )
        await wait_for(lambda: s.orders.position_qty(key) != before, 3.0)
        await asyncio.sleep(0.2)  # let a partial complete
        held = abs(s.orders.position_qty(key))
        if held == abs(before):
            await cancel_children_and_wait(s, entry.intent_id)
            return ScriptedOutcome(name, False, f"the {key} entry did not fill", [entry.intent_id])
        for o in s.orders.orders_for_intent(entry.intent_id):
            if o.order.parent_id == 0 and o.state.is_working:
                s.orders.cancel(o.order_id, reason="validation: rest of the daily-loss entry")
        pnl_before = s.risk.day_pnl()
        if shock is not None:
            needed = Decimal(str(r.max_daily_loss)) + max(pnl_before, Decimal(0))
            value = held * limit
            pct = float(needed / value * 100) * 1.3
            cap = s.settings.market_data.max_jump_pct * 0.8
            if pct > cap:
                return ScriptedOutcome(
                    name,
                    False,
                    f"a {pct:.1f}% move would be needed (over the {cap:.1f}% outlier cap)",
                    [entry.intent_id],
                )
            await shock(key, -pct * side.sign)
            how = f"{key} shocked {-pct * side.sign:+.2f}% against {held} {'long' if side is Side.BUY else 'short'}"
        elif lower_limit is not None:
            lower_limit()
            how = f"daily loss limit lowered below the day's P&L {pnl_before:.2f} with {held} {key} held"
        else:
            return ScriptedOutcome(name, False, "no way to drive a breach in this mode", [entry.intent_id])
        halted = await wait_for(
            lambda: s.risk.trading_state is TradingState.HALTED and s.risk.state_source == "rule:max_daily_loss",
            10.0,
        )
        flattened = True
        if r.on_max_loss == "flatten":
            flattened = await wait_for(lambda: all(p.quantity == 0 for p in s.orders.positions().values()), 20.0)
            flattened = flattened and await s.broker_flat()
        ok = halted and flattened
        detail = f"{how}: {'HALTED by rule:max_daily_loss' if halted else 'NOT halted'} ({s.risk.state_reason}); " + (
            ("flattened (Omega and broker flat)" if flattened else "NOT flat after the flatten")
            if r.on_max_loss == "flatten"
            else "positions kept (on_max_loss = halt)"
        )
        return ScriptedOutcome(name, ok, detail, [entry.intent_id])


async def resume_trading(s: Session, reason: str) -> bool:
    """Resume from an operator source, as a person at the desk would after a fault or a probe halt.

    A halt cancels every order, bracket legs included, and the strategy does not re-protect or close what
    it holds; so the operator then closes the positions left without protection, and the day goes on.
    """
    result = await s.runtime.handle(Resume(OPERATOR, reason))
    if not result.ok:
        return False
    async with s.strategy_paused():
        ids = []
        for key in sorted(s.orders.instruments):
            working = any(o["key"] == key for o in s.orders.working_orders())
            if s.orders.position_qty(key) and not working and s.quote_ok(key):
                close_id = await close_position(s, key, "unprotected")
                if close_id:
                    ids.append(close_id)
        if ids:
            await wait_for(lambda: all(not o.state.is_working for i in ids for o in s.orders.orders_for_intent(i)), 3.0)
    return True
