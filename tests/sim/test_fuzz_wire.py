"""Hypothesis fuzzing of the gateway's socket: whatever one connection sends, every other one keeps being served.

The gateway runs in its own thread (as embedded); each example opens a plain socket, sends a mix of
garbage, random frames and mutated real requests, and closes. After each example a fresh client must
still get an answer, and the gateway must not have logged a crashed handler.
"""

from __future__ import annotations

import itertools
import logging
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ib_async import Contract, ExecutionFilter, LimitOrder, Stock, TagValue
from ib_async.client import Client

from omega_tui.sim import SimGateway
from omega_tui.sim.wire import FrameReader, encode_frame
from omega_tui.sim.wire.messages import INCOMING

HANDSHAKE = b"API\x00" + struct.pack(">I", 9) + b"v157..178"
_ids = itertools.count(1000)


class Crashes(logging.Handler):
    """Collects records that carry a traceback: a handler that blew up instead of answering."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


def real_requests() -> list[list[str]]:
    """Requests exactly as ib_async encodes them, to mutate."""
    sent: list[str] = []
    client = Client(None)
    client.connState = Client.CONNECTED
    client._serverVersion = 178
    client.sendMsg = sent.append  # type: ignore[method-assign]
    aapl = Stock("AAPL", "SMART", "USD", conId=265598)
    client.placeOrder(1, aapl, LimitOrder("BUY", 100, 190.0))
    client.placeOrder(
        2,
        aapl,
        LimitOrder("BUY", 100, 190.0, algoStrategy="Adaptive", algoParams=[TagValue("adaptivePriority", "Normal")]),
    )
    client.placeOrder(
        3, Contract(secType="BAG", symbol="AAPL", exchange="SMART", currency="USD"), LimitOrder("SELL", 1, 1.0)
    )
    client.reqMktData(4, aapl, "", False, False, [])
    client.reqMktData(5, aapl, "", True, False, [])
    client.reqContractDetails(6, aapl)
    client.reqHistoricalData(7, aapl, "", "1 D", "5 mins", "TRADES", 1, 1, True, [])
    client.reqHeadTimeStamp(8, aapl, "TRADES", 1, 1)
    client.reqExecutions(9, ExecutionFilter())
    client.cancelOrder(1, "")
    client.reqPnLSingle(10, "DU1234567", "", 265598)
    client.reqAccountSummary(11, "All", "NetLiquidation")
    client.reqAccountUpdates(True, "DU1234567")
    client.reqMarketDataType(3)
    client.reqGlobalCancel()
    return [m.split("\0")[:-1] for m in sent]


CORPUS = real_requests()
TEXT = st.one_of(
    st.text(max_size=12),
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "SMART",
            "AAPL",
            "STK",
            "BAG",
            "LMT",
            "PEG BENCH",
            "1.7976931348623157E308",
            "Infinite",
            "2147483647",
            "99999999999999999999",
            "\\u00e9",
        ]
    ),
)
# Values a real request might carry in any field: what mutations mostly draw from, so decoding succeeds
# and the request reaches its handler with an odd value instead of failing at the first field.
PLAUSIBLE = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "-1",
            "2",
            "5",
            "100",
            "190.05",
            "0.001",
            "2147483647",
            "BUY",
            "SELL",
            "MKT",
            "STP",
            "TRAIL",
            "IOC",
            "GTC",
            "1 min",
            "1 D",
            "TRADES",
        ]
    ),
    st.integers(-3, 10**7).map(str),
    TEXT,
)
MSG_ID = st.one_of(st.sampled_from(sorted(INCOMING)).map(str), st.integers(-5, 300).map(str), st.text(max_size=4))
RANDOM_FRAME = st.builds(lambda i, rest: [i, *rest], MSG_ID, st.lists(TEXT, max_size=40))


@st.composite
def mutated(draw: st.DrawFn) -> list[str]:
    fields = list(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(1, len(fields) - 1)) if len(fields) > 1 else 0
        # "" is how the wire says "unset", so blanking a field is a mutation of its own.
        fields[pos] = draw(st.one_of(st.just(""), PLAUSIBLE))
    cut = draw(st.one_of(st.none(), st.integers(1, len(fields))))
    return fields[:cut] if cut is not None else fields


FRAME = st.one_of(
    mutated().map(encode_frame),
    mutated().map(encode_frame),
    mutated().map(encode_frame),
    RANDOM_FRAME.map(encode_frame),
)
# Bytes that break the framing itself; sent last, since nothing after them can be framed any more.
TAIL = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.integers(2**20 + 1, 2**32 - 1).map(lambda n: struct.pack(">I", n)),  # an oversized length prefix
    st.integers(1, 200).map(lambda n: struct.pack(">I", n + 10) + b"x" * n),  # a truncated frame
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[SimGateway, Crashes]]:
    crashes = Crashes()
    logging.getLogger("omega_tui.sim").addHandler(crashes)
    gw = SimGateway(seed=3, speed=20.0)
    gw.start()
    try:
        yield gw, crashes
    finally:
        gw.stop()
        logging.getLogger("omega_tui.sim").removeHandler(crashes)


def start(sock: socket.socket, client_id: int) -> None:
    sock.sendall(HANDSHAKE)
    sock.sendall(encode_frame(["71", "2", str(client_id), ""]))


def healthy(gw: SimGateway) -> bool:
    """A fresh client connects and gets reqCurrentTime answered."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=3) as sock:
        start(sock, next(_ids))
        sock.sendall(encode_frame(["49", "1"]))
        reader = FrameReader()
        while True:
            data = sock.recv(65536)
            if not data:
                return False
            if any(f[0] == "49" for f in reader.feed(data)):
                return True


def blast(gw: SimGateway, preamble: bytes, chunks: list[bytes], handshake: bool) -> None:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=3) as sock:
        try:
            if handshake:
                start(sock, next(_ids))
            sock.sendall(preamble + b"".join(chunks))
            # Half-close and read to EOF: the gateway handles everything sent before it closes its side
            # (closing with unread replies would reset the connection and drop what was sent).
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass  # the gateway may close on us: that is an allowed answer


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(garbage=st.binary(min_size=1, max_size=200))
def test_garbage_instead_of_a_handshake(gateway: tuple[SimGateway, Crashes], garbage: bytes) -> None:
    gw, crashes = gateway
    blast(gw, garbage, [], handshake=False)
    assert healthy(gw)
    assert not crashes.records, crashes.records[0].getMessage()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(frames=st.lists(FRAME, min_size=1, max_size=12), tail=TAIL)
def test_random_and_mutated_messages_after_a_valid_handshake(
    gateway: tuple[SimGateway, Crashes], frames: list[bytes], tail: bytes
) -> None:
    gw, crashes = gateway
    blast(gw, b"", [*frames, tail], handshake=True)
    assert healthy(gw)
    assert not crashes.records, crashes.records[0].getMessage()
