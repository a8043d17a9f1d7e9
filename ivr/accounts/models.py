"""The account tables: portal users, their server-side sessions and their API tokens.

No patient data here. Secrets are never stored as given: passwords as argon2id hashes,
session cookies and API tokens as SHA-256 digests (they are long random strings, so a
fast digest is enough; a slow hash is for what people choose), a TOTP seed sealed like a
patient value (ivr.db.sealed), because it must be read back to check a code.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ivr.db.models import Base, UtcDateTime
from ivr.db.sealed import SealedText, seal_columns


class PortalUser(Base):
    """One person who logs into the portal (or uses its API)."""

    __tablename__ = "portal_users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # ivr.db.kinds.Role
    practice_id: Mapped[str | None] = mapped_column(String(64))  # None for an operator
    clinician_id: Mapped[str | None] = mapped_column(String(64))  # the rules' id (clinicians)
    password_hash: Mapped[str] = mapped_column(Text)
    totp_secret: Mapped[str | None] = mapped_column(SealedText())  # sealed
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)  # since the last success
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class PortalSession(Base):
    """A logged-in browser. The cookie holds the token; the row holds its digest."""

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie
    user_id: Mapped[str] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"),
                                         index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())  # the absolute limit
    csrf: Mapped[str] = mapped_column(String(64))  # the forms' token (synchronizer)
    second_factor_ok: Mapped[bool] = mapped_column(default=False)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class ApiToken(Base):
    """A bearer token for the JSON API: `ivr_<id>.<secret>`, the secret kept as a digest."""

    __tablename__ = "portal_api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("portal_users.id", ondelete="CASCADE"),
                                         index=True)
    name: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_portal_api_tokens_user_revoked", "user_id", "revoked_at"),)


seal_columns(PortalUser, {"totp_secret": lambda row: f"portal_users.totp_secret:{row.id}"})
