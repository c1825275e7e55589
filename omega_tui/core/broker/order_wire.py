"""A template `placeOrder` encoder: ib_async 2.1's own message for an order, with only what varies re-encoded.

ib_async's `Client.placeOrder` builds a ~130-field list per order (reading ~120 attributes of the `Order`,
a few of the `Contract`, branching on some) and `Client.send` turns each field into its wire string. For the
orders Omega sends, almost all of those fields are the same every time: everything but the per-order values
is fixed by the server version, the contract and the order's "shape". `OrderWire` therefore runs ib_async's
own `Client.placeOrder` ONCE per (server version, shape, contract's branch-relevant values) on probe objects
and keeps its field list as a template of constant strings with holes; each send then only encodes the holes
and joins. The template comes from ib_async's code, not from a copy of its field order, so it cannot drift
from ib_async's encoding; anything it cannot represent falls back to ib_async's `Client.placeOrder`.

How a template is made (`_build`), and why a send through it is ib_async's message byte for byte:

- Holes. The order attributes in `ORDER_HOLES` (what `IbOrderAdapter.build_order` sets per order: action,
  quantity, prices, tif, OCA, parent, transmit, orderRef, account, whatIf, plus the per-order lists and the
  soft-dollar tier) are replaced on the probe order by `_Hole` sentinels, and so are the `orderId` argument
  and the contract itself. A sentinel raises on any use but being put in the field list (truth value,
  comparison, hashing, len, iteration, str/repr/format, arithmetic), so if ib_async ever branched on, or
  transformed, one of these values the build fails and that shape falls back: a hole is only ever a value
  placed as one field, which the send encodes with `wire_send.encode_field` (ib_async's `send` rules).
  Attribute access on a hole gives a child hole (`softDollarTier.name`).
- Shape key. `orderType`, `algoStrategy`, `algoParams` and `conditions` select ib_async's branches; they are
  part of the template's key, exactly typed (str, a list of str `TagValue`s, an empty condition list), so
  equal keys mean the same branches and the same constant fields.
- References. Every other order attribute ib_async reads (recorded by the probe's `__getattribute__`) must
  be the very object a default `Order()` holds: a send checks identity (`is`) for all of them, so a
  non-default value anywhere (an order decoded from the wire, a field Omega never sets) falls back.
  That check is a third of a send's cost; `IbOrderAdapter.build_order` makes its orders from a default
  Order's objects, so the adapter `vouch`es for the attributes it sets instead, and the check becomes "none
  of those is a constant of this template", decided once per template.
- Contract. The probe contract (a recording subclass of the contract's class holding its values) records
  which contract attributes `placeOrder` reads (`secType`, `exchange`, `secIdType`, `secId`,
  `deltaNeutralContract`, `comboLegs`, ... per path): their values, exactly typed, join the key (any other
  value type, e.g. a delta-neutral contract or combo legs, is not templated); the contract's identifying
  fields are one hole, encoded as `send` does (kept for the last contract while its fields are the same
  objects).
- Writes. What `placeOrder` writes on the order (ib_async 2.1: `order.volatility = None` for non-VOL
  orders, which ib_async's `Trade` then keeps) is recorded and replayed on the real order at each send.
- Each new template is checked once against ib_async itself: an order of its shape with a distinct value in
  every hole is also encoded by `Client.placeOrder` and `wire_send.encode`, and the two messages must be
  equal, else the key falls back for good (logged).

Sends without an ib_async `Order` (`IbOrderAdapter` encodes its `BrokerOrder`s directly once a shape has a
template): `send_direct` takes any object holding the hole values as attributes, and `route` makes a
`DirectRoute`, what a repeat order of one shape to one contract costs after a single dict lookup in the
adapter: the template, the contract's encoded fields, and the template compiled for the caller's `DirectSpec`
(`_compile`: one generated function that reads each of the caller's attributes once, checks its exact type
and returns the message as ONE f-string of the template's constants and the values formatted with the code
for their type; a value of any other type returns None and the generic `_Template.render` encodes it, so
nothing outside the spec's types is ever guessed). Decimal prices are encoded through a bounded cache keyed
by the Decimal's str() (what `float()` of a Decimal parses). A route is only taken while the client, its
installed `placeOrder`, its server version, the templates (`generation`) and every contract attribute it
depends on (the same objects) are unchanged; each compiled encoder is checked once against the generic one
on the first order it encodes.

The message goes to the client's own `sendMsg`, exactly as `Client.send` hands it over, so ib_async's
request throttle (`_timeQ`/`_msgQ`, `MaxRequests`), length prefix, socket write and debug log are unchanged.
When the client is not connected, ib_async's `placeOrder` runs (it raises ConnectionError after its write).

`install(client)` puts `OrderWire(client).place_order` on the client as its `placeOrder` (an instance
attribute, so `IB.placeOrder`, what-if orders and `IbOrderAdapter.place_order` all use it);
`wire_send.install` calls it, so the broker session installs both encoders on connect.
tests/data/test_order_wire.py compares the bytes with ib_async's for random orders of every shape.
"""

from __future__ import annotations

import copy
import logging
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from itertools import chain
from typing import Any

