"""Snapshots (every live value at an instant), diffs, restore, and export/import.

Restore and import share one plan: compare the target values with what is live now,
check every target value against today's registry (key known, scope allowed, schema
satisfied) before anything is written, then apply in the caller's transaction. Keys that
need approval are not applied but queued as change requests, so four eyes hold here too.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import lock_ledger, record_audit
from jarvis.config.models import ConfigRegistry, ConfigSnapshot, ConfigValue
from jarvis.config.registry import KeyInfo
from jarvis.config.resolver import live_at
from jarvis.config.schemas import ConfigKey, ScopeIn
from jarvis.config.service import ConfigService
from jarvis.config.validation import MASK, mask, schema_errors
from jarvis.core.identity import Actor
from jarvis.core.scope import Scope
from jarvis.errors import (
    BadRequest,
    Conflict,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
)
from jarvis.kit.clock import as_utc, utcnow
from jarvis.kit.schema import ApiInput, find_unstorable

EXPORT_FORMAT = "jarvis-config"
MAX_ID = 2**31 - 1
EXPORT_FORMAT_VERSION = 1

Entry = dict[str, Any]  # {"key", "scope", "value", "version", "effectiveFrom", "effectiveTo"}
EntryId = tuple[str, str]  # (key, scope key)


def _entry_id(entry: Entry) -> EntryId:
    return entry["key"], Scope.from_json(entry.get("scope")).key


async def live_values(session: AsyncSession, at: datetime) -> list[Entry]:
    """The live version of every key at every scope at ``at`` (highest version wins)."""
    rows = await session.scalars(
        select(ConfigValue)
        .where(live_at(at))
        .order_by(ConfigValue.config_key, ConfigValue.scope_key, ConfigValue.version.desc())
    )
    out: list[Entry] = []
    seen: set[EntryId] = set()
    for row in rows:
        ident = (row.config_key, row.scope_key)
        if ident in seen:
            continue
        seen.add(ident)
        out.append(
            {
                "key": row.config_key,
                "scope": Scope(row.persona, row.agent_id, row.workflow_id).as_json(),
                "value": row.value,
                "version": row.version,
                "effectiveFrom": row.effective_from.isoformat(),
                "effectiveTo": row.effective_to.isoformat() if row.effective_to else None,
            }
        )
    return out


async def secret_keys(session: AsyncSession) -> set[str]:
    rows = await session.scalars(
        select(ConfigRegistry.key).where(ConfigRegistry.is_secret.is_(True))
    )
    return set(rows.all())


def masked(entries: list[Entry], secrets: set[str]) -> list[Entry]:
    return [
        {**e, "value": mask(e["value"], True), "secret": True} if e["key"] in secrets else e
        for e in entries
    ]


# --- snapshots ----------------------------------------------------------------------------


async def create_snapshot(
    session: AsyncSession,
    *,
    name: str,
    description: str | None,
    actor: Actor,
    at: datetime | None = None,
) -> ConfigSnapshot:
    if await session.scalar(select(ConfigSnapshot.id).where(ConfigSnapshot.name == name)):
        raise Conflict(f"a snapshot named '{name}' already exists")
    taken_at = as_utc(at) if at is not None else utcnow()
    values = await live_values(session, taken_at)
    snapshot = ConfigSnapshot(
        name=name,
        description=description,
        taken_at=taken_at,
        content={"values": values},
        created_by=actor.label,
        created_by_id=actor.user_id,
        created_at=utcnow(),
    )
    session.add(snapshot)
    await session.flush()
    await record_audit(
        session,
        actor=actor,
        action="config.snapshot.create",
        entity_type="config_snapshot",
        entity_id=snapshot.id,
        after={"name": name, "takenAt": taken_at.isoformat(), "values": len(values)},
    )
    return snapshot


async def list_snapshots(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[list[ConfigSnapshot], int]:
    total = await session.scalar(select(func.count()).select_from(ConfigSnapshot)) or 0
    rows = await session.scalars(
        select(ConfigSnapshot).order_by(ConfigSnapshot.id.desc()).limit(limit).offset(offset)
    )
    return list(rows), total


async def get_snapshot(session: AsyncSession, snapshot_id: int) -> ConfigSnapshot:
    snapshot = await session.get(ConfigSnapshot, snapshot_id)
    if snapshot is None:
        raise NotFound(f"no snapshot {snapshot_id}")
    return snapshot


async def find_snapshot(session: AsyncSession, ref: str) -> ConfigSnapshot:
    """A snapshot by id (a number is tried as an id first) or by name; 404 naming the
    closest names otherwise."""
    ref = ref.strip()
    if ref.isascii() and ref.isdigit() and int(ref) <= MAX_ID:
        found = await session.get(ConfigSnapshot, int(ref))
        if found is not None:
            return found
    found = await session.scalar(
        select(ConfigSnapshot).where(ConfigSnapshot.name == ref).order_by(ConfigSnapshot.id)
    )
    if found is not None:
        return found
    names = list((await session.scalars(select(ConfigSnapshot.name))).all())
    close = difflib.get_close_matches(ref, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(n) for n in close)}?" if close else ""
    raise NotFound(f"no snapshot with id or name '{ref}'{hint}")


def snapshot_values(snapshot: ConfigSnapshot) -> list[Entry]:
    values: list[Entry] = snapshot.content.get("values", [])
    return values


# --- diff ---------------------------------------------------------------------------------


@dataclass
class Diff:
    added: list[Entry] = field(default_factory=list)
    removed: list[Entry] = field(default_factory=list)
    changed: list[Entry] = field(default_factory=list)
    unchanged: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
        }


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def diff(before: list[Entry], after: list[Entry], *, secrets: set[str]) -> Diff:
    """What changes going from ``before`` to ``after``, per key and scope."""
    old = {_entry_id(e): e for e in before}
    new = {_entry_id(e): e for e in after}
    out = Diff()

    def show(key: str, value: Any) -> Any:
        return mask(value, key in secrets)

    for ident in sorted(new.keys() | old.keys()):
        key = ident[0]
        if ident not in old:
            e = new[ident]
            out.added.append(
                {"key": key, "scope": e.get("scope") or {}, "value": show(key, e["value"])}
            )
        elif ident not in new:
            e = old[ident]
            out.removed.append(
                {"key": key, "scope": e.get("scope") or {}, "value": show(key, e["value"])}
            )
        elif not _same(old[ident]["value"], new[ident]["value"]):
            out.changed.append(
                {
                    "key": key,
                    "scope": new[ident].get("scope") or {},
                    "before": show(key, old[ident]["value"]),
                    "after": show(key, new[ident]["value"]),
                }
            )
        else:
            out.unchanged += 1
    return out


# --- plan and apply (restore, import) -----------------------------------------------------


@dataclass
class Report:
    dry_run: bool
    applied: bool = False
    diff: Diff = field(default_factory=Diff)
    unknown_keys: list[str] = field(default_factory=list)
    skipped: list[Entry] = field(default_factory=list)
    change_requests: list[int] = field(default_factory=list)
    # Changes that go to a change request instead of applying (keys needing approval).
    needs_approval: list[Entry] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "applied": self.applied,
            "diff": self.diff.as_json(),
            "unknownKeys": self.unknown_keys,
            "skipped": self.skipped,
            "needsApproval": self.needs_approval,
            "changeRequests": self.change_requests,
            "errors": self.errors,
        }


class PlanRejected(ValidationFailed):
    """Nothing was applied; ``report`` says why (its locations are within the document:
    ``values.3.scope``)."""

    request_fields = False

    def __init__(self, detail: str, report: Report) -> None:
        super().__init__(detail, errors=report.errors or None, extra={"report": report.as_json()})
        self.report = report


async def _plan_and_apply(
    session: AsyncSession,
    config: ConfigService,
    target: list[Entry],
    *,
    actor: Actor,
    dry_run: bool,
    prune: bool,
    strict_unknown: bool,
    action: str,
    reason: str | None,
    snapshot_id: int | None = None,
) -> Report:
    report = Report(dry_run=dry_run)
    await lock_ledger(session)  # the plan is made against what no one else is changing
    now = utcnow()
    current = await live_values(session, now)
    current_by_id = {_entry_id(e): e for e in current}
    known = {row.key: row for row in (await session.scalars(select(ConfigRegistry))).all()}
    infos: dict[str, KeyInfo] = {}
    wanted: list[Entry] = []
    for index, entry in enumerate(target):
        key = entry["key"]
        if key not in known:
            if key not in report.unknown_keys:
                report.unknown_keys.append(key)
            continue
        if entry.get("secret") or (known[key].is_secret and entry.get("value") == MASK):
            report.skipped.append(
                {"key": key, "scope": entry.get("scope") or {}, "reason": "secret value masked"}
            )
            continue
        info = infos.get(key) or await config.key_info(key, session)
        infos[key] = info
        scope = Scope.from_json(entry.get("scope"))
        try:
            await config.check_scope(session, info, scope, loc=("values", index, "scope"))
        except ValidationFailed as exc:
            report.errors.extend(exc.errors or [{"loc": ["values", index], "msg": exc.detail}])
            continue
        report.errors.extend(
            schema_errors(
                info.validator, entry["value"], loc=["values", index, "value"], secret=info.secret
            )
        )
        wanted.append(entry)
    secrets = {k for k, row in known.items() if row.is_secret}
    comparable_current = [
        e for e in current if prune or _entry_id(e) in {_entry_id(w) for w in wanted}
    ]
    report.diff = diff(comparable_current, wanted, secrets=secrets)
    approval_keys = {k for k, row in known.items() if row.requires_approval}
    report.needs_approval = [
        {"key": e["key"], "scope": e.get("scope") or {}}
        for e in [*report.diff.added, *report.diff.changed, *report.diff.removed]
        if e["key"] in approval_keys
    ]
    if report.unknown_keys and strict_unknown:
        report.errors.extend(
            {"loc": ["values"], "msg": f"unknown configuration key '{k}'"}
            for k in report.unknown_keys
        )
    if dry_run:  # the report is the answer, problems included
        return report
    if report.errors:
        raise PlanRejected(
            f"{len(report.errors)} problem(s) with the values (unknown keys, scopes or "
            "schemas); nothing was applied",
            report,
        )
    for entry in wanted:
        ident = _entry_id(entry)
        if ident in current_by_id and _same(current_by_id[ident]["value"], entry["value"]):
            continue
        info = infos[entry["key"]]
        scope = Scope.from_json(entry.get("scope"))
        if info.requires_approval:
            outcome = await config.set_value(
                session,
                info.key,
                entry["value"],
                scope,
                actor=actor,
                effective_to=_future_end(entry, now),
                reason=reason,
            )
            if outcome.request is not None:
                report.change_requests.append(outcome.request.id)
            continue
        await config.apply_set(
            session,
            info,
            entry["value"],
            scope,
            actor=actor,
            start=now,
            end=_future_end(entry, now),
            reason=reason,
            action=action,
            snapshot_id=snapshot_id,
        )
    if prune:
        target_ids = {_entry_id(e) for e in wanted} | {
            _entry_id(e) for e in target if e["key"] in report.unknown_keys
        }
        for ident, entry in current_by_id.items():
            if ident in target_ids or entry["key"] not in known:
                continue
            if any(
                _entry_id(s) == ident for s in report.skipped
            ):  # a skipped secret stays as it is
                continue
            info = infos.get(entry["key"]) or await config.key_info(entry["key"], session)
            scope = Scope.from_json(entry.get("scope"))
            live_rows = await session.scalars(
                select(ConfigValue).where(
                    ConfigValue.config_key == info.key,
                    ConfigValue.scope_key == scope.key,
                    ConfigValue.is_active.is_(True),
                    ConfigValue.effective_from <= now,
                )
            )
            for row in live_rows.all():
                if info.requires_approval:
                    outcome = await config.deactivate(
                        session, info.key, scope, row.version, actor=actor, reason=reason
                    )
                    if outcome.request is not None:
                        report.change_requests.append(outcome.request.id)
                else:
                    await config.apply_deactivate(
                        session,
                        info,
                        row,
                        actor=actor,
                        reason=reason,
                        action=action,
                        snapshot_id=snapshot_id,
                    )
    report.applied = True
    return report


def _future_end(entry: Entry, now: datetime) -> datetime | None:
    """A value's end as recorded, when it is still ahead (an ended one restores open)."""
    raw = entry.get("effectiveTo")
    if not raw:
        return None
    end = as_utc(datetime.fromisoformat(raw))
    return end if end > now else None


