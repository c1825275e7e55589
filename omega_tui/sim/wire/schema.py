"""Declarative message schema: fields, version-conditional blocks, repeats and variants.

A message is a tuple of nodes. `encode_fields` walks the nodes with a value mapping and a server
version and yields wire text; `decode_fields` walks the same nodes over received text and builds a
dict. Both directions come from the one description, so an encoder and its decoder cannot drift.
Callers must know: names inside one message are a flat namespace (repeats hold lists of dicts), and
a value absent from the mapping is sent as the field's default (usually "").
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

UNSET_INT = 2**31 - 1
UNSET_DOUBLE = sys.float_info.max
# TWS writes the unset double in Java's notation; ib_async parses it with float().
UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
MAX_REPEAT = 10_000


class WireError(ValueError):
    """A message that does not fit its schema (truncated, bad number, absurd count)."""


class Kind(Enum):
    """How a field's value is written and read."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    QTY = "qty"  # a size/quantity: integral values without ".0" (old clients parse them with int())


Values = Mapping[str, Any]
Pred = Callable[[Values], bool]


def _in_range(version: int, since: int, until: int | None) -> bool:
    """Whether a node exists at `version`: from `since` on, and before `until` when given."""
    return version >= since and (until is None or version < until)


@dataclass(frozen=True, slots=True)
class F:
    """One field. `const` fixes the value (version fields); `since`/`until` bound the server version."""

    name: str
    kind: Kind = Kind.STR
    since: int = 0
    until: int | None = None  # exclusive
    const: Any = None
    default: Any = None

    def active(self, version: int) -> bool:
        return _in_range(version, self.since, self.until)


@dataclass(frozen=True, slots=True)
class If:
    """A block present only when `when(values)` holds (and the version is in range)."""

    when: Pred
    body: tuple[Node, ...]
    since: int = 0
    until: int | None = None

    def active(self, version: int) -> bool:
        return _in_range(version, self.since, self.until)


@dataclass(frozen=True, slots=True)
class Rep:
    """A count field followed by that many records; the values hold `name` as a list of dicts."""

    name: str
    body: tuple[Node, ...]
    since: int = 0
    until: int | None = None

    def active(self, version: int) -> bool:
        return _in_range(version, self.since, self.until)


@dataclass(frozen=True, slots=True)
class Variant:
    """A tag field selecting one of several bodies (order conditions by condType)."""

    tag: F
    cases: Mapping[int, tuple[Node, ...]]


Node = F | If | Rep | Variant
# (name, writer, fixed text or None, default value)
PlanStep = tuple[str, Callable[[Any], str], str | None, Any]


def V(version: int, since: int = 0, until: int | None = None) -> F:
    """A message version field: always written as `version`, ignored when read."""
    return F("_version", Kind.INT, since=since, until=until, const=version)


@dataclass(frozen=True)
class Message:
    """One message type of one direction."""

    msg_id: int
    name: str
    nodes: tuple[Node, ...]
    # Per-version cache of a flat plan (name, writer, const) when the message has no blocks.
    _flat: dict[int, tuple[PlanStep, ...] | None] = field(default_factory=dict, compare=False, repr=False)
    _positional: dict[int, Callable[..., bytes]] = field(default_factory=dict, compare=False, repr=False)

    def flat_plan(self, version: int) -> tuple[PlanStep, ...] | None:
        """Precomputed field writers for messages without conditional blocks (the hot path)."""
        if version in self._flat:
            return self._flat[version]
        plan: list[PlanStep] = []
        flat = True
        for node in self.nodes:
            if not isinstance(node, F):
                flat = False
                break
            if node.active(version):
                fixed = None if node.const is None else WRITERS[node.kind](node.const)
                plan.append((node.name, WRITERS[node.kind], fixed, node.default))
        result = tuple(plan) if flat else None
        self._flat[version] = result
        return result

    def positional(self, version: int) -> Callable[..., bytes]:
        """A framed-message encoder taking the non-constant fields positionally, in table order (hot paths).

        Generated from the same table as `encode_fields`, so it writes exactly the same bytes; only for
        messages without conditional blocks.
        """
        enc = self._positional.get(version)
        if enc is None:
            enc = self._positional[version] = _compile_positional(self, version)
        return enc


# ---- value formatting ---------------------------------------------------------------------------


