"""A real headless engine that also places orders when told to on stdin (there is no `place` control command).

Run as `python -m tests.headless.driver [omega-tui options]`. It is `omega-tui --no-ui` step for step (same
settings loading, JSON-line logging, embedded or external gateway, `build_runtime`, `headless.run_runtime`
with its signal handlers and shutdown policy, same state directory and lock), with the decision loop left
out so that only the test places orders. Each stdin line is one request; each answer is one JSON line on
stdout:

- `rest KEY`: a buy bracket whose entry rests 0.5% under the bid (it stays working);
- `take KEY`: a buy bracket whose entry crosses the ask (it fills, opening a position).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from omega_tui.cli import _load, build_parser
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import IntentSource, OrderIntent, PlaceOrder, Side
from omega_tui.core.wiring import build_runtime
from omega_tui.headless import run_runtime
from omega_tui.launcher import gateway_for
from omega_tui.logs import setup_logging

QTY = 10
QUOTE_WAIT_S = 10.0


def emit(**fields: Any) -> None:
    print(json.dumps(fields, default=str), flush=True)


def _on_grid(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).quantize(Decimal(1), rounding=rounding) * tick


def intent_for(runtime: Runtime, verb: str, key: str) -> OrderIntent:
    """A buy bracket on `key` priced from its latest quote: resting under the bid, or crossing the ask."""
    tick = next(v.min_tick for v in runtime.engines.broker.verified if v.key == key)
    deadline = time.monotonic() + QUOTE_WAIT_S
    quote = runtime.hot_state.quote(key)
    while quote is None or quote.bid is None or quote.ask is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no two-sided quote for {key} within {QUOTE_WAIT_S:g} s")
        time.sleep(0.05)
        quote = runtime.hot_state.quote(key)
    if verb == "rest":
        limit = _on_grid(quote.bid * Decimal("0.995"), tick, ROUND_DOWN)
    else:
        limit = _on_grid(quote.ask + 2 * tick, tick, ROUND_UP)
    return OrderIntent(
        intent_id=f"drv-{uuid.uuid4().hex[:10]}",
        key=key,
        side=Side.BUY,
        quantity=QTY,
        limit_price=limit,
        take_profit=limit + 200 * tick,
        stop_loss=limit - 200 * tick,
        source=IntentSource.MANUAL,
        created_ns=time.monotonic_ns(),
        reason=f"test driver {verb}",
    )


def serve_stdin(runtime: Runtime) -> None:
    """Answer stdin requests until stdin closes; runs in its own thread, like a second front end would."""
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("rest", "take"):
            emit(cmd=line.strip(), ok=False, message="expected `rest KEY` or `take KEY`")
            continue
        try:
            intent = intent_for(runtime, parts[0], parts[1])
            result = runtime.submit(PlaceOrder(intent)).result(timeout=10)
        except Exception as exc:  # reported to the test, which decides
            emit(cmd=line.strip(), ok=False, message=f"{type(exc).__name__}: {exc}")
            continue
        emit(cmd=line.strip(), ok=result.ok, message=result.message, limit=intent.limit_price)


async def drive(runtime: Runtime) -> int:
    engine = asyncio.create_task(run_runtime(runtime))
    started = await asyncio.to_thread(runtime.wait_started, 60)
    if runtime.running and started:
        emit(event="started")
        threading.Thread(target=serve_stdin, args=(runtime,), name="driver-stdin", daemon=True).start()
    return await engine


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = _load(args)
    setup_logging(settings.state.dir, settings.logging.level, stderr_json=True)
    with gateway_for(settings) as effective:
        runtime = build_runtime(effective, strategy=False)
        return asyncio.run(drive(runtime))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
