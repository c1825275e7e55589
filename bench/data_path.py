"""Benchmark of the market data path: ib_async's event → normalizer → bus → hot state (→ another process).

    python -m bench data_path [--seconds 300] [--rate 20000] [--source sim|synthetic]

1. Record: market data frames as the simulated gateway sends them to ib_async (or, with `--source
   synthetic`, a seeded stream in the same wire format), kept with their TCP read boundaries.
2. Floor: replay the recording into a fresh `ib_async.IB` through its own socket-data entry point
   (`Client._onSocketHasData`: framing, decode, ticker updates, `pendingTickersEvent`) with nothing
   subscribed. That is ib_async's own cost for those messages.
3. Throughput: replay it again, now with Omega's `TickerFeed` → `Normalizer` → `EventBus` → `HotState`
   (writer thread running) subscribed. `ticks_per_s` is tick messages per second through the whole path;
   `ratio_to_decode` is the time spent in Omega's handler over the floor's time for the same messages;
   added latency is, per quote, from the start of ib_async's `pendingTickersEvent` to the quote being
   readable with `HotState.quote`.
4. Sustained: replay at `--rate` tick messages per second for `--seconds`, with a second process polling a
   `HotStateReader` every millisecond; `diskcache_lag_p99_ms` is, per quote that process sees, the time from
   the engine receiving it to it being readable there (CLOCK_MONOTONIC is shared by processes). Resident
   memory is sampled; `rss_growth_pct` compares the end with the start (after a warm-up tenth).

Set-up as in production: each pipeline is built, then `omega_tui.headless.freeze_startup_heap` (the first step
of the engine's garbage-collector policy: collect and freeze) runs before any message is fed; the policy's
periodic collections need the engine's loop, so here Python's automatic ones stay on (a pessimistic set-up).
The latency sample buffers are written through before they are used: `np.zeros` maps untouched pages that only
become resident as samples land (~2,900 quotes/s × 8 bytes: ~6 MiB after the warm-up of a 5-minute run), and
that was the whole of the ~10% growth once measured; the process's Python heap (tracemalloc) stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ib_async import IB, Contract

from omega_tui.core.broker.market_data import TickerFeed
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import SystemClock
from omega_tui.core.hot_state import HotState
from omega_tui.core.normalizer import Normalizer
from omega_tui.core.types import Quote, QuoteUpdated
from omega_tui.headless import freeze_startup_heap

MD_MSG_IDS = {"1", "2", "45", "46", "58", "81"}  # tickPrice, tickSize, tickGeneric, tickString, mdType, params
TICK_MSG_IDS = {"1", "2", "45", "46"}
SYMBOLS = [
    ("AAPL", "STK", "SMART", "USD", ""),
    ("MSFT", "STK", "SMART", "USD", ""),
    ("SPY", "STK", "SMART", "USD", ""),
    ("NVDA", "STK", "SMART", "USD", ""),
    ("TSLA", "STK", "SMART", "USD", ""),
    ("JPM", "STK", "SMART", "USD", ""),
    ("ES", "FUT", "CME", "USD", "202612"),
    ("EUR", "CASH", "IDEALPRO", "USD", ""),
]
TICKS = {"STK": 0.01, "FUT": 0.25, "CASH": 0.00005}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def frames_of(chunk: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 4 <= len(chunk):
        n = struct.unpack(">I", chunk[i : i + 4])[0]
        out.append(chunk[i : i + 4 + n])
        i += 4 + n
    return out


def frame(*fields: object) -> bytes:
    payload = "".join(f"{f}\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


class Recording:
    """Market data frames grouped as ib_async received them, plus reqId → (key, contract, min tick)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.instruments: dict[int, tuple[str, Contract, float]] = {}
        self.ticks = 0
        self.messages = 0
        self.source = ""

    def add_chunk(self, chunk: bytes) -> None:
        kept = []
        for f in frames_of(chunk):
            fields = f[4:].split(b"\0")
            msg_id = fields[0].decode()
            if msg_id not in MD_MSG_IDS:
                continue
            req_index = 1 if msg_id == "81" else 2
            try:
                req_id = int(fields[req_index])
            except (ValueError, IndexError):
                continue
            if req_id in self.instruments:
                kept.append(f)
                self.messages += 1
                self.ticks += msg_id in TICK_MSG_IDS
        if kept:
            self.chunks.append(b"".join(kept))


