"""Password hashing with argon2id, and the password policy."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from jarvis.errors import ValidationFailed

# argon2-cffi's defaults (RFC 9106's low-memory profile: t=3, m=64 MiB, p=4).
DEFAULT_HASHER = PasswordHasher()
_hasher = DEFAULT_HASHER
# Verified against when the account does not exist, so a wrong e-mail costs as much time
# as a wrong password and response times do not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def use_hasher(hasher: PasswordHasher) -> None:
    """Hash new passwords with ``hasher`` from now on (the test suite's cheap parameters);
    the dummy hash follows, so unknown accounts still cost one verification like it."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


# The floor when no configured minimum is at hand (auth.password_min_length defaults to 10).
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; always spends one argon2 verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A random password for accounts created without one."""
    return secrets.token_urlsafe(15)


# Passwords that appear at the top of every breach list; refused whatever their length.
COMMON_PASSWORDS = frozenset(
    {
        "password",
        "password1",
        "password123",
        "passw0rd",
        "123456789",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "qwerty123",
        "iloveyou",
        "letmein123",
        "welcome123",
        "administrator",
        "changeme123",
        "football123",
        "baseball123",
        "superman123",
        "trustno1234",
        "monkey12345",
        "abc123456789",
        "0123456789",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "zaq12wsxcde3",
        "jarvisjarvis",
        "insurance123",
    }
)
MAX_PASSWORD_LENGTH = 1024


def password_problems(password: str, *, email: str, min_length: int) -> list[str]:
    """Why ``password`` is not acceptable for the account ``email`` (empty when it is)."""
    problems = []
    if len(password) < min_length:
        problems.append(f"must be at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"must be at most {MAX_PASSWORD_LENGTH} characters")
    lowered = password.lower()
    if lowered in COMMON_PASSWORDS:
        problems.append("is one of the most common passwords")
    if len(set(password)) < 4:
        problems.append("must use at least 4 different characters")
    local = email.partition("@")[0].lower()
    if len(local) >= 4 and local in lowered:
        problems.append("must not contain the account's e-mail name")
    return problems


def check_password_policy(password: str, *, email: str, min_length: int) -> None:
    """422 naming every rule ``password`` breaks (auth.password_min_length and the rest)."""
    problems = password_problems(password, email=email, min_length=min_length)
    if problems:
        raise ValidationFailed(
            "password: " + "; ".join(problems),
            errors=[{"loc": ["password"], "msg": problem} for problem in problems],
        )
