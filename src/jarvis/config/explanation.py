""" "Explain a setting": which value of a key applies to a scope, and why.

``ConfigReads.explain_setting`` builds a ``SettingExplanation``; the API
(``GET /api/config/setting/{key}?explain=true``), the key's page and ``jarvis config get
--explain`` all show it, in the words below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jarvis.config.registry import KeyInfo
from jarvis.config.resolver import Candidate, Resolution
from jarvis.core.scope import Scope


@dataclass(frozen=True)
class SettingExplanation:
    """The effective value of a key for a scope at an instant, with its candidates."""

    info: KeyInfo
    scope: Scope
    at: datetime
    resolution: Resolution
    # Every value that applies, best first; None when they were not asked for.
    candidates: list[Candidate] | None

    @property
    def verdict(self) -> str:
        """One line: which value wins (the API's and the CLI's ``explanation``)."""
        r = self.resolution
        if r.source == "default":
            return "no live value applies; the registry default is used"
        return f"{r.source} value version {r.version} wins"

    @property
    def narrative(self) -> str:
        """The verdict in sentences, with what it shadows and what is scheduled (the page)."""
        r, candidates = self.resolution, self.candidates or []
        if r.source == "default" or r.value_scope is None:
            text = (
                f"No live value applies to {self.scope.describe()}; the registry default is used."
            )
            if candidates:
                text += f" ({len(candidates)} stored value(s) apply, but none is live now.)"
            return text
        beaten = sum(1 for c in candidates if c.status in ("outranked", "superseded"))
        waiting = sum(1 for c in candidates if c.status == "scheduled")
        text = (
            f"The {r.source}-scope value ({r.value_scope.describe()}), version "
            f"{r.version}, wins for {self.scope.describe()}: it is the most specific live "
            "value that applies (workflow > agent > persona > global), and the newest live "
            "version at its scope."
        )
        if beaten:
            text += f" It shadows {beaten} other live value(s)."
        if waiting:
            text += f" {waiting} scheduled value(s) are not in effect yet."
        return text
