"""``jarvis tokens create|list|revoke``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from jarvis.auth.revocation import announce_revoked
from jarvis.auth.tokens.schemas import TokenOut
from jarvis.auth.tokens.service import create_api_token, list_tokens_of, revoke_token_by_name
from jarvis.cli.common import console, run, settings, transaction
from jarvis.core.identity import Actor
from jarvis.kit.bus import create_bus
from jarvis.kit.clock import utcnow

app = typer.Typer(help="API tokens.", no_args_is_help=True)

CLI_ACTOR = Actor.system("cli")


@app.command()
def create(
    user: Annotated[str, typer.Option(help="E-mail of the user the token acts as")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by")],
    expires_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expire after this many days")
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="Limit the token to this permission (repeat for several; default: every "
            "permission the user holds, now and later)"
        ),
    ] = None,
) -> None:
    """Create an API token and print it (only once; only its hash is stored)."""
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None

    async def body() -> str:
        async with transaction() as session:
            _, token = await create_api_token(
                session,
                email=user,
                name=name,
                actor=CLI_ACTOR,
                expires_at=expires_at,
                scopes=scope or None,
            )
            return token

    token = run(body)
    # The token alone on stdout, so scripts can capture it.
    typer.echo(token)
    limited = f" limited to {', '.join(sorted(set(scope)))}" if scope else ""
    typer.echo(
        f"token '{name}' for {user.lower()}{limited} created; it is shown only once. "
        "Send it as 'Authorization: Bearer <token>'.",
        err=True,
    )


def _when(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def _status(row: TokenOut) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= utcnow():
        return "expired"
    return "active"


@app.command("list")
def list_(
    user: Annotated[str, typer.Option(help="E-mail of the user whose tokens to list")],
) -> None:
    """List a user's tokens (names, prefixes, scopes, dates; never the token values)."""

    async def body() -> list[TokenOut]:
        async with transaction(write=False) as session:
            return await list_tokens_of(session, user)

    rows = run(body)
    if not rows:
        console.print(f"{escape(user.lower())} has no API tokens")
        return
    table = Table("id", "name", "prefix", "scopes", "status", "created", "expires", "last used")
    for row in rows:
        table.add_row(
            str(row.id),
            escape(row.name),
            row.prefix + "…",
            ", ".join(row.scopes) if row.scopes is not None else "(all)",
            _status(row),
            _when(row.created_at),
            _when(row.expires_at),
            _when(row.last_used_at),
        )
    console.print(table)


@app.command()
def revoke(
    user: Annotated[str, typer.Option(help="E-mail of the user who holds the token")],
    name: Annotated[str, typer.Option(help="The token's name")],
) -> None:
    """Revoke a token. With JARVIS_REDIS_URL set, running servers refuse it at once;
    otherwise within JARVIS_AUTH_CACHE_SECONDS."""

    async def body() -> bool:
        bus = create_bus(settings().redis_url)
        try:
            async with transaction() as session:
                row, revoked = await revoke_token_by_name(
                    session, email=user, name=name, actor=CLI_ACTOR
                )
                if revoked:
                    announce_revoked(session, bus, token_ids=[row.id])
            return revoked
        finally:
            await bus.close()

    if run(body):
        console.print(f"token '{escape(name)}' of {escape(user.lower())} revoked")
    else:
        console.print(f"token '{escape(name)}' of {escape(user.lower())} was already revoked")
