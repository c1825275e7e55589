"""Encode and decode whole messages through the declarative table, per negotiated version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omega_tui.sim.wire.framing import encode_frame
from omega_tui.sim.wire.messages import INCOMING, OUT_BY_NAME, OUTGOING
from omega_tui.sim.wire.schema import Message, WireError, decode_fields, encode_fields


class UnknownMessage(WireError):
    """A message id the table does not know."""

    def __init__(self, msg_id: str) -> None:
        super().__init__(f"unknown message id {msg_id[:20]!r}")
        self.msg_id = msg_id


def decode_incoming(fields: Sequence[str], version: int) -> tuple[Message, dict[str, Any]]:
    """A client request as (message, values). Raises UnknownMessage or WireError."""
    if not fields:
        raise WireError("empty message")
    try:
        msg = INCOMING[int(fields[0])]
    except (ValueError, KeyError):
        raise UnknownMessage(fields[0]) from None
    return msg, decode_fields(msg, fields, version)


def encode_outgoing(name: str, values: Mapping[str, Any], version: int) -> bytes:
    """A framed server message by name (e.g. "tickPrice")."""
    return encode_frame(encode_fields(OUT_BY_NAME[name], values, version))


def decode_outgoing(fields: Sequence[str], version: int) -> tuple[Message, dict[str, Any]]:
    """A server message as (message, values); used by tests to read what the sim sent."""
    msg = OUTGOING[int(fields[0])]
    return msg, decode_fields(msg, fields, version)


def encode_incoming(name: str, values: Mapping[str, Any], version: int) -> bytes:
    """A framed client request by name; used by tests and the fuzzer to speak to the sim."""
    for msg in INCOMING.values():
        if msg.name == name:
            return encode_frame(encode_fields(msg, values, version))
    raise KeyError(name)
