"""The event bus: handlers in subscription order, on the publisher's stack; a failing one is logged, counted
and never stops the others."""

from __future__ import annotations

import logging

import pytest

from omega_tui.core.bus import EventBus


class _Ping:
    pass


class _Pong:
    pass


def test_handlers_run_in_subscription_order_then_the_catch_alls() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(_Ping, lambda e: seen.append("a"))
    bus.subscribe_all(lambda e: seen.append(f"all:{type(e).__name__}"))
    bus.subscribe(_Ping, lambda e: seen.append("b"))
    bus.subscribe(_Pong, lambda e: seen.append("pong"))
    bus.publish(_Ping())
    assert seen == ["a", "b", "all:_Ping"]
    bus.publish(object())  # nobody subscribed to its type: the catch-all still hears it
    assert seen[-1] == "all:object"


def test_a_failing_handler_is_logged_and_counted_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(event: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe(_Ping, broken)
    bus.subscribe(_Ping, lambda e: seen.append("after"))
    bus.subscribe_all(broken)
    bus.subscribe_all(lambda e: seen.append("all"))
    with caplog.at_level(logging.ERROR, logger="omega_tui.core.bus"):
        bus.publish(_Ping())
    assert seen == ["after", "all"]
    assert bus.handler_errors == 2
    assert sum("failed on _Ping" in r.getMessage() and r.exc_info is not None for r in caplog.records) == 2


def test_unsubscribe() -> None:
    bus = EventBus()
    seen: list[int] = []

    def handler(event: object) -> None:
        seen.append(1)

    bus.subscribe(_Ping, handler)
    bus.unsubscribe(_Ping, handler)
    bus.unsubscribe(_Pong, handler)  # never subscribed: nothing happens
    bus.publish(_Ping())
    assert seen == []
