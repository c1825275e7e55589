"""The simulated Gateway's hub: listens on loopback, owns the engine, routes its events to sessions.

One `SimServer` per gateway. It runs on one asyncio loop; every method must be called on that loop
(`SimGateway` marshals calls from other threads). Time comes from the `SimClock`: in real-time mode a
driver task advances the market every `tick_interval` wall seconds; in virtual mode nothing moves
until `advance_to` is called.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omega_tui.sim.engine import (
    AccountChanged,
    CancelRejected,
    ContractDB,
    Exchange,
    ExecutionCorrected,
    HistoryGenerator,
    Ledger,
    Market,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStatusChanged,
    PositionChanged,
    SimClock,
    SimEvent,
    SimOrder,
    SimQuote,
    WhatIfResult,
)
from omega_tui.sim.render import (
    commission_values,
    exec_values,
    open_order_values,
    order_status_values,
    what_if_values,
)
from omega_tui.sim.wire import MAX_MESSAGE_SIZE

if TYPE_CHECKING:
    from omega_tui.sim.session import Session

log = logging.getLogger("omega_tui.sim.server")

LOOPBACK = {"127.0.0.1": "127.0.0.1", "::1": "::1", "localhost": "127.0.0.1"}
MAX_CONNECTIONS = 32

# Tick types: (live, delayed) per quote field.
TICKS = {
    "bid": (1, 66),
    "ask": (2, 67),
    "last": (4, 68),
    "high": (6, 72),
    "low": (7, 73),
    "close": (9, 75),
    "open": (14, 76),
    "volume": (8, 74),
}

# The size tick that follows a price tick: bidSize, askSize, lastSize (live, delayed).
SIZE_TICKS = {"bid": (0, 69), "ask": (3, 70), "last": (5, 71)}

PACING_TEXT = "Historical Market Data Service error message:Historical data request pacing violation"
SIMULTANEOUS_TEXT = (
    "Historical Market Data Service error message:Only 50 simultaneous API historical data requests allowed."
)


def check_loopback(host: str) -> str:
    """The address to bind for `host`; raises ValueError for anything that is not loopback."""
    try:
        return LOOPBACK[host]
    except KeyError:
        raise ValueError(f"the simulated gateway binds to loopback only (127.0.0.1 or ::1), not {host!r}") from None


@dataclass(eq=False)
class MktSub:
    """One market-data line: a session's reqId on a contract, and what it has been sent so far."""

    session: Session
    req_id: int
    con_id: int
    delayed: bool
    sent: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass(eq=False)
class HistSub:
    """A keepUpToDate historical request: the bar being formed from live quotes."""

    session: Session
    req_id: int
    con_id: int
    bar_seconds: int
    format_date: int
    tz: str
    start: float
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int
    last_volume: int


@dataclass
class FaultState:
    """Switches the fault API flips; read on the hot paths, so plain attributes."""

    connectivity_lost: bool = False
    stalled: dict[str, int] = field(default_factory=dict)  # message name -> how many to swallow (-1 = all)
    delayed: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (how many, virtual seconds)
    duplicate_status: int = 0
    exec_before_open: int = 0
    pacing_violations: int = 0


