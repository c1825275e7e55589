"""The simulated gateway's contract database: stocks (US and one European), futures, options and FX."""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")

# IB's order-type lists are long; these are the parts the simulator cares about plus a realistic tail.
_STK_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AON,AVGCOST,BASKET,BENCHPX,COND,CONDORDER,DARKONLY,DARKPOLL,DAY,"
    "DEACT,DEACTDIS,DEACTEOD,DIS,GAT,GTC,GTD,GTT,HID,IBKRATS,ICE,IMB,IOC,LIT,LMT,LOC,MIDPX,MIT,MKT,MOC,MTL,"
    "NGCOMB,NODARK,NONALGO,OCA,OPG,OPGREROUT,PEGBENCH,PEGMID,POSTATS,POSTONLY,PREOPGRTH,REL,RPI,RTH,SCALE,"
    "SCALEODD,SCALERST,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,SWEEP,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF"
)
_FUT_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,BENCHPX,COND,CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,"
    "GAT,GTC,GTD,GTT,HID,ICE,IOC,LIT,LMT,LTH,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,SCALE,SCALERST,SNAPMID,SNAPMKT,"
    "SNAPREL,STP,STPLMT,TRAIL,TRAILLIT,TRAILLMT,TRAILMIT,WHATIF"
)
_OPT_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,COND,CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,DIS,GAT,GTC,"
    "GTD,GTT,HID,ICE,IOC,LIT,LMT,MIT,MKT,MTL,NGCOMB,NONALGO,OCA,OPENCLOSE,PEGMIDVOL,PEGMKTVOL,PEGPRMVOL,"
    "PEGSRFVOL,POSTONLY,REL,RELPCTOFS,RELSTK,SCALE,SCALERST,SNAPMID,SNAPMKT,SNAPREL,STP,STPLMT,TRAIL,"
    "TRAILLIT,TRAILLMT,TRAILMIT,VOLAT,WHATIF"
)
_CASH_ORDER_TYPES = (
    "ACTIVETIM,AD,ADJUST,ALERT,ALGO,ALLOC,AVGCOST,BASKET,CASHQTY,COND,CONDORDER,DAY,DEACT,DEACTDIS,DEACTEOD,"
    "GAT,GTC,GTD,GTT,IOC,LIT,LMT,MIT,MKT,NONALGO,OCA,REL,RELPCTOFS,SCALE,SCALERST,STP,STPLMT,TRAIL,TRAILLIT,"
    "TRAILLMT,TRAILMIT,WHATIF"
)
_US_STK_EXCHANGES = (
    "SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,NASDAQ,DRCTEDGE,BEX,BATS,EDGEA,BYX,IEX,LTSE,MEMX,PEARL,PSX,TPLUS1"
)
_US_STK_VENUES = frozenset(_US_STK_EXCHANGES.split(",")) - {"SMART"}


@dataclass(frozen=True, slots=True)
class SimContract:
    """One tradable instrument as the gateway knows it: everything contractData and the matcher need.

    `strike`/`right`/`multiplier`/`last_trade_date` are empty/zero for stocks; `tradable=False` marks a
    contract the simulated account has no permission for (orders and what-ifs on it are rejected).
    """

    con_id: int
    symbol: str
    sec_type: str  # STK / FUT / OPT / CASH
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    last_trade_date: str  # YYYYMMDD; "" for STK and CASH
    strike: float
    right: str  # "C" / "P" / ""
    multiplier: str  # "" for STK and CASH, as IB sends it
    min_tick: float
    long_name: str
    industry: str
    category: str
    subcategory: str
    time_zone_id: str
    trading_hours: str
    liquid_hours: str
    valid_exchanges: str
    order_types: str
    market_rule_ids: str
    stock_type: str
    min_size: float
    size_increment: float
    tradable: bool
    start_price: float
    annual_vol: float
    market_name: str = ""
    contract_month: str = ""
    under_con_id: int = 0
    under_symbol: str = ""
    under_sec_type: str = ""

    @property
    def mult(self) -> float:
        """The numeric multiplier (1 when IB sends none)."""
        return float(self.multiplier) if self.multiplier else 1.0

    def round_to_tick(self, price: float) -> float:
        """`price` moved to the nearest point of this contract's tick grid."""
        return round(round(price / self.min_tick) * self.min_tick, 10)

    def on_tick_grid(self, price: float) -> bool:
        """True when `price` is a whole number of minimum ticks (within float noise)."""
        ticks = price / self.min_tick
        return abs(ticks - round(ticks)) < 1e-6


