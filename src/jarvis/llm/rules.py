"""``rules``: the offline, deterministic provider (the default; needs no API key).

It answers the three tasks from what the agent's configuration says, never from a model:

* classify: each label scores ``weight x (keywords found + patterns that match)``.
  Keywords are whole words or phrases, matched case-insensitively on word boundaries
  (punctuation between words is ignored: "sign-in" matches "sign in"); each keyword or
  pattern counts once however often it occurs. The best score wins, ties going to the
  label listed first. Confidence is ``(best / sum of scores) x (1 - e^-best)``: how much
  of the evidence points to the winner, times how much evidence there is (one plain match
  gives 0.63 at most, two 0.86, three 0.95). No evidence at all: label None, confidence 0.
* extract: a field's patterns are tried in order; the first match that converts to the
  field's type is the value (the first capture group, or the whole match). Confidence is
  0.95 for the first pattern, 0.1 less for each later one (at least 0.5), times 0.75 when
  another pattern finds a different value. ``list`` fields collect every match of every
  pattern. Text values are trimmed, each run of whitespace (line breaks too) one space.
  Not found: value None, confidence 0.
* generate: renders the request's template (sandboxed Jinja2) over the request's context;
  with an output schema the text must be a JSON document satisfying it.

Patterns are RE2 expressions (``import re2``), which match in time linear in the text:
a pattern someone configured cannot make a step hang. Compiled patterns are cached.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry

from jarvis.kit.templating import TemplateFailed, render_in_thread
from jarvis.llm.base import (
    Classification,
    ExtractedField,
    Extraction,
    FieldSpec,
    FieldType,
    Generation,
    GenerationRequest,
    LabelSpec,
    ProviderError,
    Usage,
)

PROVIDER_NAME = "rules"
PATTERN_CACHE_SIZE = 4096
MAX_PATTERN_CHARS = 2000
# Extraction confidence: the first pattern's, the step down per later pattern, the floor,
# and the factor applied when patterns disagree.
FIRST_PATTERN_CONFIDENCE = 0.95
PATTERN_STEP = 0.1
PATTERN_FLOOR = 0.5
DISAGREEMENT_FACTOR = 0.75
# Longer digit strings are not business figures (and past ~4300 digits not even JSON-able).
MAX_NUMBER_DIGITS = 40

# Python's re on a fixed, backtracking-free pattern: words are runs of letters and digits.
_WORD = re.compile(r"\w+")

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is reported to the caller, not to stderr

_CURRENCY = r"(?:US\$|USD|EUR|GBP|[$€£¥])"
_NUMBER = re2.compile(
    r"(?i)^\s*[~≈]?\s*([-+])?\s*" + _CURRENCY + r"?\s*"
    r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\s*"
    r"(k|thousand|mm|mn|mil|million|m|bn|billion|b)?\.?\s*%?\s*$",
    _OPTIONS,
)
_MULTIPLIERS = {
    "k": 10**3,
    "thousand": 10**3,
    "m": 10**6,
    "mm": 10**6,
    "mn": 10**6,
    "mil": 10**6,
    "million": 10**6,
    "b": 10**9,
    "bn": 10**9,
    "billion": 10**9,
}
_TRUE = frozenset({"yes", "y", "true"})
_FALSE = frozenset({"no", "n", "false"})
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
_ISO_DATE = re2.compile(r"^\s*(\d{4})[-/](\d{1,2})[-/](\d{1,2})\s*$", _OPTIONS)
_US_DATE = re2.compile(r"^\s*(\d{1,2})[-/](\d{1,2})[-/](\d{4}|\d{2})\s*$", _OPTIONS)
_MONTH_FIRST = re2.compile(
    r"(?i)^\s*([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\s*$", _OPTIONS
)
_DAY_FIRST = re2.compile(
    r"(?i)^\s*(\d{1,2})(?:st|nd|rd|th)?[\s-]+([a-z]+)\.?,?[\s-]+(\d{4})\s*$", _OPTIONS
)

_NO_RETRIEVAL: Registry[Any] = Registry()


class InvalidPattern(ValueError):
    """A pattern that RE2 cannot compile (or that is too long)."""


@lru_cache(maxsize=PATTERN_CACHE_SIZE)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, _OPTIONS)


def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 expression for ``pattern`` (cached); InvalidPattern if it has none."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidPattern(f"is longer than {MAX_PATTERN_CHARS} characters")
    try:
        return _compiled(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise InvalidPattern(f"does not compile: {reason}") from None


def words(text: str) -> list[str]:
    """The case-folded words of ``text``: how keywords and text are compared."""
    return _WORD.findall(text.casefold())


# --- classification --------------------------------------------------------------------


@lru_cache(maxsize=PATTERN_CACHE_SIZE)
def _phrase(keyword: str) -> tuple[str, ...]:
    return tuple(words(keyword))


def _phrase_found(phrase: tuple[str, ...], tokens: list[str], index: dict[str, list[int]]) -> bool:
    size = len(phrase)
    return any(tuple(tokens[start : start + size]) == phrase for start in index.get(phrase[0], ()))


def label_scores(text: str, labels: Sequence[LabelSpec]) -> dict[str, float]:
    """Each label's score: weight x (distinct keywords found + patterns that match)."""
    tokens = words(text)
    index: dict[str, list[int]] = {}
    for position, token in enumerate(tokens):
        index.setdefault(token, []).append(position)
    scores: dict[str, float] = {}
    for label in labels:
        hits = 0
        for keyword in label.keywords:
            phrase = _phrase(keyword)
            if phrase and _phrase_found(phrase, tokens, index):
                hits += 1
        for pattern in label.patterns:
            try:
                found = compile_pattern(pattern).search(text) is not None
            except InvalidPattern as exc:
                raise ProviderError(f"label '{label.name}': pattern {pattern!r} {exc}") from None
            hits += found
        scores[label.name] = hits * label.weight
    return scores


