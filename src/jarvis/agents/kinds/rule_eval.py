"""Evaluating a rule table over an execution context: pure functions, no I/O.

Rules are tried in order; the first whose conditions all hold decides (a rule with no
conditions always holds). A condition reads the value at its dotted ``field`` path
(missing and null are the same: absent) and applies its operator:

* ``eq`` / ``ne``: equal / not equal. Numbers compare by value (1 equals 1.0); booleans
  equal only booleans (true is not 1); anything else by JSON equality.
* ``gt``, ``gte``, ``lt``, ``lte``: two numbers, or two strings (ISO dates order
  correctly as strings). Anything else (a missing value, a number against a string) is
  simply false, never an error.
* ``in`` / ``not_in``: the value is / is not equal (as ``eq``) to an element of the
  condition's list; false when the condition's value is not a list.
* ``contains``: text contains the given text (case-insensitively); a list contains an
  element equal to the given value; an object has the given key. Otherwise false.
* ``exists``: the value is present (not missing, not null); with ``value: false``, absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jarvis.agents.kinds.base import lookup
from jarvis.config.rules import Condition, RuleTable


@dataclass(frozen=True)
class RuleDecision:
    """What the table decided, and which rule (index from 0) decided it, if any."""

    outcome: Any
    reason_code: str
    matched_rule: int | None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same(left: Any, right: Any) -> bool:
    """Equality as rules see it: no bool/int confusion, numbers by value."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if _is_number(left) or _is_number(right):
        return False
    return bool(left == right)


def _ordered(left: Any, right: Any, compare: Callable[[Any, Any], bool]) -> bool:
    if (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    ):
        return compare(left, right)
    return False


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return isinstance(item, str) and item.casefold() in container.casefold()
    if isinstance(container, list):
        return any(same(element, item) for element in container)
    if isinstance(container, dict):
        return isinstance(item, str) and item in container
    return False


def condition_holds(condition: Condition, context: Any) -> bool:
    """Whether ``condition`` holds for ``context`` (see the module docstring)."""
    actual = lookup(context, condition.field)
    expected = condition.value
    match condition.op:
        case "exists":
            return (actual is not None) is (expected is not False)
        case "eq":
            return same(actual, expected)
        case "ne":
            return not same(actual, expected)
        case "gt":
            return _ordered(actual, expected, lambda a, b: a > b)
        case "gte":
            return _ordered(actual, expected, lambda a, b: a >= b)
        case "lt":
            return _ordered(actual, expected, lambda a, b: a < b)
        case "lte":
            return _ordered(actual, expected, lambda a, b: a <= b)
        case "in":
            return isinstance(expected, list) and any(same(actual, e) for e in expected)
        case "not_in":
            return isinstance(expected, list) and not any(same(actual, e) for e in expected)
        case "contains":
            return _contains(actual, expected)
    return False  # an operator this version does not know never holds


def evaluate(table: RuleTable, context: Any) -> RuleDecision:
    """The first rule whose conditions all hold, or the table's default."""
    for index, rule in enumerate(table.rules):
        if all(condition_holds(condition, context) for condition in rule.when):
            return RuleDecision(rule.outcome, rule.reason_code, index)
    return RuleDecision(table.default_outcome, table.default_reason_code, None)