from ib_async import Contract, Order, SoftDollarTier, TagValue
from ib_async.client import Client
from ib_async.util import UNSET_DOUBLE, UNSET_INTEGER

from omega_tui.core.broker.wire_send import CONTRACT_FIELD_NAMES, CONTRACT_FIELDS, encode, encode_field, length_prefix

log = logging.getLogger(__name__)

# Order attributes encoded per send (each must only ever be placed as a field by ib_async: see _Hole).
ORDER_HOLES: tuple[str, ...] = (
    "action",
    "totalQuantity",
    "lmtPrice",
    "auxPrice",
    "tif",
    "ocaGroup",
    "ocaType",
    "account",
    "orderRef",
    "transmit",
    "parentId",
    "whatIf",
    "orderMiscOptions",
    "softDollarTier",
)
# Order attributes ib_async branches on: part of the template's key (see _order_key).
ORDER_KEYS: tuple[str, ...] = ("orderType", "algoStrategy", "algoParams", "conditions")
MAX_TEMPLATES = 256  # a bound on the cache (a template per version, shape and contract kind; Omega has a few)
_IMMUTABLE = (str, int, float, bool, type(None))
_INF = math.inf
_ORDER_ID = "#orderId"
_CONTRACT = "#contract"


class Unsupported(Exception):
    """What a template cannot represent (the send falls back to ib_async's `Client.placeOrder`)."""


class _Hole:
    """A per-send value on the probe: may be put in the field list and have attributes read, nothing else."""

    __slots__ = ("path",)
    path: str

    def __init__(self, path: str) -> None:
        object.__setattr__(self, "path", path)

    def __getattr__(self, name: str) -> _Hole:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Hole(f"{self.path}.{name}")

    def __setattr__(self, name: str, value: object) -> None:
        raise Unsupported(f"placeOrder writes {self.path}.{name}")

    def _used(self, *_: object) -> Any:
        raise Unsupported(f"placeOrder uses the value of {self.path}, not just places it")

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _used
    __len__ = __iter__ = __contains__ = __getitem__ = __str__ = __repr__ = __format__ = _used
    __int__ = __float__ = __index__ = __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _used
    __truediv__ = __rtruediv__ = __neg__ = __abs__ = __round__ = __call__ = _used


_Events = list[tuple[str, str, object]]
_Read = Callable[[Any], tuple[Any, ...]]


def _recording(cls: type, events: _Events) -> type:
    """A subclass of `cls` whose instances log every attribute read and write into `events`."""

    class Probe(cls):  # type: ignore[misc]
        def __getattribute__(self, name: str) -> Any:
            if not name.startswith("__"):
                events.append(("get", name, None))
            return super().__getattribute__(name)

        def __setattr__(self, name: str, value: object) -> None:
            events.append(("set", name, value))
            super().__setattr__(name, value)

    Probe.__name__ = Probe.__qualname__ = f"_Probe{cls.__name__}"
    return Probe


def _probe(cls: type, values: dict[str, Any], events: _Events) -> Any:
    obj: Any = object.__new__(_recording(cls, events))
    object.__setattr__(obj, "__dict__", values)
    return obj


class _Capture:
    """Just enough of a `Client` for `Client.placeOrder` to build its field list (nothing is sent)."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.sent: list[tuple[tuple[Any, ...], bool]] = []

    def serverVersion(self) -> int:
        return self.version

    def send(self, *fields: Any, makeEmpty: bool = True) -> None:
        self.sent.append((fields, bool(makeEmpty)))


def _fields_of(version: int, order_id: Any, contract: Any, order: Any) -> tuple[tuple[Any, ...], bool]:
    """ib_async's `Client.placeOrder` field list (and `makeEmpty`) for these arguments."""
    capture = _Capture(version)
    Client.placeOrder(capture, order_id, contract, order)
    if len(capture.sent) != 1:
        raise Unsupported(f"placeOrder sent {len(capture.sent)} messages")
    return capture.sent[0]


def _getter(factory: Callable[..., Callable[[Any], Any]], names: Sequence[Any]) -> _Read:
    """`operator.itemgetter`/`attrgetter` of `names`, always returning a tuple (they return a bare value for
    one name, and take no empty list)."""
    if not names:
        return lambda _: ()
    if len(names) == 1:
        one = factory(names[0])
        return lambda obj: (one(obj),)
    return factory(*names)


_EMPTY_LIST = ("[]",)


