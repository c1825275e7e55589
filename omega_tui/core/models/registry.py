"""Build the model pool: built-ins by name, third-party models from the `omega_tui.models` entry points.

A plug-in is an entry point in that group whose name is the model's name and whose object is a model
instance or a zero-argument factory (a class) returning one. A plug-in that fails to import, to construct or
to look like a model is reported (one sentence in the returned errors, and the log) and skipped; it never
stops the engine.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Iterable

from omega_tui.core.models.base import FEATURES, Model
from omega_tui.core.models.builtin import EwmaMomentumModel, KnnAnalogModel, LogisticModel, MicropriceModel
from omega_tui.core.models.data import load_logistic_weights

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "omega_tui.models"


def _logistic() -> Model:
    return LogisticModel(load_logistic_weights())


BUILTINS: dict[str, Callable[[], Model]] = {
    "microprice": MicropriceModel,
    "ewma_momentum": EwmaMomentumModel,
    "logistic": _logistic,
    "knn_analog": KnnAnalogModel,
}


def validate_model(obj: object, expected_name: str) -> str:
    """Why `obj` cannot be used as the model `expected_name`, or "" when it can."""
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name:
        return "has no name"
    if name != expected_name:
        return f"calls itself {name!r}"
    feats = getattr(obj, "features", None)
    if not isinstance(feats, tuple | list) or not all(isinstance(f, str) for f in feats):
        return "does not declare its features as a tuple of names"
    unknown = sorted(set(feats) - FEATURES)
    if unknown:
        return f"needs unknown features {unknown}; allowed: {sorted(FEATURES)}"
    if not callable(getattr(obj, "predict", None)):
        return "has no predict(snapshot) method"
    hist = getattr(obj, "min_history", 1)
    if not isinstance(hist, int) or hist < 1:
        return "has a min_history that is not a positive integer"
    return ""


def _load_plugin(ep: importlib.metadata.EntryPoint) -> Model:
    target = ep.load()
    obj = target() if isinstance(target, type) or (callable(target) and not hasattr(target, "predict")) else target
    problem = validate_model(obj, ep.name)
    if problem:
        raise TypeError(problem)
    return obj  # type: ignore[no-any-return]


def plugin_entry_points(group: str = ENTRY_POINT_GROUP) -> dict[str, importlib.metadata.EntryPoint]:
    """The installed plug-ins by name (the first of duplicate names wins)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=group):
        found.setdefault(ep.name, ep)
    return found


def load_models(names: Iterable[str], group: str = ENTRY_POINT_GROUP) -> tuple[list[Model], list[str]]:
    """The models named in `names` in that order, and one error sentence per model that could not be used.

    Built-in names win over plug-ins of the same name. Heavy setup (`prepare`) is not run here.
    """
    models: list[Model] = []
    errors: list[str] = []
    plugins: dict[str, importlib.metadata.EntryPoint] | None = None
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        if name in BUILTINS:
            models.append(BUILTINS[name]())
            continue
        if plugins is None:
            try:
                plugins = plugin_entry_points(group)
            except Exception as exc:  # a broken distribution's metadata must not stop the engine
                errors.append(f"could not list {group} plug-ins: {type(exc).__name__}: {exc}")
                plugins = {}
        ep = plugins.get(name)
        if ep is None:
            errors.append(
                f"scheduler.models names {name!r}, which is neither a built-in ({', '.join(sorted(BUILTINS))}) "
                f"nor an installed {group} plug-in; it is skipped"
            )
            continue
        try:
            models.append(_load_plugin(ep))
        except Exception as exc:
            errors.append(f"model plug-in {name!r} ({ep.value}) is skipped: {type(exc).__name__}: {exc}")
    for err in errors:
        log.warning("%s", err)
    return models, errors
