"""TIP-Search benchmark: `python -m bench scheduler [--decisions N] [--quick]`.

1. Scheduler overhead per decision (build the snapshot from the latency windows and accuracy book, choose):
   p50/p99 over 20,000 choices, target p99 < 20 µs. Also the deterministic decision prologue up to the
   choice (`DecisionCore.begin`: history snapshot, regime, choice) and, apart, the maturation that runs
   after each decision (scoring, accuracy book, the logistic model's SGD step), off its deadline.
2. Side by side on the same simulated quotes (seed 3, unseen by the evaluation) and a 5 ms deadline
   (4.5 ms budget after the 0.5 ms reserve): TIP-Search against always-fastest (microprice),
   always-most-accurate (knn_analog, best in the shipped evaluation) and a seeded random choice, each a real
   `DecisionEngine` with its own worker lanes, run interleaved in blocks of 25 decisions so all four see the
   same machine (every engine's lanes drained before each block, so no policy's abandoned worker thread
   competes for the GIL with another's decisions). Models really run and are timed with the system clock;
   nothing is simulated but the market. Between two decisions (4 ms apart) each engine's calibrator runs
   once, as the live one does in its idle time: models due a refresh (1 s) and, every 5 ms (at most 5% of
   the time for a slow one), the models whose bound does not fit the budget are re-measured. Twice:
   "none" (no added load) and "cpu": one CPU-burning process
   per core (`os.cpu_count()` spawned processes, each a pure-Python integer loop at 100% of a core, default
   priority, started 0.5 s before the condition and terminated after it), so this process competes for the
   CPUs with as many busy processes as there are cores. Scored against the realised mid direction 10
   updates later (flat outcomes skipped): raw accuracy (correct among answers, late ones included), timely
   accuracy (correct and on time, over all decisions: an abstention is never correct) and deadline
   satisfaction (decisions completed within the budget; an abstention is a completed decision). Each
   condition starts from fresh engines (latency windows warmed under that condition, headroom 0).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing as mp
import os
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from omega_tui.config import Settings
from omega_tui.core.bus import EventBus
from omega_tui.core.clock import SystemClock
from omega_tui.core.decision import (
    DecisionCore,
    DecisionEngine,
    DecisionOutcome,
    Policy,
    fixed_policy,
    seeded_random_policy,
)
from omega_tui.core.hot_state import HotState
from omega_tui.core.models.base import Model
from omega_tui.core.models.builtin import EwmaMomentumModel, KnnAnalogModel, LogisticModel, MicropriceModel
from omega_tui.core.models.data import load_logistic_weights, load_priors
from omega_tui.core.models.market import HORIZON_TICKS, Session, simulate, snapshot_at
from omega_tui.core.scheduler import Scheduler, choose
from omega_tui.core.signals import DEFAULT_PARAMS
from omega_tui.core.types import InstrumentSpec, OrderIntent, RiskDecision, VerifiedInstrument

INSTRUMENT = VerifiedInstrument(
    InstrumentSpec("SIM", "SIM"), 1, Decimal("0.01"), 1, "SMART", "", "USD", "Simulated", "UTC", "", ("LMT",), True
)
POLICIES = ("tip_search", "always_fastest", "always_most_accurate", "random")


def _burn() -> None:
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def _percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p)) if values else 0.0


def measure_overhead(knn: Model, n: int = 20_000) -> dict[str, float]:
    settings = Settings()
    models: list[Model] = [MicropriceModel(), EwmaMomentumModel(), LogisticModel(load_logistic_weights()), knn]
    names = [m.name for m in models]
    sched = Scheduler(settings.scheduler, names, load_priors())
    rng = random.Random(1)
    for name, scale in zip(names, (10_000, 60_000, 150_000, 2_500_000), strict=True):
        for _ in range(settings.scheduler.window):
            sched.observe_latency(name, int(scale * (0.5 + rng.random())))
    budget = 4_500_000
    times: list[float] = []
    clock = time.perf_counter_ns
    for i in range(n):
        t = clock()
        choose(sched.snapshot(budget, i % 3, {}))
        times.append((clock() - t) / 1000)
    # The whole deterministic prologue on a real history (maturation, snapshot copy, regime, choice).
    core = DecisionCore(settings, {"SIM": INSTRUMENT}, models, load_priors())
    for name, w in sched.latency.items():
        core.scheduler.latency[name] = w
    # Each decision also registers a prediction, so maturation (scoring, online learning) really runs; it is
    # timed apart because it happens after the decision's end, off its deadline.
    session = simulate(4, 3000)
    prologue: list[float] = []
    maturation: list[float] = []
    learner = models[2]  # the online model: its SGD step is part of maturation
    for i in range(3000):
        core.add_quote(session.quote(i))
        if i >= 300:
            t = clock()
            begun = core.begin("SIM", session.quote(i).recv_ns, budget, {}, DEFAULT_PARAMS, 0)
            prologue.append((clock() - t) / 1000)
            if begun.snapshot is not None:  # scored as the online model's answer, so maturation also learns
                as_learner = dataclasses.replace(begun, choice=begun.choice._replace(model=learner.name))
                core.finish(as_learner, learner.predict(begun.snapshot), True)
            t = clock()
            core.mature("SIM")
            maturation.append((clock() - t) / 1000)
    return {
        "overhead_p50_us": round(_percentile(times, 50), 2),
        "overhead_p99_us": round(_percentile(times, 99), 2),
        "decision_prologue_p50_us": round(_percentile(prologue, 50), 2),
        "decision_prologue_p99_us": round(_percentile(prologue, 99), 2),
        "maturation_p99_us": round(_percentile(maturation, 99), 2),
    }


async def _drain(engine: DecisionEngine, limit_s: float = 2.0) -> None:
    """Wait (bounded) until none of the engine's worker lanes is still running an abandoned job."""
    for _ in range(int(limit_s / 0.002)):
        if not any(lane.inflight for lane in engine.lanes.values()):
            return
        await asyncio.sleep(0.002)


