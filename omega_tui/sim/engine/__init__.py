"""The simulated gateway's engine: contracts, market, matching, ledger, history. No sockets, no wire format.

The wire layer owns one of each object per gateway and turns the engine's events into TWS messages:

    clock = SimClock()                       # or SimClock.realtime(speed)
    db = ContractDB(seed)
    market = Market(db, clock, seed)
    ledger = Ledger(db)
    exchange = Exchange(db, market, ledger, clock, seed)
    history = HistoryGenerator(db, market, seed)

    for con_id in market.step(clock.now()):  # the tick loop
        send_quote(market.quote(con_id))
        send(exchange.on_market(con_id))
"""

from __future__ import annotations

from omega_tui.sim.engine.clock import DEFAULT_START, SimClock
from omega_tui.sim.engine.commission import CommissionModel
from omega_tui.sim.engine.contracts import ContractDB, SimContract
from omega_tui.sim.engine.events import (
    CANCELLED,
    FILLED,
    INACTIVE,
    PENDING_SUBMIT,
    PRE_SUBMITTED,
    SUBMITTED,
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
from omega_tui.sim.engine.history import HistoryError, HistoryGenerator, SimBar
from omega_tui.sim.engine.ledger import FX_TO_USD, Ledger, PortfolioRow, SimPosition
from omega_tui.sim.engine.market import Market, SimQuote
from omega_tui.sim.engine.matching import Exchange

__all__ = [
    "CANCELLED",
    "DEFAULT_START",
    "FILLED",
    "FX_TO_USD",
    "INACTIVE",
    "PENDING_SUBMIT",
    "PRE_SUBMITTED",
    "SUBMITTED",
    "AccountChanged",
    "CancelRejected",
    "CommissionModel",
    "ContractDB",
    "Exchange",
    "ExecutionCorrected",
    "HistoryError",
    "HistoryGenerator",
    "Ledger",
    "Market",
    "OrderAccepted",
    "OrderCancelled",
    "OrderFilled",
    "OrderRejected",
    "OrderStatusChanged",
    "PortfolioRow",
    "PositionChanged",
    "SimBar",
    "SimClock",
    "SimCommission",
    "SimContract",
    "SimEvent",
    "SimExecution",
    "SimOrder",
    "SimPosition",
    "SimQuote",
    "WhatIfResult",
]
