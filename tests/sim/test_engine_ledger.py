"""The ledger (IB average-cost conventions), the commission schedule, and a property test over random trading."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omega_tui.sim.engine import (
    FX_TO_USD,
    CommissionModel,
    ContractDB,
    Exchange,
    Ledger,
    Market,
    OrderFilled,
    SimClock,
    SimCommission,
    SimExecution,
    SimOrder,
)

AAPL, ES, SAP, EURUSD, OPT = 265598, 495512563, 14204, 12087792, 800100003
DB = ContractDB(0)


def fill(ledger: Ledger, con_id: int, side: str, shares: int, price: float, commission: float) -> float | None:
    n = len(ledger.positions()) + 1000 * shares
    execution = SimExecution(
        exec_id=f"e{n}.{side}.{price}", order_id=1, client_id=1, perm_id=1, con_id=con_id, time=0.0,
        account=ledger.account, exchange="X", side=side, shares=shares, price=price, cum_qty=shares, avg_price=price,
    )  # fmt: skip
    return ledger.apply_fill(execution, SimCommission(execution.exec_id, commission, "USD"))


def test_opening_fill_realises_nothing_and_folds_commission_into_avg_cost():
    ledger = Ledger(DB)
    assert fill(ledger, AAPL, "BOT", 100, 10.00, 1.00) is None
    [pos] = ledger.positions()
    assert (pos.quantity, pos.avg_cost) == (100, pytest.approx(10.01))


def test_closing_part_of_a_long_realises_against_avg_cost_minus_closing_commission():
    ledger = Ledger(DB)
    fill(ledger, AAPL, "BOT", 100, 10.00, 1.00)
    assert fill(ledger, AAPL, "SLD", 40, 12.00, 1.00) == pytest.approx((12.00 - 10.01) * 40 - 1.00)
    [pos] = ledger.positions()
    assert (pos.quantity, pos.avg_cost) == (60, pytest.approx(10.01))


def test_covering_a_short_realises_the_drop():
    ledger = Ledger(DB)
    fill(ledger, AAPL, "SLD", 100, 50.00, 1.00)
    assert ledger.positions()[0].avg_cost == pytest.approx(49.99)
    assert fill(ledger, AAPL, "BOT", 100, 45.00, 1.00) == pytest.approx((49.99 - 45.00) * 100 - 1.00)
    assert ledger.position(AAPL) == 0


def test_a_fill_through_zero_closes_then_opens_with_split_commission():
    ledger = Ledger(DB)
    fill(ledger, AAPL, "BOT", 100, 10.00, 1.00)
    assert fill(ledger, AAPL, "SLD", 150, 11.00, 1.50) == pytest.approx((11.00 - 10.01) * 100 - 1.00)
    [pos] = ledger.positions()
    assert (pos.quantity, pos.avg_cost) == (-50, pytest.approx(11.00 - 0.50 / 50))


def test_futures_cost_and_pnl_carry_the_multiplier():
    ledger = Ledger(DB)
    fill(ledger, ES, "BOT", 1, 5000.00, 0.85)
    ledger.mark(ES, 5010.00)
    [row] = ledger.portfolio()
    assert row.average_cost == pytest.approx(5000.00 * 50 + 0.85)
    assert row.market_value == pytest.approx(5010.00 * 50)
    assert row.unrealized_pnl == pytest.approx(10.00 * 50 - 0.85)
    assert ledger.pnl_single(ES) == (1, pytest.approx(499.15), pytest.approx(499.15), 0.0, pytest.approx(250500.0))


def test_non_usd_positions_are_converted_at_the_fixed_rate():
    ledger = Ledger(DB, starting_cash=100_000.0)
    fill(ledger, SAP, "BOT", 10, 200.00, 1.00)
    ledger.mark(SAP, 210.00)
    assert ledger.cash("EUR") == pytest.approx(-2001.00)
    expected = 100_000.0 + (-2001.00 + 2100.00) * FX_TO_USD["EUR"]
    assert ledger.net_liquidation() == pytest.approx(expected)
    assert ledger.pnl()[1] == pytest.approx((2100.00 - 2001.00) * FX_TO_USD["EUR"])


def test_account_values_and_summary_carry_the_keys_ib_clients_read():
    ledger = Ledger(DB)
    fill(ledger, AAPL, "BOT", 100, 100.00, 1.00)
    ledger.mark(AAPL, 101.00)
    keys = {(k, c) for k, _, c in ledger.account_values()}
    for key in ("NetLiquidation", "TotalCashValue", "AvailableFunds", "BuyingPower", "GrossPositionValue",
                "UnrealizedPnL", "RealizedPnL", "EquityWithLoanValue", "InitMarginReq", "MaintMarginReq",
                "ExcessLiquidity"):  # fmt: skip
        assert (key, "USD") in keys
    values = {k: v for k, v, _ in ledger.account_summary("NetLiquidation,InitMarginReq,AvailableFunds")}
    assert values == {
        "NetLiquidation": f"{1_000_000 - 10_001 + 10_100:.2f}",
        "InitMarginReq": f"{0.5 * 10_100:.2f}",
        "AvailableFunds": f"{1_000_000 - 10_001 + 10_100 - 0.5 * 10_100:.2f}",
    }


@pytest.mark.parametrize(
    ("con_id", "qty", "price", "expected"),
    [
        (AAPL, 100, 100.0, 1.00),  # minimum
        (AAPL, 1000, 100.0, 5.00),  # per share
        (AAPL, 100, 0.50, 0.50),  # 1 % of value caps below the minimum
        (AAPL, 10_000, 0.05, 5.00),  # 1 % cap on a penny stock
        (ES, 3, 5000.0, 2.55),
        (OPT, 10, 3.0, 6.50),
        (EURUSD, 20_000, 1.05, 2.00),  # FX minimum
        (EURUSD, 100_000_000, 1.05, 2100.00),  # 0.2 bp
    ],
)
def test_commission_schedule(con_id: int, qty: int, price: float, expected: float):
    contract = DB.get(con_id)
    assert contract is not None
    assert CommissionModel().commission(contract, qty, price) == pytest.approx(expected)


# -- property: random trading keeps the books consistent --------------------------------------------------

CONTRACTS = [AAPL, ES, SAP]
step = st.one_of(
    st.tuples(st.just("order"), st.sampled_from(CONTRACTS), st.sampled_from(["BUY", "SELL"]),
              st.integers(1, 30), st.sampled_from(["MKT", "LMT"]), st.integers(-3, 3)),
    st.tuples(st.just("advance"), st.floats(0.05, 20.0)),
    st.tuples(st.just("shock"), st.sampled_from(CONTRACTS), st.floats(-4.0, 4.0)),
    st.tuples(st.just("cancel"), st.integers(1, 40)),
)  # fmt: skip


def hand_books(executions: list[tuple[SimExecution, float]]) -> dict[int, tuple[int, float, float]]:
    """con_id -> (position, avg cost, realised) by the average-cost method, written out plainly."""
    books: dict[int, tuple[int, float, float]] = {}
    for ex, fee in executions:
        mult = DB.get(ex.con_id).mult  # type: ignore[union-attr]
        pos, avg, realised = books.get(ex.con_id, (0, 0.0, 0.0))
        q = ex.shares if ex.side == "BOT" else -ex.shares
        if pos == 0 or (pos > 0) == (q > 0):
            avg = (avg * abs(pos) + ex.price * mult * abs(q) + (fee if q > 0 else -fee)) / abs(pos + q)
            pos += q
        else:
            closed = min(abs(q), abs(pos))
            direction = 1 if pos > 0 else -1
            realised += direction * (ex.price * mult - avg) * closed - fee * closed / abs(q)
            pos += -direction * closed
            rest = abs(q) - closed
            if rest:
                pos = -direction * rest
                avg = ex.price * mult + (fee if q > 0 else -fee) * (rest / abs(q)) / rest
            elif pos == 0:
                avg = 0.0
        books[ex.con_id] = (pos, avg, realised)
    return books


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=40), seed=st.integers(0, 5))
def test_random_orders_and_moves_keep_the_ledger_consistent(steps: list[tuple], seed: int):
    clock = SimClock()
    db = ContractDB(0)
    market = Market(db, clock, seed)
    ledger = Ledger(db)
    exchange = Exchange(db, market, ledger, clock, seed)
    executions: list[tuple[SimExecution, float]] = []
    next_id = 1

    def absorb(events: list) -> None:
        for event in events:
            if isinstance(event, OrderFilled):
                q = market.quote(event.execution.con_id)
                # every fill happened at the touch the quote showed at that moment
                assert event.execution.price == (q.ask if event.execution.side == "BOT" else q.bid)
                executions.append((event.execution, event.commission.commission))

    for action in steps:
        if action[0] == "order":
            _, con_id, side, lots, kind, offset = action
            contract = db.get(con_id)
            assert contract is not None
            q = market.quote(con_id)
            touch = q.ask if side == "BUY" else q.bid
            limit = contract.round_to_tick(touch + offset * contract.min_tick) if kind == "LMT" else None
            qty = lots * (100 if contract.sec_type == "STK" else 1)
            absorb(exchange.place(SimOrder(1, next_id, con_id, side, qty, kind, lmt_price=limit)))
            next_id += 1
        elif action[0] == "advance":
            clock.advance(action[1])
            for con_id in market.step():
                absorb(exchange.on_market(con_id))
        elif action[0] == "shock":
            market.shock(action[1], action[2])
            absorb(exchange.on_market(action[1]))
        else:
            exchange.cancel(1, action[1])

    books = hand_books(executions)
    realised_usd = unrealised_usd = marked_usd = cash_usd = 0.0
    cash_usd = ledger.starting_cash
    for con_id, (pos, avg, realised) in books.items():
        contract = db.get(con_id)
        assert contract is not None
        fx = FX_TO_USD[contract.currency]
        # position = signed sum of fills
        signed = sum(ex.signed_shares for ex, _ in executions if ex.con_id == con_id)
        assert ledger.position(con_id) == pos == signed
        row = next(r for r in ledger.portfolio() if r.con_id == con_id)
        assert row.average_cost == pytest.approx(avg, rel=1e-9, abs=1e-6)
        assert row.realized_pnl == pytest.approx(realised, rel=1e-9, abs=1e-6)
        mark = ledger.mark_price(con_id)
        assert mark is not None
        marked_usd += pos * mark * contract.mult * fx
        unrealised_usd += (pos * mark * contract.mult - pos * avg) * fx
        realised_usd += realised * fx
        cash_usd -= sum(ex.signed_shares * ex.price * contract.mult + fee for ex, fee in executions
                        if ex.con_id == con_id) * fx  # fmt: skip
    nlv = ledger.net_liquidation()
    assert nlv == pytest.approx(cash_usd + marked_usd, rel=1e-9, abs=1e-4)
    assert nlv == pytest.approx(ledger.starting_cash + realised_usd + unrealised_usd, rel=1e-9, abs=1e-4)
    daily, unrealised, realised = ledger.pnl()
    assert (unrealised, realised) == (pytest.approx(unrealised_usd, abs=1e-4), pytest.approx(realised_usd, abs=1e-4))
    assert daily == pytest.approx(unrealised + realised)
    # the orders' own bookkeeping agrees with the executions
    for o in exchange.open_orders() + exchange.completed_orders():
        done = sum(ex.shares for ex, _ in executions if ex.order_id == o.order_id)
        assert o.filled == done
        assert o.filled + o.remaining == o.total_qty
