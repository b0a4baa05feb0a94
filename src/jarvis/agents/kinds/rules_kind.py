"""``rules``: evaluates a named, versioned rule table from ``business_rules``.

Conditions are dotted paths into the execution context (for instance
``outputs.cope_data_extractor.values.year_built``); the first rule whose conditions all
hold gives the outcome and reason code. The output records the table's name and version
and which rule matched, so a decision can be traced to the rules that made it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, ValidationError

from jarvis.agents.kinds.base import AgentKind, KindConfig, StepContext, StepFailed, StepResult
from jarvis.agents.kinds.rule_eval import evaluate
from jarvis.agents.kinds.template import VERSION_HELP, VersionNumber
from jarvis.config.rules import Name, RuleTable, get_rule_set
from jarvis.db.session import unit_of_work
from jarvis.errors import NotFound


class RulesConfig(KindConfig):
    rule_set: Name = Field(description="The rule table's name in business_rules.")
    version: VersionNumber | None = Field(default=None, description=VERSION_HELP)


async def load_rule_table(
    step: StepContext, name: str, version: int | None
) -> tuple[dict[str, Any], int]:
    """The stored definition and version of rule table ``name``; StepFailed if none."""
    try:
        async with unit_of_work(step.services.db, write=False) as session:
            row = await get_rule_set(session, name, version)
            return row.definition, row.version
    except NotFound:
        which = f"'{name}'" + (f" version {version}" if version is not None else "")
        raise StepFailed(
            f"the rule table {which} does not exist (or has no active version)"
        ) from None


class RulesKind(AgentKind):
    name: ClassVar[str] = "rules"
    description: ClassVar[str] = (
        "Evaluates a named, versioned rule table (conditions over context fields -> outcome "
        "and reason code); the result records the table version and the rule that matched."
    )
    config_model: ClassVar[type[KindConfig]] = RulesConfig

    async def run(self, step: StepContext) -> StepResult:
        settings = step.settings_as(RulesConfig)
        definition, version = await load_rule_table(step, settings.rule_set, settings.version)
        try:
            table = RuleTable.model_validate(definition)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "definition"
            raise StepFailed(
                f"the rule table '{settings.rule_set}' version {version} is not valid: "
                f"{where}: {first['msg']}"
            ) from None
        decision = evaluate(table, step.context)
        return StepResult(
            {
                "outcome": decision.outcome,
                "reasonCode": decision.reason_code,
                "ruleSet": settings.rule_set,
                "version": version,
                "matchedRule": decision.matched_rule,
            }
        )
