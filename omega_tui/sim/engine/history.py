"""Historical bars consistent with the simulated price process.

Bars after the market started are aggregated from the trades the Market printed, so the last bar closes at
the current last price. Bars before that come from a seeded backward random walk per (contract, bar size,
RTH flag) that ends exactly at the market's first trade, so the two parts join without a gap. Only bars in
the contract's session (regular or extended hours) exist; bars without trades are omitted, as IB does.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
import re
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from omega_tui.sim.engine.contracts import ContractDB, SimContract
from omega_tui.sim.engine.market import LOT, TRADING_SECONDS_PER_YEAR, Market

BAR_SIZES: dict[str, int] = {
    "1 secs": 1, "5 secs": 5, "10 secs": 10, "15 secs": 15, "30 secs": 30, "1 min": 60, "2 mins": 120,
    "3 mins": 180, "5 mins": 300, "10 mins": 600, "15 mins": 900, "20 mins": 1200, "30 mins": 1800,
    "1 hour": 3600, "2 hours": 7200, "3 hours": 10800, "4 hours": 14400, "8 hours": 28800, "1 day": 86400,
}  # fmt: skip
DURATION_UNITS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
# (longest duration in seconds, smallest bar in seconds): IB's table of valid duration/bar-size combinations.
MIN_BAR_FOR_DURATION = (
    (1800, 1), (3600, 5), (14400, 10), (28800, 30), (86400, 60), (2 * 86400, 120), (7 * 86400, 180),
    (31 * 86400, 1800),
)  # fmt: skip
WHAT_TO_SHOW = frozenset({"TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK"})
HMDS = "Historical Market Data Service error message:"
# How far back synthetic history goes.
HISTORY_YEARS = 5
# Synthetic bars are generated in chunks of this many, each chunk from its own seeded stream.
SYNTHETIC_CHUNK = 2000

_TZ = {"US/Eastern": "America/New_York", "US/Central": "America/Chicago", "MET": "Europe/Berlin"}


class HistoryError(Exception):
    """A historical request IB would refuse: the wire sends error(reqId, code, text)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class SimBar:
    """One bar: `time` is the bar's start in epoch seconds (daily bars: midnight of the exchange's day).

    For MIDPOINT/BID/ASK/BID_ASK, `volume` and `bar_count` are -1, as IB sends them.
    """

    time: float
    open: float
    high: float
    low: float
    close: float
    volume: int
    wap: float
    bar_count: int


def parse_duration(duration_str: str) -> int:
    """IB duration string ("1800 S", "2 D", "1 W", "1 M", "1 Y") in seconds; HistoryError 321 if malformed."""
    match = re.fullmatch(r"\s*(\d+)\s+([SDWMY])\s*", duration_str or "")
    if not match or int(match.group(1)) <= 0:
        raise HistoryError(321, f"Error validating request.-'bX' : cause - Invalid duration format {duration_str!r}")
    return int(match.group(1)) * DURATION_UNITS[match.group(2)]


def session_open(contract: SimContract, t: float, rth: bool) -> bool:
    """True when `contract` trades at epoch `t` (regular hours only when `rth`). Holidays are not modelled."""
    local = dt.datetime.fromtimestamp(t, ZoneInfo(_TZ.get(contract.time_zone_id, "America/New_York")))
    minute = local.hour * 60 + local.minute
    weekday = local.weekday()
    if contract.sec_type in ("STK", "OPT"):
        if weekday >= 5:
            return False
        if contract.currency == "EUR":
            return 540 <= minute < 1050 if rth else 480 <= minute < 1320
        if rth or contract.sec_type == "OPT":
            return 570 <= minute < 960
        return 240 <= minute < 1200
    if contract.sec_type == "FUT":  # CME Globex, Chicago time
        if rth:
            return weekday < 5 and 510 <= minute < 900
        if weekday == 5 or (weekday == 6 and minute < 1020) or (weekday == 4 and minute >= 960):
            return False
        return not 960 <= minute < 1020
    # CASH, New York time: Sunday 17:15 to Friday 17:00 with a daily break 17:00-17:15
    if weekday == 5 or (weekday == 6 and minute < 1035) or (weekday == 4 and minute >= 1020):
        return False
    return not 1020 <= minute < 1035


