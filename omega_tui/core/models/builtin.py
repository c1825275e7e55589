"""Built-in models, from cheapest to most expensive; the shipped evaluation ranks them in the same order.

- `microprice`: sign of the microprice's offset from the mid (order-book imbalance). Microseconds, inline.
- `ewma_momentum`: the mid against its EWMA, scaled by realised volatility. Tens of µs, inline.
- `logistic`: online logistic regression on the engineered features of `features.py`; weights from the
  shipped evaluation, updated by SGD as predictions mature. Tens of µs, inline (a thread hand-off would
  cost more than the model on a busy machine).
- `knn_analog`: nearest-neighbour analog forecaster over a memory of past feature vectors and outcomes; it
  alone sees the regime-dependent structure, at milliseconds per prediction. Worker thread.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from omega_tui.core.models.base import NO_VIEW, Prediction, Snapshot
from omega_tui.core.models.features import NAMES, WINDOW, sliding, window_features
from omega_tui.core.models.market import HORIZON_TICKS, simulate


class MicropriceModel:
    """Direction of the microprice relative to the mid: size imbalance at the touch predicts the next move."""

    name = "microprice"
    features: tuple[str, ...] = ("quote",)
    min_history = 1
    inline = True

    def predict(self, snapshot: Snapshot) -> Prediction:
        q = snapshot.quote
        if q.bid is None or q.ask is None or not q.bid_size or not q.ask_size:
            return NO_VIEW
        imb = (q.bid_size - q.ask_size) / (q.bid_size + q.ask_size)
        if imb == 0:
            return NO_VIEW
        spread_ticks = float(q.ask - q.bid) / snapshot.tick
        return Prediction(1 if imb > 0 else -1, min(0.5 + 0.15 * abs(imb), 0.65), imb * spread_ticks / 2.0)


class EwmaMomentumModel:
    """The mid above (below) its EWMA, in units of realised volatility, predicts up (down)."""

    name = "ewma_momentum"
    features: tuple[str, ...] = ("mids",)
    min_history = WINDOW
    inline = True

    def __init__(self, alpha: float = 0.12) -> None:
        w = (1.0 - alpha) ** np.arange(WINDOW - 1, -1, -1, dtype=np.float64)
        self._w = w / w.sum()

    def predict(self, snapshot: Snapshot) -> Prediction:
        if snapshot.n < self.min_history:
            return NO_VIEW
        m = snapshot.mids[-WINDOW:] / snapshot.tick
        r = np.diff(m)
        vol = math.sqrt(float(r @ r) / r.shape[0]) + 0.05
        z = (float(m[-1]) - float(m @ self._w)) / (vol * 6.0)
        if z == 0.0:
            return NO_VIEW
        return Prediction(1 if z > 0 else -1, min(0.5 + 0.1 * abs(z), 0.75), z)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))


class LogisticModel:
    """Online logistic regression on `features.NAMES` plus a bias; SGD on the core loop as outcomes mature."""

    name = "logistic"
    features: tuple[str, ...] = ("mids", "imbalance")
    min_history = WINDOW
    inline = True

    def __init__(self, weights: NDArray[np.float64] | None = None, learning_rate: float = 0.002) -> None:
        self._w = np.zeros(len(NAMES) + 1) if weights is None else np.array(weights, dtype=np.float64)
        if self._w.shape != (len(NAMES) + 1,):
            raise ValueError(f"logistic weights need {len(NAMES) + 1} values, got {self._w.shape}")
        self.learning_rate = learning_rate
        self.updates = 0

    @property
    def weights(self) -> NDArray[np.float64]:
        return self._w

    def _x(self, snapshot: Snapshot) -> NDArray[np.float64]:
        f = window_features(snapshot.mids, snapshot.imbalance, snapshot.tick)
        return np.concatenate(([1.0], f))

    def predict(self, snapshot: Snapshot) -> Prediction:
        if snapshot.n < self.min_history:
            return NO_VIEW
        w = self._w  # one read: a concurrent `learn` swaps the array, never writes into it
        s = float(self._x(snapshot) @ w)
        if s == 0.0:
            return NO_VIEW
        p = _sigmoid(s)
        return Prediction(1 if s > 0 else -1, max(p, 1.0 - p), None)

    def learn(self, snapshot: Snapshot, outcome: int) -> None:
        if snapshot.n < self.min_history or outcome == 0:
            return
        x = self._x(snapshot)
        w = self._w
        p = _sigmoid(float(x @ w))
        self._w = w + self.learning_rate * ((1.0 if outcome > 0 else 0.0) - p) * x
        self.updates += 1


KNN_COLUMNS = (5, 4, 6, 0, 2)  # ext, mom60, logvol, imb0, mom5
KNN_WEIGHTS = (1.0, 1.0, 3.0, 1.0, 1.0)  # the regime (logvol) dimension counts three times


class KnnAnalogModel:
    """k-nearest-neighbour vote among past situations with known outcomes (the "analog" method).

    Its memory is built by `prepare()` from the deterministic simulated market (seed `memory_seed`), so it
    is identical on every machine; cost grows with `memory_size`, which is why it is the slowest model.
    """

    name = "knn_analog"
    features: tuple[str, ...] = ("mids", "imbalance")
    min_history = WINDOW
    inline = False

    def __init__(self, memory_size: int = 200_000, k: int = 1000, memory_seed: int = 1) -> None:
        self.memory_size = memory_size
        self.k = k
        self.memory_seed = memory_seed
        self._memory: NDArray[np.float32] | None = None
        self._outcomes: NDArray[np.int8] | None = None
        self._center = np.zeros(len(KNN_COLUMNS))
        self._scale = np.ones(len(KNN_COLUMNS))

    def prepare(self) -> None:
        if self._memory is not None:
            return
        session = simulate(self.memory_seed, self.memory_size + WINDOW + HORIZON_TICKS)
        feats = window_features(sliding(session.mid), sliding(session.imbalance), session.tick)
        labels = session.labels(HORIZON_TICKS)[WINDOW - 1 :]
        keep = labels != 0
        x = feats[keep][:, KNN_COLUMNS]
        self._center = x.mean(axis=0)
        self._scale = x.std(axis=0) / np.asarray(KNN_WEIGHTS)
        self._memory = ((x - self._center) / self._scale).astype(np.float32)
        self._outcomes = labels[keep].astype(np.int8)

    def predict(self, snapshot: Snapshot) -> Prediction:
        if snapshot.n < self.min_history:
            return NO_VIEW
        if self._memory is None or self._outcomes is None:
            self.prepare()
        assert self._memory is not None and self._outcomes is not None
        f = window_features(snapshot.mids, snapshot.imbalance, snapshot.tick)[list(KNN_COLUMNS)]
        q = ((f - self._center) / self._scale).astype(np.float32)
        d = self._memory - q
        dist = np.einsum("ij,ij->i", d, d)
        k = min(self.k, dist.shape[0] - 1)
        nearest = np.argpartition(dist, k)[:k]
        up = float(np.count_nonzero(self._outcomes[nearest] > 0)) / k
        if up == 0.5:
            return NO_VIEW
        return Prediction(1 if up > 0.5 else -1, max(up, 1.0 - up), None)
