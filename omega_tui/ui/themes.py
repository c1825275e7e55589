"""Theme files: TOML in `themes/`, validated by a pydantic model and converted to Textual `Theme` objects.

A theme file looks like:

    name = "omega-dark"
    dark = true
    [colors]            # Textual's base colours; primary is required
    primary = "#4c9aff"
    background = "#0d1117"
    [variables]         # Omega's own variables, all required
    bid = "#3fb6ff"
    ask = "#ff8f6b"
    pnl-up = "#3fb950"
    pnl-down = "#f85149"
    halted = "#d7263d"

`load_theme_files` never raises for a bad file: it returns the error as one sentence naming the file and
field, so the app can notify and fall back to the default.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from textual.color import Color, ColorParseError
from textual.theme import Theme

DEFAULT_THEME = "omega-dark"
BUNDLED_THEMES_DIR = Path(__file__).resolve().parents[2] / "themes"
"""The repository's `themes/` directory (the package is installed editable, so it sits next to it)."""

OMEGA_VARIABLES = ("bid", "ask", "pnl-up", "pnl-down", "halted")

THEME_VARIABLE_DEFAULTS: dict[str, str] = {
    "bid": "#3fb6ff",
    "ask": "#ff8f6b",
    "pnl-up": "#3fb950",
    "pnl-down": "#f85149",
    "halted": "#d7263d",
}
"""Fallbacks for the custom variables, so any Textual theme (e.g. textual-dark) still renders the .tcss."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def _check_colour(value: str) -> str:
    try:
        Color.parse(value)
    except ColorParseError:
        raise ValueError(f"{value!r} is not a colour (use #rrggbb, rgb(r,g,b) or a named colour)") from None
    return value


class ThemeColors(BaseModel):
    """Textual's base colours; every one but primary may be left out and is derived by Textual."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None
    boost: str | None = None

    @field_validator("*")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        return None if value is None else _check_colour(value)


class ThemeVariables(BaseModel):
    """Omega's custom variables, used by the .tcss files and the table cell styles."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    bid: str
    ask: str
    pnl_up: str = Field(alias="pnl-up")
    pnl_down: str = Field(alias="pnl-down")
    halted: str

    @field_validator("*")
    @classmethod
    def _colour(cls, value: str) -> str:
        return _check_colour(value)


class ThemeFile(BaseModel):
    """One theme file, as written on disk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dark: bool = True
    description: str = ""
    colors: ThemeColors
    variables: ThemeVariables

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"{value!r} must be lowercase letters, digits and dashes (at most 40)")
        return value

    def to_theme(self) -> Theme:
        """The Textual `Theme`; the custom variables keep their CSS names (`pnl-up`, …)."""
        return Theme(
            name=self.name,
            dark=self.dark,
            variables=self.variables.model_dump(by_alias=True),
            **self.colors.model_dump(),
        )


@dataclass(frozen=True)
class ThemeLoad:
    """What loading found: the valid themes by name and one error sentence per bad file."""

    themes: dict[str, Theme]
    errors: list[str]


def parse_theme_file(path: Path) -> Theme:
    """Read and validate one file; raises ValueError with one sentence naming the file and field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"theme file {path}: cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"theme file {path}: not valid TOML: {exc}") from None
    try:
        return ThemeFile.model_validate(data).to_theme()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ValueError(f"theme file {path}: {field}: {msg}{more}") from None


def load_theme_files(directories: Iterable[Path | None]) -> ThemeLoad:
    """Load every `*.toml` in the directories, in order; a later file with the same name replaces an earlier one."""
    themes: dict[str, Theme] = {}
    errors: list[str] = []
    for directory in directories:
        if directory is None:
            continue
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            errors.append(f"theme directory {directory} does not exist")
            continue
        for path in sorted(directory.glob("*.toml")):
            try:
                theme = parse_theme_file(path)
            except ValueError as exc:
                errors.append(str(exc))
                continue
            themes[theme.name] = theme
    return ThemeLoad(themes, errors)
