"""The model pool: the predictor interface, built-in models, plug-ins and the shipped evaluation."""

from __future__ import annotations

from omega_tui.core.models.base import NO_VIEW, Model, OnlineModel, Prediction, PreparedModel, Snapshot
from omega_tui.core.models.registry import BUILTINS, ENTRY_POINT_GROUP, load_models

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "NO_VIEW",
    "Model",
    "OnlineModel",
    "Prediction",
    "PreparedModel",
    "Snapshot",
    "load_models",
]
