"""Fixtures for the simulated gateway: servers that always stop, connected ib_async clients, bounded waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from ib_async import IB

from omega_tui.sim import SimGateway

WAIT = 5.0


async def wait_until(cond: Callable[[], object], limit: float = WAIT, what: str = "condition") -> None:
    """Poll `cond` on the running loop until truthy; fail the test after `limit` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        await asyncio.sleep(0.005)


async def pump(
    gw: SimGateway, cond: Callable[[], object], *, step: float = 0.25, limit: float = WAIT, what: str = "condition"
) -> None:
    """Advance a virtual-clock gateway in steps until `cond` holds (bounded in wall time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit}s waiting for {what}")
        await gw.advance_async(step)
        await asyncio.sleep(0.002)


@pytest.fixture
async def vgw() -> AsyncIterator[SimGateway]:
    """A virtual-clock gateway on the test's own loop (deterministic: time moves only when advanced)."""
    gw = SimGateway(seed=7, clock="virtual")
    await gw.start_async()
    try:
        yield gw
    finally:
        await gw.stop_async()


@pytest.fixture
def tgw() -> Iterator[SimGateway]:
    """A real-time gateway in its own thread, as `omega-tui` embeds it."""
    gw = SimGateway(seed=7, speed=5.0)
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


class LogGrab(logging.Handler):
    """Collects ib_async's log records so tests can assert on what a client logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]

    def has(self, text: str) -> bool:
        return any(text in m for m in self.messages())


@pytest.fixture
def iblog() -> Iterator[LogGrab]:
    grab = LogGrab()
    logger = logging.getLogger("ib_async")
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(grab)
    try:
        yield grab
    finally:
        logger.removeHandler(grab)
        logger.setLevel(old)


async def connect(gw: SimGateway, client_id: int = 1, limit: float = 3.0) -> IB:
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=limit)
    return ib


@pytest.fixture
async def ib(vgw: SimGateway, iblog: LogGrab) -> AsyncIterator[IB]:
    """An ib_async client connected to the virtual gateway as clientId 1."""
    client = await connect(vgw)
    try:
        yield client
    finally:
        client.disconnect()
