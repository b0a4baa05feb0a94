"""The demo's data files: a mistake in one fails loudly, naming the file, line and entry.

Each test copies the shipped scenario files, breaks one thing and loads the copy.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from jarvis.demo.loader import SCENARIO_DIR, SCENARIOS, DemoDataError, load_demo


@pytest.fixture
def scenarios(tmp_path: Path) -> Path:
    for name in SCENARIOS:
        source = SCENARIO_DIR / f"{name}.yaml"
        (tmp_path / f"{name}.yaml").write_text(source.read_text(encoding="utf-8"), "utf-8")
    return tmp_path


def edit(folder: Path, file: str, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in ``file``; the line it starts on (1-based)."""
    path = folder / file
    text = path.read_text("utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), "utf-8")
    return text[: text.index(old)].count("\n") + 1


def error_of(folder: Path) -> str:
    with pytest.raises(DemoDataError) as caught:
        load_demo(folder)
    return str(caught.value)


def test_the_copied_files_load_as_the_shipped_ones(scenarios: Path) -> None:
    assert load_demo(scenarios) == load_demo()


def test_a_misspelt_agent_field_names_file_line_and_path(scenarios: Path) -> None:
    line = edit(
        scenarios,
        "claims.yaml",
        "    specialization: First notice of loss intake\n",
        "    specialisation: First notice of loss intake\n",
    )
    message = error_of(scenarios)
    assert message.startswith(f"{scenarios / 'claims.yaml'} line {line}, agents[1].specialisation:")
    assert "Extra inputs are not permitted" in message


def test_a_missing_governance_status_points_at_the_agent(scenarios: Path) -> None:
    edit(
        scenarios,
        "claims.yaml",
        "    governanceStatus: approved\n    riskLevel: high\n"
        "    maturityLevel: 3\n    metrics: {successRate: 93.9",
        "    riskLevel: high\n    maturityLevel: 3\n    metrics: {successRate: 93.9",
    )
    text = (scenarios / "claims.yaml").read_text("utf-8")
    line = text[: text.index("  - name: Claims FNOL Workflow")].count("\n") + 1
    message = error_of(scenarios)
    # the entry that lacks it, at the line where the entry starts
    assert f"claims.yaml line {line}, agents[1].governanceStatus: Field required" in message


def test_a_misspelt_kind_setting_is_refused_by_the_kind(scenarios: Path) -> None:
    line = edit(scenarios, "claims.yaml", "      outputKey: peril\n", "      outputKy: peril\n")
    message = error_of(scenarios)
    assert f"claims.yaml line {line}, agents[0].config.outputKy: Extra inputs" in message


def test_a_wrong_value_deep_in_a_config_names_its_path(scenarios: Path) -> None:
    line = edit(scenarios, "claims.yaml", "          type: date\n", "          type: dates\n")
    message = error_of(scenarios)
    assert f"claims.yaml line {line}, agents[1].config.fields[1].type:" in message


@pytest.mark.parametrize(
    ("file", "old", "new", "where", "says"),
    [
        (
            "service_desk.yaml",
            "      ruleSet: itil-priority\n",
            "      ruleSet: itil-priorty\n",
            "agents[3].config.ruleSet",
            "no demo rule table 'itil-priorty'",
        ),
        (
            "underwriting.yaml",
            "      offlineTemplate: broker-email-draft\n",
            "      offlineTemplate: broker-mail-draft\n",
            "agents[6].config.offlineTemplate",
            "no demo template 'broker-mail-draft'",
        ),
        (
            "claims.yaml",
            "    persona: admin\n    specialization: First notice of loss handling\n",
            "    persona: adjuster\n    specialization: First notice of loss handling\n",
            "agents[0].persona",
            "no demo persona 'adjuster'",
        ),
        (
            "claims.yaml",
            "    kind: classifier\n",
            "    kind: classifer\n",
            "agents[0].kind",
            "unknown kind 'classifer'",
        ),
        (
            "platform.yaml",
            "  - user: rachel.thompson@jarvis.local\n    command: Which",
            "  - user: rachel.thomson@jarvis.local\n    command: Which",
            "history[2].user",
            "no demo user 'rachel.thomson@jarvis.local'",
        ),
        (
            "underwriting.yaml",
            "    permissions: ['executions:create', 'executions:approve']\n",
            "    permissions: ['executions:create', 'execution:approve']\n",
            "personas[0].permissions[1]",
            "unknown permission",
        ),
        (
            "service_desk.yaml",
            "    persona: it_support\n    firstName: John\n",
            "    persona: it-support\n    firstName: John\n",
            "users[0].persona",
            "String should match pattern",
        ),
        (
            "platform.yaml",
            "      {% set intent = plan.intent %}\n",
            "      {% set intent = plan.intent\n",
            "templates[0].body",
            "template syntax error",
        ),
    ],
)
def test_a_broken_reference_or_value_names_the_entry(
    scenarios: Path, file: str, old: str, new: str, where: str, says: str
) -> None:
    edit(scenarios, file, old, new)
    message = error_of(scenarios)
    assert re.match(rf"{re.escape(str(scenarios / file))} line \d+, {re.escape(where)}: ", message)
    assert says in message


def test_an_agent_defined_in_two_files_names_both(scenarios: Path) -> None:
    edit(scenarios, "claims.yaml", "  - name: Claims FNOL Workflow\n", "  - name: INTENT ROUTER\n")
    message = error_of(scenarios)
    assert "claims.yaml line" in message and "agents[1].name" in message
    assert "agent 'INTENT ROUTER' is defined twice (first in platform.yaml, agents[2].name)" in (
        message
    )


def test_a_scenario_may_not_declare_the_admin_persona(scenarios: Path) -> None:
    edit(scenarios, "underwriting.yaml", "  - key: underwriter\n", "  - key: admin\n")
    assert "persona 'admin' is defined twice (the platform's own persona" in error_of(scenarios)


def test_a_key_given_twice_in_one_mapping_is_an_error(scenarios: Path) -> None:
    line = edit(scenarios, "claims.yaml", "    slaStatus: amber\n", "    slaStatus: amber\n" * 2)
    message = error_of(scenarios)
    assert message.startswith(f"{scenarios / 'claims.yaml'}: ")
    assert "'slaStatus' given twice" in message and f"line {line + 1}" in message


def test_a_yaml_syntax_error_names_the_file_and_line(scenarios: Path) -> None:
    line = edit(scenarios, "claims.yaml", "    layer: Role\n", "    layer: [Role\n")
    message = error_of(scenarios)
    assert message.startswith(f"{scenarios / 'claims.yaml'}: ")
    assert f"line {line}" in message or f"line {line + 1}" in message


def test_no_and_dates_stay_text(scenarios: Path) -> None:
    # YAML 1.1 would read these as False and a date; the rule tables compare with words.
    edit(
        scenarios,
        "claims.yaml",
        "          keywords: [fire, smoke]\n",
        "          keywords: [fire, smoke, no, off, 2027-01-01]\n",
    )
    agents = {data.name: data for data, _ in load_demo(scenarios).agents}
    labels = agents["Claims Adjuster Assistant"].config["labels"]
    assert labels[2]["keywords"] == ["fire", "smoke", "no", "off", "2027-01-01"]


def test_a_file_not_listed_as_a_scenario_is_refused(scenarios: Path) -> None:
    shutil.copy(scenarios / "claims.yaml", scenarios / "marine.yaml")
    message = error_of(scenarios)
    assert message.startswith(f"{scenarios / 'marine.yaml'}: not a demo scenario")


def test_a_missing_scenario_file_is_named(scenarios: Path) -> None:
    (scenarios / "claims.yaml").unlink()
    assert error_of(scenarios).startswith(f"{scenarios / 'claims.yaml'}: cannot be read")


def test_the_two_submission_templates_call_the_facts_the_same() -> None:
    # The fact labels are written out in both templates (a YAML string cannot be shared).
    bodies = {t.name: t.body for t in load_demo().templates}
    labels = [
        re.findall(r"^\{% set labels = .*%\}$", bodies[name], re.M)
        for name in ("command-response", "broker-email-draft")
    ]
    assert len(labels[0]) == 1
    assert labels[0] == labels[1]