async def record_from_sim(seconds: float, max_ticks: int, speed: float) -> Recording:
    """Record what the simulated gateway streams to ib_async for the instruments above."""
    from omega_tui.sim.gateway import SimGateway

    rec = Recording()
    rec.source = f"sim(seed=7, speed={speed:g})"
    raw: list[bytes] = []
    with SimGateway(seed=7, speed=speed) as gw:
        ib = IB()
        await ib.connectAsync("127.0.0.1", gw.port, clientId=99, timeout=10)
        try:
            for symbol, sec_type, exchange, currency, expiry in SYMBOLS:
                contract = Contract(
                    symbol=symbol,
                    secType=sec_type,
                    exchange=exchange,
                    currency=currency,
                    lastTradeDateOrContractMonth=expiry,
                )
                details = await ib.reqContractDetailsAsync(contract)
                qualified = details[0].contract
                qualified.exchange = exchange
                ib.reqMktData(qualified, "", False, False)
                req_id = next(r for r, t in ib.wrapper.reqId2Ticker.items() if t.contract is qualified)
                rec.instruments[req_id] = (symbol, qualified, float(details[0].minTick))
            ib.client.conn.hasData += raw.append
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                if sum(len(c) for c in raw) > max_ticks * 40:
                    break
        finally:
            ib.disconnect()
    for chunk in raw:
        rec.add_chunk(chunk)
    return rec


def record_synthetic(n_ticks: int, seed: int = 7) -> Recording:
    """A seeded stream in the simulator's style: tickPrice with sizes, trades with volume, few per read."""
    rng = random.Random(seed)
    rec = Recording()
    rec.source = f"synthetic(seed={seed})"
    state = {}
    for i, (symbol, sec_type, exchange, currency, expiry) in enumerate(SYMBOLS):
        req_id = 100 + i
        contract = Contract(
            symbol=symbol, secType=sec_type, exchange=exchange, currency=currency, lastTradeDateOrContractMonth=expiry
        )
        contract.conId = 1000 + i
        tick = TICKS[sec_type]
        rec.instruments[req_id] = (symbol, contract, tick)
        price = {"STK": 200.0, "FUT": 6000.0, "CASH": 1.055}[sec_type]
        state[req_id] = [round(price / tick), 0]
    req_ids = list(state)
    chunk: list[bytes] = []
    while rec.ticks < n_ticks:
        req_id = rng.choice(req_ids)
        tick = rec.instruments[req_id][2]
        s = state[req_id]
        s[0] += rng.choice((-1, 0, 1))
        bid, ask = s[0] * tick, (s[0] + 1) * tick
        kind = rng.random()
        if kind < 0.4:
            chunk.append(frame(1, 6, req_id, 1, repr(round(bid, 6)), rng.randint(1, 30) * 100, 0))
        elif kind < 0.8:
            chunk.append(frame(1, 6, req_id, 2, repr(round(ask, 6)), rng.randint(1, 30) * 100, 0))
        else:
            s[1] += 100
            chunk.append(frame(1, 6, req_id, 4, repr(round(bid, 6)), 100, 0))
            chunk.append(frame(2, 6, req_id, 8, s[1]))
        if rng.random() < 0.4:
            rec.add_chunk(b"".join(chunk))
            chunk = []
    return rec


def replay_ib(rec: Recording) -> IB:
    """A fresh IB that accepts the recording's frames as if its socket had just read them."""
    ib = IB()
    client = ib.client
    client._serverVersion = 178
    client.decoder.serverVersion = 178
    client.connState = client.CONNECTED
    client._apiReady = True
    for req_id, (_, contract, _) in rec.instruments.items():
        ib.wrapper.startTicker(req_id, contract, "mktData")
    return ib


def play(ib: IB, chunks: list[bytes], repeats: int) -> tuple[float, float]:
    """(wall seconds, this thread's CPU seconds) to feed every chunk `repeats` times."""
    feed = ib.client._onSocketHasData
    gc.collect()
    t0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(repeats):
        for chunk in chunks:
            feed(chunk)
    return time.perf_counter() - t0, time.thread_time() - c0


class TimedHotState(HotState):
    """The hot state, recording when each quote became readable (for the added-latency figure)."""

    def __init__(self, directory: Path, flush_ms: int, samples: np.ndarray) -> None:
        super().__init__(directory, flush_ms)
        self.samples = samples
        self.n = 0
        self.batch_start = 0

    def put_quote(self, quote: Quote) -> None:
        super().put_quote(quote)
        i = self.n % len(self.samples)
        self.samples[i] = time.perf_counter_ns() - self.batch_start
        self.n += 1


