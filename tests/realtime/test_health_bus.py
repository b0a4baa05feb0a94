"""``/api/health`` reports the event bus; a Redis that is down is reported, not fatal."""

from __future__ import annotations

import httpx

from jarvis.db.engine import Database
from jarvis.kit.bus import RedisBus
from jarvis.settings import Settings
from tests.factories import app_client


async def test_health_reports_the_in_process_bus(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/health")).json()
    assert body["bus"] == {"kind": "memory", "status": "ok"}


async def test_health_reports_redis(settings: Settings, db: Database, redis_url: str) -> None:
    async with app_client(settings, db, bus=RedisBus(redis_url)) as client:
        body = (await client.get("/api/health")).json()
    assert body["bus"] == {"kind": "redis", "status": "ok"}


async def test_an_unreachable_redis_is_reported_and_the_instance_stays_up(
    settings: Settings, db: Database
) -> None:
    # Port 9 (discard) has no Redis: connections are refused at once.
    async with app_client(settings, db, bus=RedisBus("redis://127.0.0.1:9/0")) as client:
        response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["bus"] == {"kind": "redis", "status": "unreachable"}
