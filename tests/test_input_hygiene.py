"""Text PostgreSQL cannot store is refused at the edge with a 4xx, on both backends."""

from __future__ import annotations

import pytest

from jarvis.kit.schema import find_unstorable


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"name": "Bad\u0000Name", "layer": "Role"}, "name"),
        ({"name": "Ok", "layer": "Role", "config": {"a": ["x", "y\u0000"]}}, "config.a[1]"),
        ({"name": "Ok", "layer": "Role", "config": {"k\u0000": 1}}, "config.k\u0000"),
    ],
)
async def test_nul_in_a_body_is_422_naming_where(client, admin_headers, body, where) -> None:
    response = await client.post("/api/agents", json=body, headers=admin_headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "NUL" in response.json()["detail"]
    assert where.split("\u0000")[0] in response.json()["detail"]
    assert (await client.get("/api/agents")).json()["total"] == 0


@pytest.mark.parametrize(
    "url",
    ["/api/agents?q=a%00b", "/api/agents?persona=%00", "/api/agents/1%00", "/api/agents?q=%2500"],
)
async def test_nul_in_the_url_is_400(client, url: str) -> None:
    response = await client.get(url)
    if url.endswith("%2500"):  # a literal "%00" searched for: allowed, finds nothing
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "NUL" in response.json()["detail"]


async def test_nul_in_login_is_refused(client) -> None:
    response = await client.post("/api/login", json={"email": "a\u0000@b.example", "password": "x"})
    assert response.status_code == 422


def test_find_unstorable_names_the_path_of_a_nul() -> None:
    found = find_unstorable({"a": {"b": ["ok", "no\u0000"]}})
    assert found is not None and found[0] == "a.b[1]"
    assert find_unstorable({"a": 1, "b": [1, 2.5, None, True]}) is None
    assert find_unstorable("plain") is None
