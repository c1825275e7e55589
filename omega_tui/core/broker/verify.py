"""Startup verification (checklist §3): every configured instrument resolved and, if tradable, permitted.

`verify_instruments` fails fast with a `StartupVerificationError` that lists one line per problem, each
naming the instrument and what IB answered: no such contract, ambiguous (with the candidates), expired, or
a refused what-if order (the account may not trade it). A what-if order is never transmitted: IB only
computes its margin impact, which it refuses when the account lacks the permission. Watch-only instruments
skip that check and are never tradable. The CLI maps the error to exit code 3.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ib_async import IB, Contract, Order

from omega_tui.core.clock import Clock
from omega_tui.core.hot_state import HotState
from omega_tui.core.types import InstrumentSpec, VerifiedInstrument
from omega_tui.core.views import StartupReportRow

log = logging.getLogger(__name__)

# Routing used for the permission check: SMART where IB offers it for the asset class, else the venue.
_SMART_ROUTED = frozenset({"STK", "OPT"})


class StartupVerificationError(Exception):
    """Startup cannot go on (contracts, permissions or the connection); `lines` has one sentence per problem."""

    def __init__(self, lines: list[str], report: list[StartupReportRow] | None = None) -> None:
        super().__init__("startup verification failed:\n" + "\n".join(f"  {line}" for line in lines))
        self.lines = lines
        self.report = report or []


def describe(spec: InstrumentSpec) -> str:
    """How a problem line names an instrument: its key and what was asked of IB."""
    parts = [spec.sec_type, spec.symbol, spec.exchange, spec.currency]
    if spec.primary_exchange:
        parts.append(f"primary {spec.primary_exchange}")
    if spec.expiry:
        parts.append(f"expiry {spec.expiry}")
    if spec.right:
        parts.append(f"{spec.right} {spec.strike:g}")
    if spec.multiplier:
        parts.append(f"x{spec.multiplier}")
    return f"{spec.key} ({' '.join(parts)})"


def contract_of(spec: InstrumentSpec) -> Contract:
    """The ib_async Contract that asks IB for `spec` (not yet qualified: no conId)."""
    return Contract(
        secType=spec.sec_type,
        symbol=spec.symbol,
        exchange=spec.exchange,
        currency=spec.currency,
        primaryExchange=spec.primary_exchange,
        lastTradeDateOrContractMonth=spec.expiry,
        strike=spec.strike,
        right=spec.right,
        multiplier=spec.multiplier,
    )


@dataclass
class _ErrorLog:
    """IB errors seen during verification, per request contract (ib_async reports the request's contract)."""

    by_contract: dict[int, list[tuple[int, str]]] = field(default_factory=dict)

    def __call__(self, req_id: int, code: int, message: str, contract: Any) -> None:
        if contract is not None:
            self.by_contract.setdefault(id(contract), []).append((code, message))

    def text(self, contract: Contract) -> str:
        errors = self.by_contract.get(id(contract), [])
        return "; ".join(f"error {code}: {message}" for code, message in errors)


@dataclass(frozen=True)
class Resolved:
    """A contract IB resolved, with the details verification needs."""

    spec: InstrumentSpec
    contract: Contract
    details: Any  # ib_async ContractDetails


def _expiry_date(details: Any) -> str:
    """YYYYMMDD of the last trading day (or '' for instruments without one)."""
    for value in (details.realExpirationDate, details.contract.lastTradeDateOrContractMonth):
        text = str(value or "").strip()
        if len(text) >= 8 and text[:8].isdigit():
            return text[:8]
    return ""


def _candidate(details: Any) -> str:
    c = details.contract
    expiry = c.lastTradeDateOrContractMonth
    label = c.localSymbol or c.symbol
    return f"{label} conId {c.conId}" + (f" expiring {expiry}" if expiry else "") + f" on {c.exchange}"


async def _expired_match(ib: IB, spec: InstrumentSpec, timeout_s: float, today: str) -> str:
    """The last trading day of an expired contract matching `spec`, or '' (IB hides expired ones by default)."""
    contract = contract_of(spec)
    contract.includeExpired = True
    try:
        answer = await asyncio.wait_for(ib.reqContractDetailsAsync(contract), timeout_s)
    except (TimeoutError, ConnectionError):
        return ""
    expiries = sorted(e for e in (_expiry_date(d) for d in answer or []) if e and e < today)
    return expiries[-1] if expiries else ""


async def resolve(
    ib: IB, specs: list[InstrumentSpec], clock: Clock, timeout_s: float
) -> tuple[list[Resolved], list[tuple[str, str]]]:
    """Ask IB for every instrument's contract details at once; returns (resolved, [(key, problem line)])."""
    errors = _ErrorLog()
    ib.errorEvent += errors
    try:
        contracts = [contract_of(spec) for spec in specs]
        answers = await asyncio.gather(
            *(asyncio.wait_for(ib.reqContractDetailsAsync(c), timeout_s) for c in contracts),
            return_exceptions=True,
        )
    finally:
        ib.errorEvent -= errors
    today = clock.now_utc().strftime("%Y%m%d")
    resolved: list[Resolved] = []
    problems: list[tuple[str, str]] = []
    for spec, contract, answer in zip(specs, contracts, answers, strict=True):
        name = describe(spec)
        if isinstance(answer, BaseException):
            if isinstance(answer, TimeoutError):
                problems.append(
                    (spec.key, f"{name}: IB did not answer the contract details request within {timeout_s:g} s")
                )
            else:
                problems.append(
                    (spec.key, f"{name}: the contract details request failed: {type(answer).__name__}: {answer}")
                )
            continue
        details_list = list(answer or [])
        if not details_list:
            said = errors.text(contract) or "no contract details and no error"
            expired = await _expired_match(ib, spec, timeout_s, today) if spec.expiry else None
            if expired:
                problems.append((spec.key, f"{name}: expired, IB says its last trading day was {expired} ({said})"))
            else:
                problems.append((spec.key, f"{name}: IB found no such contract ({said})"))
            continue
        if len(details_list) > 1:
            candidates = ", ".join(_candidate(d) for d in details_list[:6])
            more = f" and {len(details_list) - 6} more" if len(details_list) > 6 else ""
            problems.append(
                (
                    spec.key,
                    f"{name}: ambiguous, IB returned {len(details_list)} contracts: {candidates}{more}; "
                    "add expiry, primary_exchange or multiplier to pick one",
                )
            )
            continue
        details = details_list[0]
        expiry = _expiry_date(details)
        if expiry and expiry < today:
            problems.append(
                (spec.key, f"{name}: expired, IB says its last trading day was {expiry} (today is {today})")
            )
            continue
        resolved.append(Resolved(spec, details.contract, details))
    seen: dict[int, str] = {}
    for item in resolved:
        con_id = int(item.contract.conId)
        if con_id in seen:
            line = f"{describe(item.spec)}: resolves to the same contract (conId {con_id}) as {seen[con_id]}"
            problems.append((item.spec.key, line))
        seen.setdefault(con_id, item.spec.key)
    return resolved, problems


def trading_contract(item: Resolved) -> Contract:
    """The qualified contract orders use: routed SMART for stocks and options, the venue otherwise."""
    c = item.contract
    exchange = "SMART" if item.spec.sec_type in _SMART_ROUTED else (c.exchange or item.spec.exchange)
    return Contract(
        conId=c.conId,
        secType=c.secType,
        symbol=c.symbol,
        exchange=exchange,
        primaryExchange=c.primaryExchange,
        currency=c.currency,
        lastTradeDateOrContractMonth=c.lastTradeDateOrContractMonth,
        strike=c.strike,
        right=c.right,
        multiplier=c.multiplier,
        localSymbol=c.localSymbol,
        tradingClass=c.tradingClass,
    )


async def check_permission(ib: IB, item: Resolved, account: str, timeout_s: float) -> tuple[bool, str]:
    """A what-if order (never transmitted): (allowed, what IB said)."""
    contract = trading_contract(item)
    size = float(getattr(item.details, "minSize", 0) or 1)
    order = Order(action="BUY", totalQuantity=max(size, 1.0), orderType="MKT", account=account, transmit=True)
    errors = _ErrorLog()
    ib.errorEvent += errors
    try:
        answer = await asyncio.wait_for(ib.whatIfOrderAsync(contract, order), timeout_s)
    except TimeoutError:
        return False, f"no answer to the what-if order within {timeout_s:g} s"
    finally:
        ib.errorEvent -= errors
    if answer is None or isinstance(answer, list) or not hasattr(answer, "initMarginChange"):
        said = errors.text(contract) or "the what-if order was refused without a reason"
        return False, said
    warning = str(getattr(answer, "warningText", "") or "")
    return True, f"what-if ok on {contract.exchange}" + (f" ({warning})" if warning else "")


def _verified(item: Resolved, permission_ok: bool, detail: str) -> VerifiedInstrument:
    c, d = item.contract, item.details
    try:
        multiplier = int(float(c.multiplier)) if c.multiplier else 1
    except ValueError:
        multiplier = 1
    return VerifiedInstrument(
        spec=item.spec,
        con_id=int(c.conId),
        min_tick=Decimal(repr(float(d.minTick))),
        multiplier=multiplier,
        exchange=str(trading_contract(item).exchange),
        primary_exchange=str(c.primaryExchange or ""),
        currency=str(c.currency),
        long_name=str(d.longName or ""),
        time_zone=str(d.timeZoneId or ""),
        trading_hours=str(d.tradingHours or ""),
        order_types=tuple(t for t in str(d.orderTypes or "").split(",") if t),
        permission_ok=permission_ok,
        permission_detail=detail,
    )


def report_rows(verified: list[VerifiedInstrument], problems: dict[str, str] | None = None) -> list[StartupReportRow]:
    """The hot state's `startup_report` section: one row per verified instrument, then one per problem key."""
    rows: list[StartupReportRow] = [
        StartupReportRow(
            instrument=v.key,
            con_id=v.con_id,
            min_tick=str(v.min_tick),
            exchange=v.exchange,
            permission_ok=v.permission_ok,
            watch_only=v.spec.watch_only,
            detail=v.permission_detail,
        )
        for v in verified
    ]
    for key, detail in (problems or {}).items():
        rows.append(
            StartupReportRow(
                instrument=key, con_id=0, min_tick="", exchange="", permission_ok=False, watch_only=False, detail=detail
            )
        )
    return rows


def log_report(rows: list[StartupReportRow]) -> None:
    log.info("startup report: %d instruments", len(rows))
    for row in rows:
        log.info(
            "  %-10s conId %-10s tick %-8s %-8s permission %-3s%s  %s",
            row["instrument"],
            row["con_id"],
            row["min_tick"],
            row["exchange"],
            "ok" if row["permission_ok"] else "no",
            " watch-only" if row["watch_only"] else "",
            row["detail"],
        )


def contract_for(v: VerifiedInstrument) -> Contract:
    """The qualified ib_async Contract for a verified instrument (conId plus the routing orders use)."""
    spec = v.spec
    return Contract(
        conId=v.con_id,
        secType=spec.sec_type,
        symbol=spec.symbol,
        exchange=v.exchange,
        primaryExchange=v.primary_exchange,
        currency=v.currency,
        lastTradeDateOrContractMonth=spec.expiry,
        strike=spec.strike,
        right=spec.right,
        multiplier=spec.multiplier,
    )


async def verify_instruments(
    ib: IB,
    specs: list[InstrumentSpec],
    clock: Clock,
    *,
    account: str = "",
    readonly: bool = False,
    timeout_s: float = 10.0,
    hot_state: HotState | None = None,
) -> list[VerifiedInstrument]:
    """Resolve and permission-check every instrument, or raise `StartupVerificationError`.

    Returns the verified instruments in configuration order (`contract_for` gives each one's qualified
    contract). Publishes the `startup_report` section (also on failure, with one row per problem) and logs
    the report. On a read-only connection no what-if order can be placed, so every instrument is reported as
    not permitted (nothing is tradable) instead of failing.
    """
    resolved, problems = await resolve(ib, specs, clock, timeout_s)
    to_check = [item for item in resolved if not item.spec.watch_only and not readonly]
    answers = await asyncio.gather(*(check_permission(ib, item, account, timeout_s) for item in to_check))
    by_key = {item.spec.key: answer for item, answer in zip(to_check, answers, strict=True)}
    verified: list[VerifiedInstrument] = []
    for item in resolved:
        if item.spec.watch_only:
            ok, detail = False, "watch-only: permission not checked, never traded"
        elif readonly:
            ok, detail = False, "read-only connection: permission not checked, never traded"
        else:
            ok, detail = by_key[item.spec.key]
            if not ok:
                problems.append((item.spec.key, f"{describe(item.spec)}: the account may not trade it: {detail}"))
        verified.append(_verified(item, ok, detail))
    problem_keys = {key for key, _ in problems}
    order = {spec.key: i for i, spec in enumerate(specs)}
    problems.sort(key=lambda p: order.get(p[0], len(order)))
    rows = report_rows([v for v in verified if v.key not in problem_keys], {k: line for k, line in problems})
    log_report(rows)
    if hot_state is not None:
        hot_state.set("startup_report", rows)
    if problems:
        raise StartupVerificationError([line for _, line in problems], rows)
    return verified
