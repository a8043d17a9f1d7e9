"""Accounts in the database: users, log-in with lock-out, sessions, API tokens.

Times are taken as arguments (`now`), so expiry and lock-out are tested without waiting.
Nothing here logs or returns a secret except the one moment one is made (a new session's
cookie value, a new API token), which the caller hands to the person and forgets.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from ivr import ids
from ivr.accounts import passwords
from ivr.accounts.access import Principal, check_role
from ivr.accounts.models import ApiToken, PortalSession, PortalUser
from ivr.db.engine import Database
from ivr.db.kinds import Role

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,39}")
MAX_FAILURES = 5  # wrong passwords in a row before the account locks
LOCK_FOR = timedelta(minutes=15)
IDLE = timedelta(minutes=30)  # defaults; the portal passes the IVR_WEB_* settings
ABSOLUTE = timedelta(hours=12)
TOKEN_PREFIX = "ivr_"


class AccountError(ValueError):
    """A user command or log-in is refused; the message names the user, never a secret."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def principal(user: PortalUser, via: str = "web") -> Principal:
    return Principal(user.id, user.username, Role(user.role), user.practice_id,
                     user.clinician_id, via)


def user_json(user: PortalUser, now: datetime) -> dict[str, Any]:
    locked = user.locked_until is not None and user.locked_until > now
    return {"username": user.username, "role": user.role, "practice_id": user.practice_id,
            "clinician_id": user.clinician_id, "totp": bool(user.totp_secret),
            "disabled": user.disabled_at is not None, "locked": locked,
            "created_at": user.created_at.isoformat(),
            "last_login_at": user.last_login_at.isoformat() if user.last_login_at else None}


# --- users ---------------------------------------------------------------------------------

async def add_user(db: Database, username: str, password: str, role: str, *, now: datetime,
                   practice_id: str | None = None, clinician_id: str | None = None,
                   totp: bool = False) -> dict[str, Any]:
    """A new account; with `totp` its seed is returned once (as `totp_uri`)."""
    if not USERNAME.fullmatch(username):
        raise AccountError(f"user name {username!r}: expected 2-40 of a-z 0-9 . _ - "
                           "(starting with a letter or digit)")
    try:
        checked = check_role(role, practice_id, clinician_id)
        passwords.check_new(password, username)
    except ValueError as exc:
        raise AccountError(f"user {username}: {exc}") from None
    secret = passwords.new_totp_secret() if totp else None
    async with db.session() as s:
        if await s.scalar(select(PortalUser.id).where(PortalUser.username == username)):
            raise AccountError(f"user {username} exists already")
        user = PortalUser(id=ids.new_id(), username=username, role=checked.value,
                          practice_id=practice_id, clinician_id=clinician_id,
                          password_hash=passwords.hash_password(password), totp_secret=secret,
                          created_at=now, password_changed_at=now, failed_logins=0)
        s.add(user)
    out = user_json(user, now)
    if secret:
        out["totp_uri"] = passwords.totp_uri(secret, username)
    return out


async def _user(s: Any, username: str) -> PortalUser:
    user = await s.scalar(select(PortalUser).where(PortalUser.username == username))
    if user is None:
        raise AccountError(f"no user {username!r}")
    return user


async def list_users(db: Database, now: datetime) -> list[dict[str, Any]]:
    async with db.session() as s:
        rows = (await s.scalars(select(PortalUser).order_by(PortalUser.username))).all()
    return [user_json(u, now) for u in rows]


async def disable_user(db: Database, username: str, now: datetime) -> dict[str, Any]:
    """Disabled at once: every session ends, every token is revoked."""
    async with db.session() as s:
        user = await _user(s, username)
        user.disabled_at = user.disabled_at or now
        await _end_everything(s, user.id, now)
    return user_json(user, now)


async def set_password(db: Database, username: str, password: str, now: datetime, *,
                       totp: bool | None = None) -> dict[str, Any]:
    """A new password (ends the user's sessions, lifts a lock-out); `totp` True makes a
    new second-factor seed (returned once), False removes it, None keeps it."""
    try:
        passwords.check_new(password, username)
    except ValueError as exc:
        raise AccountError(f"user {username}: {exc}") from None
    async with db.session() as s:
        user = await _user(s, username)
        user.password_hash = passwords.hash_password(password)
        user.password_changed_at = now
        user.failed_logins, user.locked_until = 0, None
        if totp is not None:
            user.totp_secret = passwords.new_totp_secret() if totp else None
        await s.execute(update(PortalSession).where(
            PortalSession.user_id == user.id, PortalSession.ended_at.is_(None))
            .values(ended_at=now))
    out = user_json(user, now)
    if totp and user.totp_secret:
        out["totp_uri"] = passwords.totp_uri(user.totp_secret, username)
    return out


async def _end_everything(s: Any, user_id: str, now: datetime) -> None:
    await s.execute(update(PortalSession).where(
        PortalSession.user_id == user_id, PortalSession.ended_at.is_(None))
        .values(ended_at=now))
    await s.execute(update(ApiToken).where(
        ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)).values(revoked_at=now))


# --- logging in ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoginResult:
    ok: bool
    reason: str  # ok | bad | locked | disabled
    user: PortalUser | None = None


async def check_password(db: Database, username: str, password: str,
                         now: datetime) -> LoginResult:
    """One log-in attempt. The person is told only "wrong user name or password" or
    "locked"; the reason is for the caller's own decision and count."""
    async with db.session() as s:
        user = await s.scalar(select(PortalUser).where(PortalUser.username == username))
        good = passwords.verify(user.password_hash if user else None, password)
        if user is None:
            return LoginResult(False, "bad")
        if user.disabled_at is not None:
            return LoginResult(False, "disabled")
        if user.locked_until is not None and user.locked_until > now:
            return LoginResult(False, "locked")
        if not good:
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILURES:
                user.locked_until, user.failed_logins = now + LOCK_FOR, 0
                return LoginResult(False, "locked")
            return LoginResult(False, "bad")
        user.failed_logins, user.locked_until = 0, None
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash_password(password)
        return LoginResult(True, "ok", user)