def _approve(intent: OrderIntent) -> RiskDecision:
    return RiskDecision(intent.intent_id, True, "", "", intent.created_ns)


async def run_condition(
    load: str, session: Session, knn: KnnAnalogModel, decisions: int, every: int, gap_s: float, seed: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    settings = Settings(signals={"cooldown_s": 0.0})
    priors = load_priors()
    tmp = Path(tempfile.mkdtemp(prefix="omega-bench-"))
    policies: dict[str, Policy | None] = {
        "tip_search": None,
        "always_fastest": fixed_policy("microprice"),
        "always_most_accurate": fixed_policy("knn_analog"),
        "random": seeded_random_policy(["microprice", "ewma_momentum", "logistic", "knn_analog"], seed),
    }
    engines: dict[str, DecisionEngine] = {}
    states: list[HotState] = []
    for name, policy in policies.items():
        hs = HotState(tmp / name)
        states.append(hs)
        models: list[Model] = [MicropriceModel(), EwmaMomentumModel(), LogisticModel(load_logistic_weights()), knn]
        engines[name] = DecisionEngine(
            settings, SystemClock(), EventBus(), hs, {"SIM": INSTRUMENT}, _approve, lambda _k: 0,
            models=models, priors=priors, policy=policy, calibrate=False,
        )  # fmt: skip
    start = 300
    for i in range(start):
        for e in engines.values():
            e.on_quote(session.quote(i))
    # Warm-up, off the hot path, exactly as the live engine's calibrator does it (until its fast phase is
    # over). One engine measures; the others start from a copy of its windows (same models, same machine).
    first = engines["tip_search"]
    for _ in range(100_000):
        if not await first.calibrate_once():
            break
    assert first.core is not None
    for e in engines.values():
        if e is not first and e.core is not None:
            for model, window in first.core.scheduler.latency.items():
                for ns in window._fifo:
                    e._observe(model, ns)
    outcomes: dict[str, list[tuple[int, DecisionOutcome]]] = {n: [] for n in engines}
    # Policies take turns in blocks of decisions over the same quotes, so all four see the same machine over
    # time, but never run at once: a baseline's abandoned worker thread must not steal the GIL from another
    # policy's decisions. Each block starts with every lane drained.
    block = 25
    for lo in range(0, decisions, block):
        for name, e in engines.items():
            for other in engines.values():
                await _drain(other)
            i = start + lo * every
            for _d in range(lo, min(lo + block, decisions)):
                for j in range(i, i + every):
                    e.hot_state.put_quote(session.quote(j))
                i += every
                outcomes[name].append((i - 1, await e.decide("SIM")))
                # The idle time a live engine has between decisions, where its calibrator runs (re-measuring
                # the models that are due, the ones that do not fit the budget often).
                t = time.perf_counter()
                await e.calibrate_once()
                await asyncio.sleep(max(0.0, gap_s - (time.perf_counter() - t)))
    labels = session.labels(HORIZON_TICKS)
    rows = []
    for name, outs in outcomes.items():
        scored = [(idx, o) for idx, o in outs if labels[idx] != 0]
        answers = correct = timely = met = abstain = 0
        for idx, o in scored:
            pred = o.prediction
            if pred is None and o.status == "timeout" and o.choice.model:  # the late answer it would have given
                pred = engines[name].core.models[o.choice.model].predict(snapshot_at(session, idx))  # type: ignore[union-attr]
            if o.status in ("ok", "abstain", "no data"):
                met += 1
            abstain += o.status == "abstain"
            if pred is not None and pred.direction != 0:
                answers += 1
                ok = pred.direction == labels[idx]
                correct += ok
                timely += ok and o.status == "ok"
        n = len(scored)
        share = {m: sum(1 for _i, o in outs if o.choice.model == m) / len(outs) for m in engines[name].lanes}
        rows.append({
            "policy": name, "load": load, "decisions": n,
            "raw_accuracy": round(correct / answers, 4) if answers else 0.0,
            "timely_accuracy": round(timely / n, 4) if n else 0.0,
            "deadline_satisfaction": round(met / n, 4) if n else 0.0,
            "abstain_rate": round(abstain / n, 4) if n else 0.0,
            "selection_share": {m: round(v, 3) for m, v in share.items() if v},
        })  # fmt: skip
    tip = engines["tip_search"].core
    assert tip is not None
    latency = {
        m: {
            "p50_us": round(w.quantile(0.5) / 1e3, 1),
            "p95_us": round(w.quantile(0.95) / 1e3, 1),
            "p99_us": round(w.quantile(0.99) / 1e3, 1),
            "bound_us": round(w.bound_ns / 1e3, 1) if np.isfinite(w.bound_ns) else None,
            "samples": w.total,
        }
        for m, w in tip.scheduler.latency.items()
    }
    room = tip.scheduler.headroom
    extra = {
        "latency": latency,
        "tip_headroom_us_at_end": round(room.margin_ns / 1e3, 1),
        "tip_misses": room.missed,  # all decisions, flat outcomes included
    }
    for e in engines.values():
        await e.stop()
    for hs in states:
        hs.close()
    return rows, extra


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'policy':22s} {'load':5s} {'n':>5s} {'raw acc':>8s} {'timely':>8s} {'deadline':>9s}  selection")
    for r in rows:
        print(
            f"{r['policy']:22s} {r['load']:5s} {r['decisions']:5d} {r['raw_accuracy']:8.4f} {r['timely_accuracy']:8.4f}"
            f" {r['deadline_satisfaction']:9.4f}  {r['selection_share']}"
        )


