"""`omega-tui validate` is registered, refuses bad usage, and refuses a live account with exit code 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from omega_tui.cli import build_parser, main


def test_validate_subcommand_defaults() -> None:
    args = build_parser().parse_args(["validate"])
    assert args.command == "validate" and args.minutes == 390 and args.out is None


def test_validate_refuses_non_positive_minutes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--state-dir", str(tmp_path / "s"), "validate", "--minutes", "0", "--out", str(tmp_path / "o")])
    assert code == 2 and "--minutes" in capsys.readouterr().err


def test_validate_refuses_a_live_account(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--state-dir", str(tmp_path / "s"), "--set", "ib.account=U1111111"]
    code = main([*argv, "validate", "--minutes", "5", "--out", str(tmp_path / "o")])
    assert code == 3
    assert "not a paper account" in capsys.readouterr().err
