"""What the engines ask the broker besides orders: its open orders and executions for recovery, and its own
P&L and portfolio figures for reconciliation with Omega's (checklist §8, "PnL calculation accuracy").

Both only use ib_async's async requests and events, on the core loop.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Protocol

from omega_tui.core.bus import EventBus
from omega_tui.core.types import ConnectionChanged, ConnectionState, ExecutionReport, OpenOrderReport

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0


class FiguresSink(Protocol):
    """The order manager's reconciliation entry points."""

    def on_broker_pnl(self, daily: Decimal | None, unrealized: Decimal | None, realized: Decimal | None) -> None: ...

    def on_broker_position(
        self,
        key: str,
        quantity: int,
        avg_cost: Decimal,
        unrealized: Decimal | None,
        realized: Decimal | None,
        market_price: Decimal | None = None,
    ) -> None:
        """`avg_cost` per unit (IB's averageCost / multiplier, commissions folded in as IB does);
        `market_price` is the row's marketPrice, the mark the broker's unrealised P&L is computed at."""
        ...


def _dec(value: Any) -> Decimal | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    if f != f or abs(f) >= 1e300:  # NaN or IB's UNSET
        return None
    return Decimal(str(round(f, 8)))


class BrokerSnapshot:
    """`BrokerSnapshotSource` for the order manager's recovery, over a `BrokerSession`."""

    def __init__(self, session: Any) -> None:
        self._session = session

    async def open_orders(self) -> list[OpenOrderReport]:
        """This client's working orders. Other API clients' orders on the account are reported, not adopted:
        their statuses go to their own connection and only they can cancel them one by one, so managing
        them here would leave orders we can neither follow nor cancel (IB error 10147)."""
        ib, adapter = self._session.ib, self._session.orders
        trades = await ib.reqAllOpenOrdersAsync()
        mine = ib.client.clientId
        ours = [t for t in trades if not t.order.whatIf and t.order.clientId == mine]
        others = [t for t in trades if not t.order.whatIf and t.order.clientId != mine]
        if others:
            ids = ", ".join(f"{t.order.clientId}/{t.order.orderId}" for t in others[:10])
            log.warning(
                "%d working orders on the account belong to other API clients (client/order: %s); Omega does not "
                "manage them, but reqGlobalCancel (halt, flatten) still cancels them",
                len(others),
                ids,
            )
        return [
            adapter.open_order_report(t.order.orderId, t.contract, t.order, str(t.orderStatus.status)) for t in ours
        ]

    async def executions(self) -> list[ExecutionReport]:
        ib, adapter = self._session.ib, self._session.orders
        fills = await ib.reqExecutionsAsync()
        mine = ib.client.clientId
        return [
            adapter.execution_report(f.contract, f.execution)
            for f in fills
            if mine == 0 or f.execution.clientId == mine
        ]


class BrokerFigures:
    """Streams the broker's account P&L (`reqPnL`) and portfolio rows into the order manager."""

    def __init__(self, session: Any, bus: EventBus, sink: FiguresSink) -> None:
        self._session = session
        self._sink = sink
        self._pnl: Any = None
        self._bound = False
        bus.subscribe(ConnectionChanged, self._on_connection)

    def start(self) -> None:
        ib = self._session.ib
        if not self._bound:
            ib.pnlEvent += self._on_pnl
            ib.updatePortfolioEvent += self._on_portfolio
            self._bound = True
        self._subscribe()

    def _subscribe(self) -> None:
        ib = self._session.ib
        accounts = ib.managedAccounts()
        account = self._session.account or (accounts[0] if accounts else "")
        if not account or not ib.isConnected():
            return
        # A reconnect drops IB's side of the subscription; ask again (ib_async keys it by account).
        if self._pnl is not None:
            try:
                ib.cancelPnL(account)
            except Exception:  # not subscribed on this connection
                log.debug("cancelPnL before resubscribe failed", exc_info=True)
        self._pnl = ib.reqPnL(account)
        for item in ib.portfolio(account):
            self._on_portfolio(item)

    def _on_connection(self, event: ConnectionChanged) -> None:
        if event.state is ConnectionState.UP and self._bound:
            self._subscribe()

    def _on_pnl(self, pnl: Any) -> None:
        self._sink.on_broker_pnl(_dec(pnl.dailyPnL), _dec(pnl.unrealizedPnL), _dec(pnl.realizedPnL))

    def _on_portfolio(self, item: Any) -> None:
        con_id = int(item.contract.conId)
        key = self._session.orders.key_of(con_id, "")
        if not key:
            return  # not an instrument Omega knows; the order manager adopts only known keys
        multiplier = Decimal(str(item.contract.multiplier or 1)) if item.contract.multiplier else Decimal(1)
        avg = _dec(item.averageCost) or Decimal(0)
        self._sink.on_broker_position(
            key,
            int(item.position),
            avg / multiplier,
            _dec(item.unrealizedPNL),
            _dec(item.realizedPNL),
            _dec(item.marketPrice),
        )
