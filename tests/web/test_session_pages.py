"""The sign-in page, signing out, and error pages in the product's style."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter

from jarvis.db.engine import Database
from jarvis.settings import Settings
from tests.factories import DEFAULT_PASSWORD, app_client, create_user
from tests.web.conftest import HTML, Browser, csrf_in


async def test_sign_in_page_without_providers(browser: Browser) -> None:
    page = await browser.get("/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<label for="f-email">E-mail address' in page.text
    assert '<label for="f-password">Password' in page.text
    assert "Login with" not in page.text


async def test_sign_in_page_offers_github_when_configured(settings: Settings, db: Database) -> None:
    configured = Settings(
        **{**settings.model_dump(), "github_client_id": "abc", "github_client_secret": "shh"}
    )
    async with app_client(configured, db) as client:
        page = await client.get("/login?next=/agents", headers=HTML)
    assert 'href="/api/login/github?next=%2Fagents"' in page.text
    assert "Login with GitHub" in page.text


async def test_wrong_password_shows_the_error_and_keeps_the_email(
    browser: Browser, db: Database
) -> None:
    user = await create_user(db, persona="admin")
    response = await browser.client.post(
        "/login", data={"email": user.email, "password": "not it", "next": "/"}, headers=HTML
    )
    assert response.status_code == 401
    assert 'role="alert"' in response.text
    assert "incorrect" in response.text.lower()
    assert f'value="{user.email}"' in response.text
    assert "jarvis_session" not in response.headers.get("set-cookie", "")


async def test_blank_sign_in_is_a_422_with_a_message(browser: Browser) -> None:
    response = await browser.client.post("/login", data={"email": "", "password": ""}, headers=HTML)
    assert response.status_code == 422
    assert "Enter your e-mail address and password." in response.text


async def test_sign_in_lands_on_next_but_never_off_site(browser: Browser, db: Database) -> None:
    user = await create_user(db, persona="admin")
    for asked, landed in (("/agents?layer=Role", "/agents?layer=Role"), ("//evil.test/", "/")):
        response = await browser.client.post(
            "/login",
            data={"email": user.email, "password": DEFAULT_PASSWORD, "next": asked},
            headers=HTML,
        )
        assert response.status_code == 303
        assert response.headers["location"] == landed
        assert response.cookies.get("jarvis_session")


async def test_anonymous_pages_redirect_to_sign_in_with_next(browser: Browser) -> None:
    response = await browser.get("/agents?persona=underwriter")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fagents%3Fpersona%3Dunderwriter"


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(
    admin_browser: Browser,
) -> None:
    page = await admin_browser.get("/no-such-page")
    token = csrf_in(page.text)
    assert token == admin_browser.csrf
    forged = await admin_browser.client.post(
        "/logout",
        content="csrf_token=wrong",
        headers={**HTML, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert forged.status_code == 403
    assert "CSRF" in forged.text
    assert forged.headers["content-type"].startswith("text/html")
    response = await admin_browser.post_form("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    admin_browser.client.cookies.clear()
    again = await admin_browser.client.get("/api/user")
    assert again.status_code == 401


async def test_unknown_page_is_a_styled_404_for_browsers_and_a_problem_for_apis(
    admin_browser: Browser,
) -> None:
    page = await admin_browser.get("/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "We could not find that page" in page.text
    assert 'aria-current="page"' not in page.text  # no section is current
    assert "/no/such/page" in page.text
    api = await admin_browser.client.get("/no/such/page", headers={"Accept": "application/json"})
    assert api.headers["content-type"] == "application/problem+json"
    api_path = await admin_browser.client.get("/api/nothing", headers=HTML)
    assert api_path.headers["content-type"] == "application/problem+json"


async def test_unexpected_errors_render_the_error_page(settings: Settings, db: Database) -> None:
    broken = APIRouter()

    @broken.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    async with app_client(settings, db, broken) as client:
        transport = client._transport
        assert isinstance(transport, httpx.ASGITransport)
        transport.raise_app_exceptions = False
        page = await client.get("/boom", headers=HTML)
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.text
    assert "kaput" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("body", ["a=%ff", "&".join(f"f{i}=1" for i in range(1001))])
async def test_unreadable_forms_are_400_pages(browser: Browser, body: str) -> None:
    response = await browser.client.post(
        "/login",
        content=body,
        headers={**HTML, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")


async def test_a_json_body_on_a_form_route_is_a_415(browser: Browser) -> None:
    response = await browser.client.post("/login", json={"email": "x"}, headers=HTML)
    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.text
