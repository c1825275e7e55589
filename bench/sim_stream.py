"""Streaming throughput of the simulated gateway: tick messages per second decoded by one ib_async client.

The gateway runs as its own process (`omega-tui sim-gateway` in burst mode), as it would beside the
engine, so the client and the server each get a core. The client subscribes to market data for several
contracts and counts tickPrice/tickSize messages that ib_async's decoder handles.

    python -m bench sim_stream [--seconds 5] [--burst 20] [--tick-interval 0.002] [--contracts 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import Any

SYMBOLS = [
    ("AAPL", "STK"),
    ("MSFT", "STK"),
    ("SPY", "STK"),
    ("NVDA", "STK"),
    ("TSLA", "STK"),
    ("JPM", "STK"),
    ("EUR", "CASH"),
    ("GBP", "CASH"),
]


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench sim_stream")
    p.add_argument("--seconds", type=float, default=5.0, help="measurement window (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds streamed before measuring (default 1)")
    p.add_argument("--burst", type=int, default=20, help="extra quote events per step per contract (default 20)")
    p.add_argument("--tick-interval", type=float, default=0.002, help="gateway step interval (default 0.002)")
    p.add_argument("--contracts", type=int, default=len(SYMBOLS), help=f"contracts streamed (max {len(SYMBOLS)})")
    return p.parse_args(argv)


def _start_gateway(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    cmd = [
        sys.executable,
        "-m",
        "omega_tui.sim.cli",
        "--port",
        "0",
        "--burst",
        str(args.burst),
        "--tick-interval",
        str(args.tick_interval),
        "--max-lines",
        "1000",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("sim-gateway listening on "):
        proc.kill()
        raise RuntimeError(f"the gateway did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


async def _measure(port: int, args: argparse.Namespace) -> dict[str, Any]:
    from ib_async import IB, Contract

    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=5)
    counts = [0]
    decoder = ib.client.decoder
    for msg_id in (1, 2):  # count what ib_async decodes: tickPrice and tickSize
        handler = decoder.handlers[msg_id]

        def counting(fields: list[str], _h: Any = handler) -> None:
            counts[0] += 1
            _h(fields)

        decoder.handlers[msg_id] = counting
    try:
        for symbol, sec_type in SYMBOLS[: args.contracts]:
            c = Contract(
                symbol=symbol, secType=sec_type, exchange="IDEALPRO" if sec_type == "CASH" else "SMART", currency="USD"
            )
            await ib.qualifyContractsAsync(c)
            ib.reqMktData(c)
        await asyncio.sleep(args.warmup)
        start_count, t0 = counts[0], time.perf_counter()
        cpu0 = time.process_time()
        await asyncio.sleep(args.seconds)
        elapsed = time.perf_counter() - t0
        ticks = counts[0] - start_count
        client_cpu = (time.process_time() - cpu0) / elapsed
        stats = ib.client.connectionStats()
    finally:
        ib.disconnect()
    return {
        "ticks_per_s": round(ticks / elapsed),
        "ticks": ticks,
        "seconds": round(elapsed, 3),
        "contracts": args.contracts,
        "burst": args.burst,
        "tick_interval": args.tick_interval,
        "client_cpu_fraction": round(client_cpu, 3),
        "bytes_received": stats.numBytesRecv,
    }


def main(argv: list[str]) -> dict[str, Any]:
    """Run the benchmark; returns the figures (the runner prints them as the last JSON line)."""
    args = _parse(argv)
    proc, port = _start_gateway(args)
    try:
        figures = asyncio.run(_measure(port, args))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print(
        f"sim gateway → ib_async: {figures['ticks_per_s']:,} tick messages/s "
        f"({figures['ticks']:,} in {figures['seconds']} s, {figures['contracts']} contracts, "
        f"burst {figures['burst']}, client CPU {figures['client_cpu_fraction']:.0%})"
    )
    print("target: >= 20,000 tick messages/s")
    return figures