def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench scheduler")
    parser.add_argument("--decisions", type=int, default=700, help="decisions per policy and load condition")
    parser.add_argument("--quick", action="store_true", help="150 decisions per policy (smoke run)")
    args = parser.parse_args(argv)
    decisions = 150 if args.quick else args.decisions
    t0 = time.perf_counter()
    knn = KnnAnalogModel()
    knn.prepare()
    over = measure_overhead(knn)
    print(f"scheduler overhead per decision: p50 {over['overhead_p50_us']} µs, p99 {over['overhead_p99_us']} µs "
          f"(decision prologue p99 {over['decision_prologue_p99_us']} µs, maturation after it p99 "
          f"{over['maturation_p99_us']} µs)")  # fmt: skip
    every = 5
    session = simulate(3, 300 + (decisions + 2) * every + HORIZON_TICKS + 10)
    table: list[dict[str, Any]] = []
    details: dict[str, Any] = {}
    ctx = mp.get_context("spawn")
    for load in ("none", "cpu"):
        burners: list[Any] = []
        if load == "cpu":
            burners = [ctx.Process(target=_burn, daemon=True) for _ in range(os.cpu_count() or 2)]
            for p in burners:
                p.start()
            time.sleep(0.5)
        try:
            rows, extra = asyncio.run(run_condition(load, session, knn, decisions, every, 0.004, seed=11))
        finally:
            for p in burners:
                p.terminate()
                p.join(5)
        table.extend(rows)
        details[load] = extra
        print(f"model latency ({load} load): {extra['latency']}")
    _print_table(table)
    by = {(r["policy"], r["load"]): r for r in table}
    tip_best = all(
        by[("tip_search", load)]["timely_accuracy"] >= max(by[(p, load)]["timely_accuracy"] for p in POLICIES)
        for load in ("none", "cpu")
    )
    tip_deadlines = min(by[("tip_search", load)]["deadline_satisfaction"] for load in ("none", "cpu"))
    return {
        **over,
        "table": table,
        "model_latency": details,
        "tip_timely_best_in_both": tip_best,
        "tip_min_deadline_satisfaction": tip_deadlines,
        "deadline_ms": 5.0,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
