"""Pre-trade checks: one test per rule, each a table of the ways it denies; then what it approves."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from omega_tui.core.risk import (
    RULE_BRACKET,
    RULE_INSTRUMENT,
    RULE_MARKET_ORDERS,
    RULE_MAX_OPEN_ORDERS,
    RULE_MAX_ORDER_NOTIONAL,
    RULE_MAX_ORDER_QTY,
    RULE_MAX_POSITION_NOTIONAL,
    RULE_MAX_POSITION_QTY,
    RULE_OPPOSING,
    RULE_ORDER_RATE,
    RULE_ORDER_TYPE,
    RULE_PRICE_COLLAR,
    RULE_PRICE_GRID,
    RULE_QUANTITY,
    RULE_QUOTE,
    RULE_REDUCE_ONLY,
    RULE_TRADING_ENABLED,
    RULE_TRADING_STATE,
)
from omega_tui.core.types import IntentSource, OrderIntent, OrderType, QuoteFlag, RiskDecision, Side, TradingState
from tests.risk.conftest import Harness
from tests.risk.fakes import intent

Setup = Callable[[Harness], Any]


def nothing(h: Harness) -> None:
    return None


def position(key: str, qty: int, price: str = "100.00") -> Setup:
    return lambda h: h.orders.set_position(key, qty, Decimal(price))


def working(key: str, side: Side, qty: int, price: str = "100.00") -> Setup:
    return lambda h: h.orders.submit(intent(key, side, qty, price, tp=None, sl=None))


def both(*setups: Setup) -> Setup:
    def run(h: Harness) -> None:
        for s in setups:
            s(h)

    return run


def reducing(h: Harness) -> None:
    h.engine._set_state(TradingState.REDUCING, "rule:max_position_qty", "test")


def denied(h: Harness, setup: Setup, order: OrderIntent, rule: str) -> RiskDecision:
    setup(h)
    decision = h.engine.check(order)
    assert not decision.approved, decision
    assert decision.rule == rule, decision
    assert decision.reason
    assert decision.intent_id == order.intent_id
    return decision


FLATTEN_SELL = dict(source=IntentSource.FLATTEN, reduce_only=True)


@pytest.mark.parametrize(
    ("setup", "order"),
    [
        pytest.param(nothing, intent(), id="strategy-entry"),
        pytest.param(nothing, intent(source=IntentSource.MANUAL), id="manual-entry"),
        pytest.param(position("AAPL", 100), intent(side=Side.SELL, reduce_only=True), id="reduce-only-not-flatten"),
        pytest.param(nothing, intent(side=Side.SELL, **FLATTEN_SELL), id="flatten-with-no-position"),
        pytest.param(position("AAPL", 100), intent(side=Side.BUY, **FLATTEN_SELL), id="flatten-that-grows"),
        pytest.param(
            position("AAPL", 100), intent(side=Side.SELL, quantity=150, **FLATTEN_SELL), id="flatten-through-0"
        ),
    ],
)
def test_check_when_trading_halted_then_denies(h: Harness, setup: Setup, order: OrderIntent) -> None:
    h.engine.halt("operator:key", "test halt")
    decision = denied(h, setup, order, RULE_TRADING_STATE)
    assert "HALTED" in decision.reason and "test halt" in decision.reason


def test_check_when_trading_halted_then_flatten_order_that_shrinks_is_approved(h: Harness) -> None:
    h.orders.set_position("AAPL", 100, Decimal("100"))
    h.engine.halt("operator:key", "test halt")
    assert h.engine.check(intent(side=Side.SELL, quantity=100, **FLATTEN_SELL)).approved


@pytest.mark.parametrize(
    ("setup", "order"),
    [
        pytest.param(nothing, intent(), id="flat-entry"),
        pytest.param(position("AAPL", 100), intent(side=Side.BUY), id="adds-to-long"),
        pytest.param(position("AAPL", 100), intent(side=Side.SELL, quantity=150, tp=None, sl=None), id="through-zero"),
        pytest.param(position("AAPL", 100), intent(side=Side.SELL, quantity=50), id="shrinks-but-has-bracket"),
        pytest.param(
            both(position("AAPL", 100), working("AAPL", Side.SELL, 80, "100.00")),
            intent(side=Side.SELL, quantity=50, reduce_only=True),
            id="with-working-would-cross",
        ),
    ],
)
def test_check_when_reducing_and_order_does_not_shrink_then_denies(
    h: Harness, setup: Setup, order: OrderIntent
) -> None:
    reducing(h)
    denied(h, setup, order, RULE_TRADING_STATE)


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(intent(side=Side.SELL, quantity=50, reduce_only=True), id="reduce-only"),
        pytest.param(intent(side=Side.SELL, quantity=100, tp=None, sl=None), id="plain-close-no-legs"),
    ],
)
def test_check_when_reducing_and_order_shrinks_then_approves(h: Harness, order: OrderIntent) -> None:
    h.orders.set_position("AAPL", 100, Decimal("100"))
    reducing(h)
    assert h.engine.check(order).approved


@pytest.mark.parametrize("order", [pytest.param(intent(), id="entry"), pytest.param(intent(side=Side.SELL), id="sell")])
def test_check_when_trading_disabled_then_denies(make_harness: Callable[..., Harness], order: OrderIntent) -> None:
    h = make_harness({"trading_enabled": False})
    denied(h, nothing, order, RULE_TRADING_ENABLED)


@pytest.mark.parametrize(
    ("key", "words"),
    [("MSFT", "not verified"), ("WATCH", "watch-only"), ("NOPERM", "no trading permission")],
)
def test_check_when_instrument_not_verified_or_not_tradable_then_denies(h: Harness, key: str, words: str) -> None:
    decision = denied(h, nothing, intent(key), RULE_INSTRUMENT)
    assert words in decision.reason


@pytest.mark.parametrize("qty", [0, -5])
def test_check_when_quantity_not_positive_then_denies(h: Harness, qty: int) -> None:
    denied(h, nothing, intent(quantity=qty), RULE_QUANTITY)


@pytest.mark.parametrize(
    ("setup", "order"),
    [
        pytest.param(nothing, intent(side=Side.SELL, reduce_only=True), id="no-position"),
        pytest.param(position("AAPL", 100), intent(side=Side.BUY, reduce_only=True), id="same-side"),
        pytest.param(position("AAPL", 100), intent(side=Side.SELL, quantity=101, reduce_only=True), id="through-zero"),
        pytest.param(
            both(position("AAPL", 100), working("AAPL", Side.SELL, 60)),
            intent(side=Side.SELL, quantity=50, reduce_only=True),
            id="with-working-close-would-cross",
        ),
        pytest.param(position("AAPL", 100), intent(side=Side.SELL, source=IntentSource.FLATTEN), id="flatten-not-ro"),
    ],
)
def test_check_when_reduce_only_does_not_shrink_then_denies(h: Harness, setup: Setup, order: OrderIntent) -> None:
    denied(h, setup, order, RULE_REDUCE_ONLY)


def test_check_when_market_order_not_allowed_then_denies(h: Harness) -> None:
    decision = denied(h, nothing, intent(limit=None, order_type=OrderType.MKT), RULE_MARKET_ORDERS)
    assert "allow_market_orders" in decision.reason


def test_check_when_market_orders_allowed_then_approves(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(execution={"allow_market_orders": True})
    assert h.engine.check(intent(limit=None, order_type=OrderType.MKT)).approved


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(intent(order_type=OrderType.STP), id="stop-entry"),
        pytest.param(intent(limit=None, tp="101.00", sl="99.00"), id="limit-without-price"),
    ],
)
def test_check_when_order_type_not_accepted_then_denies(h: Harness, order: OrderIntent) -> None:
    denied(h, nothing, order, RULE_ORDER_TYPE)


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(intent(limit="100.005", tp="101.00", sl="99.00"), id="limit"),
        pytest.param(intent(tp="101.001", sl="99.00"), id="take-profit"),
        pytest.param(intent(tp="101.00", sl="-1.00"), id="negative-stop"),
        pytest.param(intent("ES", limit="5000.10", tp="5010.00", sl="4990.00"), id="es-quarter-grid"),
    ],
)
def test_check_when_price_off_tick_grid_then_denies(h: Harness, order: OrderIntent) -> None:
    denied(h, nothing, order, RULE_PRICE_GRID)


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(intent(tp=None), id="no-take-profit"),
        pytest.param(intent(sl=None), id="no-stop-loss"),
        pytest.param(intent(tp=None, sl=None), id="naked"),
        pytest.param(intent(side=Side.BUY, tp="99.00", sl="101.00"), id="buy-legs-inverted"),
        pytest.param(intent(side=Side.SELL, tp="101.00", sl="99.00"), id="sell-legs-inverted"),
        pytest.param(intent(side=Side.BUY, tp="101.00", sl="100.00"), id="stop-at-entry"),
    ],
)
def test_check_when_entry_bracket_missing_or_wrong_then_denies(h: Harness, order: OrderIntent) -> None:
    denied(h, nothing, order, RULE_BRACKET)


def test_check_when_bracket_not_required_then_naked_entry_approves(make_harness: Callable[..., Harness]) -> None:
    h = make_harness({"require_bracket": False})
    assert h.engine.check(intent(tp=None, sl=None)).approved


@pytest.mark.parametrize("qty", [501, 10_000])
def test_check_when_order_qty_above_limit_then_denies(h: Harness, qty: int) -> None:
    denied(h, nothing, intent(quantity=qty), RULE_MAX_ORDER_QTY)


@pytest.mark.parametrize(
    ("overrides", "order"),
    [
        pytest.param({"max_order_notional": 40_000.0}, intent(quantity=401), id="aapl-401x100"),
        pytest.param({"max_order_notional": 400_000.0}, intent("ES", quantity=2, limit="5000.00"), id="es-x50"),
    ],
)
def test_check_when_order_notional_above_limit_then_denies(
    make_harness: Callable[..., Harness], overrides: dict[str, Any], order: OrderIntent
) -> None:
    h = make_harness(overrides)
    denied(h, nothing, order, RULE_MAX_ORDER_NOTIONAL)


@pytest.mark.parametrize(
    ("setup", "order"),
    [
        pytest.param(working("AAPL", Side.BUY, 10), intent(side=Side.SELL), id="sell-against-working-buy"),
        pytest.param(working("AAPL", Side.SELL, 10), intent(side=Side.BUY), id="buy-against-working-sell"),
        pytest.param(
            both(position("AAPL", 100), working("AAPL", Side.BUY, 10)),
            intent(side=Side.SELL, quantity=20, reduce_only=True),
            id="reduce-against-working-entry",
        ),
    ],
)
def test_check_when_opposing_entry_working_then_denies(h: Harness, setup: Setup, order: OrderIntent) -> None:
    denied(h, setup, order, RULE_OPPOSING)


@pytest.mark.parametrize(
    ("setup", "order"),
    [
        pytest.param(position("AAPL", 900), intent(quantity=101), id="position-plus-order"),
        pytest.param(
            both(working("AAPL", Side.BUY, 400), working("AAPL", Side.BUY, 400)),
            intent(quantity=201),
            id="working-plus-order",
        ),
        pytest.param(both(position("AAPL", 600), working("AAPL", Side.BUY, 300)), intent(quantity=101), id="all-three"),
        pytest.param(position("AAPL", -900), intent(side=Side.SELL, quantity=101, limit="100.00"), id="short-side"),
        pytest.param(
            position("ES", 5, "5000.00"), intent("ES", quantity=1, limit="5000.00"), id="per-instrument-override"
        ),
        pytest.param(
            both(position("AAPL", 900), working("AAPL", Side.SELL, 0)),
            intent(quantity=101),
            id="zero-working-is-no-cover",
        ),
    ],
)
def test_check_when_projected_position_qty_above_limit_then_denies(
    h: Harness, setup: Setup, order: OrderIntent
) -> None:
    denied(h, setup, order, RULE_MAX_POSITION_QTY)


@pytest.mark.parametrize(
    ("setup", "order"),
    [
        pytest.param(position("AAPL", 400), intent(quantity=101), id="aapl-position-plus-order"),
        pytest.param(working("AAPL", Side.BUY, 450), intent(quantity=51), id="aapl-working-plus-order"),
        pytest.param(position("ES", 1, "5000.00"), intent("ES", quantity=1, limit="5000.00"), id="es-multiplier"),
    ],
)
def test_check_when_projected_position_notional_above_limit_then_denies(
    make_harness: Callable[..., Harness], setup: Setup, order: OrderIntent
) -> None:
    h = make_harness({"max_position_notional": 50_000.0, "max_order_notional": 300_000.0})
    denied(h, setup, order, RULE_MAX_POSITION_NOTIONAL)


@pytest.mark.parametrize(
    ("quote_kw", "words"),
    [
        pytest.param(None, "no quote", id="missing"),
        pytest.param({"bid": "99.99", "ask": "100.01", "age_s": 5.5}, "s old", id="older-than-limit"),
        pytest.param({"bid": "99.99", "ask": "100.01", "flags": QuoteFlag.STALE}, "stale", id="flagged-stale"),
        pytest.param({"bid": "100.02", "ask": "100.01", "flags": QuoteFlag.CROSSED}, "crossed", id="crossed"),
    ],
)
def test_check_when_quote_missing_old_stale_or_crossed_then_denies(
    h: Harness, quote_kw: dict[str, Any] | None, words: str
) -> None:
    if quote_kw is None:
        h.hot._quotes.pop("AAPL")
    else:
        h.quote("AAPL", **quote_kw)
    decision = denied(h, nothing, intent(), RULE_QUOTE)
    assert words in decision.reason


def test_check_when_quote_ages_past_limit_then_denies(h: Harness) -> None:
    assert h.engine.check(intent()).approved
    h.clock.advance(5.01)
    denied(h, nothing, intent(), RULE_QUOTE)


@pytest.mark.parametrize(
    ("bid", "ask", "order"),
    [
        pytest.param("99.99", "100.01", intent(limit="102.01", tp="103.00", sl="101.00"), id="above"),
        pytest.param("99.99", "100.01", intent(side=Side.SELL, limit="97.99", tp="97.00", sl="99.00"), id="below"),
        pytest.param(None, "100.01", intent(), id="one-sided"),
    ],
)
def test_check_when_limit_outside_price_collar_then_denies(
    h: Harness, bid: str | None, ask: str, order: OrderIntent
) -> None:
    h.quote("AAPL", bid, ask)
    denied(h, nothing, order, RULE_PRICE_COLLAR)


@pytest.mark.parametrize(
    ("working_orders", "order"),
    [
        pytest.param(50, intent(tp=None, sl=None, reduce_only=False), id="full-single"),
        pytest.param(48, intent(), id="bracket-adds-three"),
    ],
)
def test_check_when_open_orders_at_limit_then_denies(
    make_harness: Callable[..., Harness], working_orders: int, order: OrderIntent
) -> None:
    h = make_harness({"require_bracket": False})
    for _ in range(working_orders):
        h.orders.submit(intent(quantity=1, tp=None, sl=None))
    denied(h, nothing, order, RULE_MAX_OPEN_ORDERS)


@pytest.mark.parametrize(
    ("overrides", "sent", "advance_s", "words"),
    [
        pytest.param({"max_orders_per_second": 3.0}, 3, 0.0, "/s", id="per-second"),
        pytest.param({"max_orders_per_second": 10.0, "max_orders_per_minute": 6.0}, 6, 2.0, "/min", id="per-minute"),
    ],
)
def test_check_when_order_rate_exceeded_then_denies_not_queued(
    make_harness: Callable[..., Harness], overrides: dict[str, Any], sent: int, advance_s: float, words: str
) -> None:
    h = make_harness(overrides)
    for _ in range(sent):
        assert h.engine.submit(intent(quantity=1)).approved
    h.clock.advance(advance_s)
    h.quote("AAPL", "99.99", "100.01")
    before = len(h.orders.submitted)
    decision = h.engine.submit(intent(quantity=1))
    assert (decision.approved, decision.rule) == (False, RULE_ORDER_RATE)
    assert words in decision.reason
    assert len(h.orders.submitted) == before  # denied, not queued


def test_check_when_order_rate_exceeded_then_denied_orders_take_no_tokens(make_harness: Callable[..., Harness]) -> None:
    h = make_harness({"max_orders_per_second": 2.0})
    for _ in range(2):
        assert h.engine.submit(intent(quantity=1)).approved
    # Orders denied by other rules do not consume tokens (none left either way), and a refill re-opens.
    for _ in range(5):
        assert h.engine.submit(intent(quantity=1)).rule == RULE_ORDER_RATE
    h.clock.advance(0.5)
    h.quote("AAPL", "99.99", "100.01")
    assert h.engine.submit(intent(quantity=1)).approved


def test_check_when_denied_by_other_rule_then_no_token_is_used(make_harness: Callable[..., Harness]) -> None:
    h = make_harness({"max_orders_per_second": 1.0})
    assert h.engine.submit(intent(quantity=501)).rule == RULE_MAX_ORDER_QTY
    assert h.engine.submit(intent(quantity=1)).approved


# ---------------------------------------------------------------------------------------- approvals


@pytest.mark.parametrize(
    ("setup", "order"),
    [
        pytest.param(nothing, intent(), id="buy-bracket"),
        pytest.param(nothing, intent(side=Side.SELL, limit="100.00"), id="sell-bracket"),
        pytest.param(position("AAPL", 500), intent(quantity=500), id="up-to-the-limit-exactly"),
        pytest.param(position("AAPL", 300), intent(side=Side.SELL, quantity=300, reduce_only=True), id="close-whole"),
        pytest.param(
            position("AAPL", 2000), intent(side=Side.SELL, quantity=100, reduce_only=True), id="shrink-beyond"
        ),
        pytest.param(position("ES", 3, "5000.00"), intent("ES", quantity=2, limit="5000.00"), id="es-at-override"),
        pytest.param(nothing, intent(limit="102.00", tp="103.00", sl="101.00"), id="inside-collar-edge"),
    ],
)
def test_check_when_every_rule_passes_then_approves(h: Harness, setup: Setup, order: OrderIntent) -> None:
    setup(h)
    decision = h.engine.check(order)
    assert decision.approved, decision
    assert decision.rule == ""


def test_check_is_pure_it_neither_submits_nor_takes_tokens(make_harness: Callable[..., Harness]) -> None:
    h = make_harness({"max_orders_per_second": 1.0})
    for _ in range(5):
        assert h.engine.check(intent()).approved
    assert h.orders.submitted == []
    assert h.engine.orders_today == 0


def test_submit_when_approved_then_journals_publishes_and_reaches_the_order_manager(h: Harness) -> None:
    order = intent()
    decision = h.engine.submit(order)
    assert decision.approved
    assert [i for i, _ in h.orders.submitted] == [order]
    assert decision in h.events
    records = [r for r in h.journal.read() if r["kind"] == "risk_decision"]
    assert records[-1]["decision"]["approved"] is True
    assert records[-1]["intent"]["intent_id"] == order.intent_id
    assert h.engine.orders_today == 1


def test_submit_when_denied_then_nothing_reaches_the_order_manager(h: Harness) -> None:
    h.engine.halt("operator:key", "stop")
    decision = h.engine.submit(intent())
    assert not decision.approved
    assert h.orders.submitted == []
    assert decision in h.events
    record = [r for r in h.journal.read() if r["kind"] == "risk_decision"][-1]
    assert record["decision"]["rule"] == RULE_TRADING_STATE
    assert h.engine.denied_today == 1


async def test_check_when_working_reduce_orders_would_cross_zero_then_denies(h: Harness) -> None:
    async with h.running():
        h.orders.set_position("AAPL", 100, Decimal("100"))
        assert h.engine.submit(intent(side=Side.SELL, quantity=60, reduce_only=True)).approved
        assert h.orders.working_entry_qty("AAPL") == 0  # like the real order manager: reduce orders not counted
        second = h.engine.submit(intent(side=Side.SELL, quantity=60, reduce_only=True))
        assert (second.approved, second.rule) == (False, RULE_REDUCE_ONLY)
        # Once the first is gone (cancelled), the same order is fine again.
        h.orders.cancel(h.orders.working("AAPL", "reduce")[0].order_id)
        assert h.engine.closing_qty("AAPL") == 0
        assert h.engine.submit(intent(side=Side.SELL, quantity=60, reduce_only=True)).approved


async def test_check_when_working_close_and_entry_on_one_side_then_projection_counts_both(
    make_harness: Callable[..., Harness],
) -> None:
    h = make_harness({"max_order_qty": 1000})
    async with h.running():
        h.orders.set_position("AAPL", 100, Decimal("100"))
        assert h.engine.submit(intent(side=Side.SELL, quantity=100, reduce_only=True)).approved
        h.orders.submit(intent(side=Side.SELL, quantity=500, tp=None, sl=None))
        # Worst case if everything fills: 100 - 100 (close) - 500 (entry) - this.
        assert h.engine.check(intent(side=Side.SELL, quantity=500)).approved  # -1,000: at the limit
        over = h.engine.check(intent(side=Side.SELL, quantity=501))
        assert (over.approved, over.rule) == (False, RULE_MAX_POSITION_QTY)


def test_submit_when_order_manager_refuses_then_decision_is_a_published_denial(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An approved intent the order manager cannot place comes back as a denial, never an exception."""

    def refuse(_intent: OrderIntent) -> list[int]:
        raise ValueError("the broker is disconnected; orders cannot be placed now")

    monkeypatch.setattr(h.orders, "submit", refuse)
    decision = h.engine.submit(intent("AAPL", Side.BUY, 10, "100.00"))
    assert not decision.approved and decision.rule == "order_refused" and "disconnected" in decision.reason
    assert [e for e in h.events if isinstance(e, RiskDecision)][-1] == decision
    assert h.engine.orders_today == 0 and h.engine.denied_today == 1