class HistPacer:
    """IB's historical-data pacing rules, on virtual time."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, tuple[Any, ...], tuple[Any, ...], bool]] = deque()

    def check(self, now: float, identical: tuple[Any, ...], same: tuple[Any, ...], small_bars: bool) -> str | None:
        """The 162 text if this request breaks a rule (it is counted either way), else None."""
        while self._recent and now - self._recent[0][0] > 600:
            self._recent.popleft()
        violation: str | None = None
        if any(key == identical and now - t < 15 for t, key, _, _ in self._recent):
            violation = PACING_TEXT + " (identical request within 15 seconds)"
        elif sum(1 for t, _, s, _ in self._recent if s == same and now - t < 2) >= 5:
            violation = PACING_TEXT + " (6 or more requests for the same contract within 2 seconds)"
        elif small_bars and sum(1 for *_, small in self._recent if small) >= 60:
            violation = PACING_TEXT + " (more than 60 requests within 10 minutes)"
        self._recent.append((now, identical, same, small_bars))
        return violation


class SimServer:
    """Listening socket, engine, sessions and the tick loop of one simulated Gateway."""

    def __init__(
        self,
        *,
        clock: SimClock,
        seed: int = 7,
        speed: float = 1.0,
        account: str = "DU1234567",
        max_lines: int = 100,
        max_connections: int = MAX_CONNECTIONS,
        rate_limit: int = 50,
        max_message_size: int = MAX_MESSAGE_SIZE,
        tick_interval: float = 0.05,
        account_interval: float = 3.0,
        pnl_interval: float = 1.0,
        extra_stocks: int = 0,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.account = account
        self.max_lines = max_lines
        self.max_connections = max_connections
        self.rate_limit = rate_limit
        self.max_message_size = max_message_size
        self.tick_interval = tick_interval
        self.account_interval = account_interval
        self.pnl_interval = pnl_interval
        self.db = ContractDB(seed, extra_stocks=extra_stocks)
        self.market = Market(self.db, clock, seed, speed)
        self.ledger = Ledger(self.db, account=account)
        self.exchange = Exchange(self.db, self.market, self.ledger, clock, seed)
        self.history = HistoryGenerator(self.db, self.market, seed)
        self.pacer = HistPacer()
        self.faults = FaultState()
        self.start_time = clock.now()
        self.next_order_id = 1
        self.sessions: dict[int, Session] = {}
        self.conns: set[Session] = set()
        self.by_con: dict[int, set[MktSub]] = {}
        self.hist_by_con: dict[int, set[HistSub]] = {}
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self._server: asyncio.AbstractServer | None = None
        self._driver: asyncio.Task[None] | None = None
        self._refuse_handle: asyncio.TimerHandle | None = None
        self._next_pnl = self.start_time + pnl_interval
        self._next_account = self.start_time + account_interval
        self.burst = 0
        self._burst_applied = False
        self.host = "127.0.0.1"
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on a loopback address; returns the bound port."""
        self.host = check_loopback(host)
        self.loop = asyncio.get_running_loop()
        await self._listen(port)
        if self.clock.is_realtime:
            self._driver = asyncio.create_task(self._drive(), name="sim-gateway-driver")
        log.info("sim gateway listening on %s:%d", self.host, self.port)
        return self.port

    async def _listen(self, port: int) -> None:
        from omega_tui.sim.session import Session

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Session(self), self.host, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close every connection and the listening socket."""
        if self._refuse_handle is not None:
            self._refuse_handle.cancel()
            self._refuse_handle = None
        if self._driver is not None:
            self._driver.cancel()
            try:
                await self._driver
            except asyncio.CancelledError:
                pass
            self._driver = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for s in list(self.conns):
            s.close("gateway stopping")
        await asyncio.sleep(0)
        log.info("sim gateway on port %d stopped", self.port)

    async def _drive(self) -> None:
        # Steps on a fixed schedule (each step's time less what the step itself took), so the step rate, and
        # with it the burst mode's event rate, holds while a step costs time; far behind, it re-anchors
        # rather than rushing to catch up.
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.tick_interval
            now = loop.time()
            if due < now - self.tick_interval:
                due = now
            await asyncio.sleep(max(0.0, due - now))
            try:
                self.advance_to(self.clock.now())
            except Exception:
                log.exception("tick loop step failed")

    # ---- connections ----------------------------------------------------------------------------

    def admit(self, session: Session) -> bool:
        """Whether a new connection may stay (connection limit)."""
        if len(self.conns) >= self.max_connections:
            log.warning("refusing connection: %d connections already open", len(self.conns))
            return False
        self.conns.add(session)
        return True

    def register(self, session: Session, client_id: int) -> bool:
        """Bind a clientId to a session; False when another live session holds it (error 326)."""
        if client_id in self.sessions:
            return False
        self.sessions[client_id] = session
        return True

    def forget(self, session: Session) -> None:
        """A connection ended: drop it and everything it subscribed to."""
        self.conns.discard(session)
        if session.client_id is not None and self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        for sub in list(session.mkt.values()):
            self.unsubscribe(sub)
        session.mkt.clear()
        for hsub in list(session.hist_live.values()):
            self.hist_by_con.get(hsub.con_id, set()).discard(hsub)
        session.hist_live.clear()

    def drop_all(self, refuse_for: float = 0.0) -> None:
        """A Gateway restart: close every connection, optionally refuse new ones for `refuse_for` wall seconds."""
        log.warning("dropping all %d connections (refusing new ones for %.1fs)", len(self.conns), refuse_for)
        for s in list(self.conns):
            s.close("gateway restart", abort=True)
        if refuse_for > 0 and self._server is not None:
            self._server.close()
            self._server = None
            loop = asyncio.get_running_loop()
            self._refuse_handle = loop.call_later(refuse_for, lambda: loop.create_task(self._relisten()))

    async def _relisten(self) -> None:
        self._refuse_handle = None
        try:
            await self._listen(self.port)
            log.info("sim gateway accepting connections again on %s:%d", self.host, self.port)
        except OSError:
            log.exception("could not listen again on port %d", self.port)

    @property
    def lines_in_use(self) -> int:
        """Market-data lines held by every session together (IB counts per account)."""
        return sum(len(s.mkt) for s in self.conns)

    # ---- ids ------------------------------------------------------------------------------------

    def see_order_id(self, order_id: int) -> None:
        """Keep the shared id counter above every order id a client used (gaps are fine)."""
        if order_id >= self.next_order_id:
            self.next_order_id = order_id + 1

    # ---- market data ----------------------------------------------------------------------------

    def subscribe(self, sub: MktSub) -> None:
        self.by_con.setdefault(sub.con_id, set()).add(sub)
        sub.session.mkt[sub.req_id] = sub
        self._apply_burst()

    def unsubscribe(self, sub: MktSub) -> None:
        subs = self.by_con.get(sub.con_id)
        if subs is not None:
            subs.discard(sub)
        sub.session.mkt.pop(sub.req_id, None)
        self._apply_burst()

    def set_burst(self, events_per_step: int) -> None:
        """Benchmark mode: every step adds this many quote updates to each contract someone streams."""
        self.burst = events_per_step
        self._apply_burst()

    def _apply_burst(self) -> None:
        if self.burst or self._burst_applied:
            # Only streamed contracts get the extra events: the others would burn CPU for nobody.
            streamed = [con_id for con_id, subs in self.by_con.items() if subs]
            self.market.set_burst(1 if self.burst and streamed else 0, streamed)
            self._burst_applied = bool(self.burst)

    def send_quote(self, sub: MktSub, q: SimQuote, full: bool = False) -> None:
        """Ticks for what changed since the last send to this line (everything when `full`)."""
        session = sub.session
        if session.backlogged:
            return  # the client is not reading: skip this update rather than queue without bound
        sent = sub.sent
        idx = 1 if sub.delayed else 0
        req_id = sub.req_id
        # Like TWS, each bid/ask/last tickPrice is followed by a tickSize repeating its size.
        for name, price, size in (("bid", q.bid, q.bid_size), ("ask", q.ask, q.ask_size)):
            cur: tuple[float, float] = (price, size)
            if full or sent.get(name) != cur:
                sent[name] = cur
                session.tick_price(req_id, TICKS[name][idx], price, size)
                session.tick_size(req_id, SIZE_TICKS[name][idx], size)
        last: tuple[float, float] = (q.last, q.last_size)
        vol = (float(q.volume), 0.0)
        traded = sent.get("volume") != vol
        if q.last > 0 and (full or traded or sent.get("last") != last):
            sent["last"] = last
            session.tick_price(req_id, TICKS["last"][idx], q.last, q.last_size)
            session.tick_size(req_id, SIZE_TICKS["last"][idx], q.last_size)
        if full or traded:
            sent["volume"] = vol
            session.tick_size(req_id, TICKS["volume"][idx], q.volume)
        for name, price in (("high", q.high), ("low", q.low), ("open", q.open), ("close", q.close)):
            cur = (price, 0.0)
            if price > 0 and (full or sent.get(name) != cur):
                sent[name] = cur
                session.tick_price(req_id, TICKS[name][idx], price, 0)

    # ---- the clock ------------------------------------------------------------------------------

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        """Run `fn` once virtual time reaches `when` (scenario steps, delayed fault actions)."""
        self._timer_seq += 1
        self.timers.append((when, self._timer_seq, fn))
        self.timers.sort(key=lambda t: (t[0], t[1]))

    def advance_to(self, now: float) -> None:
        """Move the market, the matcher and the periodic pushes to virtual time `now`."""
        while self.timers and self.timers[0][0] <= now:
            _, _, fn = self.timers.pop(0)
            try:
                fn()
            except Exception:
                log.exception("scheduled action failed")
        # In burst mode every extra step applies one more event to each streamed contract, so each
        # event reaches the clients as its own quote update.
        for _ in range(max(1, self.burst)):
            for con_id in self.market.step(now):
                q = self.market.quote(con_id)
                if not self.faults.connectivity_lost:
                    for sub in tuple(self.by_con.get(con_id, ())):
                        self.send_quote(sub, q)
                    for hsub in tuple(self.hist_by_con.get(con_id, ())):
                        self._update_bar(hsub, q)
                self.dispatch(self.exchange.on_market(con_id))
        if now >= self._next_pnl:
            self._next_pnl = now + self.pnl_interval
            self.push_pnl()
        if now >= self._next_account:
            self._next_account = now + self.account_interval
            self.push_account(portfolio=True)

    def _update_bar(self, h: HistSub, q: SimQuote) -> None:
        if q.volume == h.last_volume or q.last <= 0:
            return
        bar_start = q.time - (q.time % h.bar_seconds)
        if bar_start > h.start:
            h.start, h.open, h.high, h.low, h.close, h.volume, h.count = bar_start, q.last, q.last, q.last, q.last, 0, 0
        h.high = max(h.high, q.last)
        h.low = min(h.low, q.last)
        h.close = q.last
        h.volume += q.volume - h.last_volume
        h.count += 1
        h.last_volume = q.volume
        h.session.send_bar_update(h)

    # ---- engine events → messages ----------------------------------------------------------------

    def order_targets(self, order: SimOrder) -> list[Session]:
        """The sessions that hear about an order: its owner, and clientId 0 when it auto-binds."""
        targets: list[Session] = []
        owner = self.sessions.get(order.client_id)
        if owner is not None:
            targets.append(owner)
        master = self.sessions.get(0)
        if master is not None and master is not owner and master.auto_bind:
            targets.append(master)
        return targets

    def send_order(self, s: Session, order: SimOrder) -> None:
        """openOrder then orderStatus for one order."""
        c = self.db.get(order.con_id)
        if c is None:
            return
        s.send("openOrder", open_order_values(order, c))
        self.send_status(s, order)

    def send_status(self, s: Session, order: SimOrder) -> None:
        values = order_status_values(order)
        s.send("orderStatus", values)
        if self.faults.duplicate_status:
            self.faults.duplicate_status -= 1
            s.send("orderStatus", values)

    def dispatch(self, events: Iterable[SimEvent]) -> None:
        """Send each engine event to the sessions that must hear it, in the order a Gateway would."""
        events = list(events)
        early: OrderFilled | None = None
        if self.faults.exec_before_open:
            early = next((ev for ev in events if isinstance(ev, OrderFilled)), None)
            if early is not None:
                # Fault: the execution reaches the client before the order's openOrder/orderStatus.
                self.faults.exec_before_open -= 1
                c = self.db.get(early.order.con_id)
                for s in self.order_targets(early.order):
                    if c is not None:
                        s.send("execDetails", exec_values(-1, early.execution, c))
        for ev in events:
            if isinstance(ev, OrderAccepted | OrderStatusChanged):
                for s in self.order_targets(ev.order):
                    self.send_order(s, ev.order)
            elif isinstance(ev, OrderFilled):
                self._send_fill(ev, skip_exec=ev is early)
            elif isinstance(ev, ExecutionCorrected):
                c = self.db.get(ev.order.con_id)
                for s in self.order_targets(ev.order):
                    if c is not None:
                        s.send("execDetails", exec_values(-1, ev.execution, c))
                        s.send("commissionReport", commission_values(ev.commission))
            elif isinstance(ev, OrderCancelled):
                for s in self.order_targets(ev.order):
                    self.send_status(s, ev.order)
                    if s.client_id == ev.order.client_id:
                        s.error(ev.order.order_id, ev.code, ev.text)
            elif isinstance(ev, OrderRejected):
                owner = self.sessions.get(ev.order.client_id)
                if owner is not None:
                    owner.error(ev.order.order_id, ev.code, ev.text)
            elif isinstance(ev, CancelRejected):
                owner = self.sessions.get(ev.client_id)
                if owner is not None:
                    owner.error(ev.order_id, ev.code, ev.text)
            elif isinstance(ev, WhatIfResult):
                owner = self.sessions.get(ev.order.client_id)
                c = self.db.get(ev.order.con_id)
                if owner is not None and c is not None:
                    owner.send("openOrder", what_if_values(ev, c))
            elif isinstance(ev, PositionChanged):
                self.push_position(ev.con_id)
            elif isinstance(ev, AccountChanged):
                self.push_account(portfolio=False)
                self.push_pnl()

    def _send_fill(self, ev: OrderFilled, skip_exec: bool = False) -> None:
        c = self.db.get(ev.order.con_id)
        if c is None:
            return
        for s in self.order_targets(ev.order):
            if not skip_exec:
                s.send("execDetails", exec_values(-1, ev.execution, c))
            self.send_status(s, ev.order)
            s.send("openOrder", open_order_values(ev.order, c))
            s.send("commissionReport", commission_values(ev.commission))

    def push_position(self, con_id: int) -> None:
        """position (61) and portfolioValue (7) for one contract to their subscribers."""
        pos = next((p for p in self.ledger.positions() if p.con_id == con_id), None)
        row = next((r for r in self.ledger.portfolio() if r.con_id == con_id), None)
        c = self.db.get(con_id)
        if c is None:
            return
        for s in list(self.conns):
            if s.positions_sub and pos is not None:
                s.send_position(pos, c)
            if s.account_sub and row is not None:
                s.send_portfolio(row, c)

    def push_account(self, *, portfolio: bool) -> None:
        """Account values (and portfolio rows on marks) to reqAccountUpdates and multi subscribers."""
        subs = [s for s in self.conns if s.account_sub or s.account_multi or s.summaries]
        if not subs:
            return
        values = self.ledger.account_values()
        rows = self.ledger.portfolio() if portfolio else []
        for s in subs:
            if s.account_sub:
                s.send_account_values(values, rows)
            for req_id in s.account_multi:
                s.send_account_multi(req_id, values, end=False)
            for req_id, tags in s.summaries.items():
                s.send_account_summary(req_id, tags)

    def push_pnl(self) -> None:
        """PnL and PnLSingle for every subscription."""
        for s in list(self.conns):
            if s.pnl_subs or s.pnl_single_subs:
                s.send_pnl()

    def broadcast_error(self, code: int, text: str) -> None:
        """A system notice (reqId -1) to every connected client."""
        for s in list(self.sessions.values()):
            s.error(-1, code, text)


def parse_bar_seconds(bar_size: str) -> int | None:
    """Seconds in an IB bar size ("5 secs", "1 min", "1 hour", "1 day"), None if not understood."""
    m = re.fullmatch(r"\s*(\d+)\s*(sec|secs|min|mins|hour|hours|day|days|week|weeks|month|months)\s*", bar_size)
    if not m:
        return None
    n = int(m.group(1))
    unit = m.group(2).rstrip("s")
    return n * {"sec": 1, "min": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000}[unit]


__all__ = ["HistSub", "MktSub", "SimServer", "check_loopback", "parse_bar_seconds"]
