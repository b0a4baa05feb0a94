"""Snapshot routes: ``/api/config/snapshots`` (create, list, show, diff, restore, export),
``/api/config/export`` and ``/api/config/import``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, Field

from jarvis.config import snapshots as snap
from jarvis.config.dependencies import Config
from jarvis.config.schemas import SnapshotOut
from jarvis.core.guards import Authenticated, ConfigWriter
from jarvis.db.session import DbSession
from jarvis.kit.clock import utcnow
from jarvis.kit.schema import ApiInput, Limit, Offset, Page

router = APIRouter(prefix="/api/config", tags=["config"])

IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
Format = Annotated[Literal["json", "yaml"], Query(description="json or yaml")]


class SnapshotIn(ApiInput):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    at: datetime | None = None


class RestoreIn(ApiInput):
    reason: str | None = Field(default=None, max_length=2000)
    dry_run: bool = False


class ReportOut(BaseModel):
    dryRun: bool  # noqa: N815 - wire names
    applied: bool
    diff: dict[str, Any]
    unknownKeys: list[str]  # noqa: N815
    skipped: list[dict[str, Any]]
    needsApproval: list[dict[str, Any]]  # noqa: N815
    changeRequests: list[int]  # noqa: N815
    errors: list[dict[str, Any]]


@router.post(
    "/snapshots", response_model=SnapshotOut, status_code=201, summary="Snapshot live values"
)
async def create_snapshot(
    body: SnapshotIn, principal: ConfigWriter, session: DbSession
) -> SnapshotOut:
    row = await snap.create_snapshot(
        session, name=body.name, description=body.description, actor=principal.actor, at=body.at
    )
    return SnapshotOut.of(row)


@router.get("/snapshots", response_model=Page[SnapshotOut], summary="Snapshots, newest first")
async def list_snapshots(
    _: Authenticated, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> Page[SnapshotOut]:
    rows, total = await snap.list_snapshots(session, limit=limit, offset=offset)
    return Page[SnapshotOut](
        items=[SnapshotOut.of(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/snapshots/{snapshot_id}", response_model=SnapshotOut, summary="One snapshot")
async def show_snapshot(snapshot_id: IdPath, _: Authenticated, session: DbSession) -> SnapshotOut:
    row = await snap.get_snapshot(session, snapshot_id)
    secrets = await snap.secret_keys(session)
    return SnapshotOut.of(row, values=snap.masked(snap.snapshot_values(row), secrets))


@router.get(
    "/snapshots/{snapshot_id}/diff",
    response_model=dict[str, Any],
    summary="What differs between a snapshot and now (or another snapshot)",
)
async def diff_snapshot(
    snapshot_id: IdPath,
    _: Authenticated,
    session: DbSession,
    against: Annotated[
        str, Query(pattern=r"^(current|[1-9][0-9]{0,9})$", description="current or an id")
    ] = "current",
) -> dict[str, Any]:
    row = await snap.get_snapshot(session, snapshot_id)
    if against == "current":
        other = await snap.live_values(session, utcnow())
    else:
        other = snap.snapshot_values(await snap.get_snapshot(session, int(against)))
    secrets = await snap.secret_keys(session)
    result = snap.diff(snap.snapshot_values(row), other, secrets=secrets).as_json()
    return {"from": row.name, "to": against, **result}


@router.post(
    "/snapshots/{snapshot_id}/restore",
    response_model=ReportOut,
    summary="Make live configuration equal to the snapshot (atomic; dry-run shows the diff)",
)
async def restore_snapshot(
    snapshot_id: IdPath,
    principal: ConfigWriter,
    session: DbSession,
    config: Config,
    # No body restores with the defaults (not a dry run).
    body: Annotated[RestoreIn, Body(default_factory=RestoreIn)],
) -> dict[str, Any]:
    report = await snap.restore_snapshot(
        session,
        config,
        snapshot_id,
        actor=principal.actor,
        reason=body.reason,
        dry_run=body.dry_run,
    )
    return report.as_json()


def _download(document: dict[str, Any], fmt: Literal["json", "yaml"], name: str) -> Response:
    media = "application/yaml" if fmt == "yaml" else "application/json"
    filename = f"{name}.{fmt}"
    # RFC 6266: an ASCII fallback without quotes or controls, and the exact name UTF-8 encoded.
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
    return Response(
        snap.render(document, fmt),
        media_type=media,
        headers={"Content-Disposition": disposition},
    )


@router.get(
    "/snapshots/{snapshot_id}/export",
    summary="Export a snapshot as JSON or YAML (secret values masked)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "application/yaml": {}}}},
)
async def export_snapshot(
    snapshot_id: IdPath, _: Authenticated, session: DbSession, format: Format = "json"
) -> Response:
    row = await snap.get_snapshot(session, snapshot_id)
    document = snap.export_document(
        snap.snapshot_values(row),
        secrets=await snap.secret_keys(session),
        source={"snapshot": row.name, "takenAt": row.taken_at.isoformat()},
    )
    return _download(document, format, f"jarvis-config-{row.name}")


@router.get(
    "/export",
    summary="Export the live configuration as JSON or YAML (secret values masked)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "application/yaml": {}}}},
)
async def export_live(_: Authenticated, session: DbSession, format: Format = "json") -> Response:
    now = utcnow()
    document = snap.export_document(
        await snap.live_values(session, now),
        secrets=await snap.secret_keys(session),
        source={"live": now.isoformat()},
    )
    return _download(document, format, "jarvis-config")


@router.post(
    "/import",
    response_model=ReportOut,
    summary="Import an export (JSON or YAML); dryRun=true shows the diff without applying",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_config(
    request: Request,
    principal: ConfigWriter,
    session: DbSession,
    config: Config,
    dry_run: Annotated[bool, Query(alias="dryRun")] = False,
    prune: Annotated[
        bool, Query(description="Also deactivate live values the document does not name")
    ] = False,
    reason: Annotated[str | None, Query(max_length=2000)] = None,
) -> dict[str, Any]:
    document = snap.parse_document(
        await request.body(), request.headers.get("content-type", "application/json")
    )
    report = await snap.import_document(
        session,
        config,
        document,
        actor=principal.actor,
        dry_run=dry_run,
        prune=prune,
        reason=reason,
    )
    return report.as_json()
