"""Record a decision session to JSON lines and replay it through the same scheduler, models and signals.

A recording holds, in the order the live engine applied them: normalized quotes (`q`), every latency sample
fed to the scheduler with the monotonic time it was observed at (`l`, from decisions and from calibration,
including the frequent re-measurement of models that do not fit; the time lets the latency windows age
samples out exactly as they did live), each new parameters version (`p`), each
decision's start with the inputs that came from the machine rather than the data — the budget its choice
saw (time already spent and the dispatch allowance taken off), queue waits, position — its choice and the
headroom it kept below the budget (`d`), and its end with status (an abstention at dispatch keeps the
recorded choice), measured latency, intent id and the risk answer (`x`). `replay` rebuilds a `DecisionCore`
from these records with no clock and no threads: it recomputes every choice from the recorded latencies,
and the headroom from the recorded end statuses (met or missed, applied at each `x` as the live engine
does once a decision is over), reruns the chosen model on the same snapshot and the signal generator on its
answer, so the choices, headrooms and intents are identical on every replay and equal to the live session's
(`ReplayResult.mismatches` lists any difference).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from omega_tui.config import Settings
from omega_tui.core.decision import Begun, DecisionCore
from omega_tui.core.models.base import Model
from omega_tui.core.models.data import Priors
from omega_tui.core.signals import DEFAULT_PARAMS, TradingParams
from omega_tui.core.types import OrderIntent, Quote, QuoteFlag, VerifiedInstrument

FORMAT_VERSION = 3  # 2: the adaptive headroom (`mg`); maturation at each decision's end. 3: `at` on `l`
READABLE = frozenset({2, 3})  # a version 2 recording has no sample times, and was made with windows that kept none


def _dec(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def _undec(v: str | None) -> Decimal | None:
    return None if v is None else Decimal(v)


def quote_to_record(q: Quote) -> dict[str, Any]:
    return {
        "t": "q", "k": q.key, "s": q.seq, "n": q.recv_ns, "u": q.recv_utc.isoformat(),
        "b": _dec(q.bid), "a": _dec(q.ask), "l": _dec(q.last), "bs": q.bid_size, "as": q.ask_size,
        "ls": q.last_size, "v": q.volume, "m": q.market_data_type, "f": int(q.flags),
    }  # fmt: skip


def quote_from_record(r: Mapping[str, Any]) -> Quote:
    return Quote(
        key=r["k"], seq=r["s"], recv_ns=r["n"], recv_utc=datetime.fromisoformat(r["u"]),
        bid=_undec(r["b"]), ask=_undec(r["a"]), last=_undec(r["l"]), bid_size=r["bs"], ask_size=r["as"],
        last_size=r["ls"], volume=r["v"], market_data_type=r["m"], flags=QuoteFlag(r["f"]),
    )  # fmt: skip


def _ns(v: float) -> float | str:
    return "inf" if math.isinf(v) else v


class JsonlRecorder:
    """Writes a recording (see the module doc). Buffered: call `close` (or `flush`) before reading it back."""

    def __init__(self, path: Path, models: Sequence[str] = (), note: str = "") -> None:
        self.path = Path(path)
        self._f: IO[str] | None = open(self.path, "w", encoding="utf-8")
        self._write({"t": "h", "format": FORMAT_VERSION, "models": list(models), "note": note})

    def _write(self, rec: Mapping[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(rec, separators=(",", ":")) + "\n")

    def quote(self, quote: Quote) -> None:
        self._write(quote_to_record(quote))

    def latency(self, model: str, ns: int, at_ns: int | None = None) -> None:
        self._write({"t": "l", "m": model, "ns": ns, "at": at_ns})

    def params(self, version: int, view: Mapping[str, Any] | None) -> None:
        self._write({"t": "p", "v": version, "view": dict(view) if view is not None else None})

    def decision(
        self, seq: int, key: str, at_ns: int, budget_ns: int, queue_ns: Mapping[str, float], params_version: int,
        position: int, choice: str | None, margin_ns: float | None = None,
    ) -> None:  # fmt: skip
        qw = {k: _ns(v) for k, v in queue_ns.items()}
        self._write({"t": "d", "s": seq, "k": key, "at": at_ns, "b": budget_ns, "qw": qw, "pv": params_version,
                     "pos": position, "c": choice, "mg": margin_ns})  # fmt: skip

    def done(self, seq: int, status: str, latency_ns: int | None, intent_id: str | None, approved: bool | None) -> None:
        self._write({"t": "x", "s": seq, "st": status, "lat": latency_ns, "i": intent_id, "ap": approved})

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


@dataclass(frozen=True, slots=True)
class ReplayedDecision:
    seq: int
    key: str
    choice: str | None
    status: str
    intent: OrderIntent | None


@dataclass(slots=True)
class ReplayResult:
    decisions: list[ReplayedDecision] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)  # differences from what the live session recorded

    @property
    def choices(self) -> list[str | None]:
        return [d.choice for d in self.decisions]

    @property
    def intents(self) -> list[OrderIntent]:
        return [d.intent for d in self.decisions if d.intent is not None]


def replay(
    path: Path,
    settings: Settings,
    instruments: Mapping[str, VerifiedInstrument],
    models: Sequence[Model],
    priors: Priors,
) -> ReplayResult:
    """Replay a recording; pass fresh model instances (online models learn again during the replay)."""
    core = DecisionCore(settings, instruments, models, priors)
    params: dict[int, TradingParams] = {0: DEFAULT_PARAMS}
    begun: dict[int, Begun] = {}
    result = ReplayResult()
    for r in read_records(path):
        t = r["t"]
        if t == "h" and r.get("format") not in READABLE:
            raise ValueError(f"{path}: recording format {r.get('format')}, this replay reads {sorted(READABLE)}")
        if t == "q":
            core.add_quote(quote_from_record(r))
        elif t == "l":
            at = r.get("at")  # when it was observed: the window ages samples by it
            core.scheduler.observe_latency(r["m"], int(r["ns"]), None if at is None else int(at))
        elif t == "p":
            params[int(r["v"])] = TradingParams.from_view(r["view"])
        elif t == "d":
            qw = {k: (math.inf if v == "inf" else float(v)) for k, v in r["qw"].items()}
            b = core.begin(r["k"], r["at"], r["b"], qw, params.get(r["pv"], DEFAULT_PARAMS), r["pos"], seq=r["s"])
            if b.choice.model != r["c"]:
                result.mismatches.append(f"decision {r['s']}: replay chose {b.choice.model}, live chose {r['c']}")
            margin = b.scheduler_snapshot.margin_ns if b.scheduler_snapshot is not None else None
            if margin != r["mg"]:
                result.mismatches.append(f"decision {r['s']}: replay headroom {margin}, live headroom {r['mg']}")
            begun[b.seq] = b
        elif t == "x":
            b = begun.pop(r["s"])
            intent: OrderIntent | None = None
            status = r["st"]
            if b.choice.model is not None and b.snapshot is not None and status in ("ok", "late"):
                prediction = core.models[b.choice.model].predict(b.snapshot)
                intent, _ = core.finish(b, prediction, status == "ok")
                if intent is not None and r["ap"]:
                    core.entered(b.key, b.at_ns)
            live_id = r["i"]
            if (intent.intent_id if intent else None) != live_id:
                result.mismatches.append(f"decision {r['s']}: replay intent {intent}, live intent {live_id}")
            core.end(b.key, status)  # where the live engine adapts the headroom and matures: after the decision
            result.decisions.append(ReplayedDecision(b.seq, b.key, b.choice.model, status, intent))
    return result
