"""The matching engine: order types, partial fills, brackets, OCA, modify, cancel, rejects, what-if, faults."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from omega_tui.sim.engine import (
    CancelRejected,
    ContractDB,
    Exchange,
    Ledger,
    Market,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatusChanged,
    SimClock,
    SimEvent,
    SimOrder,
    WhatIfResult,
)

AAPL = 265598
CL = 212921504  # no trading permission
ES = 495512563


@dataclass
class Sim:
    clock: SimClock
    db: ContractDB
    market: Market
    ledger: Ledger
    exchange: Exchange

    def quote(self, bid: float, ask: float, bid_size: int = 500, ask_size: int = 500, con_id: int = AAPL) -> list:
        """Put the touch somewhere and let the engine react, as the wire's tick loop would."""
        self.market.step(self.clock.now())  # catch the random walk up first, so the touch stays where it is put
        self.market.set_quote(con_id, bid, ask, bid_size, ask_size)
        return self.exchange.on_market(con_id)


@pytest.fixture
def sim() -> Sim:
    clock = SimClock()
    db = ContractDB(0)
    market = Market(db, clock, 0)
    ledger = Ledger(db)
    exchange = Exchange(db, market, ledger, clock, 0)
    s = Sim(clock, db, market, ledger, exchange)
    s.quote(100.00, 100.02)
    return s


def order(order_id: int, action: str = "BUY", qty: int = 100, order_type: str = "LMT", **kw) -> SimOrder:
    return SimOrder(
        client_id=kw.pop("client_id", 1),
        order_id=order_id,
        con_id=kw.pop("con_id", AAPL),
        action=action,
        total_qty=qty,
        order_type=order_type,
        **kw,
    )


def fills(events: list[SimEvent]) -> list[tuple[int, float]]:
    return [(e.execution.shares, e.execution.price) for e in events if isinstance(e, OrderFilled)]


