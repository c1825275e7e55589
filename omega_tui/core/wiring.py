"""The one place where the engines are built and connected to each other (DESIGN §4, runtime row)."""

from __future__ import annotations

from omega_tui.config import Settings
from omega_tui.core.clock import Clock
from omega_tui.core.runtime import Runtime


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    """A runtime with every engine the settings call for, wired but not started."""
    runtime = Runtime(settings, clock)
    return runtime