def classification_confidence(scores: Sequence[float]) -> float:
    """``(best / sum) x (1 - e^-best)`` over the positive scores; 0 without evidence."""
    positive = [score for score in scores if score > 0]
    if not positive:
        return 0.0
    best = max(positive)
    return round(best / sum(positive) * (1 - math.exp(-best)), 4)


# --- extraction ------------------------------------------------------------------------


def parse_number(raw: str) -> int | float | None:
    """``"$4.5M"`` -> 4500000, ``"1,200,000"`` -> 1200000, ``"12.5"`` -> 12.5; else None."""
    match = _NUMBER.match(raw)
    if match is None:
        return None
    sign, digits, suffix = match.group(1), match.group(2), match.group(3)
    if len(digits) > MAX_NUMBER_DIGITS:
        return None
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:
        return None
    if suffix:
        value *= _MULTIPLIERS[suffix.lower()]
    if sign == "-":
        value = -value
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def parse_date(raw: str) -> str | None:
    """An ISO ``yyyy-mm-dd`` date from the common ways of writing one; else None."""
    year: int
    month: int | None
    day: int
    if match := _ISO_DATE.match(raw):
        year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3))
    elif match := _US_DATE.match(raw):
        month, day = int(match.group(1)), int(match.group(2))
        year = int(match.group(3))
        year += 2000 if len(match.group(3)) == 2 else 0
    elif match := _MONTH_FIRST.match(raw):
        month = _MONTHS.get(match.group(1).lower())
        day, year = int(match.group(2)), int(match.group(3))
    elif match := _DAY_FIRST.match(raw):
        month = _MONTHS.get(match.group(2).lower())
        day, year = int(match.group(1)), int(match.group(3))
    else:
        return None
    if month is None:
        return None
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def convert(raw: str, field_type: FieldType) -> Any:
    """``raw`` as a value of ``field_type``, or None when it is not one."""
    text = raw.strip()
    if not text:
        return None
    if field_type == "number":
        return parse_number(text)
    if field_type == "integer":
        number = parse_number(text)
        return number if isinstance(number, int) else None
    if field_type == "boolean":
        folded = text.casefold()
        return True if folded in _TRUE else False if folded in _FALSE else None
    if field_type == "date":
        return parse_date(text)
    # E-mails wrap lines anywhere: "central\nstation" is "central station".
    return " ".join(text.split())


def _matches(pattern: str, text: str, field: str) -> list[str]:
    try:
        compiled = compile_pattern(pattern)
    except InvalidPattern as exc:
        raise ProviderError(f"field '{field}': pattern {pattern!r} {exc}") from None
    found = []
    for match in compiled.finditer(text):
        raw = match.group(1) if compiled.groups else match.group(0)
        if raw is not None:
            found.append(raw)
    return found


