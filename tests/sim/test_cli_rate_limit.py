"""`omega-tui sim-gateway --rate-limit N`: IB's 50 messages a second, lifted by benchmarks; bad values refused."""

from __future__ import annotations

from typing import Any

import pytest

from omega_tui.sim import cli
from omega_tui.sim.process import SimGatewayProcess


def test_rate_limit_reaches_the_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []

    async def serve(gw: Any, burst: int, with_parent: bool = False) -> int:
        built.append(gw)
        return 0

    monkeypatch.setattr(cli, "_serve", serve)
    assert cli.main(["--port", "0", "--rate-limit", "1000000"]) == 0
    assert cli.main(["--port", "0"]) == 0
    assert [gw.server.rate_limit for gw in built] == [1_000_000, 50]


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_rate_limit_below_one_is_refused_with_a_clear_error(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--port", "0", "--rate-limit", value]) == 2
    err = capsys.readouterr().err
    assert "--rate-limit >= 1" in err


def test_a_rate_limit_that_is_not_a_number_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--port", "0", "--rate-limit", "fast"])
    assert exc.value.code == 2
    assert "--rate-limit: invalid int value: 'fast'" in capsys.readouterr().err


def test_the_child_process_command_carries_the_rate_limit() -> None:
    argv = SimGatewayProcess(rate_limit=10**9).argv
    assert argv[argv.index("--rate-limit") + 1] == str(10**9)
    default = SimGatewayProcess().argv
    assert default[default.index("--rate-limit") + 1] == "50"
