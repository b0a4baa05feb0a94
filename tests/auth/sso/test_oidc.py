"""Sign-in with OpenID Connect through the whole redirect flow, against the loopback issuer:
discovery, PKCE, the nonce, and the ID token's signature and claims."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from jarvis.auth.models import OAuthIdentity, User, UserSession
from jarvis.auth.sessions.cookies import SESSION_COOKIE
from jarvis.auth.sso.identities import ProviderIdentity
from jarvis.auth.sso.oidc import OidcSignIn, _metadata, check_id_token_claims
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.errors import BadGateway, Forbidden, Unauthorized
from tests.auth.conftest import (
    APP_BASE,
    World,
    assert_failure_audited,
    assert_problem,
    audit_entries,
    open_world,
    query_of,
    sso_settings,
)
from tests.auth.oauth_provider import (
    OIDC_CLIENT_ID,
    OIDC_CLIENT_SECRET,
    Account,
    LoopbackProvider,
    closed_port_url,
    s256,
)

OIDC_STATE_COOKIE = "jarvis_oauth_oidc"


async def users(db: Database) -> int:
    async with unit_of_work(db, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_login_redirects_with_nonce_pkce_and_scopes(world: World) -> None:
    browser = world.browser()
    response = await browser.start("oidc", next_path="/dashboard")
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{world.provider.base}/authorize?")
    params = query_of(location)
    assert params["client_id"] == OIDC_CLIENT_ID
    assert params["response_type"] == "code"
    assert params["scope"] == "openid email profile"
    assert params["redirect_uri"] == f"{APP_BASE}/api/callback/oidc"
    assert params["code_challenge_method"] == "S256"
    assert len(params["nonce"]) >= 43
    assert params["nonce"] != params["state"]
    assert browser.app.cookies.get(OIDC_STATE_COOKIE)


async def test_discovery_is_fetched_once_and_cached(world: World) -> None:
    for _ in range(3):
        assert (await world.browser().start("oidc")).status_code == 302
    assert world.provider.hits["discovery"] == 1


async def test_sign_in_creates_the_user_from_the_id_token(world: World) -> None:
    browser = world.browser()
    response = await browser.sign_in("oidc", next_path="/dashboard")
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard"
    assert browser.app.cookies.get(SESSION_COOKIE)

    me = (await browser.app.get("/api/user")).json()
    assert me["email"] == "mona@example.com"
    assert me["firstName"] == "Mona"
    assert me["lastName"] == "Lisa Octocat"
    assert me["persona"] == "underwriter"

    async with unit_of_work(world.db, write=False) as session:
        identity = await session.scalar(select(OAuthIdentity))
        assert identity is not None
        assert (identity.provider, identity.subject) == ("oidc", "user-583231")
        assert identity.username == "octocat"
        assert (await session.scalars(select(UserSession.via))).all() == ["oidc"]
    assert (await audit_entries(world.db, "auth.login"))[-1]["via"] == "oidc"

    # The code was redeemed with client_secret_basic and the PKCE verifier; the e-mail came
    # from the ID token, so userinfo was not needed.
    sent = world.provider.token_requests[-1]
    expected = base64.b64encode(f"{OIDC_CLIENT_ID}:{OIDC_CLIENT_SECRET}".encode()).decode()
    assert sent["authorization"] == f"Basic {expected}"
    assert "client_secret" not in sent
    assert s256(sent["code_verifier"]) == world.provider.authorize_requests[-1]["code_challenge"]
    assert world.provider.hits["userinfo"] == 0


async def test_email_missing_from_the_id_token_comes_from_userinfo(world: World) -> None:
    world.provider.drop_claims = {"email", "email_verified"}
    browser = world.browser()
    assert (await browser.sign_in("oidc")).status_code == 303
    assert world.provider.hits["userinfo"] == 1
    assert (await browser.app.get("/api/user")).json()["email"] == "mona@example.com"


async def test_github_and_oidc_accounts_with_one_email_are_one_user(world: World) -> None:
    assert (await world.browser().sign_in("github")).status_code == 303
    assert (await world.browser().sign_in("oidc")).status_code == 303
    assert await users(world.db) == 1
    async with unit_of_work(world.db, write=False) as session:
        providers = (await session.scalars(select(OAuthIdentity.provider))).all()
    assert sorted(providers) == ["github", "oidc"]


def _expired() -> dict[str, Any]:
    return {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        ({"sign_with_wrong_key": True}, "signature"),
        ({"id_token_claims": {"aud": "someone-else"}}, "another client"),
        ({"id_token_claims": {"nonce": "not-the-nonce-we-sent"}}, "nonce"),
        ({"id_token_claims": _expired()}, "expired"),
        ({"id_token_claims": {"iss": "https://impostor.example.com"}}, "iss"),
        ({"drop_claims": {"nonce"}}, "nonce"),
        ({"id_token_kid": "rotated-away"}, "key the issuer does not publish"),
    ],
    ids=[
        "bad-signature",
        "wrong-audience",
        "wrong-nonce",
        "expired",
        "wrong-issuer",
        "no-nonce",
        "unknown-key",
    ],
)
async def test_invalid_id_tokens_are_refused(
    world: World, spoil: dict[str, Any], words: str
) -> None:
    for name, value in spoil.items():
        setattr(world.provider, name, value)
    response = await world.browser().sign_in("oidc")
    body = assert_problem(response, 401, "id_token_invalid")
    assert words in str(body["detail"])
    await assert_failure_audited(world, "id_token_invalid", via="oidc")
    assert await users(world.db) == 0


async def test_an_unknown_key_id_makes_the_keys_be_fetched_again(world: World) -> None:
    assert (await world.browser().sign_in("oidc")).status_code == 303
    assert world.provider.hits["jwks"] == 1
    world.provider.id_token_kid = "rotated-away"
    assert (await world.browser().sign_in("oidc")).status_code == 401
    assert world.provider.hits["jwks"] == 2


async def test_unverified_email_is_refused(world: World) -> None:
    world.provider.next_account = Account(email_verified=False)
    response = await world.browser().sign_in("oidc")
    assert_problem(response, 403, "email_unverified")
    await assert_failure_audited(world, "email_unverified", via="oidc")
    assert await users(world.db) == 0


async def test_denied_consent_is_refused(world: World) -> None:
    world.provider.consent = "deny"
    response = await world.browser().sign_in("oidc")
    assert_problem(response, 403, "access_denied")
    await assert_failure_audited(world, "access_denied", via="oidc")
    assert world.provider.hits["oidc_token"] == 0


async def test_reused_code_is_refused(world: World) -> None:
    first = world.browser()
    back = await first.authorize(await first.start("oidc"))
    assert (await first.callback(back)).status_code == 303
    second = world.browser()
    fresh = await second.authorize(await second.start("oidc"))
    replay = fresh.replace(query_of(fresh)["code"], query_of(back)["code"])
    body = assert_problem(await second.callback(replay), 400, "code_rejected")
    assert "invalid_grant" in str(body["detail"])
    await assert_failure_audited(world, "code_rejected", via="oidc")


async def test_state_of_the_other_provider_is_refused(world: World) -> None:
    """A GitHub state presented at the OIDC callback (with the browser's cookie) fails."""
    browser = world.browser()
    back = await browser.authorize(await browser.start("github"))
    params = query_of(back)
    github_binding = browser.app.cookies["jarvis_oauth_github"]
    response = await browser.app.get(
        "/api/callback/oidc",
        params=params,
        headers={"Cookie": f"{OIDC_STATE_COOKIE}={github_binding}"},
    )
    assert_problem(response, 400, "state_unknown")
    # The GitHub sign-in is still intact.
    assert (await browser.callback(back)).status_code == 303


async def test_discovery_failure_is_502_and_retried_next_time(world: World) -> None:
    world.provider.discovery_failures = 1
    response = await world.browser().start("oidc")
    body = assert_problem(response, 502, "provider_error")
    assert "500" in str(body["detail"])
    await assert_failure_audited(world, "provider_error", via="oidc")
    assert (await world.browser().sign_in("oidc")).status_code == 303
    assert world.provider.hits["discovery"] == 2


async def test_issuer_down_is_502(
    db: Database, database_url: str, provider: LoopbackProvider
) -> None:
    down = f"{closed_port_url()}/.well-known/openid-configuration"
    async with open_world(db, database_url, provider, oidc_discovery_url=down) as world:
        response = await world.browser().start("oidc")
        assert_problem(response, 502, "provider_unreachable")
        await assert_failure_audited(world, "provider_unreachable", via="oidc")


# --- the checks on their own ------------------------------------------------------------------


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "https://issuer.example",
        "sub": "u1",
        "aud": "client",
        "iat": now,
        "exp": now + 60,
        "nonce": "n-1",
    }
    claims.update(overrides)
    return claims