def kinds(events: list[SimEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


# -- order types ------------------------------------------------------------------------------------------


def test_marketable_buy_limit_fills_at_the_ask_not_the_limit(sim: Sim):
    events = sim.exchange.place(order(1, lmt_price=100.05))
    assert kinds(events)[:2] == ["OrderAccepted", "OrderFilled"]
    assert fills(events) == [(100, 100.02)]
    assert events[1].order.status == "Filled"


def test_sell_limit_below_bid_fills_at_the_bid(sim: Sim):
    assert fills(sim.exchange.place(order(1, "SELL", lmt_price=99.90))) == [(100, 100.00)]


def test_market_order_fills_only_the_displayed_size_then_the_rest_on_later_quotes(sim: Sim):
    sim.quote(100.00, 100.02, ask_size=300)
    events = sim.exchange.place(order(1, qty=1000, order_type="MKT"))
    assert fills(events) == [(300, 100.02)]
    assert events[1].order.status == "Submitted" and events[1].order.remaining == 700
    assert fills(sim.quote(100.01, 100.03, ask_size=400)) == [(400, 100.03)]
    later = sim.quote(100.01, 100.04, ask_size=900)
    assert fills(later) == [(300, 100.04)]
    filled = next(e for e in later if isinstance(e, OrderFilled))
    assert filled.order.status == "Filled"
    assert filled.execution.cum_qty == 1000
    assert filled.execution.avg_price == pytest.approx((300 * 100.02 + 400 * 100.03 + 300 * 100.04) / 1000)


def test_displayed_size_is_shared_between_orders_on_the_same_quote(sim: Sim):
    sim.quote(100.00, 100.02, ask_size=300)
    assert fills(sim.exchange.place(order(1, qty=200, order_type="MKT"))) == [(200, 100.02)]
    assert fills(sim.exchange.place(order(2, qty=200, order_type="MKT"))) == [(100, 100.02)]


def test_resting_buy_limit_fills_when_the_ask_reaches_it_at_the_ask(sim: Sim):
    events = sim.exchange.place(order(1, lmt_price=99.95))
    assert kinds(events) == ["OrderAccepted"] and events[0].order.status == "Submitted"
    assert fills(sim.quote(99.96, 99.97)) == []
    assert fills(sim.quote(99.92, 99.94)) == [(100, 99.94)]


@pytest.mark.parametrize(
    ("action", "stop", "quiet", "trigger", "expected_price"),
    [
        ("SELL", 99.50, (99.60, 99.62), (99.49, 99.51), 99.49),
        ("BUY", 100.50, (100.40, 100.42), (100.49, 100.51), 100.51),
    ],
)
def test_stop_triggers_on_the_touch_and_fills_as_market(sim: Sim, action, stop, quiet, trigger, expected_price):
    assert fills(sim.exchange.place(order(1, action, order_type="STP", aux_price=stop))) == []
    assert fills(sim.quote(*quiet)) == []
    assert fills(sim.quote(*trigger)) == [(100, expected_price)]


def test_stop_limit_triggers_then_fills_only_within_its_limit(sim: Sim):
    sim.exchange.place(order(1, "SELL", order_type="STP LMT", aux_price=99.50, lmt_price=99.40))
    assert fills(sim.quote(99.30, 99.32)) == []  # triggered, but the bid is below the limit
    assert fills(sim.quote(99.41, 99.43)) == [(100, 99.41)]


def test_trailing_sell_stop_follows_the_bid_up_and_fires_on_the_drop(sim: Sim):
    sim.exchange.place(order(1, "SELL", order_type="TRAIL", aux_price=0.50))
    assert fills(sim.quote(101.00, 101.02)) == []
    assert sim.exchange.order(1, 1).trail_stop_price == pytest.approx(100.50)
    assert fills(sim.quote(100.80, 100.82)) == []  # a dip smaller than the trail
    assert sim.exchange.order(1, 1).trail_stop_price == pytest.approx(100.50)
    assert fills(sim.quote(100.49, 100.51)) == [(100, 100.49)]


def test_trailing_percent_buy_stop_follows_the_ask_down(sim: Sim):
    sim.exchange.place(order(1, "BUY", order_type="TRAIL", trailing_percent=1.0))
    sim.quote(90.00, 90.02)
    assert sim.exchange.order(1, 1).trail_stop_price == pytest.approx(90.93)  # 90.02 × 1.01 rounded up
    assert fills(sim.quote(90.92, 90.93)) == [(100, 90.93)]


def test_ioc_cancels_what_does_not_fill_at_once(sim: Sim):
    sim.quote(100.00, 100.02, ask_size=300)
    events = sim.exchange.place(order(1, qty=500, lmt_price=100.02, tif="IOC"))
    assert fills(events) == [(300, 100.02)]
    assert isinstance(events[-1], OrderCancelled) and events[-1].order.filled == 300
    assert sim.exchange.open_orders() == []


def test_adaptive_order_waits_a_seeded_delay_then_fills_like_a_limit_and_keeps_its_params(sim: Sim):
    params = [("adaptivePriority", "Patient")]
    events = sim.exchange.place(order(1, lmt_price=100.05, algo_strategy="Adaptive", algo_params=params))
    assert kinds(events) == ["OrderAccepted"]
    assert events[0].order.algo_params == params
    assert fills(sim.quote(100.00, 100.02)) == []  # still inside the Patient delay (>= 1 s)
    sim.clock.advance(5.0)
    done = sim.quote(100.00, 100.03)
    assert fills(done) == [(100, 100.03)]
    assert done[0].order.algo_strategy == "Adaptive" and done[0].order.algo_params == params


# -- brackets and OCA -------------------------------------------------------------------------------------


def place_bracket(sim: Sim) -> list[SimEvent]:
    assert sim.exchange.place(order(10, lmt_price=99.90, transmit=False)) == []
    assert sim.exchange.place(order(11, "SELL", lmt_price=101.00, parent_id=10, transmit=False)) == []
    return sim.exchange.place(order(12, "SELL", order_type="STP", aux_price=99.00, parent_id=10))


def test_bracket_legs_are_held_silently_until_the_last_leg_transmits(sim: Sim):
    sim.exchange.place(order(10, lmt_price=99.90, transmit=False))
    assert sim.exchange.open_orders() == [] and len(sim.exchange.held_orders()) == 1
    events = place_bracket(sim)
    statuses = [(e.order.order_id, e.order.status) for e in events if isinstance(e, OrderAccepted)]
    assert statuses == [(10, "Submitted"), (11, "PreSubmitted"), (12, "PreSubmitted")]
    assert sim.exchange.held_orders() == []


def test_bracket_children_activate_when_the_parent_fills_and_a_filled_child_cancels_its_sibling(sim: Sim):
    place_bracket(sim)
    on_parent_fill = sim.quote(99.88, 99.90)
    assert fills(on_parent_fill) == [(100, 99.90)]
    activated = [(e.order.order_id, e.order.status) for e in on_parent_fill if isinstance(e, OrderStatusChanged)]
    assert activated == [(11, "Submitted"), (12, "Submitted")]
    on_target = sim.quote(101.00, 101.02)
    assert fills(on_target) == [(100, 101.00)]
    cancelled = [e for e in on_target if isinstance(e, OrderCancelled)]
    assert [(e.order.order_id, e.code) for e in cancelled] == [(12, 202)]
    assert sim.ledger.position(AAPL) == 0


def test_bracket_children_stay_inactive_while_the_parent_is_only_partly_filled(sim: Sim):
    sim.quote(100.00, 100.02, ask_size=100)
    sim.exchange.place(order(10, qty=300, lmt_price=100.02, transmit=False))
    sim.exchange.place(order(11, "SELL", qty=300, lmt_price=100.01, parent_id=10))
    assert sim.exchange.order(1, 10).filled == 100
    assert sim.exchange.order(1, 11).status == "PreSubmitted"  # would be marketable, but its parent is not filled


def test_oca_type_1_cancels_the_others_when_one_fills(sim: Sim):
    sim.exchange.place(order(1, lmt_price=99.50, oca_group="g", oca_type=1))
    sim.exchange.place(order(2, lmt_price=99.00, oca_group="g", oca_type=1))
    events = sim.quote(99.48, 99.50)
    assert fills(events) == [(100, 99.50)]
    assert [(e.order.order_id, e.code) for e in events if isinstance(e, OrderCancelled)] == [(2, 202)]


def test_oca_type_2_reduces_the_others_by_the_filled_quantity(sim: Sim):
    sim.quote(100.00, 100.02, ask_size=100)
    sim.exchange.place(order(1, qty=300, lmt_price=99.50, oca_group="g", oca_type=2))
    sim.exchange.place(order(2, qty=300, lmt_price=99.00, oca_group="g", oca_type=2))
    sim.quote(99.48, 99.50, ask_size=100)
    assert sim.exchange.order(1, 2).total_qty == 200


def test_oca_type_2_bracket_exit_pair_partial_then_full_take_profit(sim: Sim):
    """Omega's protective pair: a take-profit and a stop of 100 (ocaType 2, bracket children of a filled parent).
    30 filled on the take-profit shrink the stop to 70; the other 70 filling cancels it."""
    sim.exchange.place(order(10, qty=100, lmt_price=100.02, transmit=False))
    sim.exchange.place(
        order(11, "SELL", qty=100, lmt_price=100.50, parent_id=10, oca_group="x", oca_type=2, transmit=False)
    )
    sim.exchange.place(order(12, "SELL", qty=100, order_type="STP", aux_price=99.00, parent_id=10,
                             oca_group="x", oca_type=2))  # fmt: skip
    assert sim.exchange.order(1, 10).status == "Filled"
    events = sim.quote(100.50, 100.52, bid_size=30)
    assert fills(events) == [(30, 100.50)]
    stop = sim.exchange.order(1, 12)
    assert (stop.total_qty, stop.remaining, stop.status) == (70, 70, "Submitted")
    assert any(isinstance(e, OrderStatusChanged) and e.order.order_id == 12 for e in events)
    events = sim.quote(100.50, 100.52, bid_size=500)
    assert fills(events) == [(70, 100.50)]
    assert sim.exchange.order(1, 12).status == "Cancelled"
    assert sim.ledger.position(AAPL) == 0


def test_oca_type_3_reduces_proportionately_to_what_each_order_has_left(sim: Sim):
    sim.quote(100.00, 100.02, ask_size=100)
    sim.exchange.place(order(1, qty=200, lmt_price=99.50, oca_group="g", oca_type=3))
    sim.exchange.place(order(2, qty=100, lmt_price=99.00, oca_group="g", oca_type=3))
    sim.quote(99.48, 99.50, ask_size=100)  # order 1 fills 100 of its 200: half of what it had left
    assert sim.exchange.order(1, 2).total_qty == 50


def test_correct_execution_replaces_it_with_a_higher_suffix_and_rebooks_the_ledger(sim: Sim):
    from omega_tui.sim.engine import ExecutionCorrected

    sim.exchange.place(order(1, qty=100, lmt_price=100.02))
    (old,) = sim.exchange.executions()
    cost_before = sim.ledger.position(AAPL)
    events = sim.exchange.correct_execution(old.exec_id, shares=80, price=100.01)
    (corrected,) = [e for e in events if isinstance(e, ExecutionCorrected)]
    new = corrected.execution
    assert new.exec_id.rpartition(".")[0] == old.exec_id.rpartition(".")[0]
    assert new.exec_id.endswith(".02") and old.exec_id.endswith(".01")
    assert (new.shares, new.price, new.cum_qty, corrected.replaces) == (80, 100.01, 80, old.exec_id)
    assert corrected.commission.exec_id == new.exec_id
    assert sim.exchange.executions() == [new]  # the corrected version replaces the old one
    assert cost_before == 100 and sim.ledger.position(AAPL) == 80
    again = sim.exchange.correct_execution("", price=100.00)  # "" = the last execution: .02 -> .03
    assert [e.execution.exec_id[-3:] for e in again if isinstance(e, ExecutionCorrected)] == [".03"]
    with pytest.raises(ValueError):
        sim.exchange.correct_execution("nope")


# -- modify and cancel ------------------------------------------------------------------------------------


def test_modify_changes_price_and_quantity_in_place_and_rematches(sim: Sim):
    sim.exchange.place(order(1, qty=100, lmt_price=99.00))
    events = sim.exchange.place(order(1, qty=200, lmt_price=100.02))
    assert isinstance(events[0], OrderAccepted) and events[0].modified
    assert events[0].order.total_qty == 200 and events[0].order.lmt_price == 100.02
    assert fills(events) == [(200, 100.02)]
    assert events[0].order.perm_id == sim.exchange.order(1, 1).perm_id


def test_cancel_ends_the_order_with_202(sim: Sim):
    sim.exchange.place(order(1, lmt_price=99.00))
    events = sim.exchange.cancel(1, 1)
    assert [(type(e).__name__, e.code, e.order.status) for e in events] == [("OrderCancelled", 202, "Cancelled")]
    assert sim.exchange.open_orders() == [] and sim.exchange.completed_orders()[0].status == "Cancelled"


@pytest.mark.parametrize(("setup", "code"), [("unknown", 10147), ("filled", 10148)])
def test_cancel_of_an_order_that_is_not_working_is_refused(sim: Sim, setup: str, code: int):
    if setup == "filled":
        sim.exchange.place(order(7, lmt_price=100.02))
    [event] = sim.exchange.cancel(1, 7)
    assert isinstance(event, CancelRejected) and event.code == code and "OrderId 7" in event.text


def test_cancelling_a_parent_cancels_its_children(sim: Sim):
    place_bracket(sim)
    events = sim.exchange.cancel(1, 10)
    assert sorted(e.order.order_id for e in events if isinstance(e, OrderCancelled)) == [10, 11, 12]


def test_global_cancel_reaches_every_client_and_held_chains(sim: Sim):
    sim.exchange.place(order(1, lmt_price=99.00, client_id=1))
    sim.exchange.place(order(1, "SELL", lmt_price=101.00, client_id=2))
    place_bracket(sim)
    sim.exchange.place(order(20, lmt_price=98.00, client_id=3, transmit=False))
    events = sim.exchange.global_cancel()
    cancelled = sorted(e.order.key for e in events if isinstance(e, OrderCancelled))
    assert cancelled == [(1, 1), (1, 10), (1, 11), (1, 12), (2, 1), (3, 20)]
    assert sim.exchange.open_orders() == [] and sim.exchange.held_orders() == []


# -- rejects ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"qty": 0}, "greater than zero"),
        ({"qty": -5}, "greater than zero"),
        ({"lmt_price": 100.005}, "minimum price variation"),
        ({"con_id": 999}, "No security definition"),
        ({"con_id": CL, "lmt_price": 70.00}, "no trading permissions"),
        ({"order_type": "MOC"}, "Unsupported order type"),
        ({"tif": "FOK"}, "Unsupported time in force"),
        ({"order_type": "LMT", "lmt_price": None}, "limit price is required"),
        ({"order_type": "STP", "aux_price": 99.001}, "minimum price variation"),
    ],
)
def test_invalid_order_is_rejected_with_201(sim: Sim, kw: dict, text: str):
    base = {"lmt_price": 99.00} | kw
    [event] = sim.exchange.place(order(1, qty=base.pop("qty", 100), **base))
    assert isinstance(event, OrderRejected) and event.code == 201
    assert event.text.startswith("Order rejected - reason:") and text in event.text
    assert sim.exchange.open_orders() == []


