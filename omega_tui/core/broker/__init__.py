"""The broker layer: the only package that imports ib_async (DESIGN §4).

- `BrokerSession`: connection, startup verification, market data subscriptions, reconnects, bar warm-up.
- `IbOrderAdapter`: the `OrderPort` over ib_async, delivering normalized order reports to an `OrderEvents`.
- `verify_instruments` / `StartupVerificationError`: fail-fast contract and permission checks (exit code 3).
- `TickerFeed`: ib_async tickers → the normalizer.
"""

from __future__ import annotations

from omega_tui.core.broker.market_data import TickerFeed
from omega_tui.core.broker.orders_adapter import IbOrderAdapter
from omega_tui.core.broker.session import BrokerSession
from omega_tui.core.broker.verify import StartupVerificationError, contract_for, verify_instruments

__all__ = [
    "BrokerSession",
    "IbOrderAdapter",
    "StartupVerificationError",
    "TickerFeed",
    "contract_for",
    "verify_instruments",
]
