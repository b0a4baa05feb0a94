"""Sign-in with GitHub through the whole redirect flow, against the loopback provider.

The app is called through ASGITransport (the browser's side); the provider is a real HTTP
server the app's Authlib client talks to; the browser follows the redirects between them.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from jarvis.audit.models import AuditTrail
from jarvis.auth.models import OAuthIdentity, OAuthLoginState, User, UserProfile, UserSession
from jarvis.auth.sessions.cookies import SESSION_COOKIE
from jarvis.auth.sso.oauth import safe_next_path, state_binding
from jarvis.auth.users.service import create_user as service_create_user
from jarvis.core.identity import Actor
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.clock import utcnow
from jarvis.kit.secrets import sha256_hex
from tests.auth.conftest import (
    APP_BASE,
    PROBLEM,
    World,
    assert_failure_audited,
    assert_problem,
    audit_entries,
    open_world,
    query_of,
)
from tests.auth.oauth_provider import (
    GITHUB_CLIENT_ID,
    Account,
    LoopbackProvider,
    closed_port_url,
    s256,
)
from tests.conftest import TEST_SECRET_KEY
from tests.factories import TEST_ACTOR

STATE_COOKIE = "jarvis_oauth_github"


async def count(db: Database, model: type) -> int:
    async with unit_of_work(db, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def set_config(world: World, key: str, value: object) -> None:
    async with unit_of_work(world.db) as session:
        await world.app.state.config.set_value(session, key, value, actor=TEST_ACTOR)


# --- the way there --------------------------------------------------------------------------


async def test_login_redirects_to_github_with_state_and_pkce(world: World) -> None:
    browser = world.browser()
    response = await browser.start(next_path="/agents")
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{world.provider.base}/login/oauth/authorize?")
    params = query_of(location)
    assert params["client_id"] == GITHUB_CLIENT_ID
    assert params["redirect_uri"] == f"{APP_BASE}/api/callback"
    assert params["scope"] == "read:user user:email"
    assert params["code_challenge_method"] == "S256"
    state = params["state"]
    assert len(state) >= 43

    # The state is kept only as a digest, with the verifier behind the challenge.
    async with unit_of_work(world.db, write=False) as session:
        row = await session.scalar(select(OAuthLoginState))
    assert row is not None
    assert row.state_hash == sha256_hex(state) != state
    assert row.provider == "github"
    assert s256(row.code_verifier) == params["code_challenge"]
    assert row.next_path == "/agents"
    assert row.expires_at - row.created_at == timedelta(minutes=10)

    # The browser is bound to the state by an HttpOnly cookie for the callback only.
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(f"{STATE_COOKIE}=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in attributes
    assert "path=/api/callback" in attributes
    assert "max-age=600" in attributes
    assert f"{STATE_COOKIE}={state_binding(TEST_SECRET_KEY, state)}" in cookie


async def test_public_url_sets_the_redirect_uri(
    db: Database, database_url: str, provider: LoopbackProvider
) -> None:
    async with open_world(
        db, database_url, provider, public_url="https://jarvis.example.com/"
    ) as world:
        response = await world.browser().start()
    assert query_of(response.headers["location"])["redirect_uri"] == (
        "https://jarvis.example.com/api/callback"
    )


# --- success --------------------------------------------------------------------------------


async def test_first_sign_in_creates_the_user_and_a_working_session(world: World) -> None:
    browser = world.browser()
    response = await browser.sign_in()
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/"
    assert browser.app.cookies.get(SESSION_COOKIE)
    assert browser.app.cookies.get("jarvis_csrf")

    me = await browser.app.get("/api/user")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["email"] == "mona@example.com"
    assert body["persona"] == "underwriter"
    assert body["firstName"] == "Mona"
    assert body["lastName"] == "Lisa Octocat"
    assert body["profileImageUrl"] == "https://avatars.example.com/u/583231"

    async with unit_of_work(world.db, write=False) as session:
        user = await session.scalar(select(User).where(User.email == "mona@example.com"))
        assert user is not None
        assert user.password_hash is None
        identity = await session.scalar(select(OAuthIdentity))
        assert identity is not None
        assert (identity.provider, identity.subject, identity.user_id) == (
            "github",
            "583231",
            user.id,
        )
        assert identity.username == "octocat"
        assert identity.last_login_at is not None
        profile = await session.scalar(select(UserProfile).where(UserProfile.user_id == user.id))
        assert profile is not None and profile.display_name == "Mona Lisa Octocat"
        sessions = (await session.scalars(select(UserSession))).all()
        assert [s.via for s in sessions] == ["github"]
        assert await session.scalar(select(func.count()).select_from(OAuthLoginState)) == 0

    logins = await audit_entries(world.db, "auth.login")
    assert logins[-1]["via"] == "github"
    assert world.provider.token_requests[-1]["code_verifier"]
    assert await world.login_failures() == []


async def test_second_sign_in_reuses_the_user_and_follows_the_profile(world: World) -> None:
    assert (await world.browser().sign_in()).status_code == 303
    world.provider.next_account = Account(name="Mona Octocat-Smith", avatar_url=None)
    second = world.browser()
    assert (await second.sign_in()).status_code == 303
    me = (await second.app.get("/api/user")).json()
    assert me["firstName"] == "Mona"
    assert me["lastName"] == "Octocat-Smith"
    # Not given this time: the stored avatar stays.
    assert me["profileImageUrl"] == "https://avatars.example.com/u/583231"
    assert await count(world.db, User) == 1
    assert await count(world.db, OAuthIdentity) == 1
    assert await count(world.db, UserSession) == 2


async def test_signing_in_again_in_the_same_browser_replaces_its_session(world: World) -> None:
    browser = world.browser()
    assert (await browser.sign_in()).status_code == 303
    first = browser.app.cookies[SESSION_COOKIE]
    assert (await browser.sign_in()).status_code == 303
    assert browser.app.cookies[SESSION_COOKIE] != first
    async with unit_of_work(world.db, write=False) as session:
        revoked = await session.scalars(select(UserSession.revoked_at).order_by(UserSession.id))
        assert [r is not None for r in revoked] == [True, False]


async def test_links_an_existing_local_user_by_email(world: World) -> None:
    async with unit_of_work(world.db) as session:
        local = await service_create_user(
            session,
            email="Mona@Example.com",
            persona="admin",
            password="correct horse battery staple",
            actor=TEST_ACTOR,
        )
    browser = world.browser()
    assert (await browser.sign_in()).status_code == 303
    me = (await browser.app.get("/api/user")).json()
    assert me["id"] == local.id
    assert me["persona"] == "admin"
    assert await count(world.db, User) == 1
    linked = await audit_entries(world.db, "auth.identity_linked")
    assert linked == [{"provider": "github", "subject": "583231", "email": "mona@example.com"}]


async def test_next_path_is_honoured(world: World) -> None:
    response = await world.browser().sign_in(next_path="/agents?layer=System#top")
    assert response.status_code == 303
    assert response.headers["location"] == "/agents?layer=System#top"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "https://evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "/\t/evil.com",
        "javascript:alert(1)",
        "http:/evil.com",
        "evil.com",
        "",
    ],
)
async def test_open_redirects_fall_back_to_the_dashboard(world: World, target: str) -> None:
    response = await world.browser().sign_in(next_path=target)
    assert response.status_code == 303
    assert response.headers["location"] == "/"


@given(st.text(max_size=40) | st.from_regex(r"\A[/\\]{1,3}[a-z.:@]{0,12}\Z"))
def test_safe_next_path_only_ever_returns_a_local_path(value: str) -> None:
    result = safe_next_path(value)
    assert result == "/" or result == value
    parts = urlsplit(result)
    assert result.startswith("/") and not result.startswith("//")
    assert not parts.scheme and not parts.netloc
    assert "\\" not in result
    assert not any(ord(ch) < 0x20 or ch.isspace() for ch in result)


# --- refused: state -------------------------------------------------------------------------


async def test_wrong_state_is_refused(world: World) -> None:
    browser = world.browser()
    back = await browser.authorize(await browser.start())
    tampered = back.replace("state=", "state=x")
    response = await browser.callback(tampered)
    assert_problem(response, 400, "state_mismatch")
    await assert_failure_audited(world, "state_mismatch")
    assert await count(world.db, UserSession) == 0


async def test_unknown_state_is_refused_even_with_a_matching_cookie(world: World) -> None:
    browser = world.browser()
    back = await browser.authorize(await browser.start())
    code = query_of(back)["code"]
    forged = "f" * 43
    response = await world.browser().app.get(
        "/api/callback",
        params={"code": code, "state": forged},
        headers={"Cookie": f"{STATE_COOKIE}={state_binding(TEST_SECRET_KEY, forged)}"},
    )
    assert_problem(response, 400, "state_unknown")
    await assert_failure_audited(world, "state_unknown")


async def test_missing_state_is_refused(world: World) -> None:
    response = await world.browser().app.get("/api/callback", params={"code": "abc"})
    assert_problem(response, 400, "state_missing")
    await assert_failure_audited(world, "state_missing")


async def test_state_from_another_browser_is_refused(world: World) -> None:
    victim, attacker = world.browser(), world.browser()
    # The attacker starts a sign-in and tries to finish it in the victim's browser.
    back = await attacker.authorize(await attacker.start())
    await victim.start()  # the victim even has a sign-in of their own under way
    response = await victim.callback(back)
    assert_problem(response, 400, "state_mismatch")
    assert await count(world.db, UserSession) == 0
    await assert_failure_audited(world, "state_mismatch")
    # The refused attempt did not use up the attacker's state: only its browser can.
    assert (await attacker.callback(back)).status_code == 303


async def test_reused_state_is_refused(world: World) -> None:
    browser = world.browser()
    back = await browser.authorize(await browser.start())
    binding = browser.app.cookies[STATE_COOKIE]
    assert (await browser.callback(back)).status_code == 303
    # Replay the whole callback, cookie included (the success answer cleared it).
    response = await browser.app.get(back, headers={"Cookie": f"{STATE_COOKIE}={binding}"})
    assert_problem(response, 400, "state_unknown")
    await assert_failure_audited(world, "state_unknown")
    assert await count(world.db, UserSession) == 1


async def test_expired_state_is_refused_and_used_up(world: World) -> None:
    browser = world.browser()
    back = await browser.authorize(await browser.start())
    async with unit_of_work(world.db) as session:
        await session.execute(
            update(OAuthLoginState).values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = await browser.callback(back)
    assert_problem(response, 400, "state_expired")
    await assert_failure_audited(world, "state_expired")
    assert await count(world.db, OAuthLoginState) == 0
    # The refusal also clears the state cookie.
    assert any(
        h.startswith(f"{STATE_COOKIE}=") and "max-age=0" in h.lower()
        for h in response.headers.get_list("set-cookie")
    )


async def test_callback_without_a_code_is_refused(world: World) -> None:
    browser = world.browser()
    back = await browser.authorize(await browser.start())
    state = query_of(back)["state"]
    response = await browser.app.get("/api/callback", params={"state": state})
    assert_problem(response, 400, "code_missing")
    await assert_failure_audited(world, "code_missing")


# --- refused: the provider's answer -------------------------------------------------------------


async def test_reused_code_is_refused_with_the_providers_reason(world: World) -> None:
    first = world.browser()
    back = await first.authorize(await first.start())
    assert (await first.callback(back)).status_code == 303
    # A new sign-in (fresh state) that presents the already redeemed code.
    second = world.browser()
    fresh = await second.authorize(await second.start())
    replay = fresh.replace(query_of(fresh)["code"], query_of(back)["code"])
    response = await second.callback(replay)
    body = assert_problem(response, 400, "code_rejected")
    assert "bad_verification_code" in str(body["detail"])
    await assert_failure_audited(world, "code_rejected")
    assert await count(world.db, UserSession) == 1


async def test_denied_consent_is_refused(world: World) -> None:
    world.provider.consent = "deny"
    browser = world.browser()
    back = await browser.authorize(await browser.start())
    assert query_of(back)["error"] == "access_denied"
    response = await browser.callback(back)
    assert_problem(response, 403, "access_denied")
    await assert_failure_audited(world, "access_denied")
    assert await count(world.db, User) == 0
    assert world.provider.hits["github_access_token"] == 0


async def test_unverified_email_is_refused(world: World) -> None:
    world.provider.next_account = Account(email_verified=False)
    response = await world.browser().sign_in()
    assert_problem(response, 403, "email_unverified")
    await assert_failure_audited(world, "email_unverified")
    assert await count(world.db, User) == 0


async def test_disallowed_domain_is_refused(world: World) -> None:
    await set_config(world, "auth.sso_allowed_domains", ["insurer.example"])
    response = await world.browser().sign_in()
    assert_problem(response, 403, "domain_not_allowed")
    failures = await world.login_failures()
    assert failures[-1]["reason"] == "domain_not_allowed"
    assert failures[-1]["email"] == "mona@example.com"
    assert await count(world.db, User) == 0

    world.provider.next_account = Account(email="mona@Insurer.example")
    assert (await world.browser().sign_in()).status_code == 303


async def test_missing_default_persona_is_refused_clearly(world: World) -> None:
    await set_config(world, "auth.sso_default_persona", "claims_adjuster")
    response = await world.browser().sign_in()
    body = assert_problem(response, 403, "persona_missing")
    assert "claims_adjuster" in str(body["detail"])
    await assert_failure_audited(world, "persona_missing")
    assert await count(world.db, User) == 0
    assert await count(world.db, OAuthIdentity) == 0


async def test_inactive_user_is_refused(world: World) -> None:
    assert (await world.browser().sign_in()).status_code == 303
    async with unit_of_work(world.db) as session:
        await session.execute(update(User).values(is_active=False))
    response = await world.browser().sign_in()
    assert_problem(response, 403, "user_inactive")
    await assert_failure_audited(world, "user_inactive")
    assert await count(world.db, UserSession) == 1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"github_token_url": "closed"}, "provider_unreachable"),
        ({"github_api_url": "closed"}, "provider_unreachable"),
        ({"github_token_url": "broken"}, "provider_error"),
        ({"github_token_url": "garbage"}, "provider_error"),
        ({"github_api_url": "garbage"}, "provider_error"),
        ({"github_api_url": "broken"}, "provider_error"),
    ],
)
async def test_provider_trouble_answers_502(
    db: Database,
    database_url: str,
    provider: LoopbackProvider,
    overrides: dict[str, str],
    reason: str,
) -> None:
    places = {
        "closed": closed_port_url(),
        "broken": f"{provider.base}/broken/x",
        "garbage": f"{provider.base}/garbage/x",
    }
    settings = {name: places[where] for name, where in overrides.items()}
    async with open_world(db, database_url, provider, **settings) as world:
        response = await world.browser().sign_in()
        assert_problem(response, 502, reason)
        await assert_failure_audited(world, reason)
        assert await count(world.db, User) == 0


async def test_wrong_client_secret_answers_502_naming_the_cause(
    db: Database, database_url: str, provider: LoopbackProvider
) -> None:
    async with open_world(db, database_url, provider, github_client_secret="stale") as world:
        response = await world.browser().sign_in()
        body = assert_problem(response, 502, "client_rejected")
        assert "incorrect_client_credentials" in str(body["detail"])
        await assert_failure_audited(world, "client_rejected")


# --- configuration ----------------------------------------------------------------------------


async def test_providers_lists_what_is_configured(world: World) -> None:
    response = await world.browser().app.get("/api/login/providers")
    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {"id": "github", "name": "GitHub", "loginUrl": "/api/login/github"},
            {"id": "oidc", "name": "Loopback SSO", "loginUrl": "/api/login/oidc"},
        ]
    }


async def test_unconfigured_providers_are_not_offered(
    db: Database, database_url: str, provider: LoopbackProvider
) -> None:
    async with open_world(
        db,
        database_url,
        provider,
        github_client_id=None,
        github_client_secret=None,
    ) as world:
        browser = world.browser()
        listed = (await browser.app.get("/api/login/providers")).json()
        assert [p["id"] for p in listed["items"]] == ["oidc"]
        response = await browser.start("github")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith(PROBLEM)
        assert "JARVIS_GITHUB_CLIENT_ID" in response.json()["detail"]
        assert (await browser.app.get("/api/callback?code=a&state=b")).status_code == 404

    async with open_world(
        db,
        database_url,
        provider,
        github_client_id=None,
        oidc_discovery_url=None,
    ) as world:
        listed = (await world.browser().app.get("/api/login/providers")).json()
        assert listed == {"items": []}


async def test_failed_sign_in_is_audited_by_the_system_actor(world: World) -> None:
    world.provider.consent = "deny"
    await world.browser().sign_in()
    async with unit_of_work(world.db, write=False) as session:
        row = await session.scalar(
            select(AuditTrail).where(AuditTrail.action == "auth.login_failed")
        )
    assert row is not None
    assert row.actor == Actor.system("oauth").label
    assert row.after is not None and row.after["ipAddress"]
