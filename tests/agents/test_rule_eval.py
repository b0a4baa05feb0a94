"""The rule-table evaluator against a tiny reference model, plus the edge cases by name."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jarvis.agents.kinds.rule_eval import condition_holds, evaluate
from jarvis.config.rules import Condition, RuleTable

OPS = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]
# Mostly paths that exist; some that do not (or go through a scalar).
PATHS = ["a", "a", "b", "b", "c.d", "c.e", "l.0", "l.1", "missing", "a.deeper"]

# --- the reference model: every value tagged with its JSON type, then plain Python ------


def tag(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(tag(v) for v in value))
    return ("object", frozenset((k, tag(v)) for k, v in value.items()))


def ref_get(context: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(context, dict) and part in context:
            context = context[part]
        elif isinstance(context, list) and part.isdigit() and int(part) < len(context):
            context = context[int(part)]
        else:
            return None
    return context


def ref_holds(op: str, actual: Any, expected: Any) -> bool:
    a, e = tag(actual), tag(expected)
    comparable = a[0] == e[0] and a[0] in ("number", "string")
    table = {
        "eq": a == e,
        "ne": a != e,
        "gt": comparable and a[1] > e[1],
        "gte": comparable and a[1] >= e[1],
        "lt": comparable and a[1] < e[1],
        "lte": comparable and a[1] <= e[1],
        "in": e[0] == "array" and a in e[1],
        "not_in": e[0] == "array" and a not in e[1],
        "exists": (a[0] != "null") == (expected is not False),
        "contains": (
            (a[0] == "string" and e[0] == "string" and e[1].lower() in a[1].lower())
            or (a[0] == "array" and e in a[1])
            or (a[0] == "object" and e[0] == "string" and expected in actual)
        ),
    }
    return bool(table[op])


def ref_evaluate(rules: list[dict[str, Any]], default: Any, context: Any) -> tuple[Any, Any]:
    for index, rule in enumerate(rules):
        if all(ref_holds(c["op"], ref_get(context, c["field"]), c["value"]) for c in rule["when"]):
            return rule["outcome"], index
    return default, None


# --- strategies ------------------------------------------------------------------------

# A tiny domain, so that equal, ordered and contained values meet often.
SCALARS = [None, True, False, 0, 1, 1.0, 2, -1.5, "", "a", "A", "ab", "bA"]
scalars = st.sampled_from(SCALARS)
values = st.one_of(
    scalars,
    st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=2),
            st.dictionaries(st.sampled_from(["a", "d"]), inner, max_size=2),
        ),
        max_leaves=4,
    ),
)
contexts = st.fixed_dictionaries(
    {"a": values, "b": values},
    optional={
        "c": st.dictionaries(st.sampled_from(["d", "e"]), values, max_size=2),
        "l": st.lists(scalars, max_size=3),
    },
)


@st.composite
def condition_for(draw: st.DrawFn, context: dict[str, Any]) -> dict[str, Any]:
    """A condition on ``context`` whose value is often related to the value it reads, so
    that equal, ordered and contained pairs are common."""
    path = draw(st.sampled_from(PATHS))
    actual = ref_get(context, path)
    related: list[Any] = [actual, [actual], [draw(scalars), actual]]
    if isinstance(actual, str):
        related += [actual.upper(), actual.swapcase(), actual[:1], actual + "a"]
    if isinstance(actual, int | float) and not isinstance(actual, bool):
        related += [actual + 1, actual - 1, float(actual), actual == 1]
    if isinstance(actual, list) and actual:
        related.append(actual[0])
    if isinstance(actual, dict) and actual:
        related.append(next(iter(actual)))
    return {
        "field": path,
        "op": draw(st.sampled_from(OPS)),
        "value": draw(st.one_of(st.sampled_from(related), st.sampled_from(related), values)),
    }


@settings(max_examples=150, deadline=None)
@given(data=st.data(), default=st.integers(0, 100))
def test_evaluator_matches_the_reference_model(data: st.DataObject, default: int) -> None:
    context = data.draw(contexts)
    table_rules = data.draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "when": st.lists(condition_for(context), max_size=3),
                    "outcome": st.integers(0, 100),
                    "reasonCode": st.just("r"),
                }
            ),
            min_size=1,
            max_size=4,
        )
    )
    table = RuleTable.model_validate({"rules": table_rules, "defaultOutcome": default})
    decision = evaluate(table, context)
    assert (decision.outcome, decision.matched_rule) == ref_evaluate(table_rules, default, context)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_conditions_match_the_reference_model(data: st.DataObject) -> None:
    context = data.draw(contexts)
    condition = data.draw(condition_for(context))
    expected = ref_holds(condition["op"], ref_get(context, condition["field"]), condition["value"])
    assert condition_holds(Condition.model_validate(condition), context) is expected


@pytest.mark.parametrize("op", OPS)
def test_every_pair_of_small_values_matches_the_reference(op: str) -> None:
    domain = [*SCALARS, [], ["a"], [1, "A"], [True], {"a": 1}, {"A": None}]
    for actual in domain:
        for expected in domain:
            assert holds(op, actual, expected) is ref_holds(op, actual, expected), (
                op,
                actual,
                expected,
            )


# --- named edge cases ------------------------------------------------------------------


def holds(op: str, actual: Any, expected: Any) -> bool:
    return condition_holds(Condition(field="x", op=op, value=expected), {"x": actual})


def test_booleans_are_not_numbers() -> None:
    assert not holds("eq", True, 1)
    assert not holds("eq", 0, False)
    assert holds("eq", 1, 1.0)
    assert not holds("in", True, [1, 2])
    assert not holds("gt", True, 0)


def test_incomparable_values_are_simply_false() -> None:
    assert not holds("gt", "2001", 1990)
    assert not holds("lt", None, 5)
    assert not holds("gte", [1], [0])
    assert holds("lt", "2026-12-01", "2027-01-01")  # ISO dates order as strings
    assert not holds("not_in", 3, "345")  # a list is required; no crash either way


def test_contains_and_exists() -> None:
    assert holds("contains", "Laptop won't connect, URGENT", "urgent")
    assert holds("contains", ["vpn", "wifi"], "vpn")
    assert holds("contains", {"tiv": 1}, "tiv")
    assert not holds("contains", 12345, "3")
    assert holds("exists", 0, None)
    assert not holds("exists", None, None)
    assert holds("exists", None, False)
    assert condition_holds(Condition(field="a.b", op="exists", value=False), {"a": {}})


def test_first_matching_rule_decides_else_default() -> None:
    table = RuleTable.model_validate(
        {
            "rules": [
                {
                    "when": [{"field": "year", "op": "lt", "value": 1950}],
                    "outcome": "decline",
                    "reasonCode": "too_old",
                },
                {
                    "when": [{"field": "year", "op": "lt", "value": 1980}],
                    "outcome": "refer",
                    "reasonCode": "old",
                },
                {"when": [], "outcome": "accept", "reasonCode": "always"},
            ],
            "defaultOutcome": "unreachable",
        }
    )
    assert evaluate(table, {"year": 1940}).matched_rule == 0
    assert evaluate(table, {"year": 1978}).reason_code == "old"
    assert evaluate(table, {"year": "unknown"}).outcome == "accept"
    no_catch_all = RuleTable.model_validate({"rules": table.model_dump(by_alias=True)["rules"][:1]})
    decision = evaluate(no_catch_all, {})
    assert (decision.outcome, decision.reason_code, decision.matched_rule) == (
        None,
        "no_rule_matched",
        None,
    )
