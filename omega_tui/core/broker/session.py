"""The broker session: the one `ib_async.IB`, its connection, subscriptions and reconnects.

Lifecycle (a `Component`):

- `start()` connects (`connectAsync` with the configured clientId, account, read-only flag, a timeout and
  `raiseSyncErrors`), verifies every instrument (`verify.verify_instruments`, fail fast), subscribes market
  data (`reqMktData`, market data type from config), then warms up recent bars through the historical pacer
  in the background. A connection or verification failure raises `StartupVerificationError` (exit code 3).
- While running, it turns IB's connection news into `ConnectionState` (published as `ConnectionChanged` on
  the bus and as the hot state's `connection` section) and every IB error into `ApiErrorReceived`:
  socket drop → DOWN, then reconnect with exponential backoff, jitter and a cap; 1100 → DOWN; 1101 → UP
  and resubscribe (IB dropped the subscriptions); 1102 → UP, subscriptions kept; 2103/2105/2110 →
  DEGRADED and quotes STALE until 2104/2106 or fresh ticks.
- After a reconnect it re-verifies, resubscribes and rebuilds the ticker bindings (ib_async's old `Ticker`
  objects die with the connection), and reuses the same clientId only once the old socket has closed, so
  IB does not answer 326 (clientId in use). After a reconnect and after a 1101 it re-warms the bars: each
  instrument's bars from its newest stored bar to the server's current time, through the same pacer, so the
  history has no hole where the connection was down (an outage longer than the warm-up window replaces the
  history with a fresh window instead). A 326 during a connect attempt ends that attempt at once
  instead of waiting out the timeout, and the next attempt backs off.

Only ib_async's `*Async` requests and its non-blocking calls are used, on the loop that runs `start()`.

Messages to IB are encoded by Omega's byte-identical encoders (`wire_send.install`, on the session's `Client`
when it is created and re-checked at every connect): `wire_send` for `Client.send`, at about half ib_async's
cost, and `order_wire`'s placeOrder templates, built from ib_async's own `Client.placeOrder`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ib_async import IB, Contract

from omega_tui.config import Settings
from omega_tui.core.bars import BarStore, bar_seconds, duration_seconds
from omega_tui.core.broker.market_data import TickerFeed
from omega_tui.core.broker.orders_adapter import IbOrderAdapter
from omega_tui.core.broker.verify import StartupVerificationError, contract_for, verify_instruments
from omega_tui.core.broker.wire_send import install as install_wire_send
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import Clock
from omega_tui.core.component import Component
from omega_tui.core.hot_state import HotState
from omega_tui.core.normalizer import Normalizer
from omega_tui.core.throttle import Backoff, HistoricalPacer, HistoricalRequest, PacingViolation
from omega_tui.core.types import (
    ApiErrorReceived,
    Bar,
    BrokerError,
    ComponentState,
    ComponentStatusChanged,
    ConnectionChanged,
    ConnectionState,
    VerifiedInstrument,
)
from omega_tui.core.views import ConnectionView

log = logging.getLogger(__name__)

FARM_DOWN_CODES = frozenset({2103, 2105, 2110})
FARM_OK_CODES = frozenset({2104, 2106})
CLIENT_ID_IN_USE = 326
SOCKET_CLOSE_WAIT_S = 3.0
MAX_SECONDS_DURATION = 86_400  # IB's longest duration in seconds ("86400 S"); longer spans use the warm-up window


class BrokerSession(Component):
    """Owns the `ib_async.IB` instance; see the module docstring for what it guarantees.

    Wiring for the runtime: `session.orders` is the `OrderPort` (call `session.orders.set_order_events(sink)`
    before `start()`), `session.bars` the warmed-up `BarStore`, `session.verified` the verified instruments
    once started. `host`/`port` override the settings (the embedded simulator's port is only known once it
    listens). `rng` seeds the reconnect jitter; `sleep` is how the session waits (tests may speed it up).
    """

    name = "broker"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        bus: EventBus,
        hot_state: HotState,
        *,
        host: str | None = None,
        port: int | None = None,
        rng: random.Random | None = None,
        on_status: Callable[[ComponentStatusChanged], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(clock, on_status)
        self.settings = settings
        self.bus = bus
        self.hot_state = hot_state
        self.host = host or ("127.0.0.1" if settings.ib.mode == "sim" else settings.ib.host)
        self.port = port if port is not None else settings.ib.port
        self._sleep = sleep
        self.ib = IB()
        install_wire_send(self.ib.client)  # byte-identical, cheaper encoding (wire_send.py, order_wire.py)
        self.orders = IbOrderAdapter(self.ib, clock)
        md = settings.market_data
        self.normalizer = Normalizer(
            clock, bus, hot_state, stale_after_s=md.stale_after_s, max_jump_pct=md.max_jump_pct
        )
        self.feed = TickerFeed(self.normalizer, clock)
        self.bars = BarStore()
        self.pacer = HistoricalPacer(clock, sleep, backoff=Backoff(2.0, 60.0, rng=rng))
        self.bars_ready = asyncio.Event()
        self.verified: list[VerifiedInstrument] = []
        self.connection_state = ConnectionState.DOWN
        self.connection_detail = "not started"
        self.reconnects = 0
        self.account = settings.ib.account
        self._since = clock.now_utc()
        self._backoff = Backoff(settings.ib.reconnect_initial_s, settings.ib.reconnect_max_s, rng=rng)
        self._stopping = False
        self._connecting = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._rewarm_task: asyncio.Task[None] | None = None
        self.rewarms = 0  # bar re-warms completed after reconnects
        self._clash: asyncio.Event | None = None
        self._ib_down = False  # inside a 1100 … 1101/1102 gap
        self._farm_down = False
        self._contracts: dict[str, Contract] = {}
        self.orders.add_error_listener(self._on_broker_error)
        self.ib.pendingTickersEvent += self.feed.on_pending_tickers
        self.ib.disconnectedEvent += self._on_disconnected

    # ------------------------------------------------------------------ lifecycle

    async def on_start(self) -> None:
        self._stopping = False
        self._set_connection(ConnectionState.CONNECTING, f"connecting to {self.host}:{self.port}")
        try:
            await self._connect()
        except (ConnectionError, OSError, TimeoutError) as exc:
            line = (
                f"connection: could not connect to {self.host}:{self.port} as clientId {self.settings.ib.client_id} "
                f"within {self.settings.ib.connect_timeout_s:g} s: {_reason(exc)}"
            )
            self._set_connection(ConnectionState.DOWN, line)
            raise StartupVerificationError([line]) from None
        try:
            await self._verify()
        except StartupVerificationError:
            self._set_connection(ConnectionState.DOWN, "startup verification failed")
            await self._disconnect()
            raise
        self._subscribe()
        self._set_connection(ConnectionState.UP, "connected")
        self.spawn(self._watch_staleness(), "staleness")
        if self.settings.market_data.warmup_bars:
            self.spawn(self._warm_up(), "warmup")
        else:
            self.bars_ready.set()

    async def on_stop(self) -> None:
        self._stopping = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
        await self._disconnect()
        self._set_connection(ConnectionState.DOWN, "stopped")
        self.normalizer.mark_all_stale()
        self._publish_metrics()

    # ------------------------------------------------------------------ connection

    async def _connect(self) -> None:
        """One connect attempt, with its startup sync; raises ConnectionError/TimeoutError/OSError."""
        ib_cfg = self.settings.ib
        await self._wait_socket_closed()
        # ib_async's IB keeps one Client for its lifetime, but re-check on every connect (idempotent) so a
        # rebuilt client never sends through the slow encoder; see core/broker/wire_send.py.
        install_wire_send(self.ib.client)
        self._clash = asyncio.Event()
        self._connecting = True
        try:
            connect = asyncio.ensure_future(
                self.ib.connectAsync(
                    self.host,
                    self.port,
                    clientId=ib_cfg.client_id,
                    timeout=ib_cfg.connect_timeout_s,
                    readonly=ib_cfg.readonly,
                    account=ib_cfg.account,
                    raiseSyncErrors=True,
                )
            )
            clash = asyncio.ensure_future(self._clash.wait())
            # connectAsync applies its timeout per step; bound the whole attempt too.
            done, _ = await asyncio.wait(
                {connect, clash}, timeout=ib_cfg.connect_timeout_s * 3, return_when=asyncio.FIRST_COMPLETED
            )
            clash.cancel()
            if connect not in done:
                connect.cancel()
                await asyncio.gather(connect, return_exceptions=True)
                if clash in done:
                    raise ConnectionError(f"clientId {ib_cfg.client_id} is already in use (IB error 326)")
                raise TimeoutError("the connection and its startup sync did not finish in time")
            connect.result()
        finally:
            self._connecting = False
        accounts = list(self.ib.client.getAccounts())
        self.account = ib_cfg.account or (accounts[0] if accounts else "")
        self._ib_down = False

    def drop(self, reason: str) -> None:
        """Disconnect now (the risk engine's "auto-disconnect on critical API errors"); reconnection follows
        with backoff as after any drop, while trading stays halted until an operator resumes."""
        log.error("disconnecting from the gateway: %s", reason)
        if self.ib.client.isConnected():
            self.ib.disconnect()

    async def _disconnect(self) -> None:
        if self.ib.client.isConnected() or self.ib.client.conn.isConnected():
            self.ib.disconnect()
            # ib_async's disconnect() only resets the client when it was connected; make sure the socket goes.
            self.ib.client.conn.disconnect()
        await self._wait_socket_closed()

    async def _wait_socket_closed(self) -> None:
        """Wait (bounded) until the previous socket is really closed: reusing the clientId earlier gets 326."""
        conn = self.ib.client.conn
        if conn.transport is None:
            return
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_closed(_msg: str) -> None:
            if not closed.done():
                closed.set_result(None)

        conn.disconnected += on_closed
        try:
            if conn.transport is not None:
                await asyncio.wait_for(closed, SOCKET_CLOSE_WAIT_S)
        except TimeoutError:
            log.warning("the previous socket did not close within %.0f s; dropping it", SOCKET_CLOSE_WAIT_S)
            if conn.transport is not None:
                conn.transport.abort()
            conn.transport = None
        finally:
            conn.disconnected -= on_closed

    def _on_disconnected(self) -> None:
        if self._stopping or self._connecting:
            return
        self.feed.clear()
        self.normalizer.mark_all_stale()
        self._set_connection(ConnectionState.DOWN, "socket closed by the gateway")
        if self.state in (ComponentState.RUNNING, ComponentState.DEGRADED) and (
            self._reconnect_task is None or self._reconnect_task.done()
        ):
            self._reconnect_task = self.spawn(self._reconnect_loop(), "reconnect")

    async def _reconnect_loop(self) -> None:
        self._backoff.reset()
        while not self._stopping:
            delay = self._backoff.next_delay()
            attempt = self._backoff.attempt
            self._set_connection(ConnectionState.DOWN, f"reconnecting: attempt {attempt} in {delay:.2f} s")
            await self._sleep(delay)
            if self._stopping:
                return
            self._set_connection(ConnectionState.CONNECTING, f"reconnect attempt {attempt}")
            try:
                await self._connect()
                await self._verify()
            except (ConnectionError, OSError, TimeoutError, StartupVerificationError) as exc:
                log.warning("reconnect attempt %d failed: %s", attempt, _reason(exc))
                await self._disconnect()
                self._set_connection(ConnectionState.DOWN, f"reconnect attempt {attempt} failed: {_reason(exc)}")
                continue
            self.reconnects += 1
            self._subscribe()
            self._set_connection(ConnectionState.UP, f"reconnected after {attempt} attempt(s)")
            self._start_rewarm()
            return

    # ------------------------------------------------------------------ verification and subscriptions

    async def _verify(self) -> None:
        ib_cfg = self.settings.ib
        self.verified = await verify_instruments(
            self.ib,
            self.settings.instrument_specs,
            self.clock,
            account=self.account,
            readonly=ib_cfg.readonly,
            timeout_s=ib_cfg.connect_timeout_s,
            hot_state=self.hot_state,
        )
        for v in self.verified:
            contract = contract_for(v)
            self._contracts[v.key] = contract
            self.orders.register_contract(v.con_id, v.key, contract)
            self.normalizer.register(v.key, v.min_tick)

    def contract(self, key: str) -> Contract | None:
        """The qualified contract of a verified instrument (broker-internal callers only)."""
        return self._contracts.get(key)

    def _subscribe(self) -> None:
        """(Re)subscribe market data for every verified instrument and rebind the tickers."""
        self.feed.clear()
        self.normalizer.forget_raw()
        self.ib.reqMarketDataType(self.settings.ib.market_data_type)
        for v in self.verified:
            contract = self._contracts[v.key]
            ticker = self.ib.reqMktData(contract, "", False, False)
            self.feed.bind(ticker, v.key)
        log.info("subscribed market data for %d instruments", len(self.verified))

    def resubscribe(self) -> None:
        """Cancel and renew every market data subscription on the live connection (after 1101)."""
        if not self.ib.isConnected():
            return
        for v in self.verified:
            contract = self._contracts[v.key]
            if self.ib.ticker(contract) is not None:
                self.ib.cancelMktData(contract)
        self._subscribe()

    # ------------------------------------------------------------------ IB errors

    def _on_broker_error(self, error: BrokerError) -> None:
        self.bus.publish(ApiErrorReceived(error))
        code = error.code
        if code == CLIENT_ID_IN_USE and self._clash is not None:
            self._clash.set()
        elif code == 1100:
            self._ib_down = True
            self.normalizer.mark_all_stale()
            self._set_connection(ConnectionState.DOWN, f"1100: {error.message}")
        elif code == 1101:
            self._ib_down = False
            self._farm_down = False
            self.resubscribe()
            self._set_connection(ConnectionState.UP, "1101: connectivity restored, data lost: resubscribed")
            self._start_rewarm()
        elif code == 1102:
            self._ib_down = False
            self._farm_down = False
            self.normalizer.set_farm_down(False)
            self._set_connection(ConnectionState.UP, "1102: connectivity restored, data maintained")
        elif code in FARM_DOWN_CODES:
            self._farm_down = True
            self.normalizer.set_farm_down(True)
            if not self._ib_down and self.connection_state is not ConnectionState.DOWN:
                self._set_connection(ConnectionState.DEGRADED, f"{code}: {error.message}")
        elif code in FARM_OK_CODES:
            if self._farm_down:
                self._farm_down = False
                self.normalizer.set_farm_down(False)
                if self.connection_state is ConnectionState.DEGRADED:
                    self._set_connection(ConnectionState.UP, f"{code}: {error.message}")

    # ------------------------------------------------------------------ state publication

    def _set_connection(self, state: ConnectionState, detail: str) -> None:
        changed = state is not self.connection_state
        if not changed and detail == self.connection_detail:
            return
        if changed:
            self._since = self.clock.now_utc()
        self.connection_state, self.connection_detail = state, detail
        log.info("connection %s: %s", state.value, detail)
        view = ConnectionView(
            state=state.value,
            detail=detail,
            host=self.host,
            port=self.port,
            mode=self._mode(),
            account=self.account,
            since_utc=self._since.isoformat(),
            reconnects=self.reconnects,
            server_version=int(self.ib.client.serverVersion() or 0),
        )
        self.hot_state.set("connection", view)
        self.bus.publish(ConnectionChanged(state, detail, self.clock.now_utc(), self.host, self.port))
        if self.state in (ComponentState.RUNNING, ComponentState.DEGRADED):
            if state is ConnectionState.UP:
                self.set_state(ComponentState.RUNNING, detail)
            else:
                self.set_state(ComponentState.DEGRADED, f"connection {state.value}: {detail}")

    def _mode(self) -> str:
        if self.settings.ib.mode == "sim":
            return "SIM"
        # IB paper accounts start with D (DU…, DF…); anything else is real money.
        return "PAPER" if self.account.startswith("D") else "LIVE"

    def _publish_metrics(self) -> None:
        metrics = dict(self.hot_state.get("metrics", {}) or {})
        metrics["normalizer"] = self.normalizer.stats.as_dict()
        metrics["historical"] = {
            "sent": self.pacer.sent,
            "violations": self.pacer.violations,
            "retries": self.pacer.retries,
        }
        metrics["order_adapter_sink_errors"] = self.orders.sink_errors
        self.hot_state.set("metrics", metrics)

    async def _watch_staleness(self) -> None:
        period = max(0.05, self.settings.market_data.stale_after_s / 4)
        since_metrics = 0.0
        while True:
            await asyncio.sleep(period)
            self.normalizer.check_stale()
            since_metrics += period
            if since_metrics >= 1.0:
                since_metrics = 0.0
                self._publish_metrics()

    # ------------------------------------------------------------------ historical warm-up

    def _historical_request(self, v: VerifiedInstrument, duration: str | None = None) -> HistoricalRequest:
        md = self.settings.market_data
        what = "MIDPOINT" if v.spec.sec_type == "CASH" else "TRADES"
        return HistoricalRequest(v.con_id, v.exchange, what, duration or md.warmup_duration, md.warmup_bar_size)

    async def fetch_bars(self, v: VerifiedInstrument, duration: str | None = None) -> list[Bar]:
        """Recent bars of one instrument through the pacer (retried after a 162 pacing refusal).

        `duration` (IB syntax, "600 S") overrides the configured warm-up duration.
        """
        req = self._historical_request(v, duration)

        async def fetch() -> list[Bar]:
            # A fresh Contract object per request: ib_async reports errors with the request's contract.
            contract = contract_for(v)
            errors: list[tuple[int, str]] = []

            def on_error(req_id: int, code: int, message: str, err_contract: Any) -> None:
                if err_contract is contract:
                    errors.append((code, message))

            self.ib.errorEvent += on_error
            try:
                raw = await self.ib.reqHistoricalDataAsync(
                    contract,
                    "",
                    req.duration,
                    req.bar_size,
                    req.what_to_show,
                    req.use_rth,
                    formatDate=2,
                    timeout=self.settings.ib.connect_timeout_s * 6,
                )
            finally:
                self.ib.errorEvent -= on_error
            for code, message in errors:
                # "HMDS query returned no data" is an answer, not a pacing problem.
                if code == 162 and "no data" not in message.lower():
                    raise PacingViolation(f"162: {message}")
            return [_bar(v.key, b) for b in raw]

        return await self.pacer.submit(req, fetch)

    async def _warm_up(self) -> None:
        try:
            results = await asyncio.gather(*(self.fetch_bars(v) for v in self.verified), return_exceptions=True)
            for v, result in zip(self.verified, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("bar warm-up for %s failed: %s", v.key, _reason(result))
                else:
                    stored = self.bars.merge(v.key, result)
                    log.info("bar warm-up for %s: %d bars", v.key, stored)
        finally:
            self.bars_ready.set()

    def _start_rewarm(self) -> None:
        """Re-warm the bars in the background (after a reconnect or a 1101), replacing a re-warm in flight."""
        if not self.settings.market_data.warmup_bars or self._stopping:
            return
        if self._rewarm_task is not None and not self._rewarm_task.done():
            self._rewarm_task.cancel()
        self._rewarm_task = self.spawn(self._rewarm(), "rewarm")

    async def _rewarm(self) -> None:
        """Fetch each instrument's bars since its newest stored bar, so the history has no hole.

        The span is measured on the server's clock (`reqCurrentTime`): the bars carry the server's times. It
        starts at the newest stored bar, which was still forming when it was fetched and is replaced. A
        failure is logged, never raised: the models keep the bars they have, and the next reconnect retries.
        """
        md = self.settings.market_data
        try:
            server_now = await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), self.settings.ib.connect_timeout_s)
        except (ConnectionError, OSError, TimeoutError) as exc:
            log.warning("bar re-warm after reconnect skipped: no server time: %s", _reason(exc))
            return
        plans = [
            (v, rewarm_duration(self.bars.last(v.key), server_now, md.warmup_duration, md.warmup_bar_size))
            for v in self.verified
        ]
        results = await asyncio.gather(*(self.fetch_bars(v, d) for v, d in plans), return_exceptions=True)
        for (v, duration), result in zip(plans, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                log.warning("bar re-warm for %s failed: %s", v.key, _reason(result))
            elif duration is None and not result:
                log.warning("bar re-warm for %s: the window came back empty; the stored bars are kept", v.key)
            elif duration is None:
                stored = self.bars.replace(v.key, result)
                log.info("bar re-warm for %s: a fresh window of %d bars", v.key, stored)
            else:
                stored = self.bars.merge(v.key, result)
                log.info(
                    "bar re-warm for %s: %d bars over the last %s, %d stored", v.key, len(result), duration, stored
                )
        self.rewarms += 1


def rewarm_duration(last: Bar | None, server_now: datetime, window: str, bar_size: str) -> str | None:
    """The duration ("N S") that covers from the newest stored bar `last` to `server_now`, or None when the
    configured warm-up `window` should be fetched instead and replace what is stored: nothing is stored, the
    gap is as long as the window or longer (or than IB's longest duration in seconds), or a size is not
    understood. The newest stored bar is covered too: it was still forming when it was fetched."""
    window_s = duration_seconds(window)
    bar_s = bar_seconds(bar_size)
    if last is None or window_s is None or bar_s is None:
        return None
    span_s = math.ceil((server_now - last.start_utc).total_seconds()) + bar_s
    if span_s >= window_s or span_s > MAX_SECONDS_DURATION:
        return None
    return f"{max(span_s, 2 * bar_s)} S"


def _bar(key: str, b: Any) -> Bar:
    start = b.date
    if isinstance(start, datetime):
        start_utc = start.astimezone(UTC) if start.tzinfo is not None else start.replace(tzinfo=UTC)
    else:  # daily bars come as dates
        start_utc = datetime(start.year, start.month, start.day, tzinfo=UTC)
    volume = b.volume
    return Bar(
        key=key,
        start_utc=start_utc,
        open=Decimal(repr(float(b.open))),
        high=Decimal(repr(float(b.high))),
        low=Decimal(repr(float(b.low))),
        close=Decimal(repr(float(b.close))),
        volume=int(volume) if volume == volume and volume > 0 else 0,
    )


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
