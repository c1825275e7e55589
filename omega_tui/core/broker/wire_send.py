"""A faster `Client.send` for ib_async 2.1 that writes byte-for-byte the same messages.

ib_async's `Client.send(*fields, makeEmpty=True)` turns every field into its wire string and joins them
with NUL terminators. On every call it rebuilds a dict of seven lambdas (closing over `makeEmpty`), runs an
`isinstance(field, Contract)` check per field, and writes two pieces per field through an `io.StringIO`;
a `placeOrder` has ~110 fields, so that overhead is most of the encoding's cost (the field list itself is
built by `Client.placeOrder`, untouched here). `wire_send` does the same conversion with module-level
dispatch tables (one per `makeEmpty`; str, int, bool and float, ~95% of a placeOrder's fields, are
handled inline before the table), a list and one `"\\0".join`, then hands the string to the client's
`sendMsg`. That is `send_msg` once installed: ib_async's `Client.sendMsg` (request throttle, length prefix,
socket write, debug log) with its usual case written out without the general queue loop (nothing queued, room
under the limit: the same bookkeeping, bytes and log line; any other case is `Client.sendMsg` itself).

The conversion rules are ib_async 2.1's, in its order of precedence (tests/data/test_wire_send.py compares
the bytes handed to `sendMsg` by both implementations, for random fields and for real requests):

- a `Contract` (any subclass): its twelve identifying fields, each `str()`-ed, joined by NUL;
- exactly `float`: "" for `UNSET_DOUBLE` when `makeEmpty`, "Infinite" for +inf, else `str(f)`;
- exactly `int`: "" for `UNSET_INTEGER` when `makeEmpty`, else `str(i)`;
- exactly `bool` (looked up by exact type, so before `int`): "1" / "0";
- `None`: ""; exactly `str`: itself;
- exactly `list` (of `TagValue`): "tag=value;" per item, concatenated;
- anything else (Decimal, subclasses of str/int/float, enums): `str(field)`.

Each field is followed by a NUL; no fields give the empty message (which `sendMsg` does not send).

`install(client)` puts it on one `Client` instance (an instance attribute, so every `Client` method that
calls `self.send` uses it), together with `order_wire`'s template `placeOrder` (core/broker/order_wire.py,
which builds on `encode_field` here and bypasses `send` for orders); it is idempotent. ib_async's `IB` keeps
one `Client` for its lifetime and reuses it across reconnects, so installing once per client is enough; the
broker session nevertheless re-checks on every connect in case the client object was replaced.
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import struct
import types
from collections.abc import Callable, Sequence
from typing import Any

from ib_async import Client, Contract
from ib_async.util import UNSET_DOUBLE, UNSET_INTEGER

# The contract's twelve identifying fields, in the order `_contract` encodes them.
CONTRACT_FIELD_NAMES: tuple[str, ...] = (
    "conId",
    "symbol",
    "secType",
    "lastTradeDateOrContractMonth",
    "strike",
    "right",
    "multiplier",
    "exchange",
    "primaryExchange",
    "currency",
    "localSymbol",
    "tradingClass",
)
CONTRACT_FIELDS = operator.attrgetter(*CONTRACT_FIELD_NAMES)


def _contract(c: Any) -> str:
    return "\0".join(
        [
            str(c.conId),
            str(c.symbol),
            str(c.secType),
            str(c.lastTradeDateOrContractMonth),
            str(c.strike),
            str(c.right),
            str(c.multiplier),
            str(c.exchange),
            str(c.primaryExchange),
            str(c.currency),
            str(c.localSymbol),
            str(c.tradingClass),
        ]
    )


def _float_empty(f: float) -> str:
    if f == UNSET_DOUBLE:
        return ""
    return "Infinite" if f == math.inf else str(f)


def _float_keep(f: float) -> str:
    return "Infinite" if f == math.inf else str(f)


def _int_empty(i: int) -> str:
    return "" if i == UNSET_INTEGER else str(i)


def _none(_: object) -> str:
    return ""


def _bool(b: bool) -> str:
    return "1" if b else "0"


def _tag_values(lst: list[Any]) -> str:
    return "".join([f"{v.tag}={v.value};" for v in lst])


# Keyed by exact type, as ib_async's `FORMAT_HANDLERS.get(type(field), str)`; `str` fields never get here.
_ENCODE_EMPTY: dict[type, Callable[[Any], str]] = {
    float: _float_empty,
    int: _int_empty,
    type(None): _none,
    bool: _bool,
    list: _tag_values,
}
_ENCODE_KEEP: dict[type, Callable[[Any], str]] = {
    float: _float_keep,
    int: str,
    type(None): _none,
    bool: _bool,
    list: _tag_values,
}


def encode_field(field: Any, make_empty: bool = True) -> str:
    """One field as `Client.send` of ib_async 2.1 writes it (without its NUL terminator)."""
    kind = type(field)
    if kind is str:
        return field  # type: ignore[no-any-return]
    if kind is int:
        return "" if make_empty and field == UNSET_INTEGER else str(field)
    if kind is bool:
        return "1" if field else "0"
    if kind is float:
        if make_empty and field == UNSET_DOUBLE:
            return ""
        return "Infinite" if field == math.inf else str(field)
    convert = (_ENCODE_EMPTY if make_empty else _ENCODE_KEEP).get(kind)
    if convert is None:
        convert = _contract if isinstance(field, Contract) else str
    return convert(field)


def encode(fields: tuple[Any, ...], make_empty: bool = True) -> str:
    """The message `Client.send(*fields, makeEmpty=make_empty)` of ib_async 2.1 hands to `sendMsg`."""
    table = _ENCODE_EMPTY if make_empty else _ENCODE_KEEP
    parts: list[str] = []
    append = parts.append
    get = table.get
    for field in fields:
        # The four types of ~95% of a placeOrder's fields inline (the table's rules, without a call each);
        # the rest through the table.
        kind = type(field)
        if kind is str:
            append(field)
        elif kind is int:
            append("" if make_empty and field == UNSET_INTEGER else str(field))
        elif kind is bool:
            append("1" if field else "0")
        elif kind is float:
            if make_empty and field == UNSET_DOUBLE:
                append("")
            else:
                append("Infinite" if field == math.inf else str(field))
        else:
            convert = get(kind)
            if convert is None:
                # A Contract is never of one of the table's exact types, so checking it here keeps
                # ib_async's "Contract first" precedence.
                convert = _contract if isinstance(field, Contract) else str
            append(convert(field))
    if not parts:
        return ""
    append("")  # every field is NUL-terminated
    return "\0".join(parts)


def wire_send(self: Client, *fields: Any, makeEmpty: bool = True) -> None:
    """Drop-in for `Client.send`: same checks, same message, same `sendMsg`."""
    if not self.isConnected():
        raise ConnectionError("Not connected")
    self.sendMsg(encode(fields, bool(makeEmpty)))


length_prefix = struct.Struct(">I").pack  # a message's length as its frame begins with it
_unpack_length = struct.Struct(">I").unpack_from
_running_loop = asyncio.get_running_loop  # (a module attribute: tests drive it with a fake loop)
_DEBUG = logging.DEBUG


def _room(client: Client, times: Any, t: float, n: int) -> bool:
    """ib_async's throttle window at time `t`: whether `n` more messages fit under `MaxRequests` (0: no limit)
    once the request times older than `RequestsInterval` are dropped from `times` (the client's `_timeQ`, in
    time order); they are dropped only when the messages fit, so a False leaves `times` as it was."""
    interval = client.RequestsInterval
    expired = 0
    for when in times:
        if t - when <= interval:
            break
        expired += 1
    limit = client.MaxRequests
    if limit and len(times) - expired + n > limit:
        return False
    for _ in range(expired):
        times.popleft()
    return True


def send_msg(self: Client, msg: str | None) -> None:
    """Drop-in for ib_async 2.1's `Client.sendMsg(msg)`: the same throttle bookkeeping, bytes and log line,
    with a short path for the usual case, written out: a message to send (not the throttle's own wake-up, `None`),
    nothing queued, not throttling, a running loop, and room under `MaxRequests` once the request times older
    than `RequestsInterval` are dropped. Then, as `Client.sendMsg` does for a one-message queue: the message is
    encoded, length-prefixed and handed to `conn.sendMsg`, its time (`loop.time()`) appended to `_timeQ`, and it
    is logged at DEBUG; the queue stays empty and the throttle off, so no event is emitted. Every other case is
    `Client.sendMsg` itself (tests/data/test_wire_send.py drives both with the same sequences and compares the
    bytes, queues, times, scheduled wake-ups, throttle events and log lines)."""
    if not msg or self._msgQ or self._isThrottling:
        Client.sendMsg(self, msg)
        return
    try:
        loop = _running_loop()
    except RuntimeError:  # (ib_async's getLoop then finds or makes one)
        Client.sendMsg(self, msg)
        return
    t = loop.time()
    times = self._timeQ
    if not _room(self, times, t, 1):
        Client.sendMsg(self, msg)  # it queues the message and schedules the throttle's wake-up
        return
    data = msg.encode()
    self.conn.sendMsg(length_prefix(len(data)) + data)
    times.append(t)
    logger = self._logger
    if logger.isEnabledFor(_DEBUG):
        logger.debug(">>> %s", msg[:-1].replace("\0", ","))


def frame(msgs: Sequence[str]) -> bytes:
    """Messages as ib_async's `Client.sendMsg` puts them on the wire: each UTF-8 encoded and prefixed with its
    length (4 bytes, big-endian), one after the other."""
    framed = []
    for msg in msgs:
        data = msg.encode()
        framed.append(length_prefix(len(data)))
        framed.append(data)
    return b"".join(framed)


def unframe(data: bytes) -> list[str]:
    """The messages of `frame`'s output."""
    msgs: list[str] = []
    at = 0
    while at < len(data):
        (size,) = _unpack_length(data, at)
        at += 4
        msgs.append(data[at : at + size].decode())
        at += size
    return msgs


def send_msgs(client: Client, msgs: list[str]) -> bool:
    """`send_msg` for several messages at once (a bracket's placeOrder messages), handed to the socket in ONE
    write: True once sent, or False with nothing done, for the caller to send them one by one. The messages
    are framed (`frame`) and sent by `send_framed`, which says when they are taken."""
    if not msgs or not all(msgs):
        return False
    return send_framed(client, frame(msgs), len(msgs))


def send_framed(client: Client, data: bytes, count: int) -> bool:
    """`send_msgs` for `count` messages already framed into `data` (`frame`; a group sender's encoder frames
    them itself): True once written, or False with nothing done.

    Only the usual case of `send_msg` (the client's `sendMsg` is this module's, not wrapped; nothing queued, not
    throttling, a running loop, room under `MaxRequests` for all of them once the request times older than
    `RequestsInterval` are dropped; the connection's `sendMsg` not held by a cork). Then each message is as
    `send_msg` would send it: encoded, length-prefixed, its time appended to `_timeQ` (one `loop.time()` for the
    group, as ib_async's own `sendMsg` stamps the messages it drains in one call) and logged at DEBUG; the
    connection's counters move as for one `Connection.sendMsg` per message. tests/data/test_group_send.py
    compares the stream, the throttle's state and the log with `send_msg` called per message."""
    installed = client.__dict__.get("sendMsg")
    if getattr(installed, "__func__", None) is not send_msg or client._msgQ or client._isThrottling or count < 1:
        return False
    conn = client.conn
    if "sendMsg" in conn.__dict__:  # (a cork holds the connection's writes)
        return False
    try:
        loop = _running_loop()
    except RuntimeError:
        return False
    t = loop.time()
    times = client._timeQ
    if not _room(client, times, t, count):
        return False  # (some would wait: `send_msg` per message queues them in ib_async's throttle)
    transport = conn.transport
    if transport:  # (as Connection.sendMsg: nothing is written without a transport)
        transport.write(data)
        conn.numBytesSent += len(data)
        conn.numMsgSent += count
    times.extend([t] * count)
    logger = client._logger
    if logger.isEnabledFor(_DEBUG):
        for msg in unframe(data):
            logger.debug(">>> %s", msg[:-1].replace("\0", ","))
    return True


def install(client: Client) -> bool:
    """Use Omega's encoders for this client's messages: `wire_send` for every message, `send_msg` for its
    `sendMsg` (unless something is already set on the instance), and `order_wire`'s template `placeOrder`
    (core/broker/order_wire.py) for orders. False if all were already in place (idempotent; a missing one is
    put back)."""
    from omega_tui.core.broker import order_wire  # it builds on this module: imported here, not at the top

    changed = False
    if not _send_installed(client):
        client.send = types.MethodType(wire_send, client)
        changed = True
    if "sendMsg" not in client.__dict__:  # (one set on the instance, a capture or a timer, is left alone)
        client.sendMsg = types.MethodType(send_msg, client)
        changed = True
    return order_wire.install(client) or changed


def installed(client: Client) -> bool:
    from omega_tui.core.broker import order_wire

    return _send_installed(client) and "sendMsg" in client.__dict__ and order_wire.installed(client)


def _send_installed(client: Client) -> bool:
    current = client.__dict__.get("send")
    return isinstance(current, types.MethodType) and current.__func__ is wire_send