def _canon(value: Any) -> Any:
    """A key for a value ib_async branches on or places as a constant: equal keys, same bytes and branches."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is int or kind is bool:
        return (kind.__name__, value)
    if kind is float:
        return ("float", repr(value))  # -0.0 and 0.0 differ on the wire
    if kind is list and not value:
        return _EMPTY_LIST
    raise Unsupported(f"a contract value of type {kind.__name__}")


def _order_key(attrs: dict[str, Any]) -> tuple[Any, ...]:
    order_type = attrs["orderType"]
    strategy = attrs["algoStrategy"]
    params = attrs["algoParams"]
    conditions = attrs["conditions"]
    if type(order_type) is not str or type(strategy) is not str or type(params) is not list:
        raise Unsupported("order type, algo strategy or algo params of an unusual type")
    if type(conditions) is not list or conditions:
        raise Unsupported("order conditions")
    if not params:
        return (order_type, strategy)
    key: list[str] = []
    for param in params:
        if type(param) is not TagValue or type(param.tag) is not str or type(param.value) is not str:
            raise Unsupported("algo params that are not str TagValues")
        key += (param.tag, param.value)
    return (order_type, strategy, tuple(key))


class _Template:
    """One placeOrder message as constant strings and holes: (constant, hole)*, constant."""

    __slots__ = (
        "accepted",
        "check_refs",
        "compiled",
        "field_holes",
        "in_order",
        "last",
        "leading",
        "make_empty",
        "read_holes",
        "ref_names",
        "ref_values",
        "writes",
    )

    def __init__(
        self,
        consts: list[str],
        which: list[int],
        hole_paths: list[str],
        make_empty: bool,
        ref_names: list[str],
        ref_values: tuple[Any, ...],
        writes: list[tuple[str, object]],
    ) -> None:
        self.leading = tuple(consts[:-1])  # the constant run before each hole
        self.last = consts[-1]
        self.read_holes = _getter(operator.attrgetter, hole_paths)
        names = (_ORDER_ID, _CONTRACT, *hole_paths)
        self.field_holes = tuple(names[i] for i in which)  # each hole's path, in field order
        # The holes' values in field order, from (orderId, contract, *order holes in hole_paths order).
        self.in_order = None if which == list(range(len(which))) else _getter(operator.itemgetter, which)
        self.make_empty = make_empty
        self.ref_names = frozenset(ref_names)
        self.check_refs = _getter(operator.itemgetter, ref_names)
        self.ref_values = ref_values
        self.writes = writes
        self.accepted: dict[frozenset[str], bool] = {}
        # `DirectSpec` -> its compiled encoder for this template (None: it cannot be compiled, or was refused).
        self.compiled: dict[DirectSpec, _Render | None] = {}

    def compiled_for(self, spec: DirectSpec) -> _Render | None:
        """This template's encoder for objects described by `spec` (see `DirectSpec`), made once."""
        try:
            return self.compiled[spec]
        except KeyError:
            render = self.compiled[spec] = _compile(self, spec)
            return render

    def conforms(self, attrs: dict[str, Any]) -> bool:
        """Whether every attribute ib_async reads and the template holds constant is the default's object."""
        try:
            return all(map(operator.is_, self.check_refs(attrs), self.ref_values))
        except KeyError:
            return False

    def accepts(self, changed: frozenset[str]) -> bool:
        """For an order whose attributes outside `changed` are a default Order's objects: whether it
        conforms (none of `changed` is held constant here)."""
        ok = self.accepted.get(changed)
        if ok is None:
            ok = self.accepted[changed] = changed.isdisjoint(self.ref_names)
        return ok

    def render(self, order_id: Any, contract_chunk: str, order: Any) -> str:
        """The message for this order, given its contract's encoded identifying fields."""
        values = (order_id, contract_chunk, *self.read_holes(order))
        if self.in_order is not None:
            values = self.in_order(values)
        if not self.make_empty:
            pairs = zip(self.leading, [encode_field(v, False) for v in values], strict=True)
            return "".join(chain(chain.from_iterable(pairs), (self.last,)))
        out: list[str] = []
        append = out.append
        for const, value in zip(self.leading, values, strict=True):
            append(const)
            # wire_send.encode_field (make_empty) with the usual types inline: a call per field costs more
            kind = type(value)
            if kind is str:
                append(value)
            elif kind is float:
                append("" if value == UNSET_DOUBLE else "Infinite" if value == _INF else str(value))
            elif kind is int:
                append("" if value == UNSET_INTEGER else str(value))
            elif kind is bool:
                append("1" if value else "0")
            elif kind is list and not value:
                append("")  # no tag-values
            else:
                append(encode_field(value))
        append(self.last)
        return "".join(out)


# ---------------------------------------------------------------------- compiled direct encoders

_Render = Callable[[Any, str, Any], "str | None"]
_INT = "int"  # an exact int, placed as `send` places it
_STR = "str"  # an exact str, placed as is
_BOOL = "bool"  # an exact bool: "1" / "0"
_ENUM = "enum"  # a member of one str-valued enum class (exactly): its value
_QTY = "qty"  # an exact int the Order holds as float(value)
_PRICE = "price"  # None (the Order keeps the default `none`) or an exact Decimal the Order holds as float(value)
_CONST = "const"  # the same object in every order (sub-paths such as `softDollarTier.name` read from it)
_KINDS = frozenset((_INT, _STR, _BOOL, _ENUM, _QTY, _PRICE, _CONST))
# A quantity within this bound converts to an exact float whose repr is the int's digits and ".0" (repr switches
# to exponent notation at 1e16, and floats are exact integers up to 2**53).
_QTY_BOUND = 10**15
MAX_PRICE_TEXTS = 4096  # a bound on each cache of encoded prices
# str(Decimal) -> the encoded float(Decimal), one cache per `make_empty`. `float()` of a Decimal parses its
# str() (CPython's _decimal `PyDec_AsFloat` and _pydecimal `__float__` both do, NaNs aside, which never reach
# a cache: a miss encodes float() of the Decimal itself), so equal strings always give the same float.
_PRICE_TEXTS: dict[bool, dict[str, str]] = {True: {}, False: {}}


