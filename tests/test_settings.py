"""Process settings from ``JARVIS_*`` variables, the secret key, and the schema check."""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import structlog
from pydantic import ValidationError

from jarvis.db.engine import Database
from jarvis.main import SchemaNotAtHead, create_app
from jarvis.settings import (
    DEFAULT_DATABASE_URL,
    SECRET_KEY_FILE_NAME,
    Environment,
    Settings,
    SettingsError,
)

STRONG_KEY = secrets.token_urlsafe(30)[:40]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``JARVIS_*`` variable from the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("JARVIS_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def restore_logging() -> object:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


# --- reading the environment ------------------------------------------------------------


def test_defaults() -> None:
    settings = Settings()

    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite+aiosqlite:///./jarvis.db"
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.env is Environment.DEVELOPMENT
    assert settings.is_production is False
    assert settings.is_sqlite is True
    assert settings.secret_key is None
    assert settings.log_level == "INFO"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.redis_url is None
    assert settings.config_cache_size == 1000
    assert settings.config_poll_seconds == 2.0


def test_values_come_from_jarvis_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JARVIS_DATABASE_URL", "postgresql+asyncpg://u:p@db.internal:5432/jarvis")
    monkeypatch.setenv("JARVIS_HOST", "0.0.0.0")  # noqa: S104 - a value under test
    monkeypatch.setenv("JARVIS_PORT", "9000")
    monkeypatch.setenv("JARVIS_ENV", "production")
    monkeypatch.setenv("JARVIS_SECRET_KEY", STRONG_KEY)
    monkeypatch.setenv("JARVIS_LOG_LEVEL", "debug")
    monkeypatch.setenv("JARVIS_ADMIN_EMAIL", "  Root@Example.COM ")
    monkeypatch.setenv("JARVIS_REDIS_URL", "redis://cache.internal:6379/2")
    monkeypatch.setenv("JARVIS_CONFIG_CACHE_SIZE", "50")
    monkeypatch.setenv("JARVIS_CONFIG_POLL_SECONDS", "0.5")
    monkeypatch.setenv("JARVIS_MAX_BODY_BYTES", "2048")

    settings = Settings()

    assert settings.database_url == "postgresql+asyncpg://u:p@db.internal:5432/jarvis"
    assert settings.is_sqlite is False
    assert settings.host == "0.0.0.0"  # noqa: S104
    assert settings.port == 9000
    assert settings.is_production is True
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == STRONG_KEY
    assert STRONG_KEY not in repr(settings)
    assert settings.log_level == "DEBUG"
    assert settings.admin_email == "root@example.com"
    assert settings.redis_url == "redis://cache.internal:6379/2"
    assert settings.config_cache_size == 50
    assert settings.config_poll_seconds == 0.5
    assert settings.max_body_bytes == 2048
    assert settings.resolve_secret_key() == STRONG_KEY


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "1234")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://elsewhere/db")

    settings = Settings()

    assert settings.port == 8000
    assert settings.database_url == DEFAULT_DATABASE_URL


@pytest.mark.parametrize(
    "url",
    [
        "mysql+aiomysql://u:p@localhost/jarvis",
        "sqlite:///./jarvis.db",
        "postgresql://u@localhost/jarvis",
        "postgresql+psycopg2://u@localhost/jarvis",
    ],
)
def test_unsupported_database_driver_is_rejected(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("JARVIS_DATABASE_URL", url)

    with pytest.raises(ValidationError) as raised:
        Settings()

    message = str(raised.value)
    assert "sqlite+aiosqlite" in message and "postgresql+asyncpg" in message
    assert url.split("://")[0] in message


@pytest.mark.parametrize("level", ["LOUD", "", "trace", "10"])
def test_bad_log_level_is_rejected(monkeypatch: pytest.MonkeyPatch, level: str) -> None:
    monkeypatch.setenv("JARVIS_LOG_LEVEL", level)

    with pytest.raises(ValidationError) as raised:
        Settings()

    assert "JARVIS_LOG_LEVEL" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JARVIS_PORT", "0"),
        ("JARVIS_PORT", "70000"),
        ("JARVIS_ENV", "staging"),
        ("JARVIS_MAX_BODY_BYTES", "10"),
        ("JARVIS_REDIS_URL", "http://cache.internal"),
        ("JARVIS_CONFIG_CACHE_SIZE", "-1"),
        ("JARVIS_CONFIG_POLL_SECONDS", "-1"),
    ],
)
def test_out_of_range_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        Settings()


# --- the secret key ---------------------------------------------------------------------


def test_production_without_a_secret_key_refuses(tmp_path: Path) -> None:
    settings = Settings(env="production", database_url=f"sqlite+aiosqlite:///{tmp_path}/j.db")

    with pytest.raises(SettingsError) as raised:
        settings.resolve_secret_key()

    assert "JARVIS_SECRET_KEY" in str(raised.value)
    assert not (tmp_path / SECRET_KEY_FILE_NAME).exists()


