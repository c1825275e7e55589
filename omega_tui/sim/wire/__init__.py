"""TWS wire protocol: framing, handshake and a declarative message table (encoders and decoders)."""

from __future__ import annotations

from omega_tui.sim.wire.codec import (
    UnknownMessage,
    decode_incoming,
    decode_outgoing,
    encode_incoming,
    encode_outgoing,
)
from omega_tui.sim.wire.framing import (
    HANDSHAKE_PREFIX,
    MAX_MESSAGE_SIZE,
    FrameError,
    FrameReader,
    Handshake,
    HandshakeError,
    encode_frame,
    parse_handshake,
)
from omega_tui.sim.wire.messages import INCOMING, MAX_VERSION, MIN_VERSION, OUT_BY_NAME, OUTGOING
from omega_tui.sim.wire.schema import UNSET_DOUBLE, UNSET_INT, WireError

__all__ = [
    "HANDSHAKE_PREFIX",
    "INCOMING",
    "MAX_MESSAGE_SIZE",
    "MAX_VERSION",
    "MIN_VERSION",
    "OUTGOING",
    "OUT_BY_NAME",
    "UNSET_DOUBLE",
    "UNSET_INT",
    "FrameError",
    "FrameReader",
    "Handshake",
    "HandshakeError",
    "UnknownMessage",
    "WireError",
    "decode_incoming",
    "decode_outgoing",
    "encode_frame",
    "encode_incoming",
    "encode_outgoing",
    "parse_handshake",
]