def _price_text_empty(value: Decimal) -> str:
    return _price_text(value, True)


def _price_text_keep(value: Decimal) -> str:
    return _price_text(value, False)


def _price_text(value: Decimal, make_empty: bool) -> str:
    """A cache miss: the field `send` makes of float(value), remembered under str(value)."""
    text = encode_field(float(value), make_empty)
    cache = _PRICE_TEXTS[make_empty]
    if len(cache) >= MAX_PRICE_TEXTS:
        cache.clear()
    cache[str(value)] = text
    return text


class DirectSpec:
    """How the holes of a template are read from an object other than an ib_async `Order` (`IbOrderAdapter`'s
    `BrokerOrder`): for each `ORDER_HOLES` name, `(kind, attribute)` (`_INT`, `_STR`, `_BOOL`, `_QTY`),
    `(_ENUM, attribute, enum class)`, `(_PRICE, attribute, the Order's value for None)` or `(_CONST, object)`.

    A template compiled for a spec (`_compile`) is one generated function: it reads each attribute once,
    checks its exact type (anything else makes it return None: the caller then encodes through the generic
    `_Template.render`, whose values follow `send`'s rules for any type) and returns the message as one
    f-string of the template's constants and the values encoded with the code for their type. The caller
    vouches that the Order it would have built holds exactly these values (as `float`s for `_QTY`/`_PRICE`,
    the enum's value for `_ENUM`); tests/data/test_order_direct.py compares the bytes with ib_async's."""

    __slots__ = ("sources",)

    def __init__(self, sources: Mapping[str, tuple[Any, ...]]) -> None:
        for name, source in sources.items():
            if name not in ORDER_HOLES or not source or source[0] not in _KINDS:
                raise ValueError(f"bad source for {name}: {source!r}")
            if source[0] != _CONST and not str(source[1]).isidentifier():
                raise ValueError(f"bad attribute for {name}: {source!r}")
        self.sources = dict(sources)


def _literal(text: str) -> str:
    """`text` as an f-string literal with no replacement fields."""
    return "f" + repr(text.replace("{", "{{").replace("}", "}}"))


def _compile(template: _Template, spec: DirectSpec) -> _Render | None:
    """The generated encoder of `template` for objects described by `spec` (see `DirectSpec`), or None when
    the spec does not cover the template's holes."""
    env = _env(template.make_empty)
    body: list[str] = []
    parts = _emit(template, spec, env, body, "", "order_id", lambda attr: f"o.{attr}", lambda attr: None)
    if parts is None:
        return None
    source_code = "def render(order_id, chunk, o):\n" + "\n".join(body) + "\n    return (" + " ".join(parts) + ")\n"
    exec(compile(source_code, f"<order_wire template {id(template):x}>", "exec"), env)
    render: _Render = env["render"]
    return render


def _env(make_empty: bool) -> dict[str, Any]:
    """The globals of a generated encoder."""
    env: dict[str, Any] = {"Decimal": Decimal, "_UNSET_INT": UNSET_INTEGER, "_QTY_BOUND": _QTY_BOUND}
    env["_cached"] = _PRICE_TEXTS[make_empty].get
    env["_miss"] = _price_text_empty if make_empty else _price_text_keep
    return env


_NOT_CONST = object()  # `_emit`'s `const` for an attribute that is read, not held constant


