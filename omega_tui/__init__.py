"""Omega TUI: a terminal trading workstation for Interactive Brokers."""

from __future__ import annotations

__version__ = "0.1.0"
