"""Commands registered by name, imported only when they run.

Importing every command module up front costs seconds (SQLAlchemy, FastAPI, Alembic and
the domains behind them), and ``jarvis --help`` or ``jarvis version`` need none of it. A
``LazyGroup`` knows each command's name, where it is defined and its one-line help; it
lists them from that alone and imports a command's module when the command is parsed to
run, to show its own ``--help`` or to complete its arguments.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer import _click  # Typer 0.29 vendors Click; its commands are these classes
from typer.core import MarkupMode, TyperCommand, TyperGroup
from typer.main import get_command_from_info, get_group_from_info
from typer.models import CommandInfo, TyperInfo


@dataclass(frozen=True)
class Lazy:
    """One command as the root help lists it: ``target`` is ``module:attribute``, naming a
    command function or a ``typer.Typer`` group."""

    name: str
    target: str
    help: str

    def resolve(self) -> Callable[..., Any] | typer.Typer:
        module, _, attribute = self.target.partition(":")
        found: Callable[..., Any] | typer.Typer = getattr(
            importlib.import_module(module), attribute
        )
        return found


class LazyCommand(TyperCommand):
    """Stands in for a command until it is used: it carries the name and the help line,
    and hands parsing over to the real command (so the context that runs is the real
    command's)."""

    def __init__(self, entry: Lazy, parent: TyperGroup) -> None:
        super().__init__(entry.name, help=entry.help, rich_markup_mode=parent.rich_markup_mode)
        self.entry = entry
        self._suggest = parent.suggest_commands
        self._loaded: _click.Command | None = None

    def load(self) -> _click.Command:
        """The real command (its module imported on first use), built as Typer builds the
        commands and groups registered on a parent."""
        if self._loaded is None:
            self._loaded = _build(self.entry, self.rich_markup_mode, self._suggest)
        return self._loaded

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: _click.Context | None = None,
        **extra: Any,
    ) -> _click.Context:
        return self.load().make_context(info_name, args, parent, **extra)


def _build(entry: Lazy, markup: MarkupMode, suggest: bool) -> _click.Command:
    # What Typer does for `add_typer(app, name=...)` and `command(name)(function)` on the
    # parent (whose pretty_exceptions_short is Typer's default, True).
    target = entry.resolve()
    if isinstance(target, typer.Typer):
        return get_group_from_info(
            TyperInfo(target, name=entry.name),
            pretty_exceptions_short=True,
            suggest_commands=suggest,
            rich_markup_mode=markup,
        )
    return get_command_from_info(
        CommandInfo(name=entry.name, callback=target),
        pretty_exceptions_short=True,
        rich_markup_mode=markup,
    )


class LazyGroup(TyperGroup):
    """A Typer group with lazily registered commands and groups.

    Typer lists a group's commands before its sub-groups; this keeps that order:
    ``commands_table``, the commands registered on the group itself, then
    ``groups_table``. Subclasses set the two tables (Typer builds the group from its
    class, given as ``typer.Typer(cls=...)``).
    """

    commands_table: ClassVar[tuple[Lazy, ...]] = ()
    groups_table: ClassVar[tuple[Lazy, ...]] = ()

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        registered = dict(self.commands)
        self.commands.clear()
        for entry in self.commands_table:
            self.commands[entry.name] = LazyCommand(entry, self)
        self.commands.update(registered)
        for entry in self.groups_table:
            self.commands[entry.name] = LazyCommand(entry, self)
