"""Deadline misses: the budget counts from the decision's start up to the choice, bookkeeping runs after the
decision, and the headroom adapts to observed misses (and is rebuilt exactly by a replay)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from omega_tui.config import SchedulerSettings, Settings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import FakeClock
from omega_tui.core.decision import DecisionCore, DecisionEngine, Prepared, fixed_policy
from omega_tui.core.hot_state import HotState
from omega_tui.core.models.base import Prediction, Snapshot
from omega_tui.core.models.data import ModelPrior, Priors
from omega_tui.core.models.market import Session
from omega_tui.core.replay import JsonlRecorder, replay
from omega_tui.core.scheduler import Headroom, ModelStat, Scheduler, SchedulerSnapshot, choose
from omega_tui.core.signals import TradingParams
from tests.scheduler.conftest import ClockModel, Risk, instrument

MS = 1_000_000
BUDGET = 4_500_000  # the default deadline less the default reserve


def _engine(settings: Settings, clock: FakeClock, hot_state: HotState, models: list[Any], priors: Priors,
            recorder: Any = None) -> DecisionEngine:  # fmt: skip
    return DecisionEngine(
        settings, clock, EventBus(), hot_state, {"SIM": instrument()}, Risk().submit, lambda _k: 0,
        models=models, priors=priors, recorder=recorder, calibrate=False,
    )  # fmt: skip


def _warm(engine: DecisionEngine, name: str, ns: int, n: int = 120) -> None:
    for _ in range(n):
        engine._observe(name, ns)


def test_headroom_grows_on_a_miss_and_gives_room_back_on_met_decisions() -> None:
    h = Headroom(BUDGET, target=0.005, step=0.2)
    h.update(True)
    assert h.fraction == 0.2 * (1 - 0.005) and h.margin_ns == h.fraction * BUDGET
    for _ in range(10):
        h.update(False)
    assert abs(h.fraction - 0.2 * (1 - 0.005) + 10 * 0.2 * 0.005) < 1e-12
    for _ in range(10_000):
        h.update(False)
    assert h.fraction == 0.0 and (h.met, h.missed) == (10_010, 1)
    off = Headroom(BUDGET, target=0.005, step=0.0)
    off.update(True)
    assert off.margin_ns == 0.0


def test_a_model_that_fits_the_budget_but_not_the_headroom_is_not_chosen() -> None:
    models = (ModelStat("fast", 500, 50_000, 0.0, 0.55), ModelStat("edge", 500, 4_000_000, 0.0, 0.65))
    assert choose(SchedulerSnapshot(BUDGET, 1, 20, models)).model == "edge"
    assert choose(SchedulerSnapshot(BUDGET, 1, 20, models, margin_ns=900_000)).model == "fast"
    assert choose(SchedulerSnapshot(BUDGET, 1, 20, models, margin_ns=BUDGET)).model is None


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), late_share=st.floats(0.02, 0.9), step=st.sampled_from([0.05, 0.2, 0.5]))
def test_misses_over_any_stretch_stay_within_the_headroom_guarantee(seed: int, late_share: float, step: float) -> None:
    """Models whose history says they fit, but that overrun the deadline at random (a load the windows have not
    caught up with). Over every stretch of L decisions, misses ≤ α*·L + 1/η + 1, whatever the latencies."""
    target = 0.005
    sched = Scheduler(SchedulerSettings(headroom_step=step, miss_target=target), ["a", "b"], Priors())
    rng = random.Random(seed)
    for _ in range(200):
        sched.observe_latency("a", rng.randint(10_000, 60_000))
        sched.observe_latency("b", rng.randint(1 * MS, 3 * MS))
    misses: list[int] = []
    for _ in range(600):
        choice = choose(sched.snapshot(BUDGET - rng.randint(0, 300_000), 1, {}))
        missed = choice.model is not None and rng.random() < late_share  # an overrun past the deadline
        sched.record_deadline(missed)
        misses.append(int(missed))
    # max over stretches i..j of misses − α*·(j − i), by a running minimum of the prefix (misses − α*·n).
    excess, lowest, running = -1.0, 0.0, 0.0
    for m in misses:
        running += m - target
        excess = max(excess, running - lowest)
        lowest = min(lowest, running)
    assert excess <= 1 / step + 1
    total_bound = target * len(misses) + 1 / step + 1
    if total_bound < 0.5 * late_share * len(misses):  # without the headroom every decision would risk it
        assert sum(misses) < 0.5 * late_share * len(misses)


class StallingPrepare(DecisionCore):
    """A core whose `prepare` takes `stall_ns` of fake-clock time (the process preempted before the choice)."""

    clock: FakeClock
    stall_ns = 0

    def prepare(self, key: str, at_ns: int, params: TradingParams) -> Prepared:
        self.clock.advance(ns=self.stall_ns)
        return super().prepare(key, at_ns, params)


async def test_time_lost_before_the_choice_comes_off_the_budget(
    hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    priors = Priors({"fast": ModelPrior(0.55, 1000), "slow": ModelPrior(0.65, 1000)})
    models = [ClockModel("fast", fake_clock, 20_000), ClockModel("slow", fake_clock, 2 * MS)]
    engine = _engine(Settings(), fake_clock, hot_state, models, priors)
    assert engine.core is not None
    core = StallingPrepare(engine.settings, engine.instruments, models, priors)
    core.clock = fake_clock
    engine.core = core
    _warm(engine, "fast", 20_000)
    _warm(engine, "slow", 2 * MS)
    hot_state.put_quote(session.quote(100))
    assert (await engine.decide("SIM")).choice.model == "slow"
    core.stall_ns = 3 * MS  # only 1.5 ms left when the choice is made: the slow model no longer fits
    outcome = await engine.decide("SIM")
    assert outcome.choice.model == "fast" and outcome.status == "ok"
    core.stall_ns = 5 * MS  # nothing left: abstain, which meets the deadline
    assert (await engine.decide("SIM")).status == "abstain"


class StallingRecorder:
    """A recorder whose `decision` (called between the choice and the dispatch) takes `stall_ns` of fake time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.stall_ns = clock, 0

    def quote(self, quote: Any) -> None: ...

    def latency(self, model: str, ns: int, at_ns: int | None = None) -> None: ...

    def params(self, version: int, view: Any) -> None: ...

    def decision(self, *args: Any) -> None:
        self.clock.advance(ns=self.stall_ns)

    def done(self, *args: Any) -> None: ...


