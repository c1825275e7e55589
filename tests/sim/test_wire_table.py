"""The declarative message table against ib_async's own encoder and decoder (the authority)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ib_async import Contract, Future, LimitOrder, Order, Stock, TagValue
from ib_async.client import Client
from ib_async.contract import ComboLeg, DeltaNeutralContract
from ib_async.decoder import Decoder
from ib_async.order import PriceCondition, TimeCondition, VolumeCondition

from omega_tui.sim.wire import FrameReader, decode_incoming, encode_frame, encode_outgoing
from omega_tui.sim.wire.messages import INCOMING, OUTGOING
from omega_tui.sim.wire.schema import UNSET_DOUBLE, WireError, encode_fields
from omega_tui.sim.wire.schema import F as F_


class Capture:
    """A stand-in wrapper that records every call the ib_async decoder makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


def decode_with_ib_async(frame: bytes, version: int = 178) -> list[tuple[str, tuple[Any, ...]]]:
    [fields] = FrameReader().feed(frame)
    wrapper = Capture()
    decoder = Decoder(wrapper, version)  # type: ignore[arg-type]
    handler = decoder.handlers[int(fields[0])]
    handler(fields)  # raises on a field-count mismatch (the decoder unpacks strictly)
    return wrapper.calls


def fields_of(frame: bytes) -> list[str]:
    [fields] = FrameReader().feed(frame)
    return fields


def client_frames(version: int = 178) -> tuple[Client, list[str]]:
    """An ib_async Client whose sent messages are captured instead of written to a socket."""
    sent: list[str] = []
    client = Client(Capture())
    client.connState = Client.CONNECTED
    client._serverVersion = version
    client.sendMsg = sent.append  # type: ignore[method-assign]
    return client, sent


def split(msg: str) -> list[str]:
    fields = msg.split("\0")
    assert fields[-1] == ""
    return fields[:-1]


CONTRACT = {
    "conId": 265598,
    "symbol": "AAPL",
    "secType": "STK",
    "lastTradeDateOrContractMonth": "",
    "strike": 0.0,
    "right": "",
    "multiplier": "",
    "exchange": "SMART",
    "primaryExchange": "NASDAQ",
    "currency": "USD",
    "localSymbol": "AAPL",
    "tradingClass": "NMS",
}


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("tickPrice", 7),
        ("position", 16),
        ("portfolioValue", 20),
        ("commissionReport", 8),
        ("positionMulti", 18),
        ("execDetails", 32),
        ("openOrder", 127),
    ],
)
def test_strictly_unpacked_messages_have_exact_field_counts(name: str, count: int) -> None:
    assert len(encode_fields(OUTGOING[next(k for k, m in OUTGOING.items() if m.name == name)], CONTRACT, 178)) == count


def test_tick_price_decodes_as_price_and_size() -> None:
    calls = decode_with_ib_async(
        encode_outgoing("tickPrice", {"reqId": 4, "tickType": 1, "price": 190.05, "size": 300}, 178)
    )
    assert calls == [("priceSizeTick", (4, 1, 190.05, 300.0))]


def test_quantities_are_integral_text() -> None:
    f = fields_of(encode_outgoing("tickSize", {"reqId": 1, "tickType": 8, "size": 1200.0}, 178))
    assert f[-1] == "1200"
    f = fields_of(encode_outgoing("tickSize", {"reqId": 1, "tickType": 8, "size": Decimal("0.5")}, 178))
    assert f[-1] == "0.5"


def test_commission_report_writes_unset_realized_pnl_as_ib_literal() -> None:
    frame = encode_outgoing(
        "commissionReport", {"execId": "x1", "commission": 1.0, "currency": "USD", "realizedPNL": UNSET_DOUBLE}, 178
    )
    assert "1.7976931348623157E308" in fields_of(frame)
    [(name, (report,))] = decode_with_ib_async(frame)
    assert name == "commissionReport" and report.execId == "x1" and report.realizedPNL == UNSET_DOUBLE


def test_error_carries_advanced_reject_json_from_166_only() -> None:
    values = {"reqId": 7, "code": 201, "message": "Order rejected", "advancedOrderRejectJson": "{}"}
    assert len(fields_of(encode_outgoing("error", values, 178))) == 6
    assert len(fields_of(encode_outgoing("error", values, 165))) == 5
    assert decode_with_ib_async(encode_outgoing("error", values, 178)) == [("error", (7, 201, "Order rejected", "{}"))]