async def restore_snapshot(
    session: AsyncSession,
    config: ConfigService,
    snapshot_id: int,
    *,
    actor: Actor,
    reason: str | None = None,
    dry_run: bool = False,
) -> Report:
    """Make the live configuration equal to the snapshot, atomically.

    Keys since removed from the registry are reported and skipped; a value today's
    registry rejects fails the whole restore (422, nothing applied).
    """
    snapshot = await get_snapshot(session, snapshot_id)
    report = await _plan_and_apply(
        session,
        config,
        snapshot_values(snapshot),
        actor=actor,
        dry_run=dry_run,
        prune=True,
        strict_unknown=False,
        action="restore",
        reason=reason or f"restore snapshot '{snapshot.name}'",
        snapshot_id=snapshot.id,
    )
    if report.applied:
        await record_audit(
            session,
            actor=actor,
            action="config.snapshot.restore",
            entity_type="config_snapshot",
            entity_id=snapshot.id,
            after=_summary(report),
        )
    return report


def _summary(report: Report) -> dict[str, Any]:
    return {
        "added": len(report.diff.added),
        "removed": len(report.diff.removed),
        "changed": len(report.diff.changed),
        "unknownKeys": report.unknown_keys,
        "changeRequests": report.change_requests,
    }


# --- export / import ----------------------------------------------------------------------


