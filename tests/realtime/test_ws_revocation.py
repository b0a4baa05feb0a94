"""WebSockets end with their credentials: sign-out, a revoked session or token, and a user
deactivated or moved to another persona close the sockets opened with them (4001,
``credentials revoked``) on a real uvicorn server; unrelated sockets stay open. Revocations
the bus lost are caught by a database check. A refused subscription is audited."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import redis.asyncio as aioredis
from sqlalchemy import select, update

from jarvis.audit.models import AuditTrail
from jarvis.auth.models import ApiToken, User, UserSession
from jarvis.auth.revocation import AUTH_CHANNEL, revoked_message
from jarvis.auth.sessions.cookies import SESSION_COOKIE
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.kit.bus import RedisBus
from jarvis.kit.clock import utcnow
from jarvis.settings import Settings
from tests.factories import bearer, create_user, login, token_for
from tests.realtime.conftest import Live, Socket, live_app

REVOKED = (4001, "credentials revoked")


@asynccontextmanager
async def signed_in(live: Live, user: User) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as ``user`` over real HTTP."""
    async with httpx.AsyncClient(base_url=live.http_url) as http:
        await login(http, user.email)
        yield http


async def cookie_socket(live: Live, http: httpx.AsyncClient) -> Socket:
    cookie = http.cookies[SESSION_COOKIE]
    socket = Socket(await live.raw(additional_headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}))
    await socket.expect("connection-established")
    return socket


async def token_socket(live: Live, token: str) -> Socket:
    socket = Socket(await live.raw(live.ws_url(token=token)))
    await socket.expect("connection-established")
    return socket


async def still_open(*sockets: Socket) -> None:
    for socket in sockets:
        await socket.send({"type": "ping"})
        await socket.expect("pong")


async def session_ids(db: Database, user: User) -> list[int]:
    async with unit_of_work(db, write=False) as s:
        rows = await s.scalars(
            select(UserSession.id)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .order_by(UserSession.id)
        )
        return list(rows.all())


async def test_signing_out_closes_the_sessions_sockets_only(live: Live) -> None:
    db = live.world.db
    user = await create_user(db, persona="underwriter")
    other = await create_user(db, persona="underwriter")
    token = await token_for(db, user)
    async with signed_in(live, user) as http, signed_in(live, other) as theirs:
        mine = await cookie_socket(live, http)
        same_user_token = await token_socket(live, token)
        unrelated = await cookie_socket(live, theirs)

        assert (await http.post("/api/logout")).status_code == 204

        assert await mine.closed() == REVOKED
        await still_open(same_user_token, unrelated)


async def test_revoking_a_session_closes_its_socket(live: Live) -> None:
    db = live.world.db
    user = await create_user(db, persona="underwriter")
    async with signed_in(live, user) as phone, signed_in(live, user) as laptop:
        phone_socket = await cookie_socket(live, phone)
        laptop_socket = await cookie_socket(live, laptop)
        phone_id = (await session_ids(db, user))[0]

        response = await laptop.delete(f"/api/user/sessions/{phone_id}")

        assert response.status_code == 204, response.text
        assert await phone_socket.closed() == REVOKED
        await still_open(laptop_socket)


async def test_revoking_a_token_closes_its_sockets(live: Live) -> None:
    db = live.world.db
    user = await create_user(db, persona="underwriter")
    keeper = await token_for(db, user, name="keeper")
    doomed = await token_for(db, user, name="doomed")
    doomed_sockets = [await token_socket(live, doomed) for _ in range(2)]
    kept = await token_socket(live, keeper)
    async with unit_of_work(db, write=False) as s:
        doomed_id = await s.scalar(select(ApiToken.id).where(ApiToken.name == "doomed"))

    async with httpx.AsyncClient(base_url=live.http_url) as http:
        response = await http.delete(f"/api/user/tokens/{doomed_id}", headers=bearer(keeper))
        assert response.status_code == 204, response.text

    for socket in doomed_sockets:
        assert await socket.closed() == REVOKED
    await still_open(kept)


async def test_deactivating_a_user_closes_all_their_sockets(live: Live) -> None:
    world = live.world
    user = await create_user(world.db, persona="underwriter")
    token = await token_for(world.db, user)
    async with signed_in(live, user) as http:
        by_cookie = await cookie_socket(live, http)
        by_token = await token_socket(live, token)
        unrelated, _ = await live.socket(world.uw_headers)
        admin_socket, _ = await live.socket(world.admin_headers)

        async with httpx.AsyncClient(base_url=live.http_url) as admin:
            response = await admin.patch(
                f"/api/users/{user.id}", json={"isActive": False}, headers=world.admin_headers
            )
            assert response.status_code == 200, response.text

        assert await by_cookie.closed() == REVOKED
        assert await by_token.closed() == REVOKED
        await still_open(unrelated, admin_socket)
        # Reconnecting is refused: the user is inactive.
        again = Socket(await live.raw(live.ws_url(token=token)))
        assert await again.closed() == (1008, "invalid credentials")