class Pipeline:
    """ib_async → TickerFeed → Normalizer → bus → hot state, with the handler's own time measured."""

    def __init__(self, rec: Recording, state_dir: Path, samples: np.ndarray, flush_ms: int = 20) -> None:
        self.ib = replay_ib(rec)
        self.clock = SystemClock()
        self.bus = EventBus()
        self.bus.subscribe(QuoteUpdated, lambda e: None)  # a consumer, as the scheduler would be
        self.hot = TimedHotState(state_dir, flush_ms, samples)
        self.normalizer = Normalizer(self.clock, self.bus, self.hot, stale_after_s=5.0, max_jump_pct=10.0)
        self.feed = TickerFeed(self.normalizer, self.clock)
        for req_id, (key, _, tick) in rec.instruments.items():
            from decimal import Decimal

            self.normalizer.register(key, Decimal(repr(tick)))
            self.feed.bind(self.ib.wrapper.reqId2Ticker[req_id], key)
        self.handler_ns = 0
        self.handler_cpu_ns = 0
        self.ib.pendingTickersEvent += self._on_batch

    def _on_batch(self, tickers: Any) -> None:
        c0 = time.thread_time_ns()
        t0 = time.perf_counter_ns()
        self.hot.batch_start = t0
        self.feed.on_pending_tickers(tickers)
        self.handler_ns += time.perf_counter_ns() - t0
        self.handler_cpu_ns += time.thread_time_ns() - c0


