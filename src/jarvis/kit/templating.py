"""Sandboxed Jinja2 for text that users configure (prompts, responses, offline answers).

Templates come from agent configs and the ``templates`` table, so they are untrusted: they
render in Jinja2's immutable sandbox (no private or internal attributes, no mutation of
lists and dicts), with a budget on the things that let a short template ask for a lot of
work (big ``range`` loops, huge repetitions and powers, padding widths, values doubled
in a loop or a recursion) and a cap on the output. Undefined names render as empty text,
also through attribute chains (``{{ plan.intent }}`` when there is no plan), and ``a.b``
on a dict reads its key ``b`` before any method of that name (``outputs.extractor.values``
is the extractor's values, not ``dict.values``). Output is plain text: nothing is escaped.

Every failure is a ``TemplateFailed`` whose message says what went wrong and, for syntax
errors, on which line.
"""

from __future__ import annotations

import asyncio
import re
import string
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from functools import lru_cache, wraps
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

MAX_OUTPUT_CHARS = 100_000
MAX_SOURCE_CHARS = 100_000
# The longest text (or list) a template may keep in a namespace or pass to a macro: what
# carries a value from one loop iteration or recursion to the next, so repeated doubling
# stops here instead of exhausting memory.
MAX_VALUE_CHARS = 1_000_000
# Elements all ``range()`` calls of one render may produce together: nested loops share it.
RANGE_BUDGET = 100_000
# The largest power a template may compute (in bits), e.g. 2 ** 4096 but not 9 ** 9 ** 9.
MAX_POWER_BITS = 4096
TEMPLATE_CACHE_SIZE = 512

# str methods and filters whose first argument is a width (the result is at least that long).
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# A printf-style conversion's width and precision ("%-120.3f"): both may be "*".
# (A bounded key length keeps the scan linear whatever the text.)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]{0,200}\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
# A format spec's width and precision ("<120,.3f").
_FORMAT_SPEC = re.compile(r"^(?:.?[<>=^])?[-+ ]?z?#?0?(\d+)?[,_]?(?:\.(\d+))?")

_range_left: ContextVar[int] = ContextVar("jarvis_template_range_left", default=RANGE_BUDGET)


class TemplateFailed(Exception):
    """A template did not compile or render; the message says why."""


def _too_wide(width: Any) -> bool:
    return isinstance(width, int) and width > MAX_OUTPUT_CHARS


def _check_percent_format(fmt: str) -> None:
    for match in _PERCENT_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*":
                raise SecurityError("'*' widths are not allowed in templates")
            if part is not None and int(part) > MAX_OUTPUT_CHARS:
                raise SecurityError(f"a width or precision over {MAX_OUTPUT_CHARS}")


def _check_format_spec(fmt: str) -> None:
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises its own clear error for a malformed format
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise SecurityError("nested replacement fields are not allowed in format specs")
        match = _FORMAT_SPEC.match(spec)
        if match is None:
            continue
        for part in match.groups():
            if part is not None and int(part) > MAX_OUTPUT_CHARS:
                raise SecurityError(f"a width or precision over {MAX_OUTPUT_CHARS}")


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple) else None


def _budgeted_range(*args: int) -> Iterator[int]:
    """``range`` whose elements count against the render's shared budget."""
    numbers = range(*args)
    left = _range_left.get()
    if len(numbers) > left:
        raise SecurityError(
            f"the template's range() calls would produce more than {RANGE_BUDGET} numbers"
        )
    _range_left.set(left - len(numbers))
    return iter(numbers)


def _check_kept(value: Any) -> None:
    size = _sized(value)
    if size is not None and size > MAX_VALUE_CHARS:
        raise SecurityError(f"a value longer than {MAX_VALUE_CHARS} cannot be kept")


class _BoundedNamespace(Namespace):
    """``namespace()`` whose attributes cannot grow past MAX_VALUE_CHARS."""

    def __setitem__(self, name: str, value: Any) -> None:
        _check_kept(value)
        super().__setitem__(name, value)


def _guard(check: Callable[..., None], func: Callable[..., Any]) -> Any:
    """``func`` (a filter) calling ``check`` with its arguments first."""

    # wraps() also copies Jinja's pass_context/pass_eval_context marker.
    @wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return func(*args, **kwargs)

    return guarded


