"""Persona themes: WCAG AA contrast for every configured scheme, in light and dark mode."""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.config.builtin import DEFAULT_COLOURS
from jarvis.core.scope import Scope
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.data import PERSONAS
from jarvis.personas.schemas import ColorScheme
from jarvis.personas.service import COLOURS_KEY, list_personas
from jarvis.web.theme import (
    AA_TEXT,
    MODES,
    contrast_pairs,
    contrast_ratio,
    parse_colour,
    relative_luminance,
    scheme_version,
    theme_css,
)
from jarvis.wiring import config_service
from tests.factories import create_personas
from tests.web.conftest import Browser


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    white, black = (255.0, 255.0, 255.0), (0.0, 0.0, 0.0)
    assert contrast_ratio(white, black) == pytest.approx(21.0)
    assert contrast_ratio(white, white) == pytest.approx(1.0)
    # WebAIM's checker: #767676 on white is the lightest grey that passes AA (4.54:1).
    grey, _ = parse_colour("#767676")
    assert contrast_ratio(grey, white) == pytest.approx(4.54, abs=0.01)
    assert relative_luminance(parse_colour("#fff")[0]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "rgb", "alpha"),
    [
        ("#0f172a", (15.0, 23.0, 42.0), 1.0),
        ("#abc", (170.0, 187.0, 204.0), 1.0),
        ("#00000080", (0.0, 0.0, 0.0), 128 / 255),
        ("rgba(15, 23, 42, 0.7)", (15.0, 23.0, 42.0), 0.7),
        ("rgb(1,2,3)", (1.0, 2.0, 3.0), 1.0),
    ],
)
def test_parse_colour(text: str, rgb: tuple[float, float, float], alpha: float) -> None:
    assert parse_colour(text) == (rgb, pytest.approx(alpha))


def _assert_readable(scheme: dict[str, str], who: str) -> None:
    for mode in MODES:
        for pair, ratio in contrast_pairs(scheme, mode):
            assert ratio >= AA_TEXT, f"{who}, {mode} mode: {pair} is {ratio:.2f}:1"


def test_configured_demo_schemes_reach_aa_in_both_modes() -> None:
    _assert_readable(DEFAULT_COLOURS, "global default")
    for persona in PERSONAS:
        _assert_readable(persona.color_scheme.model_dump(), persona.key)


async def test_every_stored_persona_scheme_reaches_aa(db: Database) -> None:
    """Computed from what the ConfigService serves for each registered persona."""
    await create_personas(db)
    config = config_service(db, poll_seconds=0)
    async with unit_of_work(db, write=False) as session:
        personas, total = await list_personas(session, limit=100, offset=0)
    assert total >= 2
    for persona in personas:
        scheme = await config.get(COLOURS_KEY, Scope(persona=persona.key))
        _assert_readable(scheme, persona.key)


_byte = st.integers(0, 255)
_hex = st.builds(lambda r, g, b: f"#{r:02x}{g:02x}{b:02x}", _byte, _byte, _byte)
_glass = st.builds(
    lambda r, g, b, a: f"rgba({r}, {g}, {b}, 0.{a})", _byte, _byte, _byte, st.integers(0, 99)
)


@settings(max_examples=150, deadline=None)
@given(primary=_hex, secondary=_hex, accent=_hex, background=_hex, glass=_glass)
def test_any_valid_scheme_gets_a_readable_theme(
    primary: str, secondary: str, accent: str, background: str, glass: str
) -> None:
    scheme = ColorScheme(
        primary=primary,
        secondary=secondary,
        accent=accent,
        background=background,
        glassmorphism=glass,
    ).model_dump()
    _assert_readable(scheme, "generated")


def test_theme_keeps_the_configured_colours_where_they_are_readable() -> None:
    css = theme_css(DEFAULT_COLOURS)
    dark = css.split(':root[data-mode="dark"]', 1)[1]
    # The admin scheme's background and accent are readable as configured: used unchanged.
    assert "--bg: #0f172a;" in dark
    assert "--link: #60a5fa;" in dark
    assert "prefers-color-scheme: dark" in css


def test_scheme_version_changes_with_any_colour() -> None:
    changed = {**DEFAULT_COLOURS, "accent": "#60a5fb"}
    assert scheme_version(changed) != scheme_version(DEFAULT_COLOURS)
    assert scheme_version(dict(reversed(list(DEFAULT_COLOURS.items())))) == scheme_version(
        DEFAULT_COLOURS
    )


async def test_theme_stylesheet_is_served_per_persona_and_cached_by_version(
    client: httpx.AsyncClient, db: Database
) -> None:
    await create_personas(db)
    page = await client.get("/theme/underwriter.css")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/css")
    assert page.headers["cache-control"] == "no-cache"
    version = page.headers["etag"].strip('"')
    pinned = await client.get(f"/theme/underwriter.css?v={version}")
    assert "immutable" in pinned.headers["cache-control"]
    # The underwriter's green, not the admin's blue, drives its buttons.
    assert re.search(r"--button: #0[0-9a-f]{5};", page.text)
    assert page.text != (await client.get("/theme/admin.css")).text
    bad = await client.get("/theme/..%2Fetc.css")
    assert bad.status_code in (404, 422)


async def test_pages_link_the_viewers_persona_theme(admin_browser: Browser) -> None:
    page = await admin_browser.get("/login?next=/")
    assert page.status_code == 303  # already signed in: straight on
    error_page = await admin_browser.get("/no-such-page")
    assert error_page.status_code == 404
    assert re.search(r'href="/theme/admin\.css\?v=[0-9a-f]{12}"', error_page.text)


async def test_mode_preference_is_remembered(admin_browser: Browser) -> None:
    response = await admin_browser.post_form(
        "/preferences/mode", {"mode": "dark", "next": "/no-such-page"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/no-such-page"
    page = await admin_browser.get("/no-such-page")
    assert '<html lang="en" data-mode="dark">' in page.text
    odd = await admin_browser.post_form("/preferences/mode", {"mode": "purple", "next": "//x"})
    assert odd.headers["location"] == "/"
    page = await admin_browser.get("/no-such-page")
    assert '<html lang="en">' in page.text
