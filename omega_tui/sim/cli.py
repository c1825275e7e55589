"""`omega-tui sim-gateway`: run the simulated IB Gateway in the foreground until SIGINT/SIGTERM.

Prints one line, `sim-gateway listening on 127.0.0.1:PORT`, once it accepts connections. Exit codes:
0 after a signal, 2 for bad usage or configuration (bad scenario file, port in use, non-loopback host).

`--exit-with-parent` is how an engine runs it as its embedded gateway (`omega_tui.sim.process`): the
process asks Linux for SIGTERM when its parent dies (PR_SET_PDEATHSIG), exits when its stdin reaches EOF
(the parent closed the pipe, or died), and reads control lines on stdin: `burst N` and
`tick_interval SECONDS` (benchmark mode).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from omega_tui.lifetime import die_with_parent, watch_stdin
from omega_tui.sim.faults import Scenario, ScenarioError
from omega_tui.sim.gateway import SimGateway

log = logging.getLogger("omega_tui.sim.cli")


def build_parser() -> argparse.ArgumentParser:
    """The sim-gateway command line."""
    p = argparse.ArgumentParser(
        prog="omega-tui sim-gateway",
        description="Run the simulated IB Gateway (TWS API protocol) on loopback.",
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind: 127.0.0.1 (default) or ::1")
    p.add_argument("--port", type=int, default=4002, help="TCP port (default 4002, the paper Gateway's; 0 = any)")
    p.add_argument("--seed", type=int, default=7, help="seed of the market and the matcher (default 7)")
    p.add_argument("--speed", type=float, default=1.0, help="market event-rate multiplier (default 1.0)")
    p.add_argument("--scenario", metavar="FILE", help="TOML fault scenario to play (see omega_tui.sim.faults)")
    p.add_argument("--account", default="DU1234567", help="the simulated account id")
    p.add_argument("--max-lines", type=int, default=100, help="market-data lines before error 101 (default 100)")
    p.add_argument("--tick-interval", type=float, default=0.05, help="seconds between market steps (default 0.05)")
    p.add_argument("--burst", type=int, default=0, help="benchmark mode: extra quote events per step per contract")
    p.add_argument(
        "--rate-limit",
        type=int,
        default=50,
        help="incoming messages a second before error 100, as IB Gateway's 50/s (default 50; benchmarks lift it)",
    )
    p.add_argument(
        "--extra-stocks", type=int, default=0, help="list N seeded synthetic US stocks besides the fixed contracts"
    )
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="run as a child process: exit when the parent dies or closes stdin; read control lines on stdin",
    )
    p.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.exit_with_parent:
        die_with_parent("simulated gateway")
    if (
        args.speed <= 0
        or args.tick_interval <= 0
        or args.max_lines < 1
        or args.rate_limit < 1
        or args.burst < 0
        or args.extra_stocks < 0
    ):
        print(
            "sim-gateway: --speed and --tick-interval must be > 0, --max-lines and --rate-limit >= 1, "
            "--burst and --extra-stocks >= 0",
            file=sys.stderr,
        )
        return 2
    try:
        scenario = Scenario.load(args.scenario) if args.scenario else None
        gw = SimGateway(
            seed=args.seed,
            speed=args.speed,
            host=args.host,
            port=args.port,
            scenario=scenario,
            account=args.account,
            max_lines=args.max_lines,
            tick_interval=args.tick_interval,
            rate_limit=args.rate_limit,
            extra_stocks=args.extra_stocks,
        )
    except (ScenarioError, ValueError) as e:
        print(f"sim-gateway: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(gw, args.burst, args.exit_with_parent))
    except OSError as e:
        print(f"sim-gateway: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr)
        return 2


async def _serve(gw: SimGateway, burst: int, with_parent: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if with_parent else ())):
        loop.add_signal_handler(sig, stop.set)
    if with_parent:
        _watch_stdin(gw, stop)
    port = await gw.start_async()
    if burst:
        gw.server.set_burst(burst)
    print(f"sim-gateway listening on {gw.host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await gw.stop_async()
    return 0


def _watch_stdin(gw: SimGateway, stop: asyncio.Event) -> None:
    """Stop at EOF on stdin (the parent closed the pipe or died); apply `burst N` lines meanwhile."""

    def on_eof() -> None:
        log.info("stdin closed (the parent stopped the gateway or ended); stopping")
        stop.set()

    watch_stdin(asyncio.get_running_loop(), on_eof, lambda line: _control(gw, line.split()))


def _control(gw: SimGateway, words: list[str]) -> None:
    if len(words) == 2 and words[0] == "burst" and words[1].isdigit():
        gw.server.set_burst(int(words[1]))
        log.info("burst set to %s quote events per step per streamed contract", words[1])
    elif len(words) == 2 and words[0] == "tick_interval" and _positive(words[1]):
        gw.server.tick_interval = float(words[1])
        log.info("market step every %s s", words[1])
    elif words:
        log.warning("ignoring control line %r (expected `burst N` or `tick_interval SECONDS`)", " ".join(words))


def _positive(text: str) -> bool:
    try:
        return 0 < float(text) < 60
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