def _check_replace(text: Any, old: Any, new: Any) -> None:
    text, old, new = str(text), str(old), str(new)
    grows = (text.count(old) if old else len(text) + 1) * max(len(new) - len(old), 0)
    if len(text) + grows > MAX_OUTPUT_CHARS:
        raise SecurityError(f"replace() would make text longer than {MAX_OUTPUT_CHARS}")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with bounds on what one expression may allocate."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self) -> None:
        super().__init__(
            undefined=ChainableUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            # None renders as empty text, like an undefined name.
            finalize=lambda value: "" if value is None else value,
        )
        self.globals["range"] = _budgeted_range
        self.globals["namespace"] = _BoundedNamespace
        self.globals.pop("lipsum", None)  # lipsum(n) writes n paragraphs of filler
        self.filters["center"] = _guard(self._check_width_filter, self.filters["center"])
        self.filters["indent"] = _guard(self._check_width_filter, self.filters["indent"])
        self.filters["format"] = _guard(self._check_format_filter, self.filters["format"])
        self.filters["replace"] = _guard(self._check_replace_filter, self.filters["replace"])

    @staticmethod
    def _check_width_filter(value: Any, width: Any = 0, *args: Any, **kwargs: Any) -> None:
        if _too_wide(width):
            raise SecurityError(f"a width over {MAX_OUTPUT_CHARS}")

    @staticmethod
    def _check_format_filter(value: Any, *args: Any, **kwargs: Any) -> None:
        _check_percent_format(str(value))

    @staticmethod
    def _check_replace_filter(
        eval_ctx: Any, text: Any = "", old: Any = "", new: Any = "", *args: Any, **kwargs: Any
    ) -> None:
        _check_replace(text, old, new)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuse operations whose result would be far bigger than any output may be."""
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"a repetition longer than {MAX_OUTPUT_CHARS}")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and abs(left) > 1
                and abs(left).bit_length() * right > MAX_POWER_BITS
            ):
                raise SecurityError(f"a power larger than 2**{MAX_POWER_BITS}")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left)
        elif operator == "+":
            left_size, right_size = _sized(left), _sized(right)
            if (
                left_size is not None
                and right_size is not None
                and left_size + right_size > MAX_OUTPUT_CHARS
            ):
                raise SecurityError(f"a concatenation longer than {MAX_OUTPUT_CHARS}")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Check width arguments of str methods and the size of macro arguments."""
        if isinstance(__obj, Macro):
            for value in (*args, *kwargs.values()):
                _check_kept(value)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in _WIDTH_METHODS and args and _too_wide(args[0]):
                raise SecurityError(f"a width over {MAX_OUTPUT_CHARS}")
            if name == "replace" and len(args) >= 2:
                _check_replace(owner, args[0], args[1])
        return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``a.b`` on a dict reads the key ``b`` first: the context is JSON data, where
        ``outputs.extractor.values`` means the key, not ``dict.values``."""
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Fail loudly: a template reaching for internals is a mistake or an attack."""
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__} is not allowed"
        )

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Check ``str.format`` specs for huge widths before formatting."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format_spec(fmt)
            return wrapped(*args, **kwargs)

        return checked


_ENVIRONMENT = _Sandbox()


@lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def _compile(source: str) -> Template:
    return _ENVIRONMENT.from_string(source)


def compile_template(source: str) -> Template:
    """The compiled template for ``source`` (cached); TemplateFailed on a syntax error."""
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateFailed(f"the template is longer than {MAX_SOURCE_CHARS} characters")
    try:
        return _compile(source)
    except TemplateSyntaxError as exc:
        raise TemplateFailed(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    except RecursionError:
        raise TemplateFailed("the template is nested too deeply to compile") from None


def render(source: str, context: Mapping[str, Any]) -> str:
    """``source`` rendered over ``context``; TemplateFailed saying why it could not be."""
    template = compile_template(source)
    token = _range_left.set(RANGE_BUDGET)
    pieces: list[str] = []
    size = 0
    try:
        # Streamed, so a template that writes without end stops at the cap.
        for piece in template.generate(dict(context)):
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateFailed(
                    f"the template's output is longer than {MAX_OUTPUT_CHARS} characters"
                )
            pieces.append(piece)
    except TemplateFailed:
        raise
    except SecurityError as exc:
        raise TemplateFailed(f"the template did something the sandbox forbids: {exc}") from None
    except UndefinedError as exc:
        raise TemplateFailed(f"the template used an undefined value: {exc}") from None
    except RecursionError:
        raise TemplateFailed("the template recursed too deeply") from None
    except Exception as exc:  # anything a template expression raises (1/0, bad filter args)
        raise TemplateFailed(
            f"the template failed to render: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        _range_left.reset(token)
    return "".join(pieces)


async def render_in_thread(source: str, context: Mapping[str, Any]) -> str:
    """``render`` off the event loop, so a slow template delays only its own caller."""
    return await asyncio.to_thread(render, source, context)
