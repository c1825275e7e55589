"""The gateway's socket edge, spoken raw: handshake bytes, version negotiation, bad input, limits."""

from __future__ import annotations

import asyncio
import struct

import pytest

from omega_tui.sim import SimGateway
from omega_tui.sim.wire import FrameReader, encode_frame, encode_incoming
from tests.sim.conftest import connect, wait_until


class Raw:
    """A bare TCP peer that speaks (or mangles) the TWS framing."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = FrameReader()
        self.inbox: list[list[str]] = []

    @classmethod
    async def open(cls, gw: SimGateway) -> Raw:
        r, w = await asyncio.open_connection("127.0.0.1", gw.port)
        return cls(r, w)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def handshake(self, versions: bytes = b"v157..178", client_id: int = 1) -> list[str]:
        self.send(b"API\x00" + struct.pack(">I", len(versions)) + versions)
        reply = await self.expect(lambda f: len(f) == 2)
        if client_id >= 0:
            self.send(encode_incoming("startApi", {"clientId": client_id, "optCapab": ""}, int(reply[0])))
            await self.expect(lambda f: f[0] == "9")
        return reply

    async def expect(self, match: object, limit: float = 3.0) -> list[str]:
        """The first received message `match(fields)` accepts (earlier ones stay in the inbox)."""

        async def read() -> list[str]:
            while True:
                for fields in self.inbox:
                    if match(fields):  # type: ignore[operator]
                        self.inbox.remove(fields)
                        return fields
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionResetError("closed by the gateway")
                self.inbox.extend(self.frames.feed(data))

        return await asyncio.wait_for(read(), limit)

    async def closed(self, limit: float = 3.0) -> bool:
        """True once the gateway has closed this connection."""

        async def drain() -> bool:
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    return True
                if not data:
                    return True

        return await asyncio.wait_for(drain(), limit)

    def close(self) -> None:
        self.writer.close()


def is_error(code: int) -> object:
    return lambda f: f[0] == "4" and f[3] == str(code)


async def test_handshake_reply_is_two_fields_with_version_178(vgw: SimGateway) -> None:
    raw = await Raw.open(vgw)
    try:
        version, conn_time = await raw.handshake(client_id=-1)
        assert version == "178"
        assert conn_time.endswith(" UTC") and len(conn_time.split()[0]) == 8
    finally:
        raw.close()


async def test_version_negotiates_down_to_the_clients_maximum(vgw: SimGateway) -> None:
    raw = await Raw.open(vgw)
    try:
        version, _ = await raw.handshake(b"v100..160", client_id=-1)
        assert version == "160"
    finally:
        raw.close()


async def test_startup_sends_accounts_next_id_then_farm_notices(vgw: SimGateway) -> None:
    raw = await Raw.open(vgw)
    try:
        raw.send(b"API\x00\x00\x00\x00\x09v157..178")
        await raw.expect(lambda f: len(f) == 2)
        raw.send(b"\x00\x00\x00\x0871\x002\x001\x00\x00")
        accounts = await raw.expect(lambda f: True)
        next_id = await raw.expect(lambda f: True)
        farms = [await raw.expect(lambda f: True) for _ in range(3)]
        assert accounts == ["15", "1", "DU1234567"]
        assert next_id[:2] == ["9", "1"] and int(next_id[2]) >= 1
        assert [f[3] for f in farms] == ["2104", "2106", "2158"]
        assert all(f[2] == "-1" for f in farms)
    finally:
        raw.close()


async def test_client_below_157_is_refused_with_a_clear_error(vgw: SimGateway) -> None:
    raw = await Raw.open(vgw)
    try:
        raw.send(b"API\x00" + struct.pack(">I", 9) + b"v100..156")
        err = await raw.expect(lambda f: f[0] == "4")
        assert err[3] == "503" and "v157..178" in err[4]
        assert await raw.closed()
    finally:
        raw.close()


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\n\r\n", b"\x00\x00\x00\x05hello", b"API\x00\xff\xff\xff\xff"])
async def test_garbage_before_the_handshake_closes_only_that_connection(
    vgw: SimGateway, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    ib = await connect(vgw, client_id=1)
    raw = await Raw.open(vgw)
    try:
        raw.send(garbage)
        assert await raw.closed()
        assert "closing" in caplog.text and "handshake" in caplog.text
        assert (await ib.reqCurrentTimeAsync()) is not None
    finally:
        raw.close()
        ib.disconnect()


async def test_unknown_message_id_gets_505_and_the_connection_stays(vgw: SimGateway) -> None:
    raw = await Raw.open(vgw)
    try:
        await raw.handshake()
        raw.send(encode_frame(["9999", "1"]))
        assert (await raw.expect(is_error(505)))[2] == "-1"
        raw.send(encode_frame(["49", "1"]))
        assert (await raw.expect(lambda f: f[0] == "49"))[1] == "1"
    finally:
        raw.close()


async def test_malformed_message_gets_320_and_the_connection_stays(vgw: SimGateway) -> None:
    raw = await Raw.open(vgw)
    try:
        await raw.handshake()
        raw.send(encode_frame(["1", "11", "not-a-number"]))
        await raw.expect(is_error(320))
        raw.send(encode_frame(["3", "5"]))  # a placeOrder cut short
        await raw.expect(is_error(320))
        raw.send(encode_frame(["49", "1"]))
        await raw.expect(lambda f: f[0] == "49")
    finally:
        raw.close()


async def test_oversized_message_closes_the_connection(vgw: SimGateway, caplog: pytest.LogCaptureFixture) -> None:
    raw = await Raw.open(vgw)
    try:
        await raw.handshake()
        raw.send(struct.pack(">I", 64 * 1024 * 1024) + b"x" * 100)
        assert await raw.closed()
        assert "exceeds" in caplog.text
    finally:
        raw.close()


async def test_requests_before_start_api_are_ignored(vgw: SimGateway) -> None:
    raw = await Raw.open(vgw)
    try:
        await raw.handshake(client_id=-1)
        raw.send(encode_frame(["49", "1"]))
        raw.send(encode_incoming("startApi", {"clientId": 4, "optCapab": ""}, 178))
        await raw.expect(lambda f: f[0] == "9")
        assert not any(f[0] == "49" for f in raw.inbox)
    finally:
        raw.close()


async def test_more_than_50_messages_a_second_gets_error_100(vgw: SimGateway) -> None:
    raw = await Raw.open(vgw)
    try:
        await raw.handshake()
        raw.send(b"".join(encode_frame(["49", "1"]) for _ in range(60)))
        await raw.expect(is_error(100))
        answered = 0
        while True:
            try:
                await raw.expect(lambda f: f[0] == "49", limit=0.3)
                answered += 1
            except TimeoutError:
                break
        assert answered == 50 - 1  # startApi counted too
    finally:
        raw.close()


async def test_at_most_32_connections(caplog: pytest.LogCaptureFixture) -> None:
    gw = SimGateway(clock="virtual")
    await gw.start_async()
    raws: list[Raw] = []
    try:
        for _ in range(32):
            raws.append(await Raw.open(gw))
        await wait_until(lambda: len(gw.server.conns) == 32)
        extra = await Raw.open(gw)
        raws.append(extra)
        assert await extra.closed()
        assert "32 connections already open" in caplog.text
        version, _ = await raws[0].handshake(client_id=-1)
        assert version == "178"
    finally:
        for r in raws:
            r.close()
        await gw.stop_async()