async def test_a_persona_change_closes_the_users_sockets(live: Live) -> None:
    world = live.world
    user = await create_user(world.db, persona="underwriter")
    token = await token_for(world.db, user)
    socket = await token_socket(live, token)
    greeting = socket.received[0]
    assert greeting["isAdmin"] is False

    async with httpx.AsyncClient(base_url=live.http_url) as admin:
        response = await admin.patch(
            f"/api/users/{user.id}", json={"persona": "admin"}, headers=world.admin_headers
        )
        assert response.status_code == 200, response.text

    assert await socket.closed() == REVOKED
    # The token still works, and the new socket carries the new persona.
    again = Socket(await live.raw(live.ws_url(token=token)))
    await again.expect("connection-established", isAdmin=True)


async def test_revocations_the_bus_lost_are_found_in_the_database(
    settings: Settings, db: Database, redis_url: str
) -> None:
    name = f"wsrevoke-{uuid.uuid4().hex[:12]}"
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}"
    async with live_app(settings, db, bus=RedisBus(url, reconnect_delay=0.05)) as live:
        user = await create_user(db, persona="underwriter")
        doomed = await token_socket(live, await token_for(db, user, name="doomed"))
        kept = await token_socket(live, await token_for(db, user, name="kept"))
        # Revoked behind the bus's back: no announcement is made.
        async with unit_of_work(db) as s:
            await s.execute(
                update(ApiToken).where(ApiToken.name == "doomed").values(revoked_at=utcnow())
            )
        await still_open(doomed)

        # The app's subscriptions drop; on reconnecting the hub re-checks every socket.
        admin = aioredis.Redis.from_url(redis_url)
        try:
            killed = 0
            for client in await admin.client_list(_type="pubsub"):
                if client.get("name") == name:
                    await admin.client_kill_filter(_id=client["id"])
                    killed += 1
        finally:
            await admin.aclose()
        assert killed >= 1

        assert await doomed.closed() == REVOKED
        await still_open(kept)


async def test_a_socket_opened_just_after_a_revocation_is_checked(
    settings: Settings, db: Database
) -> None:
    # A long principal cache: the token is still cached after it is revoked below.
    async with live_app(settings, db, auth_cache_seconds=300) as live:
        user = await create_user(db, persona="underwriter")
        token = await token_for(db, user)
        async with httpx.AsyncClient(base_url=live.http_url) as http:
            assert (await http.get("/api/user", headers=bearer(token))).status_code == 200
        async with unit_of_work(db) as s:
            await s.execute(update(ApiToken).values(revoked_at=utcnow()))
        # Some revocation (not this token's) has just arrived on this instance...
        await live.app.state.bus.publish(AUTH_CHANNEL, revoked_message(token_ids=[10**9]))
        probe = await token_socket(live, await token_for(db, live.world.underwriter))
        await still_open(probe)  # the hub has handled the message by now

        # ...so a socket authenticated from the (stale) cache is checked against the database.
        late = Socket(await live.raw(live.ws_url(token=token)))
        await late.expect("connection-established")

        assert await late.closed() == REVOKED
        await still_open(probe)


async def test_a_refused_subscription_is_audited_once(live: Live) -> None:
    world = live.world
    execution_id = await world.post("secret work", persona="admin")
    await world.settle()
    socket, _ = await live.socket(world.uw_headers)

    for _ in range(2):
        await socket.send({"type": "subscribe-execution", "executionId": execution_id})
        await socket.expect("error", code="forbidden", executionId=execution_id)

    async with unit_of_work(world.db, write=False) as s:
        entries = list(
            await s.scalars(select(AuditTrail).where(AuditTrail.action == "auth.forbidden"))
        )
    (entry,) = entries
    assert (entry.actor, entry.actor_id) == (world.underwriter.email, world.underwriter.id)
    assert (entry.entity_type, entry.entity_id) == (
        "websocket",
        f"subscribe-execution {execution_id}",
    )
    assert entry.after is not None
    assert entry.after["executionId"] == execution_id
    assert "another user" in entry.after["reason"]
    await still_open(socket)
