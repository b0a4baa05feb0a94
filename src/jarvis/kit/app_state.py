"""What ``create_app`` puts on ``app.state``, read and written through typed keys.

Every object the application holds for its requests (the database, the settings, the
config service, the bus...) has one :class:`StateKey`, declared by the domain that owns the
object, next to the FastAPI dependency that reads it. Nothing else touches ``app.state``:
``tests/test_app_state.py`` fails on a raw ``request.app.state.X`` anywhere but here, so a
reader finds every use of a thing by its key, and a missing one is a clear error naming the
key instead of an ``AttributeError`` deep inside a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

if TYPE_CHECKING:  # at run time any request or WebSocket will do; kept light for the CLI
    from starlette.requests import HTTPConnection

T = TypeVar("T")

KEYS: dict[str, StateKey[Any]] = {}
"""Every declared key by name (a name is declared once; the test checks the owners)."""


class AppStateMissing(RuntimeError):
    """The application was built without something a request needs."""


@dataclass(frozen=True)
class StateKey(Generic[T]):
    """One thing on ``app.state``: ``name`` is its attribute there, ``what`` says what it is."""

    name: str
    what: str

    def __post_init__(self) -> None:
        if self.name in KEYS:
            raise ValueError(f"app.state.{self.name} is declared twice")
        KEYS[self.name] = self

    def get(self, connection: HTTPConnection) -> T:
        """The thing, for a request or a WebSocket; raises when the app has none."""
        value = self.find(connection)
        if value is None:
            raise AppStateMissing(
                f"app.state.{self.name} ({self.what}) is not set: build the application "
                "with jarvis.main.create_app"
            )
        return value

    def find(self, connection: HTTPConnection) -> T | None:
        """The thing, or None when the application was built without it."""
        return cast("T | None", getattr(connection.app.state, self.name, None))

    def put(self, app: Any, value: T) -> None:
        """Set the thing on an application (``create_app`` does, once per key)."""
        setattr(app.state, self.name, value)
