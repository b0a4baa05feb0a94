"""The demo's data files (``jarvis/demo/scenarios/*.yaml``), read and checked.

One file per scenario, read in the order of ``SCENARIOS``: ``platform`` (the agents every
persona shares, the answer template, the demo's first day), ``underwriting`` (Rachel
Thompson's commercial property desk), ``service_desk`` (John Stevens' IT service desk) and
``claims`` (first notices of loss). A file may hold ``personas``, ``users``, ``agents``,
``ruleSets``, ``templates`` and ``history``, each entry written as the API's request body
for it (camelCase keys; an agent's ``config`` as its kind reads it).

``load_demo`` checks every entry against the schema its service validates with, each
agent's config against its kind, and the references between entries (personas, users,
rule tables, templates); the first mistake found raises ``DemoDataError`` naming
the file, the line and the entry's path (``agents[2].config.fields[1].type``). The YAML
is read with YAML 1.2's booleans (only ``true``/``false``: ``no`` is a word, as the rule
tables need) and no timestamps, and a key given twice in one mapping is an error.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from jarvis.agents.kinds.registry import available_kinds
from jarvis.agents.schemas import (
    KIND_PATTERN,
    AgentCreate,
    AgentMetrics,
    GovernanceStatus,
    RiskLevel,
)
from jarvis.config.rules import RuleSetIn, TemplateIn
from jarvis.core.layers import layer_position
from jarvis.core.permissions import PERMISSIONS
from jarvis.kit.schema import ApiInput
from jarvis.kit.templating import TemplateFailed, compile_template
from jarvis.personas.schemas import PersonaKey, PersonaRegister
from jarvis.personas.service import ADMIN_PERSONA

SCENARIOS: tuple[str, ...] = ("platform", "underwriting", "service_desk", "claims")
SCENARIO_DIR: Traversable = files("jarvis.demo") / "scenarios"

EntryPath = Sequence[str | int]  # where in a file: ("agents", 2, "config", "labels")


class DemoDataError(Exception):
    """A mistake in a demo data file: the message names the file, the line and the entry."""


# --- the entries -----------------------------------------------------------------------


def _known_permission(name: str) -> str:
    if name not in PERMISSIONS:
        raise ValueError(f"unknown permission; the permissions are: {', '.join(PERMISSIONS)}")
    return name


class DemoPersona(PersonaRegister):
    """A persona, and what it may do on top of the default set (``auth.default_permissions``)."""

    permissions: list[Annotated[str, AfterValidator(_known_permission)]] = Field(
        default_factory=list
    )

    def register(self) -> PersonaRegister:
        data = self.model_dump(by_alias=False, exclude={"permissions"}, exclude_unset=True)
        return PersonaRegister.model_validate(data)


class DemoUser(ApiInput):
    """A demo person's account; the seed generates the password."""

    model_config = ConfigDict(frozen=True)

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    persona: PersonaKey
    first_name: str = Field(min_length=1)
    last_name: str = Field(min_length=1)
    job_title: str = Field(min_length=1)
    department: str = Field(min_length=1)


class DemoMetrics(ApiInput):
    """The figures a demo agent shows before it has run (every one stated)."""

    success_rate: float = Field(ge=0, le=100)
    avg_response_time: int = Field(ge=0)
    sla_performance: float = Field(ge=0, le=100)
    cpu_usage: int = Field(ge=0, le=100)


class DemoAgent(AgentCreate):
    """An agent as ``POST /api/agents`` takes it, with its metrics. A demo agent states its
    kind, governance status, risk and maturity: the API's defaults are not what it means."""

    kind: str = Field(pattern=KIND_PATTERN)
    governance_status: GovernanceStatus
    risk_level: RiskLevel
    maturity_level: int = Field(ge=1, le=5)
    metrics: DemoMetrics

    def split(self) -> tuple[AgentCreate, AgentMetrics]:
        data = self.model_dump(by_alias=False, exclude={"metrics"}, exclude_unset=True)
        metrics = AgentMetrics.model_validate(self.metrics.model_dump(by_alias=False))
        return AgentCreate.model_validate(data), metrics


