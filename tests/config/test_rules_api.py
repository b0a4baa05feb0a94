"""Rule tables and templates: each save is the next version; reads give newest or a given one."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from jarvis.audit.models import AuditTrail
from jarvis.audit.service import verify_ledger
from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from tests.factories import bearer, create_user, token_for
from tests.problems import assert_problem

APPETITE = {
    "name": "property.appetite",
    "description": "Commercial property appetite by construction and protection",
    "definition": {
        "rules": [
            {
                "when": [
                    {"field": "cope.construction", "op": "eq", "value": "frame"},
                    {"field": "cope.sprinklered", "op": "eq", "value": False},
                ],
                "outcome": "decline",
                "reasonCode": "frame_unsprinklered",
            },
            {
                "when": [{"field": "tiv", "op": "gt", "value": 50000000}],
                "outcome": "refer",
                "reasonCode": "tiv_over_authority",
            },
        ],
        "defaultOutcome": "accept",
    },
}


async def test_rule_tables_are_versioned_by_name(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    first = await client.post("/api/config/rules", json=APPETITE, headers=admin_headers)
    assert first.status_code == 201, first.text
    assert first.json()["version"] == 1
    assert first.json()["definition"]["rules"][0]["reasonCode"] == "frame_unsprinklered"
    changed = {**APPETITE, "definition": {**APPETITE["definition"], "defaultOutcome": "refer"}}
    second = await client.post("/api/config/rules", json=changed, headers=admin_headers)
    assert second.json()["version"] == 2

    newest = await client.get("/api/config/rules/property.appetite", headers=admin_headers)
    assert newest.json()["version"] == 2
    assert newest.json()["definition"]["defaultOutcome"] == "refer"
    old = await client.get(
        "/api/config/rules/property.appetite", params={"version": 1}, headers=admin_headers
    )
    assert old.json()["definition"]["defaultOutcome"] == "accept"
    listing = await client.get("/api/config/rules", headers=admin_headers)
    assert listing.json()["items"] == [{"name": "property.appetite", "latestVersion": 2}]

    async with unit_of_work(db, write=False) as session:
        actions = (await session.scalars(select(AuditTrail.action))).all()
        assert actions.count("config.rules.save") == 2
        assert (await verify_ledger(session)).status == "intact"


async def test_rule_table_shape_is_checked(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    bad = {
        **APPETITE,
        "definition": {
            "rules": [{"when": [{"field": "x", "op": "like"}], "outcome": 1, "reasonCode": "r"}]
        },
    }
    problem = assert_problem(
        await client.post("/api/config/rules", json=bad, headers=admin_headers), 422
    )
    assert any(e["loc"][-1] == "op" for e in problem["errors"])
    missing = await client.get("/api/config/rules/no.such.rules", headers=admin_headers)
    assert_problem(missing, 404, "no rule table 'no.such.rules'")
    none = await client.get(
        "/api/config/rules/property.appetite", params={"version": 9}, headers=admin_headers
    )
    assert_problem(none, 404)


async def test_templates_are_versioned_and_admin_only(
    client: httpx.AsyncClient, admin_headers: dict[str, str], db: Database
) -> None:
    body = {"name": "broker.ack", "body": "Dear {{ broker.name }}, we received {{ ref }}."}
    created = await client.post("/api/config/templates", json=body, headers=admin_headers)
    assert created.status_code == 201, created.text
    again = await client.post(
        "/api/config/templates",
        json={**body, "body": "Hello {{ broker.name }}"},
        headers=admin_headers,
    )
    assert again.json()["version"] == 2
    newest = await client.get("/api/config/templates/broker.ack", headers=admin_headers)
    assert newest.json()["body"] == "Hello {{ broker.name }}"

    underwriter = await create_user(db, persona="underwriter")
    headers = bearer(await token_for(db, underwriter))
    refused = await client.post("/api/config/templates", json=body, headers=headers)
    assert_problem(refused, 403)
    assert (
        await client.get("/api/config/templates/broker.ack", headers=headers)
    ).status_code == 200
    anonymous = await client.get("/api/config/templates/broker.ack")
    assert_problem(anonymous, 401)