async def test_a_model_that_no_longer_fits_at_dispatch_is_not_started(
    hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    priors = Priors({"fast": ModelPrior(0.55, 1000), "slow": ModelPrior(0.65, 1000)})
    slow = ClockModel("slow", fake_clock, 2 * MS)
    recorder = StallingRecorder(fake_clock)
    engine = _engine(Settings(), fake_clock, hot_state, [ClockModel("fast", fake_clock, 20_000), slow], priors,
                     recorder)  # fmt: skip
    _warm(engine, "fast", 20_000)
    _warm(engine, "slow", 2 * MS)
    hot_state.put_quote(session.quote(100))
    recorder.stall_ns = 3 * MS  # lost after the choice: 2 ms of model would end 0.5 ms past the budget
    outcome = await engine.decide("SIM")
    assert outcome.choice.model == "slow" and outcome.status == "abstain" and slow.calls == 0
    assert engine.core is not None and engine.core.scheduler.headroom.missed == 0
    engine.publish(force=True)
    view = hot_state.get("scheduler")
    assert view["abstain_rate"] == 1.0 and {m["name"]: m["selection_share"] for m in view["models"]}["slow"] == 0
    recorder.stall_ns = 1 * MS  # 1 + 2 ms still fits: it runs, on time
    assert (await engine.decide("SIM")).status == "ok" and slow.calls == 1
    # A baseline policy that ignores feasibility is not second-guessed at dispatch: its choice runs.
    fixed = DecisionEngine(
        Settings(), fake_clock, EventBus(), hot_state, {"SIM": instrument()}, Risk().submit, lambda _k: 0,
        models=[slow], priors=priors, recorder=recorder, policy=fixed_policy("slow"), calibrate=False,
    )  # fmt: skip
    recorder.stall_ns = 3 * MS
    assert (await fixed.decide("SIM")).status == "late" and slow.calls == 2


async def test_the_measured_dispatch_delay_is_set_aside_from_the_budget_the_choice_sees(
    hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    priors = Priors({"fast": ModelPrior(0.55, 1000), "edge": ModelPrior(0.65, 1000)})
    recorder = StallingRecorder(fake_clock)
    recorder.stall_ns = 200_000  # every dispatch takes 0.2 ms after the budget is taken
    models = [ClockModel("fast", fake_clock, 20_000), ClockModel("edge", fake_clock, 4_350_000)]
    engine = _engine(Settings(), fake_clock, hot_state, models, priors, recorder)
    _warm(engine, "fast", 20_000)
    _warm(engine, "edge", 4_350_000)  # fits 4.5 ms, not 4.5 − 0.2
    outcomes = []
    for i in range(100, 230):
        hot_state.put_quote(session.quote(i))
        outcomes.append(await engine.decide("SIM"))
    # Until the delay has 100 samples, the edge model is chosen and caught at dispatch…
    assert {(o.choice.model, o.status) for o in outcomes[:100]} == {("edge", "abstain")}
    # …then the choice itself leaves it out.
    assert {(o.choice.model, o.status) for o in outcomes[100:]} == {("fast", "ok")}
    assert engine.core is not None and engine.core.scheduler.headroom.missed == 0
    engine.publish(force=True)
    assert hot_state.get("scheduler")["dispatch_allowance_us"] == 200.0


async def test_rare_dispatch_stalls_never_take_the_whole_budget(
    hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    """One decision in 20 loses 5 ms after its choice: those abstain at dispatch, the others still run."""
    recorder = StallingRecorder(fake_clock)
    model = ClockModel("fast", fake_clock, 20_000)
    engine = _engine(Settings(), fake_clock, hot_state, [model], Priors(), recorder)
    _warm(engine, "fast", 20_000)
    statuses = []
    for i in range(100, 500):
        hot_state.put_quote(session.quote(i))
        recorder.stall_ns = 5 * MS if i % 20 == 0 else 10_000
        statuses.append((await engine.decide("SIM")).status)
    assert [i for i, s in enumerate(statuses) if s != "ok"] == list(range(0, 400, 20))


class SlowLearner(ClockModel):
    """An online model whose learning step takes 3 ms of fake-clock time."""

    def learn(self, snapshot: Snapshot, outcome: int) -> None:
        self.clock.advance(ns=3 * MS)


async def test_maturation_and_online_learning_run_after_the_decision_not_in_its_deadline(
    hot_state: HotState, fake_clock: FakeClock, session: Session
) -> None:
    model = SlowLearner("learner", fake_clock, 2 * MS)
    engine = _engine(Settings(signals={"cooldown_s": 0.0}), fake_clock, hot_state, [model], Priors())
    _warm(engine, "learner", 2 * MS)
    statuses = []
    for i in range(100, 300):
        hot_state.put_quote(session.quote(i))
        if i % 5 == 0:
            statuses.append((await engine.decide("SIM")).status)
    assert engine.core is not None and engine.core.metrics.models["learner"].scored > 10  # learning did run
    assert set(statuses) == {"ok"}  # 2 ms of model + 3 ms of learning would miss a 4.5 ms budget


class ScheduledModel:
    """An inline model that takes 1 ms of fake-clock time, except on listed calls where it takes 8 ms."""

    inline = True
    features: tuple[str, ...] = ("quote",)

    def __init__(self, name: str, clock: FakeClock, late_calls: set[int], base_ns: int) -> None:
        self.name, self.clock, self.late_calls, self.base_ns = name, clock, late_calls, base_ns
        self.calls = 0

    def predict(self, snapshot: Snapshot) -> Prediction:
        self.calls += 1
        self.clock.advance(ns=8 * MS if self.calls in self.late_calls else self.base_ns)
        return Prediction(1 if snapshot.quote.seq % 3 else -1, 0.9)


async def test_engine_headroom_follows_misses_and_a_replay_rebuilds_it_exactly(
    tmp_path: Path, hot_state: HotState, session: Session
) -> None:
    settings = Settings(signals={"cooldown_s": 0.0})
    priors = Priors({"quick": ModelPrior(0.55, 1000), "edge": ModelPrior(0.65, 1000)})
    clock = FakeClock()
    path = tmp_path / "rec.jsonl"
    recorder = JsonlRecorder(path, ["quick", "edge"])
    models = [ScheduledModel("quick", clock, set(), 20_000), ScheduledModel("edge", clock, {3, 40, 41}, 3_800_000)]
    engine = _engine(settings, clock, hot_state, models, priors, recorder)
    _warm(engine, "quick", 20_000, 512)
    _warm(engine, "edge", 3_800_000, 512)  # a full window: one late run does not move its 0.99 bound
    outcomes = []
    for i in range(100, 1600):
        hot_state.put_quote(session.quote(i))
        if i % 5 == 0:
            outcomes.append(await engine.decide("SIM"))
    recorder.close()
    assert engine.core is not None
    statuses = [o.status for o in outcomes]
    first_miss = statuses.index("late")
    # After the miss the edge model (3.8 ms of a 4.5 ms budget) is out until the headroom has shrunk back…
    after = [o.choice.model for o in outcomes[first_miss + 1 : first_miss + 20]]
    assert after == ["quick"] * 19
    # …and then it is chosen again.
    assert "edge" in [o.choice.model for o in outcomes[first_miss + 20 :]]
    engine.publish(force=True)
    view = hot_state.get("scheduler")
    room = engine.core.scheduler.headroom
    assert view["miss_target"] == 0.005 and view["headroom_us"] == room.margin_ns / 1000
    assert room.missed == statuses.count("late")
    assert view["deadline_satisfaction"] == room.met / (room.met + room.missed)

    def pool() -> list[Any]:
        return [ScheduledModel("quick", FakeClock(), set(), 0), ScheduledModel("edge", FakeClock(), set(), 0)]

    first = replay(path, settings, {"SIM": instrument()}, pool(), priors)
    second = replay(path, settings, {"SIM": instrument()}, pool(), priors)
    assert first.mismatches == [] and second.mismatches == []
    assert first.choices == second.choices == [o.choice.model for o in outcomes]


class StallingJsonl(JsonlRecorder):
    """A real recorder that also loses `stall_ns` of fake time after the choice of listed decisions."""

    def __init__(self, path: Path, clock: FakeClock, stalls: dict[int, int]) -> None:
        super().__init__(path, ["quick", "edge"])
        self.clock, self.stalls = clock, stalls

    def decision(self, seq: int, *args: Any) -> None:
        super().decision(seq, *args)
        self.clock.advance(ns=self.stalls.get(seq, 0))


async def test_a_replay_reproduces_abstentions_at_dispatch(
    tmp_path: Path, hot_state: HotState, session: Session
) -> None:
    settings = Settings(signals={"cooldown_s": 0.0})
    priors = Priors({"quick": ModelPrior(0.55, 1000), "edge": ModelPrior(0.65, 1000)})
    clock = FakeClock()
    path = tmp_path / "rec.jsonl"
    recorder = StallingJsonl(path, clock, {5: 1 * MS, 9: 2 * MS, 30: 3 * MS})
    models = [ScheduledModel("quick", clock, set(), 20_000), ScheduledModel("edge", clock, {20}, 3_000_000)]
    engine = _engine(settings, clock, hot_state, models, priors, recorder)
    _warm(engine, "quick", 20_000, 512)
    _warm(engine, "edge", 3_000_000, 512)
    outcomes = []
    for i in range(100, 400):
        hot_state.put_quote(session.quote(i))
        if i % 5 == 0:
            outcomes.append(await engine.decide("SIM"))
    recorder.close()
    gated = [o.decision_seq for o in outcomes if o.status == "abstain" and o.choice.model is not None]
    assert gated == [9, 30] and [o.status for o in outcomes].count("late") == 1  # 1 ms after the choice still fits

    def pool() -> list[Any]:
        return [ScheduledModel("quick", FakeClock(), set(), 0), ScheduledModel("edge", FakeClock(), set(), 0)]

    first = replay(path, settings, {"SIM": instrument()}, pool(), priors)
    second = replay(path, settings, {"SIM": instrument()}, pool(), priors)
    assert first.mismatches == [] and second.mismatches == []
    assert first.choices == second.choices == [o.choice.model for o in outcomes]
    assert [d.status for d in first.decisions] == [o.status for o in outcomes]
    assert first.intents == second.intents == [o.intent for o in outcomes if o.intent is not None]