@pytest.mark.parametrize("version", [157, 163, 164, 178])
def test_contract_data_decodes_at_every_version(version: int) -> None:
    values = {
        **CONTRACT,
        "reqId": 3,
        "lastTradeDate": "20261218",
        "minTick": 0.25,
        "longName": "caf\\u00e9",
        "secIdList": [{"tag": "ISIN", "value": "US0378331005"}],
        "minSize": 1,
        "sizeIncrement": 1,
        "suggestedSizeIncrement": 100,
        "timeZoneId": "US/Eastern",
        "marketRuleIds": "26",
    }
    [(name, (req_id, cd))] = decode_with_ib_async(encode_outgoing("contractData", values, version), version)
    assert (name, req_id) == ("contractDetails", 3)
    assert cd.contract.conId == 265598 and cd.minTick == 0.25 and cd.longName == "café"
    assert cd.secIdList[0].value == "US0378331005" and cd.timeZoneId == "US/Eastern" and cd.marketRuleIds == "26"
    if version >= 164:
        assert cd.suggestedSizeIncrement == 100


def test_open_order_round_trips_algo_params_and_conditions() -> None:
    values = {
        **CONTRACT,
        "orderId": 12,
        "clientId": 1,
        "permId": 555,
        "action": "BUY",
        "totalQuantity": 100,
        "orderType": "LMT",
        "lmtPrice": 190.5,
        "tif": "DAY",
        "status": "Submitted",
        "algoStrategy": "Adaptive",
        "algoParams": [{"tag": "adaptivePriority", "value": "Urgent"}],
        "conditions": [
            {
                "condType": 1,
                "conjunction": "a",
                "isMore": True,
                "price": 200.0,
                "conId": 265598,
                "exch": "SMART",
                "triggerMethod": 0,
            }
        ],
        "conditionsIgnoreRth": False,
        "conditionsCancelOrder": False,
    }
    [(name, (order_id, contract, order, state))] = decode_with_ib_async(encode_outgoing("openOrder", values, 178))
    assert name == "openOrder" and order_id == 12 and state.status == "Submitted"
    assert order.algoStrategy == "Adaptive" and order.algoParams == [TagValue("adaptivePriority", "Urgent")]
    assert order.conditions[0].price == 200.0 and order.permId == 555 and order.lmtPrice == 190.5
    assert contract.conId == 265598


@pytest.mark.parametrize("version", [157, 165, 170, 177, 178])
def test_open_and_completed_orders_decode_at_every_version(version: int) -> None:
    values = {
        **CONTRACT,
        "orderId": 1,
        "action": "SELL",
        "totalQuantity": 5,
        "orderType": "MKT",
        "status": "Filled",
        "completedStatus": "Filled",
        "completedTime": "20261125 15:00:00 UTC",
    }
    [(name, args)] = decode_with_ib_async(encode_outgoing("openOrder", values, version), version)
    assert name == "openOrder" and args[2].totalQuantity == 5
    [(name, args)] = decode_with_ib_async(encode_outgoing("completedOrder", values, version), version)
    assert name == "completedOrder" and args[2].status == "Filled"


def test_exec_details_decodes_with_pending_price_revision() -> None:
    values = {
        **CONTRACT,
        "reqId": -1,
        "orderId": 3,
        "execId": "0001.01",
        "time": "20261125 14:31:00 UTC",
        "acctNumber": "DU1",
        "execExchange": "NASDAQ",
        "side": "BOT",
        "shares": 100,
        "price": 190.01,
        "permId": 9,
        "clientId": 1,
        "cumQty": 100,
        "avgPrice": 190.01,
    }

    class W(Capture):
        class ib:
            TimezoneTWS = None

        defaultTimezone = None

    [fields] = FrameReader().feed(encode_outgoing("execDetails", values, 178))
    w = W()
    Decoder(w, 178).handlers[11](fields)  # type: ignore[arg-type]
    [(name, (req_id, _contract, ex))] = w.calls
    assert (name, req_id, ex.execId, ex.shares, ex.side, ex.permId) == ("execDetails", -1, "0001.01", 100, "BOT", 9)


def test_historical_data_update_field_order_matches_the_decoder() -> None:
    frame = encode_outgoing(
        "historicalDataUpdate",
        {
            "reqId": 2,
            "barCount": 7,
            "date": "1795617000",
            "open": 1.0,
            "close": 2.0,
            "high": 3.0,
            "low": 0.5,
            "wap": 1.5,
            "volume": 900,
        },
        178,
    )
    [(_name, (_req_id, bar))] = decode_with_ib_async(frame)
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.barCount) == (1.0, 3.0, 0.5, 2.0, 900, 7)


