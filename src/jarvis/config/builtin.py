"""The keys the product itself reads. They are created in every database (missing ones
only: an admin's later edits of a definition are kept) by ``jarvis db upgrade``, at
server start and by the demo seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.config.models import ConfigRegistry
from jarvis.core.layers import LAYER_ORDER
from jarvis.core.permissions import PERMISSIONS
from jarvis.core.personas import CSS_COLOUR_PATTERN
from jarvis.kit.clock import utcnow

ALL_SCOPES = ["global", "persona", "agent", "workflow"]
BUILTIN_ACTOR = "system:config-registry"


@dataclass(frozen=True)
class KeyDefinition:
    key: str
    description: str
    schema: dict[str, Any]
    default: Any
    scopes: list[str] = field(default_factory=lambda: list(ALL_SCOPES))
    secret: bool = False
    requires_approval: bool = False


_COLOUR = {"type": "string", "pattern": CSS_COLOUR_PATTERN}
COLOUR_NAMES = ("primary", "secondary", "accent", "background", "glassmorphism")

# The seed's ``personaColors.admin``.
DEFAULT_COLOURS = {
    "primary": "#3b82f6",
    "secondary": "#1e40af",
    "accent": "#60a5fa",
    "background": "#0f172a",
    "glassmorphism": "rgba(15, 23, 42, 0.7)",
}

BUILTIN_KEYS: tuple[KeyDefinition, ...] = (
    KeyDefinition(
        "persona.colors",
        "A persona's colour scheme (the seed's personaColors), applied to every page through "
        "CSS custom properties.",
        {
            "type": "object",
            "properties": {name: _COLOUR for name in COLOUR_NAMES},
            "required": list(COLOUR_NAMES),
            "additionalProperties": False,
        },
        DEFAULT_COLOURS,
        scopes=["global", "persona"],
    ),
    KeyDefinition(
        "agent.timeout_seconds",
        "How long one agent step may run before it is cancelled and counted as failed.",
        {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        30,
    ),
    KeyDefinition(
        "agent.max_retries",
        "How many times a failed agent step is retried before the step fails.",
        {"type": "integer", "minimum": 0, "maximum": 10},
        2,
    ),
    KeyDefinition(
        "agent.retry_backoff_seconds",
        "Delay before the first retry of a failed step; doubled for each further retry.",
        {"type": "number", "minimum": 0, "maximum": 600},
        1,
    ),
    KeyDefinition(
        "execution.max_concurrency",
        "How many executions one worker runs at the same time.",
        {"type": "integer", "minimum": 1, "maximum": 1000},
        4,
        scopes=["global", "persona"],
    ),
    KeyDefinition(
        "execution.max_parallel_agents",
        "How many agents of one layer run at the same time within one execution.",
        {"type": "integer", "minimum": 1, "maximum": 256},
        8,
        scopes=["global", "persona", "workflow"],
    ),
    KeyDefinition(
        "execution.failure_policy",
        "Per layer, what a failed agent step does to the execution: 'fail_fast' (the "
        "default: the layer's other agents are cancelled and the execution fails) or "
        "'continue' (the layer completes; later layers see the failure in the context).",
        {
            "type": "object",
            "propertyNames": {"enum": [layer.value for layer in LAYER_ORDER]},
            "additionalProperties": {"enum": ["fail_fast", "continue"]},
        },
        {},
        scopes=["global", "persona", "workflow"],
    ),
    KeyDefinition(
        "http.allowed_hosts",
        "Hosts that http agents may call: exact names ('api.example.com'), or '*.' and a "
        "domain for its subdomains. Anything else is refused, so no agent can be pointed "
        "at internal addresses.",
        {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 253},
            "maxItems": 500,
            "uniqueItems": True,
        },
        [],
        scopes=["global"],
    ),
    KeyDefinition(
        "ratelimit.login_attempts_per_minute",
        "Sign-in attempts allowed per account and per IP address per minute.",
        {"type": "integer", "minimum": 1, "maximum": 10000},
        10,
        scopes=["global"],
    ),
    KeyDefinition(
        "ratelimit.api_requests_per_minute",
        "API calls allowed per user or token per minute.",
        {"type": "integer", "minimum": 1, "maximum": 1000000},
        600,
        scopes=["global", "persona"],
    ),
    KeyDefinition(
        "ratelimit.executions_per_minute",
        "Executions a user may start per minute.",
        {"type": "integer", "minimum": 1, "maximum": 100000},
        30,
        scopes=["global", "persona"],
    ),
    KeyDefinition(
        "auth.session_days",
        "How long a sign-in session lasts, in days.",
        {"type": "integer", "minimum": 1, "maximum": 365},
        30,
        scopes=["global", "persona"],
    ),
    KeyDefinition(
        "auth.password_min_length",
        "The fewest characters a local account's password may have.",
        {"type": "integer", "minimum": 8, "maximum": 128},
        10,
        scopes=["global"],
    ),
    KeyDefinition(
        "auth.lockout_threshold",
        "Consecutive failed sign-ins after which a local account is locked.",
        {"type": "integer", "minimum": 1, "maximum": 1000},
        5,
        scopes=["global"],
    ),
    KeyDefinition(
        "auth.lockout_minutes",
        "How long a locked local account stays locked, in minutes.",
        {"type": "integer", "minimum": 1, "maximum": 10080},
        15,
        scopes=["global"],
    ),
    KeyDefinition(
        "auth.default_permissions",
        "The permissions a persona is granted when it is registered (read at the new "
        "persona's scope, so a persona-scoped value prepares a known persona). Changing it "
        "does not touch personas that exist; edit those under /api/permissions.",
        {
            "type": "array",
            "items": {"enum": list(PERMISSIONS)},
            "uniqueItems": True,
        },
        ["executions:create"],
        scopes=["global", "persona"],
        requires_approval=True,
    ),
    KeyDefinition(
        "auth.sso_default_persona",
        "The persona of a user created by their first sign-in with GitHub or OpenID Connect.",
        {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,63}$"},
        "underwriter",
        scopes=["global"],
    ),
    KeyDefinition(
        "auth.sso_allowed_domains",
        "E-mail domains whose users may sign in with GitHub or OpenID Connect "
        "('example.com'); empty allows any verified address.",
        {
            "type": "array",
            "items": {"type": "string", "minLength": 1, "maxLength": 253},
            "uniqueItems": True,
            "maxItems": 500,
        },
        [],
        scopes=["global"],
    ),
    KeyDefinition(
        "llm.provider",
        "Which LLM provider agents use: 'rules' (offline, deterministic) or 'openai' (any "
        "OpenAI-compatible endpoint). Changing it needs a second admin's approval.",
        {"type": "string", "enum": ["rules", "openai"]},
        "rules",
        scopes=["global", "persona", "agent"],
        requires_approval=True,
    ),
    KeyDefinition(
        "llm.model",
        "The model name sent to the LLM provider.",
        {"type": "string", "minLength": 1, "maxLength": 200},
        "gpt-4o-mini",
    ),
    KeyDefinition(
        "llm.base_url",
        "The OpenAI-compatible endpoint the 'openai' provider calls (OpenAI, Azure OpenAI, "
        "Ollama, vLLM). The API key comes from JARVIS_OPENAI_API_KEY, never from here.",
        {"type": "string", "pattern": "^https?://[^\\s]+$", "maxLength": 2000},
        "https://api.openai.com/v1",
        scopes=["global", "persona", "agent"],
    ),
    KeyDefinition(
        "llm.timeout_seconds",
        "How long one call to the LLM provider may take.",
        {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
        30,
        scopes=["global", "persona", "agent"],
    ),
    KeyDefinition(
        "sla.success_rate_min",
        "The share of successful steps (0 to 1) below which an agent misses its SLA.",
        {"type": "number", "minimum": 0, "maximum": 1},
        0.95,
        scopes=["global", "persona", "agent"],
    ),
    KeyDefinition(
        "sla.response_time_ms",
        "The average step duration, in milliseconds, above which an agent misses its SLA.",
        {"type": "integer", "minimum": 1, "maximum": 3600000},
        5000,
        scopes=["global", "persona", "agent"],
    ),
)


async def ensure_builtin_registry(session: AsyncSession) -> list[str]:
    """Create the built-in keys that are missing; return their names.

    ``INSERT ... ON CONFLICT DO NOTHING``, so instances starting together do not collide.
    """
    existing = set((await session.scalars(select(ConfigRegistry.key))).all())
    missing = [d for d in BUILTIN_KEYS if d.key not in existing]
    if not missing:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    now = utcnow()
    rows = [
        {
            "key": d.key,
            "description": d.description,
            "value_schema": d.schema,
            "default_value": d.default,
            "allowed_scopes": list(d.scopes),
            "is_secret": d.secret,
            "requires_approval": d.requires_approval,
            "revision": 1,
            "created_at": now,
            "updated_at": now,
            "updated_by": BUILTIN_ACTOR,
        }
        for d in missing
    ]
    statement = insert(ConfigRegistry).values(rows).on_conflict_do_nothing(index_elements=["key"])
    await session.execute(statement)
    return [d.key for d in missing]
