"""``app.state`` is read and written only through the typed keys of ``jarvis.kit.app_state``."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from jarvis.kit.app_state import KEYS, AppStateMissing, StateKey
from jarvis.main import create_app
from jarvis.settings import Settings

SRC = Path(__file__).resolve().parents[1] / "src" / "jarvis"
HOME = SRC / "kit" / "app_state.py"


def raw_state_uses(source: str, name: str) -> list[str]:
    """Where ``source`` touches ``<anything>.app.state`` (or ``getattr(x, "state")``)."""
    tree = ast.parse(source, filename=name)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "state"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "app"
        ):
            found.append(f"{name}:{node.lineno}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "state"
        ):
            found.append(f"{name}:{node.lineno}")
    return sorted(found, key=lambda where: int(where.rsplit(":", 1)[1]))


def test_nothing_reads_app_state_but_the_keys() -> None:
    raw = [
        use
        for path in sorted(SRC.rglob("*.py"))
        if path != HOME
        for use in raw_state_uses(path.read_text(), str(path.relative_to(SRC.parent)))
    ]
    assert raw == [], (
        "read app.state through the StateKey its domain declares (jarvis.kit.app_state): "
        "KEY.get(request), KEY.find(request) or KEY.put(app, value), not request.app.state.X"
    )


def test_the_check_sees_a_raw_read() -> None:
    source = (
        "def f(request, websocket):\n"
        "    request.app.state.db\n"
        "    getattr(websocket.app, 'state')\n"
        "    request.state.principal\n"
    )
    assert raw_state_uses(source, "x.py") == ["x.py:2", "x.py:3"]


async def test_every_key_create_app_sets_is_declared_once(settings: Settings, db) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings, database=db, check_schema=False)
    put = set(app.state._state)
    declared = set(KEYS)
    # Only sign_in_providers is built later (at the first SSO sign-in).
    assert declared - put == {"sign_in_providers"}
    assert put - declared == set()


async def test_a_missing_thing_is_named() -> None:
    key: StateKey[int] = KEYS["db"]  # type: ignore[assignment]
    app = FastAPI()

    @app.get("/x")
    async def read(request: Request) -> int:
        assert key.find(request) is None
        with pytest.raises(AppStateMissing, match=r"app\.state\.db \(the database\)"):
            key.get(request)
        key.put(request.app, 7)
        return key.get(request)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/x")).json() == 7


def test_a_name_is_declared_once() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        StateKey("db", "another database")
