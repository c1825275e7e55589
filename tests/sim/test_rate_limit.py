"""IB's 50 messages/s limit at the simulated gateway: a client that keeps to it by its own clock is never refused.

ib_async sends at most `Client.MaxRequests` (45) in any `RequestsInterval` (1 s) of its own send times. A
queue of requests therefore goes out as full seconds back to back, and the gateway sees each second's
messages a little bunched (it answers one before reading the next). A zero-tolerance sliding window refused
such a client at the edge of every full second (error 100, the request dropped), which stalled an engine's
startup; IB does not refuse such clients.
"""

from __future__ import annotations

import asyncio

from omega_tui.sim import SimGateway
from tests.sim.conftest import connect, wait_until


async def _burst(gw: SimGateway, n: int, max_requests: int) -> tuple[list[int], list[object]]:
    ib = await connect(gw)
    codes: list[int] = []
    answers: list[object] = []
    ib.errorEvent += lambda req_id, code, text, contract: codes.append(code)
    ib.client.MaxRequests = max_requests
    ib.wrapper.currentTime = lambda t: answers.append(t)  # type: ignore[method-assign]
    try:
        await asyncio.sleep(1.1)  # the connect's own requests out of the window
        for _ in range(n):
            ib.client.reqCurrentTime()
        await wait_until(lambda: len(answers) + codes.count(100) >= n, limit=n / 40 + 5, what="every answer")
        await asyncio.sleep(0.2)
    finally:
        ib.disconnect()
    return codes, answers


async def test_a_client_throttled_at_45_a_second_is_never_refused(tgw: SimGateway) -> None:
    codes, answers = await _burst(tgw, 135, max_requests=45)  # three full seconds back to back
    assert codes.count(100) == 0
    assert len(answers) == 135


async def test_more_than_50_at_once_is_refused_with_error_100(tgw: SimGateway) -> None:
    codes, answers = await _burst(tgw, 120, max_requests=0)  # no client-side throttle
    assert 60 <= codes.count(100) <= 70
    assert len(answers) + codes.count(100) == 120
