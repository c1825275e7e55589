"""The decision loop: deadlines, hard timeouts, discarding late answers, metrics, plug-in loading."""

from __future__ import annotations

import asyncio
import importlib.metadata
import threading
from typing import Any

import numpy as np
import pytest

from omega_tui.config import Settings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock, SystemClock
from omega_tui.core.decision import DecisionEngine
from omega_tui.core.hot_state import HotState
from omega_tui.core.models import registry
from omega_tui.core.models.base import Prediction, Snapshot
from omega_tui.core.models.data import ModelPrior, Priors
from omega_tui.core.models.market import Session
from tests.scheduler.conftest import ClockModel, Risk, instrument

MS = 1_000_000


def _engine(settings: Settings, clock: Any, hot_state: HotState, models: list[Any], risk: Risk,
            priors: Priors | None = None) -> DecisionEngine:  # fmt: skip
    return DecisionEngine(
        settings, clock, EventBus(), hot_state, {"SIM": instrument()}, risk.submit, lambda _k: 0,
        models=models, priors=priors or Priors(), calibrate=False,
    )  # fmt: skip


def _warm(engine: DecisionEngine, name: str, ns: int, n: int = 120) -> None:
    for _ in range(n):
        engine._observe(name, ns)


async def test_fast_model_answers_on_time_and_an_intent_is_submitted(
    settings: Settings, hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    risk = Risk()
    engine = _engine(settings, fake_clock, hot_state, [ClockModel("fast", fake_clock, 100_000)], risk)
    _warm(engine, "fast", 100_000)
    hot_state.put_quote(session.quote(100))
    outcome = await engine.decide("SIM")
    assert outcome.status == "ok" and outcome.choice.model == "fast"
    assert outcome.intent is not None and risk.intents == [outcome.intent]
    assert outcome.intent.model == "fast" and outcome.intent.intent_id == f"sig-SIM-{outcome.decision_seq}"


async def test_late_answer_is_discarded_and_counted_as_a_miss(
    settings: Settings, hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    risk = Risk()
    model = ClockModel("slowpoke", fake_clock, 1 * MS)
    engine = _engine(settings, fake_clock, hot_state, [model], risk)
    _warm(engine, "slowpoke", 1 * MS)  # its history says 1 ms, so it is feasible
    model.latency_ns = 7 * MS  # …but this time it takes 7 ms of a 4.5 ms budget
    hot_state.put_quote(session.quote(100))
    outcome = await engine.decide("SIM")
    assert outcome.choice.model == "slowpoke"
    assert outcome.status == "late" and outcome.intent is None and risk.intents == []
    assert engine.core is not None
    counters = engine.core.metrics.models["slowpoke"]
    assert counters.late == 1 and counters.answered == 0
    assert engine.core.scheduler.latency["slowpoke"]._fifo[-1] == 7 * MS  # the real latency still counts


async def test_model_without_a_fitting_bound_is_never_run(
    settings: Settings, hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    risk = Risk()
    slow = ClockModel("slow", fake_clock, 6 * MS)
    engine = _engine(settings, fake_clock, hot_state, [slow], risk)
    _warm(engine, "slow", 6 * MS)
    hot_state.put_quote(session.quote(100))
    outcome = await engine.decide("SIM")
    assert outcome.status == "abstain" and slow.calls == 0 and risk.intents == []


async def test_decision_abstains_during_warm_up(
    settings: Settings, hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    engine = _engine(settings, fake_clock, hot_state, [ClockModel("fast", fake_clock, 1000)], Risk())
    _warm(engine, "fast", 1000, n=98)  # one short of a finite 0.99 conformal bound
    hot_state.put_quote(session.quote(100))
    assert (await engine.decide("SIM")).status == "abstain"
    engine._observe("fast", 1000)
    assert (await engine.decide("SIM")).status == "ok"


class BlockingModel:
    """A worker-thread model that blocks until released (a hung model)."""

    name = "hung"
    features: tuple[str, ...] = ("quote",)
    inline = False

    def __init__(self) -> None:
        self.release = threading.Event()

    def predict(self, snapshot: Snapshot) -> Prediction:
        self.release.wait(5)
        return Prediction(1, 0.9)


async def test_hard_timeout_abandons_a_hung_model_and_blocks_its_lane(
    settings: Settings, hot_state: HotState, session: Session
) -> None:
    clock = SystemClock()
    model = BlockingModel()
    risk = Risk()
    # A roomy 50 ms deadline, so a busy test machine cannot turn the first decision into an abstention.
    settings = Settings(scheduler={"deadline_ms": 50.0})
    engine = _engine(settings, clock, hot_state, [model], risk)
    _warm(engine, "hung", 100_000)
    hot_state.put_quote(session.quote(100))
    outcome = await engine.decide("SIM")
    assert outcome.status == "timeout" and risk.intents == []
    # While the hung run occupies its lane past its bound, the model is infeasible: abstain, no queueing.
    assert (await engine.decide("SIM")).status == "abstain"
    model.release.set()
    for _ in range(200):
        await asyncio.sleep(0.005)
        if engine.lanes["hung"].inflight == 0:
            break
    assert engine.core is not None
    assert engine.core.scheduler.latency["hung"]._fifo[-1] > 49 * MS  # the late run's real latency is recorded
    await engine.stop()


async def test_accuracy_prior_picks_the_better_model_and_metrics_are_published(
    settings: Settings, hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    priors = Priors({"a": ModelPrior(0.55, 1000), "b": ModelPrior(0.65, 1000)})
    engine = _engine(settings, fake_clock, hot_state, [ClockModel("a", fake_clock, 10_000),
                                                      ClockModel("b", fake_clock, 2 * MS)], Risk(), priors)  # fmt: skip
    _warm(engine, "a", 10_000)
    _warm(engine, "b", 2 * MS)
    hot_state.put_quote(session.quote(100))
    outcome = await engine.decide("SIM")
    assert outcome.choice.model == "b"
    engine.publish(force=True)
    view = hot_state.get("scheduler")
    assert view["decisions"] == 1 and view["deadline_ms"] == settings.scheduler.deadline_ms
    by_name = {m["name"]: m for m in view["models"]}
    assert by_name["b"]["selection_share"] == 1.0 and by_name["b"]["bound_us"] == 2000.0


async def test_online_accuracy_updates_as_predictions_mature(
    settings: Settings, hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    engine = _engine(settings, fake_clock, hot_state, [ClockModel("up", fake_clock, 1000, direction=1)], Risk())
    _warm(engine, "up", 1000)
    labels = session.labels(10)
    decided = []
    for i in range(100, 400):
        hot_state.put_quote(session.quote(i))
        if i % 10 == 0:
            await engine.decide("SIM")
            decided.append(i)
    assert engine.core is not None
    c = engine.core.metrics.models["up"]
    matured = [i for i in decided if i + 10 <= 399 and labels[i] != 0]
    assert c.scored == len(matured)
    assert c.correct == sum(1 for i in matured if labels[i] > 0)


async def test_calibration_warms_up_every_model_off_the_hot_path(
    settings: Settings, hot_state: HotState, session: Session
) -> None:
    from omega_tui.core.models.builtin import EwmaMomentumModel, LogisticModel, MicropriceModel

    engine = _engine(settings, SystemClock(), hot_state, [MicropriceModel(), EwmaMomentumModel(), LogisticModel()],
                     Risk())  # fmt: skip
    assert engine.core is not None
    warm = engine.core.scheduler.warm_samples
    for _ in range(warm):
        await engine.calibrate_once()
    assert all(len(w) >= warm for w in engine.core.scheduler.latency.values())
    assert all(np.isfinite(w.bound_ns) for w in engine.core.scheduler.latency.values())
    await engine.stop()


class _EP:
    """A stand-in for importlib.metadata.EntryPoint."""

    def __init__(self, name: str, value: str, target: Any) -> None:
        self.name, self.value, self.group, self._target = name, value, "omega_tui.models", target

    def load(self) -> Any:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


class GoodPlugin:
    name = "good"
    features: tuple[str, ...] = ("mids",)

    def predict(self, snapshot: Snapshot) -> Prediction:
        return Prediction(1, 0.6)


class NoPredict:
    name = "nopredict"
    features: tuple[str, ...] = ("mids",)


def test_plugins_load_through_entry_points_and_broken_ones_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        _EP("good", "thirdparty:GoodPlugin", GoodPlugin),
        _EP("broken", "thirdparty.missing:Model", ImportError("No module named 'thirdparty.missing'")),
        _EP("nopredict", "thirdparty:NoPredict", NoPredict),
    ]

    def fake_entry_points(**kw: Any) -> list[_EP]:
        assert kw == {"group": "omega_tui.models"}
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    models, errors = registry.load_models(["microprice", "good", "broken", "nopredict", "absent"])
    assert [m.name for m in models] == ["microprice", "good"]
    assert len(errors) == 3
    assert any("'broken'" in e and "ImportError" in e for e in errors)
    assert any("'nopredict'" in e and "predict" in e for e in errors)
    assert any("'absent'" in e for e in errors)


async def test_engine_starts_with_a_broken_plugin_reported(
    monkeypatch: pytest.MonkeyPatch, hot_state: HotState, fake_clock: FakeClock
) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [_EP("bad", "x:y", RuntimeError("boom"))])
    settings = Settings(scheduler={"models": ["microprice", "bad"]})
    engine = DecisionEngine(settings, fake_clock, EventBus(), hot_state, {"SIM": instrument()}, Risk().submit,
                            lambda _k: 0, priors=Priors(), calibrate=False)  # fmt: skip
    await engine.start()
    try:
        assert engine.core is not None and list(engine.core.models) == ["microprice"]
        assert engine.state.value == "DEGRADED" and "bad" in engine.detail
    finally:
        await engine.stop()


class RandomLatencyModel:
    """An inline model whose every run takes a seeded random latency of fake-clock time."""

    inline = True
    features: tuple[str, ...] = ("quote",)

    def __init__(self, name: str, clock: FakeClock, lo_ns: int, hi_ns: int, seed: int) -> None:
        self.name, self.clock, self.lo, self.hi = name, clock, lo_ns, hi_ns
        self.rng = np.random.default_rng(seed)

    def predict(self, snapshot: Snapshot) -> Prediction:
        self.clock.advance(ns=int(self.rng.integers(self.lo, self.hi)))
        return Prediction(1, 0.9)


async def test_adding_slower_more_accurate_models_never_causes_a_deadline_miss(
    settings: Settings, state_dir: Any, session: Session
) -> None:
    specs = [("fast", 5_000, 50_000, 0.55), ("medium", 200_000, 1 * MS, 0.60),
             ("slow_fits", 2 * MS, 4_400_000, 0.65), ("too_slow", 3 * MS, 9 * MS, 0.70)]  # fmt: skip
    priors = Priors({name: ModelPrior(acc, 1000) for name, _lo, _hi, acc in specs})
    chosen_accuracy = []
    for size in range(1, len(specs) + 1):
        clock = FakeClock()
        hs = HotState(state_dir / f"pool{size}")
        models = [RandomLatencyModel(n, clock, lo, hi, seed=i) for i, (n, lo, hi, _a) in enumerate(specs[:size])]
        engine = _engine(settings, clock, hs, models, Risk(), priors)
        for _ in range(settings.scheduler.window):  # warm-up: every model measured off the hot path
            for lane in engine.lanes.values():
                t = clock.monotonic_ns()
                lane.model.predict(None)  # type: ignore[arg-type]
                engine._observe(lane.model.name, clock.monotonic_ns() - t)
        outcomes = []
        for i in range(100, 400):
            hs.put_quote(session.quote(i))
            outcomes.append(await engine.decide("SIM"))
        assert [o.status for o in outcomes if o.status != "ok"] == []  # no late answer, no abstention
        names = {o.choice.model for o in outcomes}
        assert "too_slow" not in names
        chosen_accuracy.append(max(priors.models[n].accuracy for n in names if n))
        hs.close()
    assert chosen_accuracy == sorted(chosen_accuracy) and chosen_accuracy[-1] == 0.65


async def test_a_round_gives_the_loop_back_between_decisions_once_a_slice_has_run(
    settings: Settings, hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    """A kill switch queued while a long round runs is taken within about one slice, not after the round."""
    from omega_tui.core.decision import ROUND_SLICE_NS

    keys = [f"S{i}" for i in range(12)]
    risk = Risk()
    model = ClockModel("fast", fake_clock, ROUND_SLICE_NS // 2)  # two decisions fill a slice
    engine = DecisionEngine(
        settings, fake_clock, EventBus(), hot_state, {k: instrument(k) for k in keys}, risk.submit, lambda _k: 0,
        models=[model], priors=Priors(), calibrate=False,
    )  # fmt: skip
    _warm(engine, "fast", ROUND_SLICE_NS // 2)
    for key in keys:
        hot_state.put_quote(session.quote(100, key=key))
    calls_when_taken: list[int] = []
    in_round: list[bool] = []

    def urgent() -> None:  # as `Runtime.submit` queues a Halt from the control thread
        calls_when_taken.append(model.calls)
        in_round.append(engine._in_round)

    asyncio.get_running_loop().call_soon(urgent)
    outcomes = await engine.run_round()
    assert [o.status for o in outcomes] == ["ok"] * len(keys)
    assert calls_when_taken and calls_when_taken[0] < 4, calls_when_taken  # after the first slice, not the round
    assert in_round == [True]  # …and the calibrator still sees the round as running
    assert not engine._in_round
