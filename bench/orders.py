"""Order manager latency: intent → placeOrder written to the socket, and fill event → position and P&L updated.

`intent_to_wire_*` (the issue's figure) is measured end to end against the simulated gateway: the real risk
engine, order manager, journal (fsync on, as in production), `IbOrderAdapter` and an `ib_async.IB` connected
over loopback TCP to `omega_tui.sim`. The headline figure runs the gateway as a child process
(`omega_tui.sim.process.SimGatewayProcess`, its market frozen for the run, its rate limit lifted, stopped at the
end), as production always has it (IB Gateway, or the engine's sim child): the gateway's parsing and answers
then run in another process, not on the benchmark's thread between brackets, where they evicted the caches the
next bracket needs; and the bracket's write now pays what production's does, waking another process (loopback
TCP processes the segment and wakes the reader inside the sender's `send`): on the 2-core VM, loaded, the write
was p50 ~125 us against ~25 us with the reader on the same loop (A/B of 2026-11-26 23:53, n=2000 each).
`--gateway inprocess` keeps the earlier setup (a virtual-clock gateway on the benchmark's own loop) to compare;
the JSON's `gateway` says which ran. Each intent
goes in as in the engine, through `RiskEngine.submit` (every pre-trade rule; the bench's risk limits only lift
the order rate and open-order caps a benchmark loop would hit). The clock starts when the risk engine calls
`OrderManager.submit(intent)` (as in every earlier run of this benchmark) and stops when the bytes of the
bracket's transmitting leg (the stop-loss, whose transmit=True makes IB release the chain) are on the wire:
the kernel's software transmit stamp of the segment (SO_TIMESTAMPING, taken in the loopback device's xmit as a
NIC driver takes it; `_TxStamps`), matched to the bracket's write by its byte offset. The three placeOrder
messages leave in ONE write, the transmitting leg's included (`OrderPort.place_group` / the `GroupSender`, or the
cork), so the stamped segment is that write's. On a kernel without transmit stamps the clock stops when the
write returns (`kernel_tx_stamps` says which). `intent_to_write_return_*` is that other stop, always measured:
on loopback the write call also runs the gateway's TCP receive and wakes the gateway, which on 2 cores often
takes the core before `send` returns (p99 of the call ~2 ms while the bytes reached the device ~50 us after it
began), so it measures the machine's scheduling, not when the order was on the wire.
`risk_share_*` is the time from `RiskEngine.submit` to that call (the pre-trade checks), and
`intent_via_risk_to_wire_*` the whole production path, risk engine included. Every bracket is checked to have
written exactly three placeOrder messages (the connection's message count) in one write, the last one the
stop-loss. Each bracket rests below the market and is cancelled after its acknowledgements arrived (outside the
timed window), so the book stays small; at the end the run checks that nothing filled and nothing is left
working.

Messages are encoded as in production: the broker session's `core/broker/wire_send.install` puts Omega's
byte-identical encoders on its ib_async client (a cheaper `Client.send`, `wire_send.send_msg` for
`Client.sendMsg`: ib_async's throttle bookkeeping with its usual case written out, and `core/broker/order_wire.py`'s
placeOrder templates built from ib_async's own `Client.placeOrder`), and so does this benchmark;
`--stock-send` keeps ib_async's own encoders and `sendMsg`, to compare (the adapter's short ways need Omega's
`sendMsg`: with `--stock-send` every bracket goes through the cork). Nothing else is wrapped: a wrapper on the
client's `placeOrder` or `sendMsg` would turn the short ways off.

The path measured is production's: the first bracket of a shape goes the usual way (legs built, each leg's
route, the cork), which teaches the order manager the shape (`OrderManager._learn_bracket`) and the adapter its
`GroupSender` (one generated encoder of the three messages, `order_wire.compile_group`); every later bracket
of the shape is encoded from the intent's values and ids and written before its legs exist
(`OrderManager._send_bracket`; the cyclic garbage collector waits until it is written). The bench's prices
repeat, so the encoded-price cache (keyed by the Decimal's str()) always hits here, as it does in production
once a price level has been sent.

Breakdowns of the same run:
- `omega_share_*`: intent to the start of the bracket's write: the order manager's checks, the token bucket,
  the ids, the group sender's checks, its encoder (the framed bytes) and ib_async's throttle bookkeeping
  (`wire_send.send_framed`); the sender checks its contract copy after the write (`GroupSender.sent`);
- `kernel_send_*`: the write's start to the transmit stamp (asyncio's transport, the syscall, TCP/IP down to
  the device); `socket_write_*`: the write call until it returned.
The journal's "submit" record, the order book, the bus events and the views are done right after the bracket's
write, in the same step of the loop (`OrderManager._bracket_booked` / `_after_send`), so they are not in the
window; the risk engine's decision record is serialised with them (`Journal.record_soon`).

`gc_collections_in_window` counts the garbage collections that started between an intent and its bracket's
write (`gc.callbacks`): the order manager pauses the collector there, so it must be 0. (Without the pause it
was 0 in 2,000 brackets too: the ~4% of submits that had a collection had it in the bookkeeping after the
write. The pause makes it so by construction.)

`journal_held_events` counts the broker events the order manager held because the record of the order's
submission was not yet fsynced (the simulated gateway answers within a millisecond, often before the journal's
group commit; against IB it should be 0); `journal_group_syncs` / `journal_inline_waits` are the journal's
fsyncs by the writer thread / inline on the loop (should be 0).

`intent_to_wire_cpu_*` is the window to the write's return in the benchmark thread's CPU time
(`time.thread_time_ns`): what the path costs, the kernel's send and loopback receive included, without the time
the thread waited for a core, so it stays meaningful on a loaded machine.

`inprocess_*` repeats the earlier measurement: the transmitting leg handed to an in-process fake
`OrderPort.place_order` (no ib_async, no socket), with and without journal fsync.

"Fill → P&L" (`fill_to_pnl_*`) is `on_execution` (dedupe, position and average cost, state machine,
FillReceived on the bus, protection fitted to the new position; the journal "fill" record is numbered and
serialised after the step, `Journal.record_soon`, and the views are published after it too) plus `day_pnl()`
over every position (a flat one costs no quote lookup), i.e. what the risk engine reads next; the bench's fills
alternate on a buy and a sell order of one instrument, its position going 0 -> 10 -> 0, with no armed protection
(the book's bracket children wait for their parents); measured with 48 working orders in the book (the
risk limit is 50), journal fsync on (`_nofsync`: off), with nothing subscribed to the bus.
`fill_to_risk_checked_*` is the same window with the risk engine subscribed to FillReceived, as in the engine:
its daily-loss and position-limit checks and the write of the persisted risk day.

As the headless engine and the UI do once started, the garbage collector's long-lived objects are frozen
(`gc.freeze()`) after setup. ib_async's own request throttle (45 messages/s) and the simulated gateway's
rate limit are lifted: pacing is the order manager's submission queue's job (tested in tests/orders), and a
throttled message would measure the queue's wait, not the path.

`--part wire` / `--part fill` run only the measurement against the gateway / only the in-process ones.

`--market N` runs the wire measurement in a moving market: the simulated gateway's market steps every 50 ms
and N more instruments (the gateway's synthetic stocks) stream quotes to the benchmark's ib_async client, whose
decoder handles them on the same loop between the brackets, as a Gateway's market data is decoded between an
engine's decisions. (The engine's normalizer and hot state do not see them: the figure shows the decoder's
share of the interference, not the whole engine's.) The JSON adds `market_instruments` and
`market_messages_per_s`, the gateway's messages received per second during the run. The brackets rest 1.9% below
the bid there (the AAPL market moves too), inside the risk engine's default price collar.

Usage: python -m bench orders [--n N] [--spacing-ms MS] [--stock-send] [--gateway process|inprocess]
                              [--part all|wire|fill] [--market N]
       PYTHONHASHSEED=0 valgrind --tool=callgrind python -m bench orders --callgrind MODE --n N  (see
       `_callgrind_path`: instructions per bracket, and `_callgrind_fill` (MODE fill, fill-window): per fill;
       load-independent)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import struct
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ib_async import IB, Contract, Stock

from omega_tui.config import ExecutionSettings, RiskSettings, Settings, StateSettings
from omega_tui.core.broker.orders_adapter import IbOrderAdapter
from omega_tui.core.broker.wire_send import install as install_wire_send
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.journal import Journal
from omega_tui.core.orders import OrderManager
from omega_tui.core.risk import RiskEngine
from omega_tui.core.types import (
    BrokerOrder,
    ExecutionReport,
    FillReceived,
    InstrumentSpec,
    IntentSource,
    OrderIntent,
    Quote,
    Side,
    VerifiedInstrument,
)
from omega_tui.sim import SimGateway
from omega_tui.sim.engine.contracts import EXTRA_STOCK_CON_ID_BASE
from omega_tui.sim.process import SimGatewayProcess


class _TimedBroker:
    """An OrderPort that only timestamps each place_order (perf_counter_ns) as the "written to wire" moment."""

    def __init__(self) -> None:
        self._next = 1
        self.place_ns: list[int] = []

    def next_order_ids(self, count: int) -> list[int]:
        first = self._next
        self._next += count
        return list(range(first, first + count))

    def place_order(self, order: BrokerOrder) -> None:
        self.place_ns.append(time.perf_counter_ns())

    def place_group(self, orders: Sequence[BrokerOrder]) -> bool:
        now = time.perf_counter_ns()  # (the group leaves in one write: every leg at once)
        self.place_ns += [now] * len(orders)
        return True

    def group_sender(self, orders: Sequence[BrokerOrder], variable: Sequence[Sequence[str]]) -> _TimedBroker:
        return self  # (its `send` stamps the group, `sent` does nothing)

    def send(self, ids: Sequence[int], values: Sequence[object]) -> bool:
        now = time.perf_counter_ns()
        self.place_ns += [now] * len(ids)
        return True

    def sent(self, orders: Sequence[BrokerOrder]) -> bool:
        return True

    def cork(self) -> None:
        pass

    def uncork(self) -> None:
        pass

    def cancel_order(self, order_id: int) -> None:
        pass

    def global_cancel(self) -> None:
        pass

    @property
    def connected(self) -> bool:
        return True


# Linux kernel software transmit timestamps (Documentation/networking/timestamping.rst): SO_TIMESTAMPING with
# SOF_TIMESTAMPING_TX_SOFTWARE | SOFTWARE (report it) | OPT_ID (tag it with the byte offset: for TCP the last
# byte of the send) | OPT_TSONLY (no copy of the packet). The stamp is taken when the segment is handed to the
# device (`skb_tx_timestamp` in the loopback driver's xmit, as a NIC driver's): the moment the bytes are on the
# wire, CLOCK_REALTIME. (Python's socket module has no names for these.)
_SO_TIMESTAMPING = 37
_SCM_TIMESTAMPING = 37
_TS_FLAGS = (1 << 1) | (1 << 4) | (1 << 7) | (1 << 11)
_SOL_IP, _IP_RECVERR = 0, 11
_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)


class _TxStamps:
    """The kernel's transmit timestamps of one connected TCP socket: `on_wire_ns(last_byte)` is when the
    segment carrying stream byte `last_byte` (counted from `enable`, 0-based) went to the device, or None if
    the kernel has not reported it (yet). The reports wait in the socket's error queue, which must be drained
    after every write (`drain`): entries there count against the socket's receive buffer (the gateway's
    answers would be dropped once it is full) and make epoll report EPOLLERR (the event loop would spin)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = socket.socket(fileno=os.dup(sock.fileno()))  # (the transport's socket, not ours to read)
        self._stamps: dict[int, int] = {}

    def enable(self) -> bool:
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING, _TS_FLAGS)
        except OSError:
            return False
        return True

    def drain(self) -> None:
        while True:
            try:
                _, ancillary, _, _ = self._sock.recvmsg(0, 1024, _ERRQUEUE | socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            stamp = key = None
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPING:
                    sec, nsec = struct.unpack_from("qq", data)  # ts[0], the software stamp
                    stamp = sec * 1_000_000_000 + nsec
                elif level == _SOL_IP and kind == _IP_RECVERR:
                    # struct sock_extended_err: errno, origin, type, code, pad, info, data (the OPT_ID)
                    *_, key = struct.unpack_from("=IBBBBII", data)
            if stamp is not None and key is not None:
                self._stamps[key] = stamp

    def on_wire_ns(self, last_byte: int) -> int | None:
        """The stamp of the segment ending at `last_byte`; the reports of earlier segments are dropped."""
        self.drain()
        stamp = self._stamps.get(last_byte)
        self._stamps = {k: v for k, v in self._stamps.items() if k > last_byte}
        return stamp

    def close(self) -> None:
        self._sock.close()


# Intents and fills are spaced by 1 ms, with the loop idle in between as the engine's is: at most 45 orders a
# second leave the submission queue, so brackets never come back to back, and a loop that never idles would
# leave the journal's group-commit thread no moment to run but inside the next timed window.
SPACING_S = 0.001


# The production risk limits but those a benchmark loop runs into (1 intent per business second, each bracket
# cancelled a millisecond after its acknowledgements): every rule is still evaluated on every intent.
_BENCH_RISK = RiskSettings(max_orders_per_second=1000.0, max_orders_per_minute=10**6, max_open_orders=10**6)
MARKET_TICK_S = 0.05  # `--market`: the simulated gateway's market step


async def _stream_market(ib: IB, count: int) -> list[Any]:
    """`count` of the simulated gateway's synthetic stocks subscribed (`reqMktData`), once each has quoted
    (bounded wait); their tickers."""
    if not count:
        return []
    wanted = [Contract(conId=EXTRA_STOCK_CON_ID_BASE + k, exchange="SMART") for k in range(1, count + 1)]
    contracts = await ib.qualifyContractsAsync(*wanted)
    if len(contracts) != count:
        raise RuntimeError(f"--market {count}: the simulated gateway qualified {len(contracts)} of its stocks")
    tickers = [ib.reqMktData(c, "", False, False) for c in contracts]
    for _ in range(200):
        if all(t.bid == t.bid and t.bid > 0 for t in tickers):  # (NaN until the first quote)
            return tickers
        await asyncio.sleep(0.05)
    raise RuntimeError(f"--market {count}: not every stock quoted within 10 s")


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _fill_book(manager: OrderManager, clock: FakeClock) -> tuple[int, int]:
    """The fill measurements' book: 16 working brackets (48 orders), then a large buy and a large sell to fill
    in pieces; returns (buy order id, sell order id)."""
    for i in range(16):
        clock.advance(1.0)
        manager.submit(
            OrderIntent(
                f"w{i}", "AAPL", Side.BUY, 100, Decimal("180.00"), Decimal("180.30"), Decimal("179.80"),
                IntentSource.STRATEGY, 0,
            )
        )  # fmt: skip
    buy = manager.submit(
        OrderIntent("fb", "AAPL", Side.BUY, 10**7, Decimal("190.00"), None, None, IntentSource.STRATEGY, 0)
    )[0]
    clock.advance(1.0)
    sell = manager.submit(
        OrderIntent("fs", "AAPL", Side.SELL, 10**7, Decimal("190.10"), None, None, IntentSource.STRATEGY, 0)
    )[0]
    return buy, sell


async def _measure(n: int, fsync: bool) -> tuple[list[float], list[float], list[float], list[float]]:
    """(intent → first leg, intent → transmitting leg, fill → P&L, fill → P&L and the risk engine's checks)
    samples in microseconds.

    On a running loop, as in the engine: the journal's group commit and the hot-state publication are
    posted to the loop and run between events (each iteration idles `SPACING_S`), not inside the timed window."""
    with tempfile.TemporaryDirectory(prefix="omega-bench-orders-") as tmp:
        state = Path(tmp)
        clock = FakeClock()  # business time; moved 1 s per intent so the 45/s throttle never queues
        settings = Settings(
            execution=ExecutionSettings(orders_per_second=45, max_child_qty=10**9), state=StateSettings(dir=state)
        )
        hot = HotState(state)
        journal = Journal(state, clock, fsync=fsync)
        broker = _TimedBroker()
        manager = OrderManager(settings, clock, EventBus(), hot, journal, broker)
        inst = VerifiedInstrument(
            InstrumentSpec("AAPL", "AAPL"),
            265598,
            Decimal("0.01"),
            1,
            "SMART",
            "NASDAQ",
            "USD",
            "Apple",
            "",
            "",
            (),
            True,
        )
        manager.set_instruments({"AAPL": inst})
        gc.collect()
        gc.freeze()

        # ---- intent → placeOrder (transmitting leg)
        to_wire: list[float] = []
        to_first_leg: list[float] = []
        for i in range(n + 200):
            intent = OrderIntent(
                intent_id=f"b{i}",
                key="AAPL",
                side=Side.BUY,
                quantity=100,
                limit_price=Decimal("190.05"),
                take_profit=Decimal("190.35"),
                stop_loss=Decimal("189.85"),
                source=IntentSource.STRATEGY,
                created_ns=0,
            )
            clock.advance(1.0)
            n0 = len(broker.place_ns)
            t0 = time.perf_counter_ns()
            manager.submit(intent)
            if i >= 200:  # warm-up excluded
                to_first_leg.append((broker.place_ns[n0] - t0) / 1000)
                to_wire.append((broker.place_ns[-1] - t0) / 1000)
            await asyncio.sleep(SPACING_S)

        # ---- fill → position and P&L, in a realistic book: a fresh manager holding as many working orders as
        # the risk engine allows (16 brackets = 48 orders, max_open_orders is 50), not the 3,000 brackets the
        # first phase left working, which no engine would ever carry.
        journal.close()
        hot.close()
        hot = HotState(state / "fills")
        journal = Journal(state / "fills", clock, fsync=fsync)
        bus = EventBus()
        manager = OrderManager(settings, clock, bus, hot, journal, broker)
        manager.set_instruments({"AAPL": inst})
        risk = RiskEngine(settings, clock, bus, hot, journal, manager)  # subscribed for the last loop only
        risk.set_instruments({"AAPL": inst})
        buy, sell = _fill_book(manager, clock)
        when = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
        journal.wait_durable(journal.seq)  # the book's submissions are durable: no fill is held for them
        gc.collect()
        gc.freeze()
        fill_us: list[float] = []
        risk_fill_us: list[float] = []
        cum = {buy: 0, sell: 0}
        for i in range(2 * (n + 200)):
            if i == n + 200:  # the second half: as in the engine, the risk engine hears of every fill
                bus.subscribe(FillReceived, risk.on_fill)
            oid, side = (buy, Side.BUY) if i % 2 == 0 else (sell, Side.SELL)
            price = Decimal("190.00") + Decimal(i % 7) / 100
            cum[oid] += 10
            report = ExecutionReport(
                f"x{i}", oid, 0, "AAPL", 265598, side, 10, price, cum[oid], price, when, clock.monotonic_ns()
            )
            t0 = time.perf_counter_ns()
            manager.on_execution(report)
            manager.day_pnl()
            t1 = time.perf_counter_ns()
            if 200 <= i < n + 200:
                fill_us.append((t1 - t0) / 1000)
            elif i >= n + 400:
                risk_fill_us.append((t1 - t0) / 1000)
            await asyncio.sleep(SPACING_S)
        gc.unfreeze()
        journal.close()
        hot.close()
    return to_first_leg, to_wire, fill_us, risk_fill_us


async def _measure_wire(
    n: int, stock_send: bool = False, gateway: str = "process", market: int = 0
) -> tuple[dict[str, list[float]], dict[str, int | bool | float]]:
    """The samples in us, by name: `to_wire` intent → the kernel's transmit stamp of the bracket's one write
    (its transmitting leg's bytes on the wire; the write's return where the kernel gives no stamps),
    `to_return` intent → that write returned, `send` the write's start → the stamp, `leg` ib_async
    Client.sendMsg per leg, `omega` Omega's share, `cpu` the window (to the write's return) in this thread's
    CPU time, `risk` the risk engine's share, `socket` the write call itself; and the counters: the journal's
    (acknowledgements held for the group commit, group commits, inline fsyncs), whether the kernel's stamps
    were used (`kernel_stamps`) and, with `market` instruments streaming (`--market`), the messages received per
    second during the run (`market_messages_per_s`).

    `gateway`: "process" (the headline) runs the simulated gateway as a child process, as production always
    has it (IB Gateway, or the engine's sim child); "inprocess" runs it on this loop (a virtual clock), as the
    benchmark did before, where its parsing and answers run on this thread between brackets."""
    gw: SimGateway | None = None
    child: SimGatewayProcess | None = None
    if market and gateway != "process":
        raise ValueError("--market needs the gateway as a child process")
    if gateway == "inprocess":
        gw = SimGateway(seed=7, clock="virtual", rate_limit=10**9)
        port = await gw.start_async()
    else:
        # Without `market` the market is frozen (no step within the run), as the in-process virtual clock's.
        child = SimGatewayProcess(
            seed=7,
            tick_interval=MARKET_TICK_S if market else 3600.0,
            extra_stocks=market,
            max_lines=market + 100,  # (market data lines: the gateway's default allows 100)
            rate_limit=10**9,
            log_level="WARNING",
        )
        port = child.start()  # (on the main thread: the child's parent-death signal follows this thread)
    ib = IB()
    try:
        await ib.connectAsync("127.0.0.1", port, clientId=11, timeout=10)
        ib.client.MaxRequests = 0  # see the module docstring: pacing is the submission queue's job
        if not stock_send:
            install_wire_send(ib.client)  # as the broker session does: Client.send and the placeOrder templates
        (contract,) = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
        streaming = await _stream_market(ib, market)
        with tempfile.TemporaryDirectory(prefix="omega-bench-wire-") as tmp:
            state = Path(tmp)
            clock = FakeClock()  # business time for the manager's throttle: 1 s per intent, nothing queues
            settings = Settings(
                execution=ExecutionSettings(orders_per_second=45, max_child_qty=10**9),
                state=StateSettings(dir=state),
                risk=_BENCH_RISK,
            )
            hot = HotState(state)
            journal = Journal(state, clock)  # fsync on, as in production
            adapter = IbOrderAdapter(ib, clock)
            adapter.register_contract(contract.conId, "AAPL", contract)
            bus = EventBus()
            manager = OrderManager(settings, clock, bus, hot, journal, adapter)
            adapter.set_order_events(manager)
            inst = VerifiedInstrument(
                InstrumentSpec("AAPL", "AAPL"), contract.conId, Decimal("0.01"), 1, "SMART", "NASDAQ", "USD",
                "Apple", "", "", (), True,
            )  # fmt: skip
            manager.set_instruments({"AAPL": inst})
            risk = RiskEngine(settings, clock, bus, hot, journal, manager)
            risk.set_instruments({"AAPL": inst})
            [ticker] = await ib.reqTickersAsync(contract)
            bid = Decimal(str(ticker.bid if ticker.bid == ticker.bid and ticker.bid > 0 else 200.0))
            # Rests: never fills (in a moving market 1.9% below: inside the default 2% collar, out of reach).
            below = bid * Decimal("0.019") if market else Decimal("1.00")
            limit = (bid - below).quantize(Decimal("0.01"))
            # When the risk engine handed the intent to OrderManager.submit (wall, thread CPU), and what it placed.
            # (Three lists of ints, not a list of tuples: appending an int allocates no object the cyclic
            # collector tracks, so the timing itself cannot start a collection before the order manager's pause.)
            entered_wall: list[int] = []
            entered_cpu: list[int] = []
            entered_real: list[int] = []
            placed: list[list[int]] = []
            manager_submit = manager.submit

            def timed_submit(intent: OrderIntent) -> list[int]:
                entered_wall.append(time.perf_counter_ns())
                entered_cpu.append(time.thread_time_ns())
                entered_real.append(time.time_ns())
                ids = manager_submit(intent)
                placed.append(ids)
                return ids

            manager.submit = timed_submit  # type: ignore[method-assign]

            writes: list[tuple[int, bytes]] = []
            write_ns: list[int] = []
            cpu_at_write: list[int] = []
            write_last_byte: list[int] = []
            transport = ib.client.conn.transport
            assert transport is not None
            tx_stamps = _TxStamps(transport.get_extra_info("socket"))
            streamed = [0]  # bytes handed to the socket since the kernel's stamps were turned on
            stamps = tx_stamps if tx_stamps.enable() else None
            if stamps is None:
                tx_stamps.close()
            raw_write = transport.write

            def timed_write(data: bytes) -> None:
                t = time.perf_counter_ns()
                raw_write(data)
                t_end = time.perf_counter_ns()
                writes.append((t_end, bytes(data)))
                write_ns.append(t_end - t)
                cpu_at_write.append(time.thread_time_ns())
                streamed[0] += len(data)
                write_last_byte.append(streamed[0] - 1)
                if stamps is not None:
                    stamps.drain()  # (after the window: the write was its end)

            transport.write = timed_write
            # (Nothing else is wrapped: a wrapper on the client's placeOrder or sendMsg would turn off the
            # adapter's short ways, `IbOrderAdapter.place_group` and the template encoders.)
            conn = ib.client.conn
            gc.collect()
            gc.freeze()
            to_wire: list[float] = []
            to_return: list[float] = []
            send_us: list[float] = []
            cpu_us: list[float] = []
            omega_us: list[float] = []
            socket_us: list[float] = []
            risk_us: list[float] = []
            # Garbage collections that started between the intent and the bracket's write (the order manager
            # pauses the collector there: should be 0).
            gc_starts: list[int] = []
            gc_in_window = 0

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if phase == "start":
                    gc_starts.append(time.perf_counter_ns())

            gc.callbacks.append(on_gc)
            received_at_start, started = ib.client._numMsgRecv, time.monotonic()
            for i in range(n + 200):
                intent = OrderIntent(
                    intent_id=f"w{i}", key="AAPL", side=Side.BUY, quantity=100, limit_price=limit,
                    take_profit=limit + Decimal("0.30"), stop_loss=limit - Decimal("0.20"),
                    source=IntentSource.STRATEGY, created_ns=0,
                )  # fmt: skip
                clock.advance(1.0)
                hot.put_quote(Quote("AAPL", i, clock.monotonic_ns(), clock.now_utc(), bid, bid + Decimal("0.02")))
                writes.clear()
                write_ns.clear()
                cpu_at_write.clear()
                write_last_byte.clear()
                messages_before = conn.numMsgSent
                entered_wall.clear()
                entered_cpu.clear()
                entered_real.clear()
                placed.clear()
                gc_starts.clear()
                t0 = time.perf_counter_ns()
                decision = risk.submit(intent)
                if not decision.approved:
                    raise RuntimeError(f"bracket {i}: the risk engine denied it: {decision.reason}")
                # One write (the adapter's cork) carrying the bracket's three placeOrder messages, the stop-loss
                # last; ib_async's Client.sendMsg (its throttle) saw three messages.
                messages = _messages(b"".join(data for _, data in writes))
                if (
                    len(writes) != 1
                    or conn.numMsgSent - messages_before != 3
                    or [m.split(b"\0", 1)[0] for m in messages] != [b"3"] * 3
                    or b":stop_loss" not in messages[-1]
                ):
                    raise RuntimeError(f"bracket {i}: expected one write of 3 placeOrder messages, the stop-loss last")
                (ids,) = placed
                t_om, c_om, real_om = entered_wall[0], entered_cpu[0], entered_real[0]
                bracket_end = write_last_byte[-1]
                for _ in range(200):  # let the acknowledgements arrive (bounded), then clear the book
                    await asyncio.sleep(0.0005)
                    if all(o is not None and o.ack_ns for o in map(manager.order, ids)):
                        break
                if i >= 200:  # warm-up excluded
                    returned_ns = writes[-1][0] - t_om
                    to_return.append(returned_ns / 1000)
                    cpu_us.append((cpu_at_write[-1] - c_om) / 1000)
                    socket_us.append(write_ns[-1] / 1000)
                    omega_us.append((returned_ns - write_ns[-1]) / 1000)
                    risk_us.append((t_om - t0) / 1000)
                    write_start = writes[-1][0] - write_ns[-1]
                    gc_in_window += sum(1 for t in gc_starts if t_om <= t < write_start)
                    if stamps is None:
                        to_wire.append(returned_ns / 1000)
                    else:  # the gateway acknowledged the bracket: its segment's stamp has been reported
                        on_wire = stamps.on_wire_ns(bracket_end)
                        if on_wire is None:
                            raise RuntimeError(f"bracket {i}: the kernel reported no transmit stamp for its write")
                        to_wire.append((on_wire - real_om) / 1000)
                        send_us.append((on_wire - real_om - (returned_ns - write_ns[-1])) / 1000)
                manager.cancel(ids[0], "bench")
                await asyncio.sleep(0.001)
            received = ib.client._numMsgRecv - received_at_start
            elapsed = time.monotonic() - started
            gc.callbacks.remove(on_gc)
            gc.unfreeze()
            for _ in range(400):  # the last cancellations' answers (bounded)
                if not manager.open_order_count():
                    break
                await asyncio.sleep(0.005)
            # Every bracket rested (nothing filled) and was cancelled, its children with it.
            filled = sum(1 for o in manager._orders.values() if o.fill_qty)
            if filled or manager.open_order_count():
                raise RuntimeError(f"{filled} orders filled, {manager.open_order_count()} still working at the end")
            counters: dict[str, int | bool | float] = {
                "held_events": manager.held_events,
                "group_syncs": journal.group_syncs,
                "inline_waits": journal.inline_waits,
                "gc_in_window": gc_in_window,
            }
            counters["kernel_stamps"] = stamps is not None
            if market:
                counters["market_instruments"] = len(streaming)
                counters["market_messages_per_s"] = round(received / elapsed)
            if stamps is not None:
                stamps.close()
            journal.close()
            hot.close()
    finally:
        ib.disconnect()
        if gw is not None:
            await gw.stop_async()
        if child is not None:
            child.stop()
    series = {
        "to_wire": to_wire,
        "to_return": to_return,
        "send": send_us,
        "omega": omega_us,
        "cpu": cpu_us,
        "risk": risk_us,
        "socket": socket_us,
    }
    return series, counters


def _messages(stream: bytes) -> list[bytes]:
    """The messages of a stretch of ib_async's outgoing stream (each a 4-byte big-endian length, then it)."""
    out: list[bytes] = []
    at = 0
    while at < len(stream):
        size = int.from_bytes(stream[at : at + 4], "big")
        out.append(stream[at + 4 : at + 4 + size])
        at += 4 + size
    return out


class _SinkTransport:
    """A transport that drops what it is given: callgrind counts the path's instructions, not the socket's."""

    def write(self, data: bytes) -> None:
        pass

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        pass


async def _callgrind_path(mode: str, n: int) -> None:
    """A load-independent instruction count of the submit path, for `valgrind --tool=callgrind`.

    `n` brackets after 20 of warm-up, each followed by one loop turn (ib_async's deferred bookkeeping, the
    journal's group-commit wake, the hot-state publication), through the real OrderManager, journal (fsync on)
    and IbOrderAdapter, to an `ib_async` client marked connected whose transport drops the bytes (no
    gateway: its work would be counted too). The book is trimmed back to the warm-up's orders after each
    bracket (the wire benchmark cancels each bracket; here no broker answers), so every bracket costs the
    same. Modes: `full-wire` / `full-stock` run `OrderManager.submit` with wire_send / ib_async's own
    `Client.send`; `window-wire` / `window-stock` the same with only the intent → bracket-written window counted
    (after the warm-up, `OrderManager._after_send` and the adapter's deferred ib_async bookkeeping, which follow
    the write, are turned off); `place-wire` / `place-stock` only call `Client.placeOrder` for the same three
    legs.
    Instructions per bracket = (Ir at n=620 - Ir at n=20) / 600, startup cancels out:

        PYTHONHASHSEED=0 valgrind --tool=callgrind python -m bench orders --callgrind MODE --n N
    """
    from ib_async.client import Client

    from omega_tui.core.types import BrokerOrder, OrderType

    ib = IB()
    client = ib.client
    client.connState = Client.CONNECTED
    client._apiReady = True
    client._serverVersion = 178
    client._hasReqId = True
    client._reqIdSeq = 1
    client.MaxRequests = 0
    client.conn.transport = _SinkTransport()
    if mode.endswith("-wire"):
        install_wire_send(client)
    contract = Stock("AAPL", "SMART", "USD", conId=265598, primaryExchange="NASDAQ", localSymbol="AAPL")
    with tempfile.TemporaryDirectory(prefix="omega-bench-cg-") as tmp:
        state = Path(tmp)
        clock = FakeClock()
        settings = Settings(
            execution=ExecutionSettings(orders_per_second=45, max_child_qty=10**9), state=StateSettings(dir=state)
        )
        hot = HotState(state)
        journal = Journal(state, clock)
        adapter = IbOrderAdapter(ib, clock)
        adapter.register_contract(265598, "AAPL", contract)
        manager = OrderManager(settings, clock, EventBus(), hot, journal, adapter)
        adapter.set_order_events(manager)
        inst = VerifiedInstrument(
            InstrumentSpec("AAPL", "AAPL"), 265598, Decimal("0.01"), 1, "SMART", "NASDAQ", "USD", "Apple", "", "",
            (), True,
        )  # fmt: skip
        manager.set_instruments({"AAPL": inst})
        limit = Decimal("189.00")
        legs = [
            IbOrderAdapter.build_order(
                BrokerOrder(1, "AAPL", 265598, Side.BUY, 100, OrderType.LMT, limit, order_ref="c:entry",
                            algo_strategy="Adaptive", algo_params=(("adaptivePriority", "Normal"),), transmit=False)
            ),
            IbOrderAdapter.build_order(
                BrokerOrder(2, "AAPL", 265598, Side.SELL, 100, OrderType.LMT, limit + Decimal("0.30"), parent_id=1,
                            oca_group="c:oca", oca_type=2, order_ref="c:take_profit", transmit=False)
            ),
            IbOrderAdapter.build_order(
                BrokerOrder(3, "AAPL", 265598, Side.SELL, 100, OrderType.STP, None, limit - Decimal("0.20"),
                            parent_id=1, oca_group="c:oca", oca_type=2, order_ref="c:stop_loss", transmit=True)
            ),
        ]  # fmt: skip
        book = manager._orders

        def trim() -> None:
            for oid in list(book)[60:]:
                book.working.pop(oid, None)
                book.held.pop(oid, None)
                dict.pop(book, oid)
                for protective in book.protective.values():
                    protective.pop(oid, None)

        for i in range(20 + n):
            if i == 20:
                trim()
                if mode.startswith("window"):
                    # Only the window: what follows the bracket's write (the order manager's bookkeeping, the
                    # adapter's deferred ib_async books) is turned off.
                    manager._after_send = lambda *_: None  # type: ignore[method-assign]
                    # (a learned bracket's: its legs built, booked and checked after the write)
                    manager._sent_bracket = lambda intent, shape, learned, ids, *_: ids  # type: ignore[method-assign]
                    adapter._book_unbooked = lambda: None  # type: ignore[method-assign]
                gc.collect()
                gc.freeze()
            if mode.startswith("window") and i >= 20:
                adapter._unbooked.clear()
                adapter._unbooked_ids.clear()
            if i < 20 or not mode.startswith("place"):
                clock.advance(1.0)
                manager.submit(
                    OrderIntent(f"c{i}", "AAPL", Side.BUY, 100, limit, limit + Decimal("0.30"),
                                limit - Decimal("0.20"), IntentSource.STRATEGY, 0)
                )  # fmt: skip
            else:
                for k, leg in enumerate(legs):
                    client.placeOrder(1000 + 3 * i + k, contract, leg)
            await asyncio.sleep(0)
            trim()
        journal.close()
        hot.close()
    client.conn.transport = None
    client.connState = Client.DISCONNECTED
    client._apiReady = False


async def _callgrind_fill(n: int, window: bool = False) -> None:
    """A load-independent instruction count of the fill path, for `valgrind --tool=callgrind`: the book of
    `_measure`'s fill phase (16 resting brackets, journal fsync on, nothing subscribed to the bus), then 20 + `n`
    fills alternating on a buy and a sell order (the position goes 0 -> 10 -> 0), each `on_execution` +
    `day_pnl()` followed by one loop turn, which runs what the step deferred (the journal's "fill" record, the
    views' publication). Instructions per fill = (Ir at n=620 - Ir at n=20) / 600 (the whole step: the window
    and its deferred work). `window` (mode fill-window): after the warm-up the deferred work is turned off (the
    journal's serialisation of the record and the views' publication; scheduling them is still counted), so the
    count is the `fill_to_pnl` window's:

        PYTHONHASHSEED=0 valgrind --tool=callgrind python -m bench orders --callgrind fill[-window] --n N
    """
    with tempfile.TemporaryDirectory(prefix="omega-bench-cgfill-") as tmp:
        state = Path(tmp)
        clock = FakeClock()
        settings = Settings(
            execution=ExecutionSettings(orders_per_second=45, max_child_qty=10**9), state=StateSettings(dir=state)
        )
        hot = HotState(state)
        journal = Journal(state, clock)
        manager = OrderManager(settings, clock, EventBus(), hot, journal, _TimedBroker())
        inst = VerifiedInstrument(
            InstrumentSpec("AAPL", "AAPL"), 265598, Decimal("0.01"), 1, "SMART", "NASDAQ", "USD", "Apple", "", "",
            (), True,
        )  # fmt: skip
        manager.set_instruments({"AAPL": inst})
        buy, sell = _fill_book(manager, clock)
        when = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
        journal.wait_durable(journal.seq)
        cum = {buy: 0, sell: 0}
        for i in range(20 + n):
            if i == 20:
                if window:
                    journal.drain = lambda: 0  # type: ignore[method-assign]
                    manager._publish_scheduled = lambda: setattr(manager, "_publish_soon", False)  # type: ignore[method-assign]
                gc.collect()
                gc.freeze()
            if window:
                journal._deferred.clear()  # (as if drained: the next record schedules its drain again)
            oid, side = (buy, Side.BUY) if i % 2 == 0 else (sell, Side.SELL)
            price = Decimal("190.00") + Decimal(i % 7) / 100
            cum[oid] += 10
            manager.on_execution(
                ExecutionReport(
                    f"x{i}", oid, 0, "AAPL", 265598, side, 10, price, cum[oid], price, when, clock.monotonic_ns()
                )
            )
            manager.day_pnl()
            await asyncio.sleep(0)
        gc.unfreeze()
        journal.close()
        hot.close()


def main(argv: list[str]) -> dict[str, object]:
    global SPACING_S  # a module default the option overrides for this run
    parser = argparse.ArgumentParser(prog="python -m bench orders")
    parser.add_argument("--n", type=int, default=3000, help="intents and fills to time (default 3000)")
    parser.add_argument(
        "--spacing-ms", type=float, default=SPACING_S * 1000, help="idle time between in-process intents/fills"
    )
    parser.add_argument(
        "--stock-send",
        action="store_true",
        help="encode with ib_async's own Client.send and Client.placeOrder instead of Omega's (the broker "
        "session's wire_send + order_wire), to compare",
    )
    parser.add_argument(
        "--gateway",
        choices=("process", "inprocess"),
        default="process",
        help="the simulated gateway of the wire measurement: a child process, as in production (default), or "
        "on the benchmark's own loop (the earlier setup), to compare",
    )
    parser.add_argument(
        "--part",
        choices=("all", "wire", "fill"),
        default="all",
        help="wire: only the measurement against the gateway; fill: only the in-process ones (intent -> "
        "OrderPort, fill -> P&L); all (default): both, the JSON carrying every figure",
    )
    parser.add_argument(
        "--market",
        type=int,
        default=0,
        metavar="N",
        help="the wire measurement in a moving market: N more instruments streaming quotes to the benchmark's "
        "ib_async client (see the module docstring); default 0, a frozen market",
    )
    parser.add_argument(
        "--callgrind",
        choices=(
            "full-wire",
            "full-stock",
            "window-wire",
            "window-stock",
            "place-wire",
            "place-stock",
            "fill",
            "fill-window",
        ),
        help="only run the instruction-count driver for valgrind --tool=callgrind (see _callgrind_path; "
        "fill: _callgrind_fill)",
    )
    args = parser.parse_args(argv)
    if args.callgrind in ("fill", "fill-window"):
        asyncio.run(_callgrind_fill(args.n, window=args.callgrind == "fill-window"))
        return {"callgrind": args.callgrind, "n": args.n}
    if args.callgrind:
        asyncio.run(_callgrind_path(args.callgrind, args.n))
        return {"callgrind": args.callgrind, "n": args.n}
    SPACING_S = args.spacing_ms / 1000
    figures: dict[str, object] = {"n": args.n}
    if args.part != "fill":
        figures |= _wire_figures(args)
    if args.part != "wire":
        figures |= _inprocess_figures(args)
    return figures


def _wire_figures(args: argparse.Namespace) -> dict[str, object]:
    encoder = "ib_async Client.send + Client.placeOrder" if args.stock_send else "wire_send + order_wire templates"
    gateway = "a child process" if args.gateway == "process" else "on the benchmark's own loop"
    series, counters = asyncio.run(_measure_wire(args.n, args.stock_send, args.gateway, args.market))
    if counters["kernel_stamps"]:
        wire = (
            "the kernel's transmit stamp of the bracket's write (its transmitting leg's bytes handed to the "
            "device: ib_async over loopback TCP to the simulated gateway)"
        )
    else:
        wire = "the bracket's write (its transmitting leg's bytes) returned: this kernel gives no transmit stamps"
    print(f"intent -> wire, where wire = {wire}; n={args.n}; messages encoded by {encoder}; gateway {gateway}")
    figures: dict[str, object] = {"wire": wire, "encoder": encoder, "gateway": args.gateway}
    to_wire, to_return, socket_us = series["to_wire"], series["to_return"], series["socket"]
    omega_us, cpu_us, risk_us, send_us = series["omega"], series["cpu"], series["risk"], series["send"]
    via_risk = [a + b for a, b in zip(to_wire, risk_us, strict=True)]
    print(
        f"intent -> transmitting leg on the wire: p50 {_pct(to_wire, 0.5)} us p99 {_pct(to_wire, 0.99)} us "
        f"(target p99 < 200 us); of which Omega's share (to the write's start: checks, legs, encoding, ib_async's "
        f"throttle bookkeeping) p50 {_pct(omega_us, 0.5)} us p99 {_pct(omega_us, 0.99)} us"
        + (
            f", and the kernel's send from the write's start to the device p50 {_pct(send_us, 0.5)} us p99 "
            f"{_pct(send_us, 0.99)} us"
            if counters["kernel_stamps"]
            else ""
        )
    )
    print(
        f"intent -> the bracket's write returned: p50 {_pct(to_return, 0.5)} us p99 {_pct(to_return, 0.99)} us; "
        f"the write call p50 {_pct(socket_us, 0.5)} us p99 {_pct(socket_us, 0.99)} us (on loopback it also runs "
        f"the gateway's TCP receive, and the woken gateway may take the core before the call returns); the "
        f"window to the return in the thread's CPU time (immune to other processes' load) p50 "
        f"{_pct(cpu_us, 0.5)} us p99 {_pct(cpu_us, 0.99)} us"
    )
    print(
        f"before that, the risk engine (RiskEngine.submit until OrderManager.submit): p50 {_pct(risk_us, 0.5)} us "
        f"p99 {_pct(risk_us, 0.99)} us; intent through the risk engine -> transmitting leg on the wire: "
        f"p50 {_pct(via_risk, 0.5)} us p99 {_pct(via_risk, 0.99)} us"
    )
    figures |= {
        "intent_to_wire_p50_us": _pct(to_wire, 0.5),
        "intent_to_wire_p99_us": _pct(to_wire, 0.99),
        "intent_to_write_return_p50_us": _pct(to_return, 0.5),
        "intent_to_write_return_p99_us": _pct(to_return, 0.99),
        "socket_write_p50_us": _pct(socket_us, 0.5),
        "socket_write_p99_us": _pct(socket_us, 0.99),
        "omega_share_p50_us": _pct(omega_us, 0.5),
        "omega_share_p99_us": _pct(omega_us, 0.99),
        "intent_to_wire_cpu_p50_us": _pct(cpu_us, 0.5),
        "intent_to_wire_cpu_p99_us": _pct(cpu_us, 0.99),
        "risk_share_p50_us": _pct(risk_us, 0.5),
        "risk_share_p99_us": _pct(risk_us, 0.99),
        "intent_via_risk_to_wire_p50_us": _pct(via_risk, 0.5),
        "intent_via_risk_to_wire_p99_us": _pct(via_risk, 0.99),
        "kernel_tx_stamps": counters["kernel_stamps"],
        "journal_held_events": counters["held_events"],
        "journal_group_syncs": counters["group_syncs"],
        "journal_inline_waits": counters["inline_waits"],
        "gc_collections_in_window": counters["gc_in_window"],
    }
    if counters["kernel_stamps"]:
        figures |= {"kernel_send_p50_us": _pct(send_us, 0.5), "kernel_send_p99_us": _pct(send_us, 0.99)}
    if args.market:
        figures |= {
            "market_instruments": counters["market_instruments"],
            "market_messages_per_s": counters["market_messages_per_s"],
        }
        print(
            f"market: {counters['market_instruments']} more instruments streaming, "
            f"{counters['market_messages_per_s']} messages/s received from the gateway during the run"
        )
    print(
        f"journal: {counters['held_events']} broker events held until their submit record was fsynced "
        f"(the simulated gateway answers within the group commit), {counters['group_syncs']} group commits, "
        f"{counters['inline_waits']} inline fsyncs; garbage collections started between an intent and its "
        f"bracket's write: {counters['gc_in_window']}"
    )
    return figures


def _inprocess_figures(args: argparse.Namespace) -> dict[str, object]:
    figures: dict[str, object] = {}
    # Production journals fsync "submit" and "fill" records (group commit, see core/journal.py); the run
    # without fsync shows the order manager's own cost.
    for fsync, suffix in ((True, ""), (False, "_nofsync")):
        first, to_place, fill_us, risk_fill_us = asyncio.run(_measure(args.n, fsync))
        print(
            f"in-process, journal fsync {'on ' if fsync else 'off'}: intent -> first leg p50 {_pct(first, 0.5)} us; "
            f"-> transmitting leg handed to the OrderPort p50 {_pct(to_place, 0.5)} us p99 {_pct(to_place, 0.99)} us; "
            f"fill -> position + day P&L p50 {_pct(fill_us, 0.5)} us p99 {_pct(fill_us, 0.99)} us "
            f"mean {statistics.fmean(fill_us):.1f} us (target p99 < 100 us); the same with the risk engine "
            f"subscribed (its daily-loss and position checks, the persisted risk day) p50 "
            f"{_pct(risk_fill_us, 0.5)} us p99 {_pct(risk_fill_us, 0.99)} us"
        )
        figures |= {
            f"inprocess_intent_to_first_leg_p50_us{suffix}": _pct(first, 0.5),
            f"inprocess_intent_to_place_p50_us{suffix}": _pct(to_place, 0.5),
            f"inprocess_intent_to_place_p99_us{suffix}": _pct(to_place, 0.99),
            f"fill_to_pnl_p50_us{suffix}": _pct(fill_us, 0.5),
            f"fill_to_pnl_p99_us{suffix}": _pct(fill_us, 0.99),
            f"fill_to_risk_checked_p50_us{suffix}": _pct(risk_fill_us, 0.5),
            f"fill_to_risk_checked_p99_us{suffix}": _pct(risk_fill_us, 0.99),
        }
    return figures