def _w_str(v: Any) -> str:
    return "" if v is None else str(v)


def _w_int(v: Any) -> str:
    if type(v) is int:  # the common case first: this runs for every field of every tick
        return str(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(int(v))


def _w_float(v: Any) -> str:
    if type(v) is float and v < UNSET_DOUBLE and v != -math.inf:
        return repr(v)
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return _decimal_text(v)
    f = float(v)
    if f == UNSET_DOUBLE:
        return UNSET_DOUBLE_TEXT
    if f == math.inf:
        return "Infinite"
    return repr(f)


def _decimal_text(d: Decimal) -> str:
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def _w_qty(v: Any) -> str:
    if type(v) is int:
        return str(v)
    if v is None:
        return ""
    if isinstance(v, Decimal):
        return _decimal_text(v)
    if isinstance(v, int):
        return str(v)
    f = float(v)
    if f == UNSET_DOUBLE:
        return UNSET_DOUBLE_TEXT
    if f.is_integer():
        return str(int(f))
    return repr(f)


def _w_bool(v: Any) -> str:
    return "1" if v else "0"


WRITERS: dict[Kind, Callable[[Any], str]] = {
    Kind.STR: _w_str,
    Kind.INT: _w_int,
    Kind.FLOAT: _w_float,
    Kind.QTY: _w_qty,
    Kind.BOOL: _w_bool,
}


def _r_int(s: str) -> int | None:
    if s == "":
        return None
    try:
        return int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            raise WireError(f"not an integer: {s[:40]!r}") from None
        if not f.is_integer():
            raise WireError(f"not an integer: {s[:40]!r}") from None
        return int(f)


def _r_float(s: str) -> float | None:
    if s == "":
        return None
    if s == "Infinite":
        return math.inf
    try:
        f = float(s)
    except ValueError:
        raise WireError(f"not a number: {s[:40]!r}") from None
    if math.isnan(f):
        raise WireError("NaN is not a valid value")
    return None if f == UNSET_DOUBLE else f


def _r_qty(s: str) -> Decimal | None:
    if s == "":
        return None
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise WireError(f"not a quantity: {s[:40]!r}") from None
    if not d.is_finite():
        raise WireError(f"not a finite quantity: {s[:40]!r}")
    return None if d >= Decimal(UNSET_DOUBLE_TEXT) else d


def _r_bool(s: str) -> bool:
    if s in ("", "0", "false", "False"):
        return False
    if s in ("1", "true", "True"):
        return True
    v = _r_int(s)
    return bool(v)


READERS: dict[Kind, Callable[[str], Any]] = {
    Kind.STR: lambda s: s,
    Kind.INT: _r_int,
    Kind.FLOAT: _r_float,
    Kind.QTY: _r_qty,
    Kind.BOOL: _r_bool,
}


# ---- encoding -----------------------------------------------------------------------------------


def encode_fields(msg: Message, values: Values, version: int) -> list[str]:
    """The message as wire text fields, message id first."""
    plan = msg.flat_plan(version)
    out = [str(msg.msg_id)]
    if plan is not None:
        get = values.get
        for name, writer, fixed, default in plan:
            if fixed is not None:
                out.append(fixed)
            else:
                v = get(name)
                out.append(writer(default if v is None else v))
        return out
    _encode_nodes(msg.nodes, values, version, out)
    return out


def _encode_nodes(nodes: Sequence[Node], values: Values, version: int, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, F):
            if node.active(version):
                v = node.const if node.const is not None else values.get(node.name)
                out.append(WRITERS[node.kind](node.default if v is None else v))
        elif isinstance(node, If):
            if node.active(version) and node.when(values):
                _encode_nodes(node.body, values, version, out)
        elif isinstance(node, Rep):
            if node.active(version):
                items = values.get(node.name) or []
                out.append(str(len(items)))
                for item in items:
                    _encode_nodes(node.body, _Chain(item, values), version, out)
        else:
            tag = values.get(node.tag.name)
            out.append(WRITERS[node.tag.kind](tag))
            body = node.cases.get(int(tag)) if tag is not None else None
            if body is None:
                raise WireError(f"unknown {node.tag.name} {tag!r}")
            _encode_nodes(body, values, version, out)


class _Chain(Mapping[str, Any]):
    """A record's values, falling back to the enclosing message's (so predicates can see both)."""

    __slots__ = ("inner", "outer")

    def __init__(self, inner: Mapping[str, Any], outer: Mapping[str, Any]) -> None:
        self.inner = inner
        self.outer = outer

    def __getitem__(self, key: str) -> Any:
        if key in self.inner:
            return self.inner[key]
        return self.outer[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**self.outer, **self.inner})

    def __len__(self) -> int:
        return len({**self.outer, **self.inner})


