"""An engine process to crash: `python -m tests.e2e.engine_process CONFIG STATE_DIR`.

It runs the real wired runtime (as `omega-tui --no-ui` does) against the gateway named in CONFIG, places two
bracket entries through the risk engine, prints one `placed {json}` line with every order id once the broker
has acknowledged every leg, then `filled {json}` once the marketable entry has filled and its protective legs
are live, and then waits to be killed. There is no control command that places an order, hence this script.

Test hook (this script only, never a product setting): with `OMEGA_E2E_KILL_AFTER_SEND=<intent id>` in its
environment the process kills itself with SIGKILL the moment the bytes of that intent's transmitting leg
(the bracket's last, transmit=True) have been handed to the socket (the order port's `place_group`, or its
`uncork` when the legs went one by one: either writes the bracket's three messages at once): the order
manager has not yet numbered, let alone written or fsynced, the bracket's "submit" record (it does that right
after the send, in the same step of the loop: `OrderManager._place_group`), so the broker holds orders the
journal knows nothing of.
Just before, it prints one `killing {json}` line: the ids of that bracket's legs by role, and of every
bracket acknowledged before it, and what the journal had numbered, written and fsynced.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

from omega_tui.config import load_settings
from omega_tui.core.runtime import Runtime
from omega_tui.core.types import BrokerOrder, IntentSource, OrderIntent, OrderState, PlaceOrder, Side
from omega_tui.core.wiring import build_runtime

KILL_ENV = "OMEGA_E2E_KILL_AFTER_SEND"

WAIT_S = 30.0
# Resting: 1.5 % under the 230.00 / 230.02 touch, inside the 2 % price collar.
RESTING = ("rest", "226.60", "232.00", "225.00")
# Marketable at the ask; the take-profit is what the test fills while this process is dead.
MARKETABLE = ("take", "230.02", "231.00", "228.00")


async def wait_for(predicate: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"engine_process: timed out waiting for {what}")
        await asyncio.sleep(0.01)


def kill_after_send(runtime: Runtime, intent_id: str, ids: dict[str, dict[str, int]]) -> None:
    """Wrap the order manager's broker port: after the transmitting leg of `intent_id` is on the socket,
    print the `killing` line and SIGKILL this process (see the module docstring)."""
    orders = runtime.engines.orders
    port = orders.broker
    place = port.place_order
    legs: dict[str, int] = {}

    uncork = port.uncork
    place_group = port.place_group
    armed: list[bool] = []

    def arm(order: BrokerOrder) -> None:
        if not order.order_ref.startswith(f"{intent_id}:"):
            return
        legs[order.order_ref.split(":")[1]] = order.order_id
        if order.transmit:
            armed.append(True)

    def place_then_arm(order: BrokerOrder) -> None:
        place(order)  # ib_async's client has encoded it (the bracket's bytes leave together at `uncork`)
        arm(order)

    def place_group_then_die(group: Sequence[BrokerOrder]) -> bool:
        if not place_group(group):  # nothing sent: the legs go one by one, corked
            return False
        for order in group:  # all written to the transport in one write
            arm(order)
        die()
        return True

    def uncork_then_die() -> None:
        uncork()  # the bracket's messages, its transmitting leg's included, written to the transport
        die()

    def die() -> None:
        if not armed:
            return
        transport = runtime.engines.broker.ib.client.conn.transport
        unsent = transport.get_write_buffer_size() if transport is not None else -1
        journal = runtime.journal
        print(
            "killing",
            json.dumps(
                {
                    **ids,
                    intent_id: legs,
                    "unsent_bytes": unsent,
                    "journal": {"seq": journal.seq, "written": journal.written_seq, "durable": journal.durable_seq},
                }
            ),
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGKILL)

    port.place_order = place_then_arm  # type: ignore[method-assign]
    port.place_group = place_group_then_die  # type: ignore[method-assign]
    port.uncork = uncork_then_die  # type: ignore[method-assign]


async def main(config: str, state_dir: str) -> int:
    settings = load_settings(config, state={"dir": state_dir})
    runtime = build_runtime(settings, strategy=False)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    if not await asyncio.to_thread(runtime.wait_started, WAIT_S) or runtime.exit_code:
        print("startup failed", runtime.startup_errors, file=sys.stderr, flush=True)
        return 3
    orders = runtime.engines.orders
    await wait_for(lambda: runtime.hot_state.quote("AAPL") is not None, "a quote")
    ids: dict[str, dict[str, int]] = {}
    if os.environ.get(KILL_ENV):
        kill_after_send(runtime, os.environ[KILL_ENV], ids)
    for intent_id, limit, take_profit, stop_loss in (RESTING, MARKETABLE):
        intent = OrderIntent(
            intent_id=intent_id,
            key="AAPL",
            side=Side.BUY,
            quantity=100,
            limit_price=Decimal(limit),
            take_profit=Decimal(take_profit),
            stop_loss=Decimal(stop_loss),
            source=IntentSource.MANUAL,
            created_ns=time.monotonic_ns(),
        )
        result = await runtime.handle(PlaceOrder(intent))
        if not result.ok:
            print("refused", result.message, file=sys.stderr, flush=True)
            return 1

        def acknowledged(i: str = intent_id) -> bool:
            legs = orders.orders_for_intent(i)
            return len(legs) == 3 and all(o.ib_status for o in legs)

        await wait_for(acknowledged, f"{intent_id} acknowledged")
        ids[intent_id] = {o.role: o.order_id for o in orders.orders_for_intent(intent_id)}
    print("placed", json.dumps(ids), flush=True)

    def entry_filled() -> bool:
        legs = {o.role: o for o in orders.orders_for_intent("take")}
        return legs["entry"].state is OrderState.FILLED and all(
            legs[r].ib_status == "Submitted" for r in ("take_profit", "stop_loss")
        )

    await wait_for(entry_filled, "the marketable entry filled")
    print("filled", json.dumps({"position": orders.position_qty("AAPL")}), flush=True)
    await task  # until SIGKILL
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(Path(sys.argv[1]).as_posix(), sys.argv[2])))