def export_document(
    entries: list[Entry], *, secrets: set[str], source: dict[str, Any]
) -> dict[str, Any]:
    values = []
    for e in entries:
        item: Entry = {"key": e["key"], "scope": e.get("scope") or {}}
        if e["key"] in secrets:
            item["value"] = MASK
            item["secret"] = True
        else:
            item["value"] = e["value"]
        if e.get("effectiveTo"):
            item["effectiveTo"] = e["effectiveTo"]
        values.append(item)
    return {
        "format": EXPORT_FORMAT,
        "formatVersion": EXPORT_FORMAT_VERSION,
        "exportedAt": utcnow().isoformat(),
        "source": source,
        "values": values,
    }


def render(document: dict[str, Any], fmt: Literal["json", "yaml"]) -> str:
    if fmt == "yaml":
        return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class _StrictYamlLoader(yaml.SafeLoader):
    """Safe YAML without aliases (no expansion bombs) and without implicit timestamps
    (dates stay text, as in JSON)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


_StrictYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class ImportEntry(ApiInput):
    key: ConfigKey
    scope: ScopeIn = Field(default_factory=ScopeIn)
    value: Any = None
    effective_to: datetime | None = None
    secret: bool = False

    @model_validator(mode="before")
    @classmethod
    def _value_required(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" not in data and not data.get("secret"):
            raise ValueError("value is required (null is a value when the schema allows it)")
        return data


class ImportDocument(ApiInput):
    format: Literal["jarvis-config"]
    format_version: Literal[1]
    exported_at: str | None = None
    source: dict[str, Any] | None = None
    values: list[ImportEntry] = Field(max_length=100_000)

    @model_validator(mode="after")
    def _each_scope_once(self) -> ImportDocument:
        seen: set[tuple[str, str]] = set()
        for entry in self.values:
            ident = (entry.key, entry.scope.to_scope().key)
            if ident in seen:
                raise ValueError(
                    f"'{entry.key}' at {entry.scope.to_scope().describe()} is named twice"
                )
            seen.add(ident)
        return self


def parse_document(body: bytes, content_type: str) -> ImportDocument:
    """Parse a JSON or YAML export; 400 for unreadable text, 422 for a wrong shape."""
    media = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the document is not UTF-8 text") from None
    try:
        if media in ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"):
            data = yaml.load(text, Loader=_StrictYamlLoader)  # noqa: S506 - safe loader subclass
        elif media in ("application/json", ""):
            data = json.loads(text)
        else:
            raise UnsupportedMediaType(
                f"unsupported content type '{media}'; send application/json or application/yaml"
            )
    except (ValueError, yaml.YAMLError) as exc:
        raise BadRequest(f"the document cannot be parsed: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationFailed.field(["body"], "must be a jarvis-config export document")
    found = find_unstorable(data)
    if found is not None:
        raise ValidationFailed.field(["body"], f"{found[0]} {found[1]}")
    try:
        return ImportDocument.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *e["loc"]], "msg": str(e["msg"]).removeprefix("Value error, ")}
            for e in exc.errors()
        ]
        raise ValidationFailed(
            f"not a jarvis-config export: {errors[0]['msg']}", errors=errors
        ) from None


async def import_document(
    session: AsyncSession,
    config: ConfigService,
    document: ImportDocument,
    *,
    actor: Actor,
    dry_run: bool,
    prune: bool = False,
    reason: str | None = None,
) -> Report:
    """Apply an export: every key must be known and every value valid, else nothing is."""
    entries = [
        {
            "key": e.key,
            "scope": e.scope.to_scope().as_json(),
            "value": e.value,
            "effectiveTo": e.effective_to.isoformat() if e.effective_to else None,
            **({"secret": True} if e.secret else {}),
        }
        for e in document.values
    ]
    report = await _plan_and_apply(
        session,
        config,
        entries,
        actor=actor,
        dry_run=dry_run,
        prune=prune,
        strict_unknown=True,
        action="import",
        reason=reason or "import",
    )
    if report.applied:
        await record_audit(
            session,
            actor=actor,
            action="config.import",
            entity_type="config",
            entity_id=None,
            after=_summary(report),
        )
    return report
