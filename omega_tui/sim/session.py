"""One client connection: handshake, framing, rate limit, request handlers, subscriptions.

A `Session` is the asyncio Protocol of one TCP connection. After the handshake and `startApi` it is
bound to a clientId (a duplicate gets error 326 and is closed). Bad input never takes the gateway
down: garbage before the handshake or an oversized frame closes this connection (logged); an unknown
message id or a malformed message gets an error reply and the connection carries on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from omega_tui.sim.engine import (
    HistoryError,
    PortfolioRow,
    SimContract,
    SimPosition,
    SimQuote,
)
from omega_tui.sim.render import (
    commission_values,
    completed_order_values,
    contract_details_values,
    contract_values,
    exec_values,
    ib_time,
    order_from_wire,
)
from omega_tui.sim.server import HistSub, MktSub, SimServer, parse_bar_seconds
from omega_tui.sim.wire import (
    MAX_VERSION,
    MIN_VERSION,
    OUT_BY_NAME,
    FrameError,
    FrameReader,
    HandshakeError,
    UnknownMessage,
    WireError,
    decode_incoming,
    encode_frame,
    parse_handshake,
)
from omega_tui.sim.wire.schema import encode_fields

log = logging.getLogger("omega_tui.sim.session")

NO_SECURITY = "No security definition has been found for the request"
# Past this much unsent data a client is not keeping up: market data to it is skipped, not queued.
MAX_BACKLOG = 8 * 1024 * 1024
_TICK_PRICE = OUT_BY_NAME["tickPrice"]
_TICK_SIZE = OUT_BY_NAME["tickSize"]


class Session(asyncio.Protocol):
    """One API connection and everything it subscribed to."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.state = "handshake"  # handshake -> start -> ready -> closed
        self._hs_buf = bytearray()
        self.reader = FrameReader(server.max_message_size)
        self.version = 0
        self.client_id: int | None = None
        self._enc_tick_price = _TICK_PRICE.positional(MAX_VERSION)
        self._enc_tick_size = _TICK_SIZE.positional(MAX_VERSION)
        self._out: list[bytes] = []
        self._flush_pending = False
        self._times: deque[float] = deque()
        self._tokens = 0.0
        self._tokens_at: float | None = None
        # subscriptions
        self.mkt: dict[int, MktSub] = {}
        self.md_type = 1
        self.md_type_requested = False
        self.auto_bind = False
        self.positions_sub = False
        self.account_sub = False
        self.account_multi: dict[int, str] = {}
        self.summaries: dict[int, str] = {}
        self.pnl_subs: set[int] = set()
        self.pnl_single_subs: dict[int, int] = {}
        self.hist_live: dict[int, HistSub] = {}

    # ---- transport ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if not self.server.admit(self):
            self.state = "closed"
            transport.close()
            return
        log.debug("connection from %s", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = "closed"
        self.server.forget(self)
        log.info("connection %s (clientId %s) closed", self.peer, self.client_id)

    def close(self, reason: str, abort: bool = False) -> None:
        """Flush what is queued (unless aborting) and close the connection."""
        if self.transport is None or self.state == "closed":
            return
        log.info("closing connection %s (clientId %s): %s", self.peer, self.client_id, reason)
        self.state = "closed"
        if abort:
            self._out.clear()
            self.transport.abort()
        else:
            self.flush()
            self.transport.close()

    def send(self, name: str, values: dict[str, Any]) -> None:
        """Queue one message; queued messages go out together at the end of this loop iteration."""
        faults = self.server.faults
        if faults.stalled and name in faults.stalled:
            left = faults.stalled[name]
            if left != 0:
                faults.stalled[name] = left - 1 if left > 0 else -1
                log.info("fault: withholding %s from clientId %s", name, self.client_id)
                return
        if faults.delayed and name in faults.delayed:
            left, seconds = faults.delayed[name]
            if left > 0:
                faults.delayed[name] = (left - 1, seconds)
                log.info("fault: delaying %s to clientId %s by %.3fs", name, self.client_id, seconds)
                frame = encode_frame(encode_fields(OUT_BY_NAME[name], values, self.version))
                self.server.call_at(self.server.clock.now() + seconds, lambda: self.send_frame(frame))
                return
        self.send_fields(encode_fields(OUT_BY_NAME[name], values, self.version))

    def send_fields(self, fields: list[str]) -> None:
        """Queue pre-encoded text fields as one message."""
        self.send_frame(encode_frame(fields))

    def send_frame(self, frame: bytes) -> None:
        """Queue one already-framed message."""
        if self.state == "closed":
            return
        self._out.append(frame)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued."""
        self._flush_pending = False
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(self._out))
        self._out.clear()

    @property
    def backlogged(self) -> bool:
        """True when the client is not reading fast enough for market data."""
        return self.transport is not None and self.transport.get_write_buffer_size() > MAX_BACKLOG

    def error(self, req_id: int, code: int, text: str, advanced: str = "") -> None:
        """An error/notice message (reqId -1 for system notices)."""
        self.send("error", {"reqId": req_id, "code": code, "message": text, "advancedOrderRejectJson": advanced})

    # ---- receiving ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state == "closed":
            return
        if self.state == "handshake":
            self._hs_buf += data
            try:
                parsed = parse_handshake(self._hs_buf)
            except HandshakeError as e:
                log.warning("closing %s: garbage before the API handshake (%s)", self.peer, e)
                self.close("bad handshake", abort=True)
                return
            if parsed is None:
                return
            hs, used = parsed
            rest = bytes(self._hs_buf[used:])
            self._hs_buf.clear()
            version = min(hs.max_version, MAX_VERSION)
            if version < MIN_VERSION or version < hs.min_version:
                log.warning(
                    "refusing %s: client offers v%d..%d, this gateway speaks v%d..%d",
                    self.peer,
                    hs.min_version,
                    hs.max_version,
                    MIN_VERSION,
                    MAX_VERSION,
                )
                self.version = MIN_VERSION
                self.error(
                    -1,
                    503,
                    f"The TWS is out of date and must be upgraded: client offers v{hs.min_version}..{hs.max_version},"
                    f" this simulated gateway speaks v{MIN_VERSION}..{MAX_VERSION}.",
                )
                self.close("unsupported client version")
                return
            self.version = version
            self._enc_tick_price = _TICK_PRICE.positional(version)
            self._enc_tick_size = _TICK_SIZE.positional(version)
            self.state = "start"
            now = dt.datetime.fromtimestamp(self.server.clock.now(), dt.UTC)
            self.send_fields([str(version), now.strftime("%Y%m%d %H:%M:%S UTC")])
            if not rest:
                return
            data = rest
        try:
            messages = self.reader.feed(data)
        except FrameError as e:
            log.warning("closing %s (clientId %s): %s", self.peer, self.client_id, e)
            self.close("oversized message", abort=True)
            return
        for fields in messages:
            if self.state == "closed":
                return
            self._handle(fields)

    def _rate_ok(self) -> bool:
        """IB's 50 messages per second, as a token bucket (rate_limit tokens, refilled at rate_limit a second).

        Not a strict sliding window over arrival times: a client that keeps to the limit by its own send
        times (ib_async sends at most 45 in any second) still shows arrivals bunched by a few ms to a few
        tens of ms (this loop handles one message and its replies before the next; an in-process gateway
        waits for the GIL), and with a zero-tolerance window it got error 100 (and its requests dropped)
        at the edge of each of its full seconds. The bucket tolerates that bunching (up to ~0.1 s at a
        steady 45/s) and still refuses more than rate_limit at once or more than rate_limit a second
        sustained. `rec=` in the text counts the arrivals of the last second.
        """
        now = asyncio.get_running_loop().time()
        limit = self.server.rate_limit
        times = self._times
        while times and now - times[0] >= 1.0:
            times.popleft()
        times.append(now)
        if self._tokens_at is not None:
            self._tokens = min(float(limit), self._tokens + (now - self._tokens_at) * limit)
        else:
            self._tokens = float(limit)
        self._tokens_at = now
        if self._tokens < 1.0:
            self.error(-1, 100, f"Max rate of messages per second has been exceeded:max={limit} rec={len(times)} (1)")
            return False
        self._tokens -= 1.0
        return True

    def _handle(self, fields: list[str]) -> None:
        if not self._rate_ok():
            return
        try:
            msg, values = decode_incoming(fields, self.version)
        except UnknownMessage as e:
            log.warning("clientId %s sent an unknown message id %r", self.client_id, e.msg_id)
            self.error(-1, 505, f"Fatal Error: Unknown message id {e.msg_id[:20]!r}.")
            return
        except WireError as e:
            log.warning("clientId %s sent a malformed message %s: %s", self.client_id, fields[:1], e)
            self.error(-1, 320, f"Server error when reading an API client request: {e}")
            return
        if self.state == "start" and msg.name != "startApi":
            log.warning("%s sent %s before startApi; ignored", self.peer, msg.name)
            return
        handler = getattr(self, "on_" + msg.name, None)
        if handler is None:
            self.error(-1, 505, f"Fatal Error: Unknown message id {fields[0][:20]!r}.")
            return
        try:
            handler(values)
        except Exception:
            log.exception("handling %s from clientId %s failed", msg.name, self.client_id)
            self.error(
                values.get("reqId", -1) or -1, 321, f"Server error when validating an API client request: {msg.name}"
            )

    # ---- handshake and ids ----------------------------------------------------------------------

    def on_startApi(self, v: dict[str, Any]) -> None:
        if self.state != "start":
            return
        client_id = v.get("clientId") or 0
        if not self.server.register(self, client_id):
            log.warning("refusing %s: clientId %d is already in use", self.peer, client_id)
            self.error(-1, 326, "Unable to connect as the client id is already in use. Retry with a unique client id.")
            self.close("duplicate clientId")
            return
        self.client_id = client_id
        self.state = "ready"
        log.info("clientId %d connected from %s (v%d)", client_id, self.peer, self.version)
        self.send("managedAccounts", {"accounts": self.server.account})
        self.send("nextValidId", {"orderId": self.server.next_order_id})
        self.error(-1, 2104, "Market data farm connection is OK:usfarm")
        self.error(-1, 2106, "HMDS data farm connection is OK:ushmds")
        self.error(-1, 2158, "Sec-def data farm connection is OK:secdefnj")

    def on_reqIds(self, v: dict[str, Any]) -> None:
        self.send("nextValidId", {"orderId": self.server.next_order_id})

    def on_reqManagedAccts(self, v: dict[str, Any]) -> None:
        self.send("managedAccounts", {"accounts": self.server.account})

    def on_reqCurrentTime(self, v: dict[str, Any]) -> None:
        self.send("currentTime", {"time": int(self.server.clock.now())})

    # ---- contracts ------------------------------------------------------------------------------

    def resolve(self, v: dict[str, Any]) -> list[SimContract]:
        """Contracts matching the contract block of a request."""
        db = self.server.db
        if v.get("secIdType") and v.get("secId") and not v.get("symbol") and not v.get("conId"):
            return []
        return db.lookup(
            symbol=v.get("symbol") or "",
            sec_type=v.get("secType") or "",
            exchange=v.get("exchange") or "",
            currency=v.get("currency") or "",
            last_trade_date=v.get("lastTradeDateOrContractMonth") or "",
            strike=v.get("strike") or 0.0,
            right=v.get("right") or "",
            multiplier=v.get("multiplier") or "",
            con_id=v.get("conId") or 0,
            primary_exchange=v.get("primaryExchange") or "",
            local_symbol=v.get("localSymbol") or "",
            trading_class=v.get("tradingClass") or "",
            include_expired=bool(v.get("includeExpired")),
        )

    def resolve_one(self, v: dict[str, Any]) -> SimContract | None:
        found = self.resolve(v)
        return found[0] if len(found) == 1 else None

    def on_reqContractDetails(self, v: dict[str, Any]) -> None:
        req_id = v["reqId"]
        found = self.resolve(v)
        if not found:
            self.error(req_id, 200, NO_SECURITY)
            return
        exchange = (v.get("exchange") or "").upper()
        for c in found:
            shown = "SMART" if exchange == "SMART" and "SMART" in c.valid_exchanges.split(",") else ""
            self.send("contractData", contract_details_values(req_id, c, shown))
        self.send("contractDataEnd", {"reqId": req_id})

    def on_reqMarketRule(self, v: dict[str, Any]) -> None:
        rule = v.get("marketRuleId")
        for c in self.server.db.all():
            if str(rule) in c.market_rule_ids.split(","):
                self.send(
                    "marketRule",
                    {"marketRuleId": rule, "increments": [{"lowEdge": 0.0, "increment": c.min_tick}]},
                )
                return

    # ---- market data ----------------------------------------------------------------------------

    def tick_price(self, req_id: int, tick_type: int, price: float, size: float) -> None:
        """One tickPrice (hot path: a precompiled positional encoder, no dict)."""
        self.send_frame(self._enc_tick_price(req_id, tick_type, price, size, 0))

    def tick_size(self, req_id: int, tick_type: int, size: float) -> None:
        """One tickSize (hot path)."""
        self.send_frame(self._enc_tick_size(req_id, tick_type, size))

    def on_reqMarketDataType(self, v: dict[str, Any]) -> None:
        t = v.get("marketDataType") or 0
        if t not in (1, 2, 3, 4):
            self.error(-1, 10091, f"Invalid market data type {t}: use 1 live, 2 frozen, 3 delayed, 4 delayed-frozen.")
            return
        self.md_type = t
        self.md_type_requested = True

    def on_reqMktData(self, v: dict[str, Any]) -> None:
        req_id = v["reqId"]
        server = self.server
        c = self.resolve_one(v) if v.get("secType") != "BAG" else None
        if c is None:
            self.error(req_id, 200, NO_SECURITY)
            return
        delayed = self.md_type in (3, 4)
        q = server.market.quote(c.con_id)
        if v.get("snapshot") or v.get("regulatorySnapshot"):
            sub = MktSub(self, req_id, c.con_id, delayed)
            if self.md_type_requested:
                self.send("marketDataType", {"reqId": req_id, "marketDataType": self.md_type})
            server.send_quote(sub, q, full=True)
            self.send("tickSnapshotEnd", {"reqId": req_id})
            return
        if req_id in self.mkt:
            self.error(req_id, 322, f"Error processing request: Duplicate ticker id {req_id}")
            return
        if server.lines_in_use >= server.max_lines:
            self.error(req_id, 101, f"Max number of tickers has been reached. ({server.max_lines} lines)")
            return
        sub = MktSub(self, req_id, c.con_id, delayed)
        server.subscribe(sub)
        self.send(
            "tickReqParams", {"reqId": req_id, "minTick": c.min_tick, "bboExchange": "9c0001", "snapshotPermissions": 3}
        )
        if self.md_type_requested:
            self.send("marketDataType", {"reqId": req_id, "marketDataType": self.md_type})
        if not server.faults.connectivity_lost:
            server.send_quote(sub, q, full=True)

    def on_cancelMktData(self, v: dict[str, Any]) -> None:
        sub = self.mkt.get(v["reqId"])
        if sub is not None:
            self.server.unsubscribe(sub)

    def drop_market_data(self) -> int:
        """Forget every market-data line of this session (what IB does on 1101); returns how many."""
        subs = list(self.mkt.values())
        for sub in subs:
            self.server.unsubscribe(sub)
        return len(subs)

    # ---- orders ---------------------------------------------------------------------------------

    def on_placeOrder(self, v: dict[str, Any]) -> None:
        server = self.server
        order_id = v.get("orderId") or 0
        assert self.client_id is not None
        server.see_order_id(order_id)
        c = self.resolve_one(v) if v.get("secType") != "BAG" else None
        if c is None:
            self.error(order_id, 200, NO_SECURITY)
            return
        qty: Decimal = v.get("totalQuantity") or Decimal(0)
        if qty != qty.to_integral_value():
            self.error(
                order_id, 201, f"Order rejected - reason:Fractional quantity {qty} is not supported for {c.symbol}."
            )
            return
        order = order_from_wire(v, self.client_id, c.con_id, server.account)
        if order.what_if:
            server.dispatch([server.exchange.what_if(order)])
            return
        server.dispatch(server.exchange.place(order))

    def on_cancelOrder(self, v: dict[str, Any]) -> None:
        assert self.client_id is not None
        self.server.dispatch(self.server.exchange.cancel(self.client_id, v.get("orderId") or 0))

    def on_reqGlobalCancel(self, v: dict[str, Any]) -> None:
        self.server.dispatch(self.server.exchange.global_cancel())

    def _send_open_orders(self, client_id: int | None) -> None:
        for o in self.server.exchange.open_orders(client_id):
            self.server.send_order(self, o)
        self.send("openOrderEnd", {})

    def on_reqOpenOrders(self, v: dict[str, Any]) -> None:
        # clientId 0 also sees orders it bound; everyone else sees their own.
        self._send_open_orders(None if self.client_id == 0 and self.auto_bind else self.client_id)

    def on_reqAllOpenOrders(self, v: dict[str, Any]) -> None:
        self._send_open_orders(None)

    def on_reqAutoOpenOrders(self, v: dict[str, Any]) -> None:
        if self.client_id != 0:
            self.error(-1, 10148, "reqAutoOpenOrders is only valid for clientId 0.")
            return
        self.auto_bind = bool(v.get("autoBind"))

    def on_reqCompletedOrders(self, v: dict[str, Any]) -> None:
        db = self.server.db
        for o in self.server.exchange.completed_orders():
            c = db.get(o.con_id)
            if c is not None:
                self.send("completedOrder", completed_order_values(o, c))
        self.send("completedOrdersEnd", {})

    def on_reqExecutions(self, v: dict[str, Any]) -> None:
        req_id = v["reqId"]
        ex = self.server.exchange
        db = self.server.db
        try:
            executions = ex.executions(
                client_id=v.get("clientId") or 0,
                acct=v.get("acctCode") or "",
                time=v.get("time") or "",
                symbol=v.get("symbol") or "",
                sec_type=v.get("secType") or "",
                exchange=v.get("exchange") or "",
                side=v.get("side") or "",
            )
        except ValueError as exc:
            # A filter the engine cannot read (e.g. a bad time): say so, and end the request empty.
            self.error(req_id, 321, f"Error validating request:-'bV' : cause - invalid execution filter ({exc})")
            executions = []
        for e in executions:
            c = db.get(e.con_id)
            if c is None:
                continue
            self.send("execDetails", exec_values(req_id, e, c))
            cr = ex.commission_of(e.exec_id)
            if cr is not None:
                self.send("commissionReport", commission_values(cr))
        self.send("execDetailsEnd", {"reqId": req_id})

    # ---- account --------------------------------------------------------------------------------

    def send_position(self, p: SimPosition, c: SimContract) -> None:
        self.send(
            "position", {**contract_values(c), "account": p.account, "position": p.quantity, "avgCost": p.avg_cost}
        )

    def send_portfolio(self, r: PortfolioRow, c: SimContract) -> None:
        self.send(
            "portfolioValue",
            {
                **contract_values(c),
                "position": r.position,
                "marketPrice": r.market_price,
                "marketValue": r.market_value,
                "averageCost": r.average_cost,
                "unrealizedPNL": r.unrealized_pnl,
                "realizedPNL": r.realized_pnl,
                "accountName": r.account,
            },
        )

    def send_account_values(self, values: Iterable[tuple[str, str, str]], rows: Iterable[PortfolioRow]) -> None:
        account = self.server.account
        for key, value, currency in values:
            self.send("accountValue", {"key": key, "value": value, "currency": currency, "accountName": account})
        for r in rows:
            c = self.server.db.get(r.con_id)
            if c is not None:
                self.send_portfolio(r, c)
        t = dt.datetime.fromtimestamp(self.server.clock.now(), dt.UTC)
        self.send("accountUpdateTime", {"time": t.strftime("%H:%M")})

    def on_reqPositions(self, v: dict[str, Any]) -> None:
        self.positions_sub = True
        for p in self.server.ledger.positions():
            c = self.server.db.get(p.con_id)
            if c is not None:
                self.send_position(p, c)
        self.send("positionEnd", {})

    def on_cancelPositions(self, v: dict[str, Any]) -> None:
        self.positions_sub = False

    def on_reqPositionsMulti(self, v: dict[str, Any]) -> None:
        req_id = v["reqId"]
        for p in self.server.ledger.positions():
            c = self.server.db.get(p.con_id)
            if c is not None:
                self.send(
                    "positionMulti",
                    {
                        **contract_values(c),
                        "reqId": req_id,
                        "account": p.account,
                        "position": p.quantity,
                        "avgCost": p.avg_cost,
                        "modelCode": v.get("modelCode") or "",
                    },
                )
        self.send("positionMultiEnd", {"reqId": req_id})

    def on_cancelPositionsMulti(self, v: dict[str, Any]) -> None:
        pass  # positionMulti is answered once; nothing streams

    def on_reqAccountUpdates(self, v: dict[str, Any]) -> None:
        account = v.get("acctCode") or self.server.account
        if not v.get("subscribe"):
            self.account_sub = False
            return
        if account != self.server.account:
            self.error(-1, 321, f"Error validating request: account {account!r} is not managed by this gateway.")
            return
        self.account_sub = True
        ledger = self.server.ledger
        self.send_account_values(ledger.account_values(), ledger.portfolio())
        self.send("accountDownloadEnd", {"account": account})

    def send_account_multi(self, req_id: int, values: Iterable[tuple[str, str, str]], end: bool) -> None:
        account = self.server.account
        model = self.account_multi.get(req_id, "")
        for key, value, currency in values:
            self.send(
                "accountUpdateMulti",
                {
                    "reqId": req_id,
                    "account": account,
                    "modelCode": model,
                    "key": key,
                    "value": value,
                    "currency": currency,
                },
            )
        if end:
            self.send("accountUpdateMultiEnd", {"reqId": req_id})

    def on_reqAccountUpdatesMulti(self, v: dict[str, Any]) -> None:
        req_id = v["reqId"]
        self.account_multi[req_id] = v.get("modelCode") or ""
        self.send_account_multi(req_id, self.server.ledger.account_values(), end=True)

    def on_cancelAccountUpdatesMulti(self, v: dict[str, Any]) -> None:
        self.account_multi.pop(v["reqId"], None)

    def send_account_summary(self, req_id: int, tags: str) -> None:
        account = self.server.account
        for tag, value, currency in self.server.ledger.account_summary(tags):
            self.send(
                "accountSummary",
                {"reqId": req_id, "account": account, "tag": tag, "value": value, "currency": currency},
            )
        self.send("accountSummaryEnd", {"reqId": req_id})

    def on_reqAccountSummary(self, v: dict[str, Any]) -> None:
        req_id = v["reqId"]
        tags = v.get("tags") or ""
        self.summaries[req_id] = tags
        self.send_account_summary(req_id, tags)

    def on_cancelAccountSummary(self, v: dict[str, Any]) -> None:
        self.summaries.pop(v["reqId"], None)

    def send_pnl(self) -> None:
        ledger = self.server.ledger
        if self.pnl_subs:
            daily, unrealized, realized = ledger.pnl()
            for req_id in self.pnl_subs:
                self.send(
                    "pnl", {"reqId": req_id, "dailyPnL": daily, "unrealizedPnL": unrealized, "realizedPnL": realized}
                )
        for req_id, con_id in self.pnl_single_subs.items():
            pos, daily, unrealized, realized, value = ledger.pnl_single(con_id)
            self.send(
                "pnlSingle",
                {
                    "reqId": req_id,
                    "pos": pos,
                    "dailyPnL": daily,
                    "unrealizedPnL": unrealized,
                    "realizedPnL": realized,
                    "value": value,
                },
            )

    def on_reqPnL(self, v: dict[str, Any]) -> None:
        self.pnl_subs.add(v["reqId"])
        self.send_pnl()

    def on_cancelPnL(self, v: dict[str, Any]) -> None:
        self.pnl_subs.discard(v["reqId"])

    def on_reqPnLSingle(self, v: dict[str, Any]) -> None:
        con_id = v.get("conId") or 0
        if self.server.db.get(con_id) is None:
            self.error(v["reqId"], 200, NO_SECURITY)
            return
        self.pnl_single_subs[v["reqId"]] = con_id
        self.send_pnl()

    def on_cancelPnLSingle(self, v: dict[str, Any]) -> None:
        self.pnl_single_subs.pop(v["reqId"], None)

    # ---- historical data ------------------------------------------------------------------------

    def on_reqHistoricalData(self, v: dict[str, Any]) -> None:
        req_id = v["reqId"]
        server = self.server
        c = self.resolve_one(v) if v.get("secType") != "BAG" else None
        if c is None:
            self.error(req_id, 200, NO_SECURITY)
            return
        bar_size = v.get("barSizeSetting") or ""
        what = (v.get("whatToShow") or "TRADES").upper()
        seconds = parse_bar_seconds(bar_size)
        now = server.clock.now()
        keep = bool(v.get("keepUpToDate"))
        if server.faults.pacing_violations:
            server.faults.pacing_violations -= 1
            self.error(
                req_id, 162, "Historical Market Data Service error message:Historical data request pacing violation"
            )
            return
        if keep and len([h for s in server.conns for h in s.hist_live.values()]) >= 50:
            self.error(
                req_id,
                162,
                "Historical Market Data Service error message:"
                "Only 50 simultaneous API historical data requests allowed.",
            )
            return
        identical = (
            c.con_id,
            v.get("exchange"),
            v.get("endDateTime"),
            bar_size,
            v.get("durationStr"),
            what,
            bool(v.get("useRTH")),
            keep,
        )
        violation = server.pacer.check(
            now, identical, (c.con_id, v.get("exchange"), what), seconds is not None and seconds <= 30
        )
        if violation:
            self.error(req_id, 162, violation)
            return
        try:
            end = parse_end_datetime(v.get("endDateTime") or "")
        except ValueError as e:
            self.error(req_id, 321, f"Error validating request:-'bP' : cause - {e}")
            return
        try:
            bars = server.history.bars(c.con_id, end, v.get("durationStr") or "", bar_size, what, bool(v.get("useRTH")))
        except HistoryError as e:
            self.error(req_id, e.code, e.text)
            return
        if not bars:
            exch = v.get("exchange") or c.exchange
            self.error(
                req_id,
                162,
                f"Historical Market Data Service error message:HMDS query returned no data: "
                f"{c.local_symbol or c.symbol}@{exch} {what.title()}",
            )
            return
        fmt = v.get("formatDate") or 1
        daily = seconds is not None and seconds >= 86400
        tz = c.time_zone_id or "UTC"
        start_str = _range_date(bars[0].time if bars else now)
        end_str = _range_date(end or now)
        self.send(
            "historicalData",
            {
                "reqId": req_id,
                "startDateStr": start_str,
                "endDateStr": end_str,
                "bars": [
                    {
                        "date": bar_date(b.time, fmt, daily, tz),
                        "open": b.open,
                        "high": b.high,
                        "low": b.low,
                        "close": b.close,
                        "volume": b.volume,
                        "wap": b.wap,
                        "barCount": b.bar_count,
                    }
                    for b in bars
                ],
            },
        )
        if keep and seconds and not daily:
            last = bars[-1] if bars else None
            q: SimQuote = server.market.quote(c.con_id)
            h = HistSub(
                self,
                req_id,
                c.con_id,
                seconds,
                fmt,
                tz,
                start=last.time if last else now - now % seconds,
                open=last.open if last else q.last,
                high=last.high if last else q.last,
                low=last.low if last else q.last,
                close=last.close if last else q.last,
                volume=last.volume if last else 0,
                count=last.bar_count if last else 0,
                last_volume=q.volume,
            )
            self.hist_live[req_id] = h
            server.hist_by_con.setdefault(c.con_id, set()).add(h)

    def send_bar_update(self, h: HistSub) -> None:
        daily = h.bar_seconds >= 86400
        wap = (h.high + h.low + h.close) / 3
        self.send(
            "historicalDataUpdate",
            {
                "reqId": h.req_id,
                "barCount": h.count,
                "date": bar_date(h.start, h.format_date, daily, h.tz),
                "open": h.open,
                "close": h.close,
                "high": h.high,
                "low": h.low,
                "wap": round(wap, 6),
                "volume": h.volume,
            },
        )

    def on_cancelHistoricalData(self, v: dict[str, Any]) -> None:
        h = self.hist_live.pop(v["reqId"], None)
        if h is not None:
            self.server.hist_by_con.get(h.con_id, set()).discard(h)

    def on_reqHeadTimeStamp(self, v: dict[str, Any]) -> None:
        req_id = v["reqId"]
        c = self.resolve_one(v)
        if c is None:
            self.error(req_id, 200, NO_SECURITY)
            return
        try:
            t = self.server.history.head_timestamp(
                c.con_id, (v.get("whatToShow") or "TRADES").upper(), bool(v.get("useRTH"))
            )
        except HistoryError as e:
            self.error(req_id, e.code, e.text)
            return
        fmt = v.get("formatDate") or 1
        text = str(int(t)) if fmt == 2 else dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y%m%d-%H:%M:%S")
        self.send("headTimestamp", {"reqId": req_id, "timestamp": text})

    def on_cancelHeadTimeStamp(self, v: dict[str, Any]) -> None:
        pass  # answered at once; nothing to cancel

    def on_reqRealTimeBars(self, v: dict[str, Any]) -> None:
        self.error(v["reqId"], 420, "Invalid Real-time Query:real-time bars are not offered by the simulated gateway")

    def on_cancelRealTimeBars(self, v: dict[str, Any]) -> None:
        pass


def _range_date(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y%m%d %H:%M:%S")


def bar_date(epoch: float, fmt: int, daily: bool, tz: str) -> str:
    """A bar's date as IB writes it: epoch text (formatDate 2), YYYYMMDD for daily bars, else with a zone."""
    if fmt == 2:
        return str(int(epoch))
    if daily:
        return dt.datetime.fromtimestamp(epoch, ZoneInfo(tz)).strftime("%Y%m%d")
    return ib_time(epoch, tz)


_END_RE = re.compile(r"^(\d{8})[ -](\d{2}:\d{2}:\d{2})(?: (\S+))?$")


def parse_end_datetime(text: str) -> float | None:
    """endDateTime of a historical request as epoch seconds; "" means now (None)."""
    text = text.strip()
    if not text:
        return None
    m = _END_RE.match(text)
    if not m:
        raise ValueError(f"end date/time {text!r} is not 'YYYYMMDD HH:MM:SS [TZ]'")
    try:
        tz = ZoneInfo(m.group(3)) if m.group(3) else dt.UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {m.group(3)!r}") from None
    t = dt.datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H:%M:%S").replace(tzinfo=tz)
    return t.timestamp()


__all__ = ["Session", "bar_date", "parse_end_datetime"]