def test_reusing_the_id_of_a_finished_order_is_a_duplicate_103(sim: Sim):
    sim.exchange.place(order(1, lmt_price=100.02))
    [event] = sim.exchange.place(order(1, lmt_price=99.00))
    assert isinstance(event, OrderRejected) and (event.code, event.text) == (103, "Duplicate order id")


def test_reject_next_hook_rejects_exactly_one_order(sim: Sim):
    sim.exchange.reject_next("Simulated reject")
    [event] = sim.exchange.place(order(1, lmt_price=99.00))
    assert isinstance(event, OrderRejected) and event.text == "Order rejected - reason:Simulated reject"
    assert isinstance(sim.exchange.place(order(2, lmt_price=99.00))[0], OrderAccepted)


# -- what-if, faults, queries -----------------------------------------------------------------------------


def test_what_if_reports_margin_and_commission_and_stores_nothing(sim: Sim):
    before = sim.ledger.account_values()
    result = sim.exchange.what_if(order(1, qty=1000, lmt_price=100.00, what_if=True))
    assert isinstance(result, WhatIfResult)
    assert float(result.init_margin_change) == pytest.approx(0.5 * 1000 * 100.00, rel=1e-3)
    assert float(result.init_margin_after) == pytest.approx(
        float(result.init_margin_before) + float(result.init_margin_change), abs=0.01
    )
    assert result.commission == 5.0 and result.commission_currency == "USD"
    assert sim.exchange.open_orders() == [] and sim.ledger.account_values() == before
    assert isinstance(sim.exchange.place(order(1, lmt_price=99.00))[0], OrderAccepted)  # id still free


