"""The sign-in providers a server's settings configure (GitHub, OpenID Connect), and the
app's one set of them (``sign_in_providers``: the API routes and the sign-in page ask it)."""

from __future__ import annotations

from collections.abc import Iterator

from starlette.requests import HTTPConnection

from jarvis.auth.sso.github import GitHubSignIn
from jarvis.auth.sso.oauth import GITHUB, OIDC, SignInProvider
from jarvis.auth.sso.oidc import OidcSignIn
from jarvis.errors import NotFound
from jarvis.kit.app_state import StateKey
from jarvis.settings import SETTINGS, Settings


class SignInProviders:
    """The providers these settings configure, in the order the sign-in page lists them."""

    def __init__(self, settings: Settings) -> None:
        self._providers: dict[str, SignInProvider] = {}
        if settings.github_client_id and settings.github_client_secret:
            self._providers[GITHUB] = GitHubSignIn(settings)
        if settings.oidc_discovery_url and settings.oidc_client_id:
            self._providers[OIDC] = OidcSignIn(settings)

    def __iter__(self) -> Iterator[SignInProvider]:
        return iter(self._providers.values())

    def get(self, provider: str) -> SignInProvider:
        """The provider, or 404 when it is not configured."""
        found = self._providers.get(provider)
        if found is None:
            setting = (
                "JARVIS_GITHUB_CLIENT_ID" if provider == GITHUB else "JARVIS_OIDC_DISCOVERY_URL"
            )
            raise NotFound(f"sign-in with {provider} is not configured on this server ({setting})")
        return found


SIGN_IN_PROVIDERS: StateKey[SignInProviders] = StateKey(
    "sign_in_providers", "the configured SSO providers (built at the first sign-in)"
)


def sign_in_providers(connection: HTTPConnection) -> SignInProviders:
    """The app's configured providers (built once, so OIDC discovery is cached)."""
    providers = SIGN_IN_PROVIDERS.find(connection)
    if providers is None:
        providers = SignInProviders(SETTINGS.get(connection))
        SIGN_IN_PROVIDERS.put(connection.app, providers)
    return providers
