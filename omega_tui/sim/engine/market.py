"""A deterministic, seeded price process per contract: quotes, trades, day statistics.

Each contract has its own random stream (seeded from the market seed and its conId) and its own Poisson
event times, so a contract's quotes at virtual time T depend only on the seed and T, not on how often `step`
is called or on which other contracts exist. One event moves the bid on the tick grid (a random walk whose
per-event deviation gives the contract's annual volatility), may redraw the spread (1–3 ticks) and the
displayed sizes (round lots), and may print a trade at the bid, the ask or a tick in between.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

from omega_tui.sim.engine.clock import SimClock
from omega_tui.sim.engine.contracts import ContractDB, SimContract

# Seconds of regular trading in a year: the unit annual volatility is quoted in.
TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
# Quote events per virtual second at speed 1, by security type.
BASE_RATE = {"STK": 4.0, "FUT": 6.0, "OPT": 1.0, "CASH": 5.0}
# Displayed-size unit (a round lot) by security type.
LOT = {"STK": 100, "FUT": 1, "OPT": 1, "CASH": 100_000}
# Probability that an event prints a trade.
TRADE_PROBABILITY = 0.5


@dataclass(frozen=True, slots=True)
class SimQuote:
    """Top of book and day statistics for one contract; prices sit on the contract's tick grid.

    `seq` increases on every change of this contract's quote. `close` is the previous session's close.
    """

    con_id: int
    bid: float
    ask: float
    bid_size: int
    ask_size: int
    last: float
    last_size: int
    volume: int
    open: float
    high: float
    low: float
    close: float
    time: float
    seq: int

    @property
    def mid(self) -> float:
        """(bid + ask) / 2, not necessarily on the tick grid."""
        return (self.bid + self.ask) / 2


class _Book:
    """Mutable state of one contract's price process; prices are held as integer ticks."""

    __slots__ = (
        "ask_size",
        "bid",
        "bid_size",
        "close",
        "contract",
        "high",
        "last",
        "last_size",
        "lot",
        "low",
        "next_t",
        "open",
        "rate",
        "rng",
        "seq",
        "sigma",
        "spread",
        "time",
        "trade_prices",
        "trade_sizes",
        "trade_times",
        "volume",
    )

    def __init__(self, contract: SimContract, seed: int, start: float, speed: float) -> None:
        self.contract = contract
        # ints only: Python's hash of str is salted per process, which would break determinism
        self.rng = random.Random(seed * 1_000_003 + contract.con_id)
        rng = self.rng
        tick = contract.min_tick
        self.lot = LOT.get(contract.sec_type, 1)
        self.rate = BASE_RATE.get(contract.sec_type, 2.0) * speed
        mid_ticks = contract.start_price / tick
        # per-event standard deviation in ticks, so the walk has the contract's annual volatility
        self.sigma = mid_ticks * contract.annual_vol * math.sqrt(1.0 / (self.rate * TRADING_SECONDS_PER_YEAR))
        self.spread = self._draw_spread()
        self.bid = max(1, round(mid_ticks) - self.spread // 2)
        self.bid_size = self.lot * rng.randint(1, 30)
        self.ask_size = self.lot * rng.randint(1, 30)
        self.last = self.bid if rng.random() < 0.5 else self.bid + self.spread
        self.last_size = self.lot * rng.randint(1, 5)
        self.volume = self.lot * rng.randint(50, 500)  # pre-market volume
        self.open = self.last
        self.high = self.last
        self.low = self.last
        self.close = max(1, round(mid_ticks * (1 + rng.uniform(-0.01, 0.01))))
        self.time = start
        self.seq = 0
        self.next_t = start + rng.expovariate(self.rate)
        self.trade_times = array("d", [start])
        self.trade_prices = array("d", [round(self.last * tick, 10)])
        self.trade_sizes = array("q", [self.last_size])

    def _draw_spread(self) -> int:
        weights = (0.8, 0.15, 0.05) if self.contract.sec_type in ("FUT", "CASH") else (0.6, 0.3, 0.1)
        return self.rng.choices((1, 2, 3), weights)[0]

    def event(self, t: float) -> None:
        """One quote event at virtual time t."""
        rng = self.rng
        self.bid = max(1, self.bid + round(rng.gauss(0.0, self.sigma)))
        if rng.random() < 0.3:
            self.spread = self._draw_spread()
        if rng.random() < 0.7:
            self.bid_size = self.lot * rng.randint(1, 30)
        if rng.random() < 0.7:
            self.ask_size = self.lot * rng.randint(1, 30)
        if rng.random() < TRADE_PROBABILITY:
            self.trade(self._trade_price(), self.lot * rng.randint(1, 5), t)
        self.time = t
        self.seq += 1

    def _trade_price(self) -> int:
        """A trade price in ticks: at the bid, at the ask, or strictly inside a wide spread."""
        u = self.rng.random()
        if self.spread > 1 and u < 0.2:
            return self.bid + self.rng.randint(1, self.spread - 1)
        return self.bid if u < 0.6 else self.bid + self.spread

    def trade(self, price: int, size: int, t: float) -> None:
        self.last = price
        self.last_size = size
        self.volume += size
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.trade_times.append(t)
        self.trade_prices.append(round(price * self.contract.min_tick, 10))
        self.trade_sizes.append(size)

    def quote(self) -> SimQuote:
        tick = self.contract.min_tick

        def px(ticks: int) -> float:
            return round(ticks * tick, 10)

        return SimQuote(
            con_id=self.contract.con_id,
            bid=px(self.bid),
            ask=px(self.bid + self.spread),
            bid_size=self.bid_size,
            ask_size=self.ask_size,
            last=px(self.last),
            last_size=self.last_size,
            volume=self.volume,
            open=px(self.open),
            high=px(self.high),
            low=px(self.low),
            close=px(self.close),
            time=self.time,
            seq=self.seq,
        )


class Market:
    """Quotes for every contract of `db`, advanced by `step(now)`; same seed + same steps = same quotes.

    `speed` multiplies every contract's event rate per virtual second (the per-event move shrinks to keep the
    annual volatility). With a real-time clock, `SimClock.realtime(speed)` already speeds virtual time up;
    use one or the other.
    """

    def __init__(self, db: ContractDB, clock: SimClock, seed: int = 0, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"market speed must be > 0, got {speed}")
        self.db = db
        self.clock = clock
        self.seed = seed
        self.speed = speed
        self.start_time = clock.now()
        self._books: dict[int, _Book] = {c.con_id: _Book(c, seed, self.start_time, speed) for c in db.all()}
        self._order = sorted(self._books)
        self._now = self.start_time
        self._burst = 0
        self._burst_ids: list[int] = []
        self._pending: set[int] = set()

    @property
    def now(self) -> float:
        """The virtual time the market has been stepped to."""
        return self._now

    def con_ids(self) -> list[int]:
        """Every contract the market quotes, in conId order."""
        return list(self._order)

    def step(self, now: float | None = None) -> list[int]:
        """Advance the market to virtual time `now` (default clock.now()); returns changed con_ids, once each.

        Events due at or before `now` are applied in time order per contract; a `now` in the past is a no-op.
        """
        target = self.clock.now() if now is None else now
        changed = self._pending
        self._pending = set()
        if target > self._now:
            for con_id in self._order:
                book = self._books[con_id]
                while book.next_t <= target:
                    book.event(book.next_t)
                    book.next_t += book.rng.expovariate(book.rate)
                    changed.add(con_id)
            self._now = target
        if self._burst:
            for con_id in self._burst_ids:
                book = self._books[con_id]
                for _ in range(self._burst):
                    book.event(self._now)
                changed.add(con_id)
        return sorted(changed)

    def quote(self, con_id: int) -> SimQuote:
        """The current quote of a contract (KeyError for an unknown con_id)."""
        return self._books[con_id].quote()

    def set_burst(self, events_per_step: int, con_ids: Iterable[int] | None = None) -> None:
        """Benchmark mode: every step applies `events_per_step` extra events to each of `con_ids` (all if None).

        0 turns burst mode off. Burst events happen at the step's time and are on top of the timed ones.
        """
        if events_per_step < 0:
            raise ValueError(f"events_per_step must be >= 0, got {events_per_step}")
        ids = list(self._order) if con_ids is None else [c for c in con_ids if c in self._books]
        self._burst = events_per_step
        self._burst_ids = sorted(set(ids))

    def shock(self, con_id: int, pct: float) -> None:
        """Move a contract's whole book by `pct` percent now (e.g. -5.0) with a trade at the new touch.

        The next `step` reports the con_id as changed; call Exchange.on_market(con_id) to match against it.
        """
        book = self._books[con_id]
        mid = book.bid + book.spread / 2
        new_mid = mid * (1 + pct / 100)
        book.bid = max(1, round(new_mid - book.spread / 2))
        price = book.bid if pct < 0 else book.bid + book.spread
        book.trade(price, book.lot, self._now)
        book.time = self._now
        book.seq += 1
        self._pending.add(con_id)

    def set_quote(
        self, con_id: int, bid: float, ask: float, bid_size: int | None = None, ask_size: int | None = None
    ) -> None:
        """Put a contract's touch at exactly these values now (scripted scenarios and tests).

        Prices must sit on the tick grid with ask > bid. The next `step` reports the con_id as changed; the
        random walk continues from here.
        """
        book = self._books[con_id]
        contract = book.contract
        if not (contract.on_tick_grid(bid) and contract.on_tick_grid(ask)):
            raise ValueError(f"bid {bid} / ask {ask} are not on the {contract.min_tick} tick grid")
        bid_ticks = round(bid / contract.min_tick)
        spread = round(ask / contract.min_tick) - bid_ticks
        if bid_ticks < 1 or spread < 1:
            raise ValueError(f"need 0 < bid < ask, got bid {bid} ask {ask}")
        book.bid = bid_ticks
        book.spread = spread
        if bid_size is not None:
            book.bid_size = bid_size
        if ask_size is not None:
            book.ask_size = ask_size
        book.time = self._now
        book.seq += 1
        self._pending.add(con_id)

    def trades(self, con_id: int) -> tuple[array[float], array[float], array[int]]:
        """(times, prices, sizes) of every trade printed since the market started (read-only views)."""
        book = self._books[con_id]
        return book.trade_times, book.trade_prices, book.trade_sizes

    def start_price(self, con_id: int) -> float:
        """The first trade price of the session: history before the market started ends here."""
        return self._books[con_id].trade_prices[0]
