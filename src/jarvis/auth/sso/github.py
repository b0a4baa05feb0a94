"""Sign-in with GitHub (an OAuth 2.0 app): the identity is read from GitHub's API."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

from jarvis.auth.sso.identities import NAME_LENGTH, USERNAME_LENGTH, ProviderIdentity, refused
from jarvis.auth.sso.oauth import (
    GITHUB,
    PendingLogin,
    StoredLogin,
    bad_gateway,
    clean_email,
    clean_text,
    clean_url,
    exchange_code,
    get_json,
    provider_client,
    split_name,
)
from jarvis.settings import Settings

GITHUB_SCOPE = "read:user user:email"
GITHUB_API_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
}


class GitHubSignIn:
    """ "Login with GitHub" (an OAuth app); the URLs can point at GitHub Enterprise."""

    id = GITHUB
    name = "GitHub"
    uses_nonce = False

    def __init__(self, settings: Settings) -> None:
        if not settings.github_client_id or settings.github_client_secret is None:
            raise ValueError("GitHub sign-in needs JARVIS_GITHUB_CLIENT_ID and _SECRET")
        self.client_id = settings.github_client_id
        self.client_secret = settings.github_client_secret.get_secret_value()
        self.authorize_endpoint = settings.github_authorize_url
        self.token_endpoint = settings.github_token_url
        self.api_url = settings.github_api_url.rstrip("/")

    async def authorize_url(self, pending: PendingLogin, redirect_uri: str) -> str:
        url: str = prepare_grant_uri(
            self.authorize_endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=GITHUB_SCOPE,
            state=pending.state,
            code_challenge=create_s256_code_challenge(pending.code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def identity(self, code: str, stored: StoredLogin, redirect_uri: str) -> ProviderIdentity:
        async with provider_client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            # GitHub documents the id and secret as form parameters.
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
            redirect_uri=redirect_uri,
            headers=GITHUB_API_HEADERS,
        ) as http:
            await exchange_code(
                http,
                self.token_endpoint,
                provider_name=self.name,
                code=code,
                verifier=stored.code_verifier,
            )
            user = await get_json(
                http,
                f"{self.api_url}/user",
                provider_name=self.name,
                what="the user",
                with_token=True,
                accept=GITHUB_API_HEADERS["Accept"],
            )
            emails = await get_json(
                http,
                f"{self.api_url}/user/emails",
                provider_name=self.name,
                what="the e-mail addresses",
                with_token=True,
                accept=GITHUB_API_HEADERS["Accept"],
            )
        return self._identity(user, emails)

    def _identity(self, user: Any, emails: Any) -> ProviderIdentity:
        if not isinstance(user, dict) or not isinstance(emails, list):
            raise bad_gateway(
                "provider_error", "GitHub's user or e-mail answer has the wrong shape"
            )
        subject = user.get("id")
        if not isinstance(subject, int) or isinstance(subject, bool):
            raise bad_gateway("provider_error", "GitHub's user answer has no numeric id")
        primary = next(
            (e for e in emails if isinstance(e, dict) and e.get("primary") is True), None
        )
        if primary is None:
            raise refused("email_missing", "the GitHub account has no primary e-mail address")
        if primary.get("verified") is not True:
            raise refused(
                "email_unverified",
                "the GitHub account's primary e-mail address is not verified; verify it at "
                "GitHub and sign in again",
            )
        email = clean_email(primary.get("email"))
        if email is None:
            raise bad_gateway("provider_error", "GitHub's primary e-mail address is not valid")
        first, last = split_name(clean_text(user.get("name"), 2 * NAME_LENGTH))
        return ProviderIdentity(
            provider=GITHUB,
            subject=str(subject),
            email=email,
            username=clean_text(user.get("login"), USERNAME_LENGTH),
            first_name=first,
            last_name=last,
            avatar_url=clean_url(user.get("avatar_url")),
        )
