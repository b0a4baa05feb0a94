"""Sign-in with any OpenID Connect issuer, configured by its discovery URL.

The identity comes from the ID token, whose signature, issuer, audience, expiry and nonce
are checked against the issuer's published keys (JWKS); the userinfo endpoint fills in
the e-mail address and its verification when the ID token lacks them.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_grant_uri,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from jarvis.auth.sso.identities import NAME_LENGTH, USERNAME_LENGTH, ProviderIdentity, refused
from jarvis.auth.sso.oauth import (
    OIDC,
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
from jarvis.errors import BadGateway, Unauthorized
from jarvis.settings import Settings

# Clock skew tolerated when checking an ID token's exp/iat/nbf.
ID_TOKEN_LEEWAY_SECONDS = 60
# ID-token signatures we accept: public-key algorithms only (never "none" or HMAC).
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)


@dataclass(frozen=True)
class OidcMetadata:
    """What we use of an issuer's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    token_auth_method: str
    algorithms: tuple[str, ...]


def _metadata(document: Any, *, has_secret: bool, provider_name: str) -> OidcMetadata:
    if not isinstance(document, dict):
        raise bad_gateway(
            "provider_error", f"{provider_name}'s discovery document is not an object"
        )
    required = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
    missing = [k for k in required if not isinstance(document.get(k), str) or not document[k]]
    if missing:
        raise bad_gateway(
            "provider_error",
            f"{provider_name}'s discovery document lacks {', '.join(missing)}",
        )
    methods = document.get("token_endpoint_auth_methods_supported")
    methods = methods if isinstance(methods, list) else ["client_secret_basic"]
    if not has_secret:
        auth_method = "none"
    elif "client_secret_basic" in methods or "client_secret_post" not in methods:
        auth_method = "client_secret_basic"
    else:
        auth_method = "client_secret_post"
    offered = document.get("id_token_signing_alg_values_supported")
    algorithms = tuple(
        a for a in ASYMMETRIC_ALGORITHMS if isinstance(offered, list) and a in offered
    ) or ("RS256",)
    userinfo = document.get("userinfo_endpoint")
    return OidcMetadata(
        issuer=document["issuer"],
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
        userinfo_endpoint=userinfo if isinstance(userinfo, str) and userinfo else None,
        token_auth_method=auth_method,
        algorithms=algorithms,
    )


