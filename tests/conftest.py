"""Shared fixtures. Each test gets its own state directory; nothing touches the user's real one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omega_tui.core.clock import FakeClock


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("OMEGA_"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()