def _emit(
    template: _Template,
    spec: DirectSpec,
    env: dict[str, Any],
    body: list[str],
    tag: str,
    order_id: str,
    read: Callable[[str], str | None],
    const: Callable[[str], Any],
) -> list[str] | None:
    """The code of one message of `template` for objects described by `spec`: appends to `body` the
    statements that read each hole's value and check its exact type (`return None` on any other), and returns
    the message's f-string as parts (literals and replacement fields); None when the spec does not cover the
    template's holes, or a constant cannot be encoded as its kind is.

    `order_id`: the expression of the order id; `read(attribute)`: the expression that reads an attribute of
    the spec, or None when the attribute is constant for this code, its value `const(attribute)`, encoded
    now with the code for its kind; `tag`: a prefix for the local names (several messages in one function)."""
    make_empty = template.make_empty
    parts: list[str] = []  # the f-string: literals and replacement fields
    text: list[str] = []  # the literal run being collected

    def place(expr: str) -> None:
        parts.append(_literal("".join(text)))
        parts.append("f'{" + expr + "}'")
        text.clear()

    def place_int(var: str) -> None:
        body.append(f"    if type({var}) is not int{f' or {var} == _UNSET_INT' if make_empty else ''}: return None")
        place(var)

    for i, (const_text, path) in enumerate(zip(template.leading, template.field_holes, strict=True)):
        text.append(const_text)
        if path == _ORDER_ID:
            place_int(order_id)
            continue
        if path == _CONTRACT:
            place("chunk")
            continue
        name, _, sub = path.partition(".")
        source = spec.sources.get(name)
        if source is None or (sub and source[0] != _CONST):
            return None
        kind, var = source[0], f"{tag}v{i}"
        if kind == _CONST:
            value = operator.attrgetter(sub)(source[1]) if sub else source[1]
            text.append(encode_field(value, make_empty))
            continue
        expr = read(source[1])
        if expr is None:  # constant here: encoded now, as the code below would encode it
            encoded = _const_text(source, const(source[1]), make_empty)
            if encoded is None:
                return None
            text.append(encoded)
            continue
        body.append(f"    {var} = {expr}")
        if kind == _INT:
            place_int(var)
        elif kind == _STR:
            body.append(f"    if type({var}) is not str: return None")
            place(var)
        elif kind == _BOOL:
            body.append(f"    if type({var}) is not bool: return None")
            body.append(f"    {tag}t{i} = '1' if {var} else '0'")
            place(f"{tag}t{i}")
        elif kind == _ENUM:
            enum_cls = source[2]
            if not all(type(member._value_) is str for member in enum_cls):
                return None
            env[f"E{i}"] = enum_cls
            body.append(f"    if type({var}) is not E{i}: return None")
            place(f"{var}._value_")
        elif kind == _QTY:
            body.append(f"    if type({var}) is not int or not -_QTY_BOUND < {var} < _QTY_BOUND: return None")
            place(var)
            text.append(".0")
        else:  # _PRICE
            body += [
                f"    if {var} is None:",
                f"        {tag}t{i} = {encode_field(float(source[2]), make_empty)!r}",
                f"    elif type({var}) is Decimal:",
                f"        {tag}t{i} = _cached(str({var}))",
                f"        if {tag}t{i} is None:",
                f"            {tag}t{i} = _miss({var})",
                "    else:",
                "        return None",
            ]
            place(f"{tag}t{i}")
    text.append(template.last)
    parts.append(_literal("".join(text)))
    return parts


def _const_text(source: tuple[Any, ...], value: Any, make_empty: bool) -> str | None:
    """What `_emit`'s code for `source`'s kind makes of `value`, or None where that code would return None."""
    kind = source[0]
    if kind == _INT:
        return None if type(value) is not int or (make_empty and value == UNSET_INTEGER) else str(value)
    if kind == _STR:
        return value if type(value) is str else None
    if kind == _BOOL:
        return None if type(value) is not bool else "1" if value else "0"
    if kind == _ENUM:
        ok = type(value) is source[2] and type(value._value_) is str
        return value._value_ if ok else None
    if kind == _QTY:
        return f"{value}.0" if type(value) is int and -_QTY_BOUND < value < _QTY_BOUND else None
    if kind == _PRICE:
        if value is None:
            return encode_field(float(source[2]), make_empty)
        return _price_text(value, make_empty) if type(value) is Decimal else None
    return None


_GroupRender = Callable[[Sequence[int], str, Sequence[Any]], "bytes | None"]


def compile_group(
    templates: Sequence[_Template],
    spec: DirectSpec,
    probes: Sequence[Any],
    variable: Sequence[Sequence[str]],
    parents: Sequence[int | None],
) -> _GroupRender | None:
    """One generated function encoding a group of orders (a bracket's legs, one template each) described by
    `spec`, of which only some attributes vary: `render(ids, chunk, values)` returns the messages framed for the
    socket as `wire_send.frame` frames them (or None for a value of another type than the spec's), from the
    orders' ids, the contract's encoded fields and the
    values of the varying attributes, leg by leg in `variable` order (`variable[k]`: leg k's attribute names
    besides the ids); every other attribute is leg k's value in `probes[k]`, encoded once, here. The parent id
    attribute (`parentId`'s source) is `ids[parents[k]]`, or constant when `parents[k]` is None. None when a
    template is not covered by the spec, or a constant cannot be encoded."""
    if not templates or len({t.make_empty for t in templates}) != 1:
        return None
    env = _env(templates[0].make_empty)
    parent_attr = spec.sources.get("parentId", (None, None))[1]
    names = [f"i{k}" for k in range(len(templates))]
    body = [f"    {', '.join(names)}, = ids"]
    messages: list[str] = []  # the framed messages' parts: each one's length, then it
    at = 0
    for k, (template, probe) in enumerate(zip(templates, probes, strict=True)):
        reads = {name: f"values[{at + j}]" for j, name in enumerate(variable[k])}
        at += len(variable[k])
        parent = parents[k]
        if parent is not None:
            reads[parent_attr] = names[parent]

        def const(attr: str, probe: Any = probe) -> Any:
            return getattr(probe, attr, _NOT_CONST)

        parts = _emit(template, spec, env, body, f"l{k}", names[k], reads.get, const)
        if parts is None:
            return None
        body.append(f"    m{k} = ({' '.join(parts)}).encode()")
        messages += [f"_length(len(m{k}))", f"m{k}"]
    env["_length"] = length_prefix
    source_code = (
        "def render(ids, chunk, values):\n" + "\n".join(body) + "\n    return b''.join((" + ", ".join(messages) + "))\n"
    )
    exec(compile(source_code, f"<order_wire group {id(templates[0]):x}>", "exec"), env)
    render: _GroupRender = env["render"]
    return render