def test_every_outgoing_message_decodes_in_ib_async_with_defaults() -> None:
    for msg in OUTGOING.values():
        if msg.name in ("execDetails", "historicalData", "headTimestamp", "historicalDataUpdate"):
            continue  # need real values (dates); covered above
        values = {
            **CONTRACT,
            "reqId": 1,
            "orderId": 1,
            "time": 0,
            "position": 0,
            "avgCost": 0.0,
            "marketPrice": 0.0,
            "marketValue": 0.0,
            "averageCost": 0.0,
            "unrealizedPNL": 0.0,
            "realizedPNL": 0.0,
            "minTick": 0.01,
            "price": 1.0,
            "size": 1,
            "value": "1",
            "pos": 0,
            "dailyPnL": 0.0,
            "unrealizedPnL": 0.0,
            "realizedPnL": 0.0,
            "tickType": 1,
            "accounts": "DU1",
            "code": 2104,
            "message": "ok",
            "marketDataType": 1,
            "snapshotPermissions": 3,
            "marketRuleId": 26,
        }
        if msg.name == "tickGeneric":
            values["value"] = 1.0
        decode_with_ib_async(encode_outgoing(msg.name, values, 178))


# ---- client → server: what ib_async actually sends ----------------------------------------------


def place(contract: Contract, order: Order, version: int = 178) -> tuple[list[str], dict[str, Any]]:
    client, sent = client_frames(version)
    client.placeOrder(42, contract, order)
    [msg] = sent
    fields = split(msg)
    _, values = decode_incoming(fields, version)
    return fields, values


def test_plain_limit_order_is_114_fields_and_decodes_completely() -> None:
    fields, v = place(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 100, 190.05))
    assert len(fields) == 114
    assert v["_extra"] == 0
    assert (v["orderId"], v["symbol"], v["action"], v["totalQuantity"], v["orderType"], v["lmtPrice"]) == (
        42,
        "AAPL",
        "BUY",
        Decimal(100),
        "LMT",
        190.05,
    )
    assert v["transmit"] is True and v["auxPrice"] is None and v["parentId"] == 0


@pytest.mark.parametrize("version", [157, 160, 166, 169, 176, 177, 178])
def test_place_order_decodes_at_every_version(version: int) -> None:
    _, v = place(Stock("AAPL", "SMART", "USD"), LimitOrder("SELL", 3, 10.0), version)
    assert v["_extra"] == 0 and v["action"] == "SELL" and v["lmtPrice"] == 10.0


def test_place_order_with_every_conditional_block() -> None:
    bag = Contract(
        secType="BAG",
        symbol="AAPL",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=1, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=2, ratio=2, action="SELL", exchange="SMART"),
        ],
        deltaNeutralContract=DeltaNeutralContract(conId=265598, delta=0.5, price=190.0),
    )
    order = LimitOrder(
        "BUY",
        1,
        2.5,
        algoStrategy="Adaptive",
        algoParams=[TagValue("adaptivePriority", "Normal")],
        deltaNeutralOrderType="LMT",
        scalePriceIncrement=0.05,
        hedgeType="D",
        hedgeParam="0.5",
        smartComboRoutingParams=[TagValue("NonGuaranteed", "1")],
    )
    order.conditions = [
        PriceCondition(price=200.0, conId=265598, exch="SMART"),
        TimeCondition(time="20261126 10:00:00 UTC"),
        VolumeCondition(volume=1000, conId=1, exch="X"),
    ]
    _fields, v = place(bag, order)
    assert v["_extra"] == 0
    assert [leg["ratio"] for leg in v["comboLegs"]] == [1, 2]
    assert v["smartComboRoutingParams"] == [{"tag": "NonGuaranteed", "value": "1"}]
    assert v["dncPresent"] and v["dncConId"] == 265598 and v["deltaNeutralConId"] == 0
    assert v["scalePriceIncrement"] == 0.05 and v["hedgeParam"] == "0.5"
    assert v["algoParams"] == [{"tag": "adaptivePriority", "value": "Normal"}]
    assert [c["condType"] for c in v["conditions"]] == [1, 3, 6] and v["conditions"][2]["volume"] == 1000


