"""The simulated IB Gateway: the TWS socket protocol on loopback, backed by a seeded market and matcher.

Layers (nothing here imports `omega_tui.core`; the sim is a separate peer that only speaks the wire):

- `wire/`: framing, handshake, and the declarative message table both encoders and decoders come from.
- `session.py`: one connection (handshake, clientId, rate limit, request handlers, subscriptions).
- `server.py`: the hub (listening socket, engine, event routing, tick loop, pacing).
- `engine/`: contracts, price process, matching, ledger, history (no sockets).
- `faults.py`: the fault API (`SimGateway.faults`) and TOML scenarios; `cli.py`: `omega-tui sim-gateway`.

Use `SimGateway` (see its module for the thread and caller's-loop modes).
"""

from __future__ import annotations

from omega_tui.sim.gateway import SimGateway

__all__ = ["SimGateway"]