class DirectRoute:
    """A repeat order shape's way to the wire without an ib_async `Order` (`OrderWire.route`): the template,
    its compiled encoder, and the contract's encoded fields, valid while the client, its encoders, its server
    version and every contract attribute the template or the contract's fields depend on are the same (the
    same objects). `send` checks all of that and sends, or returns False (the caller takes the long way)."""

    __slots__ = ("chunk", "contract", "fields", "generation", "holes", "installed", "names", "read", "render",
                 "template", "version", "wire", "writes")  # fmt: skip

    def __init__(
        self,
        wire: OrderWire,
        template: _Template,
        contract: Any,
        read: _Read,
        render: _Render | None,
        holes: Callable[[Any], Any],
        names: tuple[str, ...] = (),
    ) -> None:
        self.wire = wire
        self.names = names  # the contract attributes `read` returns
        self.installed = wire.client.__dict__.get("placeOrder")
        self.generation = wire.generation
        self.version = wire.client.serverVersion()
        self.template = template
        self.contract = contract
        self.read = read
        self.fields = read(contract)
        self.chunk = encode_field(contract)
        self.render = render
        self.holes = holes
        self.writes = tuple(template.writes)

    def send(self, order_id: int, contract: Any, order: Any, fields: tuple[Any, ...] | None = None) -> bool:
        """Encode `order` (what the route's `DirectSpec` describes) and hand it to the client's `sendMsg`, as
        `OrderWire.send_direct` would; False (nothing sent) if the route no longer applies. `fields`: what
        `read(contract)` returns now, if the caller has it already (a route of the same `names`, for the same
        contract, in the same corked group: `IbOrderAdapter.place_order`)."""
        text = self.message(order_id, contract, order, fields)
        if text is None:
            return False
        wire = self.wire
        wire.templated += 1
        wire.direct_sends += 1
        wire.client.sendMsg(text)
        return True

    def message(self, order_id: int, contract: Any, order: Any, fields: tuple[Any, ...] | None = None) -> str | None:
        """The message `send` would hand to `sendMsg`, or None if the route no longer applies (see `send`;
        nothing is counted as sent: `IbOrderAdapter.place_group` sends a group's messages together)."""
        wire = self.wire
        client = wire.client
        if (
            contract is not self.contract
            or wire.generation != self.generation
            or client.__dict__.get("placeOrder") is not self.installed
            or client.connState != _CONNECTED  # (`isConnected()` and `serverVersion()`, read directly)
            or client._serverVersion != self.version
            or not all(map(operator.is_, self.read(contract) if fields is None else fields, self.fields))
        ):
            return None
        render = self.render
        text = None if render is None else render(order_id, self.chunk, order)
        if text is None:  # a value of another type than the spec's: the generic encoder
            text = self.template.render(order_id, self.chunk, self.holes(order))
            wire.direct_generic += 1
        return text


_CONNECTED = Client.CONNECTED  # (ib_async 2.1: `Client.isConnected()` is `connState == CONNECTED`)

_UNSUPPORTED = object()  # a key that falls back (cached, so it is decided once)