READER = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from omega_tui.core.hot_state import HotStateReader
directory, keys, seconds = Path(sys.argv[1]), sys.argv[2].split(","), float(sys.argv[3])
reader = HotStateReader(directory)
seen = {k: -1 for k in keys}
lags, flush_lags = [], []
last_flush = None
print("ready", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    for k in keys:
        q = reader.quote(k)
        if q is not None and q.seq != seen[k]:
            now = time.monotonic_ns()
            if seen[k] != -1:
                lags.append(now - q.recv_ns)
            seen[k] = q.seq
    flush = reader.last_flush()
    if flush is not None and flush[1] != last_flush:
        if last_flush is not None:
            flush_lags.append(time.time_ns() - flush[0])
        last_flush = flush[1]
    time.sleep(0.001)
pct = lambda a, p: float(np.percentile(np.array(a) / 1e6, p)) if a else None
print(json.dumps({"samples": len(lags), "lag_p50_ms": pct(lags, 50), "lag_p99_ms": pct(lags, 99),
                  "lag_max_ms": pct(lags, 100), "flush_to_read_p99_ms": pct(flush_lags, 99)}))
"""


def sample_buffer(n: int) -> np.ndarray:
    """A resident int64 buffer: every page written now, so filling it later does not grow RSS."""
    buf = np.empty(n, dtype=np.int64)
    buf.fill(0)
    return buf


def pct_us(samples: np.ndarray, p: float) -> float:
    return float(np.percentile(samples, p) / 1000.0)


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench data_path")
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the sustained run")
    parser.add_argument("--rate", type=float, default=20_000.0, help="tick messages per second, sustained run")
    parser.add_argument("--source", choices=("sim", "synthetic"), default="sim")
    parser.add_argument("--record-ticks", type=int, default=60_000)
    parser.add_argument("--burst-ticks", type=int, default=400_000, help="tick messages in the throughput run")
    args = parser.parse_args(argv)

    if args.source == "sim":
        rec = asyncio.run(record_from_sim(seconds=20.0, max_ticks=args.record_ticks, speed=200.0))
    else:
        rec = record_synthetic(args.record_ticks)
    per_chunk = rec.messages / max(1, len(rec.chunks))
    print(
        f"recorded {rec.ticks} tick messages ({rec.messages} market data messages) in {len(rec.chunks)} reads "
        f"from {rec.source}, {len(rec.instruments)} instruments, {per_chunk:.2f} messages per read"
    )
    repeats = max(1, round(args.burst_ticks / max(1, rec.ticks)))

    # 2. The floor: ib_async alone.
    # CPU time of this thread, not wall time: the machine is shared, and preemption is not ib_async's cost.
    floor_cpu_s = min(play(replay_ib(rec), rec.chunks, repeats)[1] for _ in range(2))
    ticks = rec.ticks * repeats
    print(f"ib_async alone: {ticks} tick messages in {floor_cpu_s:.3f} CPU s = {floor_cpu_s / ticks * 1e6:.2f} us each")

    with tempfile.TemporaryDirectory(prefix="omega-bench-") as tmp:
        # 3. Throughput and added latency, as fast as it goes.
        burst = sample_buffer(2_000_000)
        pipe = Pipeline(rec, Path(tmp) / "burst", burst)
        pipe.hot.start()
        freeze_startup_heap()
        total_s, total_cpu_s = play(pipe.ib, rec.chunks, repeats)
        pipe.hot.close()
        n = min(pipe.hot.n, len(burst))
        ours_ns = pipe.handler_cpu_ns
        ticks_per_s = ticks / total_s
        # Same run, same messages: ib_async's share is the path's CPU time minus Omega's handler.
        ratio = ours_ns / 1e9 / (total_cpu_s - ours_ns / 1e9)
        ratio_floor = ours_ns / 1e9 / floor_cpu_s
        stats = pipe.normalizer.stats
        print(
            f"full path: {ticks_per_s:,.0f} tick messages/s wall ({ticks / total_cpu_s:,.0f} per CPU s); Omega's "
            f"handler {ours_ns / ticks:.0f} CPU ns per tick message ({ours_ns / max(1, stats.published):.0f} per "
            f"published quote), ratio to ib_async {ratio:.2f} (same run) / {ratio_floor:.2f} (separate floor run); "
            f"{stats.published} quotes, {stats.unchanged} unchanged, rejects {stats.by_reason}"
        )
        burst_p50, burst_p99 = pct_us(burst[:n], 50), pct_us(burst[:n], 99)

        # 4. Sustained rate, second-process reader, memory.
        sustained = sample_buffer(1_000_000)
        pipe = Pipeline(rec, Path(tmp) / "sustained", sustained)
        pipe.hot.start()
        freeze_startup_heap()
        keys = ",".join(sorted({k for k, _, _ in rec.instruments.values()}))
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(Path(tmp) / "sustained"), keys, str(args.seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdout is not None
        reader.stdout.readline()  # "ready"
        ticks_per_chunk = rec.ticks / max(1, len(rec.chunks))
        slot_s = 0.005
        chunks_per_slot = args.rate * slot_s / ticks_per_chunk
        feed = pipe.ib.client._onSocketHasData
        start = time.monotonic()
        warm_end = start + args.seconds / 10
        rss_start = rss_end = 0
        rss_samples = []
        sent_ticks = 0.0
        owed = 0.0
        i = 0
        n_chunks = len(rec.chunks)
        next_slot = start
        next_rss = start
        while True:
            now = time.monotonic()
            if now - start >= args.seconds:
                break
            owed += chunks_per_slot
            while owed >= 1.0:
                feed(rec.chunks[i])
                i = (i + 1) % n_chunks
                owed -= 1.0
                sent_ticks += ticks_per_chunk
            if now >= next_rss:
                rss_samples.append(rss_bytes())
                next_rss = now + 1.0
                if not rss_start and now >= warm_end:
                    rss_start = rss_samples[-1]
            next_slot += slot_s
            delay = next_slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        elapsed = time.monotonic() - start
        rss_end = rss_bytes()
        pipe.hot.close()
        out, _ = reader.communicate(timeout=60)
        lag = json.loads(out.strip().splitlines()[-1])
        m = min(pipe.hot.n, len(sustained))
        sustained_p50, sustained_p99 = pct_us(sustained[:m], 50), pct_us(sustained[:m], 99)
        rss_start = rss_start or rss_samples[0]
        growth = (rss_end - rss_start) / rss_start * 100
        print(
            f"sustained: {sent_ticks / elapsed:,.0f} tick messages/s for {elapsed:.0f} s; added latency p50 "
            f"{sustained_p50:.1f} us p99 {sustained_p99:.1f} us; second-process lag p50 {lag['lag_p50_ms']:.2f} ms "
            f"p99 {lag['lag_p99_ms']:.2f} ms over {lag['samples']} quotes; RSS {rss_start / 2**20:.1f} → "
            f"{rss_end / 2**20:.1f} MiB ({growth:+.2f}%)"
        )

    return {
        "source": rec.source,
        "instruments": len(rec.instruments),
        "messages_per_read": round(per_chunk, 2),
        "ticks_per_s": round(ticks_per_s),
        "added_latency_p50_us": round(sustained_p50, 1),
        "added_latency_p99_us": round(sustained_p99, 1),
        "burst_added_latency_p50_us": round(burst_p50, 1),
        "burst_added_latency_p99_us": round(burst_p99, 1),
        "ratio_to_decode": round(ratio, 3),
        "ratio_to_separate_floor_run": round(ratio_floor, 3),
        "ticks_per_cpu_s": round(ticks / total_cpu_s),
        "ib_async_decode_us_per_tick": round(floor_cpu_s / ticks * 1e6, 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "omega_us_per_tick": round(ours_ns / ticks / 1000, 3),
        "diskcache_lag_p50_ms": lag["lag_p50_ms"],
        "diskcache_lag_p99_ms": lag["lag_p99_ms"],
        "diskcache_flush_to_read_p99_ms": lag["flush_to_read_p99_ms"],
        "diskcache_lag_samples": lag["samples"],
        "sustained_rate_ticks_per_s": round(sent_ticks / elapsed),
        "sustained_seconds": round(elapsed, 1),
        "rss_start_mib": round(rss_start / 2**20, 1),
        "rss_end_mib": round(rss_end / 2**20, 1),
        "rss_growth_pct": round(growth, 2),
        "rss_growth_mib": round((rss_end - rss_start) / 2**20, 2),
    }
