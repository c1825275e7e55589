"""TIP-Search: each decision goes to the most accurate model whose latency bound still fits the deadline.

After Wang, "Time-Predictable Inference Scheduling for Market Prediction under Uncertain Load" (arXiv
2506.08026). For every model the scheduler keeps the last `scheduler.window` latencies measured on this
machine and takes their split-conformal upper quantile at level `scheduler.quantile`: the
ceil((n + 1) q)-th smallest of n samples, which under exchangeability exceeds the next latency with
probability at least q. With too few samples for that rank (n < q / (1 − q), e.g. 99 at q = 0.99) the bound
is infinite. A model is feasible when it has at least `scheduler.min_samples` samples and its bound plus its
current queue wait fits the remaining budget (deadline − reserve − time already spent). The choice is the
feasible model with the highest expected accuracy (per volatility bucket when enabled), ties broken by the
lower bound, then the name; with no feasible model the decision abstains (no trade), never a slow fallback.

The choice also keeps a headroom free below the budget, adapted online from observed deadline misses so
that their long-run rate meets `scheduler.miss_target` (α*): after each decision h ← max(0, h + η(miss −
α*)), with η = `scheduler.headroom_step`, and a model must fit within budget − h × (deadline − reserve).
This is adaptive conformal inference (Gibbs & Candès, "Adaptive Conformal Inference Under Distribution
Shift", 2021) done on the score — the time left — rather than on the level, i.e. the quantile tracker of
Angelopoulos, Candès & Tibshirani ("Conformal PID Control for Time Series Prediction", 2023). A miss,
whatever caused it (this process preempted between the choice and the answer, a load change the latency
windows have not caught up with, a model whose bound sits just under the budget), rules out first the
models whose bound leaves the least room; fast models stay feasible, so a miss costs accuracy rather than
mass abstention. (Tightening the conformal level instead moves every bound to a larger sample at once;
under the benchmark's CPU load each window's tail holds a few preemptions, so a miss or two made every model
infeasible, and in a run on a busy machine nearly half the decisions abstained.) On-time decisions and
abstentions give the room back at η·α* each. At h ≥ 1 nothing fits and the scheduler abstains (only a model
measured at 0 ns would fit), so under TIP-Search h never passes 1 + η, and over any L consecutive decisions
at most α*·L + 1/η + 1 miss (0.005·L + 6 at the defaults).

Windows also age by time (`scheduler.latency_max_age_ms`): a sample comes with the monotonic time it was
observed at, and adding one pushes out those older than the age, while more than half a window remain. The
engine re-measures a model whose bound does not fit the budget every `scheduler.probe_interval_ms`, off the
decision path (its results feed only the window), so a window pushed over the budget by a burst of
preemptions — during warm-up, say, when a full window of 512 tolerates only four samples above the budget
at q = 0.99 and a once-a-second refresh would take minutes to dilute them — fits again within about the
age once the load allows, instead of leaving TIP-Search on its fastest model for the rest of the session.

`choose` is a pure function of a `SchedulerSnapshot` (which carries the headroom), so a recorded decision
can be replayed exactly; the headroom is a function of the ordered decision outcomes (met or missed), which
a recording holds, so a replay rebuilds it; the windows are a function of the ordered (latency, observed
at) samples, which a recording holds too, frequent probes included. The `Scheduler` object only owns the
state the snapshot is built from (latency windows, the accuracy book, the headroom) and is used from the
core loop alone.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from omega_tui.config import SchedulerSettings
from omega_tui.core.models.data import Priors
from omega_tui.core.views import ModelMetricsView, SchedulerView

INF = math.inf


def conformal_rank(n: int, q: float) -> int:
    """1-based rank of the conformal upper quantile among n samples; > n means the bound is infinite."""
    return math.ceil((n + 1) * q - 1e-12)


def conformal_min_samples(q: float) -> int:
    """Fewest samples whose conformal rank at level q is finite."""
    n = 1
    while conformal_rank(n, q) > n:
        n += 1
    return n


def conformal_bound(sorted_samples: list[int], q: float) -> float:
    """The split-conformal upper quantile of ascending samples, or +inf when there are too few."""
    n = len(sorted_samples)
    k = conformal_rank(n, q)
    return INF if n == 0 or k > n else float(sorted_samples[k - 1])


class LatencyWindow:
    """The last `size` latencies of one model, kept sorted too so a quantile costs O(1) and an insert O(n).

    With `max_age_ns` > 0, a sample added with its observation time `at_ns` also pushes out the samples
    observed more than `max_age_ns` before it, oldest first, while more than `keep` remain: a burst of
    preemptions leaves the window within that age once newer samples come, instead of after `size` more.
    Aging happens only on `add`, so the window is a function of the ordered (ns, at_ns) samples alone.
    """

    __slots__ = ("_fifo", "_q", "_sorted", "_times", "bound_ns", "keep", "max_age_ns", "size", "total")

    def __init__(self, size: int, q: float, max_age_ns: int = 0, keep: int = 0) -> None:
        self.size = size
        self._q = q
        self._fifo: deque[int] = deque()
        self._times: deque[int] = deque()  # observation time of each sample (-1: unknown, never aged)
        self._sorted: list[int] = []
        self.bound_ns = INF
        self.total = 0
        self.max_age_ns = max_age_ns
        self.keep = max(1, keep)

    def _pop_oldest(self) -> None:
        old = self._fifo.popleft()
        self._times.popleft()
        del self._sorted[bisect_left(self._sorted, old)]

    def add(self, ns: int, at_ns: int | None = None) -> None:
        self._fifo.append(ns)
        self._times.append(-1 if at_ns is None else at_ns)
        insort(self._sorted, ns)
        if len(self._fifo) > self.size:
            self._pop_oldest()
        if self.max_age_ns > 0 and at_ns is not None:
            oldest = at_ns - self.max_age_ns
            times = self._times
            while len(times) > self.keep and 0 <= times[0] < oldest:
                self._pop_oldest()
        self.total += 1
        self.bound_ns = conformal_bound(self._sorted, self._q)

    def __len__(self) -> int:
        return len(self._fifo)

    def quantile(self, p: float) -> float:
        """Plain empirical quantile (nearest rank) for display; 0 when empty."""
        if not self._sorted:
            return 0.0
        return float(self._sorted[min(len(self._sorted) - 1, max(0, math.ceil(p * len(self._sorted)) - 1))])


class AccuracyBook:
    """Expected accuracy per model and regime bucket: the evaluated prior, moved by matured outcomes.

    expected = (prior × w + correct) / (w + outcomes), with w = min(prior samples, `prior_weight`), so the
    shipped evaluation counts as at most `prior_weight` outcomes and live data takes over as it accrues.
    """

    def __init__(
        self,
        names: Iterable[str],
        priors: Priors,
        prior_weight: int,
        by_regime: bool,
        defaults: Mapping[str, float] | None = None,
    ) -> None:
        self.by_regime = by_regime
        self._cells: dict[tuple[str, int], list[float]] = {}  # (name, bucket or -1) -> [prior, w, hits, n]
        for name in names:
            p = priors.prior(name)
            base = p.accuracy if p else (defaults or {}).get(name, 0.5)
            w = float(min(p.samples, prior_weight)) if p else 0.0
            self._cells[(name, -1)] = [base, w, 0.0, 0.0]
            for b in range(3):
                if p and len(p.buckets) == 3:
                    bw = float(min(p.bucket_samples[b], prior_weight)) if p.bucket_samples else w
                    self._cells[(name, b)] = [p.buckets[b], bw, 0.0, 0.0]
                else:
                    self._cells[(name, b)] = [base, w, 0.0, 0.0]

        # Expected values are cached per cell (the choice reads them every decision, updates are rarer).
        self._expected = {key: self._value(cell) for key, cell in self._cells.items()}

    @staticmethod
    def _value(cell: list[float]) -> float:
        prior, w, hits, n = cell
        return prior if w + n == 0 else (prior * w + hits) / (w + n)

    def expected(self, name: str, regime: int) -> float:
        return self._expected.get((name, regime if self.by_regime else -1), 0.5)

    def update(self, name: str, regime: int, correct: bool) -> None:
        for key in ((name, -1), (name, regime)):
            cell = self._cells.get(key)
            if cell is not None:
                cell[2] += 1.0 if correct else 0.0
                cell[3] += 1.0
                self._expected[key] = self._value(cell)


class Headroom:
    """Budget headroom adapted to the observed deadline misses (see the module docstring).

    `fraction` of the model budget is kept free: it grows by η(1 − α*) on a miss, shrinks by ηα* on a
    decision that met its deadline (an abstention does). At 1 or more nothing fits, so under TIP-Search it
    never passes 1 + η; the clip there only bounds it under baseline policies that ignore feasibility.
    """

    __slots__ = ("budget_ns", "fraction", "met", "missed", "step", "target")

    def __init__(self, budget_ns: int, target: float, step: float) -> None:
        self.budget_ns = budget_ns
        self.target = target
        self.step = step
        self.fraction = 0.0
        self.met = 0
        self.missed = 0

    @property
    def margin_ns(self) -> float:
        return self.fraction * self.budget_ns

    def update(self, missed: bool) -> None:
        if missed:
            self.missed += 1
        else:
            self.met += 1
        h = self.fraction + self.step * ((1.0 if missed else 0.0) - self.target)
        self.fraction = max(0.0, min(1.0 + self.step, h))


class ModelStat(NamedTuple):
    """What the choice needs to know about one model at one decision (a tuple: built per model per decision)."""

    name: str
    samples: int
    bound_ns: float  # conformal upper latency quantile, +inf when unknown
    queue_wait_ns: float  # time before the model's worker is free (+inf when it is stuck past its bound)
    accuracy: float


class SchedulerSnapshot(NamedTuple):
    """Everything one choice depends on: replaying the same snapshot gives the same choice."""

    budget_ns: int
    regime: int
    min_samples: int
    models: tuple[ModelStat, ...]
    margin_ns: float = 0.0  # headroom kept free below the budget (adapted to observed misses)


class Choice(NamedTuple):
    """The model to run (None = abstain) and why."""

    model: str | None
    budget_ns: int
    bound_ns: float = INF
    accuracy: float = 0.0
    reason: str = ""

    @property
    def abstained(self) -> bool:
        return self.model is None


ABSTAIN_REASON = "no model fits the deadline"
DISPATCH_QUANTILE = 0.9  # of the delay from taking the budget to dispatch, set aside from each budget…
DISPATCH_MIN_SAMPLES = 100  # …once it has this many samples (before, one stall would be the bound)


def fits(bound_ns: float, wait_ns: float, limit_ns: float) -> bool:
    """A run bounded by `bound_ns` after `wait_ns` in its queue ends within `limit_ns` (a NaN never fits).

    The feasibility test of the choice (`choose` inlines it, for speed) and of the dispatch re-check.
    """
    return bound_ns + wait_ns <= limit_ns


def feasible(stat: ModelStat, budget_ns: int, min_samples: int, margin_ns: float = 0.0) -> bool:
    """Enough samples, and bound plus queue wait within the budget less the headroom."""
    return stat.samples >= min_samples and fits(stat.bound_ns, stat.queue_wait_ns, budget_ns - margin_ns)


def choose(snap: SchedulerSnapshot) -> Choice:
    """TIP-Search: the most accurate feasible model (then lower bound, then name), else abstain."""
    budget, min_samples = snap.budget_ns, snap.min_samples
    limit = budget - snap.margin_ns
    best: ModelStat | None = None
    for m in snap.models:
        name, samples, bound, wait, acc = m
        if samples < min_samples or not bound + wait <= limit:  # `fits`, inlined; `not <=`: a NaN never fits
            continue
        if best is None or acc > best[4] or (acc == best[4] and (bound, name) < (best[2], best[0])):
            best = m
    if best is None:
        return Choice(None, budget, INF, 0.0, ABSTAIN_REASON)
    return Choice(best[0], budget, best[2], best[4], "tip-search")


class Scheduler:
    """Latency windows and accuracy book of a model pool; builds snapshots and chooses (core loop only)."""

    def __init__(
        self,
        settings: SchedulerSettings,
        names: Iterable[str],
        priors: Priors | None = None,
        defaults: Mapping[str, float] | None = None,
    ) -> None:
        self.settings = settings
        self.names = tuple(names)
        self.quantile = settings.quantile
        self.min_samples = settings.min_samples
        # Aged windows keep at least half a window (the calibrator's warm-up count, and well past the conformal
        # minimum at q): with only that minimum (99 at q = 0.99) the bound would be the largest sample, and
        # one preemption in 99 would make a model infeasible.
        keep = max(settings.min_samples, conformal_min_samples(settings.quantile), settings.window // 2)
        max_age_ns = int(settings.latency_max_age_ms * 1_000_000)
        self.latency = {n: LatencyWindow(settings.window, settings.quantile, max_age_ns, keep) for n in self.names}
        budget_ns = int((settings.deadline_ms - settings.reserve_ms) * 1e6)
        self.headroom = Headroom(budget_ns, settings.miss_target, settings.headroom_step)
        self.accuracy = AccuracyBook(
            self.names, priors or Priors(), settings.prior_weight, settings.regime_buckets, defaults
        )
        # Per regime, the stats tuple the choice reads; a latency sample or an outcome refreshes one model's
        # entry after the decision, so building a snapshot costs one tuple lookup.
        self._stats: list[list[ModelStat]] = [[self._stat(n, r) for n in self.names] for r in range(3)]
        self._frozen: list[tuple[ModelStat, ...]] = [tuple(row) for row in self._stats]
        self._index = {n: i for i, n in enumerate(self.names)}

    def _stat(self, name: str, regime: int) -> ModelStat:
        w = self.latency[name]
        return ModelStat(name, len(w), w.bound_ns, 0.0, self.accuracy.expected(name, regime))

    def _refresh(self, name: str) -> None:
        i = self._index[name]
        for r in range(3):
            self._stats[r][i] = self._stat(name, r)
            self._frozen[r] = tuple(self._stats[r])

    def record_outcome(self, name: str, regime: int, correct: bool) -> None:
        """A matured, on-time prediction: update the accuracy book."""
        if name in self._index:
            self.accuracy.update(name, regime, correct)
            self._refresh(name)

    @property
    def warm_samples(self) -> int:
        """Samples a model needs before it can be chosen: min_samples and a finite conformal bound."""
        return max(self.min_samples, conformal_min_samples(self.quantile))

    def record_deadline(self, missed: bool) -> None:
        """A decision ended (an abstention meets its deadline): adapt the headroom."""
        self.headroom.update(missed)

    def observe_latency(self, name: str, ns: int, at_ns: int | None = None) -> None:
        """A measured latency; `at_ns` (monotonic, when it was observed) lets old samples age out."""
        window = self.latency.get(name)
        if window is not None:
            window.add(max(0, int(ns)), at_ns)
            self._refresh(name)

    def fits(self, name: str, budget_ns: float) -> bool:
        """Whether the model could be chosen for an idle lane and `budget_ns` (headroom included)."""
        window = self.latency.get(name)
        if window is None or len(window) < self.min_samples:
            return False
        return window.bound_ns <= budget_ns - self.headroom.margin_ns

    def bound_ns(self, name: str) -> float:
        window = self.latency.get(name)
        return INF if window is None else window.bound_ns

    def snapshot(self, budget_ns: int, regime: int, queue_wait_ns: Mapping[str, float]) -> SchedulerSnapshot:
        stats = self._frozen[regime if 0 <= regime < 3 else 1]
        if queue_wait_ns:
            stats = tuple(m._replace(queue_wait_ns=queue_wait_ns.get(m.name, 0.0)) for m in stats)
        return SchedulerSnapshot(budget_ns, regime, self.min_samples, stats, self.headroom.margin_ns)


# --------------------------------------------------------------------------------------------- metrics


class _ModelCounters:
    __slots__ = ("answered", "correct", "late", "runs", "scored", "selected", "timely_correct")

    def __init__(self) -> None:
        self.selected = 0  # decisions that chose this model
        self.runs = 0  # of those, runs that finished (on time or late)
        self.late = 0  # of those, answers discarded for missing the deadline (incl. hard timeouts)
        self.answered = 0  # answers delivered on time
        self.scored = 0  # matured predictions (on time or late)
        self.correct = 0
        self.timely_correct = 0  # matured, correct and on time


class SchedulerMetrics:
    """Counters behind the `scheduler` hot-state section (per-model metrics, abstain rate, tick→decision)."""

    def __init__(self, names: Iterable[str], window: int = 2048, dispatch_window: int = 512) -> None:
        self.decisions = 0
        self.abstains = 0
        self.models = {n: _ModelCounters() for n in names}
        self.tick_to_decision = LatencyWindow(window, 0.99)
        # From the moment the budget is taken to the point of dispatch (the choice itself, recording),
        # measured on every decision that reaches a choice; its typical value is set aside from the next
        # budgets, so a model whose bound leaves less room than that is not chosen only to be withdrawn.
        self.dispatch = LatencyWindow(dispatch_window, DISPATCH_QUANTILE)

    def dispatch_allowance_ns(self) -> int:
        """Time to set aside for dispatch: the conformal bound of its delay at `DISPATCH_QUANTILE`, 0 before
        `DISPATCH_MIN_SAMPLES`. Only the typical delay: a rarer one (this process preempted) is caught at
        dispatch, where the decision abstains; a high quantile here would let a few preemptions take every
        budget.
        """
        bound = self.dispatch.bound_ns
        return int(bound) if len(self.dispatch) >= DISPATCH_MIN_SAMPLES and bound != INF else 0

    def decided(self, model: str | None) -> None:
        self.decisions += 1
        if model is None:
            self.abstains += 1
        else:
            self.models[model].selected += 1

    def withdrawn(self, model: str) -> None:
        """A decision that chose `model` abstained at dispatch after all (no time left for it)."""
        self.models[model].selected -= 1
        self.abstains += 1

    def ran(self, model: str, on_time: bool) -> None:
        c = self.models[model]
        c.runs += 1
        if on_time:
            c.answered += 1
        else:
            c.late += 1

    def timed_out(self, model: str) -> None:
        self.models[model].late += 1

    def scored(self, model: str, correct: bool, on_time: bool) -> None:
        c = self.models[model]
        c.scored += 1
        c.correct += correct
        c.timely_correct += correct and on_time

    def view(self, scheduler: Scheduler, deadline_ms: float, params_version: int, regime: int = 1) -> SchedulerView:
        models: list[ModelMetricsView] = []
        for name, c in self.models.items():
            w = scheduler.latency.get(name)
            bound = w.bound_ns if w is not None else INF
            decided = c.answered + c.late  # selections whose outcome is known
            models.append(
                ModelMetricsView(
                    name=name,
                    samples=len(w) if w is not None else 0,
                    latency_p50_us=(w.quantile(0.5) if w else 0.0) / 1000.0,
                    latency_p99_us=(w.quantile(0.99) if w else 0.0) / 1000.0,
                    bound_us=bound / 1000.0 if bound != INF else -1.0,
                    selection_share=c.selected / self.decisions if self.decisions else 0.0,
                    deadline_satisfaction=c.answered / decided if decided else 1.0,
                    raw_accuracy=c.correct / c.scored if c.scored else 0.0,
                    timely_accuracy=c.timely_correct / c.scored if c.scored else 0.0,
                    expected_accuracy=scheduler.accuracy.expected(name, regime),
                )
            )
        t2d = self.tick_to_decision
        room = scheduler.headroom
        return SchedulerView(
            decisions=self.decisions,
            abstain_rate=self.abstains / self.decisions if self.decisions else 0.0,
            deadline_ms=deadline_ms,
            models=models,
            tick_to_decision_p50_us=t2d.quantile(0.5) / 1000.0,
            tick_to_decision_p99_us=t2d.quantile(0.99) / 1000.0,
            params_version=params_version,
            dispatch_allowance_us=self.dispatch_allowance_ns() / 1000.0,
            deadline_satisfaction=room.met / (room.met + room.missed) if room.met + room.missed else 1.0,
            headroom_us=room.margin_ns / 1000.0,
            miss_target=room.target,
        )
