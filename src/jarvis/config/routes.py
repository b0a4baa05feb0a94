"""Configuration routes: the seed's ``/api/config/registry``, ``/api/config/setting``, and
history, revert, deactivate and change requests (snapshots: ``snapshot_routes``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from jarvis.config import snapshots as snap
from jarvis.config.dependencies import Config
from jarvis.config.registry import KeyInfo, RegistryChanges
from jarvis.config.schemas import (
    KEY_PATTERN,
    ChangeLogOut,
    ChangeRequestOut,
    ConfigValueOut,
    Decision,
    RegistryKeyIn,
    RegistryKeyOut,
    RegistryKeyUpdate,
    SettingIn,
    SettingOut,
    ValueRef,
    WriteOut,
)
from jarvis.config.service import ConfigService, SetOutcome
from jarvis.config.validation import mask
from jarvis.core.guards import Authenticated, ConfigApprover, ConfigWriter
from jarvis.core.personas import PERSONA_KEY_PATTERN
from jarvis.core.scope import Scope
from jarvis.db.session import DbSession
from jarvis.errors import BadRequest, ValidationFailed
from jarvis.kit.clock import as_utc
from jarvis.kit.schema import MAX_PAGE_SIZE, Limit, Offset, Page

router = APIRouter(prefix="/api/config", tags=["config"])

KeyPath = Annotated[str, Path(pattern=KEY_PATTERN, max_length=100, description="Dotted key")]
PersonaQuery = Annotated[str | None, Query(pattern=PERSONA_KEY_PATTERN, max_length=64)]
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
Format = Annotated[Literal["json", "yaml"], Query(description="json or yaml")]
# A decision's reason is optional, and so is its body.
DecisionBody = Annotated[Decision, Body(default_factory=Decision)]


def _key_out(info: KeyInfo) -> RegistryKeyOut:
    return RegistryKeyOut(
        key=info.key,
        description=info.description,
        value_schema=info.schema,
        default=mask(info.default, info.secret),
        scopes=list(info.scopes),
        secret=info.secret,
        requires_approval=info.requires_approval,
        revision=info.revision,
        updated_at=info.updated_at,
        updated_by=info.updated_by,
    )


async def _write_out(config: ConfigService, outcome: SetOutcome, response: Response) -> WriteOut:
    if outcome.request is not None:
        info = await config.key_info(outcome.request.config_key)
        response.status_code = 202
        return WriteOut(
            status="pending_approval",
            change_request=ChangeRequestOut.of(outcome.request, secret=info.secret),
        )
    assert outcome.value is not None  # noqa: S101 - one of the two is always set
    info = await config.key_info(outcome.value.config_key)
    return WriteOut(status="applied", value=ConfigValueOut.of(outcome.value, secret=info.secret))


# --- registry -----------------------------------------------------------------------------


@router.get("/registry", response_model=Page[RegistryKeyOut], summary="Configuration keys")
async def registry(
    _: Authenticated,
    session: DbSession,
    config: Config,
    q: Annotated[str | None, Query(max_length=200, description="Search key and text")] = None,
    limit: Limit = MAX_PAGE_SIZE,
    offset: Offset = 0,
) -> Page[RegistryKeyOut]:
    keys, total = await config.list_keys(session, search=q, limit=limit, offset=offset)
    return Page[RegistryKeyOut](
        items=[_key_out(k) for k in keys], total=total, limit=limit, offset=offset
    )


@router.get("/registry/{key}", response_model=RegistryKeyOut, summary="One configuration key")
async def registry_key(
    key: KeyPath, _: Authenticated, session: DbSession, config: Config, response: Response
) -> RegistryKeyOut:
    info = await config.key_info(key, session)
    response.headers["ETag"] = f'"{info.revision}"'
    return _key_out(info)


@router.post("/registry", response_model=RegistryKeyOut, status_code=201, summary="Register a key")
async def register_key(
    body: RegistryKeyIn, principal: ConfigWriter, session: DbSession, config: Config
) -> RegistryKeyOut:
    info = await config.register_key(
        session,
        key=body.key,
        description=body.description,
        schema=body.value_schema,
        default=body.default,
        scopes=body.scopes,
        secret=body.secret,
        requires_approval=body.requires_approval,
        actor=principal.actor,
    )
    return _key_out(info)


def _revision(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":  # "*": any current revision
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit()) or len(tag) > 9:
        raise BadRequest('If-Match must be the key\'s ETag, e.g. "3"')
    return int(tag)


@router.put(
    "/registry/{key}",
    response_model=None,
    summary="Change a key's definition (202 with a change request when the key needs approval)",
    responses={
        200: {"model": RegistryKeyOut, "description": "The changed definition"},
        202: {"model": ChangeRequestOut, "description": "Change request awaiting approval"},
    },
)
async def update_key(
    key: KeyPath,
    body: RegistryKeyUpdate,
    principal: ConfigWriter,
    session: DbSession,
    config: Config,
    if_match: Annotated[str | None, Header(max_length=100)] = None,
) -> JSONResponse:
    changes = RegistryChanges(
        description=body.description,
        schema=body.value_schema,
        default=body.default,
        default_set="default" in body.model_fields_set,
        scopes=list(body.scopes) if body.scopes is not None else None,
        secret=body.secret,
        requires_approval=body.requires_approval,
    )
    outcome = await config.change_key(
        session, key, changes, actor=principal.actor, if_match=_revision(if_match)
    )
    if outcome.request is not None:
        info = await config.key_info(key, session)
        body_out = ChangeRequestOut.of(outcome.request, secret=info.secret)
        return JSONResponse(body_out.model_dump(mode="json", by_alias=True), status_code=202)
    assert outcome.info is not None  # noqa: S101 - one of the two is always set
    return JSONResponse(
        _key_out(outcome.info).model_dump(mode="json", by_alias=True),
        headers={"ETag": f'"{outcome.info.revision}"'},
    )


# --- values -------------------------------------------------------------------------------


def _instant(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    try:
        return as_utc(at)
    except (OverflowError, ValueError):
        raise ValidationFailed.field(["query", "at"], "is out of range") from None


def _scope(persona: str | None, agent_id: int | None, workflow_id: int | None) -> Scope:
    return Scope(persona, agent_id, workflow_id)


@router.get("/setting/{key}", response_model=SettingOut, summary="The effective value of a key")
async def get_setting(
    key: KeyPath,
    _: Authenticated,
    config: Config,
    persona: PersonaQuery = None,
    agent_id: Annotated[int | None, Query(alias="agentId", ge=1, le=2**31 - 1)] = None,
    workflow_id: Annotated[int | None, Query(alias="workflowId", ge=1, le=2**31 - 1)] = None,
    at: Annotated[
        datetime | None, Query(description="Read as of this instant (past or future)")
    ] = None,
    explain: Annotated[bool, Query(description="List every candidate and why")] = False,
) -> SettingOut:
    explained = await config.explain_setting(
        key, _scope(persona, agent_id, workflow_id), at=_instant(at), candidates=explain
    )
    return SettingOut.explained(explained)


@router.post(
    "/setting",
    response_model=WriteOut,
    status_code=201,
    summary="Set a value (a new version; 202 with a change request when the key needs approval)",
    responses={202: {"model": WriteOut, "description": "Change request awaiting approval"}},
)
async def set_setting(
    body: SettingIn, principal: ConfigWriter, session: DbSession, config: Config, response: Response
) -> WriteOut:
    outcome = await config.set_value(
        session,
        body.key,
        body.value,
        body.scope.to_scope(),
        actor=principal.actor,
        effective_from=body.effective_from,
        effective_to=body.effective_to,
        reason=body.reason,
    )
    return await _write_out(config, outcome, response)


@router.post(
    "/revert",
    response_model=WriteOut,
    status_code=201,
    summary="Revert a key at a scope to an earlier version (as a new version)",
    responses={202: {"model": WriteOut, "description": "Change request awaiting approval"}},
)
async def revert(
    body: ValueRef, principal: ConfigWriter, session: DbSession, config: Config, response: Response
) -> WriteOut:
    outcome = await config.revert(
        session,
        body.key,
        body.scope.to_scope(),
        body.version,
        actor=principal.actor,
        reason=body.reason,
    )
    return await _write_out(config, outcome, response)


@router.post(
    "/deactivate",
    response_model=WriteOut,
    summary="Deactivate one version of a value",
    responses={202: {"model": WriteOut, "description": "Change request awaiting approval"}},
)
async def deactivate(
    body: ValueRef, principal: ConfigWriter, session: DbSession, config: Config, response: Response
) -> WriteOut:
    outcome = await config.deactivate(
        session,
        body.key,
        body.scope.to_scope(),
        body.version,
        actor=principal.actor,
        reason=body.reason,
    )
    return await _write_out(config, outcome, response)


@router.get(
    "/history/{key}", response_model=Page[ChangeLogOut], summary="A key's change log, newest first"
)
async def history(
    key: KeyPath,
    _: Authenticated,
    session: DbSession,
    config: Config,
    persona: PersonaQuery = None,
    agent_id: Annotated[int | None, Query(alias="agentId", ge=1, le=2**31 - 1)] = None,
    workflow_id: Annotated[int | None, Query(alias="workflowId", ge=1, le=2**31 - 1)] = None,
    scoped: Annotated[
        bool, Query(description="Only the given scope (global when no member is given)")
    ] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ChangeLogOut]:
    scope = _scope(persona, agent_id, workflow_id)
    only = scope if scoped or scope != Scope() else None
    rows, total = await config.history(session, key, scope=only, limit=limit, offset=offset)
    secret = (await config.key_info(key, session)).secret
    return Page[ChangeLogOut](
        items=[ChangeLogOut.of(r, secret=secret) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/values/{key}", response_model=Page[ConfigValueOut], summary="Every stored version of a key"
)
async def values(
    key: KeyPath,
    _: Authenticated,
    session: DbSession,
    config: Config,
    persona: PersonaQuery = None,
    agent_id: Annotated[int | None, Query(alias="agentId", ge=1, le=2**31 - 1)] = None,
    workflow_id: Annotated[int | None, Query(alias="workflowId", ge=1, le=2**31 - 1)] = None,
    scoped: Annotated[bool, Query(description="Only the given scope")] = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ConfigValueOut]:
    scope = _scope(persona, agent_id, workflow_id)
    only = scope if scoped or scope != Scope() else None
    info = await config.key_info(key, session)
    rows, total = await config.versions(session, key, scope=only, limit=limit, offset=offset)
    return Page[ConfigValueOut](
        items=[ConfigValueOut.of(r, secret=info.secret) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


# --- change requests ----------------------------------------------------------------------


@router.get(
    "/change-requests",
    response_model=Page[ChangeRequestOut],
    summary="Change requests (four eyes), newest first",
)
async def change_requests(
    _: Authenticated,
    session: DbSession,
    config: Config,
    status: Annotated[
        Literal["pending", "approved", "rejected", "withdrawn"] | None, Query()
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[ChangeRequestOut]:
    rows, total = await config.list_requests(session, status=status, limit=limit, offset=offset)
    secrets = await snap.secret_keys(session)
    return Page[ChangeRequestOut](
        items=[ChangeRequestOut.of(r, secret=r.config_key in secrets) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


async def _request_out(session: Any, row: Any) -> ChangeRequestOut:
    secrets = await snap.secret_keys(session)
    return ChangeRequestOut.of(row, secret=row.config_key in secrets)


@router.get(
    "/change-requests/{request_id}", response_model=ChangeRequestOut, summary="One change request"
)
async def change_request(
    request_id: IdPath, _: Authenticated, session: DbSession, config: Config
) -> ChangeRequestOut:
    return await _request_out(session, await config.get_request(session, request_id))


@router.post(
    "/change-requests/{request_id}/approve",
    response_model=ChangeRequestOut,
    summary="Approve and apply (not your own request)",
)
async def approve(
    request_id: IdPath,
    body: DecisionBody,
    principal: ConfigApprover,
    session: DbSession,
    config: Config,
) -> ChangeRequestOut:
    row = await config.approve(session, request_id, actor=principal.actor, reason=body.reason)
    return await _request_out(session, row)


@router.post(
    "/change-requests/{request_id}/reject",
    response_model=ChangeRequestOut,
    summary="Reject (not your own request)",
)
async def reject(
    request_id: IdPath,
    body: DecisionBody,
    principal: ConfigApprover,
    session: DbSession,
    config: Config,
) -> ChangeRequestOut:
    row = await config.reject(session, request_id, actor=principal.actor, reason=body.reason)
    return await _request_out(session, row)


@router.post(
    "/change-requests/{request_id}/withdraw",
    response_model=ChangeRequestOut,
    summary="Withdraw your own pending request",
)
async def withdraw(
    request_id: IdPath,
    principal: ConfigWriter,
    session: DbSession,
    config: Config,
    body: DecisionBody,
) -> ChangeRequestOut:
    row = await config.withdraw(session, request_id, actor=principal.actor, reason=body.reason)
    return await _request_out(session, row)