class DemoCommand(ApiInput):
    """A command a demo user runs on the demo's first day (``--with-history``)."""

    model_config = ConfigDict(frozen=True)

    user: str = Field(min_length=1)
    command: str = Field(min_length=1, max_length=10_000)


class Scenario(ApiInput):
    """One data file."""

    personas: list[DemoPersona] = Field(default_factory=list)
    users: list[DemoUser] = Field(default_factory=list)
    agents: list[DemoAgent] = Field(default_factory=list)
    rule_sets: list[RuleSetIn] = Field(default_factory=list)
    templates: list[TemplateIn] = Field(default_factory=list)
    history: list[DemoCommand] = Field(default_factory=list)


@dataclass(frozen=True)
class Demo:
    """Everything ``seed_demo`` and ``run_history`` store and run, in order."""

    personas: tuple[PersonaRegister, ...]
    permissions: dict[str, tuple[str, ...]]
    users: tuple[DemoUser, ...]
    agents: tuple[tuple[AgentCreate, AgentMetrics], ...]
    rule_sets: tuple[RuleSetIn, ...]
    templates: tuple[TemplateIn, ...]
    history: tuple[DemoCommand, ...]


# --- reading ---------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML with 1.2's booleans, no timestamps and no key twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "in a mapping", node.start_mark, f"{key!r} given twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


_BOOL, _TIMESTAMP = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _where(path: EntryPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "the top level"


def _line(node: yaml.Node | None, path: EntryPath) -> int | None:
    """The line of the deepest node ``path`` reaches (1-based)."""
    line = None
    for part in path:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if 0 <= part < len(node.value) else None
        else:
            node = None
    return node.start_mark.line + 1 if node is not None else line


@dataclass(frozen=True)
class _File:
    """A data file read: its text's nodes point a mistake to its line."""

    path: Traversable
    node: yaml.Node | None

    def error(self, path: EntryPath, message: str) -> DemoDataError:
        line = _line(self.node, path)
        at = f" line {line}" if line is not None else ""
        return DemoDataError(f"{self.path}{at}, {_where(path)}: {message}")

    def invalid(self, exc: ValidationError, prefix: EntryPath = ()) -> DemoDataError:
        messages = []
        for error in exc.errors(include_url=False):
            path = [*prefix, *error["loc"]]
            messages.append(str(self.error(path, error["msg"])))
        return DemoDataError("\n".join(messages))


def _read(directory: Traversable, name: str) -> tuple[_File, Scenario]:
    path = directory / f"{name}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DemoDataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    loader = _StrictLoader(text)
    loader.name = str(path)  # what YAML's own messages call the file
    try:
        node = loader.get_single_node()
        data = {} if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise DemoDataError(f"{path}: {exc}") from None
    finally:
        loader.dispose()
    file = _File(path, node)
    try:
        return file, Scenario.model_validate(data)
    except ValidationError as exc:
        raise file.invalid(exc) from None


def _check_files(directory: Traversable) -> None:
    """Every data file is one of SCENARIOS (a file not listed would be left out silently)."""
    listed = {f"{name}.yaml" for name in SCENARIOS}
    for entry in directory.iterdir():
        if entry.name.endswith((".yaml", ".yml")) and entry.name not in listed:
            raise DemoDataError(
                f"{entry}: not a demo scenario; add its name to SCENARIOS in {__name__}"
            )


# --- checking across entries and files -------------------------------------------------

# Kind settings that name a rule table or a template, and where the demo keeps those.
_REFERENCES = {"rule_set": "rule_sets", "template": "templates", "offline_template": "templates"}


class _Names:
    """Names seen so far, with where each was defined, to refuse a second definition."""

    def __init__(self, what: str, *, fold: bool = False) -> None:
        self.what, self.fold = what, fold
        self.seen: dict[str, str] = {}

    def add(self, name: str, file: _File, path: EntryPath) -> None:
        key = name.lower() if self.fold else name
        if key in self.seen:
            raise file.error(path, f"{self.what} '{name}' is defined twice ({self.seen[key]})")
        self.seen[key] = f"first in {file.path.name}, {_where(path)}"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name.lower() if self.fold else name) in self.seen


