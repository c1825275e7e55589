"""UI fixtures: a demo FakeEngine, default settings, and an app factory with a frozen clock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from omega_tui.config import Settings
from omega_tui.ui.app import OmegaApp
from tests.ui.fake_engine import FakeEngine, frozen_now


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine.demo()


@pytest.fixture
def make_app(engine: FakeEngine) -> Callable[..., OmegaApp]:
    def make(client: Any = None, **ui: Any) -> OmegaApp:
        settings = Settings(ui=ui) if ui else Settings()
        return OmegaApp(client if client is not None else engine, settings, now=frozen_now)

    return make
