"""Fixtures for page tests: a browser-like client (it asks for HTML) signed in as a persona.

Page tests talk to the app through httpx like the API tests; forms are posted urlencoded
with the session's CSRF token in the ``csrf_token`` field, as a browser without JavaScript
posts them. Real-browser tests live in tests/e2e.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest

from jarvis.auth.models import User
from jarvis.db.engine import Database
from tests.factories import DEFAULT_PASSWORD, create_user

HTML = {"Accept": "text/html,application/xhtml+xml"}
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Browser:
    """An httpx client that behaves like a browser without JavaScript."""

    client: httpx.AsyncClient
    user: User | None = None
    csrf: str = ""

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.client.get(path, headers=HTML, **kwargs)  # type: ignore[arg-type]

    async def post_form(
        self, path: str, data: dict[str, str | list[str]] | list[tuple[str, str]] | None = None
    ) -> httpx.Response:
        """Post a form as the browser would (urlencoded, CSRF token in the form)."""
        fields: list[tuple[str, str]] = [("csrf_token", self.csrf)] if self.csrf else []
        items = data.items() if isinstance(data, dict) else (data or [])
        for name, value in items:
            if isinstance(value, list):
                fields.extend((name, v) for v in value)
            else:
                fields.append((name, value))
        return await self.client.post(
            path,
            content=urlencode(fields),
            headers={**HTML, "Content-Type": "application/x-www-form-urlencoded"},
        )

    async def sign_in(self, db: Database, persona: str = "admin") -> User:
        """Create a user of ``persona`` and sign in through the sign-in page."""
        self.user = await create_user(db, persona=persona)
        response = await self.client.post(
            "/login",
            data={"email": self.user.email, "password": DEFAULT_PASSWORD, "next": "/"},
            headers=HTML,
        )
        assert response.status_code == 303, response.text
        self.csrf = response.cookies["jarvis_csrf"]
        return self.user


def csrf_in(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = _CSRF_FIELD.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@pytest.fixture
def browser(client: httpx.AsyncClient) -> Browser:
    """A signed-out browser; ``await browser.sign_in(db, persona)`` signs it in."""
    client.follow_redirects = False
    return Browser(client)


@pytest.fixture
async def admin_browser(browser: Browser, db: Database) -> Browser:
    await browser.sign_in(db, "admin")
    return browser


@pytest.fixture
async def underwriter_browser(browser: Browser, db: Database) -> Browser:
    await browser.sign_in(db, "underwriter")
    return browser
