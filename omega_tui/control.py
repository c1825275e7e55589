"""Control commands acting on a running engine through its state directory (DESIGN §3, §6).

`omega-tui status [--json]`, `halt [--reason TEXT]`, `flatten --yes`, `resume --yes`. Each command that
acts waits (bounded) for the engine's acknowledgement and says what happened. Exit codes: 0 done (status:
ACTIVE and connected), 1 refused or degraded/halted, 2 bad usage, 4 no running engine found.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omega_tui.config import Settings
from omega_tui.core.control import ControlQueue, engine_running
from omega_tui.core.hot_state import HotStateReader
from omega_tui.core.types import Command, Flatten, Halt, OrderState, Resume

EXIT_OK, EXIT_NOT_OK, EXIT_USAGE, EXIT_NO_ENGINE = 0, 1, 2, 4
ACK_TIMEOUT_S = 5.0
FLATTEN_TIMEOUT_S = 60.0
TERMINAL_ORDER_STATES = frozenset(state.value for state in OrderState if state.is_terminal)


def _no_engine(state_dir: Path) -> int:
    print(f"omega-tui: no running engine found on {state_dir} (start one with `omega-tui --no-ui`)", file=sys.stderr)
    return EXIT_NO_ENGINE


def status_report(state_dir: Path) -> dict[str, Any]:
    """Everything `status` shows, as plain JSON-able data."""
    info = engine_running(state_dir)
    reader = HotStateReader(state_dir)
    try:
        risk = reader.get("risk") or {}
        conn = reader.get("connection") or {}
        orders = reader.get("orders") or []
        flush = reader.last_flush()
        halt = reader.safety("halt")
        report: dict[str, Any] = {
            "running": info is not None,
            "engine": dict(info.__dict__) if info else None,
            "state_dir": str(state_dir),
            "trading_state": risk.get("trading_state", "HALTED" if halt else "UNKNOWN"),
            "reason": risk.get("reason", ""),
            "source": risk.get("source", ""),
            "since_utc": risk.get("since_utc", ""),
            "connection": conn,
            "positions": reader.get("positions") or {},
            "pnl": reader.get("pnl") or {},
            "open_orders": [o for o in orders if o.get("state") not in TERMINAL_ORDER_STATES],
            "limits": risk.get("limits", []),
            "components": reader.get("components") or {},
            "last_flush_ns": flush[0] if flush else None,
        }
    finally:
        reader.close()
    return report


def healthy(report: dict[str, Any]) -> bool:
    """ACTIVE, connected, and no component failed or degraded: what `status` exits 0 for."""
    components = report["components"].values()
    return (
        report["trading_state"] == "ACTIVE"
        and report["connection"].get("state") == "UP"
        and not any(c.get("state") in ("FAILED", "DEGRADED") for c in components)
    )


def cmd_status(settings: Settings, as_json: bool) -> int:
    state_dir = settings.state.dir
    report = status_report(state_dir)
    try:
        if as_json:
            print(json.dumps(report, indent=2, default=str))
        else:
            _print_status(report)
        sys.stdout.flush()
    except BrokenPipeError:
        # `omega-tui status | head`: the reader has what it wanted; point stdout at /dev/null so the
        # interpreter's final flush does not fail too, and still return the status exit code.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if not report["running"]:
        if not as_json:
            _no_engine(state_dir)
        return EXIT_NO_ENGINE
    return EXIT_OK if healthy(report) else EXIT_NOT_OK


def summary_line(get: Callable[[str], Any]) -> str:
    """One line for logs: trading state, connection, positions, working orders, P&L, components not running.

    `get(section)` returns a hot-state section (the engine's in-memory one, or a reader's).
    """
    risk = get("risk") or {}
    conn = get("connection") or {}
    orders = get("orders") or []
    pnl = get("pnl") or {}
    positions = get("positions") or {}
    components = get("components") or {}
    state = risk.get("trading_state", "UNKNOWN")
    if state != "ACTIVE" and risk.get("reason"):
        state = f"{state} ({risk['reason']})"
    held = [f"{key} {pos.get('quantity', 0):+}" for key, pos in sorted(positions.items()) if pos.get("quantity")]
    working = sum(1 for o in orders if o.get("state") not in TERMINAL_ORDER_STATES)
    loss = next((lim for lim in risk.get("limits", []) if lim.get("name") == "daily_loss"), None)
    unwell = [f"{name} {c.get('state')}" for name, c in sorted(components.items()) if c.get("state") != "RUNNING"]
    parts = [
        f"trading {state}",
        f"connection {conn.get('state', '?')}",
        f"positions {', '.join(held) if held else 'none'}",
        f"orders {working} working",
        f"P&L {pnl.get('total', '0')} (realized {pnl.get('realized', '0')})",
    ]
    if loss is not None:
        parts.append(f"daily loss {loss['used']:.2f}/{loss['limit']:.2f}")
    parts.append(f"components {'; '.join(unwell) if unwell else 'all running'}")
    return " | ".join(parts)


def _print_status(report: dict[str, Any]) -> None:
    engine = report["engine"]
    if engine is None:
        # What is left on disk is the last engine's view, not a live one: say so before showing it.
        print(f"engine      not running ({report['state_dir']}); last known state follows")
    else:
        where = f"pid {engine['pid']} on {engine['host']}, {engine['mode']}"
        print(f"engine      running, {where}  ({report['state_dir']})")
    reason = f" — {report['reason']} ({report['source']}, {report['since_utc']})" if report["reason"] else ""
    print(f"trading     {report['trading_state']}{reason}")
    conn = report["connection"]
    if conn:
        print(f"connection  {conn.get('state')} {conn.get('mode', '')} {conn.get('host', '')}:{conn.get('port', '')}")
    pnl = report["pnl"]
    if pnl:
        print(
            f"P&L         total {pnl.get('total')}  realized {pnl.get('realized')}  unrealized {pnl.get('unrealized')}"
        )
    for key, pos in sorted(report["positions"].items()):
        print(
            f"position    {key:<8} {pos.get('quantity'):>6} @ {pos.get('avg_cost')}  unrealized {pos.get('unrealized')}"
        )
    print(f"orders      {len(report['open_orders'])} working")
    for limit in report["limits"]:
        print(f"limit       {limit['name']:<24} {limit['used']:.2f} / {limit['limit']:.2f}  {limit['level']}")
    for name, comp in sorted(report["components"].items()):
        print(f"component   {name:<16} {comp.get('state')} {comp.get('detail', '')}")


def send_command(settings: Settings, command: Command, timeout_s: float = ACK_TIMEOUT_S) -> int:
    """Send one command to the running engine, wait for its answer, print it."""
    state_dir = settings.state.dir
    if engine_running(state_dir) is None:
        return _no_engine(state_dir)
    queue = ControlQueue(state_dir)
    try:
        command_id = queue.send(command)
        result = queue.wait_result(command_id, timeout_s)
    finally:
        queue.close()
    name = type(command).__name__.lower()
    if result is None:
        print(
            f"omega-tui: the engine did not acknowledge {name} within {timeout_s:.0f} s; check `omega-tui status`",
            file=sys.stderr,
        )
        return EXIT_NOT_OK
    # The engine's refusals start with "<command> refused: "; say it once.
    message = result.message.removeprefix(f"{name} refused: ")
    print(f"{name}: {'done' if result.ok else 'refused'}: {message}")
    return EXIT_OK if result.ok else EXIT_NOT_OK


def cmd_halt(settings: Settings, reason: str) -> int:
    return send_command(settings, Halt(source="control:halt", reason=reason or "halt from the command line"))


def cmd_flatten(settings: Settings, yes: bool) -> int:
    if not yes:
        print("omega-tui: flatten closes every position and cancels every order; confirm with --yes", file=sys.stderr)
        return EXIT_USAGE
    return send_command(settings, Flatten(source="control:flatten"), timeout_s=FLATTEN_TIMEOUT_S)


def cmd_resume(settings: Settings, yes: bool) -> int:
    if not yes:
        print("omega-tui: resume re-arms trading after a halt; confirm with --yes", file=sys.stderr)
        return EXIT_USAGE
    return send_command(settings, Resume(source="control:resume"))
