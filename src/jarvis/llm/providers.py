"""Which provider and model an agent uses, resolved through ConfigService.

``llm.provider``, ``llm.model``, ``llm.base_url`` and ``llm.timeout_seconds`` are read
for the step's scope (workflow > agent > persona > global), so one agent can call a
local Ollama while the rest of its persona stays offline. One ``Providers`` lives as
long as the engine: it keeps the offline rules provider and one OpenAI-compatible client
per endpoint and timeout, so steps share HTTP connection pools instead of opening new
ones for every call.
"""

from __future__ import annotations

from jarvis.config.service import ConfigService
from jarvis.core.scope import Scope
from jarvis.llm.base import LLMProvider, ProviderError
from jarvis.llm.openai_provider import OpenAIProvider
from jarvis.llm.rules import RulesProvider
from jarvis.settings import Settings


class Providers:
    """The providers of one process; ``for_scope`` picks one for a step."""

    def __init__(self, api_key: str | None = None) -> None:
        # Only from the environment (JARVIS_OPENAI_API_KEY), never from ConfigService.
        self._api_key = api_key or None
        self.rules = RulesProvider()
        self._openai: dict[tuple[str, float], OpenAIProvider] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Providers:
        """Providers using the process's ``JARVIS_OPENAI_API_KEY``, if any."""
        key = settings.openai_api_key
        return cls(key.get_secret_value() if key is not None else None)

    async def for_scope(self, config: ConfigService, scope: Scope) -> tuple[LLMProvider, str]:
        """The provider and model configured for ``scope``."""
        name = await config.get("llm.provider", scope)
        model = str(await config.get("llm.model", scope))
        if name == self.rules.name:
            return self.rules, model
        if name == OpenAIProvider.name:
            base_url = str(await config.get("llm.base_url", scope))
            timeout = float(await config.get("llm.timeout_seconds", scope))
            return self.openai(base_url, timeout), model
        raise ProviderError(
            f"llm.provider is '{name}' for {scope.describe()}; known providers: "
            f"{self.rules.name}, {OpenAIProvider.name}"
        )

    def openai(self, base_url: str, timeout_seconds: float) -> OpenAIProvider:
        """The client for this endpoint and timeout, created on first use."""
        # "…/v1" and "…/v1/" are one endpoint (the SDK adds the slash itself).
        cache_key = (base_url.rstrip("/"), timeout_seconds)
        provider = self._openai.get(cache_key)
        if provider is None:
            provider = OpenAIProvider(
                base_url=cache_key[0], api_key=self._api_key, timeout_seconds=timeout_seconds
            )
            self._openai[cache_key] = provider
        return provider

    async def close(self) -> None:
        """Close every client's connection pool."""
        providers, self._openai = list(self._openai.values()), {}
        for provider in providers:
            await provider.close()
