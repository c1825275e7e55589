"""The simulated IB Gateway: the TWS socket protocol on loopback, backed by a seeded market and matcher."""

from __future__ import annotations

from omega_tui.sim.gateway import SimGateway

__all__ = ["SimGateway"]
