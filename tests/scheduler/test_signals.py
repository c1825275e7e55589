"""The signal generator: pure, on the tick grid, always bracketed, and silent when it should be."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from omega_tui.config import SignalSettings
from omega_tui.core.models.base import Prediction
from omega_tui.core.signals import SignalParams, TradingParams, explain, generate
from omega_tui.core.types import IntentSource, Quote, QuoteFlag, Side
from tests.scheduler.conftest import instrument

UTC0 = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)


def quote(bid: str, ask: str, flags: QuoteFlag = QuoteFlag.NONE) -> Quote:
    return Quote("SIM", 1, 1_000, UTC0, bid=Decimal(bid), ask=Decimal(ask), bid_size=100, ask_size=100, flags=flags)


def _gen(pred: Prediction, q: Quote, position: int = 0, **kw: object) -> tuple[object, str]:
    s = SignalSettings(**kw)  # type: ignore[arg-type]
    return explain(pred, q, position, SignalParams(), instrument(), s, decision_seq=7, now_ns=5_000_000_000)


def test_buy_joins_the_bid_with_both_legs_and_risk_sized_quantity() -> None:
    intent, _ = _gen(Prediction(1, 0.8), quote("100.00", "100.01"), risk_per_trade=50.0, stop_loss_ticks=20,
                     take_profit_ticks=30, max_qty=1000)  # fmt: skip
    assert intent is not None
    assert intent.side is Side.BUY and intent.limit_price == Decimal("100.00")
    assert intent.take_profit == Decimal("100.30") and intent.stop_loss == Decimal("99.80")
    assert intent.quantity == 250  # 50 / (20 × 0.01 × 1)
    assert intent.source is IntentSource.STRATEGY and intent.intent_id == "sig-SIM-7"


def test_sell_at_mid_rounds_toward_passive() -> None:
    intent, _ = _gen(Prediction(-1, 0.8), quote("100.00", "100.03"), entry_price="mid")
    assert intent is not None and intent.side is Side.SELL and intent.limit_price == Decimal("100.02")


def test_no_intent_when_it_should_stay_silent() -> None:
    good = quote("100.00", "100.01")
    assert _gen(Prediction(1, 0.5), good)[1] == "low confidence"
    assert _gen(Prediction(0, 0.9), good)[1] == "low confidence"
    assert _gen(Prediction(1, 0.9), quote("100.02", "100.01", QuoteFlag.CROSSED))[1] == "quote not usable"
    assert _gen(Prediction(1, 0.9), quote("100.00", "100.01", QuoteFlag.STALE))[1] == "quote not usable"
    assert _gen(Prediction(1, 0.9), good, position=10)[1] == "already positioned"
    assert _gen(Prediction(1, 0.9), good, position=-10)[1] == "opposite position"
    q = good
    s = SignalSettings(cooldown_s=30)
    args = (Prediction(1, 0.9), q, 0, SignalParams(), instrument(), s)
    assert generate(*args, decision_seq=1, now_ns=10**10, last_entry_ns=10**10 - 10**9) is None
    assert generate(*args, decision_seq=1, now_ns=10**10, last_entry_ns=10**10 - 31 * 10**9) is not None


def test_published_params_override_settings() -> None:
    view = {"version": 3, "per_key": {"SIM": {"stop_loss_ticks": 10, "take_profit_ticks": 15, "min_confidence": 0.9}}}
    params = TradingParams.from_view(view)
    assert params.version == 3
    args = (quote("100.00", "100.01"), 0, params.for_key("SIM"), instrument(), SignalSettings())
    assert generate(Prediction(1, 0.8), *args, decision_seq=1, now_ns=0) is None  # below the tuned bar
    intent = generate(Prediction(1, 0.95), *args, decision_seq=1, now_ns=0)
    assert intent is not None and intent.stop_loss == Decimal("99.90") and intent.take_profit == Decimal("100.15")


def test_garbage_params_fall_back_to_defaults() -> None:
    assert TradingParams.from_view({"version": "x", "per_key": 5}).version == 0
    assert TradingParams.from_view(None).version == 0


ticks = st.sampled_from(["0.01", "0.05", "0.25", "0.5", "1"])


@settings(max_examples=300, deadline=None)
@given(
    tick=ticks,
    bid_ticks=st.integers(1, 200_000),
    spread_ticks=st.integers(1, 5),
    # Prices off the grid too: the generator must still put its own prices on it.
    bid_offset=st.decimals(min_value=0, max_value="0.99", places=3),
    direction=st.sampled_from([-1, 1]),
    conf=st.floats(0.55, 1.0),
    sl=st.integers(1, 100),
    tp=st.integers(1, 100),
    entry=st.sampled_from(["join", "mid"]),
    multiplier=st.sampled_from([1, 50, 100]),
    risk=st.floats(1, 100_000),
)
def test_every_intent_is_on_the_grid_with_both_protective_legs(
    tick: str, bid_ticks: int, spread_ticks: int, bid_offset: Decimal, direction: int, conf: float,
    sl: int, tp: int, entry: str, multiplier: int, risk: float,
) -> None:  # fmt: skip
    t = Decimal(tick)
    bid = bid_ticks * t + bid_offset * t
    q = replace(quote("1", "2"), bid=bid, ask=bid + spread_ticks * t)
    s = SignalSettings(stop_loss_ticks=sl, take_profit_ticks=tp, entry_price=entry, risk_per_trade=risk, max_qty=500)  # type: ignore[arg-type]
    inst = instrument(tick=tick, multiplier=multiplier)
    intent = generate(Prediction(direction, conf), q, 0, SignalParams(), inst, s, decision_seq=1, now_ns=0)
    if intent is None:
        return
    assert intent.take_profit is not None and intent.stop_loss is not None and intent.limit_price is not None
    for price in (intent.limit_price, intent.take_profit, intent.stop_loss):
        assert price % t == 0 and price > 0
    sign = 1 if intent.side is Side.BUY else -1
    assert sign * (intent.take_profit - intent.limit_price) == tp * t
    assert sign * (intent.limit_price - intent.stop_loss) == sl * t
    assert intent.limit_price <= q.ask if sign > 0 else intent.limit_price >= q.bid  # never crosses
    assert 1 <= intent.quantity <= 500
    assert intent.quantity * sl * t * multiplier <= Decimal(str(risk)) + 0  # the stop risks at most the budget
