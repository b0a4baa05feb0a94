"""``jarvis agents list``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table

from jarvis.agents.schemas import AgentOut
from jarvis.agents.service import AgentFilter, list_agents
from jarvis.cli.common import console, run, transaction
from jarvis.core.layers import Layer

app = typer.Typer(help="The agent registry.", no_args_is_help=True)


@app.command("list")
def list_command(
    layer: Annotated[Layer | None, typer.Option(help="Only this layer")] = None,
    persona: Annotated[str | None, typer.Option(help="Only this persona's agents")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 200,
) -> None:
    """List agents in layer order as a table."""

    async def body() -> tuple[Sequence[AgentOut], int]:
        async with transaction(write=False) as session:
            rows, total = await list_agents(
                session, AgentFilter(layer=layer, persona=persona), limit=limit, offset=0
            )
            return [AgentOut.model_validate(row) for row in rows], total

    rows, total = run(body)
    table = Table(title=f"Agents ({len(rows)} of {total})")
    for column in ("ID", "Layer", "Name", "Persona", "Function", "Governance", "Success %"):
        table.add_column(column)
    for agent in rows:
        table.add_row(
            str(agent.id),
            agent.layer.value,
            agent.name,
            agent.persona,
            agent.business_function or "",
            agent.governance_status,
            f"{agent.success_rate:.1f}",
        )
    console.print(table)
