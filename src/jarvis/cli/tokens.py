"""``jarvis tokens create``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import typer

from jarvis.auth.service import create_api_token
from jarvis.cli.common import run, transaction
from jarvis.governance.audit import Actor
from jarvis.kit.clock import utcnow

app = typer.Typer(help="API tokens.", no_args_is_help=True)


@app.command()
def create(
    user: Annotated[str, typer.Option(help="E-mail of the user the token acts as")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by")],
    expires_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expire after this many days")
    ] = None,
) -> None:
    """Create an API token and print it (only once; only its hash is stored)."""
    expires_at = utcnow() + timedelta(days=expires_days) if expires_days else None

    async def body() -> str:
        async with transaction() as session:
            _, token = await create_api_token(
                session, email=user, name=name, actor=Actor.system("cli"), expires_at=expires_at
            )
            return token

    token = run(body)
    # The token alone on stdout, so scripts can capture it.
    typer.echo(token)
    typer.echo(
        f"token '{name}' for {user.lower()} created; it is shown only once. "
        "Send it as 'Authorization: Bearer <token>'.",
        err=True,
    )
