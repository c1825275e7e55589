"""Framing and handshake: 4-byte big-endian length prefixes, NUL-terminated text fields.

`FrameReader` is incremental: feed it bytes, get whole messages back. Callers must know: it raises
`FrameError` for an oversized frame (the connection must then be closed; the stream cannot be
resynchronised), and `parse_handshake` raises `HandshakeError` for anything but `API\\0` + a
length-prefixed `vMIN..MAX[ options]`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

MAX_MESSAGE_SIZE = 1 << 20  # far above any real TWS message; ibapi itself caps at 0xFFFFFF
HANDSHAKE_PREFIX = b"API\x00"
_LEN = struct.Struct(">I")
_VERSION_RE = re.compile(rb"^v(\d{1,4})\.\.(\d{1,4})(?: (.*))?$", re.S)


class FrameError(ValueError):
    """The byte stream cannot be framed (oversized length prefix)."""


class HandshakeError(ValueError):
    """The peer did not open with a valid TWS API handshake."""


@dataclass(frozen=True)
class Handshake:
    """What the client offered: a version range and optional connect options (e.g. +PACEAPI)."""

    min_version: int
    max_version: int
    options: str


def encode_frame(fields: Sequence[str]) -> bytes:
    """One framed message from text fields (each gets its NUL terminator)."""
    payload = ("\0".join(fields) + "\0").encode()
    return _LEN.pack(len(payload)) + payload


def encode_raw(payload: bytes) -> bytes:
    """Frame an already-encoded payload."""
    return _LEN.pack(len(payload)) + payload


def parse_handshake(buf: bytes | bytearray, max_size: int = 4096) -> tuple[Handshake, int] | None:
    """The handshake and the bytes it used, or None if more bytes are needed."""
    n = min(len(buf), len(HANDSHAKE_PREFIX))
    if bytes(buf[:n]) != HANDSHAKE_PREFIX[:n]:
        raise HandshakeError(f"expected b'API\\x00', got {bytes(buf[:8])!r}")
    if len(buf) < 8:
        return None
    (length,) = _LEN.unpack_from(buf, 4)
    if length == 0 or length > max_size:
        raise HandshakeError(f"handshake length {length} out of range")
    if len(buf) < 8 + length:
        return None
    body = bytes(buf[8 : 8 + length]).rstrip(b"\x00")
    m = _VERSION_RE.match(body)
    if not m:
        raise HandshakeError(f"bad version range {body[:40]!r}")
    lo, hi = int(m.group(1)), int(m.group(2))
    if lo > hi:
        raise HandshakeError(f"empty version range {lo}..{hi}")
    options = (m.group(3) or b"").decode(errors="replace")
    return Handshake(lo, hi, options), 8 + length


class FrameReader:
    """Accumulates bytes and yields complete messages as lists of text fields."""

    __slots__ = ("_buf", "max_size")

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self.max_size = max_size

    def feed(self, data: bytes | bytearray) -> list[list[str]]:
        """Append data; return every message now complete. Raises FrameError on an oversized frame."""
        buf = self._buf
        buf += data
        out: list[list[str]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if length > self.max_size:
                raise FrameError(f"message of {length} bytes exceeds the {self.max_size}-byte limit")
            if end - pos - 4 < length:
                break
            text = bytes(buf[pos + 4 : pos + 4 + length]).decode(errors="backslashreplace")
            pos += 4 + length
            fields = text.split("\0")
            if fields and fields[-1] == "":
                fields.pop()
            out.append(fields)
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf)
