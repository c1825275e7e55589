"""AI off the hot path: regime detection and parameter tuning as background tasks (checklist §5).

`AiTasks` samples mids from the hot state, and every `interval_s` runs `tune` (numpy, in a worker thread)
and publishes the result as a new VERSION of the hot state's `params` section:

    {"version": int, "published_utc": str, "source": "ai:regime+tuning",
     "per_key": {key: {"regime": 0|1|2, "logvol": float, "regime_thresholds": [lo, hi],
                       "stop_loss_ticks": int, "take_profit_ticks": int, "min_confidence": float}}}

The decision engine reads the last published version and never waits for this task. A failing `tune` is
logged and counted, the component turns DEGRADED and the last version stays in force; with the task stopped
(or never started) trading runs on the last published or the default parameters.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from omega_tui.config import Settings
from omega_tui.core.clock import Clock
from omega_tui.core.component import Component
from omega_tui.core.hot_state import HotState
from omega_tui.core.types import ComponentState, VerifiedInstrument

log = logging.getLogger(__name__)

TuneFn = Callable[[Mapping[str, list[float]], Mapping[str, float], Settings], dict[str, dict[str, Any]]]
VOL_WINDOW = 60  # mids per realised-volatility estimate, as in the model features
HORIZON_UPDATES = 10


def _logvols(mids: np.ndarray[Any, np.dtype[np.float64]], tick: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    r = np.diff(mids) / tick
    if r.shape[0] < VOL_WINDOW:
        return np.empty(0)
    sq = np.lib.stride_tricks.sliding_window_view(r * r, VOL_WINDOW).mean(axis=1)
    return np.asarray(np.log(np.sqrt(sq) + 0.05), dtype=np.float64)


def tune(
    history: Mapping[str, list[float]], ticks: Mapping[str, float], settings: Settings
) -> dict[str, dict[str, Any]]:
    """Regime and signal parameters per instrument from its sampled mids (pure; heavy math, run in a thread).

    Regime: the current log realised volatility against the terciles of its own history. Stops scale with
    volatility over the scoring horizon (3 σ, at least 5 ticks), take-profit at 1.5 × the stop, and the
    confidence bar rises by 0.02 per regime bucket above calm.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, mids in history.items():
        tick = ticks.get(key, 0.0)
        if tick <= 0 or len(mids) < VOL_WINDOW + 2:
            continue
        lv = _logvols(np.asarray(mids, dtype=np.float64), tick)
        current = float(lv[-1])
        entry: dict[str, Any] = {"logvol": round(current, 4)}
        if lv.shape[0] >= 3 * VOL_WINDOW:
            lo, hi = (float(x) for x in np.quantile(lv, [1 / 3, 2 / 3]))
            entry["regime_thresholds"] = [round(lo, 4), round(hi, 4)]
            entry["regime"] = 0 if current < lo else (1 if current < hi else 2)
        else:
            entry["regime"] = 1
        sigma_h = (math.exp(current) - 0.05) * math.sqrt(HORIZON_UPDATES)
        stop = max(5, round(3.0 * sigma_h))
        entry["stop_loss_ticks"] = int(stop)
        entry["take_profit_ticks"] = round(1.5 * stop)
        entry["min_confidence"] = round(min(0.95, settings.signals.min_confidence + 0.02 * entry["regime"]), 4)
        out[key] = entry
    return out


class AiTasks(Component):
    """Background regime detection and parameter tuning publishing versioned `params` (see module doc)."""

    name = "ai"

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        hot_state: HotState,
        instruments: Mapping[str, VerifiedInstrument],
        *,
        interval_s: float = 5.0,
        sample_ms: float = 100.0,
        max_samples: int = 4096,
        tune_fn: TuneFn = tune,
    ) -> None:
        super().__init__(clock)
        self.settings = settings
        self.hot_state = hot_state
        self.instruments = dict(instruments)
        self.interval_s = interval_s
        self.sample_s = sample_ms / 1000.0
        self._tune = tune_fn
        self._max_samples = max_samples
        self._mids: dict[str, deque[float]] = {k: deque(maxlen=max_samples) for k in self.instruments}
        self._seen: dict[str, int] = {}
        self.failures = 0
        self.published = 0

    def set_instruments(self, instruments: Mapping[str, VerifiedInstrument]) -> None:
        """The verified instruments (known only once the broker has verified them at startup)."""
        self.instruments = dict(instruments)
        self._mids = {k: self._mids.get(k, deque(maxlen=self._max_samples)) for k in self.instruments}

    def sample(self) -> None:
        """Take the current mid of every instrument that has a new usable quote (cheap; on the loop)."""
        for key, buf in self._mids.items():
            q = self.hot_state.quote(key)
            if q is None or q.seq == self._seen.get(key) or q.bid is None or q.ask is None or q.bid >= q.ask:
                continue
            self._seen[key] = q.seq
            buf.append(float(q.bid + q.ask) / 2.0)

    async def run_once(self) -> int | None:
        """Tune in a worker thread and publish; returns the new version, or None when tuning failed."""
        history = {k: list(v) for k, v in self._mids.items()}
        ticks = {k: float(inst.min_tick) for k, inst in self.instruments.items()}
        try:
            per_key = await asyncio.to_thread(self._tune, history, ticks, self.settings)
        except Exception as exc:
            self.failures += 1
            log.exception("parameter tuning failed; the last published parameters stay in force")
            self.set_state(ComponentState.DEGRADED, f"tuning failed ({type(exc).__name__}: {exc}); last params kept")
            return None
        prev = self.hot_state.get("params")
        version = (int(prev.get("version", 0)) if isinstance(prev, Mapping) else 0) + 1
        self.hot_state.set(
            "params",
            {
                "version": version,
                "published_utc": self.clock.now_utc().isoformat(),
                "source": "ai:regime+tuning",
                "per_key": per_key,
            },
        )
        self.published += 1
        if self.state is ComponentState.DEGRADED:
            self.set_state(ComponentState.RUNNING, f"params v{version}")
        return version

    async def on_start(self) -> None:
        self.spawn(self._sampler(), "sample")
        self.spawn(self._tuner(), "tune")

    async def _sampler(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.sample_s)

    async def _tuner(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.run_once()
