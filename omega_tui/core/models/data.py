"""The shipped evaluation: expected accuracy per model (and per regime bucket) and the logistic weights.

Both files live in `omega_tui/data/` and are rewritten by `python -m omega_tui.core.models.evaluate`.
Missing or unreadable files are not fatal: every model then starts from the 0.5 prior (or its own
`expected_accuracy`) and learns its accuracy online.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

ACCURACY_FILE = "model_accuracy.json"
WEIGHTS_FILE = "model_weights.json"


def data_dir() -> Path:
    """Where the shipped data files live (inside the installed package)."""
    return Path(str(resources.files("omega_tui"))) / "data"


@dataclass(frozen=True, slots=True)
class ModelPrior:
    """One model's evaluated accuracy, overall and per volatility bucket (low, mid, high)."""

    accuracy: float
    samples: int
    buckets: tuple[float, ...] = ()
    bucket_samples: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Priors:
    """Everything the scheduler takes from the shipped evaluation."""

    models: dict[str, ModelPrior] = field(default_factory=dict)
    regime_thresholds: tuple[float, float] = (-0.35, 0.35)  # log realised vol (ticks per update) terciles

    def prior(self, name: str) -> ModelPrior | None:
        return self.models.get(name)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("model data file %s is missing; run python -m omega_tui.core.models.evaluate", path)
        return None
    except (OSError, ValueError) as exc:
        log.warning("model data file %s is unreadable (%s); using defaults", path, exc)
        return None
    return value if isinstance(value, dict) else None


def load_priors(path: Path | None = None) -> Priors:
    """Read the accuracy file; defaults (no priors) when it is missing or malformed."""
    raw = _read_json(path or data_dir() / ACCURACY_FILE)
    if raw is None:
        return Priors()
    try:
        models = {
            str(name): ModelPrior(
                accuracy=float(m["accuracy"]),
                samples=int(m["samples"]),
                buckets=tuple(float(b) for b in m.get("buckets", ())),
                bucket_samples=tuple(int(b) for b in m.get("bucket_samples", ())),
            )
            for name, m in raw["models"].items()
        }
        lo, hi = raw["regime_thresholds"]
        return Priors(models=models, regime_thresholds=(float(lo), float(hi)))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("model accuracy file is malformed (%s); using defaults", exc)
        return Priors()


def load_logistic_weights(path: Path | None = None) -> NDArray[np.float64] | None:
    """The evaluated logistic weights (bias first), or None when the file is missing."""
    raw = _read_json(path or data_dir() / WEIGHTS_FILE)
    if raw is None:
        return None
    try:
        return np.asarray(raw["logistic"]["weights"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return None
