"""The read-through cache of rendered agent-list pages.

Dashboards poll the agent list; most polls find nothing changed. A page is rendered once
(one query, counted with a window function, validated and serialised by pydantic-core)
and served from memory until the registry changes:

- every committed change in this process moves the registry generation (services call
  ``mark_registry_changed`` through ``after_commit``), which invalidates at once;
- changes committed by other processes (CLI, workers, other API instances) are picked up
  when the entry's time-to-live (``JARVIS_AGENT_LIST_CACHE_SECONDS``) runs out.
"""

from __future__ import annotations

from collections.abc import Hashable

from cachetools import TTLCache

from jarvis.kit.app_state import StateKey

_generation = 0


def mark_registry_changed() -> None:
    """The agent registry changed (call after commit): cached pages are stale."""
    global _generation
    _generation += 1


def registry_generation() -> int:
    return _generation


class AgentPageCache:
    """Rendered pages keyed by query, valid for one generation and at most ``ttl`` s."""

    def __init__(self, ttl_seconds: float, maxsize: int = 512) -> None:
        self.enabled = ttl_seconds > 0
        self._entries: TTLCache[Hashable, tuple[int, bytes]] = TTLCache(
            maxsize=maxsize, ttl=max(ttl_seconds, 0.001)
        )

    def get(self, key: Hashable) -> bytes | None:
        if not self.enabled:
            return None
        entry = self._entries.get(key)
        if entry is None or entry[0] != _generation:
            return None
        return entry[1]

    def put(self, key: Hashable, generation: int, body: bytes) -> None:
        # A page rendered before a change committed is stored under the old generation
        # and so never served.
        if self.enabled:
            self._entries[key] = (generation, body)


AGENT_PAGE_CACHE: StateKey[AgentPageCache] = StateKey(
    "agent_page_cache", "the rendered pages of the agent list"
)
