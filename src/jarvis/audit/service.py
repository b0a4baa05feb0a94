"""The tamper-evident audit ledger: append entries, verify the chain.

Each entry's hash is SHA-256 over the canonical JSON of its content and its predecessor's
hash; the first entry links to 64 zeros. Writers are serialised (an advisory lock on
PostgreSQL, the database write lock on SQLite) and ``prev_hash`` is unique, so the chain
cannot fork. PostgreSQL rejects UPDATE, DELETE and TRUNCATE on the table (see the
migration); verification recomputes every hash and reports the first broken entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.models import GENESIS_HASH, AuditTrail
from jarvis.core.identity import Actor
from jarvis.kit.canonical import canonical_json, json_roundtrip
from jarvis.kit.clock import as_utc, utcnow

# Arbitrary constant naming the ledger's advisory lock on PostgreSQL.
AUDIT_LOCK_KEY = 0x4A41525649530001


def entry_digest(
    *,
    prev_hash: str,
    created_at: datetime,
    actor_id: int | None,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    before: Any,
    after: Any,
) -> str:
    """The SHA-256 hex digest of one entry's canonical content."""
    content = {
        "prev_hash": prev_hash,
        "created_at": as_utc(created_at).isoformat(timespec="microseconds"),
        "actor_id": actor_id,
        "actor": actor,
        "action": action,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "before": before,
        "after": after,
    }
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


async def lock_ledger(session: AsyncSession) -> None:
    """Take the ledger's write lock until the transaction ends (a no-op on SQLite, whose
    writers are serialised already). Writers that lock other rows too take this first."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})


async def record_audit(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditTrail:
    """Append one entry to the ledger inside the caller's transaction."""
    await lock_ledger(session)
    last = await session.scalar(
        select(AuditTrail.entry_hash).order_by(AuditTrail.id.desc()).limit(1)
    )
    prev_hash = last or GENESIS_HASH
    # Store exactly what a read gives back, so verification hashes the same values.
    before_json = json_roundtrip(before) if before is not None else None
    after_json = json_roundtrip(after) if after is not None else None
    # Microsecond precision is what both backends keep.
    created_at = utcnow()
    entity = str(entity_id) if entity_id is not None else None
    entry = AuditTrail(
        created_at=created_at,
        actor_id=actor.user_id,
        actor=actor.label,
        action=action,
        entity_type=entity_type,
        entity_id=entity,
        before=before_json,
        after=after_json,
        prev_hash=prev_hash,
        entry_hash=entry_digest(
            prev_hash=prev_hash,
            created_at=created_at,
            actor_id=actor.user_id,
            actor=actor.label,
            action=action,
            entity_type=entity_type,
            entity_id=entity,
            before=before_json,
            after=after_json,
        ),
    )
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    status: Literal["intact", "compromised"]
    checked: int
    broken_entry_id: int | None = None
    reason: str | None = None


async def _entries(session: AsyncSession, batch: int = 1000) -> AsyncIterator[AuditTrail]:
    last_id = 0
    while True:
        rows = (
            await session.scalars(
                select(AuditTrail)
                .where(AuditTrail.id > last_id)
                .order_by(AuditTrail.id)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield row
        last_id = rows[-1].id
        session.expunge_all()


async def verify_ledger(session: AsyncSession) -> VerifyResult:
    """Recompute the whole chain; report ``intact`` or the first broken entry."""
    expected_prev = GENESIS_HASH
    checked = 0
    async for entry in _entries(session):
        if entry.prev_hash != expected_prev:
            return VerifyResult(
                "compromised",
                checked,
                entry.id,
                "its predecessor link does not match the entry before it "
                "(an entry was removed, inserted or reordered)",
            )
        digest = entry_digest(
            prev_hash=entry.prev_hash,
            created_at=entry.created_at,
            actor_id=entry.actor_id,
            actor=entry.actor,
            action=entry.action,
            entity_type=entry.entity_type,
            entity_id=entry.entity_id,
            before=entry.before,
            after=entry.after,
        )
        if digest != entry.entry_hash:
            return VerifyResult(
                "compromised", checked, entry.id, "its content does not match its hash"
            )
        expected_prev = entry.entry_hash
        checked += 1
    return VerifyResult("intact", checked)