def _check_agent(
    agent: DemoAgent, file: _File, path: EntryPath, personas: _Names, names: dict[str, _Names]
) -> None:
    if agent.persona not in personas:
        raise file.error([*path, "persona"], f"no demo persona '{agent.persona}'")
    kind = available_kinds().get(agent.kind)
    if kind is None:
        known = ", ".join(sorted(available_kinds()))
        raise file.error([*path, "kind"], f"unknown kind '{agent.kind}'; the kinds are: {known}")
    try:
        config = kind.config_model.model_validate(agent.config)
    except ValidationError as exc:
        raise file.invalid(exc, [*path, "config"]) from None
    for setting, where in _REFERENCES.items():
        named = getattr(config, setting, None)
        if named is not None and named not in names[where]:
            what = "rule table" if where == "rule_sets" else "template"
            raise file.error([*path, "config", to_camel(setting)], f"no demo {what} '{named}'")


def load_demo(directory: Traversable = SCENARIO_DIR) -> Demo:
    """Read and check every scenario file; DemoDataError on the first mistake."""
    _check_files(directory)
    read = [_read(directory, name) for name in SCENARIOS]
    personas, users = _Names("persona"), _Names("user", fold=True)
    names = {"rule_sets": _Names("rule table"), "templates": _Names("template")}
    agent_names = _Names("agent", fold=True)
    personas.seen[ADMIN_PERSONA.key] = "the platform's own persona (personas.service)"
    for file, scenario in read:
        for i, persona in enumerate(scenario.personas):
            personas.add(persona.key, file, ["personas", i, "key"])
        for i, rule_set in enumerate(scenario.rule_sets):
            names["rule_sets"].add(rule_set.name, file, ["ruleSets", i, "name"])
        for i, template in enumerate(scenario.templates):
            names["templates"].add(template.name, file, ["templates", i, "name"])
            try:
                compile_template(template.body)
            except TemplateFailed as exc:
                raise file.error(["templates", i, "body"], str(exc)) from None
    for file, scenario in read:
        for i, user in enumerate(scenario.users):
            users.add(user.email, file, ["users", i, "email"])
            if user.persona not in personas:
                raise file.error(["users", i, "persona"], f"no demo persona '{user.persona}'")
        for i, agent in enumerate(scenario.agents):
            agent_names.add(agent.name, file, ["agents", i, "name"])
            _check_agent(agent, file, ["agents", i], personas, names)
    for file, scenario in read:
        for i, command in enumerate(scenario.history):
            if command.user not in users:
                raise file.error(["history", i, "user"], f"no demo user '{command.user}'")
    scenarios = [scenario for _, scenario in read]
    agents = [agent for scenario in scenarios for agent in scenario.agents]
    return Demo(
        personas=(ADMIN_PERSONA, *(p.register() for s in scenarios for p in s.personas)),
        permissions={p.key: tuple(p.permissions) for s in scenarios for p in s.personas},
        users=tuple(user for s in scenarios for user in s.users),
        # Registered layer by layer, as the engine runs them; files keep their order within.
        agents=tuple(a.split() for a in sorted(agents, key=lambda a: layer_position(a.layer))),
        rule_sets=tuple(r for s in scenarios for r in s.rule_sets),
        templates=tuple(t for s in scenarios for t in s.templates),
        history=tuple(c for s in scenarios for c in s.history),
    )