def _session_hours(today: dt.date, tz: ZoneInfo, open_hm: str, close_hm: str, overnight: bool, days: int = 6) -> str:
    """IB's tradingHours string ("YYYYMMDD:HHMM-YYYYMMDD:HHMM;…;YYYYMMDD:CLOSED") for a few days from `today`."""
    del tz  # the hours are expressed in the contract's own time zone, which IB names separately
    parts: list[str] = []
    for offset in range(days):
        day = today + dt.timedelta(days=offset)
        stamp = day.strftime("%Y%m%d")
        if day.weekday() >= 5:
            parts.append(f"{stamp}:CLOSED")
            continue
        start_day = (day - dt.timedelta(days=1)) if overnight else day
        if overnight and start_day.weekday() == 5:
            # Sunday-evening open for the Monday session (skip Saturday)
            start_day = start_day + dt.timedelta(days=1)
        parts.append(f"{start_day.strftime('%Y%m%d')}:{open_hm}-{stamp}:{close_hm}")
    return ";".join(parts)


def _black_scholes(spot: float, strike: float, years: float, vol: float, right: str, rate: float = 0.04) -> float:
    """European option value; good enough to seed a plausible option quote."""
    if years <= 0:
        return max(0.0, spot - strike) if right == "C" else max(0.0, strike - spot)
    d1 = (math.log(spot / strike) + (rate + vol * vol / 2) * years) / (vol * math.sqrt(years))
    d2 = d1 - vol * math.sqrt(years)

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    if right == "C":
        return spot * cdf(d1) - strike * math.exp(-rate * years) * cdf(d2)
    return strike * math.exp(-rate * years) * cdf(-d2) - spot * cdf(-d1)


def _us_stock(
    con_id: int,
    symbol: str,
    primary: str,
    name: str,
    industry: str,
    category: str,
    subcategory: str,
    price: float,
    vol: float,
    trading_hours: str,
    liquid_hours: str,
    stock_type: str = "COMMON",
) -> SimContract:
    """A US stock routed through SMART, as IB describes one (a cent tick, market rule 26 on every venue)."""
    return SimContract(
        con_id=con_id,
        symbol=symbol,
        sec_type="STK",
        exchange="SMART",
        primary_exchange=primary,
        currency="USD",
        local_symbol=symbol,
        trading_class="NMS" if primary == "NASDAQ" else symbol,
        last_trade_date="",
        strike=0.0,
        right="",
        multiplier="",
        min_tick=0.01,
        long_name=name,
        industry=industry,
        category=category,
        subcategory=subcategory,
        time_zone_id="US/Eastern",
        trading_hours=trading_hours,
        liquid_hours=liquid_hours,
        valid_exchanges=_US_STK_EXCHANGES,
        order_types=_STK_ORDER_TYPES,
        market_rule_ids=",".join(["26"] * 20),
        stock_type=stock_type,
        min_size=1.0,
        size_increment=1.0,
        tradable=True,
        start_price=price,
        annual_vol=vol,
        market_name="NMS" if primary == "NASDAQ" else symbol,
    )


EXTRA_STOCK_CON_ID_BASE = 900_000_000
"""Synthetic stocks take conIds EXTRA_STOCK_CON_ID_BASE + 1, + 2, … (no fixed contract uses that range)."""
MAX_EXTRA_STOCKS = 10_000

