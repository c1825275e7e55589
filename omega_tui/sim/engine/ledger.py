"""The simulated account: positions, average cost, realised/unrealised P&L, cash, margin, account values.

Conventions (IB's, where IB has one):
- A position's `avg_cost` is the average fill price × multiplier with commissions folded in (a long pays them
  on top, a short's proceeds shrink by them). portfolioValue's averageCost is the same number.
- Realised P&L uses the average-cost method: a fill that reduces a position realises
  (price × multiplier − avg_cost) × closed quantity (sign flipped for shorts), minus the share of the fill's
  commission for the closed quantity. So the opening commission (inside avg_cost) and the closing one both
  count. A fill that only opens or adds realises nothing (None, sent as UNSET_DOUBLE).
- Cash moves by price × quantity × multiplier plus commission for every security type (futures included), in
  the contract's currency; the position is then valued at mark × multiplier. NetLiquidation is therefore
  cash + Σ marked position values = starting cash + realised + unrealised, whatever the security type.
- Non-USD amounts are converted to the USD base with the fixed FX_TO_USD table (the books do not float).
- Daily P&L is realised + unrealised since the ledger was created (the simulated account starts the day flat).
- Margin: a fixed fraction of the absolute position value (MARGIN table); EquityWithLoanValue = NetLiquidation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from omega_tui.sim.engine.contracts import ContractDB, SimContract
from omega_tui.sim.engine.events import SimCommission, SimExecution

# Fixed conversion into the USD base currency: the account's books do not float with the FX quotes.
FX_TO_USD: dict[str, float] = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}
BASE_CURRENCY = "USD"
# (initial, maintenance) margin as a fraction of |position value|, by security type. Long options are paid
# for in full, so they need none; short options carry their whole value.
MARGIN: dict[str, tuple[float, float]] = {"STK": (0.5, 0.25), "FUT": (0.06, 0.05), "CASH": (0.03, 0.025)}
SHORT_OPTION_MARGIN = (1.0, 1.0)
# Reg T intraday leverage for BuyingPower.
BUYING_POWER_LEVERAGE = 4.0

ACCOUNT_SUMMARY_TAGS = (
    "AccountType",
    "NetLiquidation",
    "TotalCashValue",
    "SettledCash",
    "AccruedCash",
    "BuyingPower",
    "EquityWithLoanValue",
    "PreviousEquityWithLoanValue",
    "GrossPositionValue",
    "RegTEquity",
    "RegTMargin",
    "SMA",
    "InitMarginReq",
    "MaintMarginReq",
    "AvailableFunds",
    "ExcessLiquidity",
    "Cushion",
    "FullInitMarginReq",
    "FullMaintMarginReq",
    "FullAvailableFunds",
    "FullExcessLiquidity",
    "LookAheadNextChange",
    "LookAheadInitMarginReq",
    "LookAheadMaintMarginReq",
    "LookAheadAvailableFunds",
    "LookAheadExcessLiquidity",
    "HighestSeverity",
    "DayTradesRemaining",
    "Leverage",
)


@dataclass(frozen=True, slots=True)
class SimPosition:
    """One position: `avg_cost` follows IB: average price × multiplier, commissions included."""

    account: str
    con_id: int
    quantity: int
    avg_cost: float


@dataclass(frozen=True, slots=True)
class PortfolioRow:
    """Everything updatePortfolio (portfolioValue, msg 7) needs for one contract, in the contract currency."""

    account: str
    con_id: int
    position: int
    market_price: float
    market_value: float
    average_cost: float
    unrealized_pnl: float
    realized_pnl: float


@dataclass(frozen=True, slots=True)
class MarginTotals:
    """Account-wide figures in USD, as margin checks and account values use them."""

    cash: float
    position_value: float
    gross_position_value: float
    net_liquidation: float
    init_margin: float
    maint_margin: float

    @property
    def equity_with_loan(self) -> float:
        return self.net_liquidation

    @property
    def available_funds(self) -> float:
        return self.equity_with_loan - self.init_margin

    @property
    def excess_liquidity(self) -> float:
        return self.equity_with_loan - self.maint_margin


class _Pos:
    """Mutable book of one contract: signed quantity, signed cost basis (avg_cost × quantity), realised P&L."""

    __slots__ = ("commissions", "cost", "quantity", "realized")

    def __init__(self) -> None:
        self.quantity = 0
        self.cost = 0.0
        self.realized = 0.0
        self.commissions = 0.0

    @property
    def avg_cost(self) -> float:
        return self.cost / self.quantity if self.quantity else 0.0


def _fmt(value: float) -> str:
    return f"{value:.2f}"


class Ledger:
    """Positions and cash of one account, updated by fills and marks (see the module docstring for conventions)."""

    def __init__(self, db: ContractDB, account: str = "DU1234567", starting_cash: float = 1_000_000.0) -> None:
        self.db = db
        self.account = account
        self.starting_cash = starting_cash
        self._cash: dict[str, float] = {BASE_CURRENCY: float(starting_cash)}
        self._positions: dict[int, _Pos] = {}
        self._marks: dict[int, float] = {}

    # -- updates -------------------------------------------------------------------------------------------

    def apply_fill(self, execution: SimExecution, commission: SimCommission) -> float | None:
        """Book one execution and its (true) commission; returns the fill's realised P&L or None if it opened.

        Unknown contracts are a bug in the caller (KeyError).
        """
        contract = self._contract(execution.con_id)
        mult = contract.mult
        qty = execution.signed_shares
        fee = commission.commission
        pos = self._positions.setdefault(execution.con_id, _Pos())
        self._cash[contract.currency] = self._cash.get(contract.currency, 0.0) - qty * execution.price * mult - fee
        pos.commissions += fee
        self._marks.setdefault(execution.con_id, execution.price)
        if pos.quantity == 0 or (pos.quantity > 0) == (qty > 0):
            pos.quantity += qty
            pos.cost += qty * execution.price * mult + fee
            return None
        side = 1 if pos.quantity > 0 else -1
        closed = min(abs(qty), abs(pos.quantity))
        avg = pos.avg_cost
        fee_closed = fee * closed / abs(qty)
        realized = side * (execution.price * mult - avg) * closed - fee_closed
        pos.realized += realized
        pos.quantity -= side * closed
        pos.cost = avg * pos.quantity
        rest = abs(qty) - closed
        if rest:
            # the fill flipped the position: the rest opens at this price with its share of the commission
            pos.quantity = -side * rest
            pos.cost = -side * rest * execution.price * mult + (fee - fee_closed)
        return realized

    def mark(self, con_id: int, price: float) -> None:
        """Set the price positions in `con_id` are valued at."""
        self._marks[con_id] = price

    # -- queries -------------------------------------------------------------------------------------------

    def position(self, con_id: int) -> int:
        """Signed quantity held in one contract (0 if none)."""
        pos = self._positions.get(con_id)
        return pos.quantity if pos else 0

    def cash(self, currency: str = BASE_CURRENCY) -> float:
        """Cash balance in one currency (not converted)."""
        return self._cash.get(currency, 0.0)

    def mark_price(self, con_id: int) -> float | None:
        """The last mark of a contract, or None."""
        return self._marks.get(con_id)

    def positions(self) -> list[SimPosition]:
        """Every position held today (quantity 0 once closed, as IB reports them until the next day)."""
        return [
            SimPosition(self.account, con_id, pos.quantity, pos.avg_cost)
            for con_id, pos in sorted(self._positions.items())
        ]

    def portfolio(self) -> list[PortfolioRow]:
        """Rows for updatePortfolio, one per position, in the contract currency."""
        rows = []
        for con_id, pos in sorted(self._positions.items()):
            contract = self._contract(con_id)
            price = self._marks.get(con_id, 0.0)
            value = pos.quantity * price * contract.mult
            rows.append(
                PortfolioRow(
                    account=self.account,
                    con_id=con_id,
                    position=pos.quantity,
                    market_price=price,
                    market_value=value,
                    average_cost=pos.avg_cost,
                    unrealized_pnl=value - pos.cost,
                    realized_pnl=pos.realized,
                )
            )
        return rows

    def totals(self, hypothetical: tuple[int, int, float, float] | None = None) -> MarginTotals:
        """Account totals in USD; `hypothetical` = (con_id, signed qty, price, commission) as if it had filled."""
        cash = sum(amount * self._fx(ccy) for ccy, amount in self._cash.items())
        quantities = {con_id: pos.quantity for con_id, pos in self._positions.items()}
        marks = dict(self._marks)
        if hypothetical is not None:
            con_id, qty, price, fee = hypothetical
            contract = self._contract(con_id)
            cash -= (qty * price * contract.mult + fee) * self._fx(contract.currency)
            quantities[con_id] = quantities.get(con_id, 0) + qty
            marks.setdefault(con_id, price)
        value = gross = init = maint = 0.0
        for con_id, qty in quantities.items():
            if not qty:
                continue
            contract = self._contract(con_id)
            mv = qty * marks.get(con_id, 0.0) * contract.mult * self._fx(contract.currency)
            value += mv
            gross += abs(mv)
            init_rate, maint_rate = self._margin_rates(contract, qty)
            init += abs(mv) * init_rate
            maint += abs(mv) * maint_rate
        return MarginTotals(
            cash=cash,
            position_value=value,
            gross_position_value=gross,
            net_liquidation=cash + value,
            init_margin=init,
            maint_margin=maint,
        )

    def net_liquidation(self) -> float:
        """cash + Σ marked position values, in USD."""
        return self.totals().net_liquidation

    def pnl(self) -> tuple[float, float, float]:
        """(daily, unrealized, realized) P&L of the account in USD."""
        unrealized = realized = 0.0
        for row in self.portfolio():
            fx = self._fx(self._contract(row.con_id).currency)
            unrealized += row.unrealized_pnl * fx
            realized += row.realized_pnl * fx
        return unrealized + realized, unrealized, realized

    def pnl_single(self, con_id: int) -> tuple[int, float, float, float, float]:
        """(position, daily, unrealized, realized, value) for one contract, in the contract currency."""
        for row in self.portfolio():
            if row.con_id == con_id:
                daily = row.unrealized_pnl + row.realized_pnl
                return row.position, daily, row.unrealized_pnl, row.realized_pnl, row.market_value
        return 0, 0.0, 0.0, 0.0, 0.0

    def account_values(self) -> list[tuple[str, str, str]]:
        """(key, value, currency) rows for accountValue (msg 6): USD totals, then per-currency and BASE rows."""
        t = self.totals()
        daily, unrealized, realized = self.pnl()
        rows: list[tuple[str, str, str]] = [
            ("AccountCode", self.account, ""),
            ("AccountType", "INDIVIDUAL", ""),
            ("AccountReady", "true", ""),
        ]
        rows += [(tag, value, BASE_CURRENCY) for tag, value in self._summary_values(t, unrealized, realized)]
        per_currency = self._per_currency()
        for ccy in sorted(per_currency):
            cash, unreal, real, stock_value = per_currency[ccy]
            rows += [
                ("Currency", ccy, ccy),
                ("ExchangeRate", f"{self._fx(ccy):.4f}", ccy),
                ("CashBalance", _fmt(cash), ccy),
                ("TotalCashBalance", _fmt(cash), ccy),
                ("UnrealizedPnL", _fmt(unreal), ccy),
                ("RealizedPnL", _fmt(real), ccy),
                ("StockMarketValue", _fmt(stock_value), ccy),
            ]
        rows += [
            ("Currency", "BASE", "BASE"),
            ("ExchangeRate", "1.00", "BASE"),
            ("CashBalance", _fmt(t.cash), "BASE"),
            ("TotalCashBalance", _fmt(t.cash), "BASE"),
            ("UnrealizedPnL", _fmt(unrealized), "BASE"),
            ("RealizedPnL", _fmt(realized), "BASE"),
        ]
        del daily
        return rows

    def account_summary(self, tags: Iterable[str] | str = "") -> list[tuple[str, str, str]]:
        """(tag, value, currency) rows for the requested account-summary tags (all known tags if empty).

        `$LEDGER`, `$LEDGER:ALL` and `$LEDGER:<CCY>` add CashBalance/NetLiquidationByCurrency-style rows.
        """
        wanted = [x.strip() for x in tags.split(",")] if isinstance(tags, str) else [x.strip() for x in tags]
        wanted = [x for x in wanted if x] or list(ACCOUNT_SUMMARY_TAGS)
        t = self.totals()
        _daily, unrealized, realized = self.pnl()
        values = dict(self._summary_values(t, unrealized, realized))
        rows: list[tuple[str, str, str]] = []
        for tag in wanted:
            if tag == "AccountType":
                rows.append((tag, "INDIVIDUAL", ""))
            elif tag in ("DayTradesRemaining", "HighestSeverity", "LookAheadNextChange"):
                rows.append((tag, {"DayTradesRemaining": "-1"}.get(tag, "0"), ""))
            elif tag == "Cushion" or tag == "Leverage":
                rows.append((tag, values[tag], ""))
            elif tag in values:
                rows.append((tag, values[tag], BASE_CURRENCY))
            elif tag.startswith("$LEDGER"):
                rows += self._ledger_rows(tag, t, unrealized, realized)
        return rows

    # -- internals -----------------------------------------------------------------------------------------

    def _contract(self, con_id: int) -> SimContract:
        contract = self.db.get(con_id)
        if contract is None:
            raise KeyError(f"unknown conId {con_id}")
        return contract

    @staticmethod
    def _fx(currency: str) -> float:
        return FX_TO_USD.get(currency, 1.0)

    @staticmethod
    def _margin_rates(contract: SimContract, qty: int) -> tuple[float, float]:
        if contract.sec_type == "OPT":
            return SHORT_OPTION_MARGIN if qty < 0 else (0.0, 0.0)
        return MARGIN.get(contract.sec_type, (1.0, 1.0))

    def _summary_values(self, t: MarginTotals, unrealized: float, realized: float) -> list[tuple[str, str]]:
        cushion = t.excess_liquidity / t.net_liquidation if t.net_liquidation else 0.0
        leverage = t.gross_position_value / t.net_liquidation if t.net_liquidation else 0.0
        return [
            ("NetLiquidation", _fmt(t.net_liquidation)),
            ("TotalCashValue", _fmt(t.cash)),
            ("SettledCash", _fmt(t.cash)),
            ("AccruedCash", "0.00"),
            ("BuyingPower", _fmt(max(0.0, t.available_funds) * BUYING_POWER_LEVERAGE)),
            ("EquityWithLoanValue", _fmt(t.equity_with_loan)),
            ("PreviousEquityWithLoanValue", _fmt(self.starting_cash)),
            ("GrossPositionValue", _fmt(t.gross_position_value)),
            ("RegTEquity", _fmt(t.equity_with_loan)),
            ("RegTMargin", _fmt(t.init_margin)),
            ("SMA", _fmt(max(0.0, t.available_funds))),
            ("InitMarginReq", _fmt(t.init_margin)),
            ("MaintMarginReq", _fmt(t.maint_margin)),
            ("AvailableFunds", _fmt(t.available_funds)),
            ("ExcessLiquidity", _fmt(t.excess_liquidity)),
            ("Cushion", f"{cushion:.6f}"),
            ("FullInitMarginReq", _fmt(t.init_margin)),
            ("FullMaintMarginReq", _fmt(t.maint_margin)),
            ("FullAvailableFunds", _fmt(t.available_funds)),
            ("FullExcessLiquidity", _fmt(t.excess_liquidity)),
            ("LookAheadInitMarginReq", _fmt(t.init_margin)),
            ("LookAheadMaintMarginReq", _fmt(t.maint_margin)),
            ("LookAheadAvailableFunds", _fmt(t.available_funds)),
            ("LookAheadExcessLiquidity", _fmt(t.excess_liquidity)),
            ("Leverage", f"{leverage:.4f}"),
            ("UnrealizedPnL", _fmt(unrealized)),
            ("RealizedPnL", _fmt(realized)),
        ]

    def _per_currency(self) -> dict[str, tuple[float, float, float, float]]:
        """currency → (cash, unrealised, realised, stock market value), not converted."""
        out: dict[str, list[float]] = {ccy: [amount, 0.0, 0.0, 0.0] for ccy, amount in self._cash.items()}
        for row in self.portfolio():
            contract = self._contract(row.con_id)
            acc = out.setdefault(contract.currency, [0.0, 0.0, 0.0, 0.0])
            acc[1] += row.unrealized_pnl
            acc[2] += row.realized_pnl
            if contract.sec_type == "STK":
                acc[3] += row.market_value
        return {ccy: (v[0], v[1], v[2], v[3]) for ccy, v in out.items()}

    def _ledger_rows(self, tag: str, t: MarginTotals, unrealized: float, realized: float) -> list[tuple[str, str, str]]:
        currencies: list[str]
        per_currency = self._per_currency()
        if tag == "$LEDGER":
            currencies = ["BASE"]
        elif tag == "$LEDGER:ALL":
            currencies = ["BASE", *sorted(per_currency)]
        else:
            currencies = [tag.split(":", 1)[1].upper()]
        rows: list[tuple[str, str, str]] = []
        for ccy in currencies:
            if ccy == "BASE":
                cash, unreal, real, nlv = t.cash, unrealized, realized, t.net_liquidation
            else:
                cash, unreal, real, stock_value = per_currency.get(ccy, (0.0, 0.0, 0.0, 0.0))
                nlv = cash + sum(r.market_value for r in self.portfolio() if self._contract(r.con_id).currency == ccy)
                del stock_value
            rows += [
                ("CashBalance", _fmt(cash), ccy),
                ("TotalCashBalance", _fmt(cash), ccy),
                ("NetLiquidationByCurrency", _fmt(nlv), ccy),
                ("UnrealizedPnL", _fmt(unreal), ccy),
                ("RealizedPnL", _fmt(real), ccy),
                ("ExchangeRate", f"{self._fx(ccy) if ccy != 'BASE' else 1.0:.4f}", ccy),
            ]
        return rows
