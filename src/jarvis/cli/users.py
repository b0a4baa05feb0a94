"""``jarvis users create | set-password``."""

from __future__ import annotations

from typing import Annotated

import typer

from jarvis.auth.users.passwords import generate_password
from jarvis.auth.users.service import create_user, set_password
from jarvis.cli.common import configured, console, run, transaction
from jarvis.core.identity import Actor
from jarvis.personas.service import ensure_builtin_personas

app = typer.Typer(help="User accounts.", no_args_is_help=True)
CLI_ACTOR = Actor.system("cli")


@app.command()
def create(
    email: Annotated[str, typer.Option(help="The user's e-mail (their sign-in name)")],
    persona: Annotated[str, typer.Option(help="Persona key, e.g. admin or underwriter")],
    password: Annotated[
        str | None, typer.Option(help="Password; one is generated and shown when omitted")
    ] = None,
    first_name: Annotated[str | None, typer.Option()] = None,
    last_name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a user."""
    generated = password is None
    secret = password or generate_password()

    async def body() -> None:
        async with configured() as (session, config):
            # A database that was migrated but never seeded has no personas yet.
            await ensure_builtin_personas(session, actor=CLI_ACTOR, config=config)
            await create_user(
                session,
                email=email,
                persona=persona,
                password=secret,
                actor=CLI_ACTOR,
                first_name=first_name,
                last_name=last_name,
            )

    run(body)
    console.print(f"created user [bold]{email.lower()}[/] with persona {persona}")
    if generated:
        console.print(f"password: [bold]{secret}[/] (shown once)")


@app.command("set-password")
def set_password_command(
    email: Annotated[str, typer.Option(help="The user's e-mail")],
    password: Annotated[
        str | None, typer.Option(help="New password; one is generated and shown when omitted")
    ] = None,
) -> None:
    """Set a user's password (ends their sessions)."""
    generated = password is None
    secret = password or generate_password()

    async def body() -> None:
        async with transaction() as session:
            await set_password(session, email, secret, actor=CLI_ACTOR)

    run(body)
    console.print(f"password set for [bold]{email.lower()}[/]; their sessions were ended")
    if generated:
        console.print(f"password: [bold]{secret}[/] (shown once)")
