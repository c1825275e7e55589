"""A deterministic `EngineClient` for UI tests and snapshots: fixed views, a frozen clock, scripted answers.

`FakeEngine.demo()` fills every section with the same values on every run: six instruments (one stale, one
crossed, one on delayed data), a filled bracket entry with its two working children, a cancelled order with
an anomaly and a rejected one, two positions (one disagreeing with the broker), risk limits at ok, warn and
breach, three scheduler models, order latencies, events. Commands are recorded in `submitted`; the answer
comes from `answers[type]` (a CommandResult or a callable taking the command), else a default that behaves
like the engine's contract: Halt and Flatten latch HALTED in the risk section, Resume re-arms, the rest ok.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from omega_tui.core.clock import FakeClock
from omega_tui.core.types import (
    Command,
    CommandResult,
    Flatten,
    Halt,
    Quote,
    QuoteFlag,
    Resume,
)
from omega_tui.core.views import (
    EventLine,
    LatencyView,
    LimitView,
    OrderView,
    PositionView,
    RiskView,
    SchedulerView,
    TransitionView,
)
from omega_tui.ui.client import EngineDescription

T0 = datetime(2026, 11, 26, 14, 30, tzinfo=UTC)


def frozen_now() -> datetime:
    return T0 + timedelta(minutes=5)


Answer = CommandResult | Callable[[Any], CommandResult]


class FakeEngine:
    """An in-memory engine: sections with versions, quotes, and recorded commands."""

    def __init__(self, description: EngineDescription | None = None) -> None:
        self.clock = FakeClock(T0)
        self.sections: dict[str, Any] = {}
        self.versions: dict[str, int] = {}
        self._quotes: dict[str, Quote] = {}
        self.submitted: list[Command] = []
        self.answers: dict[type, Answer] = {}
        self._description = description or EngineDescription("SIM", "127.0.0.1", 4002)
        self.started = False
        self.stop_requested = False
        self._seq = itertools.count(1)
        self._walk_step = 0

    # ------------------------------------------------------------------ EngineClient

    def describe(self) -> EngineDescription:
        return self._description

    def start(self, app: Any) -> None:
        self.started = True

    def stop(self) -> None:
        self.stop_requested = True

    @property
    def stopped(self) -> bool:
        return self.stop_requested

    def read(self, section: str) -> Any:
        return self.sections.get(section)

    def version(self, section: str) -> int:
        return self.versions.get(section, 0)

    def quotes(self) -> Mapping[str, Quote]:
        return dict(self._quotes)

    def submit(self, command: Command) -> concurrent.futures.Future[CommandResult]:
        self.submitted.append(command)
        answer = self.answers.get(type(command))
        if answer is None:
            result = self._default_answer(command)
        elif isinstance(answer, CommandResult):
            result = answer
        else:
            result = answer(command)
        future: concurrent.futures.Future[CommandResult] = concurrent.futures.Future()
        future.set_result(result)
        return future

    # ------------------------------------------------------------------ scripting

    def set(self, section: str, value: Any) -> None:
        self.sections[section] = value
        self.versions[section] = self.versions.get(section, 0) + 1

    def result(self, ok: bool, message: str) -> CommandResult:
        return CommandResult(f"cmd{next(self._seq):04d}", ok, message, frozen_now())

    def set_trading_state(self, state: str, reason: str = "", source: str = "") -> None:
        risk: RiskView = dict(self.sections.get("risk") or demo_risk())  # type: ignore[assignment]
        risk.update(trading_state=state, reason=reason, source=source, since_utc=frozen_now().isoformat())
        self.set("risk", risk)

    def _default_answer(self, command: Command) -> CommandResult:
        if isinstance(command, Halt | Flatten):
            self.set_trading_state("HALTED", command.reason, command.source)
            return self.result(True, "trading halted; cancelling working orders")
        if isinstance(command, Resume):
            self.set_trading_state("ACTIVE", "", command.source)
            return self.result(True, "trading re-armed")
        return self.result(True, "accepted")

    def put_quote(self, quote: Quote) -> None:
        self._quotes[quote.key] = quote

    def walk_quotes(self, steps: int) -> None:
        """Move every two-sided quote through a fixed price path, so sparklines have a history."""
        path = [0, 2, 1, 3, 5, 4, 6, 3, 2, 4, 7, 5]
        for _ in range(steps):
            self._walk_step += 1
            step = self._walk_step
            for key, quote in list(self._quotes.items()):
                if quote.bid is None or quote.ask is None or quote.flags & QuoteFlag.STALE:
                    continue
                tick = Decimal("0.25") if key == "ES" else Decimal("0.01")
                delta = (path[step % len(path)] - path[(step - 1) % len(path)]) * tick
                self.put_quote(
                    Quote(
                        **{
                            **{f: getattr(quote, f) for f in Quote.__slots__},  # type: ignore[attr-defined]
                            "seq": quote.seq + 1,
                            "bid": quote.bid + delta,
                            "ask": quote.ask + delta,
                            "last": (quote.last or quote.bid) + delta,
                        }
                    )
                )

    # ------------------------------------------------------------------ the fixed state

    @classmethod
    def demo(cls) -> FakeEngine:
        engine = cls()
        for quote in demo_quotes(engine.clock):
            engine.put_quote(quote)
        engine.set(
            "connection",
            {
                "state": "UP",
                "detail": "",
                "host": "127.0.0.1",
                "port": 4002,
                "mode": "SIM",
                "account": "DU1234567",
                "since_utc": T0.isoformat(),
                "reconnects": 0,
                "server_version": 178,
            },
        )
        engine.set(
            "components",
            {
                name: {"state": "RUNNING", "detail": ""}
                for name in ("broker", "normalizer", "scheduler", "signals", "risk", "orders")
            }
            | {"journal": {"state": "DEGRADED", "detail": "disk slow"}},
        )
        engine.set(
            "startup_report",
            [
                {
                    "instrument": key,
                    "con_id": 1000 + i,
                    "min_tick": "0.25" if key == "ES" else "0.01",
                    "exchange": "SMART",
                    "permission_ok": key != "VIX",
                    "watch_only": key == "VIX",
                    "detail": "",
                }
                for i, key in enumerate(("AAPL", "ES", "MSFT", "NVDA", "SPY", "VIX"))
            ],
        )
        engine.set("orders", demo_orders())
        engine.set("positions", demo_positions())
        engine.set(
            "pnl",
            {
                "realized": "412.50",
                "unrealized": "-1268.75",
                "commissions": "18.40",
                "total": "-874.65",
                "broker_daily": "-871.20",
                "agrees": False,
            },
        )
        engine.set("risk", demo_risk())
        engine.set("scheduler", demo_scheduler())
        engine.set("latency", demo_latency())
        engine.set("events", demo_events())
        return engine


def demo_quotes(clock: FakeClock) -> list[Quote]:
    def q(key: str, bid: str | None, ask: str | None, last: str, close: str, **kw: Any) -> Quote:
        return Quote(
            key=key,
            seq=1,
            recv_ns=clock.monotonic_ns(),
            recv_utc=clock.now_utc(),
            bid=Decimal(bid) if bid else None,
            ask=Decimal(ask) if ask else None,
            last=Decimal(last),
            close=Decimal(close),
            bid_size=kw.pop("bid_size", 300),
            ask_size=kw.pop("ask_size", 500),
            volume=kw.pop("volume", 1_234_567),
            **kw,
        )

    return [
        q("AAPL", "189.52", "189.54", "189.53", "187.20"),
        q("MSFT", "411.10", "411.14", "411.12", "414.90", volume=845_210),
        q("SPY", "598.01", "598.02", "598.02", "598.02", bid_size=12_000, ask_size=9_800),
        q("ES", "6012.25", "6012.50", "6012.50", "5998.00", volume=1_402_118),
        q("NVDA", "131.40", "131.38", "131.39", "129.00", flags=QuoteFlag.CROSSED),
        q("VIX", "15.10", "15.20", "15.15", "16.02", flags=QuoteFlag.STALE, market_data_type=3),
    ]


def _path(states: list[tuple[str, str, int]]) -> list[TransitionView]:
    out: list[TransitionView] = []
    at = T0
    ns = 1_000_000_000
    for state, ib_status, since_us in states:
        at += timedelta(microseconds=since_us)
        ns += since_us * 1000
        out.append(
            {"state": state, "ib_status": ib_status, "at_utc": at.isoformat(), "at_ns": ns, "since_prev_us": since_us}
        )
    return out


def _order(order_id: int, **kw: Any) -> OrderView:
    base: OrderView = {
        "order_id": order_id,
        "perm_id": 900_000 + order_id,
        "parent_id": 0,
        "key": "AAPL",
        "order_ref": f"omega-{order_id}",
        "role": "entry",
        "side": "BUY",
        "order_type": "LMT",
        "quantity": 100,
        "filled": 0,
        "remaining": 100,
        "limit_price": None,
        "aux_price": None,
        "avg_fill_price": None,
        "state": "SUBMITTED",
        "ib_status": "Submitted",
        "transitions": [],
        "anomalies": [],
    }
    base.update(kw)  # type: ignore[typeddict-item]
    return base


def demo_orders() -> list[OrderView]:
    return [
        _order(
            1001,
            limit_price="189.50",
            state="FILLED",
            ib_status="Filled",
            filled=100,
            remaining=0,
            avg_fill_price="189.50",
            transitions=_path(
                [
                    ("NEW", "", 0),
                    ("PENDING_SUBMIT", "PendingSubmit", 180),
                    ("SUBMITTED", "Submitted", 12_400),
                    ("PARTIALLY_FILLED", "Submitted", 84_000),
                    ("FILLED", "Filled", 2_300),
                ]
            ),
        ),
        _order(
            1003,
            parent_id=1001,
            role="stop_loss",
            side="SELL",
            order_type="STP",
            aux_price="189.30",
            ib_status="PreSubmitted",
            transitions=_path(
                [("NEW", "", 0), ("PENDING_SUBMIT", "PendingSubmit", 150), ("SUBMITTED", "PreSubmitted", 11_900)]
            ),
        ),
        _order(
            1002,
            parent_id=1001,
            role="take_profit",
            side="SELL",
            limit_price="189.80",
            transitions=_path(
                [("NEW", "", 0), ("PENDING_SUBMIT", "PendingSubmit", 160), ("SUBMITTED", "Submitted", 12_100)]
            ),
        ),
        _order(
            1004,
            key="ES",
            side="SELL",
            quantity=2,
            remaining=0,
            limit_price="6013.00",
            state="CANCELLED",
            ib_status="Cancelled",
            filled=0,
            transitions=_path(
                [
                    ("NEW", "", 0),
                    ("PENDING_SUBMIT", "PendingSubmit", 200),
                    ("SUBMITTED", "Submitted", 15_000),
                    ("PENDING_CANCEL", "PendingCancel", 1_200_000),
                    ("CANCELLED", "Cancelled", 9_000),
                ]
            ),
            anomalies=["status Submitted arrived after PendingCancel (reordered callback, ignored)"],
        ),
        _order(
            1005,
            key="MSFT",
            role="manual",
            quantity=50,
            remaining=0,
            limit_price="405.00",
            state="REJECTED",
            ib_status="Inactive",
            transitions=_path(
                [("NEW", "", 0), ("PENDING_SUBMIT", "PendingSubmit", 170), ("REJECTED", "Inactive", 3_100)]
            ),
            anomalies=["IB error 201: order rejected - reason: price outside collar"],
        ),
    ]


def demo_positions() -> dict[str, PositionView]:
    return {
        "AAPL": {
            "key": "AAPL",
            "quantity": 100,
            "avg_cost": "189.50",
            "mark": "189.53",
            "unrealized": "3.00",
            "realized": "412.50",
            "commissions": "2.40",
            "broker_quantity": 100,
            "broker_unrealized": "3.00",
            "broker_realized": "412.50",
            "agrees": True,
        },
        "ES": {
            "key": "ES",
            "quantity": -2,
            "avg_cost": "5999.75",
            "mark": "6012.375",
            "unrealized": "-1271.75",
            "realized": "0.00",
            "commissions": "16.00",
            "broker_quantity": -1,
            "broker_unrealized": "-635.00",
            "broker_realized": "0.00",
            "agrees": False,
        },
    }


def demo_risk() -> RiskView:
    limits: list[LimitView] = [
        {"name": "daily_loss", "used": 874.65, "limit": 2000.0, "level": "ok"},
        {"name": "position_qty:AAPL", "used": 300.0, "limit": 1000.0, "level": "ok"},
        {"name": "position_notional:AAPL", "used": 208_000.0, "limit": 250_000.0, "level": "warn"},
        {"name": "position_qty:ES", "used": 6.0, "limit": 5.0, "level": "breach"},
        {"name": "order_rate_1s", "used": 1.0, "limit": 5.0, "level": "ok"},
        {"name": "open_orders", "used": 2.0, "limit": 50.0, "level": "ok"},
    ]
    return {
        "trading_state": "ACTIVE",
        "reason": "",
        "source": "",
        "since_utc": T0.isoformat(),
        "limits": limits,
        "denied_today": 3,
        "orders_today": 17,
        "trading_day": "2026-11-26",
    }


def demo_scheduler() -> SchedulerView:
    return {
        "decisions": 48_212,
        "abstain_rate": 0.042,
        "deadline_ms": 5.0,
        "tick_to_decision_p50_us": 310.0,
        "tick_to_decision_p99_us": 1_840.0,
        "params_version": 3,
        "deadline_satisfaction": 0.9968,
        "miss_target": 0.005,
        "headroom_us": 212.0,
        "dispatch_allowance_us": 38.0,
        "models": [
            {
                "name": "microprice",
                "samples": 512,
                "latency_p50_us": 18.0,
                "latency_p99_us": 41.0,
                "bound_us": 45.0,
                "selection_share": 0.31,
                "deadline_satisfaction": 1.0,
                "raw_accuracy": 0.53,
                "timely_accuracy": 0.53,
                "expected_accuracy": 0.53,
            },
            {
                "name": "ewma_momentum",
                "samples": 512,
                "latency_p50_us": 35.0,
                "latency_p99_us": 90.0,
                "bound_us": 96.0,
                "selection_share": 0.22,
                "deadline_satisfaction": 0.999,
                "raw_accuracy": 0.55,
                "timely_accuracy": 0.549,
                "expected_accuracy": 0.55,
            },
            {
                "name": "logistic",
                "samples": 512,
                "latency_p50_us": 1_900.0,
                "latency_p99_us": 5_400.0,
                "bound_us": 5_000.0,
                "selection_share": 0.43,
                "deadline_satisfaction": 0.97,
                "raw_accuracy": 0.61,
                "timely_accuracy": 0.592,
                "expected_accuracy": 0.6,
            },
        ],
    }


def demo_latency() -> LatencyView:
    return {
        "submit_to_ack_p50_us": 12_100.0,
        "submit_to_ack_p99_us": 31_000.0,
        "submit_to_fill_p50_us": 96_000.0,
        "submit_to_fill_p99_us": 420_000.0,
        "fill_to_commission_p50_us": 3_200.0,
        "fill_to_commission_p99_us": 9_800.0,
        "samples": 42,
    }


def demo_events() -> list[EventLine]:
    lines = [
        ("info", "system", "engine started"),
        ("info", "conn", "connected to 127.0.0.1:4002 (SIM), server version 178"),
        ("info", "order", "1001 AAPL BUY 100 @ 189.50: SUBMITTED → FILLED"),
        ("warn", "risk", "denied manual MSFT BUY 50 @ 405.00: price_collar (2.0% from mid)"),
        ("error", "api", "IB error 201: order rejected - reason: price outside collar"),
        ("warn", "risk", "position_qty:ES at 6 of 5: breach, only reducing orders allowed"),
    ]
    return [
        {
            "at_utc": (T0 + timedelta(seconds=7 * i)).isoformat(timespec="milliseconds"),
            "level": lvl,
            "kind": k,
            "text": t,
        }
        for i, (lvl, k, t) in enumerate(lines)
    ]


async def eventually(predicate: Callable[[], object], seconds: float = 10.0) -> None:
    """Poll a condition another thread (the engine's) makes true; fail after `seconds`."""
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {seconds:g} s")


def panes_dressed_halted(app: Any) -> bool:
    """Whether every pane of the main screen wears the HALTED look: a heavy border and the state in its title."""
    from omega_tui.ui.panes.base import Pane

    panes = list(app.main.query(Pane))
    return bool(panes) and all(
        pane.styles.border_top[0] == "heavy" and str(pane.border_title).endswith("■ HALTED") for pane in panes
    )