# --- sessions --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionInfo:
    """A live session as a request sees it (the digest is its id, never the cookie)."""

    id: str
    who: Principal
    csrf: str
    second_factor_ok: bool
    needs_second_factor: bool


async def start_session(db: Database, user: PortalUser, now: datetime, *,
                        absolute: timedelta = ABSOLUTE) -> str:
    """A new session for a user who gave the right password; its cookie value.

    A user with TOTP gets a session that only reaches the code page until the code is
    given (`second_factor_ok`)."""
    token = secrets.token_urlsafe(32)
    async with db.session() as s:
        s.add(PortalSession(id=_digest(token), user_id=user.id, created_at=now,
                            last_seen_at=now, expires_at=now + absolute,
                            csrf=secrets.token_urlsafe(32),
                            second_factor_ok=not user.totp_secret))
        if not user.totp_secret:
            fresh = await s.get(PortalUser, user.id)
            if fresh is not None:
                fresh.last_login_at = now
    return token


async def load_session(db: Database, token: str, now: datetime, *,
                       idle: timedelta = IDLE, touch: bool = True) -> SessionInfo | None:
    """The session this cookie names, touched (unless `touch` is False: a live page's
    background updates are no sign of a person, so they do not hold off the idle
    log-off); None if unknown, ended or expired (idle or absolute), or its user
    disabled. An expired session is ended for good."""
    if not token or len(token) > 100:
        return None
    async with db.session() as s:
        row = await s.get(PortalSession, _digest(token))
        if row is None or row.ended_at is not None:
            return None
        user = await s.get(PortalUser, row.user_id)
        if user is None or user.disabled_at is not None or now >= row.expires_at \
                or now - row.last_seen_at >= idle:
            row.ended_at = now
            return None
        if touch:
            row.last_seen_at = now
        return SessionInfo(row.id, principal(user), row.csrf, row.second_factor_ok,
                           bool(user.totp_secret) and not row.second_factor_ok)


async def pass_second_factor(db: Database, session_id: str, code: str, now: datetime) -> bool:
    """Check a TOTP code for a session waiting for one; five wrong codes end it."""
    async with db.session() as s:
        row = await s.get(PortalSession, session_id)
        if row is None or row.ended_at is not None:
            return False
        user = await s.get(PortalUser, row.user_id)
        if user is None or not user.totp_secret:
            return False
        if passwords.verify_totp(user.totp_secret, code):
            row.second_factor_ok = True
            row.csrf = secrets.token_urlsafe(32)  # a new token once fully logged in
            user.last_login_at = now
            return True
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILURES:
            user.locked_until, user.failed_logins = now + LOCK_FOR, 0
            row.ended_at = now
        return False


async def end_session(db: Database, session_id: str, now: datetime) -> None:
    async with db.session() as s:
        row = await s.get(PortalSession, session_id)
        if row is not None and row.ended_at is None:
            row.ended_at = now


# --- API tokens ------------------------------------------------------------------------------

async def make_token(db: Database, username: str, name: str, now: datetime, *,
                     days: int | None = None) -> dict[str, Any]:
    """A new API token for the user; the token itself is in the result, and nowhere else."""
    if not re.fullmatch(r"[A-Za-z0-9._ -]{1,64}", name):
        raise AccountError(f"token name {name!r}: expected 1-64 of letters, digits, . _ - space")
    if days is not None and not 1 <= days <= 3650:
        raise AccountError(f"--days {days}: expected 1-3650")
    token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    async with db.session() as s:
        user = await _user(s, username)
        if user.disabled_at is not None:
            raise AccountError(f"user {username} is disabled")
        s.add(ApiToken(id=token_id, user_id=user.id, name=name, secret_hash=_digest(secret),
                       created_at=now,
                       expires_at=now + timedelta(days=days) if days else None))
    return {"username": username, "id": token_id, "name": name,
            "expires_at": (now + timedelta(days=days)).isoformat() if days else None,
            "token": f"{TOKEN_PREFIX}{token_id}.{secret}"}


async def revoke_token(db: Database, token_id: str, now: datetime) -> bool:
    async with db.session() as s:
        row = await s.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = now
        return True


async def list_tokens(db: Database, username: str) -> list[dict[str, Any]]:
    async with db.session() as s:
        user = await _user(s, username)
        rows = (await s.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                .order_by(ApiToken.created_at))).all()
    return [{"id": t.id, "name": t.name, "created_at": t.created_at.isoformat(),
             "expires_at": t.expires_at.isoformat() if t.expires_at else None,
             "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
             "revoked": t.revoked_at is not None} for t in rows]


async def principal_for_token(db: Database, token: str, now: datetime) -> Principal | None:
    """The user a bearer token stands for; None for anything not a live token."""
    match = re.fullmatch(rf"{TOKEN_PREFIX}([0-9a-f]{{16}})\.([A-Za-z0-9_-]{{20,100}})", token)
    if match is None:
        return None
    async with db.session() as s:
        row = await s.get(ApiToken, match.group(1))
        if row is None or row.revoked_at is not None or (
                row.expires_at is not None and row.expires_at <= now):
            return None
        if not hmac.compare_digest(row.secret_hash, _digest(match.group(2))):
            return None
        user = await s.get(PortalUser, row.user_id)
        if user is None or user.disabled_at is not None:
            return None
        if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
            row.last_used_at = now  # not on every call: a busy client would write on each
        return principal(user, via="api")
