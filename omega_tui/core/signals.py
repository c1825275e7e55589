"""The signal generator: a pure function from a prediction and the state around it to an entry intent.

`generate` has no side effects and reads no clock: the same (prediction, quote, position, parameters,
instrument, settings, decision identity) always gives the same `OrderIntent` or None, which is what makes
record-and-replay exact. Prices are Decimal on the instrument's tick grid; every intent carries both
protective legs (absolute take-profit and stop-loss prices). The caller submits the intent to the risk engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from omega_tui.config import SignalSettings
from omega_tui.core.models.base import Prediction
from omega_tui.core.types import IntentSource, OrderIntent, OrderType, Quote, QuoteFlag, Side, VerifiedInstrument

_UNUSABLE = QuoteFlag.CROSSED | QuoteFlag.LOCKED | QuoteFlag.STALE | QuoteFlag.DELAYED | QuoteFlag.REJECTED_PRICE


@dataclass(frozen=True, slots=True)
class SignalParams:
    """Tunable parameters of one instrument's signals; None = use the `[signals]` setting."""

    min_confidence: float | None = None
    stop_loss_ticks: int | None = None
    take_profit_ticks: int | None = None


@dataclass(frozen=True, slots=True)
class TradingParams:
    """One published version of the background-tuned parameters (the hot state's `params` section).

    Version 0 is the defaults: no AI task has published yet (or ever will), and trading runs on settings.
    """

    version: int = 0
    signals: Mapping[str, SignalParams] = field(default_factory=dict)  # by instrument key
    regime_thresholds: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # by instrument key

    def for_key(self, key: str) -> SignalParams:
        return self.signals.get(key, _DEFAULT_SIGNAL_PARAMS)

    @classmethod
    def from_view(cls, view: Mapping[str, Any] | None) -> TradingParams:
        """Parse the `params` section; anything malformed yields the defaults (trading goes on)."""
        if not view:
            return DEFAULT_PARAMS
        try:
            signals: dict[str, SignalParams] = {}
            thresholds: dict[str, tuple[float, float]] = {}
            for key, p in dict(view.get("per_key", {})).items():
                signals[str(key)] = SignalParams(
                    _opt_float(p.get("min_confidence")),
                    _opt_int(p.get("stop_loss_ticks")),
                    _opt_int(p.get("take_profit_ticks")),
                )
                th = p.get("regime_thresholds")
                if th is not None:
                    thresholds[str(key)] = (float(th[0]), float(th[1]))
            return cls(int(view["version"]), signals, thresholds)
        except (KeyError, TypeError, ValueError, IndexError):
            return DEFAULT_PARAMS


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


_DEFAULT_SIGNAL_PARAMS = SignalParams()
DEFAULT_PARAMS = TradingParams()


def floor_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_FLOOR) * tick


def ceil_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    return (price / tick).to_integral_value(ROUND_CEILING) * tick


def intent_id(key: str, decision_seq: int) -> str:
    """Deterministic intent id: the same decision of a replay gets the same id."""
    return f"sig-{key}-{decision_seq}"


def explain(
    prediction: Prediction,
    quote: Quote,
    position_qty: int,
    params: SignalParams,
    instrument: VerifiedInstrument,
    settings: SignalSettings,
    *,
    decision_seq: int,
    now_ns: int,
    last_entry_ns: int | None = None,
    model: str = "",
) -> tuple[OrderIntent | None, str]:
    """`generate` with the reason: ("", intent) when one is made, else None and why not."""
    min_conf = settings.min_confidence if params.min_confidence is None else params.min_confidence
    if prediction.direction == 0 or prediction.confidence < min_conf:
        return None, "low confidence"
    if quote.bid is None or quote.ask is None or quote.flags & _UNUSABLE or quote.bid >= quote.ask:
        return None, "quote not usable"
    side = Side.BUY if prediction.direction > 0 else Side.SELL
    # An entry is only made flat: adding to a position is "already positioned", and an opposite entry would
    # be a reversal whose bracket would not protect the net position.
    if position_qty != 0:
        return None, "already positioned" if (position_qty > 0) == (side is Side.BUY) else "opposite position"
    if last_entry_ns is not None and now_ns - last_entry_ns < int(settings.cooldown_s * 1e9):
        return None, "cooldown"
    tick = instrument.min_tick
    if tick <= 0:
        return None, "instrument has no tick size"
    if settings.entry_price == "join":
        limit = floor_to_tick(quote.bid, tick) if side is Side.BUY else ceil_to_tick(quote.ask, tick)
    else:  # the mid, rounded away from the other side so the order rests rather than crosses
        mid = (quote.bid + quote.ask) / 2
        limit = floor_to_tick(mid, tick) if side is Side.BUY else ceil_to_tick(mid, tick)
    sl_ticks = settings.stop_loss_ticks if params.stop_loss_ticks is None else params.stop_loss_ticks
    tp_ticks = settings.take_profit_ticks if params.take_profit_ticks is None else params.take_profit_ticks
    if sl_ticks <= 0 or tp_ticks <= 0:
        return None, "protective distance not positive"
    stop_distance = tick * sl_ticks
    per_unit_risk = stop_distance * max(instrument.multiplier, 1)
    qty = min(int(Decimal(str(settings.risk_per_trade)) / per_unit_risk), settings.max_qty)
    if qty < 1:
        return None, "risk budget below one unit"
    sign = side.sign
    take_profit = limit + sign * tick * tp_ticks
    stop_loss = limit - sign * stop_distance
    if min(limit, stop_loss, take_profit) <= 0:
        return None, "price too low for the protective distances"
    intent = OrderIntent(
        intent_id=intent_id(instrument.key, decision_seq),
        key=instrument.key,
        side=side,
        quantity=qty,
        limit_price=limit,
        take_profit=take_profit,
        stop_loss=stop_loss,
        source=IntentSource.STRATEGY,
        created_ns=now_ns,
        order_type=OrderType.LMT,
        model=model,
        reason=f"{model} dir={prediction.direction:+d} conf={prediction.confidence:.3f}",
    )
    return intent, ""


def generate(
    prediction: Prediction,
    quote: Quote,
    position_qty: int,
    params: SignalParams,
    instrument: VerifiedInstrument,
    settings: SignalSettings,
    *,
    decision_seq: int,
    now_ns: int,
    last_entry_ns: int | None = None,
    model: str = "",
) -> OrderIntent | None:
    """An entry intent with both protective legs, or None (low confidence, unusable quote, positioned, cooldown).

    Quantity = risk_per_trade / (stop distance × multiplier), capped by max_qty. `now_ns` becomes the
    intent's `created_ns` and is compared with `last_entry_ns` for the cooldown.
    """
    return explain(
        prediction,
        quote,
        position_qty,
        params,
        instrument,
        settings,
        decision_seq=decision_seq,
        now_ns=now_ns,
        last_entry_ns=last_entry_ns,
        model=model,
    )[0]