@pytest.mark.parametrize("key", ["changeme", "CHANGEME", " change-me ", "secret", "jarvis"])
def test_production_refuses_a_placeholder_key(key: str) -> None:
    settings = Settings(env="production", secret_key=key)

    with pytest.raises(SettingsError) as raised:
        settings.resolve_secret_key()

    assert "placeholder" in str(raised.value)


@pytest.mark.parametrize("key", ["short", "x" * 31, ""])
def test_production_refuses_a_short_key(key: str) -> None:
    settings = Settings(env="production", secret_key=key)

    with pytest.raises(SettingsError) as raised:
        settings.resolve_secret_key()

    assert "32" in str(raised.value)


def test_production_accepts_a_long_random_key() -> None:
    assert Settings(env="production", secret_key=STRONG_KEY).resolve_secret_key() == STRONG_KEY


def test_production_app_refuses_to_be_built_without_a_key(tmp_path: Path) -> None:
    settings = Settings(env="production", database_url=f"sqlite+aiosqlite:///{tmp_path}/j.db")

    with pytest.raises(SettingsError):
        create_app(settings)


def test_development_uses_a_given_key_without_writing_a_file(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/j.db", secret_key="dev")

    assert settings.resolve_secret_key() == "dev"
    assert not (tmp_path / SECRET_KEY_FILE_NAME).exists()


def test_development_generates_a_private_key_file_beside_the_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/data/jarvis.db"
    key_file = tmp_path / "data" / SECRET_KEY_FILE_NAME

    first = Settings(database_url=url).resolve_secret_key()

    assert Settings(database_url=url).secret_key_file() == key_file
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == first
    assert len(first) >= 32
    assert Settings(database_url=url).resolve_secret_key() == first
    assert Settings(database_url=url).resolve_secret_key() == first


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    # Several workers started at once on a fresh install (uvicorn --workers N) must end
    # up with the same complete key, and leave no temporary files behind.
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh/jarvis.db"
    workers = 16
    barrier = threading.Barrier(workers)

    def resolve(_: int) -> str:
        settings = Settings(database_url=url)
        barrier.wait()
        return settings.resolve_secret_key()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        keys = set(pool.map(resolve, range(workers)))

    (key,) = keys
    assert len(key) >= 32
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == [SECRET_KEY_FILE_NAME]
    assert (tmp_path / "fresh" / SECRET_KEY_FILE_NAME).read_text().strip() == key


def test_development_keys_differ_between_databases(tmp_path: Path) -> None:
    one = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/a/j.db").resolve_secret_key()
    two = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/b/j.db").resolve_secret_key()

    assert one != two


def test_development_reads_an_existing_key_file(tmp_path: Path) -> None:
    (tmp_path / SECRET_KEY_FILE_NAME).write_text("kept-from-last-time\n")

    key = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/j.db").resolve_secret_key()

    assert key == "kept-from-last-time"


def test_development_refuses_an_empty_key_file(tmp_path: Path) -> None:
    # An empty key would sign every session with "" (a known key); say so instead.
    key_file = tmp_path / SECRET_KEY_FILE_NAME
    key_file.write_text("\n")

    with pytest.raises(SettingsError) as raised:
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/j.db").resolve_secret_key()

    assert str(key_file) in str(raised.value)


def test_key_file_for_a_server_database_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    pg = Settings(database_url="postgresql+asyncpg://u@localhost/jarvis")
    memory = Settings(database_url="sqlite+aiosqlite:///:memory:")

    assert pg.secret_key_file() == tmp_path / SECRET_KEY_FILE_NAME
    assert memory.secret_key_file() == tmp_path / SECRET_KEY_FILE_NAME
    key = pg.resolve_secret_key()
    assert (tmp_path / SECRET_KEY_FILE_NAME).read_text().strip() == key


# --- refusing to start on an old schema -------------------------------------------------


async def start(settings: Settings, db: Database) -> None:
    app = create_app(settings, database=db)
    async with app.router.lifespan_context(app):
        pass


async def test_app_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    url = f"sqlite+aiosqlite:///{path}"
    db = Database.from_url(url)
    try:
        with pytest.raises(SchemaNotAtHead) as raised:
            await start(Settings(database_url=url, secret_key="k", log_level="WARNING"), db)
    finally:
        await db.dispose()

    assert "jarvis db upgrade" in str(raised.value)
    assert "no JARVIS schema" in str(raised.value)


async def test_app_refuses_to_start_on_a_schema_behind_the_code(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('0000_older')")
    conn.close()
    url = f"sqlite+aiosqlite:///{path}"
    db = Database.from_url(url)
    try:
        with pytest.raises(SchemaNotAtHead) as raised:
            await start(Settings(database_url=url, secret_key="k", log_level="WARNING"), db)
    finally:
        await db.dispose()

    assert "0000_older" in str(raised.value)
    assert "jarvis db upgrade" in str(raised.value)


async def test_app_starts_on_a_migrated_database(settings: Settings, db: Database) -> None:
    app = create_app(settings, database=db)

    async with app.router.lifespan_context(app):
        assert app.state.db is db
        assert app.state.secret_key == settings.resolve_secret_key()


def test_development_refuses_an_empty_key_rather_than_using_it() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings(secret_key="  ").resolve_secret_key()

    assert "empty" in str(raised.value)
