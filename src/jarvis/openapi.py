"""The OpenAPI document, with errors described as what they are: problem+json.

FastAPI documents 422 as its own ``HTTPValidationError`` JSON and no other error; JARVIS
answers every error as ``application/problem+json`` (see ``jarvis.errors``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An error (RFC 9457).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "urn:jarvis:problem:<slug>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What was wrong, for a person"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "For validation errors: each invalid field and why",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                },
            },
        },
    },
}

_PROBLEM_RESPONSE = {
    "description": "Error",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def problem_openapi(app: FastAPI) -> dict[str, Any]:
    """Build (once) the OpenAPI document with problem+json error responses."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = PROBLEM_SCHEMA
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {**_PROBLEM_RESPONSE, "description": "Validation failed"}
            responses["default"] = _PROBLEM_RESPONSE
    app.openapi_schema = schema
    return schema
