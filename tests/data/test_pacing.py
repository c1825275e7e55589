"""Historical-data pacing under IB's rules, driven by a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable

import pytest

from omega_tui.core.clock import FakeClock
from omega_tui.core.throttle import SENT_LOG_MAX, Backoff, HistoricalPacer, HistoricalRequest, PacingViolation

NS = 1_000_000_000


class FakeTime:
    """A sleep that advances the fake clock instead of waiting; records every pause."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.pauses: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)


def req(con_id: int, n: int = 0, what: str = "TRADES") -> HistoricalRequest:
    # Different durations make requests for one contract non-identical.
    return HistoricalRequest(con_id, "SMART", what, f"{1800 + n} S", "1 min")


def assert_rules_hold(sent: Iterable[tuple[int, HistoricalRequest]]) -> None:
    """Check IB's rules on what was actually sent."""
    log = list(sent)
    for i, (t, r) in enumerate(log):
        earlier = log[:i]
        same = [u for u, s in earlier if s == r]
        assert not same or t - same[-1] >= 15 * NS, f"identical request within 15 s: {r}"
        recent_contract = [u for u, s in earlier if s.contract_key == r.contract_key and t - u < 2 * NS]
        assert len(recent_contract) < 5, f"6 requests for {r.contract_key} within 2 s"
        recent = [u for u, _ in earlier if t - u < 600 * NS]
        assert len(recent) < 60, "more than 60 requests within 10 minutes"


async def run_all(pacer: HistoricalPacer, requests: list[HistoricalRequest]) -> list[HistoricalRequest]:
    async def fetch_of(r: HistoricalRequest) -> HistoricalRequest:
        return r

    return await asyncio.gather(*(pacer.submit(r, lambda r=r: fetch_of(r)) for r in requests))


async def test_a_burst_for_one_contract_is_spread_to_five_per_two_seconds(fake_clock: FakeClock) -> None:
    t = FakeTime(fake_clock)
    pacer = HistoricalPacer(fake_clock, t.sleep)
    requests = [req(265598, n) for n in range(12)]
    done = await asyncio.wait_for(run_all(pacer, requests), 5)
    assert done == requests
    assert_rules_hold(pacer.sent_log)
    first = pacer.sent_log[0][0]
    assert pacer.sent_log[5][0] - first >= 2 * NS  # the sixth had to wait


async def test_more_than_sixty_requests_wait_for_the_ten_minute_window(fake_clock: FakeClock) -> None:
    t = FakeTime(fake_clock)
    pacer = HistoricalPacer(fake_clock, t.sleep)
    requests = [req(1000 + n) for n in range(75)]
    await asyncio.wait_for(run_all(pacer, requests), 5)
    assert_rules_hold(pacer.sent_log)
    assert pacer.sent_log[60][0] - pacer.sent_log[0][0] >= 600 * NS


async def test_an_identical_request_waits_fifteen_seconds(fake_clock: FakeClock) -> None:
    t = FakeTime(fake_clock)
    pacer = HistoricalPacer(fake_clock, t.sleep)
    await asyncio.wait_for(run_all(pacer, [req(1), req(1)]), 5)
    assert_rules_hold(pacer.sent_log)
    assert pacer.sent_log[1][0] - pacer.sent_log[0][0] >= 15 * NS


async def test_no_more_than_fifty_requests_are_open_at_once(fake_clock: FakeClock) -> None:
    t = FakeTime(fake_clock)
    pacer = HistoricalPacer(fake_clock, t.sleep, window_max=1000)
    release = asyncio.Event()
    peak = 0

    async def slow() -> None:
        nonlocal peak
        peak = max(peak, pacer.open)
        await release.wait()

    tasks = [asyncio.ensure_future(pacer.submit(req(5000 + n), slow)) for n in range(55)]
    for _ in range(200):
        await asyncio.sleep(0)
    assert pacer.open == 50 and len(pacer.sent_log) == 50
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert peak == 50 and len(pacer.sent_log) == 55 and pacer.open == 0


async def test_a_162_pacing_refusal_is_retried_after_backoff(fake_clock: FakeClock) -> None:
    t = FakeTime(fake_clock)
    pacer = HistoricalPacer(fake_clock, t.sleep, backoff=Backoff(20.0, 60.0, rng=random.Random(1)))
    answers = iter([PacingViolation("162: pacing violation"), ["bar"]])

    async def fetch() -> list[str]:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    result = await asyncio.wait_for(pacer.submit(req(7), fetch), 5)
    assert result == ["bar"]
    assert pacer.violations == 1 and pacer.retries == 1
    assert any(p >= 10.0 for p in t.pauses)  # backoff of 20 s: half fixed, half jittered
    assert pacer.sent_log[1][0] - pacer.sent_log[0][0] >= 15 * NS
    assert_rules_hold(pacer.sent_log)


async def test_pacing_refusals_beyond_max_retries_are_raised(fake_clock: FakeClock) -> None:
    t = FakeTime(fake_clock)
    pacer = HistoricalPacer(fake_clock, t.sleep, max_retries=2)

    async def refuse() -> None:
        raise PacingViolation("162")

    with pytest.raises(PacingViolation):
        await asyncio.wait_for(pacer.submit(req(8), refuse), 5)
    assert len(pacer.sent_log) == 3 and pacer.open == 0


def test_delay_is_zero_for_a_fresh_request(fake_clock: FakeClock) -> None:
    pacer = HistoricalPacer(fake_clock)
    assert pacer.delay_s(req(1)) == 0.0


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = Backoff(1.0, 8.0, rng=random.Random(3))
    delays = [backoff.next_delay() for _ in range(6)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(4.0 <= d <= 8.0 for d in delays[3:])


async def test_the_sent_log_keeps_only_the_most_recent_sends_and_the_count_keeps_going(fake_clock: FakeClock) -> None:
    pacer = HistoricalPacer(fake_clock, FakeTime(fake_clock).sleep)
    requests = [req(con_id, n) for n in range(3) for con_id in range(SENT_LOG_MAX // 3 + 10)]
    await run_all(pacer, requests)
    assert pacer.sent == len(requests) > SENT_LOG_MAX
    assert len(pacer.sent_log) == SENT_LOG_MAX
    assert [r for _, r in pacer.sent_log] == requests[-SENT_LOG_MAX:]
