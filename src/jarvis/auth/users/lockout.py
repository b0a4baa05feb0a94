"""Checking an e-mail and password, counting failures towards a lockout."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from jarvis.audit.service import record_audit
from jarvis.auth.models import User
from jarvis.auth.users.passwords import verify_password
from jarvis.auth.users.service import get_user_by_email
from jarvis.core.identity import Actor
from jarvis.kit.clock import as_utc, utcnow


@dataclass(frozen=True)
class LoginAttempt:
    """The outcome of a password sign-in: the user, or why it was refused."""

    user: User | None
    reason: str | None = None
    locked_until: datetime | None = None


INCORRECT_CREDENTIALS = "the e-mail or password is incorrect"


async def attempt_login(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    lockout_threshold: int,
    lockout_minutes: int,
    ip_address: str | None,
) -> LoginAttempt:
    """Check an e-mail and password, counting failures towards a lockout.

    Failures are recorded (and audited as ``auth.login_failed`` with the reason) in the
    caller's transaction, which must commit even though the sign-in is refused. A wrong
    e-mail costs the same argon2 verification as a wrong password.
    """
    user = await get_user_by_email(session, email)
    ok = verify_password(user.password_hash if user else None, password)
    now = utcnow()
    reason: str | None = None
    locked_until = as_utc(user.locked_until) if user and user.locked_until else None
    if user is None:
        reason = "unknown_account"
    elif locked_until is not None and locked_until > now:
        reason = "locked"
    elif not user.is_active:
        reason = "inactive"
    elif not ok:
        reason = "bad_password" if user.password_hash else "no_password"
        user.failed_login_count += 1
        if user.failed_login_count >= lockout_threshold:
            locked_until = now + timedelta(minutes=lockout_minutes)
            user.locked_until = locked_until
            user.failed_login_count = 0
            reason = "bad_password_locked"
    if reason is None:
        assert user is not None  # noqa: S101 - reason is set when there is no user
        user.failed_login_count = 0
        user.locked_until = None
        return LoginAttempt(user)
    await record_audit(
        session,
        actor=user.actor if user else Actor.system("anonymous"),
        action="auth.login_failed",
        entity_type="user",
        entity_id=user.id if user else None,
        after={
            "email": email.strip().lower(),
            "reason": reason,
            "via": "password",
            "ipAddress": ip_address,
            "lockedUntil": locked_until.isoformat() if locked_until else None,
        },
    )
    return LoginAttempt(None, reason, locked_until)
