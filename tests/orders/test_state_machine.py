"""The order state machine, table-driven: each row is a starting state, one broker event, the outcome."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from omega_tui.core.orders import IB_STATUS, TRANSITIONS, Rule
from omega_tui.core.types import OrderState, OrderStateChanged, OrderStatusReport
from tests.orders.conftest import Rig, RigFactory, intent

S = OrderState
P = Decimal("100.00")

# How to bring a single 10-lot LMT (order id 1) into each starting state with the FakeBroker.
SETUPS: dict[OrderState, Callable[[Rig], None]] = {
    S.PENDING_SUBMIT: lambda rig: None,
    S.SUBMITTED: lambda rig: rig.broker.ack(1),
    S.PARTIALLY_FILLED: lambda rig: (rig.broker.ack(1), rig.broker.fill(1, 4, P)),  # type: ignore[dict-item]
    S.PENDING_CANCEL: lambda rig: (rig.broker.ack(1), rig.manager.cancel(1)),  # type: ignore[dict-item]
    S.FILLED: lambda rig: (rig.broker.ack(1), rig.broker.fill(1, 10, P)),  # type: ignore[dict-item]
    S.CANCELLED: lambda rig: (rig.broker.ack(1), rig.broker.cancelled(1)),  # type: ignore[dict-item]
    S.REJECTED: lambda rig: rig.broker.reject(1),  # type: ignore[dict-item]
    S.INACTIVE: lambda rig: (rig.broker.ack(1), rig.broker.status(1, "Inactive")),  # type: ignore[dict-item]
}


def _stale_status(status: str, filled: int = 0) -> Callable[[Rig], object]:
    """An orderStatus with explicit (possibly out-of-date) cumulative figures."""

    def send(rig: Rig) -> object:
        report = OrderStatusReport(1, status, filled, 10 - filled, None, 0, 0, None, rig.clock.monotonic_ns())
        rig.manager.on_order_status(report)
        return report

    return send


EVENTS: dict[str, Callable[[Rig], object]] = {
    "status Submitted (no fills)": _stale_status("Submitted"),
    "status PreSubmitted": _stale_status("PreSubmitted"),
    "status PendingSubmit": _stale_status("PendingSubmit"),
    "status PendingCancel": _stale_status("PendingCancel"),
    "status Cancelled": _stale_status("Cancelled"),
    "status Inactive": _stale_status("Inactive"),
    "status Filled 10": _stale_status("Filled", 10),
    "fill 2": lambda rig: rig.broker.fill(1, 2, P, emit_status=False, emit_open_order=False),
    "fill to complete": lambda rig: rig.broker.fill(
        1, 10 - rig.broker.books[1].filled, P, emit_status=False, emit_open_order=False
    ),
    "error 201": lambda rig: rig.broker.reject(1),
    "error 202": lambda rig: rig.broker.error(1, 202, "Order Canceled - reason:"),
}

# (start, event, expected state, anomaly expected)
CASES: list[tuple[OrderState, str, OrderState, bool]] = [
    (S.PENDING_SUBMIT, "status PreSubmitted", S.SUBMITTED, False),
    (S.PENDING_SUBMIT, "status Submitted (no fills)", S.SUBMITTED, False),
    (S.PENDING_SUBMIT, "fill 2", S.PARTIALLY_FILLED, False),  # execDetails before any status
    (S.PENDING_SUBMIT, "fill to complete", S.FILLED, False),  # fast fill, no orderStatus at all
    (S.PENDING_SUBMIT, "error 201", S.REJECTED, False),
    (S.PENDING_SUBMIT, "status Inactive", S.INACTIVE, False),
    (S.SUBMITTED, "status Submitted (no fills)", S.SUBMITTED, False),  # duplicate: no-op
    (S.SUBMITTED, "status PendingSubmit", S.SUBMITTED, False),  # late PendingSubmit
    (S.SUBMITTED, "fill 2", S.PARTIALLY_FILLED, False),
    (S.SUBMITTED, "status Filled 10", S.FILLED, False),
    (S.SUBMITTED, "status PendingCancel", S.PENDING_CANCEL, False),
    (S.SUBMITTED, "status Cancelled", S.CANCELLED, False),
    (S.SUBMITTED, "error 202", S.CANCELLED, False),
    (S.SUBMITTED, "error 201", S.REJECTED, False),
    (S.PARTIALLY_FILLED, "status Submitted (no fills)", S.PARTIALLY_FILLED, False),  # older than the fill
    (S.PARTIALLY_FILLED, "fill 2", S.PARTIALLY_FILLED, False),
    (S.PARTIALLY_FILLED, "fill to complete", S.FILLED, False),
    (S.PARTIALLY_FILLED, "status Cancelled", S.CANCELLED, False),
    (S.PARTIALLY_FILLED, "error 201", S.PARTIALLY_FILLED, True),
    (S.PENDING_CANCEL, "status Submitted (no fills)", S.PENDING_CANCEL, False),  # sent before our cancel
    (S.PENDING_CANCEL, "fill 2", S.PENDING_CANCEL, False),  # fill during the cancel: counted
    (S.PENDING_CANCEL, "fill to complete", S.FILLED, False),  # the fill won the race
    (S.PENDING_CANCEL, "status Cancelled", S.CANCELLED, False),
    (S.PENDING_CANCEL, "error 202", S.CANCELLED, False),
    (S.FILLED, "status Submitted (no fills)", S.FILLED, False),
    (S.FILLED, "status PendingCancel", S.FILLED, False),
    (S.FILLED, "error 202", S.FILLED, False),  # the cancel lost the race
    (S.FILLED, "error 201", S.FILLED, True),
    (S.FILLED, "status Inactive", S.FILLED, True),
    (S.CANCELLED, "status Submitted (no fills)", S.CANCELLED, False),
    (S.CANCELLED, "fill 2", S.CANCELLED, False),  # late fill after cancel: counted, still cancelled
    (S.CANCELLED, "fill to complete", S.FILLED, False),
    (S.CANCELLED, "status Inactive", S.CANCELLED, True),
    (S.REJECTED, "status Cancelled", S.REJECTED, False),
    (S.REJECTED, "status Submitted (no fills)", S.REJECTED, True),
    (S.REJECTED, "fill 2", S.REJECTED, True),
    (S.INACTIVE, "status Cancelled", S.CANCELLED, False),
    (S.INACTIVE, "status Submitted (no fills)", S.INACTIVE, True),
]


@pytest.mark.parametrize(
    ("start", "event", "expected", "anomaly"),
    CASES,
    ids=[
        f"{start.value}+{event}->{expected.value}{'!' if anomaly else ''}" for start, event, expected, anomaly in CASES
    ],
)
def test_order_event_in_state_then_reaches_declared_state(
    make_rig: RigFactory, start: OrderState, event: str, expected: OrderState, anomaly: bool
) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    SETUPS[start](rig)
    order = rig.manager.order(1)
    assert order is not None and order.state is start
    anomalies_before = len(order.anomalies)

    EVENTS[event](rig)

    assert order.state is expected
    assert (len(order.anomalies) > anomalies_before) is anomaly
    assert bool(rig.records("order_anomaly")) is anomaly


@pytest.mark.parametrize("start", list(SETUPS))
def test_duplicate_of_the_last_event_then_changes_nothing(make_rig: RigFactory, start: OrderState) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    SETUPS[start](rig)
    order = rig.manager.order(1)
    assert order is not None
    before = (order.state, order.filled, len(order.transitions), rig.manager.position_qty("AAPL"))
    book = rig.broker.books[1]
    rig.manager.on_order_status(rig.broker.status_report(1, book.status))
    rig.manager.on_open_order(rig.broker.open_order_report(1))
    for fill in list(order.fills.values()):
        rig.manager.on_execution(fill)
    assert (order.state, order.filled, len(order.transitions), rig.manager.position_qty("AAPL")) == before
    assert order.anomalies == []


def test_fill_after_cancel_then_position_counts_it_and_state_stays_cancelled(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    rig.manager.cancel(1)
    rig.broker.cancelled(1)
    rig.broker.fill(1, 3, P)  # IB executed 3 before the cancel took effect; the report comes late
    order = rig.manager.order(1)
    assert order is not None
    assert order.state is S.CANCELLED and order.filled == 3
    assert rig.manager.position_qty("AAPL") == 3


def test_every_declared_transition_is_between_known_states_and_never_back_to_new() -> None:
    assert all(isinstance(a, OrderState) and isinstance(b, OrderState) for a, b in TRANSITIONS)
    assert all(b is not S.NEW and a is not b for a, b in TRANSITIONS)
    assert set(TRANSITIONS.values()) == {Rule.APPLY, Rule.STALE}
    # A terminal state never goes back to working through an applied transition.
    assert not [(a, b) for (a, b), r in TRANSITIONS.items() if r is Rule.APPLY and a.is_terminal and b.is_working]


def test_every_ib_status_maps_to_an_omega_state() -> None:
    for status in ("PendingSubmit", "PreSubmitted", "Submitted", "Filled", "Cancelled", "Inactive", "ApiCancelled"):
        assert isinstance(IB_STATUS[status], OrderState)


def test_unknown_ib_status_then_anomaly_recorded_and_state_kept(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    _stale_status("Exploded")(rig)
    order = rig.manager.order(1)
    assert order is not None and order.state is S.SUBMITTED
    assert "unknown IB status 'Exploded'" in order.anomalies[0]
    rig.manager.publish()
    (view,) = rig.hot.get("orders")
    assert view["anomalies"] == order.anomalies


def test_state_change_then_published_on_bus_and_journaled_with_ib_status_beside_it(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1, "PreSubmitted")
    changes = [e for e in rig.events if isinstance(e, OrderStateChanged)]
    assert [(c.old, c.new, c.ib_status) for c in changes] == [
        (S.NEW, S.PENDING_SUBMIT, ""),
        (S.PENDING_SUBMIT, S.SUBMITTED, "PreSubmitted"),
    ]
    (rec,) = rig.records("order_state")
    assert (rec["old"], rec["new"], rec["ib_status"]) == ("PENDING_SUBMIT", "SUBMITTED", "PreSubmitted")
    rig.broker.status(1, "Submitted")  # same Omega state, new IB status: shown, not a transition
    order = rig.manager.order(1)
    assert order is not None and order.ib_status == "Submitted" and len(order.transitions) == 2


def test_order_status_for_unknown_order_then_parked_until_open_order_adopts_it(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.manager.submit(intent(10, tp=None, sl=None))
    rig.broker.ack(1)
    other = rig.broker.order(1).__class__(
        order_id=77,
        key="MSFT",
        con_id=5,
        action=rig.broker.order(1).action,
        quantity=5,
        order_type=rig.broker.order(1).order_type,
        limit_price=P,
        order_ref="elsewhere",
    )
    rig.broker.place_order(other)
    rig.broker.placed.pop()
    rig.manager.on_order_status(rig.broker.status_report(77, "Submitted"))
    assert rig.manager.order(77) is None
    rig.manager.on_open_order(rig.broker.open_order_report(77, "Submitted"))
    adopted = rig.manager.order(77)
    assert adopted is not None and adopted.role == "adopted" and adopted.state is S.SUBMITTED
    assert rig.records("adopted")
