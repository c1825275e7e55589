"""`types.new_broker_order_from` makes the very object `BrokerOrder(...)` makes, cheaper (the order manager's
`_place_group` builds a bracket's legs with it between the intent and the write)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omega_tui.core.types import (
    LEG_FIELDS,
    BrokerOrder,
    OrderType,
    Side,
    _BrokerOrderSlots,
    leg_values,
    new_broker_order_from,
)
from tests.orders.conftest import RigFactory, intent

_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "limit_price": st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=2),
    "aux_price": st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=4),
    "tif": st.sampled_from(["DAY", "GTC", ""]),
    "oca_group": st.text(max_size=8),
    "oca_type": st.integers(0, 3),
    "transmit": st.booleans(),
    "order_ref": st.text(max_size=8),
    "algo_strategy": st.sampled_from(["", "Adaptive"]),
    "algo_params": st.lists(st.tuples(st.text(max_size=4), st.text(max_size=4)), max_size=2).map(tuple),
    "what_if": st.booleans(),
    "account": st.text(max_size=8),
}


@st.composite
def leg_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "key": draw(st.text(max_size=8)),
        "con_id": draw(st.integers(0, 2**40)),
        "action": draw(st.sampled_from(list(Side))),
        "quantity": draw(st.integers(0, 10**9)),
        "order_type": draw(st.sampled_from(list(OrderType))),
    }
    for name in draw(st.sets(st.sampled_from(sorted(_OPTIONAL)))):  # the others keep their defaults
        fields[name] = draw(_OPTIONAL[name])
    return fields


def test_it_is_frozen_and_checks_its_fields() -> None:
    fields = {"key": "AAPL", "con_id": 1, "action": Side.BUY, "quantity": 5, "order_type": OrderType.LMT}
    order = new_broker_order_from(7, 0, leg_values({**fields, "limit_price": Decimal("1.50")}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        order.quantity = 6  # type: ignore[misc]
    assert not hasattr(order, "__dict__")
    with pytest.raises(TypeError):
        leg_values({**fields, "limit": Decimal("1.50")})  # BrokerOrder(...) refuses it too
    with pytest.raises(KeyError):
        leg_values({k: v for k, v in fields.items() if k != "key"})
    assert set(_BrokerOrderSlots.__slots__) == set(BrokerOrder.__slots__)  # the layout __class__ needs


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**31), st.integers(0, 2**31), leg_fields())
def test_from_leg_values_the_same_object_as_the_dataclass_makes(
    order_id: int, parent_id: int, fields: dict[str, Any]
) -> None:
    values = leg_values(fields)
    assert values == tuple(getattr(BrokerOrder(0, **fields), name) for name in LEG_FIELDS)
    ours = new_broker_order_from(order_id, parent_id, values)
    theirs = BrokerOrder(order_id=order_id, parent_id=parent_id, **fields)
    assert type(ours) is BrokerOrder
    assert ours == theirs and theirs == ours
    assert hash(ours) == hash(theirs) and repr(ours) == repr(theirs)
    assert dataclasses.astuple(ours) == dataclasses.astuple(theirs)
    assert pickle.loads(pickle.dumps(ours)) == theirs
    assert copy.copy(ours) == theirs
    assert dataclasses.replace(ours, quantity=1) == dataclasses.replace(theirs, quantity=1)


def test_leg_values_are_in_declaration_order_and_checked() -> None:
    assert (
        LEG_FIELDS
        == tuple(f.name for f in dataclasses.fields(BrokerOrder))[1:9]
        + tuple(f.name for f in dataclasses.fields(BrokerOrder))[10:]
    )  # every field but order_id (first) and parent_id, in the dataclass's order
    fields = {"key": "AAPL", "con_id": 1, "action": Side.BUY, "quantity": 5, "order_type": OrderType.LMT}
    with pytest.raises(TypeError):
        leg_values({**fields, "order_id": 3})  # the ids are given at placement, never in a leg
    with pytest.raises(TypeError):
        leg_values({**fields, "limit": Decimal("1.50")})
    with pytest.raises(KeyError):
        leg_values({k: v for k, v in fields.items() if k != "quantity"})
    with pytest.raises(ValueError):
        new_broker_order_from(1, 0, leg_values(fields)[:-1])  # one value short


def test_a_leg_reads_and_resizes_its_values() -> None:
    from omega_tui.core.orders import _Leg

    fields: dict[str, Any] = {"key": "K", "con_id": 2, "action": Side.SELL, "quantity": 9,
                              "order_type": OrderType.STP, "aux_price": Decimal("3")}  # fmt: skip
    leg = _Leg("entry", leg_values(fields))
    assert (leg.key, leg.action, leg.quantity, leg.signed_qty) == ("K", Side.SELL, 9, -9)
    leg.with_quantity(4)
    assert new_broker_order_from(5, 1, leg.values) == BrokerOrder(5, parent_id=1, **{**fields, "quantity": 4})


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
@pytest.mark.parametrize(("qty", "tp", "sl"), [(100, "1", "1"), (100, None, "1"), (100, "1", None), (250, "1", "1")])
def test_the_order_managers_bracket_legs_are_the_dataclass_values(
    make_rig: RigFactory, side: Side, qty: int, tp: str | None, sl: str | None
) -> None:
    """`_build_groups` writes its bracket legs as literal tuples in `LEG_FIELDS` order: each one, built, is
    the BrokerOrder of the fields it stands for (read back by name from the values, checked against the
    dataclass's defaults for the rest)."""
    rig = make_rig(max_child_qty=100)
    up = side is Side.BUY
    limit = Decimal("100.00")
    order = intent(qty, side=side, limit="100.00", tp=None if tp is None else ("101.00" if up else "99.00"),
                   sl=None if sl is None else ("99.00" if up else "101.00"), priority="Urgent")  # fmt: skip
    groups = rig.manager._build_groups(order)
    assert len(groups) == (3 if qty > 100 else 1)
    for group in groups:
        for leg in group.legs:
            built = new_broker_order_from(7, 0 if leg.parent is None else 6, leg.values)
            by_name = dict(zip(LEG_FIELDS, leg.values, strict=True))
            assert built == BrokerOrder(7, parent_id=0 if leg.parent is None else 6, **by_name)
            entry = leg.role in ("entry", "slice")
            assert built.action is (side if entry else side.opposite) and built.con_id == 1004
            assert built.order_type is (OrderType.STP if leg.role == "stop_loss" else OrderType.LMT)
            if entry:
                assert built.limit_price == limit and built.algo_strategy == "Adaptive"
                assert built.algo_params == (("adaptivePriority", "Urgent"),) and built.oca_group == ""
            else:
                suffix = "" if qty <= 100 else built.order_ref[built.order_ref.rindex(":") :]
                assert built.oca_group.endswith(":oca" + suffix)
                assert built.oca_type == 2 and built.algo_strategy == "" and built.algo_params == ()
            assert built.transmit is (leg is group.legs[-1])
            assert (built.what_if, built.account, built.tif) == (False, "", "DAY")
