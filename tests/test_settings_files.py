"""Secrets and URLs from files: ``JARVIS_<NAME>_FILE=/path`` (Docker and Kubernetes
secrets), the conflicts and unreadable files, and how the CLI reports them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from jarvis.cli.app import cli
from jarvis.settings import Environment, Settings, SettingsError, file_setting_names, get_settings

SECRET_SETTINGS = (
    "secret_key",
    "admin_password",
    "openai_api_key",
    "github_client_secret",
    "oidc_client_secret",
)
URL_SETTINGS = {
    "database_url": "postgresql+asyncpg://jarvis:pa55word@db.internal:5432/jarvis",
    "redis_url": "redis://:redis-pa55@cache.internal:6379/1",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``JARVIS_*`` variable from the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("JARVIS_"):
            monkeypatch.delenv(name)


def secret_file(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def reveal(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_secret_and_url_setting_can_come_from_a_file() -> None:
    names = set(file_setting_names(Settings))

    assert names >= {*SECRET_SETTINGS, *URL_SETTINGS}
    # Every SecretStr field is covered, including ones added later.
    for name, field in Settings.model_fields.items():
        if "SecretStr" in str(field.annotation):
            assert name in names, name
    assert "port" not in names and "log_level" not in names


@pytest.mark.parametrize("name", [*SECRET_SETTINGS, *URL_SETTINGS])
def test_a_setting_is_read_from_its_file(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = URL_SETTINGS.get(name, f"{name}-value-{'z' * 40}")
    # Secret files usually end with a line break; it is not part of the value.
    path = secret_file(tmp_path, name, value + "\n")
    monkeypatch.setenv(f"JARVIS_{name.upper()}_FILE", str(path))

    settings = Settings()

    assert reveal(getattr(settings, name)) == value


def test_only_trailing_line_breaks_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(tmp_path, "key", "  spaced key with\ttab  \r\n\n")
    monkeypatch.setenv("JARVIS_OPENAI_API_KEY_FILE", str(path))

    assert reveal(Settings().openai_api_key) == "  spaced key with\ttab  "


def test_file_values_are_validated_like_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(tmp_path, "redis", "http://not-redis:6379")
    monkeypatch.setenv("JARVIS_REDIS_URL_FILE", str(path))

    with pytest.raises(ValueError, match="redis://"):
        Settings()


def test_an_invalid_value_is_reported_without_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(tmp_path, "db", "mysql://jarvis:hunter2-db-password@db.internal/jarvis")
    monkeypatch.setenv("JARVIS_DATABASE_URL_FILE", str(path))

    with pytest.raises(ValueError) as raised:
        Settings()

    message = str(raised.value)
    assert "JARVIS_DATABASE_URL must use sqlite+aiosqlite://" in message
    assert "hunter2" not in message


def test_production_rules_apply_to_a_key_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JARVIS_ENV", "production")
    monkeypatch.setenv("JARVIS_SECRET_KEY_FILE", str(secret_file(tmp_path, "k", "changeme\n")))

    settings = Settings()

    assert settings.env is Environment.PRODUCTION
    with pytest.raises(SettingsError, match="placeholder"):
        settings.resolve_secret_key()


def test_a_variable_and_its_file_together_are_an_error_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(tmp_path, "key", "from-the-file")
    monkeypatch.setenv("JARVIS_SECRET_KEY", "from-the-variable")
    monkeypatch.setenv("JARVIS_SECRET_KEY_FILE", str(path))

    with pytest.raises(SettingsError) as raised:
        Settings()

    message = str(raised.value)
    assert "JARVIS_SECRET_KEY and JARVIS_SECRET_KEY_FILE" in message
    assert "from-the-file" not in message and "from-the-variable" not in message


def test_the_variable_names_are_case_insensitive_as_for_plain_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret_file(tmp_path, "key", "lower-case-variable")
    monkeypatch.setenv("jarvis_admin_password_file", str(path))

    assert reveal(Settings().admin_password) == "lower-case-variable"

    monkeypatch.setenv("JARVIS_ADMIN_PASSWORD", "both")
    with pytest.raises(SettingsError, match="JARVIS_ADMIN_PASSWORD_FILE"):
        Settings()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing", "No such file or directory"),
        ("directory", "Is a directory"),
        ("unreadable", "Permission denied"),
        ("binary", "is not UTF-8 text"),
        ("empty", "is empty"),
    ],
)
def test_an_unusable_file_is_an_error_naming_the_path_not_the_content(
    kind: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret"
    if kind == "directory":
        path.mkdir()
    elif kind == "unreadable":
        secret_file(tmp_path, "secret", "the-hidden-content")
        path.chmod(0)
        if os.access(path, os.R_OK):
            # Root reads a file without permissions: play the kernel's refusal instead.
            monkeypatch.setattr(Path, "read_text", _permission_denied)
    elif kind == "binary":
        secret_file(tmp_path, "secret", b"\xffthe-hidden-content\xfe")
    elif kind == "empty":
        secret_file(tmp_path, "secret", "\n")
    monkeypatch.setenv("JARVIS_GITHUB_CLIENT_SECRET_FILE", str(path))

    with pytest.raises(SettingsError) as raised:
        Settings()

    message = str(raised.value)
    assert "JARVIS_GITHUB_CLIENT_SECRET_FILE" in message
    assert str(path) in message
    assert reason in message
    assert "hidden" not in message


def _permission_denied(self: Path, *args: object, **kwargs: object) -> str:
    raise PermissionError(13, "Permission denied", str(self))


def test_an_empty_file_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JARVIS_DATABASE_URL_FILE", "")

    with pytest.raises(SettingsError, match="JARVIS_DATABASE_URL_FILE is set but empty"):
        Settings()


def test_arguments_win_and_leave_the_file_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JARVIS_SECRET_KEY_FILE", "/no/such/file")

    settings = Settings(secret_key="given-directly-" + "k" * 40)

    assert reveal(settings.secret_key) == "given-directly-" + "k" * 40


def test_settings_without_file_variables_are_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JARVIS_SECRET_KEY", "plain-variable-" + "v" * 40)

    settings = Settings()

    assert reveal(settings.secret_key) == "plain-variable-" + "v" * 40
    assert settings.openai_api_key is None


def test_the_cli_reports_an_unreadable_file_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-secret"
    monkeypatch.setenv("JARVIS_DATABASE_URL_FILE", str(missing))
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["db", "current"])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    output = " ".join(result.output.split())
    assert f"JARVIS_DATABASE_URL_FILE: cannot read {missing}" in output
    assert "No such file or directory" in output
