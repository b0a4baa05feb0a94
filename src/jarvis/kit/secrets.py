"""Random tokens and their one-way digests."""

import hashlib
import hmac
import secrets


def new_token(prefix: str = "") -> str:
    """Return a URL-safe random token with 256 bits of entropy."""
    return prefix + secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    """Return the hex SHA-256 of ``value``'s UTF-8 bytes."""
    return hashlib.sha256(value.encode()).hexdigest()


def keyed_digest(key: str, value: str) -> str:
    """Return the hex HMAC-SHA256 of ``value`` under ``key``."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()