def test_what_if_on_a_contract_without_permission_is_rejected(sim: Sim):
    result = sim.exchange.what_if(order(1, con_id=CL, lmt_price=70.00, what_if=True))
    assert isinstance(result, OrderRejected) and "no trading permissions" in result.text


def test_fill_after_cancel_hook_sends_one_more_fill_before_cancelled(sim: Sim):
    sim.exchange.place(order(1, qty=400, lmt_price=100.01))
    sim.exchange.set_fill_after_cancel()
    events = sim.exchange.cancel(1, 1)
    assert kinds(events)[0] == "OrderFilled" and kinds(events)[-1] == "OrderCancelled"
    assert fills(events) == [(200, 100.01)]
    assert events[-1].order.filled == 200 and events[-1].order.status == "Cancelled"
    second = order(2, qty=100, lmt_price=99.00)
    sim.exchange.place(second)
    assert kinds(sim.exchange.cancel(1, 2)) == ["OrderCancelled"]  # the hook fired once


def test_misreported_commission_differs_from_what_the_ledger_books(sim: Sim):
    sim.exchange.misreport_commission(3.0)
    sim.quote(100.00, 100.02, ask_size=1000)
    events = sim.exchange.place(order(1, qty=1000, lmt_price=100.02, order_ref="r1"))
    [filled] = [e for e in events if isinstance(e, OrderFilled)]
    assert filled.commission.commission == 15.0
    assert sim.ledger.cash() == pytest.approx(1_000_000 - 1000 * 100.02 - 5.0)


def test_executions_filter_like_ib(sim: Sim):
    sim.exchange.place(order(1, lmt_price=100.02, client_id=1))
    sim.exchange.place(order(1, "SELL", lmt_price=100.00, client_id=2))
    sim.quote(5000.00, 5000.25, con_id=ES)
    sim.exchange.place(order(2, con_id=ES, qty=1, order_type="MKT", client_id=2))
    assert len(sim.exchange.executions()) == 3
    assert [e.client_id for e in sim.exchange.executions(client_id=2)] == [2, 2]
    assert [e.side for e in sim.exchange.executions(side="SELL")] == ["SLD"]
    assert [e.con_id for e in sim.exchange.executions(sec_type="FUT")] == [ES]
    assert [e.con_id for e in sim.exchange.executions(symbol="AAPL", side="BUY")] == [AAPL]
    assert sim.exchange.executions(time="20261125 14:31:00 UTC") == []
    assert len(sim.exchange.executions(time="20261125 09:29:00 America/New_York")) == 3
    ids = [e.exec_id for e in sim.exchange.executions()]
    assert len(set(ids)) == 3 and all(sim.exchange.commission_of(i) is not None for i in ids)
