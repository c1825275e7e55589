"""`TokenBucket`: the order rate's bucket, by hand and against a reference model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega_tui.core.clock import FakeClock
from omega_tui.core.throttle import TokenBucket


def test_a_bucket_starts_full_refills_at_its_rate_and_never_overfills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock, rate=10, capacity=3)
    assert bucket.try_take(3) and not bucket.try_take(1)
    clock.advance(0.1)  # one token
    assert not bucket.try_take(2) and bucket.try_take(1)
    clock.advance(60)
    assert bucket.available == 3 and bucket.used_fraction() == 0
    assert bucket.wait_s(4) == pytest.approx(0.1)


def test_take_at_uses_the_time_it_is_given() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock, rate=10, capacity=3)
    assert bucket.try_take(3)
    later = clock.monotonic_ns() + 200_000_000  # two tokens' worth, read by the caller (the clock has not moved)
    assert not bucket.take_at(3, later) and bucket.take_at(2, later)
    assert not bucket.take_at(1, later - 1)  # an earlier time refills nothing and takes nothing back


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300_000_000), st.sampled_from([0.5, 1.0, 2.0, 3.0])), max_size=30))
def test_take_at_the_clocks_time_is_try_take(steps: list[tuple[int, float]]) -> None:
    """The same sequence of waits and takes, one bucket through `try_take` and one through `take_at` with the
    clock's time: the same answers and the same tokens, which follow a float model of the rule."""
    clock = FakeClock()
    by_clock, by_time = TokenBucket(clock, rate=10, capacity=3), TokenBucket(clock, rate=10, capacity=3)
    tokens, last = 3.0, clock.monotonic_ns()
    for wait_ns, n in steps:
        clock.advance(ns=wait_ns)
        now = clock.monotonic_ns()
        tokens = min(3.0, tokens + (now - last) * (10 / 1e9))
        last = now
        expected = tokens >= n
        if expected:
            tokens -= n
        assert by_clock.try_take(n) is expected
        assert by_time.take_at(n, now) is expected
        assert by_clock._tokens == by_time._tokens == pytest.approx(tokens)