class OrderWire:
    """The template `placeOrder` for one ib_async `Client` (see the module docstring)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._templates: dict[tuple[Any, ...], _Template | object] = {}
        self._contract_names: tuple[str, ...] = ()
        self._read_contract = _getter(operator.attrgetter, ())
        self._base: dict[str, Any] = dict(vars(Order()))  # the default objects references are checked against
        self._last_chunk: tuple[Any, tuple[Any, ...], str] = (None, (), "")
        self.templated = 0  # sends through a template
        self.fallbacks = 0  # sends through ib_async's Client.placeOrder
        self.direct_sends = 0  # of `templated`, those encoded without an ib_async Order (`send_direct`, routes)
        self.direct_generic = 0  # of `direct_sends`, those a route's compiled encoder handed to the generic one
        self.generation = 0  # moves on whenever the templates are dropped: every `DirectRoute` made before is void

    def place_order(self, orderId: Any, contract: Any, order: Any) -> None:
        """Drop-in for `Client.placeOrder(orderId, contract, order)`: the same message through `sendMsg`."""
        global _vouched
        client = self.client
        template = self.template_for(contract, order) if client.isConnected() else None
        if _vouched[0] is order:
            _vouched = _NOBODY
        if template is None:
            self.fallbacks += 1
            Client.placeOrder(client, orderId, contract, order)
            return
        for name, value in template.writes:
            setattr(order, name, value)
        self.templated += 1
        client.sendMsg(template.render(orderId, self._contract_chunk(contract), order))

    def direct(self, contract: Any, shape: tuple[Any, ...], changed: frozenset[str]) -> _Template | None:
        """The template an order of this `shape` (what `_order_key` makes of its `ORDER_KEYS`) and contract is
        sent with, for a caller that encodes without an ib_async `Order` (`send_direct`): its order would hold a
        default Order's objects in every attribute but `changed`, so the template must `accept` those. None
        (the caller builds the `Order` and goes through `place_order`) when not connected, or no such template
        exists yet (`place_order` builds it on the first order of a shape) or it refused the shape."""
        client = self.client
        if not client.isConnected() or not isinstance(contract, Contract):
            return None
        try:
            values = self._read_contract(contract)
            if _STR_OR_NONE.issuperset(map(type, values)):
                contract_key: tuple[Any, ...] = values
            else:
                contract_key = tuple(map(_canon, values))
        except (Unsupported, AttributeError):
            return None
        template = self._templates.get((client.serverVersion(), *shape, contract_key))
        if type(template) is not _Template or not template.accepts(changed):
            return None
        return template

    def send_direct(self, template: _Template, order_id: int, contract: Any, holes: Any) -> None:
        """Send through `template` (from `direct`) the order whose hole values `holes` holds as attributes
        (the `ORDER_HOLES` paths, e.g. `holes.softDollarTier.name`); the caller replays `template.writes` on
        the ib_async `Order` it builds afterwards for ib_async's books."""
        self.templated += 1
        self.direct_sends += 1
        self.client.sendMsg(template.render(order_id, self._contract_chunk(contract), holes))

    def route(
        self,
        template: _Template,
        contract: Any,
        spec: DirectSpec,
        holes: Callable[[Any], Any],
        order_id: int,
        order: Any,
    ) -> DirectRoute | None:
        """A `DirectRoute` for orders like `order` (described by `spec`; `holes(order)` gives the object with
        the `ORDER_HOLES` attributes that `send_direct` takes) to `contract` through `template` (from `direct`),
        or None when the contract's values are not all immutable (they are checked by identity). The template's
        compiled encoder is checked on this order against the generic one; if they differ (a bug), it is
        refused for good and the route encodes through the generic one."""
        names = tuple(dict.fromkeys((*CONTRACT_FIELD_NAMES, *self._contract_names)))
        read = _getter(operator.attrgetter, names)
        if not all(type(value) in _IMMUTABLE for value in read(contract)):
            return None
        render = template.compiled_for(spec)
        route = DirectRoute(self, template, contract, read, render, holes, names)
        if render is not None:
            text = render(order_id, route.chunk, order)
            if text is not None and text != template.render(order_id, route.chunk, holes(order)):
                log.error("the compiled placeOrder encoder differs from the template's; not using it")
                template.compiled[spec] = route.render = None
        return route

    def _contract_chunk(self, contract: Any) -> str:
        """The contract's encoded identifying fields (`wire_send`'s Contract rule), kept for the last contract
        while those twelve attributes still hold the same objects."""
        fields = CONTRACT_FIELDS(contract)
        last, last_fields, chunk = self._last_chunk
        if last is not contract or not all(map(operator.is_, fields, last_fields)):
            chunk = encode_field(contract)
            if all(type(field) in _IMMUTABLE for field in fields):  # same objects, same str()
                self._last_chunk = (contract, fields, chunk)
        return chunk

    def template_for(self, contract: Any, order: Any) -> _Template | None:
        """The template this order can be sent with at the client's server version, or None (fall back)."""
        if type(order) is not Order or not isinstance(contract, Contract):
            return None
        attrs = order.__dict__
        try:
            values = self._read_contract(contract)
            if _STR_OR_NONE.issuperset(map(type, values)):
                contract_key: tuple[Any, ...] = values  # (what _canon makes of them, cheaper)
            else:
                contract_key = tuple(map(_canon, values))
            key = (self.client.serverVersion(), *_order_key(attrs), contract_key)
        except (Unsupported, KeyError, AttributeError):
            return None
        template = self._templates.get(key)
        if template is None:
            template = self._build(key[0], contract, order)
        if not isinstance(template, _Template):
            return None
        vouched, changed = _vouched
        if vouched is order and template.accepts(changed):
            return template
        return template if template.conforms(attrs) else None

    # ------------------------------------------------------------------ building

    def _build(self, version: int, contract: Any, order: Any) -> _Template | object:
        """Make (and check against ib_async) the template for this order's key; cache it, or the refusal."""
        order_key = _order_key(order.__dict__)
        contract_events: _Events = []
        failure: Exception | None = None
        try:
            template: _Template | object = self._make(version, order_key, contract, order, contract_events)
        except Exception as exc:  # anything ib_async's placeOrder does on the probes that a template cannot follow
            template, failure = _UNSUPPORTED, exc
        read = _names(contract_events)  # (up to a failure: the same values lead ib_async to the same failure)
        new = [name for name in read if name not in self._contract_names]
        if new:  # placeOrder read contract attributes no key included yet: keys include them from now on
            self._contract_names = names = (*self._contract_names, *new)
            self._read_contract = _getter(operator.attrgetter, names)
            self._templates.clear()
            self.generation += 1
        try:
            key = (version, *order_key, tuple(map(_canon, self._read_contract(contract))))
        except Unsupported as exc:  # from now on the key of this contract is refused before any build
            log.info("placeOrder for this contract falls back to ib_async's encoder: %s", exc)
            return _UNSUPPORTED
        if failure is not None:
            log.info("placeOrder %s falls back to ib_async's encoder: %s", key, failure)
        if len(self._templates) >= MAX_TEMPLATES:
            self._templates.clear()
            self.generation += 1
        self._templates[key] = template
        return template

    def _make(
        self, version: int, order_key: tuple[Any, ...], contract: Any, order: Any, contract_events: _Events
    ) -> _Template:
        order_events: _Events = []
        values = dict(self._base)
        for name in ORDER_KEYS:
            values[name] = order.__dict__[name]
        for name in ORDER_HOLES:
            values[name] = _Hole(name)
        probe_order = _probe(Order, values, order_events)
        probe_contract = _probe(type(contract), dict(vars(contract)), contract_events)
        id_hole = _Hole(_ORDER_ID)
        fields, make_empty = _fields_of(version, id_hole, probe_contract, probe_order)

        # Constant fields, encoded now, between holes encoded at each send.
        consts: list[str] = []
        which: list[int] = []
        hole_paths: list[str] = []
        run: list[str] = []
        for field in fields:
            if field is id_hole:
                which.append(0)
            elif field is probe_contract:
                which.append(1)
            elif type(field) is _Hole:
                if field.path.split(".", 1)[0] not in ORDER_HOLES:
                    raise Unsupported(f"a field derived from {field.path}")
                which.append(2 + len(hole_paths))
                hole_paths.append(field.path)
            else:
                run.append(encode_field(field, make_empty))  # raises Unsupported if it contains a hole
                continue
            consts.append("\0".join([*run, ""]))
            run = [""]  # the hole's NUL terminator starts the next constant run
        consts.append("\0".join([*run, ""]))

        # What ib_async read (references) and wrote on the order.
        writes: list[tuple[str, object]] = []
        written: set[str] = set()
        ref_names: list[str] = []
        for kind, name, value in order_events:
            if kind == "set":
                if name in ORDER_HOLES or name in ORDER_KEYS or type(value) not in _IMMUTABLE:
                    raise Unsupported(f"placeOrder writes {name} (a {type(value).__name__})")
                writes.append((name, value))
                written.add(name)
            elif name not in written and name not in ORDER_HOLES and name not in ORDER_KEYS:
                if name not in self._base or type(self._base[name]) not in _IMMUTABLE:
                    raise Unsupported(f"placeOrder reads {name}, which has no fixed default")
                if name not in ref_names:
                    ref_names.append(name)
        ref_values = tuple(self._base[name] for name in ref_names)
        template = _Template(consts, which, hole_paths, make_empty, ref_names, ref_values, writes)

        # Checked once against ib_async itself: an order of this shape with a distinct value in every hole.
        sample = self._sample(order)
        expected_fields, expected_empty = _fields_of(version, 987654321, contract, copy.copy(sample))
        if template.render(987654321, encode_field(contract), sample) != encode(expected_fields, expected_empty):
            log.error("placeOrder template for %s differs from ib_async's message; falling back", order_key)
            raise Unsupported("template differs from ib_async's message")
        return template

    def _sample(self, order: Any) -> Any:
        """A default Order with `order`'s shape and a distinct, non-default value in every hole."""
        values = dict(self._base)
        for name in ORDER_KEYS:
            values[name] = order.__dict__[name]
        for i, name in enumerate(ORDER_HOLES):
            default = self._base[name]
            kind = type(default)
            if kind is str:
                values[name] = f"{name}\u00e9{i}"
            elif kind is bool:
                values[name] = not default
            elif kind is int:
                values[name] = 100_000 + i
            elif kind is float:
                values[name] = 1000.125 + i
            elif kind is list:
                values[name] = [TagValue(f"t{i}", f"v{i}")]
            elif kind is SoftDollarTier:
                values[name] = SoftDollarTier(f"n{i}", f"v{i}", f"d{i}")
            else:
                values[name] = default
        sample = Order.__new__(Order)
        sample.__dict__ = values
        return sample


