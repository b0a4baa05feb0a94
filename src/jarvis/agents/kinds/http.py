"""``http``: POSTs the execution context to a configured endpoint and keeps its answer.

The host must be on the ``http.allowed_hosts`` allow-list (global config, read at run
time), so no agent can be pointed at internal addresses. Redirects are not followed (a
redirect could lead off the list), any non-2xx answer fails the step, the whole exchange
has the agent's timeout, and a body over 1 MiB fails the step as soon as it is seen: the
rest is never read.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any, ClassVar

import httpx
from pydantic import Field, StringConstraints, field_validator

from jarvis.agents.kinds.base import AgentKind, KindConfig, StepContext, StepFailed, StepResult
from jarvis.kit.schema import find_unstorable

ALLOWED_HOSTS_KEY = "http.allowed_hosts"
MAX_BODY_BYTES = 1024 * 1024
# How much of a failed answer the error message quotes.
ERROR_SNIPPET_CHARS = 300
HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")]
HeaderValue = Annotated[str, StringConstraints(pattern=r"^[^\r\n\x00]*$", max_length=4000)]
# Headers the client sets itself: letting a config set them would confuse the exchange.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection"}
)


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether ``host`` is on the list: an exact name, or under a ``*.domain`` entry."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        entry = entry.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


class HttpConfig(KindConfig):
    url: str = Field(min_length=1, max_length=2000, description="http(s) URL to POST to.")
    timeout_seconds: float = Field(
        default=10, gt=0, le=120, description="For the whole exchange, connect to last byte."
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=20, description="Extra request headers."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise ValueError(f"is not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https"):
            raise ValueError("must be an http or https URL")
        if not parsed.host or "%" in parsed.host:
            raise ValueError("must name a host")
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise ValueError("has a port outside 1-65535")
        return url

    @field_validator("headers")
    @classmethod
    def _not_reserved(cls, headers: dict[str, str]) -> dict[str, str]:
        for name in headers:
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"the header '{name}' is set by JARVIS and cannot be configured")
        return headers


def _body(raw: bytes, response: httpx.Response) -> Any:
    """The answer as JSON when it says it is JSON (and parses), else as text."""
    text = raw.decode(response.charset_encoding or "utf-8", errors="replace")
    if "json" in response.headers.get("content-type", "").lower():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class HttpKind(AgentKind):
    name: ClassVar[str] = "http"
    description: ClassVar[str] = (
        "POSTs the execution context as JSON to a configured endpoint on the "
        "http.allowed_hosts allow-list and returns the status and the (JSON or text) answer."
    )
    config_model: ClassVar[type[KindConfig]] = HttpConfig

    async def run(self, step: StepContext) -> StepResult:
        settings = step.settings_as(HttpConfig)
        url = httpx.URL(settings.url)
        allowed = await step.services.config.get(ALLOWED_HOSTS_KEY)
        # An international name may be listed in either spelling (Unicode or punycode).
        spellings = {url.host, url.raw_host.decode("ascii", errors="replace")}
        if not any(host_allowed(name, list(allowed or [])) for name in spellings):
            raise StepFailed(
                f"the host '{url.host}' is not on the allow-list of http agents: add it to "
                f"the config key {ALLOWED_HOSTS_KEY} to allow it"
            )
        payload = {
            "executionId": step.execution_id,
            "agent": {
                "id": step.agent.id,
                "name": step.agent.name,
                "handle": step.agent.handle,
                "layer": step.agent.layer,
            },
            "context": step.context,
        }
        try:
            content = json.dumps(payload, ensure_ascii=False, default=str).encode()
        except ValueError as exc:
            raise StepFailed(f"the context cannot be sent as JSON: {exc}") from None
        headers = {**settings.headers, "Content-Type": "application/json"}
        try:
            async with asyncio.timeout(settings.timeout_seconds):
                status, body = await self._post(step.services.http, url, content, headers, settings)
        except (TimeoutError, httpx.TimeoutException):
            raise StepFailed(
                f"POST {url} did not complete within {settings.timeout_seconds:g} s"
            ) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise StepFailed(f"POST {url} failed: {reason}") from None
        found = find_unstorable(body, "body")
        if found is not None:
            raise StepFailed(f"the answer of {url} cannot be stored: {found[0]} {found[1]}")
        return StepResult({"status": status, "body": body})

    @staticmethod
    async def _post(
        client: httpx.AsyncClient,
        url: httpx.URL,
        content: bytes,
        headers: dict[str, str],
        settings: HttpConfig,
    ) -> tuple[int, Any]:
        async with client.stream(
            "POST",
            url,
            content=content,
            headers=headers,
            timeout=settings.timeout_seconds,
            follow_redirects=False,
        ) as response:
            if not response.is_success:
                raise StepFailed(await _failure(url, response))
            raw = bytearray()
            async for chunk in response.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_BODY_BYTES:
                    raise StepFailed(
                        f"the answer of {url} is larger than {MAX_BODY_BYTES} bytes (1 MiB); "
                        "JARVIS stopped reading it"
                    )
            return response.status_code, _body(bytes(raw), response)


async def _failure(url: httpx.URL, response: httpx.Response) -> str:
    """Why a non-2xx answer fails the step, quoting the start of its body."""
    message = f"POST {url} answered {response.status_code} {response.reason_phrase}".rstrip()
    if response.is_redirect:
        location = response.headers.get("location", "")
        return f"{message} (redirects are not followed; Location: {location})"
    snippet = bytearray()
    async for chunk in response.aiter_bytes():
        snippet += chunk
        if len(snippet) >= ERROR_SNIPPET_CHARS:
            break
    text = snippet[:ERROR_SNIPPET_CHARS].decode("utf-8", errors="replace")
    text = text.replace("\x00", "\ufffd").strip()  # the error is stored as text
    return f"{message}: {text}" if text else message
