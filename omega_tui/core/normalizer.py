"""The normalizer: raw market data values → frozen `Quote` records, with nothing bad passing as good.

Two layers:

- `normalize(prev, raw, rules, seq, recv_ns, recv_utc, farm_down)` is a pure function of the previous quote
  and one update's raw values. It knows nothing of ib_async: a raw value is a float (or None) that may be an
  IB sentinel (NaN, -1, `UNSET_DOUBLE`, `UNSET_INTEGER`), and it returns the new `Quote` plus a bitmask of
  what it refused (`Reject`). Missing values become `None`; a refused price is replaced by the previous good
  value of the same field and the quote carries `QuoteFlag.REJECTED_PRICE`.
- `Normalizer` keeps the per-instrument state (previous quote, sequence numbers, counters, last activity),
  publishes every new quote as `QuoteUpdated` on the bus and into the hot state, and turns silence
  (`market_data.stale_after_s`) or a data-farm outage into `QuoteFlag.STALE`.

Rules, per field:

- bid/ask must be > 0 and on the instrument's tick grid; trade prices (last, open, high, low, close) must be
  > 0 and on a grid 100 times finer, because real prints happen at sub-penny prices (midpoint crosses) while
  quotes do not.
- A price more than `max_jump_pct` away from the previous good value of the same field is an outlier and is
  refused, unless the feed's own previous raw value of that field (ib_async's `prevBid`, …) already agreed
  with it: two consecutive prints at a new level are the market moving, one is a bad print.
- crossed (bid > ask) and locked (bid == ask) books are forwarded with a flag: they happen in real markets
  and the risk engine decides what to do with them.

The hot path is per tick, so this module avoids enum arithmetic and repeated `Decimal` parsing: flags are
combined as ints, and prices are converted through a small per-instrument memo keyed by the raw float.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from omega_tui.core.bus import EventBus
from omega_tui.core.clock import Clock
from omega_tui.core.hot_state import HotState
from omega_tui.core.types import Quote, QuoteFlag, QuoteUpdated

UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INTEGER = 2**31 - 1

_CROSSED = int(QuoteFlag.CROSSED)
_LOCKED = int(QuoteFlag.LOCKED)
_STALE = int(QuoteFlag.STALE)
_DELAYED = int(QuoteFlag.DELAYED)
_REJECTED = int(QuoteFlag.REJECTED_PRICE)
# QuoteFlag(int) costs an enum lookup per call; the 32 combinations are built once.
_FLAG_OF = tuple(QuoteFlag(i) for i in range(32))
# int's own `&` on an IntFlag: the enum's __and__ is a Python-level call, too slow per tick.
_int_and = int.__and__


# `Quote.__init__` (a frozen dataclass) makes one `object.__setattr__` call per field, which is most of the
# per-tick cost; the hot path fills the slots directly instead. Quote has no __post_init__ or validation,
# so the result is the same object; a test checks `new_quote(...) == Quote(...)` field by field.
_new_object = object.__new__
# The slot descriptors' setters: one C call per field, no attribute-name lookup.
_SETTERS: dict[str, Callable[[Quote, Any], None]] = {f.name: vars(Quote)[f.name].__set__ for f in fields(Quote)}
_SET_KEY = _SETTERS["key"]
_SET_SEQ = _SETTERS["seq"]
_SET_RECV_NS = _SETTERS["recv_ns"]
_SET_RECV_UTC = _SETTERS["recv_utc"]
_SET_BID = _SETTERS["bid"]
_SET_ASK = _SETTERS["ask"]
_SET_LAST = _SETTERS["last"]
_SET_BID_SIZE = _SETTERS["bid_size"]
_SET_ASK_SIZE = _SETTERS["ask_size"]
_SET_LAST_SIZE = _SETTERS["last_size"]
_SET_VOLUME = _SETTERS["volume"]
_SET_OPEN = _SETTERS["open"]
_SET_HIGH = _SETTERS["high"]
_SET_LOW = _SETTERS["low"]
_SET_CLOSE = _SETTERS["close"]
_SET_MARKET_DATA_TYPE = _SETTERS["market_data_type"]
_SET_FLAGS = _SETTERS["flags"]


def new_quote(
    key: str,
    seq: int,
    recv_ns: int,
    recv_utc: datetime,
    bid: Decimal | None,
    ask: Decimal | None,
    last: Decimal | None,
    bid_size: int | None,
    ask_size: int | None,
    last_size: int | None,
    volume: int | None,
    opn: Decimal | None,
    high: Decimal | None,
    low: Decimal | None,
    close: Decimal | None,
    market_data_type: int,
    flags: QuoteFlag,
) -> Quote:
    """`Quote(...)` with the same positional fields, about twice as fast."""
    q: Quote = _new_object(Quote)
    _SET_KEY(q, key)
    _SET_SEQ(q, seq)
    _SET_RECV_NS(q, recv_ns)
    _SET_RECV_UTC(q, recv_utc)
    _SET_BID(q, bid)
    _SET_ASK(q, ask)
    _SET_LAST(q, last)
    _SET_BID_SIZE(q, bid_size)
    _SET_ASK_SIZE(q, ask_size)
    _SET_LAST_SIZE(q, last_size)
    _SET_VOLUME(q, volume)
    _SET_OPEN(q, opn)
    _SET_HIGH(q, high)
    _SET_LOW(q, low)
    _SET_CLOSE(q, close)
    _SET_MARKET_DATA_TYPE(q, market_data_type)
    _SET_FLAGS(q, flags)
    return q


class Reject:
    """Bits of `Normalized.rejects`: why a value of this update was refused (each is counted)."""

    ZERO = 1
    NEGATIVE = 2
    OFF_GRID = 4
    OUTLIER = 8
    BAD_SIZE = 16

    PRICE = ZERO | NEGATIVE | OFF_GRID | OUTLIER
    NAMES = {ZERO: "zero", NEGATIVE: "negative", OFF_GRID: "off_grid", OUTLIER: "outlier", BAD_SIZE: "bad_size"}


class RawQuote(NamedTuple):
    """One update's raw values as the feed has them (floats, possibly sentinels, or None).

    `prev_bid`, `prev_ask`, `prev_last` are the feed's previous raw values of those fields (ib_async's
    `prevBid`, `prevAsk`, `prevLast`); they only serve to confirm a large move (see the module docstring).
    """

    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    last_size: float | None = None
    volume: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    market_data_type: int = 1
    prev_bid: float | None = None
    prev_ask: float | None = None
    prev_last: float | None = None


@dataclass(slots=True)
class InstrumentRules:
    """What the normalizer needs to know about one instrument. `price_memo` is a cache, not state."""

    key: str
    min_tick: Decimal
    max_jump_pct: float = 10.0
    tick_f: float = 0.0
    trade_tick_f: float = 0.0
    trade_tick: Decimal = Decimal(0)
    max_jump: float = 0.0
    price_memo: dict[float, Decimal | None] = field(default_factory=dict)  # raw float -> exact price / off grid
    trade_memo: dict[float, Decimal | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min_tick <= 0:
            raise ValueError(f"{self.key}: min tick must be > 0, got {self.min_tick}")
        self.tick_f = float(self.min_tick)
        self.trade_tick = self.min_tick / 100
        self.trade_tick_f = float(self.trade_tick)
        self.max_jump = self.max_jump_pct / 100.0


# The raw values of "no usable previous update": no raw value equals it, and it is not NaN-like (`p != p` is
# False), so every field takes the slow path.
_NEVER = object()
_NO_RAW = RawQuote._make([_NEVER] * 15)
_NO_QUOTE = Quote("", 0, 0, datetime(1970, 1, 1, tzinfo=UTC))


class Normalized(NamedTuple):
    quote: Quote
    rejects: int  # Reject bits


# Bounded so memory stays flat: prices near the current level are the ones that repeat.
_MEMO_MAX = 512
_PRICE_REJECTS = Reject.PRICE


def _missing(v: float | None) -> bool:
    # NaN, IB's "no price" -1, and the unset double all mean "not there"; so does None.
    return v is None or v != v or v == -1.0 or v >= UNSET_DOUBLE


def _on_grid(v: float, tick: float, tick_d: Decimal) -> Decimal | None:
    """The exact Decimal of `v` on a grid of `tick`, or None when `v` is off it."""
    n = round(v / tick)
    # Relative tolerance: the float of an on-grid price is within a few ulps of n * tick.
    if abs(n * tick - v) > 1e-7 * tick + 1e-9 * abs(v):
        return None
    return tick_d * n


def _memo_put(memo: dict[float, Decimal | None], v: float, d: Decimal | None) -> None:
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[v] = d


def _quote_price(v: float, rules: InstrumentRules) -> Decimal | None:
    memo = rules.price_memo
    if v in memo:
        return memo[v]
    d = _on_grid(v, rules.tick_f, rules.min_tick)
    _memo_put(memo, v, d)
    return d


def _trade_price(v: float, rules: InstrumentRules) -> Decimal | None:
    memo = rules.trade_memo
    if v in memo:
        return memo[v]
    # On the quote grid when it can be (so 230.95 prints as 230.95), else on the finer trade grid.
    d = _on_grid(v, rules.tick_f, rules.min_tick)
    if d is None:
        d = _on_grid(v, rules.trade_tick_f, rules.trade_tick)
    _memo_put(memo, v, d)
    return d


def _size(v: float | None) -> tuple[int | None, int]:
    if v is None or v != v or v >= UNSET_INTEGER or v == UNSET_DOUBLE:
        return None, 0
    if v < 0:
        return None, Reject.BAD_SIZE if v != -1.0 else 0
    return int(v), 0


def _price(
    v: float | None,
    prev: Decimal | None,
    prev_raw: float | None,
    rules: InstrumentRules,
    trade: bool,
    check_jump: bool = True,
) -> tuple[Decimal | None, int]:
    """(accepted value or the previous good one, reject bits) for one price field."""
    if _missing(v):
        return None, 0
    assert v is not None
    if v == 0.0:
        return prev, Reject.ZERO
    if v < 0.0:
        return prev, Reject.NEGATIVE
    d = _trade_price(v, rules) if trade else _quote_price(v, rules)
    if d is None:
        return prev, Reject.OFF_GRID
    # The memo hands out one Decimal per price, so identity is the cheap "unchanged" test.
    if check_jump and prev is not None and d is not prev:
        ref = float(prev)
        if abs(v - ref) > rules.max_jump * ref:
            # A second consecutive raw print near the new level confirms it (the market gapped).
            if _missing(prev_raw) or abs(v - prev_raw) > rules.max_jump * v:  # type: ignore[operator]
                return prev, Reject.OUTLIER
    return d, 0


def normalize(
    prev: Quote | None,
    raw: RawQuote,
    rules: InstrumentRules,
    seq: int,
    recv_ns: int,
    recv_utc: datetime,
    farm_down: bool = False,
    last_raw: RawQuote | None = None,
) -> Normalized:
    """The quote that follows `prev` after the raw update `raw`; pure apart from the price memo.

    A field that is missing in `raw` is None in the result (ib_async's ticker always carries every field, so
    a missing value means "no market on that side", not "unchanged"). `last_raw`, the raw update `prev` was
    made from, only lets session statistics and sizes that did not change skip re-validation.
    """
    rejects = 0
    # Fast path: a field whose raw value is the same as the one `prev` was made from maps to `prev`'s value,
    # unless `prev` carried a refused price (then everything is re-validated). Equal raw values give equal
    # results, and so do two NaNs (both "missing"): `v == p or (v != v and p != p)` is that test. ib_async
    # leaves every field it has no tick for at NaN, so without the NaN case a missing field (no trades on a
    # currency, no session statistics yet) would be re-validated on every tick.
    fast = prev is not None and last_raw is not None and not _int_and(prev.flags, _REJECTED)
    lr = last_raw if fast and last_raw is not None else _NO_RAW  # _NO_RAW's fields equal nothing, not even NaN
    pq = prev if prev is not None else _NO_QUOTE
    v, p = raw.bid, lr.bid
    if v == p or (v != v and p != p):
        bid = pq.bid
    else:
        bid, r = _price(v, pq.bid, raw.prev_bid, rules, False)
        rejects |= r
    v, p = raw.ask, lr.ask
    if v == p or (v != v and p != p):
        ask = pq.ask
    else:
        ask, r = _price(v, pq.ask, raw.prev_ask, rules, False)
        rejects |= r
    v, p = raw.last, lr.last
    if v == p or (v != v and p != p):
        last = pq.last
    else:
        last, r = _price(v, pq.last, raw.prev_last, rules, True)
        rejects |= r

    # Session statistics legitimately move far from their previous value (a new session): no jump test.
    v, p = raw.open, lr.open
    if v == p or (v != v and p != p):
        opn = pq.open
    else:
        opn, r = _price(v, pq.open, None, rules, True, False)
        rejects |= r
    v, p = raw.high, lr.high
    if v == p or (v != v and p != p):
        high = pq.high
    else:
        high, r = _price(v, pq.high, None, rules, True, False)
        rejects |= r
    v, p = raw.low, lr.low
    if v == p or (v != v and p != p):
        low = pq.low
    else:
        low, r = _price(v, pq.low, None, rules, True, False)
        rejects |= r
    v, p = raw.close, lr.close
    if v == p or (v != v and p != p):
        close = pq.close
    else:
        close, r = _price(v, pq.close, None, rules, True, False)
        rejects |= r
    v, p = raw.volume, lr.volume
    if v == p or (v != v and p != p):
        volume = pq.volume
    else:
        volume, r = _size(v)
        rejects |= r

    if bid is None:
        bid_size = None
    else:
        v, p = raw.bid_size, lr.bid_size
        if (v == p or (v != v and p != p)) and pq.bid_size is not None:
            bid_size = pq.bid_size
        else:
            bid_size, r = _size(v)
            rejects |= r
    if ask is None:
        ask_size = None
    else:
        v, p = raw.ask_size, lr.ask_size
        if (v == p or (v != v and p != p)) and pq.ask_size is not None:
            ask_size = pq.ask_size
        else:
            ask_size, r = _size(v)
            rejects |= r
    v, p = raw.last_size, lr.last_size
    if v == p or (v != v and p != p):
        last_size = pq.last_size
    else:
        last_size, r = _size(v)
        rejects |= r

    flags = 0
    if bid is not None and ask is not None:
        if not rejects and raw.bid is not None and raw.ask is not None:
            # Both sides are exactly the raw floats (on the grid): compare those, not Decimals.
            if raw.bid > raw.ask:
                flags = _CROSSED
            elif raw.bid == raw.ask:
                flags = _LOCKED
        elif bid > ask:
            flags = _CROSSED
        elif bid == ask:
            flags = _LOCKED
    if rejects & _PRICE_REJECTS:
        flags |= _REJECTED
    mdt = raw.market_data_type
    if mdt != 1:
        flags |= _DELAYED
    if farm_down:
        flags |= _STALE
    quote = new_quote(
        rules.key,
        seq,
        recv_ns,
        recv_utc,
        bid,
        ask,
        last,
        bid_size,
        ask_size,
        last_size,
        volume,
        opn,
        high,
        low,
        close,
        mdt,
        _FLAG_OF[flags],
    )
    return Normalized(quote, rejects)


@dataclass(slots=True)
class _Book:
    rules: InstrumentRules
    quote: Quote | None = None
    seq: int = 0
    last_raw: RawQuote | None = None
    last_activity_ns: int = 0


class NormalizerStats:
    """Counters the normalizer publishes in the hot state's `metrics` section."""

    __slots__ = ("by_reason", "published", "rejected_updates", "stale_marks", "unchanged", "unknown_key", "updates")

    def __init__(self) -> None:
        self.updates = 0
        self.published = 0
        self.unchanged = 0
        self.rejected_updates = 0
        self.stale_marks = 0
        self.unknown_key = 0
        self.by_reason: dict[str, int] = dict.fromkeys(Reject.NAMES.values(), 0)

    def as_dict(self) -> dict[str, object]:
        return {
            "updates": self.updates,
            "published": self.published,
            "unchanged": self.unchanged,
            "rejected_updates": self.rejected_updates,
            "stale_marks": self.stale_marks,
            "unknown_key": self.unknown_key,
            "rejected_by_reason": dict(self.by_reason),
        }