def _compile_positional(msg: Message, version: int) -> Callable[..., bytes]:
    plan = msg.flat_plan(version)
    if plan is None:
        raise TypeError(f"{msg.name} has conditional blocks; use encode_fields")
    env: dict[str, Any] = {"_pack": struct.Struct(">I").pack, "_unset": UNSET_DOUBLE, "_ninf": -math.inf}
    args: list[str] = []
    parts: list[str] = [repr(f"{msg.msg_id}\0")]
    for i, (_name, writer, fixed, default) in enumerate(plan):
        if fixed is not None:
            parts.append(repr(fixed + "\0"))
            continue
        arg = f"a{len(args)}"
        args.append(arg)
        env[f"w{i}"] = writer
        env[f"d{i}"] = default
        general = f"w{i}({arg if default is None else f'(d{i} if {arg} is None else {arg})'})"
        # Inline the common case of each kind (same text the writer would produce), call the writer otherwise.
        if writer is _w_int or writer is _w_qty:
            expr = f"(str({arg}) if type({arg}) is int else {general})"
        elif writer is _w_float:
            expr = f"(repr({arg}) if type({arg}) is float and _ninf < {arg} < _unset else {general})"
        elif writer is _w_str:
            expr = f"({arg} if type({arg}) is str else {general})"
        else:
            expr = general
        parts.append(expr)
        parts.append("'\\0'")
    src = (
        f"def encode({', '.join(args)}):\n"
        f"    b = ''.join(({', '.join(parts)},)).encode()\n"
        f"    return _pack(len(b)) + b\n"
    )
    exec(compile(src, f"<wire:{msg.name}@{version}>", "exec"), env)
    fn: Callable[..., bytes] = env["encode"]
    return fn


# ---- decoding -----------------------------------------------------------------------------------


class _Cursor:
    __slots__ = ("fields", "pos")

    def __init__(self, fields: Sequence[str], pos: int) -> None:
        self.fields = fields
        self.pos = pos

    def take(self, what: str) -> str:
        if self.pos >= len(self.fields):
            raise WireError(f"message truncated before field {what!r}")
        s = self.fields[self.pos]
        self.pos += 1
        return s


def decode_fields(msg: Message, fields: Sequence[str], version: int) -> dict[str, Any]:
    """Values of a received message (`fields[0]` is its id). Raises WireError when it does not fit."""
    out: dict[str, Any] = {}
    cur = _Cursor(fields, 1)
    _decode_nodes(msg.nodes, cur, version, out, out)
    out["_extra"] = len(fields) - cur.pos
    return out


def _decode_nodes(
    nodes: Sequence[Node], cur: _Cursor, version: int, out: dict[str, Any], scope: Mapping[str, Any]
) -> None:
    for node in nodes:
        if isinstance(node, F):
            if node.active(version):
                text = cur.take(node.name)
                if node.const is None:
                    v = READERS[node.kind](text)
                    out[node.name] = node.default if v is None and node.default is not None else v
        elif isinstance(node, If):
            if node.active(version) and node.when(scope):
                _decode_nodes(node.body, cur, version, out, scope)
        elif isinstance(node, Rep):
            if node.active(version):
                n = _r_int(cur.take(node.name + " count")) or 0
                if n < 0 or n > MAX_REPEAT:
                    raise WireError(f"bad count {n} for {node.name!r}")
                items: list[dict[str, Any]] = []
                for _ in range(n):
                    item: dict[str, Any] = {}
                    _decode_nodes(node.body, cur, version, item, _Chain(item, out))
                    items.append(item)
                out[node.name] = items
        else:
            tag = _r_int(cur.take(node.tag.name))
            out[node.tag.name] = tag
            body = node.cases.get(tag) if tag is not None else None
            if body is None:
                raise WireError(f"unknown {node.tag.name} {tag!r}")
            _decode_nodes(body, cur, version, out, scope)
