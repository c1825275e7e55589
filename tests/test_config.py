"""Settings: precedence, unknown keys, clear one-line errors, the shipped config.toml, the state dir."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from omega_tui.config import ConfigError, Settings, ensure_state_dir, load_settings, render_default_toml

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[ib]\nport = "abc"\n', "ib.port = 'abc': Input should be a valid integer"),
        ("[ib]\nprot = 5\n", "ib.prot = 5: unknown setting"),
        ("[risk]\nmax_daily_loss = -5\n", "risk.max_daily_loss = -5: Input should be greater than 0"),
        ('[ib]\nmode = "live"\n', "ib.mode = 'live': Input should be 'sim' or 'gateway'"),
        ("[riks]\nmax_daily_loss = 5\n", "riks: unknown setting"),
        ("[ui]\nrefresh_hz = 1000\n", "ui.refresh_hz = 1000: Input should be less than or equal to 60"),
        ('[risk]\nday_reset_tz = "Mars/Olympus"\n', "unknown time zone 'Mars/Olympus'"),
        ('[[instruments.watchlist]]\nsymbol = "ES"\nsec_type = "FUT"\n', "FUT ES needs an expiry"),
        ("[ib\n", "not valid TOML"),
    ],
)
def test_load_settings_when_file_is_bad_then_names_file_field_and_rule(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert any(line.startswith(str(path)) and expected in line for line in err.value.lines), err.value.lines


def test_load_settings_when_explicit_file_is_missing_then_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_load_settings_when_every_problem_is_reported_then_one_line_each(tmp_path: Path) -> None:
    path = write(tmp_path, '[ib]\nport = "x"\nclient_id = -1\n[risk]\nmax_order_qty = 0\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert len(err.value.lines) == 3


def test_precedence_cli_beats_env_beats_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[ib]\nport = 4001\nclient_id = 5\n[sim]\nseed = 99\n")
    assert Settings().ib.port == 4002  # default
    settings = load_settings(path)
    assert (settings.ib.port, settings.ib.client_id) == (4001, 5)  # file beats default
    monkeypatch.setenv("OMEGA_IB__PORT", "4003")
    settings = load_settings(path)
    assert (settings.ib.port, settings.ib.client_id, settings.sim.seed) == (4003, 5, 99)  # env beats file
    settings = load_settings(path, ["ib.port=4004"])
    assert (settings.ib.port, settings.ib.client_id) == (4004, 5)  # CLI beats env
    settings = load_settings(path, state={"dir": str(tmp_path / "s")})
    assert settings.state.dir == tmp_path / "s"


def test_config_path_comes_from_omega_config_when_no_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[ib]\nclient_id = 42\n")
    monkeypatch.setenv("OMEGA_CONFIG", str(path))
    assert load_settings().ib.client_id == 42


def test_env_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMEGA_STATE__FLUSH_MS", "never")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert err.value.lines[0].startswith("environment OMEGA_STATE__FLUSH_MS: state.flush_ms")


def test_cli_override_error_names_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, ["risk.max_order_qty=-1"])
    assert err.value.lines[0].startswith("command line: risk.max_order_qty = -1")


def test_more_instruments_than_market_data_lines_is_a_config_error(tmp_path: Path) -> None:
    items = "".join(f'[[instruments.watchlist]]\nsymbol = "S{i}"\n' for i in range(3))
    path = write(tmp_path, f"[ib]\nmax_market_data_lines = 2\n{items}")
    with pytest.raises(ConfigError, match=r"has 3 instruments but ib\.max_market_data_lines is 2"):
        load_settings(path)


def test_shipped_config_toml_loads_and_documents_every_setting() -> None:
    shipped = (ROOT / "config.toml").read_text(encoding="utf-8")
    settings = load_settings(ROOT / "config.toml")
    assert settings.ib.mode == "sim"
    rendered = render_default_toml()
    # Every documented line of the generated defaults appears in the shipped file, so a new setting
    # cannot be added without documenting it there (run `python -m omega_tui.config` to regenerate).
    missing = [line for line in rendered.splitlines() if line.startswith("#") and line not in shipped]
    assert not missing, missing[:5]
    data = tomllib.loads(shipped)
    for section in Settings.model_fields:
        assert section in data or section == "state", section


def test_state_dir_is_created_private(tmp_path: Path) -> None:
    path = ensure_state_dir(tmp_path / "a" / "state")
    assert path.is_dir() and (path.stat().st_mode & 0o077) == 0


def test_state_dir_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    path.mkdir()
    os.chmod(path, 0o777)
    with pytest.raises(ConfigError, match="writable by other users"):
        ensure_state_dir(path)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[ib]\nport = 70000\n", "ib.port = 70000: Input should be less than or equal to 65535"),
        ("[ib]\nunknown = 1\n", "unknown setting"),
        ("[risk]\nmax_position_qty = -3\n", "risk.max_position_qty"),
    ],
)
def test_cli_when_config_is_broken_then_exit_2_and_no_traceback(tmp_path: Path, toml: str, needle: str) -> None:
    path = write(tmp_path, toml)
    proc = subprocess.run(
        [sys.executable, "-m", "omega_tui", "--config", str(path), "--no-ui"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "xdg")},
    )
    assert proc.returncode == 2
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("omega-tui: config error: ")


def test_cli_when_config_file_is_missing_then_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "omega_tui", "--config", str(tmp_path / "missing.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "config file not found" in proc.stderr
