"""The ``openai`` provider: classify, extract and generate through any OpenAI-compatible
chat-completions endpoint (OpenAI, Azure OpenAI, Ollama, vLLM) with the official SDK.

Each task is one chat completion. Classification and extraction ask for a JSON object
(``response_format={"type": "json_object"}``) whose shape is spelled out in the system
prompt, and the answer is checked before anyone sees it: a label that is not one of the
given ones, a value that does not fit its field's type or an object that fails the
requested JSON Schema is a ``ProviderError``, like an unreachable endpoint or a refused
key. The SDK does not retry (``max_retries=0``): the engine owns retries and back-off.
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

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

PROVIDER_NAME = "openai"
API_KEY_VARIABLE = "JARVIS_OPENAI_API_KEY"
# The SDK insists on a key; endpoints without authentication (Ollama, vLLM) ignore it.
PLACEHOLDER_KEY = "unset"
# Server-supplied text quoted in an error is cut here: enough to diagnose, not a dump.
MAX_QUOTED = 300
# What a model writes for "not in the text" instead of null; read as missing.
_NULL_WORDS = frozenset({"", "null", "none", "n/a", "na", "unknown", "not found", "-"})
_TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
_FALSE_WORDS = frozenset({"false", "no", "n", "0"})
# Anything shaped like an OpenAI key, masked or not, is cut from quoted server text.
_KEY_LIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-*.]{3,}")

_TYPE_HINTS: dict[FieldType, str] = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "date": 'a date as "YYYY-MM-DD"',
    "list": "an array of strings",
}

CLASSIFY_SYSTEM = """\
You classify text. Assign exactly one of the labels below to the text the user sends.
Answer with one JSON object and nothing else: {"label": "<label name>", "confidence": <number \
from 0 to 1>}.
"label" must be one of the label names listed; "confidence" says how sure you are.

Labels:
"""

EXTRACT_SYSTEM = """\
You extract fields from the text the user sends. Answer with one JSON object and nothing \
else, with one member per field listed below, named exactly as the field:
{"<field name>": {"value": <the value, or null when the text does not give it>, \
"confidence": <number from 0 to 1>}, ...}
Use only what the text says; never guess a value that is not there.

