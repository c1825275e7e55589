"""Theme files: validated, converted to Textual themes with Omega's variables; a bad one falls back loudly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from textual.color import Color

from omega_tui.ui.app import OmegaApp
from omega_tui.ui.themes import BUNDLED_THEMES_DIR, OMEGA_VARIABLES, load_theme_files, parse_theme_file

GOOD = """
name = "{name}"
dark = true
[colors]
primary = "#336699"
[variables]
bid = "#00aaff"
ask = "#ffaa00"
pnl-up = "#0072b2"
pnl-down = "#e69f00"
halted = "#cc0000"
"""


def test_the_bundled_themes_load_with_every_omega_variable() -> None:
    loaded = load_theme_files([BUNDLED_THEMES_DIR])
    assert loaded.errors == []
    assert {"omega-dark", "omega-light", "omega-contrast"} <= set(loaded.themes)
    for theme in loaded.themes.values():
        assert set(OMEGA_VARIABLES) <= set(theme.variables)


def _hue(colour: str) -> float:
    h, _s, _l = Color.parse(colour).hsl
    return h * 360


def test_the_contrast_theme_does_not_tell_up_from_down_by_red_versus_green() -> None:
    theme = load_theme_files([BUNDLED_THEMES_DIR]).themes["omega-contrast"]
    for name in ("pnl-up", "pnl-down", "bid", "ask"):
        hue = _hue(theme.variables[name])
        assert not (hue < 20 or hue > 340), f"{name} is red"
        assert not (75 < hue < 160), f"{name} is green"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.format(name="x").replace('"#00aaff"', '"bluish"'), "variables.bid: 'bluish' is not a colour"),
        (GOOD.format(name="x").replace('halted = "#cc0000"', ""), "variables.halted: Field required"),
        (GOOD.format(name="Bad Name"), "name: 'Bad Name' must be lowercase letters, digits and dashes"),
        (GOOD.format(name="x") + "extra = 1\n", "variables.extra: unknown key"),
        ("name = ", "not valid TOML"),
    ],
)
def test_a_bad_theme_file_is_reported_in_one_sentence_naming_file_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        parse_theme_file(path)
    assert str(info.value).startswith(f"theme file {path}: ")
    assert expected in str(info.value)


async def test_a_user_theme_dir_adds_themes_and_a_bad_chosen_theme_falls_back_with_a_notification(
    tmp_path: Path, make_app: Callable[..., OmegaApp]
) -> None:
    (tmp_path / "mine.toml").write_text(GOOD.format(name="mine"))
    (tmp_path / "broken.toml").write_text(GOOD.format(name="broken").replace('"#336699"', '"nope"'))
    app = make_app(theme="broken", themes_dir=str(tmp_path))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "mine" in app.available_themes
        assert app.theme == "omega-dark"
        messages = [n.message for n in app._notifications]
        assert any(m.startswith(f"theme file {tmp_path / 'broken.toml'}: colors.primary") for m in messages)
        assert any("ui.theme = 'broken' is not a valid theme; using omega-dark instead." in m for m in messages)
        assert app.get_css_variables()["pnl-up"] == "#3fb950"


async def test_a_textual_theme_without_omega_variables_still_renders(make_app: Callable[..., OmegaApp]) -> None:
    app = make_app(theme="nord")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert app.theme == "nord"
        assert app.get_css_variables()["halted"] == "#d7263d"  # from get_theme_variable_defaults
