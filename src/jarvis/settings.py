"""Process settings, read from the environment (``JARVIS_*``); not business configuration."""

from __future__ import annotations

import os
import secrets
import tempfile
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

from jarvis.kit.app_state import StateKey

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


ENV_PREFIX = "JARVIS_"
# Settings that may carry credentials besides the SecretStr ones (a password in the URL).
FILE_SETTINGS_EXTRA = ("database_url", "redis_url")


def file_setting_names(settings_cls: type[BaseSettings]) -> list[str]:
    """The settings that may also be read from a file: ``JARVIS_<NAME>_FILE=/path``.

    Every secret (a ``SecretStr`` field) and every URL that may hold a password.
    """
    names = []
    for name, field in settings_cls.model_fields.items():
        annotation = field.annotation
        if name in FILE_SETTINGS_EXTRA or SecretStr in (annotation, *get_args(annotation)):
            names.append(name)
    return names


def read_setting_file(variable: str, path: str) -> str:
    """The value held in the file ``variable`` names, without its trailing line break.

    Errors name the variable and the path, never what the file holds.
    """
    if not path.strip():
        raise SettingsError(f"{variable} is set but empty; give the path of a file or unset it")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"{variable}: cannot read {path}: {exc.strerror or type(exc).__name__}"
        ) from None
    except UnicodeDecodeError:
        raise SettingsError(f"{variable}: {path} is not UTF-8 text") from None
    value = text.rstrip("\r\n")
    if not value:
        raise SettingsError(f"{variable}: {path} is empty")
    return value


class SettingFilesSource(PydanticBaseSettingsSource):
    """Reads ``JARVIS_<NAME>_FILE`` (Docker and Kubernetes secrets) for the settings of
    :func:`file_setting_names`. Setting both a variable and its ``_FILE`` is an error;
    values given to ``Settings(...)`` directly win and leave the file unread."""

    def __init__(self, settings_cls: type[BaseSettings], given: set[str]) -> None:
        super().__init__(settings_cls)
        self.given = given

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads every file setting at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        # Case-insensitive, as pydantic-settings reads the plain variables.
        environment = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in file_setting_names(self.settings_cls):
            variable = f"{ENV_PREFIX}{name.upper()}"
            path = environment.get(f"{variable}_FILE")
            if path is None or name in self.given:
                continue
            if variable in environment:
                raise SettingsError(
                    f"both {variable} and {variable}_FILE are set; set only one of them"
                )
            values[name] = read_setting_file(f"{variable}_FILE", path)
        return values


class Settings(BaseSettings):
    """Everything the process needs to start. Documented in docs/configuration.md."""

    # Errors name the variable, never its value: it may be a secret or hold a password.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", hide_input_in_errors=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then ``JARVIS_<NAME>_FILE``, then ``JARVIS_<NAME>``."""
        given = (
            set(init_settings.init_kwargs)
            if isinstance(init_settings, InitSettingsSource)
            else set()
        )
        return (
            init_settings,
            SettingFilesSource(settings_cls, given),
            env_settings,
            dotenv_settings,
            file_secret_settings,
        )

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

    # Identity (docs/security.md). The URL the browser reaches this server at, used for
    # OAuth redirect URIs (default: taken from each request).
    public_url: str | None = None
    # "Login with GitHub": an OAuth app's id and secret; the URLs are GitHub's unless
    # pointed elsewhere (GitHub Enterprise, or a test provider).
    github_client_id: str | None = None
    github_client_secret: SecretStr | None = None
    github_authorize_url: str = "https://github.com/login/oauth/authorize"
    github_token_url: str = "https://github.com/login/oauth/access_token"  # noqa: S105 - a URL
    github_api_url: str = "https://api.github.com"
    # Any OpenID Connect provider (Keycloak, Entra ID, Google, Okta) by its discovery URL.
    oidc_discovery_url: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_name: str = Field(default="Single sign-on", min_length=1, max_length=100)
    oidc_scopes: str = "openid email profile"
    # How long the identity of a session or token is trusted before it is read again.
    # Revocations reach every instance at once over the event bus; this bounds how stale
    # an instance can be if it missed one.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    # Rate limits (values in configuration, ratelimit.*). Off only for load tests.
    rate_limits: bool = True
    # Origins allowed to call the API from a browser on another origin (CORS); none by
    # default. A comma-separated list: JARVIS_CORS_ORIGINS=https://a.example,https://b.example
    cors_origins: str = ""

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


SETTINGS: StateKey[Settings] = StateKey("settings", "the settings the app was built with")
SECRET_KEY: StateKey[str] = StateKey("secret_key", "the resolved secret key")
