"""ConfigService: the seed's configuration service, one object composed of its parts.

- ``reads`` (``jarvis.config.reads``): ``get``, ``resolve``, ``explain``,
  ``explain_setting`` and ``key_info`` behind the caches, and the bus listener and poll
  (``start``, ``close``, ``poll_once``, ``invalidate``) that keep them true;
- ``writes`` (``jarvis.config.writes``): ``set_value``, ``revert``, ``deactivate`` and the
  ``apply_*`` writes snapshots and approvals use;
- ``stored`` (``jarvis.config.history``): ``history`` (the change log) and ``versions``;
- ``keys`` (``jarvis.config.keys``): ``register_key``, ``change_key``, ``update_key``,
  ``list_keys``;
- ``approvals`` (``jarvis.config.approvals``): ``list_requests``, ``get_request``,
  ``approve``, ``reject``, ``withdraw``.

Callers keep one handle (``config.get(...)``, ``config.set_value(...)``): each of those
names is the part's own bound method.
"""

from __future__ import annotations

from jarvis.config.approvals import Approvals
from jarvis.config.changes import CONFIG_CHANNEL, Change
from jarvis.config.history import ValueHistory
from jarvis.config.keys import KEY_RE, MAX_KEY_LENGTH, KeyRegistry
from jarvis.config.ports import ScopeTargets
from jarvis.config.reads import ConfigReads, StoredValueInvalid
from jarvis.config.writes import PAST_TOLERANCE, SetOutcome, ValueWrites
from jarvis.db.engine import Database
from jarvis.kit.bus import EventBus

__all__ = [
    "CONFIG_CHANNEL",
    "KEY_RE",
    "MAX_KEY_LENGTH",
    "PAST_TOLERANCE",
    "Change",
    "ConfigService",
    "SetOutcome",
    "StoredValueInvalid",
]


class ConfigService:
    """One per process (or per app instance); cheap to create for a CLI command."""

    def __init__(
        self,
        db: Database,
        *,
        bus: EventBus | None = None,
        cache_size: int = 1000,
        poll_seconds: float = 2.0,
        instance_id: str | None = None,
        targets: ScopeTargets | None = None,
    ) -> None:
        self.reads = ConfigReads(
            db, bus=bus, cache_size=cache_size, poll_seconds=poll_seconds, instance_id=instance_id
        )
        # Persona and agent existence for scoped writes (None: writes name no persona or
        # agent, as in a process that only reads configuration).
        self.writes = ValueWrites(self.reads, targets)
        self.stored = ValueHistory(self.reads)
        self.keys = KeyRegistry(self.reads)
        self.approvals = Approvals(self.reads, self.writes, self.keys)
        self.db = db
        self.bus = self.reads.bus
        self.instance_id = self.reads.instance_id
        self.poll_seconds = self.reads.poll_seconds
        self.cache = self.reads.cache

        # Reads and propagation.
        self.start = self.reads.start
        self.close = self.reads.close
        self.poll_once = self.reads.poll_once
        self.invalidate = self.reads.invalidate
        self.invalidate_all = self.reads.invalidate_all
        self.key_info = self.reads.key_info
        self.get = self.reads.get
        self.resolve = self.reads.resolve
        self.explain = self.reads.explain
        self.explain_setting = self.reads.explain_setting
        # Writes of values.
        self.check_scope = self.writes.check_scope
        self.set_value = self.writes.set_value
        self.apply_set = self.writes.apply_set
        self.find_version = self.writes.find_version
        self.revert = self.writes.revert
        self.deactivate = self.writes.deactivate
        self.apply_deactivate = self.writes.apply_deactivate
        # What was stored.
        self.history = self.stored.history
        self.versions = self.stored.versions
        # The registry.
        self.list_keys = self.keys.list_keys
        self.register_key = self.keys.register_key
        self.update_key = self.keys.update_key
        self.change_key = self.keys.change_key
        # Change requests.
        self.list_requests = self.approvals.list_requests
        self.get_request = self.approvals.get_request
        self.approve = self.approvals.approve
        self.reject = self.approvals.reject
        self.withdraw = self.approvals.withdraw

    @property
    def targets(self) -> ScopeTargets | None:
        """What checks the personas and agents a scope names."""
        return self.writes.targets