_NOBODY: tuple[Any, frozenset[str]] = (None, frozenset())
_vouched = _NOBODY
_STR_OR_NONE = frozenset((str, type(None)))


def vouch(order: Order, changed: frozenset[str]) -> None:
    """Promise that every attribute of `order` not named in `changed` holds the very object a default
    `Order()` holds (as `IbOrderAdapter.build_order` makes them). The next `place_order` of this same object
    then skips the per-attribute reference check: it only checks, once per template, that none of `changed`
    is a constant of the template. Consumed by that call; a promise about another object is ignored."""
    global _vouched
    _vouched = (order, changed)


def unvouch() -> None:
    """Withdraw a promise not consumed (the order went elsewhere, or the send failed)."""
    global _vouched
    _vouched = _NOBODY


def _names(events: _Events) -> list[str]:
    names: list[str] = []
    for kind, name, _ in events:
        if kind == "get" and name not in names:
            names.append(name)
    return names


def install(client: Client) -> bool:
    """Put the template `placeOrder` on this client; False if it already had it (idempotent)."""
    if installed(client):
        return False
    client.placeOrder = OrderWire(client).place_order
    return True


def installed(client: Client) -> bool:
    return wire_of(client) is not None


def wire_of(client: Client) -> OrderWire | None:
    """The `OrderWire` installed on this client (its counters), if any."""
    current = client.__dict__.get("placeOrder")
    owner = getattr(current, "__self__", None)
    return owner if isinstance(owner, OrderWire) else None
