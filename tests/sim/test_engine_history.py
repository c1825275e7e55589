"""Historical bars: consistent with the price process, deterministic, IB's duration/bar-size rules."""

from __future__ import annotations

import functools

import pytest

from omega_tui.sim.engine import ContractDB, HistoryError, HistoryGenerator, Market, SimClock

AAPL, ES, EURUSD = 265598, 495512563, 12087792


def make(seed: int = 4, run_for: float = 900.0) -> tuple[Market, HistoryGenerator]:
    clock = SimClock()
    db = ContractDB(seed)
    market = Market(db, clock, seed)
    clock.advance(run_for)
    market.step()
    return market, HistoryGenerator(db, market, seed)


@functools.cache
def shared() -> tuple[Market, HistoryGenerator]:
    """One market run shared by the read-only tests (bars never change the market; the cache is deterministic)."""
    return make()


@pytest.mark.parametrize(
    ("duration", "bar_size"),
    [
        ("60 S", "1 secs"), ("1800 S", "5 secs"), ("1800 S", "1 min"), ("1 D", "1 min"), ("2 D", "5 mins"),
        ("1 W", "15 mins"), ("1 W", "1 hour"), ("1 M", "30 mins"), ("1 M", "1 day"), ("1 Y", "1 day"),
    ],
)  # fmt: skip
def test_bars_are_ohlc_consistent_ordered_and_end_at_the_current_price(duration: str, bar_size: str):
    market, history = shared()
    bars = history.bars(AAPL, None, duration, bar_size, "TRADES", use_rth=True)
    assert bars
    assert [b.time for b in bars] == sorted({b.time for b in bars})
    for bar in bars:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
        assert bar.volume > 0 and bar.bar_count > 0 and bar.low <= bar.wap <= bar.high
    assert bars[-1].close == market.quote(AAPL).last
    assert bars[-1].time <= market.now


def test_recorded_bars_reproduce_the_markets_own_day_statistics():
    market, history = make(run_for=1800.0)
    bars = history.bars(AAPL, None, "1800 S", "1 min", "TRADES", use_rth=True)
    q = market.quote(AAPL)
    assert max(b.high for b in bars) == q.high and min(b.low for b in bars) == q.low and bars[0].open == q.open


def test_same_seed_gives_the_same_bars_whatever_was_asked_before():
    _, fresh = make()
    _, used = make()
    used.bars(AAPL, None, "1 D", "5 mins")
    assert fresh.bars(AAPL, None, "1 W", "5 mins") == used.bars(AAPL, None, "1 W", "5 mins")


def test_synthetic_history_joins_the_recorded_part_without_a_gap():
    market, history = shared()
    bars = history.bars(AAPL, None, "2 D", "1 hour", use_rth=True)
    start = next(i for i, b in enumerate(bars) if b.time + 3600 > market.start_time)
    assert bars[start - 1].close == market.start_price(AAPL) == bars[start].open


def test_rth_bars_lie_inside_regular_hours_and_extended_bars_outside_too():
    _, history = shared()
    rth = history.bars(ES, None, "2 D", "30 mins", use_rth=True)
    full = history.bars(ES, None, "2 D", "30 mins", use_rth=False)
    assert len(full) > len(rth) > 0


def test_end_in_the_past_cuts_the_bars_there():
    market, history = shared()
    end = market.start_time - 2 * 86400  # Monday 09:30
    bars = history.bars(AAPL, end, "1 D", "1 hour", use_rth=False)
    assert bars and bars[-1].time < end


def test_midpoint_bars_have_no_volume_like_ib():
    _, history = shared()
    bars = history.bars(EURUSD, None, "1800 S", "1 min", "MIDPOINT", use_rth=False)
    assert bars and all(b.volume == -1 for b in bars)


@pytest.mark.parametrize(
    ("con_id", "duration", "bar_size", "what", "code"),
    [
        (AAPL, "1 D", "1 secs", "TRADES", 162),  # too many bars
        (AAPL, "1 Y", "1 hour", "TRADES", 162),
        (AAPL, "3 X", "1 min", "TRADES", 321),
        (AAPL, "1 D", "7 mins", "TRADES", 321),
        (AAPL, "1 D", "1 min", "PRICE", 321),
        (EURUSD, "1 D", "1 min", "TRADES", 162),  # no trades for FX
        (4242, "1 D", "1 min", "TRADES", 200),
    ],
)
def test_requests_ib_refuses_raise_history_error_with_its_code(con_id, duration, bar_size, what, code):
    _, history = shared()
    with pytest.raises(HistoryError) as info:
        history.bars(con_id, None, duration, bar_size, what)
    assert info.value.code == code and info.value.text


def test_head_timestamp_is_years_before_the_start_and_bars_before_it_are_refused():
    market, history = shared()
    head = history.head_timestamp(AAPL)
    assert head < market.start_time - 4 * 365 * 86400
    with pytest.raises(HistoryError, match="no data"):
        history.bars(AAPL, head - 86400, "1 M", "1 day")