def pattern_confidence(index: int) -> float:
    """The confidence of a value found by the field's ``index``-th pattern (from 0)."""
    return max(PATTERN_FLOOR, FIRST_PATTERN_CONFIDENCE - PATTERN_STEP * index)


def extract_field(text: str, spec: FieldSpec) -> ExtractedField:
    """One field's value and confidence (see the module docstring for the formula)."""
    if spec.type == "list":
        items: list[str] = []
        first: int | None = None
        for index, pattern in enumerate(spec.patterns):
            for raw in _matches(pattern, text, spec.name):
                item = " ".join(raw.split())
                if item and item not in items:
                    items.append(item)
                    first = index if first is None else first
        if first is None:
            return ExtractedField(None, 0.0)
        return ExtractedField(items, round(pattern_confidence(first), 4))
    values: list[tuple[int, Any]] = []
    for index, pattern in enumerate(spec.patterns):
        for raw in _matches(pattern, text, spec.name):
            value = convert(raw, spec.type)
            if value is not None:
                values.append((index, value))
                break  # a pattern's first convertible match is its answer
    if not values:
        return ExtractedField(None, 0.0)
    index, value = values[0]
    confidence = pattern_confidence(index)
    if any(other != value for _, other in values[1:]):
        confidence *= DISAGREEMENT_FACTOR
    return ExtractedField(value, round(confidence, 4))


# --- generation ------------------------------------------------------------------------


def _checked_json(text: str, schema: dict[str, Any]) -> Any:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ProviderError(
            f"the rendered template is not the JSON the output schema asks for: {exc}"
        ) from None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ProviderError(
            f"the output schema is not a valid JSON Schema: {exc.message}"
        ) from None
    validator = Draft202012Validator(schema, registry=_NO_RETRIEVAL)
    error = next(
        iter(sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))), None
    )
    if error is not None:
        raise ProviderError(
            f"the rendered JSON breaks the output schema at {error.json_path}: {error.message}"
        )
    return data


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


class RulesProvider:
    """Classifies by keywords and patterns, extracts by patterns, generates from templates."""

    name = PROVIDER_NAME

    async def classify(
        self, text: str, labels: Sequence[LabelSpec], *, model: str
    ) -> Classification:
        """The best-scoring label (ties: the first listed), or None without evidence."""
        started = time.perf_counter()
        scores = label_scores(text, labels)
        best: str | None = None
        for label in labels:  # label order breaks ties: only a higher score replaces
            if scores[label.name] > 0 and (best is None or scores[label.name] > scores[best]):
                best = label.name
        return Classification(
            label=best,
            confidence=classification_confidence(list(scores.values())) if best else 0.0,
            scores={name: round(score, 4) for name, score in scores.items()},
            usage=Usage(PROVIDER_NAME, model, latency_ms=_elapsed_ms(started)),
        )

    async def extract(self, text: str, fields: Sequence[FieldSpec], *, model: str) -> Extraction:
        """Each field's first convertible match, with a confidence."""
        started = time.perf_counter()
        found = {spec.name: extract_field(text, spec) for spec in fields}
        return Extraction(
            fields=found, usage=Usage(PROVIDER_NAME, model, latency_ms=_elapsed_ms(started))
        )

    async def generate(self, request: GenerationRequest) -> Generation:
        """The request's template rendered over its context (and checked as JSON)."""
        started = time.perf_counter()
        if request.template is None:
            raise ProviderError(
                "the rules provider generates from templates: it calls no language model, "
                "so this agent needs a template to render (set offlineTemplate)"
            )
        # The prompt and system text are there for templates that quote them; the
        # execution context wins a clash.
        variables = {"prompt": request.prompt, "system": request.system, **request.context}
        try:
            text = await render_in_thread(request.template, variables)
        except TemplateFailed as exc:
            raise ProviderError(f"the offline template could not be rendered: {exc}") from None
        data = (
            _checked_json(text, request.output_schema)
            if request.output_schema is not None
            else None
        )
        return Generation(
            text=text,
            data=data,
            usage=Usage(PROVIDER_NAME, request.model, latency_ms=_elapsed_ms(started)),
        )
