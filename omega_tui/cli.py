"""The `omega-tui` command line (DESIGN §6).

Exit codes: 0 ok, 2 bad usage or config, 3 startup verification failed, 4 no running engine found.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from omega_tui import __version__
from omega_tui.config import ConfigError, Settings, ensure_state_dir, load_settings
from omega_tui.launcher import EXIT_STARTUP, EXIT_USAGE, gateway_for
from omega_tui.logs import setup_logging

log = logging.getLogger("omega_tui.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omega-tui",
        description="Omega TUI: a terminal trading workstation for Interactive Brokers. "
        "Without a subcommand it runs the workstation (or the headless engine with --no-ui).",
    )
    parser.add_argument("--version", action="version", version=f"omega-tui {__version__}")
    parser.add_argument("--config", metavar="PATH", help="config file (default: $OMEGA_CONFIG, else ./config.toml)")
    parser.add_argument("--no-ui", action="store_true", help="run the engine headless, logging JSON lines to stderr")
    # The workstation's engine child (launcher.EngineProcess): log to the file only, stop with the parent.
    parser.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    # ...and its end of the UI's direct command channel (the kill switch's fast path), an inherited socket.
    parser.add_argument("--control-fd", type=int, metavar="FD", help=argparse.SUPPRESS)
    parser.add_argument(
        "--set",
        metavar="SECTION.FIELD=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one setting, e.g. --set ib.port=4002 (repeatable; beats environment and file)",
    )
    parser.add_argument("--state-dir", metavar="DIR", help="state directory (overrides state.dir)")
    parser.add_argument("--mode", choices=("sim", "gateway"), help="override ib.mode")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND")
    subs.add_parser(
        "sim-gateway",
        help="run the simulated IB Gateway on 127.0.0.1 (see `omega-tui sim-gateway --help`)",
        add_help=False,
    )
    status = subs.add_parser("status", help="show the running engine's state (exit 0 ACTIVE+connected, 1 not, 4 none)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    halt = subs.add_parser("halt", help="halt the running engine now: latch HALTED, cancel every order")
    halt.add_argument("--reason", default="", help="why (recorded with the halt)")
    flatten = subs.add_parser("flatten", help="halt, cancel every order and close every position")
    flatten.add_argument("--yes", action="store_true", help="confirm")
    resume = subs.add_parser("resume", help="re-arm trading after a halt (refused while a limit is breached)")
    resume.add_argument("--yes", action="store_true", help="confirm")
    subs.add_parser("attach", help="open the workstation UI on an engine running elsewhere on this machine")
    validate = subs.add_parser(
        "validate",
        help="run a paper-trading day (simulated gateway, accelerated; or a paper account) and report checklist §8 "
        "(exit 0 all passed, 1 a check failed, 3 startup failed)",
    )
    validate.add_argument("--minutes", type=float, default=390.0, help="session minutes to run (default 390)")
    validate.add_argument("--out", metavar="DIR", help="report directory (default ./validation-<date>)")
    validate.add_argument(
        "--speed", type=float, default=100.0, help="sim mode: market minutes per wall minute (default 100)"
    )
    return parser


def _load(args: argparse.Namespace) -> Settings:
    flags: dict[str, dict[str, object]] = {}
    if args.state_dir:
        flags["state"] = {"dir": args.state_dir}
    if args.mode:
        flags["ib"] = {"mode": args.mode}
    settings = load_settings(args.config, args.overrides, **flags)
    ensure_state_dir(settings.state.dir)
    return settings


def _config_error(exc: ConfigError) -> int:
    for line in exc.lines:
        print(f"omega-tui: config error: {line}", file=sys.stderr)
    return EXIT_USAGE


def engine_options(args: argparse.Namespace) -> list[str]:
    """The options that chose these settings, for the workstation's engine child (same cwd and environment)."""
    out: list[str] = []
    if args.config:
        out += ["--config", args.config]
    for override in args.overrides:
        out += ["--set", override]
    if args.state_dir:
        out += ["--state-dir", args.state_dir]
    if args.mode:
        out += ["--mode", args.mode]
    return out


def run_engine(
    settings: Settings,
    *,
    headless: bool,
    exit_with_parent: bool = False,
    options: Sequence[str] = (),
    control_fd: int | None = None,
) -> int:
    """`omega-tui --no-ui` (the engine, in this process), or `omega-tui` (the UI here, the engine a child)."""
    # Refuse a second engine before starting a simulator or touching the terminal; the runtime's own lock
    # (taken first thing in Runtime.run) still settles a race between two starts.
    from omega_tui.core.control import already_running, engine_running

    holder = engine_running(settings.state.dir)
    if holder is not None:
        print(f"omega-tui: {already_running(settings.state.dir, holder)}", file=sys.stderr)
        return EXIT_USAGE
    if not headless:
        from omega_tui.launcher import run_workstation

        return run_workstation(settings, list(options))
    from omega_tui.sim.process import SimProcessError

    setup_logging(settings.state.dir, settings.logging.level, stderr_json=not exit_with_parent)
    from omega_tui.headless import ENGINE_SWITCH_INTERVAL_S

    sys.setswitchinterval(ENGINE_SWITCH_INTERVAL_S)  # this process is the engine (see the constant)
    if exit_with_parent:
        from omega_tui.lifetime import die_with_parent

        die_with_parent("engine")  # before the simulated gateway starts: it is this process's child in turn
    try:
        with gateway_for(settings) as effective:
            from omega_tui.headless import run_headless

            return run_headless(effective, exit_with_parent=exit_with_parent, control_fd=control_fd)
    except SimProcessError as exc:
        log.error("%s", exc)
        print(f"omega-tui: startup failed: {exc}", file=sys.stderr)
        return EXIT_STARTUP


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "sim-gateway":
        # A separate peer with its own options; it reads no Omega config (it is the "other side").
        from omega_tui.sim.cli import main as sim_main

        return sim_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        settings = _load(args)
    except ConfigError as exc:
        return _config_error(exc)
    if args.command is None:
        try:
            return run_engine(
                settings,
                headless=args.no_ui or args.exit_with_parent,
                exit_with_parent=args.exit_with_parent,
                options=engine_options(args),
                control_fd=args.control_fd,
            )
        except ConfigError as exc:
            return _config_error(exc)
    from omega_tui import control

    if args.command == "status":
        return control.cmd_status(settings, args.json)
    if args.command == "halt":
        return control.cmd_halt(settings, args.reason)
    if args.command == "flatten":
        return control.cmd_flatten(settings, args.yes)
    if args.command == "resume":
        return control.cmd_resume(settings, args.yes)
    if args.command == "validate":
        from omega_tui.validate.cli import cmd_validate

        return cmd_validate(settings, args.minutes, args.out, args.speed)
    if args.command == "attach":
        from omega_tui.launcher import run_attached

        return run_attached(settings)
    parser.error(f"unknown command {args.command!r}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