class Normalizer:
    """Per-instrument normalization, sequencing, staleness; publishes to the bus and the hot state.

    Call `register` once per verified instrument, then `on_raw` for every update (on the core loop). Call
    `check_stale` periodically (the broker session does, every `stale_after_s / 4`), and `set_farm_down`
    when IB reports a market-data farm outage or its recovery.
    """

    def __init__(
        self,
        clock: Clock,
        bus: EventBus | None,
        hot_state: HotState | None,
        *,
        stale_after_s: float = 5.0,
        max_jump_pct: float = 10.0,
    ) -> None:
        self.clock = clock
        self._publish: Callable[[object], None] | None = bus.publish if bus is not None else None
        self._put: Callable[[Quote], None] | None = hot_state.put_quote if hot_state is not None else None
        self.stale_after_ns = int(stale_after_s * 1e9)
        self.max_jump_pct = max_jump_pct
        self.farm_down = False
        self.stats = NormalizerStats()
        self._books: dict[str, _Book] = {}

    def register(self, key: str, min_tick: Decimal) -> None:
        """Start tracking an instrument; re-registering keeps its sequence number (seq never goes back)."""
        book = self._books.get(key)
        rules = InstrumentRules(key, min_tick, self.max_jump_pct)
        if book is None:
            self._books[key] = _Book(rules)
        else:
            book.rules = rules

    def keys(self) -> list[str]:
        return list(self._books)

    def quote(self, key: str) -> Quote | None:
        book = self._books.get(key)
        return book.quote if book is not None else None

    def on_raw(self, key: str, raw: RawQuote, recv_ns: int, recv_utc: datetime) -> Quote | None:
        """Normalize and publish one update; returns the published quote, or None if nothing changed."""
        quote = self.update(key, raw, recv_ns, recv_utc)
        if quote is not None and self._publish is not None:
            self._publish(QuoteUpdated(quote))
        return quote

    def update(self, key: str, raw: RawQuote, recv_ns: int, recv_utc: datetime) -> Quote | None:
        """`on_raw` without the bus event: the new quote is in the hot state; pass it to `publish` next.

        The feed normalizes a whole batch this way first, so every quote of a socket read is readable in the
        hot state before any bus subscriber (models, risk, UI bridge) runs for the first of them.
        """
        stats = self.stats
        stats.updates += 1
        book = self._books.get(key)
        if book is None:
            stats.unknown_key += 1
            return None
        book.last_activity_ns = recv_ns
        prev = book.quote
        # A repeat of the previous raw values (ib_async marks a ticker pending for ticks we do not use, such
        # as timestamps) only needs republishing if it clears staleness.
        if raw == book.last_raw and prev is not None and not (_int_and(prev.flags, _STALE) and not self.farm_down):
            stats.unchanged += 1
            return None
        if self.farm_down and prev is not None and _int_and(prev.flags, _STALE):
            # Ticks flowing again is the best evidence the farm is back, whatever IB said last.
            self.farm_down = False
        book.seq += 1
        last_raw = book.last_raw
        book.last_raw = raw
        quote, rejects = normalize(prev, raw, book.rules, book.seq, recv_ns, recv_utc, self.farm_down, last_raw)
        if rejects:
            stats.rejected_updates += 1
            by_reason = stats.by_reason
            for bit, name in Reject.NAMES.items():
                if rejects & bit:
                    by_reason[name] += 1
        book.quote = quote
        stats.published += 1
        if self._put is not None:
            self._put(quote)
        return quote

    def publish(self, quotes: Iterable[Quote]) -> None:
        """Publish `QuoteUpdated` for quotes made by `update`, in order."""
        publish = self._publish
        if publish is not None:
            for quote in quotes:
                publish(QuoteUpdated(quote))

    def _mark_stale(self, book: _Book) -> None:
        prev = book.quote
        if prev is None or prev.flags & _STALE:
            return
        book.seq += 1
        # Same values and receive time (the age stays visible), new sequence number, STALE flag.
        quote = replace(prev, seq=book.seq, flags=_FLAG_OF[int(prev.flags) | _STALE])
        book.quote = quote
        self.stats.stale_marks += 1
        if self._put is not None:
            self._put(quote)
        if self._publish is not None:
            self._publish(QuoteUpdated(quote))

    def _mark_fresh(self, book: _Book) -> None:
        prev = book.quote
        if prev is None or not prev.flags & _STALE:
            return
        book.seq += 1
        quote = replace(prev, seq=book.seq, flags=_FLAG_OF[int(prev.flags) & ~_STALE])
        book.quote = quote
        if self._put is not None:
            self._put(quote)
        if self._publish is not None:
            self._publish(QuoteUpdated(quote))

    def check_stale(self, now_ns: int | None = None) -> list[str]:
        """Flag every quote with no update for `stale_after_s` as STALE; returns the keys newly flagged."""
        now = self.clock.monotonic_ns() if now_ns is None else now_ns
        flagged = []
        for key, book in self._books.items():
            if book.quote is not None and not book.quote.flags & _STALE:
                if now - book.last_activity_ns >= self.stale_after_ns:
                    self._mark_stale(book)
                    flagged.append(key)
        return flagged

    def set_farm_down(self, down: bool) -> None:
        """A market-data farm outage (2103, 2110, …) marks every quote STALE; recovery clears recent ones.

        On recovery, a quote whose last update is older than `stale_after_s` stays STALE until a fresh tick.
        """
        self.farm_down = down
        now = self.clock.monotonic_ns()
        for book in self._books.values():
            if down:
                self._mark_stale(book)
            elif now - book.last_activity_ns < self.stale_after_ns:
                self._mark_fresh(book)

    def mark_all_stale(self) -> None:
        """Flag every quote STALE now (the connection is down; quotes are kept but not trusted)."""
        for book in self._books.values():
            self._mark_stale(book)

    def forget_raw(self) -> None:
        """Forget the last raw values (after a resubscription, the first update must always publish)."""
        for book in self._books.values():
            book.last_raw = None
