"""The normalizer's rules as a table: sentinels, crossed/locked, refused prices, staleness, delayed data."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.normalizer import InstrumentRules, Normalizer, RawQuote, Reject, normalize
from omega_tui.core.types import Quote, QuoteFlag, QuoteUpdated

NAN = float("nan")
UNSET_DOUBLE = 1.7976931348623157e308
UNSET_INT = float(2**31 - 1)
T0 = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)


def rules(tick: str = "0.01", jump: float = 10.0) -> InstrumentRules:
    return InstrumentRules("AAPL", Decimal(tick), jump)


def prev_quote(**kw: object) -> Quote:
    base: dict[str, object] = dict(
        key="AAPL",
        seq=1,
        recv_ns=1,
        recv_utc=T0,
        bid=Decimal("100.00"),
        ask=Decimal("100.02"),
        last=Decimal("100.01"),
        bid_size=100,
        ask_size=200,
        last_size=10,
        volume=1000,
    )
    base.update(kw)
    return Quote(**base)  # type: ignore[arg-type]


RAW_OK = dict(bid=100.01, ask=100.03, last=100.02, bid_size=100.0, ask_size=300.0, last_size=5.0, volume=1100.0)


def raw(**kw: object) -> RawQuote:
    values: dict[str, object] = dict(RAW_OK)
    values.update(kw)
    return RawQuote(**values)  # type: ignore[arg-type]


# (case id, raw overrides, field, expected value, expected flags present, expected reject bits)
CASES = [
    ("good two-sided book", {}, "bid", Decimal("100.01"), QuoteFlag.NONE, 0),
    ("NaN bid is missing", {"bid": NAN, "bid_size": NAN}, "bid", None, QuoteFlag.NONE, 0),
    ("-1 bid (IB's empty side) is missing", {"bid": -1.0, "bid_size": 0.0}, "bid", None, QuoteFlag.NONE, 0),
    ("unset double ask is missing", {"ask": UNSET_DOUBLE}, "ask", None, QuoteFlag.NONE, 0),
    ("None last is missing", {"last": None}, "last", None, QuoteFlag.NONE, 0),
    ("missing side has no size", {"bid": NAN, "bid_size": 100.0}, "bid_size", None, QuoteFlag.NONE, 0),
    ("unset integer size is missing", {"volume": UNSET_INT}, "volume", None, QuoteFlag.NONE, 0),
    ("NaN size is missing", {"last_size": NAN}, "last_size", None, QuoteFlag.NONE, 0),
    ("negative size is refused", {"ask_size": -5.0}, "ask_size", None, QuoteFlag.NONE, Reject.BAD_SIZE),
    ("crossed book is flagged", {"bid": 100.05, "ask": 100.03}, "bid", Decimal("100.05"), QuoteFlag.CROSSED, 0),
    ("locked book is flagged", {"bid": 100.03, "ask": 100.03}, "ask", Decimal("100.03"), QuoteFlag.LOCKED, 0),
    ("zero bid keeps the last good bid", {"bid": 0.0}, "bid", Decimal("100.00"), QuoteFlag.REJECTED_PRICE, Reject.ZERO),
    (
        "negative ask keeps the last good ask",
        {"ask": -3.0},
        "ask",
        Decimal("100.02"),
        QuoteFlag.REJECTED_PRICE,
        Reject.NEGATIVE,
    ),
    (
        "off-grid bid is refused",
        {"bid": 100.005},
        "bid",
        Decimal("100.00"),
        QuoteFlag.REJECTED_PRICE,
        Reject.OFF_GRID,
    ),
    ("sub-penny trade print is accepted", {"last": 100.015}, "last", Decimal("100.015"), QuoteFlag.NONE, 0),
    (
        "garbage trade price is refused",
        {"last": 100.0123456},
        "last",
        Decimal("100.01"),
        QuoteFlag.REJECTED_PRICE,
        Reject.OFF_GRID,
    ),
    (
        "a single print beyond the jump is an outlier",
        {"bid": 150.00, "prev_bid": 100.00, "ask": 150.02, "prev_ask": 100.02},
        "bid",
        Decimal("100.00"),
        QuoteFlag.REJECTED_PRICE,
        Reject.OUTLIER,
    ),
    (
        "a second consecutive print at the new level is accepted",
        {"bid": 150.00, "prev_bid": 150.00, "ask": 150.02, "prev_ask": 150.02},
        "bid",
        Decimal("150.00"),
        QuoteFlag.NONE,
        0,
    ),
    ("a move inside the jump limit is accepted", {"bid": 109.00, "ask": 109.02}, "bid", Decimal("109.00"), 0, 0),
    ("delayed data is flagged", {"market_data_type": 3}, "bid", Decimal("100.01"), QuoteFlag.DELAYED, 0),
    ("frozen data is flagged", {"market_data_type": 2}, "bid", Decimal("100.01"), QuoteFlag.DELAYED, 0),
]


@pytest.mark.parametrize(
    ("overrides", "field", "expected", "flag", "rejects"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_normalize_rule_table(
    overrides: dict[str, object], field: str, expected: object, flag: QuoteFlag, rejects: int
) -> None:
    quote, bits = normalize(prev_quote(), raw(**overrides), rules(), 2, 5, T0)
    assert getattr(quote, field) == expected
    if flag:
        assert quote.flags & flag == flag
    else:
        assert quote.flags & (QuoteFlag.CROSSED | QuoteFlag.LOCKED | QuoteFlag.REJECTED_PRICE | QuoteFlag.DELAYED) == 0
    assert bits == rejects


def test_normalized_prices_are_exact_decimals_on_the_tick_grid() -> None:
    quote, _ = normalize(None, raw(bid=0.1 + 0.2, ask=1.1, last=1.05), rules(), 1, 1, T0)
    # 0.1 + 0.2 is 0.30000000000000004 as a float; on a 0.01 grid it is exactly 0.30.
    assert quote.bid == Decimal("0.30") and str(quote.ask) == "1.10"
    fx, _ = normalize(None, raw(bid=1.05505, ask=1.0551, last=NAN), rules("0.00005"), 1, 1, T0)
    assert fx.bid == Decimal("1.05505") and fx.ask == Decimal("1.05510")


def test_first_quote_has_no_outlier_reference() -> None:
    quote, bits = normalize(None, raw(bid=5000.00, ask=5000.02), rules(), 1, 1, T0)
    assert quote.bid == Decimal("5000.00") and bits == 0


def test_farm_outage_marks_the_quote_stale() -> None:
    quote, _ = normalize(prev_quote(), raw(), rules(), 2, 5, T0, farm_down=True)
    assert quote.stale


def test_no_nan_or_sentinel_survives_in_any_field() -> None:
    sentinels = dict.fromkeys(RawQuote._fields[:11], NAN)
    quote, _ = normalize(None, RawQuote(**sentinels), rules(), 1, 1, T0)  # type: ignore[arg-type]
    for name in ("bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume", "open", "high", "low", "close"):
        assert getattr(quote, name) is None, name


class Collected:
    def __init__(self, bus: EventBus) -> None:
        self.quotes: list[Quote] = []
        bus.subscribe(QuoteUpdated, lambda e: self.quotes.append(e.quote))


def make(clock: FakeClock, stale_after_s: float = 5.0) -> tuple[Normalizer, Collected]:
    bus = EventBus()
    got = Collected(bus)
    norm = Normalizer(clock, bus, None, stale_after_s=stale_after_s, max_jump_pct=10.0)
    norm.register("AAPL", Decimal("0.01"))
    return norm, got


def test_sequence_numbers_increase_per_instrument_and_repeats_are_not_republished(fake_clock: FakeClock) -> None:
    norm, got = make(fake_clock)
    norm.register("MSFT", Decimal("0.01"))
    now = fake_clock.now_utc()
    norm.on_raw("AAPL", raw(), 10, now)
    norm.on_raw("AAPL", raw(), 11, now)  # identical values: nothing new to say
    norm.on_raw("MSFT", raw(), 12, now)
    norm.on_raw("AAPL", raw(bid=100.00), 13, now)
    assert [(q.key, q.seq) for q in got.quotes] == [("AAPL", 1), ("MSFT", 1), ("AAPL", 2)]
    assert norm.stats.unchanged == 1


def test_rejections_are_counted_by_reason(fake_clock: FakeClock) -> None:
    norm, got = make(fake_clock)
    now = fake_clock.now_utc()
    norm.on_raw("AAPL", raw(), 1, now)
    norm.on_raw("AAPL", raw(bid=0.0), 2, now)
    norm.on_raw("AAPL", raw(bid=100.005), 3, now)
    norm.on_raw("AAPL", raw(bid=200.00, prev_bid=100.01), 4, now)
    assert norm.stats.by_reason["zero"] == 1
    assert norm.stats.by_reason["off_grid"] == 1
    assert norm.stats.by_reason["outlier"] == 1
    assert norm.stats.rejected_updates == 3
    assert all(q.bid == Decimal("100.01") for q in got.quotes)


def test_silence_beyond_stale_after_marks_the_quote_stale_until_a_fresh_tick(fake_clock: FakeClock) -> None:
    norm, got = make(fake_clock, stale_after_s=5.0)
    norm.on_raw("AAPL", raw(), fake_clock.monotonic_ns(), fake_clock.now_utc())
    fake_clock.advance(4.9)
    assert norm.check_stale() == []
    fake_clock.advance(0.2)
    assert norm.check_stale() == ["AAPL"]
    stale = got.quotes[-1]
    assert stale.stale and stale.seq == 2 and stale.recv_ns == got.quotes[0].recv_ns
    norm.on_raw("AAPL", raw(), fake_clock.monotonic_ns(), fake_clock.now_utc())  # same values, but fresh
    assert not got.quotes[-1].stale and got.quotes[-1].seq == 3


def test_farm_outage_then_recovery_clears_stale_for_recent_quotes(fake_clock: FakeClock) -> None:
    norm, got = make(fake_clock)
    norm.on_raw("AAPL", raw(), fake_clock.monotonic_ns(), fake_clock.now_utc())
    norm.set_farm_down(True)
    assert got.quotes[-1].stale
    fake_clock.advance(1.0)
    norm.set_farm_down(False)
    assert not got.quotes[-1].stale


def test_farm_recovery_keeps_old_quotes_stale(fake_clock: FakeClock) -> None:
    norm, got = make(fake_clock)
    norm.on_raw("AAPL", raw(), fake_clock.monotonic_ns(), fake_clock.now_utc())
    norm.set_farm_down(True)
    fake_clock.advance(10.0)
    norm.set_farm_down(False)
    assert got.quotes[-1].stale


def test_a_fresh_tick_during_a_farm_outage_ends_it(fake_clock: FakeClock) -> None:
    norm, got = make(fake_clock)
    norm.on_raw("AAPL", raw(), fake_clock.monotonic_ns(), fake_clock.now_utc())
    norm.set_farm_down(True)
    norm.on_raw("AAPL", raw(bid=100.00), fake_clock.monotonic_ns(), fake_clock.now_utc())
    assert not got.quotes[-1].stale and not norm.farm_down


def test_updates_for_unregistered_instruments_are_counted_not_published(fake_clock: FakeClock) -> None:
    norm, got = make(fake_clock)
    assert norm.on_raw("ZZZ", raw(), 1, fake_clock.now_utc()) is None
    assert norm.stats.unknown_key == 1 and got.quotes == []


def test_fast_quote_constructor_builds_exactly_a_quote() -> None:
    from dataclasses import fields

    from omega_tui.core.normalizer import new_quote

    # A distinct value per field, so a swapped or missing field shows; a new Quote field breaks the call.
    args = [f"v{i}" for i in range(len(fields(Quote)))]
    built = new_quote(*args)  # type: ignore[arg-type]
    assert type(built) is Quote and built == Quote(*args)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        built.bid = None  # type: ignore[misc]  # still frozen


def test_skipping_unchanged_fields_gives_the_same_quotes_as_revalidating_everything() -> None:
    # A seeded walk over every field with NaN (fresh objects, so equality is by value), sentinels, zero,
    # off-grid and outlier values mixed in: the fast path (a field equal to the previous raw value, NaN
    # included, keeps the previous result) must give exactly what validating every field from scratch gives.
    import random

    rng = random.Random(3)
    odd = [-1.0, 0.0, UNSET_DOUBLE, UNSET_INT, None, 100.005, 180.0, -5.0]
    level = dict(RAW_OK, open=99.5, high=101.0, low=99.0, close=99.8)  # where each field's good values walk
    r = rules()
    fast_prev: Quote | None = None
    slow_prev: Quote | None = None
    last_raw: RawQuote | None = None
    for seq in range(1, 4000):
        update: dict[str, float | None] = {}
        for name, good in level.items():
            roll = rng.random()
            if roll < 0.35 and last_raw is not None:
                before = getattr(last_raw, name)
                update[name] = float("nan") if before is not None and before != before else before
            elif roll < 0.45:
                update[name] = float("nan")
            elif roll < 0.55:
                update[name] = rng.choice(odd)
            else:
                step = 100.0 if "size" in name or name == "volume" else 0.01
                level[name] = round(max(step, good + rng.choice((-1, 1)) * step), 2)
                update[name] = level[name]
        current = RawQuote(**update, market_data_type=rng.choice((1, 1, 3)))  # type: ignore[arg-type]
        fast, fast_bits = normalize(fast_prev, current, r, seq, seq, T0, False, last_raw)
        slow, slow_bits = normalize(slow_prev, current, r, seq, seq, T0, False, None)
        # Refused prices are reported on every update that carries them (the quote is flagged); a bad size that
        # repeats the previous raw value is counted once, when it arrives.
        assert fast == slow and fast_bits & Reject.PRICE == slow_bits & Reject.PRICE, (seq, current)
        fast_prev, slow_prev, last_raw = fast, slow, current
