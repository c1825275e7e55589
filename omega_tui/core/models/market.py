"""A deterministic simulated quote stream: the shipped evaluation data, regenerated from a seed.

The fair value moves with three sources of predictability of clearly different difficulty, so models of
different cost really differ in accuracy: a short-lived order-book imbalance (visible in the sizes at the
touch), a persistent drift that reverses when volatility is high (needs recent mids and the regime), and a
mean reversion that only starts once the price is far from its recent average (a threshold, nonlinear).
Everything is a pure function of `(seed, n)`; no file is needed to reproduce an evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from numpy.typing import NDArray

from omega_tui.core.models.base import Snapshot
from omega_tui.core.types import Quote

TICK = 0.01
DT_NS = 100_000_000  # one quote update every 100 ms
HORIZON_TICKS = 10  # predictions are scored 1 s (10 updates) later
START_UTC = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Session:
    """One simulated session: quotes at the touch, on the tick grid, one row per update."""

    bid: NDArray[np.float64]
    ask: NDArray[np.float64]
    bid_size: NDArray[np.int64]
    ask_size: NDArray[np.int64]
    tick: float

    @property
    def n(self) -> int:
        return int(self.bid.shape[0])

    @property
    def mid(self) -> NDArray[np.float64]:
        return (self.bid + self.ask) / 2.0

    @property
    def imbalance(self) -> NDArray[np.float64]:
        bs = self.bid_size.astype(np.float64)
        a = self.ask_size.astype(np.float64)
        return (bs - a) / (bs + a)

    @property
    def spread(self) -> NDArray[np.float64]:
        return self.ask - self.bid

    def labels(self, horizon: int = HORIZON_TICKS) -> NDArray[np.int64]:
        """Sign of the mid's move over `horizon` updates (0 when flat or past the end)."""
        mid = self.mid
        out = np.zeros(self.n, dtype=np.int64)
        out[:-horizon] = np.sign(mid[horizon:] - mid[:-horizon]).astype(np.int64)
        return out

    def quote(self, i: int, key: str = "SIM", t0_ns: int = 1_000_000_000) -> Quote:
        """Row `i` as a normalized Quote (prices exact on the grid)."""
        tick = Decimal(str(self.tick))
        bid = Decimal(int(np.rint(self.bid[i] / self.tick))) * tick
        ask = Decimal(int(np.rint(self.ask[i] / self.tick))) * tick
        return Quote(
            key=key,
            seq=i + 1,
            recv_ns=t0_ns + i * DT_NS,
            recv_utc=START_UTC + timedelta(microseconds=i * DT_NS // 1000),
            bid=bid,
            ask=ask,
            bid_size=int(self.bid_size[i]),
            ask_size=int(self.ask_size[i]),
        )


def simulate(seed: int, n: int, *, tick: float = TICK, start: float = 100.0) -> Session:
    """Simulate `n` quote updates; the same `(seed, n)` always gives the same session."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, 4)).tolist()  # Python floats: the loop below is scalar arithmetic
    size_noise = rng.integers(-40, 41, size=(n, 2)).tolist()
    bid = np.empty(n)
    ask = np.empty(n)
    bsz = np.empty(n, dtype=np.int64)
    asz = np.empty(n, dtype=np.int64)
    v = 0.0  # log-volatility, slow
    mu = 0.0  # persistent drift
    z = 0.0  # latent order-flow pressure
    f = start  # fair value
    ew = start  # its recent average
    lag = [start] * 5  # fair value 5 updates ago, by t % 5
    base = 1.0 * tick
    for t in range(n):
        v = 0.998 * v + 0.055 * e[t][0]
        sig = base * math.exp(v)
        mu = 0.99 * mu + 0.14 * e[t][1]
        z = 0.8 * z + 0.6 * e[t][2]
        imb = math.tanh(z)
        trend = 0.3 * mu
        ext = (f - ew) / (sig * 6.0)
        revert = -0.8 * math.copysign(1.0, ext) * max(abs(ext) - 2.0, 0.0)
        press = 0.28 * imb
        # Short-term returns continue in calm markets and overshoot (reverse) in volatile ones: an
        # interaction with the regime that no linear model of these features can express.
        r5 = (f - lag[t % 5]) / (sig * 2.236)
        bounce = (0.3 if v < 0.0 else -0.45) * max(-2.0, min(2.0, r5))
        lag[t % 5] = f
        f += sig * (trend + press + revert + bounce + e[t][3])
        ew += 0.04 * (f - ew)
        spread_ticks = 1 if v < 0.6 else 2
        b = math.floor(f / tick - spread_ticks / 2.0 + 0.5)
        bid[t] = b * tick
        ask[t] = (b + spread_ticks) * tick
        depth = 300.0
        bsz[t] = max(1, int(depth * (1.0 + 0.6 * imb)) + int(size_noise[t][0]))
        asz[t] = max(1, int(depth * (1.0 - 0.6 * imb)) + int(size_noise[t][1]))
    return Session(bid=bid, ask=ask, bid_size=bsz, ask_size=asz, tick=tick)


def snapshot_at(session: Session, i: int, key: str = "SIM", width: int = 256) -> Snapshot:
    """The snapshot a live engine would have at update `i` (history of up to `width` updates)."""
    lo = max(0, i - width + 1)
    quote = session.quote(i, key)
    arrays = [np.array(a[lo : i + 1], dtype=np.float64) for a in (session.mid, session.imbalance, session.spread)]
    for arr in arrays:
        arr.flags.writeable = False
    return Snapshot(key, quote.recv_ns, quote, session.tick, arrays[0], arrays[1], arrays[2])