@pytest.mark.parametrize(
    ("order_type", "extra"),
    [
        ("PEG BENCH", {"referenceContractId": 5, "peggedChangeAmount": 0.1}),
        ("PEG MID", {"midOffsetAtWhole": 0.01}),
        ("PEG BEST", {"minCompeteSize": 100, "competeAgainstBestOffset": math.inf, "midOffsetAtHalf": 0.02}),
    ],
)
def test_place_order_peg_blocks(order_type: str, extra: dict[str, Any]) -> None:
    order = Order(action="BUY", totalQuantity=1, orderType=order_type, lmtPrice=1.0, **extra)
    _, v = place(Future("ES", "20261218", "CME"), order)
    assert v["_extra"] == 0
    for k, value in extra.items():
        assert v[k] == value


def test_ibkrats_min_trade_qty() -> None:
    order = LimitOrder("BUY", 100, 1.0, minTradeQty=10)
    _, v = place(Stock("AAPL", "IBKRATS", "USD"), order)
    assert v["_extra"] == 0 and v["minTradeQty"] == 10


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda c: c.reqMktData(1, Stock("AAPL", "SMART", "USD"), "233", False, False, []), "reqMktData"),
        (lambda c: c.reqContractDetails(2, Stock("AAPL", "SMART", "USD")), "reqContractDetails"),
        (
            lambda c: c.reqHistoricalData(
                3, Stock("AAPL", "SMART", "USD"), "", "1 D", "1 min", "TRADES", 1, 1, True, []
            ),
            "reqHistoricalData",
        ),
        (lambda c: c.reqHeadTimeStamp(4, Stock("AAPL", "SMART", "USD"), "TRADES", 1, 1), "reqHeadTimeStamp"),
        (lambda c: c.cancelOrder(5, ""), "cancelOrder"),
        (lambda c: c.reqAccountUpdatesMulti(6, "DU1", "", False), "reqAccountUpdatesMulti"),
        (lambda c: c.reqPnLSingle(7, "DU1", "", 265598), "reqPnLSingle"),
        (lambda c: c.reqCompletedOrders(False), "reqCompletedOrders"),
        (lambda c: c.startApi(), "startApi"),
    ],
)
def test_requests_decode_completely(call: Any, name: str) -> None:
    client, sent = client_frames()
    call(client)
    [msg] = sent
    decoded, v = decode_incoming(split(msg), 178)
    assert decoded.name == name and v["_extra"] == 0


def test_every_request_the_sim_decodes_has_a_distinct_id() -> None:
    assert len({m.msg_id for m in INCOMING.values()}) == len(INCOMING)


def test_truncated_request_is_a_wire_error() -> None:
    client, sent = client_frames()
    client.placeOrder(1, Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 1.0))
    fields = split(sent[0])
    with pytest.raises(WireError, match="truncated"):
        decode_incoming(fields[:50], 178)


@pytest.mark.parametrize("bad", [["3", "x"], ["1", "11", "abc"], ["3", "1", "1", "AAPL", "STK", "", "nan"]])
def test_malformed_numbers_are_wire_errors(bad: list[str]) -> None:
    with pytest.raises(WireError):
        decode_incoming(bad, 178)


# ---- the compiled hot-path encoders write exactly what the generic encoder writes ---------------

_FLAT = [m for m in OUTGOING.values() if m.flat_plan(178) is not None]
_KIND_VALUES = {
    "int": st.one_of(st.none(), st.integers(-(2**40), 2**40), st.booleans()),
    "float": st.one_of(st.none(), st.floats(allow_nan=False), st.just(UNSET_DOUBLE), st.integers(-5, 5)),
    "qty": st.one_of(st.none(), st.integers(0, 10**9), st.floats(0, 1e9), st.decimals(0, 10**6, places=3)),
    "str": st.one_of(st.none(), st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=8)),
    "bool": st.booleans(),
}


@given(data=st.data())
@settings(max_examples=200, deadline=None)
def test_positional_encoders_match_the_generic_encoder(data: st.DataObject) -> None:
    msg = data.draw(st.sampled_from(_FLAT))
    for version in (157, 178):
        plan = msg.flat_plan(version)
        assert plan is not None
        names = [name for name, _w, fixed, _d in plan if fixed is None]
        kinds = {n.name: n.kind.value for n in msg.nodes if isinstance(n, F_)}
        args = [data.draw(_KIND_VALUES[kinds[name]]) for name in names]
        values = dict(zip(names, args, strict=True))
        assert msg.positional(version)(*args) == encode_frame(encode_fields(msg, values, version))
