"""Engineered features over a window of recent quotes, vectorised so that evaluation and live agree.

`window_features` accepts one window (shape `(W,)`) or a stack of windows (shape `(N, W)`), and the same
arithmetic runs in both cases: a model evaluated offline on sliding windows computes exactly what it computes
live on one snapshot.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

WINDOW = 64
"""Updates of history the engineered features need."""

NAMES = ("imb0", "imb3", "mom5", "mom20", "mom60", "ext", "logvol")
"""Column order of `window_features`."""

_EWMA_ALPHA = 0.04
_EWMA_W = (1.0 - _EWMA_ALPHA) ** np.arange(WINDOW - 1, -1, -1, dtype=np.float64)
_EWMA_W /= _EWMA_W.sum()


def logvol(mids: NDArray[np.float64], tick: float) -> float:
    """Log realised volatility (ticks per update) of the last 61 mids: the regime measure, as in the features."""
    r = np.diff(mids[-61:]) / tick
    return float(np.log(np.sqrt(np.mean(r * r)) + 0.05)) if r.shape[0] else float(np.log(0.05))


def window_features(mids: NDArray[np.float64], imbalance: NDArray[np.float64], tick: float) -> NDArray[np.float64]:
    """Features of the last `WINDOW` updates; input windows are oldest first, the last column is now."""
    m = mids[..., -WINDOW:] / tick
    imb = imbalance[..., -WINDOW:]
    r = np.diff(m[..., -61:], axis=-1)
    vol = np.sqrt(np.mean(r * r, axis=-1)) + 0.05  # floor keeps flat markets from dividing by ~0
    last = m[..., -1]
    mom5 = (last - m[..., -6]) / (vol * np.sqrt(5.0))
    mom20 = (last - m[..., -21]) / (vol * np.sqrt(20.0))
    mom60 = (last - m[..., -61]) / (vol * np.sqrt(60.0))
    ext = (last - m @ _EWMA_W) / (vol * 6.0)
    cols = (imb[..., -1], imb[..., -3:].mean(axis=-1), mom5, mom20, mom60, ext, np.log(vol))
    return np.stack(cols, axis=-1)


def sliding(values: NDArray[np.float64], width: int = WINDOW) -> NDArray[np.float64]:
    """All windows of `width` consecutive values (a read-only view, row i ends at index i + width - 1)."""
    return np.lib.stride_tricks.sliding_window_view(values, width)
