"""The model interface: what a predictor declares and returns, and the snapshot it reads.

A model is any object with `name`, `features` and `predict(snapshot)`; `min_history` (default 1) and
`inline` (default False: runs in a worker thread) are optional attributes. It must be
safe to call `predict` from a worker thread while the core loop runs, must not mutate the snapshot, and
must return the same prediction for the same snapshot and the same model state (replays depend on it).
Optional: `prepare()` (heavy one-off setup, called in a worker thread before calibration),
`learn(snapshot, outcome)` (online update on the core loop as a prediction matures; replace state,
never mutate arrays a running `predict` may be reading) and `expected_accuracy` (the prior used when the
shipped evaluation does not know the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from omega_tui.core.types import Quote

FEATURES = frozenset({"quote", "mids", "imbalance", "spreads"})
"""What a snapshot carries; a model that asks for anything else is refused at load."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """Direction of the mid over the scoring horizon (−1, 0 = no view, +1) and the chance it is right."""

    direction: int
    confidence: float
    expected_return_ticks: float | None = None


NO_VIEW = Prediction(0, 0.5)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One instrument's recent history at a decision, oldest first; the last element is `quote`.

    Arrays are read-only copies: a model may keep references, never write to them.
    """

    key: str
    at_ns: int
    quote: Quote
    tick: float
    mids: NDArray[np.float64]
    imbalance: NDArray[np.float64]
    spreads: NDArray[np.float64]

    @property
    def n(self) -> int:
        return int(self.mids.shape[0])


@runtime_checkable
class Model(Protocol):
    """A predictor the scheduler can choose."""

    name: str
    features: tuple[str, ...]

    def predict(self, snapshot: Snapshot) -> Prediction: ...


@runtime_checkable
class OnlineModel(Protocol):
    """A model that learns from matured predictions; `outcome` is the realised direction (−1 or +1)."""

    def learn(self, snapshot: Snapshot, outcome: int) -> None: ...


@runtime_checkable
class PreparedModel(Protocol):
    """A model with heavy one-off setup, run in a worker thread before the model is calibrated."""

    def prepare(self) -> None: ...


def is_inline(model: Model) -> bool:
    """Whether the model runs on the core loop (declared cheap) rather than in its worker thread."""
    return bool(getattr(model, "inline", False))


def min_history(model: Model) -> int:
    """Updates of history the model needs before it has a view."""
    return int(getattr(model, "min_history", 1))
