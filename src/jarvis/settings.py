"""Process settings, read from the environment (``JARVIS_*``); not business configuration."""

from __future__ import annotations

import os
import secrets
import tempfile
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from jarvis.db.engine import Database

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./jarvis.db"
SECRET_KEY_FILE_NAME = ".jarvis_secret_key"  # noqa: S105 - a file name
MIN_SECRET_KEY_LENGTH = 32

# Values that must never protect a production deployment: the placeholders people copy
# from examples. Checked case-insensitively.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "secret-key",
        "secret_key",
        "default",
        "development",
        "dev",
        "test",
        "jarvis",
        "password",
        "insecure",
    }
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class SettingsError(RuntimeError):
    """A setting is missing or unsafe; the message says which and how to fix it."""


class Settings(BaseSettings):
    """Everything the process needs to start. Documented in docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="JARVIS_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    env: Environment = Environment.DEVELOPMENT
    secret_key: SecretStr | None = None
    log_level: str = "INFO"
    admin_email: str = "admin@jarvis.local"
    admin_password: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    redis_url: str | None = None
    # Database connections each process keeps (and may open beyond that under load).
    # With N API instances and M workers, keep (N + M) x (pool + overflow) under the
    # server's max_connections.
    db_pool_size: int = Field(default=20, ge=1, le=1000)
    db_max_overflow: int = Field(default=10, ge=0, le=1000)
    config_cache_size: int = Field(default=1000, ge=0, le=10_000_000)
    config_poll_seconds: float = Field(default=2.0, ge=0, le=3600)
    agent_list_cache_seconds: float = Field(default=2.0, ge=0, le=3600)
    # The key the 'openai' LLM provider sends (JARVIS_OPENAI_API_KEY). Only from the
    # environment, never from business configuration; unset suits endpoints that need none
    # (Ollama, vLLM).
    openai_api_key: SecretStr | None = None
    # Who runs executions (docs/deployment.md): "auto" is Taskiq workers when
    # JARVIS_REDIS_URL is set and this process otherwise; "in-process" forces this process.
    dispatcher: Literal["auto", "in-process", "taskiq"] = "auto"
    # The Redis stream Taskiq queues executions on (one per deployment sharing a Redis).
    taskiq_queue: str = Field(default="jarvis:executions", min_length=1, max_length=200)
    # An engine holds each execution it runs for this long and renews it every third of
    # it; when it stops renewing (its process died), another engine resumes the execution.
    execution_lease_seconds: float = Field(default=30.0, ge=0.5, le=3600)
    # An execution whose engine was lost more often than this ends failed (worker_lost).
    execution_max_worker_losses: int = Field(default=3, ge=0, le=100)
    # The realtime WebSocket (docs/realtime.md): a heartbeat every this many seconds (a
    # client silent for three intervals is closed), how long an unauthenticated socket may
    # take to send its auth message, and how many messages may wait for a slow client
    # before it is closed (1013).
    ws_heartbeat_seconds: float = Field(default=15.0, ge=0.05, le=3600)
    ws_auth_timeout_seconds: float = Field(default=10.0, ge=0.05, le=3600)
    ws_send_queue_size: int = Field(default=1000, ge=10, le=1_000_000)

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        url = make_url(value)
        if url.drivername not in {"sqlite+aiosqlite", "postgresql+asyncpg"}:
            raise ValueError(
                "JARVIS_DATABASE_URL must use sqlite+aiosqlite:// or postgresql+asyncpg://, "
                f"not {url.drivername}://"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("JARVIS_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("admin_email")
    @classmethod
    def _admin_email(cls, value: str) -> str:
        return value.strip().lower()

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    def database(self) -> Database:
        """The database these settings name, with their pool size."""
        from jarvis.db.engine import Database

        return Database.from_url(
            self.database_url, pool_size=self.db_pool_size, max_overflow=self.db_max_overflow
        )

    def secret_key_file(self) -> Path:
        """Where development keeps its generated secret key: beside the SQLite file."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            return Path(url.database).resolve().parent / SECRET_KEY_FILE_NAME
        return Path.cwd() / SECRET_KEY_FILE_NAME

    def resolve_secret_key(self) -> str:
        """Return the secret key, generating and keeping one in development.

        Production refuses to start without ``JARVIS_SECRET_KEY`` or with a short or
        well-known value.
        """
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            if self.is_production:
                _check_production_secret(key)
            elif not key.strip():
                raise SettingsError("JARVIS_SECRET_KEY is set but empty; unset it or set a value")
            return key
        if self.is_production:
            raise SettingsError(
                "JARVIS_SECRET_KEY is required when JARVIS_ENV=production; generate one with "
                '`python -c "import secrets; print(secrets.token_urlsafe(48))"`'
            )
        return _read_or_create_key_file(self.secret_key_file())


def _check_production_secret(key: str) -> None:
    if key.strip().lower() in KNOWN_DEFAULT_SECRETS:
        raise SettingsError("JARVIS_SECRET_KEY is a well-known placeholder; set a random value")
    if len(key.strip()) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(
            f"JARVIS_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters in production"
        )


def _read_key_file(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise SettingsError(
            f"the secret key file {path} is empty; delete it to have a new key generated, "
            "or set JARVIS_SECRET_KEY"
        )
    return key


def _read_or_create_key_file(path: Path) -> str:
    if path.exists():
        return _read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Written to a private temporary file, then linked into place: the link is atomic and
    # fails if the file exists, so when two processes start together the loser reads the
    # winner's complete key, never a half-written file.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            return _read_key_file(path)
    finally:
        os.unlink(temporary)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process settings, read once from the environment."""
    return Settings()