_SECTORS = (
    ("Technology", "Software", "Applications Software"),
    ("Technology", "Semiconductors", "Electronic Components-Semicon"),
    ("Financial", "Banks", "Super-Regional Banks-US"),
    ("Financial", "Insurance", "Multi-line Insurance"),
    ("Consumer, Non-cyclical", "Pharmaceuticals", "Medical-Drugs"),
    ("Consumer, Non-cyclical", "Food", "Food-Misc/Diversified"),
    ("Consumer, Cyclical", "Retail", "Retail-Discount"),
    ("Industrial", "Aerospace/Defense", "Aerospace/Defense-Equip"),
    ("Energy", "Oil&Gas", "Oil Comp-Integrated"),
    ("Utilities", "Electric", "Electric-Integrated"),
    ("Communications", "Internet", "E-Commerce/Services"),
    ("Basic Materials", "Chemicals", "Chemicals-Diversified"),
)
_NAME_SUFFIXES = ("INC", "CORP", "HOLDINGS INC", "GROUP INC", "CO", "TECHNOLOGIES INC")


def synthetic_stocks(
    seed: int, count: int, today: dt.date, taken: set[str] | frozenset[str] = frozenset()
) -> list[SimContract]:
    """`count` made-up US common stocks for load tests, the same for the same seed.

    Each is like the fixed US stocks (SMART-routed, a cent tick, tradable, extended and regular hours):
    a unique 4-letter symbol not in `taken`, a log-uniform start price between $5 and $500 on the tick grid,
    an annual volatility between 15% and 60%, NASDAQ or NYSE as primary, and a conId from the reserved range.
    """
    rng = random.Random(f"omega-sim-extra-stocks:{seed}")
    us_rth = _session_hours(today, NEW_YORK, "0930", "1600", overnight=False)
    us_ext = _session_hours(today, NEW_YORK, "0400", "2000", overnight=False)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    used = set(taken)
    out: list[SimContract] = []
    for i in range(1, count + 1):
        symbol = "".join(rng.choice(letters) for _ in range(4))
        while symbol in used:
            symbol = "".join(rng.choice(letters) for _ in range(4))
        used.add(symbol)
        industry, category, subcategory = rng.choice(_SECTORS)
        price = round(math.exp(rng.uniform(math.log(5.0), math.log(500.0))), 2)
        out.append(
            _us_stock(
                EXTRA_STOCK_CON_ID_BASE + i,
                symbol,
                rng.choice(("NASDAQ", "NYSE")),
                f"{symbol} {rng.choice(_NAME_SUFFIXES)}",
                industry,
                category,
                subcategory,
                price,
                round(rng.uniform(0.15, 0.60), 3),
                us_ext,
                us_rth,
            )
        )
    return out


