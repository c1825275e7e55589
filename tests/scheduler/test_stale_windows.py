"""Stale latency windows: old samples age out, infeasible models are re-measured often, and replays agree."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from omega_tui.config import Settings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.decision import DecisionEngine
from omega_tui.core.hot_state import HotState
from omega_tui.core.models.base import Prediction, Snapshot
from omega_tui.core.models.data import ModelPrior, Priors
from omega_tui.core.models.market import Session
from omega_tui.core.replay import JsonlRecorder, replay
from omega_tui.core.scheduler import LatencyWindow, Scheduler
from tests.scheduler.conftest import ClockModel, Risk, instrument

MS = 1_000_000
S = 1_000_000_000
BUDGET = 4_500_000


def test_old_samples_age_out_once_newer_ones_come_but_the_warm_count_stays() -> None:
    w = LatencyWindow(512, 0.99, max_age_ns=2 * S, keep=99)
    for i in range(250):  # a warm-up with three preemptions in it
        w.add(6 * MS if i in (100, 180, 249) else 100_000, at_ns=i * 10_000)
    assert w.bound_ns > BUDGET and len(w) == 250
    for i in range(98):  # newer samples, but fewer than the warm count: the old ones are still needed
        w.add(100_000, at_ns=3 * S + i)
    assert len(w) == 99 and w.bound_ns > BUDGET  # aged down to the warm count, the last outlier still in it
    w.add(100_000, at_ns=3 * S + 98)
    assert len(w) == 99 and w.bound_ns == 100_000  # every sample older than 2 s has gone
    young = LatencyWindow(512, 0.99, max_age_ns=2 * S, keep=99)
    for i in range(300):  # all within the age: only the count limits the window
        young.add(100_000, at_ns=i * MS)
    assert len(young) == 300


def test_without_an_age_or_a_time_samples_leave_only_by_count() -> None:
    counted = LatencyWindow(512, 0.99)
    untimed = LatencyWindow(512, 0.99, max_age_ns=2 * S, keep=99)
    for w, at in ((counted, 0), (untimed, None)):
        for i in range(250):
            w.add(6 * MS if i in (20, 60, 100, 180, 240) else 100_000, at_ns=at)
        for i in range(200):
            w.add(100_000, at_ns=None if at is None else 10 * S + i)
        assert len(w) == 450 and w.bound_ns > BUDGET


def test_scheduler_fits_follows_the_aged_window_and_the_headroom() -> None:
    s = Settings().scheduler
    sched = Scheduler(s, ["a"])
    assert not sched.fits("a", BUDGET)  # no samples
    for i in range(256):
        sched.observe_latency("a", 6 * MS if i % 50 == 5 or i == 254 else 200_000, at_ns=i * MS)
    assert not sched.fits("a", BUDGET)
    later = (s.latency_max_age_ms + 300) * MS
    for i in range(s.window // 2 - 2):  # aged down to half a window (256), never below it: two outliers left
        sched.observe_latency("a", 200_000, at_ns=later + i)
    assert len(sched.latency["a"]) == s.window // 2 and not sched.fits("a", BUDGET)
    sched.observe_latency("a", 200_000, at_ns=later + s.window)  # one left: 2nd largest of 256 is the bound
    assert sched.fits("a", BUDGET) and sched.bound_ns("a") == 200_000
    sched.headroom.fraction = 0.99
    assert not sched.fits("a", BUDGET)


def _engine(clock: FakeClock, hot_state: HotState, models: list[Any], recorder: Any = None) -> DecisionEngine:
    priors = Priors({"fast": ModelPrior(0.55, 1000), "accurate": ModelPrior(0.65, 1000)})
    return DecisionEngine(
        Settings(), clock, EventBus(), hot_state, {"SIM": instrument()}, Risk().submit, lambda _k: 0,
        models=models, priors=priors, recorder=recorder, calibrate=False,
    )  # fmt: skip


async def _polluted_session(
    clock: FakeClock, hot_state: HotState, session: Session, recorder: Any = None
) -> tuple[DecisionEngine, list[str | None], ClockModel, ClockModel]:
    """Both models warm; the accurate one's warm-up caught five preemptions (more than a full window of 512
    tolerates at q = 0.99, so more samples alone never make it fit again). Then 3 s of idle calibration
    (every 5 ms of fake time) with a decision every 250 ms."""
    fast, accurate = ClockModel("fast", clock, 20_000), ClockModel("accurate", clock, 300_000)
    engine = _engine(clock, hot_state, [fast, accurate], recorder)
    for i in range(256):
        engine._observe("fast", 20_000)
        engine._observe("accurate", 6 * MS if i in (10, 50, 120, 200, 250) else 300_000)
    choices: list[str | None] = []
    for step in range(600):
        if step % 50 == 0:
            hot_state.put_quote(session.quote(100 + step // 50))
            choices.append((await engine.decide("SIM")).choice.model)
        clock.advance(ns=5 * MS)
        await engine.calibrate_once()
    hot_state.put_quote(session.quote(200))
    choices.append((await engine.decide("SIM")).choice.model)
    return engine, choices, fast, accurate


async def test_a_window_polluted_by_preemptions_recovers_within_seconds(
    hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    engine, choices, fast, accurate = await _polluted_session(fake_clock, hot_state, session)
    assert choices[0] == "fast"  # five 6 ms samples in 256: the accurate model does not fit
    # …until they aged out (2 s, one decision every 250 ms), having been re-measured every 6 ms (20 × its
    # 0.3 ms median) meanwhile; the fast model, which fits, only at the 1 s refresh.
    assert choices.index("accurate") in (8, 9) and set(choices[9:]) == {"accurate"}
    assert accurate.calls >= 150 and fast.calls <= 4 + choices.count("fast")
    assert engine.core is not None and engine.core.scheduler.headroom.missed == 0


async def test_frequent_probes_are_recorded_and_the_replay_reproduces_the_aged_choices(
    tmp_path: Path, hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    path = tmp_path / "rec.jsonl"
    recorder = JsonlRecorder(path, ["fast", "accurate"])
    engine, choices, _, _ = await _polluted_session(fake_clock, hot_state, session, recorder)
    recorder.close()
    assert set(choices) == {"fast", "accurate"}  # aging changed the choice during the session

    def run(p: Path) -> list[str]:
        models = [ClockModel("fast", FakeClock(), 20_000), ClockModel("accurate", FakeClock(), 300_000)]
        assert engine.core is not None
        result = replay(p, Settings(), {"SIM": instrument()}, models, engine.core.priors)
        return result.mismatches

    assert run(path) == [] and run(path) == []
    # The sample times are what make it replayable: without them the windows never age and choices differ.
    stripped = tmp_path / "untimed.jsonl"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["t"] == "l":
            rec.pop("at", None)
        lines.append(json.dumps(rec))
    stripped.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert any("live chose accurate" in m for m in run(stripped))


class ThreadModel:
    """A model that runs in its worker thread and answers at once."""

    inline = False
    features: tuple[str, ...] = ("quote",)
    min_history = 1
    name = "threaded"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, snapshot: Snapshot) -> Prediction:
        self.calls += 1
        return Prediction(1, 0.9)


async def test_a_thread_probe_is_not_started_just_before_a_decision(hot_state: HotState, fake_clock: FakeClock) -> None:
    model = ThreadModel()
    engine = _engine(fake_clock, hot_state, [model])
    try:
        for _ in range(256):
            engine._observe("threaded", 6 * MS)  # warm, and infeasible: due every 5 ms
        loop = asyncio.get_running_loop()
        engine._next_decision_s = loop.time() + 0.001  # a decision 1 ms away; the probe may take 12 ms
        fake_clock.advance(ns=10 * MS)
        assert await engine.calibrate_once() == 0 and model.calls == 0
        engine._next_decision_s = loop.time() + 1.0
        assert await engine.calibrate_once() == 1 and model.calls == 1
    finally:
        for lane in engine.lanes.values():
            lane.close()
