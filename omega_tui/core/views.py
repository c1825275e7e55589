"""The shapes of the hot state's sections: what engines publish and what the UI and `status` read.

Plain dicts (TypedDicts), so they pickle into diskcache and serialise to JSON for `status --json` without
custom code. Money is a `str` of a Decimal (exact), quantities are ints, times ISO-8601 UTC strings or
monotonic ns. Producers publish a whole new value with `HotState.set(section, value)`; readers never
mutate what they read.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class ConnectionView(TypedDict):
    state: str  # ConnectionState value
    detail: str
    host: str
    port: int
    mode: str  # "SIM", "PAPER", "LIVE"
    account: str
    since_utc: str
    reconnects: int
    server_version: int


class ComponentView(TypedDict):
    state: str  # ComponentState value
    detail: str


class StartupReportRow(TypedDict):
    instrument: str
    con_id: int
    min_tick: str
    exchange: str
    permission_ok: bool
    watch_only: bool
    detail: str


class TransitionView(TypedDict):
    state: str  # OrderState value
    ib_status: str
    at_utc: str
    at_ns: int
    since_prev_us: int  # latency from the previous transition


class OrderView(TypedDict):
    order_id: int
    perm_id: int
    parent_id: int
    key: str
    order_ref: str
    role: str  # "entry", "take_profit", "stop_loss", "slice", "flatten", "manual", "adopted"
    side: str
    order_type: str
    quantity: int
    filled: int
    remaining: int
    limit_price: str | None
    aux_price: str | None
    avg_fill_price: str | None
    state: str  # OrderState value
    ib_status: str
    transitions: list[TransitionView]
    anomalies: list[str]


class PositionView(TypedDict):
    key: str
    quantity: int
    avg_cost: str
    mark: str | None
    unrealized: str
    realized: str
    commissions: str
    broker_quantity: int | None
    broker_unrealized: str | None
    broker_realized: str | None
    agrees: bool  # Omega's figures within one cent of the broker's


class PnLView(TypedDict):
    realized: str
    unrealized: str
    commissions: str
    total: str  # realized + unrealized - commissions
    broker_daily: str | None
    agrees: bool


class LimitView(TypedDict):
    name: str  # "daily_loss", "position_qty:AAPL", "order_rate_1s", "open_orders", …
    used: float
    limit: float
    level: str  # "ok", "warn", "breach"


class RiskView(TypedDict):
    trading_state: str  # TradingState value
    reason: str
    source: str
    since_utc: str
    limits: list[LimitView]
    denied_today: int
    orders_today: int
    trading_day: str


class ModelMetricsView(TypedDict):
    name: str
    samples: int
    latency_p50_us: float
    latency_p99_us: float
    bound_us: float  # the conformal upper quantile used for feasibility
    selection_share: float
    deadline_satisfaction: float
    raw_accuracy: float
    timely_accuracy: float
    expected_accuracy: float


class SchedulerView(TypedDict):
    decisions: int
    abstain_rate: float
    deadline_ms: float
    models: list[ModelMetricsView]
    tick_to_decision_p50_us: float
    tick_to_decision_p99_us: float
    params_version: int
    # Deadline adaptation (optional: absent from publishers that predate it).
    deadline_satisfaction: NotRequired[float]  # decisions that met the deadline (abstentions do), all models
    headroom_us: NotRequired[float]  # room kept free below the budget now, adapted to observed misses
    miss_target: NotRequired[float]  # the long-run miss rate the headroom adapts to
    dispatch_allowance_us: NotRequired[float]  # set aside from each budget for the choice and the dispatch


class EventLine(TypedDict):
    at_utc: str
    level: str  # "info", "warn", "error"
    kind: str  # "order", "risk", "api", "conn", "system"
    text: str


class LatencyView(TypedDict):
    """Order callback latencies (checklist §8), in microseconds."""

    submit_to_ack_p50_us: float
    submit_to_ack_p99_us: float
    submit_to_fill_p50_us: float
    submit_to_fill_p99_us: float
    fill_to_commission_p50_us: float
    fill_to_commission_p99_us: float
    samples: int
