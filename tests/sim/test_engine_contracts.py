"""Contract database lookups: exact, ambiguous, unknown, non-US, not tradable, expired."""

from __future__ import annotations

import pytest

from omega_tui.sim.engine import ContractDB


@pytest.fixture
def db() -> ContractDB:
    return ContractDB(seed=3)


@pytest.mark.parametrize(
    ("query", "con_id"),
    [
        ({"symbol": "AAPL", "sec_type": "STK", "exchange": "SMART", "currency": "USD"}, 265598),
        ({"symbol": "MSFT", "sec_type": "STK", "exchange": "SMART"}, 272093),
        ({"symbol": "SPY", "sec_type": "STK", "exchange": "ARCA"}, 756733),
        ({"con_id": 265598}, 265598),
        ({"symbol": "aapl", "sec_type": "STK", "exchange": "NASDAQ"}, 265598),
        ({"symbol": "SAP", "sec_type": "STK", "exchange": "IBIS", "currency": "EUR"}, 14204),
        ({"symbol": "ES", "sec_type": "FUT", "exchange": "CME", "last_trade_date": "202612"}, 495512563),
        ({"local_symbol": "ESH7", "sec_type": "FUT"}, 551601561),
        ({"symbol": "EUR", "sec_type": "CASH", "exchange": "IDEALPRO", "currency": "USD"}, 12087792),
        (
            {"symbol": "AAPL", "sec_type": "OPT", "last_trade_date": "20261218", "strike": 230.0, "right": "CALL"},
            800100003,
        ),
    ],
)
def test_lookup_when_request_is_specific_then_returns_exactly_one_contract(db: ContractDB, query: dict, con_id: int):
    found = db.lookup(**query)
    assert [c.con_id for c in found] == [con_id]


def test_lookup_when_future_has_no_expiry_then_is_ambiguous(db: ContractDB):
    found = db.lookup(symbol="ES", sec_type="FUT", exchange="CME")
    assert sorted(c.local_symbol for c in found) == ["ESH7", "ESZ6"]


def test_lookup_when_option_chain_is_partial_then_returns_every_match(db: ContractDB):
    assert len(db.lookup(symbol="AAPL", sec_type="OPT", right="P")) == 3


@pytest.mark.parametrize(
    "query",
    [
        {"symbol": "NOPE", "sec_type": "STK"},
        {"con_id": 1},
        {"symbol": "AAPL", "sec_type": "STK", "currency": "EUR"},
        {"symbol": "SAP", "sec_type": "STK", "exchange": "NYSE"},
    ],
)
def test_lookup_when_nothing_matches_then_returns_empty(db: ContractDB, query: dict):
    assert db.lookup(**query) == []


def test_lookup_when_contract_expired_then_only_found_with_include_expired(db: ContractDB):
    assert db.lookup(local_symbol="ESU6") == []
    assert [c.local_symbol for c in db.lookup(local_symbol="ESU6", include_expired=True)] == ["ESU6"]


def test_non_us_stock_trades_in_its_own_currency_and_time_zone(db: ContractDB):
    sap = db.get(14204)
    assert sap is not None
    assert (sap.currency, sap.primary_exchange, sap.time_zone_id) == ("EUR", "IBIS", "MET")


def test_database_has_a_contract_the_account_may_not_trade(db: ContractDB):
    untradable = [c for c in db.all() if not c.tradable]
    assert untradable and all(c.sec_type == "FUT" for c in untradable)


def test_every_contract_starts_on_its_tick_grid_and_has_details(db: ContractDB):
    for contract in db.all():
        assert contract.on_tick_grid(contract.start_price), contract.local_symbol
        assert contract.min_tick > 0 and contract.trading_hours and contract.liquid_hours
        assert "LMT" in contract.order_types.split(",") and contract.valid_exchanges


def test_same_seed_gives_same_database_and_another_seed_moves_prices():
    assert ContractDB(5).all() == ContractDB(5).all()
    assert [c.start_price for c in ContractDB(5).all()] != [c.start_price for c in ContractDB(6).all()]