class HistoryGenerator:
    """Bars for IB duration strings and bar sizes; deterministic under the seed (and the market's trades)."""

    def __init__(self, db: ContractDB, market: Market, seed: int = 0) -> None:
        self.db = db
        self.market = market
        self.seed = seed
        # (con_id, bar seconds, rth) -> synthetic bars, newest first, generated backwards on demand
        self._synthetic: dict[tuple[int, int, bool], list[SimBar]] = {}

    def head_timestamp(self, con_id: int, what_to_show: str = "TRADES", use_rth: bool = True) -> float:
        """Epoch of the earliest available data for a contract (HistoryError 200 if unknown)."""
        del what_to_show, use_rth
        self._contract(con_id)
        day = 86400
        return math.floor((self.market.start_time - HISTORY_YEARS * 365 * day) / day) * day

    def bars(
        self,
        con_id: int,
        end_epoch: float | None,
        duration_str: str,
        bar_size: str,
        what_to_show: str = "TRADES",
        use_rth: bool = True,
    ) -> list[SimBar]:
        """Bars covering `duration_str` back from `end_epoch` (None/0 = now), oldest first, the last one partial.

        Raises HistoryError: 200 unknown contract, 321 malformed duration/bar size/whatToShow, 162 for a
        combination IB refuses (too many bars) or no data (before the head timestamp, TRADES for FX).
        """
        contract = self._contract(con_id)
        if bar_size not in BAR_SIZES:
            raise HistoryError(
                321,
                "Error validating request.-'bX' : cause - Historical data bar size setting is "
                f"invalid. Legal ones are: {', '.join(BAR_SIZES)}",
            )
        if what_to_show.upper() not in WHAT_TO_SHOW:
            raise HistoryError(321, f"Error validating request.-'bX' : cause - Invalid what to show {what_to_show!r}")
        show = what_to_show.upper()
        duration = parse_duration(duration_str)
        step = BAR_SIZES[bar_size]
        for longest, smallest in MIN_BAR_FOR_DURATION:
            if duration <= longest:
                if step < smallest:
                    raise HistoryError(162, HMDS + "Time length exceed max.")
                break
        else:
            if step < 86400:
                raise HistoryError(162, HMDS + "Time length exceed max.")
        if contract.sec_type == "CASH" and show == "TRADES":
            raise HistoryError(162, HMDS + f"No historical market data for {contract.symbol}/CASH@FXSUBPIP Last 0")
        now = self.market.now
        end = now if not end_epoch or end_epoch > now else float(end_epoch)
        start = end - duration
        if end <= self.head_timestamp(con_id):
            raise HistoryError(162, HMDS + f"HMDS query returned no data: {contract.local_symbol}@{contract.exchange}")
        if step >= 86400:
            result = self._daily_bars(contract, start, end, use_rth)
        else:
            result = self._intraday_bars(contract, start, end, step, use_rth)
        return [self._as(show, contract, bar) for bar in result]

    # -- internals -----------------------------------------------------------------------------------------

    def _contract(self, con_id: int) -> SimContract:
        contract = self.db.get(con_id)
        if contract is None:
            raise HistoryError(200, "No security definition has been found for the request")
        return contract

    def _intraday_bars(self, contract: SimContract, start: float, end: float, step: int, rth: bool) -> list[SimBar]:
        t0 = self.market.start_time
        first = math.floor(start / step) * step
        out: list[SimBar] = []
        synthetic = {bar.time: bar for bar in self._synthetic_until(contract, step, rth, first)} if first < t0 else {}
        t = float(first)
        while t < end:
            if self._bar_in_session(contract, t, step, rth):
                recorded = self._aggregate(contract.con_id, max(t, t0), min(t + step, end)) if t + step > t0 else None
                early = synthetic.get(t) if t < t0 else None
                bar = _merge(early, recorded)
                if bar is not None:
                    out.append(replace(bar, time=t))
            t += step
        return out

    def _daily_bars(self, contract: SimContract, start: float, end: float, rth: bool) -> list[SimBar]:
        tz = ZoneInfo(_TZ.get(contract.time_zone_id, "America/New_York"))
        t0 = self.market.start_time
        day = dt.datetime.fromtimestamp(start, tz).date()
        last_day = dt.datetime.fromtimestamp(end, tz).date()
        synthetic = {bar.time: bar for bar in self._synthetic_until(contract, 86400, rth, start - 86400)}
        out: list[SimBar] = []
        while day <= last_day:
            if day.weekday() < 5:
                midnight = dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
                next_midnight = midnight + 86400
                early = synthetic.get(midnight) if midnight < t0 else None
                recorded = (
                    self._aggregate(contract.con_id, max(midnight, t0), min(next_midnight, end))
                    if next_midnight > t0
                    else None
                )
                bar = _merge(early, recorded)
                if bar is not None:
                    out.append(replace(bar, time=midnight))
            day += dt.timedelta(days=1)
        return out

    def _bar_in_session(self, contract: SimContract, t: float, step: int, rth: bool) -> bool:
        probes = (t,) if step <= 60 else (t, t + step / 2, t + step - 1)
        return any(session_open(contract, p, rth) for p in probes)

    def _aggregate(self, con_id: int, start: float, end: float) -> SimBar | None:
        """OHLC/volume/WAP of the market's trades in [start, end), or None without trades."""
        times, prices, sizes = self.market.trades(con_id)
        lo = bisect.bisect_left(times, start)
        hi = bisect.bisect_left(times, end)
        if hi <= lo:
            return None
        window = prices[lo:hi]
        volume = sum(sizes[lo:hi])
        wap = sum(p * s for p, s in zip(window, sizes[lo:hi], strict=True)) / volume
        return SimBar(start, window[0], max(window), min(window), window[-1], volume, wap, hi - lo)

    def _synthetic_until(self, contract: SimContract, step: int, rth: bool, earliest: float) -> list[SimBar]:
        """Synthetic bars (newest first) back from the market start to `earliest` (not before the head timestamp).

        Bars are made in fixed chunks, each from its own seeded stream, so a bar never depends on which
        requests came before it.
        """
        bars = self._synthetic.setdefault((contract.con_id, step, rth), [])
        head = self.head_timestamp(contract.con_id)
        earliest = max(earliest, head)
        while not bars or (bars[-1].time > earliest and len(bars) % SYNTHETIC_CHUNK == 0):
            before = len(bars)
            self._extend(contract, step, rth, bars, head)
            if len(bars) == before:
                break
        return bars

    def _extend(self, contract: SimContract, step: int, rth: bool, bars: list[SimBar], head: float) -> None:
        """Append one chunk of older synthetic bars (stops early at the head timestamp)."""
        chunk = len(bars) // SYNTHETIC_CHUNK
        rng = random.Random(f"{self.seed}:{contract.con_id}:{step}:{int(rth)}:{chunk}")
        tick = contract.min_tick
        lot = LOT.get(contract.sec_type, 1)
        t0 = self.market.start_time
        tz = ZoneInfo(_TZ.get(contract.time_zone_id, "America/New_York"))
        daily = step >= 86400
        if daily:
            sigma = contract.annual_vol / math.sqrt(252)
            cursor = dt.datetime.fromtimestamp(bars[-1].time if bars else t0, tz).date()
            # the start day has a synthetic part only if the contract traded on it before the market started
            if bars or not session_open(contract, t0 - 1, rth) or _midnight(cursor, tz) >= t0:
                cursor -= dt.timedelta(days=1)
            t = 0.0
        else:
            sigma = contract.annual_vol * math.sqrt(step / TRADING_SECONDS_PER_YEAR)
            t = (bars[-1].time - step) if bars else math.ceil(t0 / step) * step - step
            if not bars and t < t0 and not session_open(contract, t0 - 1, rth):
                t -= step  # the bar holding the start has no trading before it: it is all recorded
        close = bars[-1].open if bars else self.market.start_price(contract.con_id)
        made = 0
        while made < SYNTHETIC_CHUNK:
            if daily:
                if cursor.weekday() >= 5:
                    cursor -= dt.timedelta(days=1)
                    continue
                t = dt.datetime(cursor.year, cursor.month, cursor.day, tzinfo=tz).timestamp()
                cursor -= dt.timedelta(days=1)
            if t < head:
                return
            if not daily and not self._bar_in_session(contract, t, step, rth):
                t -= step
                continue
            open_ = max(tick, contract.round_to_tick(close * math.exp(-rng.gauss(0.0, sigma))))
            high = contract.round_to_tick(max(open_, close) + abs(rng.gauss(0.0, sigma / 2)) * close)
            low = max(tick, contract.round_to_tick(min(open_, close) - abs(rng.gauss(0.0, sigma / 2)) * close))
            count = max(1, int(rng.expovariate(1.0) * min(step, 23400) * 0.5) + 1)
            volume = lot * max(1, int(count * rng.uniform(1, 4)))
            wap = contract.round_to_tick(min(high, max(low, (open_ + high + low + close) / 4)))
            bars.append(SimBar(t, open_, high, low, close, volume, wap, count))
            close = open_
            made += 1
            if not daily:
                t -= step

    @staticmethod
    def _as(show: str, contract: SimContract, bar: SimBar) -> SimBar:
        """Re-express a trades bar as IB's MIDPOINT/BID/ASK/BID_ASK bar (one tick below/above for BID/ASK)."""
        if show == "TRADES":
            return bar
        shift = {"BID": -contract.min_tick, "ASK": contract.min_tick}.get(show, 0.0)

        def px(p: float) -> float:
            return max(contract.min_tick, contract.round_to_tick(p + shift))

        return SimBar(bar.time, px(bar.open), px(bar.high), px(bar.low), px(bar.close), -1, -1.0, -1)


def _midnight(day: dt.date, tz: ZoneInfo) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def _merge(early: SimBar | None, late: SimBar | None) -> SimBar | None:
    """One bar from a synthetic part (before the market started) and a recorded part (after), either optional."""
    if early is None or late is None:
        return early or late
    volume = early.volume + late.volume
    wap = (early.wap * early.volume + late.wap * late.volume) / volume
    return SimBar(
        early.time,
        early.open,
        max(early.high, late.high),
        min(early.low, late.low),
        late.close,
        volume,
        wap,
        early.bar_count + late.bar_count,
    )
