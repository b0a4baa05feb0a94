"""The harness itself: both backends come up migrated and empty."""

from jarvis.db.engine import Database


async def test_health_ok(client, backend: str) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == backend
    assert body["schema"]["atHead"] is True


async def test_each_test_starts_empty(client, admin_headers, db: Database) -> None:
    response = await client.post(
        "/api/agents",
        json={"name": "Isolation Probe", "layer": "Role"},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    listed = await client.get("/api/agents")
    assert listed.json()["total"] == 1