def _key_set(document: Any, provider_name: str) -> KeySet:
    """The issuer's signing keys (encryption keys and unknown key types left out)."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise bad_gateway("provider_error", f"{provider_name}'s key set has no keys")
    usable = [
        k
        for k in keys
        if isinstance(k, dict) and k.get("kty") in {"RSA", "EC"} and k.get("use", "sig") == "sig"
    ]
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError) as exc:
        raise bad_gateway("provider_error", f"{provider_name}'s key set cannot be read") from exc


def invalid_id_token(detail: str) -> Unauthorized:
    return Unauthorized(
        f"the ID token is not valid: {detail}", extra={"reason": "id_token_invalid"}
    )


def check_id_token_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, nonce: str | None
) -> None:
    """Check iss, sub, exp, iat, aud (and azp) and the nonce of a verified ID token."""
    registry = JWTClaimsRegistry(
        leeway=ID_TOKEN_LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(dict(claims))
    except ExpiredTokenError as exc:
        raise invalid_id_token("it has expired") from exc
    except ClaimError as exc:
        raise invalid_id_token(exc.description or exc.error) from exc
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise invalid_id_token("it was issued to another client (aud)")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise invalid_id_token("it names several audiences but another authorised party (azp)")
    presented = claims.get("nonce")
    if nonce is None or not isinstance(presented, str):
        raise invalid_id_token("it carries no nonce")
    if not hmac.compare_digest(nonce.encode(), presented.encode()):
        raise invalid_id_token("its nonce is not this sign-in's (replayed?)")


def _verified(claims: Mapping[str, Any]) -> bool | None:
    """The ``email_verified`` claim (True, False, or None when absent).

    Entra ID sends no ``email_verified``; its optional ``xms_edov`` claim (the domain owner
    verified the address) stands in when ``email_verified`` is absent.
    """
    value = claims.get("email_verified")
    if value is None:
        value = claims.get("xms_edov")
    if isinstance(value, str):  # some issuers send "true"
        return value.lower() == "true"
    return value if isinstance(value, bool) else None


class OidcSignIn:
    """Any OpenID Connect issuer, configured by its discovery URL.

    The discovery document and key set are fetched once and kept; they are fetched again
    after a failure talking to the issuer, and the keys also when a token names a key id
    the set does not have (the issuer rotated its keys).
    """

    id = OIDC
    uses_nonce = True

    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_discovery_url or not settings.oidc_client_id:
            raise ValueError("OIDC sign-in needs JARVIS_OIDC_DISCOVERY_URL and _CLIENT_ID")
        self.name = settings.oidc_name
        self.discovery_url = settings.oidc_discovery_url
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self.client_secret = secret.get_secret_value() if secret is not None else None
        self.scopes = settings.oidc_scopes
        self._metadata: OidcMetadata | None = None
        self._keys: KeySet | None = None

    def forget(self) -> None:
        """Drop what was learnt from the issuer; the next sign-in asks again."""
        self._metadata = None
        self._keys = None

    async def metadata(self) -> OidcMetadata:
        """The discovery document (fetched on first use, and again after a failure)."""
        if self._metadata is None:
            async with provider_client() as http:
                document = await get_json(
                    http, self.discovery_url, provider_name=self.name, what="the discovery document"
                )
            self._metadata = _metadata(
                document, has_secret=self.client_secret is not None, provider_name=self.name
            )
        return self._metadata

    async def keys(self, http: Any, metadata: OidcMetadata, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            document = await get_json(
                http, metadata.jwks_uri, provider_name=self.name, what="the signing keys"
            )
            self._keys = _key_set(document, self.name)
        return self._keys

    async def authorize_url(self, pending: PendingLogin, redirect_uri: str) -> str:
        try:
            metadata = await self.metadata()
        except BadGateway:
            self.forget()
            raise
        url: str = prepare_grant_uri(
            metadata.authorization_endpoint,
            client_id=self.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=self.scopes,
            state=pending.state,
            nonce=pending.nonce,
            code_challenge=create_s256_code_challenge(pending.code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def identity(self, code: str, stored: StoredLogin, redirect_uri: str) -> ProviderIdentity:
        try:
            metadata = await self.metadata()
            async with provider_client(
                client_id=self.client_id,
                client_secret=self.client_secret,
                token_endpoint_auth_method=metadata.token_auth_method,
                redirect_uri=redirect_uri,
            ) as http:
                token = await exchange_code(
                    http,
                    metadata.token_endpoint,
                    provider_name=self.name,
                    code=code,
                    verifier=stored.code_verifier,
                )
                claims = await self._id_token_claims(http, metadata, token, stored.nonce)
                if claims.get("email") is None or _verified(claims) is None:
                    claims = await self._with_userinfo(http, metadata, claims)
        except BadGateway:
            self.forget()
            raise
        return self._identity(claims)

    async def _id_token_claims(
        self, http: Any, metadata: OidcMetadata, token: dict[str, Any], nonce: str | None
    ) -> dict[str, Any]:
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise bad_gateway("provider_error", f"{self.name} issued no ID token")
        keys = await self.keys(http, metadata)
        try:
            try:
                decoded = jwt.decode(id_token, keys, algorithms=list(metadata.algorithms))
            except InvalidKeyIdError:
                keys = await self.keys(http, metadata, refresh=True)
                decoded = jwt.decode(id_token, keys, algorithms=list(metadata.algorithms))
        except InvalidKeyIdError as exc:
            raise invalid_id_token("it is signed with a key the issuer does not publish") from exc
        except JoseError as exc:
            raise invalid_id_token(f"its signature does not verify ({exc.error})") from exc
        claims = dict(decoded.claims)
        check_id_token_claims(claims, issuer=metadata.issuer, client_id=self.client_id, nonce=nonce)
        return claims

    async def _with_userinfo(
        self, http: Any, metadata: OidcMetadata, claims: dict[str, Any]
    ) -> dict[str, Any]:
        """Fill e-mail and its verification from the userinfo endpoint, when there is one."""
        if metadata.userinfo_endpoint is None:
            return claims
        info = await get_json(
            http,
            metadata.userinfo_endpoint,
            provider_name=self.name,
            what="the user information",
            with_token=True,
        )
        if not isinstance(info, dict):
            raise bad_gateway("provider_error", f"{self.name}'s user information is not an object")
        # OIDC Core 5.3.2: the userinfo sub must be the ID token's, or it is not this user.
        if info.get("sub") != claims.get("sub"):
            raise bad_gateway("provider_error", f"{self.name}'s user information is another user's")
        merged = dict(info)
        merged.update({k: v for k, v in claims.items() if v is not None})
        return merged

    def _identity(self, claims: Mapping[str, Any]) -> ProviderIdentity:
        subject = clean_text(claims.get("sub"), 255)
        if subject is None:
            raise invalid_id_token("it has no subject (sub)")
        raw_email = claims.get("email")
        if raw_email is None:
            raise refused(
                "email_missing",
                f"{self.name} did not share an e-mail address (is the 'email' scope granted?)",
            )
        email = clean_email(raw_email)
        if email is None:
            raise bad_gateway(
                "provider_error", f"{self.name} sent an e-mail address that is not valid"
            )
        if _verified(claims) is not True:
            raise refused(
                "email_unverified",
                f"{self.name} does not vouch for the e-mail address {email} (email_verified)",
            )
        first = clean_text(claims.get("given_name"), NAME_LENGTH)
        last = clean_text(claims.get("family_name"), NAME_LENGTH)
        if first is None and last is None:
            first, last = split_name(clean_text(claims.get("name"), 2 * NAME_LENGTH))
        return ProviderIdentity(
            provider=OIDC,
            subject=subject,
            email=email,
            username=clean_text(claims.get("preferred_username"), USERNAME_LENGTH),
            first_name=first,
            last_name=last,
            avatar_url=clean_url(claims.get("picture")),
        )
