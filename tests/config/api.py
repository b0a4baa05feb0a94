"""Request helpers shared by the configuration API tests."""

from __future__ import annotations

from typing import Any

import httpx

API = "/api/config"


async def set_setting(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    key: str,
    value: Any,
    *,
    scope: dict[str, Any] | None = None,
    expect: int = 201,
    **extra: Any,
) -> dict[str, Any]:
    """``POST /api/config/setting``, asserting the status; the answer's body."""
    body: dict[str, Any] = {"key": key, "value": value, **extra}
    if scope is not None:
        body["scope"] = scope
    response = await client.post(f"{API}/setting", json=body, headers=headers)
    assert response.status_code == expect, response.text
    result: dict[str, Any] = response.json()
    return result
