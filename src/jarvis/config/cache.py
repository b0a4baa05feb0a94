"""The resolution cache: LRU by (key, scope), each entry bounded by its next boundary.

An entry expires at the earliest ``effective_from``/``effective_to`` that could change its
answer, so a scheduled change goes live on time without any write. Writes invalidate by
key. A fill that raced with an invalidation is not stored: ``token`` is taken before the
database is read and ``put`` only stores when no invalidation of that key (or of the whole
cache) happened in between.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from cachetools import LRUCache

from jarvis.config.resolver import Resolution
from jarvis.core.scope import Scope


class Entry(NamedTuple):
    value: Any
    # POSIX seconds; ``math.inf`` when nothing is scheduled.
    expires: float
    resolution: Resolution


Token = tuple[int, int]


def expiry(valid_until: datetime | None) -> float:
    return valid_until.timestamp() if valid_until is not None else math.inf


class ResolutionCache:
    def __init__(self, maxsize: int) -> None:
        self._lru: LRUCache[tuple[str, Scope], Entry] = LRUCache(maxsize=maxsize)
        self._generations: dict[str, int] = {}
        self._epoch = 0

    def lookup(self, key: str, scope: Scope) -> Entry | None:
        return self._lru.get((key, scope))

    def token(self, key: str) -> Token:
        return self._epoch, self._generations.get(key, 0)

    def put(self, key: str, scope: Scope, entry: Entry, token: Token) -> bool:
        if token != self.token(key) or self._lru.maxsize == 0:
            return False
        self._lru[(key, scope)] = entry
        return True

    def invalidate(self, keys: Iterable[str]) -> None:
        wanted = set(keys)
        if not wanted:
            return
        for key in wanted:
            self._generations[key] = self._generations.get(key, 0) + 1
        for cache_key in [k for k in self._lru if k[0] in wanted]:
            self._lru.pop(cache_key, None)

    def clear(self) -> None:
        self._epoch += 1
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)
