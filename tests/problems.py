"""Assertions about problem+json answers, shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_problem(
    response: httpx.Response, status: int, *contains: str, slug: str | None = None
) -> dict[str, Any]:
    """Assert a problem+json answer with ``status`` whose detail mentions ``contains``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:jarvis:problem:")
    if slug is not None:
        assert body["type"] == f"urn:jarvis:problem:{slug}"
    assert body["title"]
    for fragment in contains:
        assert fragment in body["detail"], body["detail"]
    return body