Fields:
"""

SCHEMA_INSTRUCTION = """\
Answer with one JSON object and nothing else. It must satisfy this JSON Schema:
"""


def display_url(url: str) -> str:
    """``url`` without user information or query, fit to appear in a message."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _number(raw: Any) -> float | None:
    """A finite number from a JSON number or a numeric string; None when it is not one."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip().replace(",", ""))
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


class OpenAIProvider:
    """One client (and HTTP connection pool) per endpoint and timeout."""

    name = PROVIDER_NAME

    def __init__(self, *, base_url: str, api_key: str | None, timeout_seconds: float) -> None:
        self.base_url = base_url
        self.timeout_seconds = timeout_seconds
        self._api_key = api_key or None
        self._where = display_url(base_url)
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=self._api_key or PLACEHOLDER_KEY,
            timeout=timeout_seconds,
            max_retries=0,
        )

    def __repr__(self) -> str:  # never the key
        return f"OpenAIProvider(base_url={self._where!r}, timeout_seconds={self.timeout_seconds})"

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.close()

    # --- tasks ----------------------------------------------------------------------------

    async def classify(
        self, text: str, labels: Sequence[LabelSpec], *, model: str
    ) -> Classification:
        """Ask the model for one of ``labels`` and its confidence."""
        if not labels:
            raise ProviderError("classification needs at least one label")
        listing = "\n".join(
            f"- {label.name}: {_one_line(label.description)}"
            if label.description.strip()
            else f"- {label.name}"
            for label in labels
        )
        content, finish, usage = await self._complete(
            model, CLASSIFY_SYSTEM + listing, text, json_mode=True
        )
        answer = self._json_object(content, finish)
        names = [label.name for label in labels]
        label = _match_label(answer.get("label"), names)
        if label is None:
            raise ProviderError(
                f"the model answered the label {answer.get('label')!r}, which is not one of "
                f"{', '.join(names)}"
            )
        confidence = self._confidence(answer.get("confidence"), "the classification")
        return Classification(
            label=label, confidence=confidence, scores={label: confidence}, usage=usage
        )

    async def extract(self, text: str, fields: Sequence[FieldSpec], *, model: str) -> Extraction:
        """Ask the model for every field's value and confidence; convert each to its type."""
        if not fields:
            raise ProviderError("extraction needs at least one field")
        listing = "\n".join(
            f"- {spec.name} ({_TYPE_HINTS[spec.type]})"
            + (f": {_one_line(spec.description)}" if spec.description.strip() else "")
            for spec in fields
        )
        content, finish, usage = await self._complete(
            model, EXTRACT_SYSTEM + listing, text, json_mode=True
        )
        answer = self._json_object(content, finish)
        found: dict[str, ExtractedField] = {}
        for spec in fields:
            member = answer.get(spec.name)
            if member is None:
                found[spec.name] = ExtractedField(None, 0.0)
                continue
            if not isinstance(member, dict):
                raise ProviderError(
                    f"the model's answer for the field '{spec.name}' is not an object with "
                    f'"value" and "confidence": {_quote(json.dumps(member))}'
                )
            value = _convert(member.get("value"), spec)
            if value is None:
                found[spec.name] = ExtractedField(None, 0.0)
                continue
            confidence = self._confidence(member.get("confidence"), f"the field '{spec.name}'")
            found[spec.name] = ExtractedField(value, confidence)
        return Extraction(fields=found, usage=usage)

    async def generate(self, request: GenerationRequest) -> Generation:
        """Answer the prompt; with an output schema, a JSON object validated against it."""
        if request.output_schema is None:
            content, _, usage = await self._complete(
                request.model,
                request.system,
                request.prompt,
                json_mode=False,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
            )
            return Generation(text=content, usage=usage)
        try:
            Draft202012Validator.check_schema(request.output_schema)
        except SchemaError as exc:
            raise ProviderError(
                f"the output schema is not a valid JSON Schema: {exc.message}"
            ) from None
        validator = Draft202012Validator(request.output_schema)
        instruction = SCHEMA_INSTRUCTION + json.dumps(request.output_schema, ensure_ascii=False)
        system = f"{request.system}\n\n{instruction}" if request.system else instruction
        content, finish, usage = await self._complete(
            request.model,
            system,
            request.prompt,
            json_mode=True,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
        )
        data = self._json_object(content, finish)
        error = best_match(validator.iter_errors(data))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path) or "(the object)"
            raise ProviderError(
                f"the model's answer does not satisfy the output schema at {where}: "
                f"{_quote(error.message)}"
            )
        return Generation(text=content, data=data, usage=usage)

    # --- the call -------------------------------------------------------------------------

    async def _complete(
        self,
        model: str,
        system: str | None,
        user: str,
        *,
        json_mode: bool,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> tuple[str, str | None, Usage]:
        """One chat completion: its text, finish reason and usage; every failure mapped."""
        messages: list[ChatCompletionMessageParam] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": user})
        options: dict[str, Any] = {}
        if json_mode:
            options["response_format"] = {"type": "json_object"}
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        if temperature is not None:
            options["temperature"] = temperature
        started = time.perf_counter()
        try:
            response = await self._client.chat.completions.create(
                model=model, messages=messages, **options
            )
        except openai.OpenAIError as exc:
            raise self._map_error(exc) from None
        except ValueError as exc:  # a body announced as JSON that does not parse
            raise ProviderError(
                f"the LLM endpoint {self._where} sent a response that is not valid JSON: "
                f"{self._scrub(_quote(str(exc)))}"
            ) from None
        latency_ms = round((time.perf_counter() - started) * 1000)
        if not isinstance(response, ChatCompletion):
            raise ProviderError(
                f"the LLM endpoint {self._where} did not answer with a chat completion: "
                f"{self._scrub(_quote(str(response)))}"
            )
        if not response.choices:
            raise ProviderError(f"the LLM endpoint {self._where} answered with no choices")
        choice = response.choices[0]
        message = choice.message
        refusal = getattr(message, "refusal", None)
        if refusal:
            raise ProviderError(f"the model refused the task: {self._scrub(_quote(refusal))}")
        if message.content is None or (json_mode and not message.content.strip()):
            raise ProviderError(
                f"the LLM endpoint {self._where} answered with no content "
                f"(finish_reason: {choice.finish_reason})"
            )
        counts = response.usage
        usage = Usage(
            provider=PROVIDER_NAME,
            model=model,  # as configured: what usage is counted and compared by
            prompt_tokens=counts.prompt_tokens if counts is not None else 0,
            completion_tokens=counts.completion_tokens if counts is not None else 0,
            latency_ms=latency_ms,
        )
        return message.content, choice.finish_reason, usage

    def _map_error(self, exc: openai.OpenAIError) -> ProviderError:
        """A message that says what went wrong and where, never the key."""
        where = self._where
        if isinstance(exc, openai.APITimeoutError):
            return ProviderError(
                f"the LLM endpoint {where} did not answer within {self.timeout_seconds:g} s "
                "(llm.timeout_seconds)"
            )
        if isinstance(exc, openai.APIConnectionError):
            reason = self._scrub(_quote(_connection_reason(exc)))
            return ProviderError(f"cannot reach the LLM endpoint {where}: {reason}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = self._scrub(_quote(_server_message(exc)))
            if status == 401:
                if self._api_key is None:
                    return ProviderError(
                        f"the LLM endpoint {where} needs an API key (HTTP 401) and none is "
                        f"set: set {API_KEY_VARIABLE}"
                    )
                return ProviderError(
                    f"the LLM endpoint {where} refused the API key (HTTP 401); check "
                    f"{API_KEY_VARIABLE}"
                )
            if status == 403:
                return ProviderError(
                    f"the LLM endpoint {where} refused the API key for this request "
                    f"(HTTP 403): {detail}"
                )
            if status == 429:
                retry_after = exc.response.headers.get("retry-after")
                hint = f"; retry after {retry_after} s" if retry_after else ""
                return ProviderError(
                    f"the LLM endpoint {where} is rate limiting requests (HTTP 429): {detail}{hint}"
                )
            if status >= 500:
                return ProviderError(f"the LLM endpoint {where} failed (HTTP {status}): {detail}")
            return ProviderError(
                f"the LLM endpoint {where} rejected the request (HTTP {status}): {detail}"
            )
        if isinstance(exc, openai.APIResponseValidationError):
            return ProviderError(
                f"the LLM endpoint {where} sent a response that is not a chat completion: "
                f"{self._scrub(_quote(exc.message))}"
            )
        return ProviderError(
            f"the call to the LLM endpoint {where} failed: {type(exc).__name__}: "
            f"{self._scrub(_quote(str(exc)))}"
        )

    # --- reading answers ------------------------------------------------------------------

    def _json_object(self, content: str, finish_reason: str | None) -> dict[str, Any]:
        """The answer as a JSON object; ProviderError quoting it when it is not one."""
        text = _unfence(content.strip())
        try:
            data = json.loads(text)
        except ValueError:
            if finish_reason == "length":
                raise ProviderError(
                    "the model's answer was cut off at its token limit before the JSON was "
                    "complete; allow more tokens"
                ) from None
            raise ProviderError(
                f"the model did not answer with JSON: {self._scrub(_quote(content))}"
            ) from None
        if not isinstance(data, dict):
            raise ProviderError(
                f"the model answered JSON that is not an object: {self._scrub(_quote(text))}"
            )
        return data

    @staticmethod
    def _confidence(raw: Any, what: str) -> float:
        value = _number(raw)
        if value is None:
            raise ProviderError(
                f"the model gave no numeric confidence for {what}: {_quote(json.dumps(raw))}"
            )
        return min(1.0, max(0.0, value))

    def _scrub(self, text: str) -> str:
        if self._api_key and len(self._api_key) >= 4:
            text = text.replace(self._api_key, "***")
        return _KEY_LIKE.sub("***", text)


# --- helpers ------------------------------------------------------------------------------


def _quote(text: str) -> str:
    text = _one_line(text)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 1] + "…"


def _server_message(exc: openai.APIStatusError) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body as text."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return message
        return json.dumps(body)
    if isinstance(body, str) and body.strip():
        return body
    return exc.response.reason_phrase or "no details"


def _unfence(text: str) -> str:
    """The inside of a Markdown code fence (some local models fence JSON even in JSON
    mode); other text as it is."""
    if len(text) < 6 or not (text.startswith("```") and text.endswith("```")):
        return text
    inner = text[3:-3]
    first, newline, rest = inner.partition("\n")
    if newline and (not first.strip() or first.strip().isalnum()):
        inner = rest  # the language tag line: ```json
    return inner.strip()


def _connection_reason(exc: BaseException) -> str:
    """The most telling cause of a connection failure (refused, unknown host, ...)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    for cause in reversed(chain):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is the server running and listening there?)"
        if isinstance(cause, socket.gaierror):
            return f"the host name does not resolve ({cause.strerror or cause})"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    for cause in chain[1:]:
        if str(cause):
            return str(cause)
    return str(exc) or type(exc).__name__


def _match_label(raw: Any, names: Sequence[str]) -> str | None:
    """``raw`` as one of ``names``: exactly, or the one name equal ignoring case."""
    if not isinstance(raw, str):
        return None
    if raw in names:
        return raw
    folded = [name for name in names if name.casefold() == raw.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def _convert(raw: Any, spec: FieldSpec) -> Any:
    """The model's value for ``spec`` as its type; None when the model said "not found"."""
    if raw is None or (isinstance(raw, str) and raw.strip().casefold() in _NULL_WORDS):
        return None
    kind = spec.type
    if kind == "string":
        if isinstance(raw, str):
            return raw.strip()
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return str(raw)
    elif kind == "number":
        number = _number(raw)
        if number is not None:
            return number
    elif kind == "integer":
        number = _number(raw)
        if number is not None and number.is_integer():
            return int(number)
    elif kind == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().casefold() in _TRUE_WORDS | _FALSE_WORDS:
            return raw.strip().casefold() in _TRUE_WORDS
    elif kind == "date":
        day = _iso_date(raw.strip()) if isinstance(raw, str) else None
        if day is not None:
            return day
    elif kind == "list":
        if isinstance(raw, list):
            return [item if isinstance(item, str) else json.dumps(item) for item in raw]
        if isinstance(raw, str):
            return [raw.strip()]
    raise ProviderError(
        f"the model's value for the field '{spec.name}' is not {_TYPE_HINTS[kind]}: "
        f"{_quote(json.dumps(raw))}"
    )


def _iso_date(text: str) -> str | None:
    """``YYYY-MM-DD`` (a date-time keeps its date); None for anything else."""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        return None
