"""Recompute the shipped model evaluation: `python -m omega_tui.core.models.evaluate [--out DIR]`.

Simulates a training session (seed 1) and a test session (seed 2) with `market.simulate`, fits the logistic
weights on the training session (IRLS, a few Newton steps), then scores every built-in model through its
real `predict` on test snapshots against the realised mid direction `HORIZON_TICKS` updates later (flat
outcomes are skipped). Accuracy is reported overall and per volatility tercile (thresholds from the training
session). Writes `model_accuracy.json` and `model_weights.json`; the same code and numpy give the same
files on every machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from omega_tui.core.models.base import Model
from omega_tui.core.models.builtin import EwmaMomentumModel, KnnAnalogModel, LogisticModel, MicropriceModel
from omega_tui.core.models.data import ACCURACY_FILE, WEIGHTS_FILE, data_dir
from omega_tui.core.models.features import NAMES, WINDOW, sliding, window_features
from omega_tui.core.models.market import DT_NS, HORIZON_TICKS, Session, simulate, snapshot_at

TRAIN_SEED, TRAIN_N = 1, 150_000
TEST_SEED, TEST_N = 2, 40_000
LOGVOL = NAMES.index("logvol")


def fit_logistic(x: NDArray[np.float64], y: NDArray[np.int64], steps: int = 12) -> NDArray[np.float64]:
    """Logistic regression by Newton steps (bias first); `y` holds −1/+1."""
    a = np.concatenate((np.ones((x.shape[0], 1)), x), axis=1)
    t = (y > 0).astype(np.float64)
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        grad = a.T @ (p - t)
        hess = (a * (p * (1.0 - p))[:, None]).T @ a + 1e-6 * np.eye(a.shape[1])
        w -= np.linalg.solve(hess, grad)
    return w


def training_set(session: Session) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    feats = window_features(sliding(session.mid), sliding(session.imbalance), session.tick)
    labels = session.labels(HORIZON_TICKS)[WINDOW - 1 :]
    keep = labels != 0
    return feats[keep], labels[keep]


def decision_points(session: Session, every: int) -> list[int]:
    """Updates where a decision is scored: enough history, a non-flat outcome, one every `every` updates."""
    labels = session.labels(HORIZON_TICKS)
    return [i for i in range(WINDOW - 1, session.n - HORIZON_TICKS, every) if labels[i] != 0]


def regime_of(logvol: float, thresholds: tuple[float, float]) -> int:
    """Volatility bucket 0 (calm), 1, 2 (volatile)."""
    return 0 if logvol < thresholds[0] else (1 if logvol < thresholds[1] else 2)


def score(model: Model, session: Session, points: list[int], thresholds: tuple[float, float]) -> dict[str, Any]:
    labels = session.labels(HORIZON_TICKS)
    hits = np.zeros(3)
    counts = np.zeros(3)
    for i in points:
        snap = snapshot_at(session, i)
        pred = model.predict(snap)
        lv = float(window_features(snap.mids, snap.imbalance, snap.tick)[LOGVOL])
        b = regime_of(lv, thresholds)
        counts[b] += 1
        hits[b] += pred.direction == labels[i]
    total = int(counts.sum())
    return {
        "accuracy": round(float(hits.sum() / total), 4),
        "samples": total,
        "buckets": [round(float(h / c), 4) if c else 0.5 for h, c in zip(hits, counts, strict=True)],
        "bucket_samples": [int(c) for c in counts],
    }


def evaluate(every: int = 9, log: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """The accuracy and weights documents (not written)."""
    t0 = time.perf_counter()
    train = simulate(TRAIN_SEED, TRAIN_N)
    x, y = training_set(train)
    weights = fit_logistic(x, y)
    lo, hi = np.quantile(x[:, LOGVOL], [1 / 3, 2 / 3])
    thresholds = (round(float(lo), 4), round(float(hi), 4))
    test = simulate(TEST_SEED, TEST_N)
    points = decision_points(test, every)
    models: list[Model] = [
        MicropriceModel(),
        EwmaMomentumModel(),
        LogisticModel(weights),
        KnnAnalogModel(memory_seed=TRAIN_SEED),
    ]
    results: dict[str, Any] = {}
    for model in models:
        results[model.name] = score(model, test, points, thresholds)
        if log:
            print(f"{model.name:15s} accuracy {results[model.name]['accuracy']:.4f} {results[model.name]}")
    accuracy = {
        "version": 1,
        "generated_by": "python -m omega_tui.core.models.evaluate",
        "data": {
            "simulator": "omega_tui.core.models.market.simulate",
            "train": {"seed": TRAIN_SEED, "updates": TRAIN_N},
            "test": {"seed": TEST_SEED, "updates": TEST_N, "every": every},
            "update_ms": DT_NS // 1_000_000,
            "horizon_updates": HORIZON_TICKS,
        },
        "regime_thresholds": list(thresholds),
        "models": results,
    }
    weights_doc = {"version": 1, "logistic": {"features": ["bias", *NAMES], "weights": [float(w) for w in weights]}}
    if log:
        print(f"evaluated in {time.perf_counter() - t0:.1f} s")
    return accuracy, weights_doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m omega_tui.core.models.evaluate", description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: the package data)")
    parser.add_argument("--every", type=int, default=9, help="score one test update in this many")
    args = parser.parse_args(argv)
    out = args.out or data_dir()
    out.mkdir(parents=True, exist_ok=True)
    accuracy, weights = evaluate(args.every)
    (out / ACCURACY_FILE).write_text(json.dumps(accuracy, indent=1) + "\n", encoding="utf-8")
    (out / WEIGHTS_FILE).write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out / ACCURACY_FILE} and {out / WEIGHTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