class ContractDB:
    """A seeded, fixed set of contracts with IB-like matching; the seed nudges start prices only.

    `today` (YYYYMMDD) decides which futures/options have expired; it defaults to the sim's fixed start day.
    `extra_stocks` adds that many synthetic US stocks (`synthetic_stocks`) after the fixed set, which they
    leave unchanged.
    """

    def __init__(self, seed: int = 0, today: str = "20261125", extra_stocks: int = 0) -> None:
        if not 0 <= extra_stocks <= MAX_EXTRA_STOCKS:
            raise ValueError(f"extra_stocks must be between 0 and {MAX_EXTRA_STOCKS}, not {extra_stocks}")
        self.seed = seed
        self.today = today
        self.extra_stocks = extra_stocks
        self._rng = random.Random(seed * 7919 + 17)
        self._by_id: dict[int, SimContract] = {}
        day = dt.date(int(today[:4]), int(today[4:6]), int(today[6:8]))
        for contract in self._build(day):
            nudged = contract.round_to_tick(contract.start_price * (1 + self._rng.uniform(-0.02, 0.02)))
            self._by_id[contract.con_id] = replace(contract, start_price=max(nudged, contract.min_tick))
        # After the fixed set and from their own generator: the fixed contracts are the same with or without them.
        taken = {c.symbol for c in self._by_id.values()}
        for contract in synthetic_stocks(seed, extra_stocks, day, taken):
            self._by_id[contract.con_id] = contract

    # -- queries -------------------------------------------------------------------------------------------

    def get(self, con_id: int) -> SimContract | None:
        """The contract with this conId, or None."""
        return self._by_id.get(con_id)

    def all(self) -> list[SimContract]:
        """Every contract, expired ones included, in conId order."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def is_expired(self, contract: SimContract) -> bool:
        """True when the contract's last trade date is before the database's `today`."""
        return bool(contract.last_trade_date) and contract.last_trade_date[:8] < self.today

    def lookup(
        self,
        symbol: str = "",
        sec_type: str = "",
        exchange: str = "",
        currency: str = "",
        last_trade_date: str = "",
        strike: float = 0.0,
        right: str = "",
        multiplier: str = "",
        con_id: int = 0,
        primary_exchange: str = "",
        local_symbol: str = "",
        trading_class: str = "",
        include_expired: bool = False,
    ) -> list[SimContract]:
        """Contracts matching a (partial) IB contract: empty fields are wildcards; 0 or 1 result is unique.

        A conId alone identifies a contract; exchange SMART matches every contract routable through SMART;
        a last trade date may be a month ("202612") or a day; rights accept C/CALL/P/PUT. Several results
        mean the request is ambiguous (IB returns them all); none means IB's error 200.
        """
        want_right = {"CALL": "C", "PUT": "P"}.get(right.upper(), right.upper())
        results: list[SimContract] = []
        for contract in self.all():
            if con_id and contract.con_id != con_id:
                continue
            if not include_expired and self.is_expired(contract):
                continue
            if symbol and contract.symbol.upper() != symbol.upper():
                continue
            if sec_type and contract.sec_type != sec_type.upper():
                continue
            if currency and contract.currency != currency.upper():
                continue
            if exchange and not self._exchange_matches(contract, exchange.upper()):
                continue
            if primary_exchange and contract.primary_exchange != primary_exchange.upper():
                continue
            if local_symbol and contract.local_symbol.upper() != local_symbol.upper():
                continue
            if trading_class and contract.trading_class.upper() != trading_class.upper():
                continue
            if last_trade_date and not contract.last_trade_date.startswith(last_trade_date[:8]):
                continue
            if strike and abs(contract.strike - strike) > 1e-9:
                continue
            if want_right and contract.right != want_right:
                continue
            if multiplier and contract.multiplier and float(multiplier) != contract.mult:
                continue
            results.append(contract)
        return results

    @staticmethod
    def _exchange_matches(contract: SimContract, exchange: str) -> bool:
        if exchange == contract.exchange or exchange == contract.primary_exchange:
            return True
        valid = contract.valid_exchanges.split(",")
        if exchange == "SMART":
            return "SMART" in valid
        if contract.sec_type == "STK" and exchange in _US_STK_VENUES and contract.currency == "USD":
            return True
        return exchange in valid

    # -- the data ------------------------------------------------------------------------------------------

    @staticmethod
    def _build(today: dt.date) -> list[SimContract]:
        us_rth = _session_hours(today, NEW_YORK, "0930", "1600", overnight=False)
        us_ext = _session_hours(today, NEW_YORK, "0400", "2000", overnight=False)
        cme_hours = _session_hours(today, CHICAGO, "1700", "1600", overnight=True)
        cme_liquid = _session_hours(today, CHICAGO, "0830", "1500", overnight=False)
        fx_hours = _session_hours(today, NEW_YORK, "1715", "1700", overnight=True)
        xetra = _session_hours(today, BERLIN, "0800", "2200", overnight=False)
        xetra_liquid = _session_hours(today, BERLIN, "0900", "1730", overnight=False)

        def stock(
            con_id: int,
            symbol: str,
            primary: str,
            name: str,
            industry: str,
            category: str,
            subcategory: str,
            price: float,
            vol: float,
            stock_type: str = "COMMON",
        ) -> SimContract:
            return _us_stock(
                con_id, symbol, primary, name, industry, category, subcategory, price, vol, us_ext, us_rth, stock_type
            )

        contracts = [
            stock(265598, "AAPL", "NASDAQ", "APPLE INC", "Technology", "Computers", "Computers", 230.0, 0.25),
            stock(
                272093,
                "MSFT",
                "NASDAQ",
                "MICROSOFT CORP",
                "Technology",
                "Software",
                "Applications Software",
                420.0,
                0.22,
            ),
            stock(
                756733,
                "SPY",
                "ARCA",
                "SPDR S&P 500 ETF TRUST",
                "Funds",
                "Equity Fund",
                "Growth-Large Cap",
                590.0,
                0.15,
                stock_type="ETF",
            ),
            stock(
                4815747,
                "NVDA",
                "NASDAQ",
                "NVIDIA CORP",
                "Technology",
                "Semiconductors",
                "Electronic Components-Semicon",
                140.0,
                0.45,
            ),
            stock(
                76792991,
                "TSLA",
                "NASDAQ",
                "TESLA INC",
                "Consumer, Cyclical",
                "Auto Manufacturers",
                "Auto-Cars/Light Trucks",
                330.0,
                0.55,
            ),
            stock(
                1520593, "JPM", "NYSE", "JPMORGAN CHASE & CO", "Financial", "Banks", "Money Center Banks", 240.0, 0.20
            ),
            SimContract(
                con_id=14204,
                symbol="SAP",
                sec_type="STK",
                exchange="IBIS",
                primary_exchange="IBIS",
                currency="EUR",
                local_symbol="SAP",
                trading_class="XETRA",
                last_trade_date="",
                strike=0.0,
                right="",
                multiplier="",
                min_tick=0.01,
                long_name="SAP SE",
                industry="Technology",
                category="Software",
                subcategory="Enterprise Software",
                time_zone_id="MET",
                trading_hours=xetra,
                liquid_hours=xetra_liquid,
                valid_exchanges="SMART,IBIS,TGATE,SWB,FWB",
                order_types=_STK_ORDER_TYPES,
                market_rule_ids="43,43,43,43,43",
                stock_type="COMMON",
                min_size=1.0,
                size_increment=1.0,
                tradable=True,
                start_price=240.0,
                annual_vol=0.25,
                market_name="XETRA",
            ),
        ]

        def future(
            con_id: int,
            symbol: str,
            exchange: str,
            local: str,
            expiry: str,
            month: str,
            price: float,
            vol: float,
            multiplier: str,
            tick: float,
            name: str,
            tradable: bool = True,
        ) -> SimContract:
            return SimContract(
                con_id=con_id,
                symbol=symbol,
                sec_type="FUT",
                exchange=exchange,
                primary_exchange="",
                currency="USD",
                local_symbol=local,
                trading_class=symbol,
                last_trade_date=expiry,
                strike=0.0,
                right="",
                multiplier=multiplier,
                min_tick=tick,
                long_name=name,
                industry="",
                category="",
                subcategory="",
                time_zone_id="US/Central",
                trading_hours=cme_hours,
                liquid_hours=cme_liquid,
                valid_exchanges=exchange,
                order_types=_FUT_ORDER_TYPES,
                market_rule_ids="67",
                stock_type="",
                min_size=1.0,
                size_increment=1.0,
                tradable=tradable,
                start_price=price,
                annual_vol=vol,
                market_name=symbol,
                contract_month=month,
                under_con_id=11004968,
                under_symbol=symbol,
                under_sec_type="IND",
            )

        contracts += [
            future(495512563, "ES", "CME", "ESZ6", "20261218", "202612", 6000.0, 0.17, "50", 0.25, "E-mini S&P 500"),
            future(551601561, "ES", "CME", "ESH7", "20270319", "202703", 6060.0, 0.17, "50", 0.25, "E-mini S&P 500"),
            # already expired on the default day: only visible with include_expired
            future(495512552, "ES", "CME", "ESU6", "20260918", "202609", 5950.0, 0.17, "50", 0.25, "E-mini S&P 500"),
            # the simulated account has no energy-futures permission
            future(
                212921504,
                "CL",
                "NYMEX",
                "CLF7",
                "20261217",
                "202701",
                70.0,
                0.35,
                "1000",
                0.01,
                "Light Sweet Crude Oil",
                tradable=False,
            ),
        ]

        expiry = "20261218"
        years = (dt.date(2026, 12, 18) - today).days / 365.0
        con_id = 800_100_001
        for strike in (220.0, 230.0, 240.0):
            for right in ("C", "P"):
                value = max(0.05, _black_scholes(230.0, strike, years, 0.25, right))
                contracts.append(
                    SimContract(
                        con_id=con_id,
                        symbol="AAPL",
                        sec_type="OPT",
                        exchange="SMART",
                        primary_exchange="",
                        currency="USD",
                        local_symbol=f"AAPL  261218{right}{int(strike * 1000):08d}",
                        trading_class="AAPL",
                        last_trade_date=expiry,
                        strike=strike,
                        right=right,
                        multiplier="100",
                        min_tick=0.01,
                        long_name="APPLE INC",
                        industry="Technology",
                        category="Computers",
                        subcategory="Computers",
                        time_zone_id="US/Eastern",
                        trading_hours=us_rth,
                        liquid_hours=us_rth,
                        valid_exchanges="SMART,AMEX,CBOE,PHLX,PSE,ISE,BOX,BATS,NASDAQOM,CBOE2,NASDAQBX,MIAX,GEMINI,"
                        "EDGX,MERCURY,PEARL,EMERALD,MEMX,IBUSOPT",
                        order_types=_OPT_ORDER_TYPES,
                        market_rule_ids=",".join(["32"] * 19),
                        stock_type="",
                        min_size=1.0,
                        size_increment=1.0,
                        tradable=True,
                        start_price=round(value, 2),
                        annual_vol=0.9,
                        market_name="AAPL",
                        contract_month="202612",
                        under_con_id=265598,
                        under_symbol="AAPL",
                        under_sec_type="STK",
                    )
                )
                con_id += 1

        def fx(con_id: int, base: str, quote: str, price: float, name: str) -> SimContract:
            return SimContract(
                con_id=con_id,
                symbol=base,
                sec_type="CASH",
                exchange="IDEALPRO",
                primary_exchange="",
                currency=quote,
                local_symbol=f"{base}.{quote}",
                trading_class=f"{base}.{quote}",
                last_trade_date="",
                strike=0.0,
                right="",
                multiplier="",
                min_tick=0.00005,
                long_name=name,
                industry="",
                category="",
                subcategory="",
                time_zone_id="US/Eastern",
                trading_hours=fx_hours,
                liquid_hours=fx_hours,
                valid_exchanges="IDEALPRO",
                order_types=_CASH_ORDER_TYPES,
                market_rule_ids="239",
                stock_type="",
                min_size=1.0,
                size_increment=1.0,
                tradable=True,
                start_price=price,
                annual_vol=0.07,
                market_name=f"{base}.{quote}",
            )

        contracts += [
            fx(12087792, "EUR", "USD", 1.0550, "European Monetary Union Euro"),
            fx(12087797, "GBP", "USD", 1.2650, "British pound"),
        ]
        return contracts