def test_several_audiences_need_us_as_the_authorised_party() -> None:
    check = {"issuer": "https://issuer.example", "client_id": "client", "nonce": "n-1"}
    check_id_token_claims(_claims(aud=["client", "api"], azp="client"), **check)
    with pytest.raises(Unauthorized, match="authorised party"):
        check_id_token_claims(_claims(aud=["client", "api"], azp="api"), **check)
    with pytest.raises(Unauthorized, match="another client"):
        check_id_token_claims(_claims(aud=["api"]), **check)
    with pytest.raises(Unauthorized, match="'exp'"):
        check_id_token_claims({k: v for k, v in _claims().items() if k != "exp"}, **check)


def test_entra_domain_verification_stands_in_for_email_verified(tmp_path: Any) -> None:
    settings = sso_settings(f"sqlite+aiosqlite:///{tmp_path}/x.db", "https://issuer.example")
    oidc = OidcSignIn(settings)
    base = {"sub": "u1", "email": "Ann@Insurer.example"}
    identity = oidc._identity({**base, "xms_edov": True})
    assert identity == ProviderIdentity(provider="oidc", subject="u1", email="ann@insurer.example")
    assert oidc._identity({**base, "email_verified": "true"}).email == "ann@insurer.example"
    for unverified in ({"xms_edov": False}, {}, {"email_verified": False, "xms_edov": True}):
        with pytest.raises(Forbidden, match="email_verified"):
            oidc._identity({**base, **unverified})


def test_client_authentication_and_algorithms_follow_the_discovery_document() -> None:
    document = {
        "issuer": "https://issuer.example",
        "authorization_endpoint": "https://issuer.example/a",
        "token_endpoint": "https://issuer.example/t",
        "jwks_uri": "https://issuer.example/k",
        "id_token_signing_alg_values_supported": ["none", "HS256", "ES256", "RS256"],
    }
    read = _metadata(document, has_secret=True, provider_name="x")
    assert read.token_auth_method == "client_secret_basic"
    assert read.algorithms == ("RS256", "ES256")
    assert read.userinfo_endpoint is None
    only_post = {**document, "token_endpoint_auth_methods_supported": ["client_secret_post"]}
    assert _metadata(only_post, has_secret=True, provider_name="x").token_auth_method == (
        "client_secret_post"
    )
    assert _metadata(document, has_secret=False, provider_name="x").token_auth_method == "none"
    symmetric_only = {**document, "id_token_signing_alg_values_supported": ["HS256"]}
    assert _metadata(symmetric_only, has_secret=True, provider_name="x").algorithms == ("RS256",)
    with pytest.raises(BadGateway, match="jwks_uri"):
        _metadata({**document, "jwks_uri": ""}, has_secret=True, provider_name="x")
