"""The price process: determinism, consistency of quotes, tick rate, burst mode, shocks."""

from __future__ import annotations

import pytest

from omega_tui.sim.engine import ContractDB, Market, SimClock


def make(seed: int = 11, speed: float = 1.0) -> tuple[SimClock, ContractDB, Market]:
    clock = SimClock()
    db = ContractDB(seed)
    return clock, db, Market(db, clock, seed, speed=speed)


def run(market: Market, clock: SimClock, steps: list[float]) -> list[tuple]:
    out = []
    for dt in steps:
        clock.advance(dt)
        market.step()
        out.append(tuple(market.quote(c) for c in market.con_ids()))
    return out


def test_same_seed_and_steps_give_identical_quotes():
    steps = [0.1, 0.7, 2.0, 0.05, 5.0] * 10
    a_clock, _, a = make()
    b_clock, _, b = make()
    assert run(a, a_clock, steps) == run(b, b_clock, steps)


def test_quotes_do_not_depend_on_step_granularity():
    fine_clock, _, fine = make()
    coarse_clock, _, coarse = make()
    run(fine, fine_clock, [0.25] * 400)
    run(coarse, coarse_clock, [100.0])
    assert [fine.quote(c) for c in fine.con_ids()] == [coarse.quote(c) for c in coarse.con_ids()]


def test_different_seeds_give_different_paths():
    a_clock, _, a = make(1)
    b_clock, _, b = make(2)
    assert run(a, a_clock, [10.0]) != run(b, b_clock, [10.0])


def test_quotes_stay_consistent_on_every_contract():
    clock, db, market = make()
    for _ in range(300):
        clock.advance(0.5)
        for con_id in market.step():
            q = market.quote(con_id)
            contract = db.get(con_id)
            assert contract is not None
            for price in (q.bid, q.ask, q.last, q.open, q.high, q.low):
                assert contract.on_tick_grid(price), (contract.local_symbol, price)
            spread_ticks = round((q.ask - q.bid) / contract.min_tick)
            assert 1 <= spread_ticks <= 3
            assert q.low <= q.last <= q.high
            assert q.bid_size > 0 and q.ask_size > 0 and q.volume > 0


def test_last_trade_prints_between_bid_and_ask_when_it_happens():
    clock, _, market = make()
    previous = market.quote(265598)
    for _ in range(500):
        clock.advance(0.05)
        market.step()
        q = market.quote(265598)
        if q.volume != previous.volume:  # a trade printed with this event
            assert q.bid <= q.last <= q.ask
        previous = q


def test_volume_only_grows():
    clock, _, market = make()
    volumes = []
    for _ in range(50):
        clock.advance(1.0)
        market.step()
        volumes.append(market.quote(756733).volume)
    assert volumes == sorted(volumes) and volumes[-1] > volumes[0]


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_tick_rate_is_a_few_per_second_scaled_by_speed(speed: float):
    clock, _, market = make(speed=speed)
    clock.advance(60.0)
    market.step()
    rate = market.quote(265598).seq / 60.0
    assert 2.0 * speed < rate < 7.0 * speed


def test_burst_mode_changes_selected_contracts_every_step_without_time_passing():
    clock, _, market = make()
    market.set_burst(10, [265598, 272093])
    before = market.quote(265598).seq
    changed = market.step(clock.now())
    assert changed == [265598, 272093]
    assert market.quote(265598).seq == before + 10
    market.set_burst(0)
    assert market.step(clock.now()) == []


def test_shock_moves_the_book_and_is_reported_by_the_next_step():
    clock, _, market = make()
    before = market.quote(265598)
    market.shock(265598, -10.0)
    after = market.quote(265598)
    assert after.mid == pytest.approx(before.mid * 0.9, rel=1e-3)
    assert after.last == after.bid
    assert 265598 in market.step(clock.now())


def test_set_quote_rejects_prices_off_the_grid():
    _, _, market = make()
    with pytest.raises(ValueError, match="tick grid"):
        market.set_quote(265598, 100.005, 100.02)
