"""The offline rules provider: classification, extraction and generation, on real e-mails."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from jarvis.kit.templating import MAX_OUTPUT_CHARS, TemplateFailed, compile_template, render
from jarvis.llm.base import FieldSpec, GenerationRequest, LabelSpec, LLMProvider, ProviderError
from jarvis.llm.rules import (
    RulesProvider,
    classification_confidence,
    parse_date,
    parse_number,
)

DATA = Path("/work/shared/data")
MODEL = "rules-model"


def records(name: str) -> dict[str, dict[str, Any]]:
    with (DATA / f"{name}.jsonl").open(encoding="utf-8") as lines:
        return {r["id"]: r for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def submissions() -> dict[str, dict[str, Any]]:
    return records("broker_submissions")


@pytest.fixture(scope="module")
def incidents() -> dict[str, dict[str, Any]]:
    return records("it_incidents")


@pytest.fixture
def provider() -> RulesProvider:
    return RulesProvider()


def test_is_an_llm_provider(provider: RulesProvider) -> None:
    checked: LLMProvider = provider  # mypy checks the protocol; the name is the contract
    assert checked.name == "rules"


# --- classification --------------------------------------------------------------------

INCIDENT_CATEGORIES = [
    LabelSpec("access", keywords=("login", "password", "permissions", "access", "account")),
    LabelSpec("hardware", keywords=("monitor", "printer", "laptop", "keyboard", "power light")),
    LabelSpec("network", keywords=("vpn", "wi-fi", "desk phones", "calls", "network")),
    LabelSpec("software", keywords=("crashes", "update", "application", "software")),
    LabelSpec(
        "security",
        keywords=("phishing", "malware", "sign-in approval", "trying to get into"),
        patterns=(r"(?i)didn'?t (?:make|start)",),
        weight=2.0,
    ),
    LabelSpec("email", keywords=("e-mail", "webmail", "mailbox", "send or receive")),
]


@pytest.mark.parametrize(
    "record_id", ["it-v-001", "it-v-002", "it-v-003", "it-v-004", "it-v-005", "it-v-006"]
)
async def test_classifies_incident_categories(
    provider: RulesProvider, incidents: dict[str, dict[str, Any]], record_id: str
) -> None:
    record = incidents[record_id]
    text = f"{record['subject']}\n{record['body']}"
    result = await provider.classify(text, INCIDENT_CATEGORIES, model=MODEL)
    assert result.label == record["expected"]["category"], result.scores
    assert 0 < result.confidence <= 1
    assert set(result.scores) == {label.name for label in INCIDENT_CATEGORIES}
    assert result.usage is not None
    assert (result.usage.provider, result.usage.model, result.usage.total_tokens) == (
        "rules",
        MODEL,
        0,
    )


PRIORITY_WORDS = [
    LabelSpec("urgent", keywords=("urgent", "asap", "right now", "stopped", "all offices")),
    LabelSpec("routine", keywords=("whenever", "no rush", "when you get a chance")),
]


async def test_priority_words_whole_words_and_phrases(provider: RulesProvider) -> None:
    urgent = await provider.classify(
        "Laptop won't connect to VPN, URGENT", PRIORITY_WORDS, model=MODEL
    )
    assert urgent.label == "urgent"
    assert urgent.scores == {"urgent": 1.0, "routine": 0.0}
    # Whole words only: "urgently" and "asaparagus" are not "urgent" or "asap".
    none = await provider.classify("urgently asaparagus", PRIORITY_WORDS, model=MODEL)
    assert none.label is None and none.confidence == 0
    # Phrases match across any punctuation and spacing, in any case.
    phrase = await provider.classify("Fix it WHEN you get-a chance.", PRIORITY_WORDS, model=MODEL)
    assert phrase.label == "routine"


async def test_confidence_formula(provider: RulesProvider) -> None:
    labels = [
        LabelSpec("a", keywords=("alpha", "apple")),
        LabelSpec("b", keywords=("beta",)),
    ]
    one = await provider.classify("alpha", labels, model=MODEL)
    assert one.confidence == round(1 - math.exp(-1), 4)  # all evidence for a, one match
    two = await provider.classify("alpha apple alpha", labels, model=MODEL)
    assert two.scores["a"] == 2.0  # each keyword counts once, however often it occurs
    assert two.confidence == round(1 - math.exp(-2), 4)
    split = await provider.classify("alpha apple beta", labels, model=MODEL)
    assert split.label == "a"
    assert split.confidence == round(2 / 3 * (1 - math.exp(-2)), 4)
    assert classification_confidence([0, 0]) == 0


async def test_ties_go_to_the_label_listed_first(provider: RulesProvider) -> None:
    labels = [LabelSpec("first", keywords=("x",)), LabelSpec("second", keywords=("y",))]
    assert (await provider.classify("y x", labels, model=MODEL)).label == "first"
    reversed_labels = list(reversed(labels))
    assert (await provider.classify("y x", reversed_labels, model=MODEL)).label == "second"
    tie = await provider.classify("x y", labels, model=MODEL)
    assert tie.confidence == round(0.5 * (1 - math.exp(-1)), 4)


async def test_weights_scale_scores(provider: RulesProvider) -> None:
    labels = [
        LabelSpec("light", keywords=("one", "two")),
        LabelSpec("heavy", keywords=("three",), weight=3.0),
    ]
    result = await provider.classify("one two three", labels, model=MODEL)
    assert result.label == "heavy"
    assert result.scores == {"light": 2.0, "heavy": 3.0}


async def test_patterns_are_re2_and_linear(provider: RulesProvider) -> None:
    # Catastrophic for a backtracking engine; RE2 answers at once.
    labels = [LabelSpec("evil", patterns=(r"(a+)+$",)), LabelSpec("ok", keywords=("b",))]
    result = await provider.classify("a" * 50_000 + "!b", labels, model=MODEL)
    assert result.label == "ok"
    with pytest.raises(ProviderError, match="label 'bad'.*does not compile"):
        await provider.classify("x", [LabelSpec("bad", patterns=("(a",))], model=MODEL)


# --- extraction ------------------------------------------------------------------------

SUBMISSION_FIELDS = [
    FieldSpec("insured_name", patterns=(r"(?im)^\s*named insured[\s.:]*(.+?)\s*$",)),
    FieldSpec("tiv", "number", patterns=(r"(?i)\bTIV\W*(\d[\d,.]*\s*(?:k|mm|m|bn|b)?)\b",)),
    FieldSpec(
        "year_built",
        "integer",
        patterns=(r"(?i)\b(?:year built|yr\.? blt|yr\.? built|built)\W*(\d{4})\b",),
    ),
    FieldSpec(
        "effective_date",
        "date",
        patterns=(r"(?i)\beff(?:ective)?\b[\s.:]*(\d{1,2}/\d{1,2}/\d{2,4})",),
        required=True,
    ),
]


@pytest.mark.parametrize("record_id", ["bs-v-001", "bs-v-002", "bs-v-004", "bs-v-009", "bs-v-010"])
async def test_extracts_cope_fields_from_broker_emails(
    provider: RulesProvider, submissions: dict[str, dict[str, Any]], record_id: str
) -> None:
    record = submissions[record_id]
    result = await provider.extract(record["body"], SUBMISSION_FIELDS, model=MODEL)
    expected = record["expected"]
    got = {name: field.value for name, field in result.fields.items()}
    want = {name: expected[name] for name in got}
    if record_id not in ("bs-v-001", "bs-v-004"):
        del got["insured_name"], want["insured_name"]  # not labelled in these e-mails
    if record_id != "bs-v-001" and record_id != "bs-v-002":
        del got["tiv"], want["tiv"]  # no stated total
    assert got == want
    for field in result.fields.values():
        assert field.confidence == (0.95 if field.value is not None else 0.0)


async def test_field_confidence_by_pattern_order_and_agreement(provider: RulesProvider) -> None:
    text = "Year built: 1999. Originally constructed 1999; addition built 2010."
    later = FieldSpec("year", "integer", patterns=(r"erected (\d{4})", r"built: (\d{4})"))
    found = (await provider.extract(text, [later], model=MODEL)).fields["year"]
    assert (found.value, found.confidence) == (1999, 0.85)
    agreeing = FieldSpec("year", "integer", patterns=(r"built: (\d{4})", r"constructed (\d{4})"))
    found = (await provider.extract(text, [agreeing], model=MODEL)).fields["year"]
    assert (found.value, found.confidence) == (1999, 0.95)
    disagreeing = FieldSpec(
        "year", "integer", patterns=(r"built: (\d{4})", r"addition built (\d{4})")
    )
    found = (await provider.extract(text, [disagreeing], model=MODEL)).fields["year"]
    assert (found.value, found.confidence) == (1999, round(0.95 * 0.75, 4))
    many = FieldSpec(
        "year", "integer", patterns=tuple(f"nope{i}" for i in range(9)) + (r"(\d{4})",)
    )
    found = (await provider.extract(text, [many], model=MODEL)).fields["year"]
    assert found.confidence == 0.5  # the floor


async def test_unconvertible_matches_are_skipped(provider: RulesProvider) -> None:
    text = "TIV: TBD (see SOV). Revised TIV: $2.5M"
    spec = FieldSpec("tiv", "number", patterns=(r"TIV: (\S+)",))
    assert (await provider.extract(text, [spec], model=MODEL)).fields["tiv"].value == 2_500_000
    missing = FieldSpec("date", "date", patterns=(r"TIV: (\S+)",))
    found = (await provider.extract(text, [missing], model=MODEL)).fields["date"]
    assert (found.value, found.confidence) == (None, 0.0)


async def test_whole_match_without_group_and_list_fields(
    provider: RulesProvider, incidents: dict[str, dict[str, Any]]
) -> None:
    body = incidents["it-v-001"]["body"]
    phone = FieldSpec("phone", patterns=(r"555-01\d\d",))
    offices = FieldSpec(
        "offices", "list", patterns=(r"the (\w+)\s+and\s+\w+\s+offices", r"and\s+(\w+)\s+offices")
    )
    result = await provider.extract(body, [phone, offices], model=MODEL)
    assert result.fields["phone"].value == "555-0187"
    assert result.fields["offices"].value == ["Boise", "Spokane"]
    assert result.fields["offices"].confidence == 0.95
    empty = FieldSpec("none", "list", patterns=(r"zzz(\d)",))
    assert (await provider.extract(body, [empty], model=MODEL)).fields["none"].value is None


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("$4.5M", 4_500_000),
        ("750k", 750_000),
        ("$1,200,000", 1_200_000),
        ("~6.45M", 6_450_000),
        ("1.2bn", 1_200_000_000),
        ("12.5M", 12_500_000),
        ("USD 3 million", 3_000_000),
        ("12.5", 12.5),
        ("-40", -40),
        ("100%", 100),
        ("TBD", None),
        ("1,2,3", None),
        ("9" * 41, None),
    ],
)
def test_parse_number(raw: str, value: Any) -> None:
    assert parse_number(raw) == value
    assert type(parse_number(raw)) is type(value)


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2027-01-01", "2027-01-01"),
        ("01/15/2027", "2027-01-15"),
        ("1/1/27", "2027-01-01"),
        ("January 15, 2027", "2027-01-15"),
        ("Jan. 15th 2027", "2027-01-15"),
        ("15 Jan 2027", "2027-01-15"),
        ("15-Sept-2027", "2027-09-15"),
        ("2/30/2027", None),
        ("Smarch 3, 2027", None),
        ("soon", None),
    ],
)
def test_parse_date(raw: str, iso: str | None) -> None:
    assert parse_date(raw) == iso


async def test_booleans_and_integers(provider: RulesProvider) -> None:
    text = "Sprinklered: Yes\nAlarm: no\nVacant: maybe\nStories: 1.5\nUnits: 12"
    fields = [
        FieldSpec("sprinklered", "boolean", patterns=(r"Sprinklered: (\w+)",)),
        FieldSpec("alarm", "boolean", patterns=(r"Alarm: (\w+)",)),
        FieldSpec("vacant", "boolean", patterns=(r"Vacant: (\w+)",)),
        FieldSpec("stories", "integer", patterns=(r"Stories: (\S+)",)),
        FieldSpec("units", "integer", patterns=(r"Units: (\S+)",)),
    ]
    result = await provider.extract(text, fields, model=MODEL)
    assert {n: f.value for n, f in result.fields.items()} == {
        "sprinklered": True,
        "alarm": False,
        "vacant": None,
        "stories": None,
        "units": 12,
    }


# --- generation ------------------------------------------------------------------------


async def test_generate_renders_the_template(provider: RulesProvider) -> None:
    request = GenerationRequest(
        prompt="Summarise",
        model=MODEL,
        template="{{ prompt }}: {{ outputs.intake.values.insured_name }} ({{ persona }})",
        context={
            "persona": "underwriter",
            "outputs": {"intake": {"values": {"insured_name": "Acme"}}},
        },
    )
    generation = await provider.generate(request)
    assert generation.text == "Summarise: Acme (underwriter)"
    assert generation.data is None
    assert generation.usage is not None and generation.usage.provider == "rules"


async def test_generate_json_checked_against_the_schema(provider: RulesProvider) -> None:
    schema = {
        "type": "object",
        "required": ["priority"],
        "properties": {"priority": {"enum": ["P1", "P2"]}},
    }
    ok = await provider.generate(
        GenerationRequest(
            prompt="p",
            model=MODEL,
            template='{"priority": "{{ p }}"}',
            context={"p": "P1"},
            output_schema=schema,
        )
    )
    assert ok.data == {"priority": "P1"}
    with pytest.raises(ProviderError, match=r"breaks the output schema at \$.priority"):
        await provider.generate(
            GenerationRequest(
                prompt="p", model=MODEL, template='{"priority": "P9"}', output_schema=schema
            )
        )
    with pytest.raises(ProviderError, match="not the JSON"):
        await provider.generate(
            GenerationRequest(prompt="p", model=MODEL, template="P1", output_schema=schema)
        )


async def test_generate_needs_a_template(provider: RulesProvider) -> None:
    with pytest.raises(ProviderError, match="offlineTemplate"):
        await provider.generate(GenerationRequest(prompt="hello", model=MODEL))


async def test_generate_reports_template_errors(provider: RulesProvider) -> None:
    with pytest.raises(ProviderError, match="line 2"):
        await provider.generate(GenerationRequest(prompt="p", model=MODEL, template="ok\n{% if %}"))


# --- the sandbox -----------------------------------------------------------------------


def test_templates_render_text_unescaped_and_tolerate_missing_values() -> None:
    context = {"command": "<b>Fix & go</b>", "plan": None}
    assert render("{{ command }}|{{ plan.intent }}|{{ nothing.at.all }}|", context) == (
        "<b>Fix & go</b>|||"
    )


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ command.__class__.__mro__ }}", "sandbox forbids"),
        ("{{ items.append(1) }}", "sandbox forbids"),
        ("{{ 'x' * 10000000 }}", "sandbox forbids"),
        ("{{ 2 ** 100000 }}", "sandbox forbids"),
        ("{{ '%999999999d' % 1 }}", "sandbox forbids"),
        ("{{ '{:>999999999}'.format(1) }}", "sandbox forbids"),
        ("{{ 'x'|center(999999999) }}", "sandbox forbids"),
        ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", "range"),
        ("{% for i in range(100000) %}0123456789{% endfor %}", str(MAX_OUTPUT_CHARS)),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursed"),
        ("{{ lipsum(5) }}", "undefined"),
        (  # doubling a kept value: stops at 1,000,000 characters, not at the memory limit
            "{% set ns = namespace(s='x' * 100000) %}{% for i in range(30) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "cannot be kept",
        ),
        (
            "{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s }}{% endmacro %}{{ d('x', 40) }}",
            "cannot be kept",
        ),
    ],
)
def test_sandbox_refuses(source: str, reason: str) -> None:
    with pytest.raises(TemplateFailed, match=reason):
        render(source, {"command": "x", "items": [1]})


def test_compiled_templates_are_cached_and_syntax_errors_name_the_line() -> None:
    assert compile_template("{{ a }}") is compile_template("{{ a }}")
    with pytest.raises(TemplateFailed, match="line 3"):
        compile_template("a\nb\n{{ oops( }}")


async def test_text_values_have_their_whitespace_collapsed(provider: RulesProvider) -> None:
    text = "Alarm: central\n  station, monitored.\nTags: fire\talarm; fire\nalarm"
    fields = [
        FieldSpec("alarm", patterns=(r"Alarm: ([^,]+)",)),
        FieldSpec("tags", "list", patterns=(r"(fire\s+alarm)",)),
    ]
    result = await provider.extract(text, fields, model=MODEL)
    assert result.fields["alarm"].value == "central station"
    assert result.fields["tags"].value == ["fire alarm"]  # the same item once
